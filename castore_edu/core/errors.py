"""The errors castore_edu raises, each with the fields a caller needs to react.

Messages are Castore's, word for word, so that what a learner reads in Castore's docs is what
they see here. Every error takes its fields as keyword arguments, so a custom storage adapter
can raise them too.
"""

from __future__ import annotations

from typing import Any

EVENT_ALREADY_EXISTS_ERROR_CODE = "EventAlreadyExistsError"


class EventAlreadyExistsError(Exception):
    """A version conflict: another writer already stored this (aggregate, version).

    This is optimistic concurrency at work. Two commands read the same aggregate at version
    ``n`` and both try to write ``n + 1``; the storage accepts the first and refuses the second
    with this error. A :class:`~castore_edu.core.command.Command` reacts by running its handler again
    on fresh state.
    """

    code = EVENT_ALREADY_EXISTS_ERROR_CODE

    def __init__(self, *, event_store_id: str, aggregate_id: str, version: int) -> None:
        self.event_store_id = event_store_id
        self.aggregate_id = aggregate_id
        self.version = version
        super().__init__(
            f"Event already exists for {event_store_id} aggregate {aggregate_id} and version {version}"
        )


def is_event_already_exists_error(obj: Any) -> bool:
    """True for any object whose ``code`` is ``"EventAlreadyExistsError"``.

    Duck typing, as in Castore: an adapter written by someone else does not have to subclass
    our error, it only has to carry the code.
    """
    return getattr(obj, "code", None) == EVENT_ALREADY_EXISTS_ERROR_CODE


class AggregateNotFoundError(Exception):
    """``get_existing_aggregate`` found no event for this aggregate."""

    def __init__(self, *, aggregate_id: str, event_store_id: str) -> None:
        self.aggregate_id = aggregate_id
        self.event_store_id = event_store_id
        super().__init__(f"Unable to find aggregate {aggregate_id} in event store {event_store_id}.")


class UndefinedEventStorageAdapterError(Exception):
    """The event store has no storage adapter (yet): set ``event_storage_adapter`` first."""

    def __init__(self, *, event_store_id: str) -> None:
        self.event_store_id = event_store_id
        super().__init__(f"EventStorageAdapter not found for event store {event_store_id}")


class UndefinedMessageChannelAdapterError(Exception):
    """The message bus or queue has no adapter to hand its messages to."""

    def __init__(self, *, message_channel_type: str, message_channel_id: str) -> None:
        self.message_channel_type = message_channel_type
        self.message_channel_id = message_channel_id
        super().__init__(f"Adapter undefined for message {message_channel_type} {message_channel_id}")


class MessageChannelEventStoreNotFoundError(Exception):
    """A message names an event store that is not among the channel's source event stores."""

    def __init__(self, *, event_store_id: str, message_channel_type: str, message_channel_id: str) -> None:
        self.event_store_id = event_store_id
        self.message_channel_type = message_channel_type
        self.message_channel_id = message_channel_id
        super().__init__(
            f"Unable to find event store {event_store_id} in message {message_channel_type} "
            f"{message_channel_id}. Did you provide it in the constructor?"
        )


class InvalidEventError(ValueError):
    """An event that no adapter may store; ``field`` names the culprit.

    Raised before anything is written, by every shipped adapter alike, so that code which works
    in memory also works on SQLite.
    """

    def __init__(self, message: str, *, field: str) -> None:
        self.field = field
        super().__init__(message)


class ServerUnavailableError(ConnectionError):
    """An adapter could not talk to its server (PostgreSQL, NATS): it is not running, the address
    is wrong, or it went away in the middle of a call.

    ``server`` says which server, as the adapter was told to find it (never with a password).
    A call that fails this way may or may not have reached the server: a write whose answer was
    lost might have committed. Nothing is retried behind your back; the adapter connects again on
    its next call, so it works again once the server is back.
    """

    def __init__(self, *, server: str, reason: str) -> None:
        self.server = server
        self.reason = reason
        super().__init__(f"Cannot reach {server}: {reason}. Is the server running, and is the address right?")


class UpcastError(ValueError):
    """A stored event could not be brought to its type's current shape (see ``core/upcasting.py``).

    Raised on read, for an event whose schema version is newer than its type declares (a newer
    release wrote it), or when an upcaster returned something that is not the next version of the
    event. The message names the type, the versions and the fix; the fields say which event it was.
    The stored event itself is never changed, so fixing the code is enough to read it again.
    """

    def __init__(
        self, message: str, *, event_type: str, aggregate_id: str, version: int, schema_version: int
    ) -> None:
        self.event_type = event_type
        self.aggregate_id = aggregate_id
        self.version = version
        self.schema_version = schema_version
        super().__init__(message)
