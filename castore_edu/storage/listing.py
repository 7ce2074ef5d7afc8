"""Listing an event store's aggregates, one page at a time — shared by both adapters.

Each adapter only has to produce :class:`ListedAggregate` rows; the ordering, the inclusive
time bounds, ``reverse``, ``limit`` and the page token are decided here, once, so the two
adapters cannot drift apart.

Order: by the timestamp of each aggregate's first event; aggregates created at the same
timestamp keep the order in which they were created (``created``, a number that grows).

A page token is opaque to callers. Inside it is the listing's options, the sort key of the
last aggregate returned, and who issued it: the kind of adapter and the event store. The next
page starts strictly after that key, whether or not that aggregate is still in the listing.
A token that was edited, truncated, forged, or given to another event store raises
``ValueError`` (an :class:`InvalidPageTokenError`) that says what is wrong with it. A short
checksum catches accidents; it is not a security feature, so every field inside is checked too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from castore_edu.core.arguments import quote, require_bool
from castore_edu.core.events import AggregateIdEntry, AggregateIdsPage
from castore_edu.storage.protocol import check_limit


class ListedAggregate(NamedTuple):
    """One aggregate as an adapter sees it; tuples compare in listing order."""

    initial_event_timestamp: str
    created: int
    aggregate_id: str


@dataclass(frozen=True)
class ListingOptions:
    """What one listing call asks for: its options, merged with those its page token carried."""

    event_store_id: str = ""
    limit: int | None = None
    initial_event_after: str | None = None
    initial_event_before: str | None = None
    reverse: bool = False
    after_key: ListedAggregate | None = None


def resolve_options(
    adapter_kind: str,
    *,
    event_store_id: str,
    limit: int | None,
    page_token: str | None,
    initial_event_after: str | None,
    initial_event_before: str | None,
    reverse: bool | None,
) -> ListingOptions:
    """Merge explicit options with those carried by ``page_token``; explicit ones win.

    A token is only good for the event store (and the kind of adapter) that issued it: it points
    into *that* listing, and would silently skip or repeat aggregates of any other.
    """
    check_limit(limit)
    for name, bound in (
        ("initial_event_after", initial_event_after),
        ("initial_event_before", initial_event_before),
    ):
        if bound is not None and not isinstance(bound, str):
            raise TypeError(f"{name} must be a str timestamp or None, got {bound!r}")
    require_bool("reverse", reverse, may_be_none=True)
    if page_token is not None and not isinstance(page_token, str):
        raise TypeError(
            f"page_token must be None or the str a page gave as next_page_token, got {type(page_token).__name__}"
        )
    carried = (
        ListingOptions(event_store_id=event_store_id)
        if page_token is None
        else decode_token(page_token, adapter_kind=adapter_kind, event_store_id=event_store_id)
    )
    return ListingOptions(
        event_store_id=event_store_id,
        limit=limit if limit is not None else carried.limit,
        initial_event_after=initial_event_after
        if initial_event_after is not None
        else carried.initial_event_after,
        initial_event_before=initial_event_before
        if initial_event_before is not None
        else carried.initial_event_before,
        reverse=reverse if reverse is not None else carried.reverse,
        after_key=carried.after_key,
    )


def paginate(
    adapter_kind: str, aggregates: list[ListedAggregate], options: ListingOptions
) -> AggregateIdsPage:
    """One page of ``aggregates`` (any order in, listing order out) under ``options``."""
    ordered = sorted(aggregates, reverse=options.reverse)
    selected = [
        row
        for row in ordered
        if (options.initial_event_after is None or row.initial_event_timestamp >= options.initial_event_after)
        and (
            options.initial_event_before is None
            or row.initial_event_timestamp <= options.initial_event_before
        )
        and (options.after_key is None or _comes_after(row, options.after_key, options.reverse))
    ]
    page = selected if options.limit is None else selected[: options.limit]
    # A page of zero rows cannot move a cursor forward, so limit=0 never offers a next page.
    has_more = 0 < len(page) < len(selected)
    token = _encode_token(adapter_kind, options, page[-1]) if has_more else None
    return AggregateIdsPage(
        aggregate_ids=[AggregateIdEntry(row.aggregate_id, row.initial_event_timestamp) for row in page],
        next_page_token=token,
    )


def _comes_after(row: ListedAggregate, key: ListedAggregate, reverse: bool) -> bool:
    return row < key if reverse else row > key


def _checksum(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:16]


def _encode_token(adapter_kind: str, options: ListingOptions, last: ListedAggregate) -> str:
    body = json.dumps(
        {
            "adapter": adapter_kind,
            "event_store_id": options.event_store_id,
            "limit": options.limit,
            "initial_event_after": options.initial_event_after,
            "initial_event_before": options.initial_event_before,
            "reverse": options.reverse,
            "after": list(last),
        },
        separators=(",", ":"),
    ).encode()
    return base64.urlsafe_b64encode(body).decode() + "." + _checksum(body)


TOKEN_FIELDS = {
    "adapter",
    "event_store_id",
    "limit",
    "initial_event_after",
    "initial_event_before",
    "reverse",
    "after",
}
QUOTED_TOKEN_LENGTH = 24


class InvalidPageTokenError(ValueError):
    """A page token that cannot be used; the message says why, quoting only its start."""

    def __init__(self, token: str, reason: str) -> None:
        shown = token if len(token) <= QUOTED_TOKEN_LENGTH else token[:QUOTED_TOKEN_LENGTH] + "..."
        super().__init__(
            f"Invalid page token {shown!r}: {reason}. Pass a page's next_page_token back unchanged, "
            "to the event store that returned it"
        )


def decode_token(token: str, *, adapter_kind: str, event_store_id: str) -> ListingOptions:
    """The options carried by ``token``; :class:`InvalidPageTokenError` (a ``ValueError``) when it
    was edited, truncated, forged, or issued for another event store or kind of adapter."""
    fields = _token_fields(token)
    if fields["adapter"] != adapter_kind:
        raise InvalidPageTokenError(
            token, f"it was issued by a {quote(fields['adapter'])}, not a {adapter_kind}"
        )
    if fields["event_store_id"] != event_store_id:
        raise InvalidPageTokenError(
            token, f"it was issued by event store {quote(fields['event_store_id'])}, not {event_store_id!r}"
        )
    timestamp, created, aggregate_id = fields["after"]
    return ListingOptions(
        event_store_id=event_store_id,
        limit=fields["limit"],
        initial_event_after=fields["initial_event_after"],
        initial_event_before=fields["initial_event_before"],
        reverse=fields["reverse"],
        after_key=ListedAggregate(timestamp, created, aggregate_id),
    )


def _token_fields(token: str) -> dict[str, Any]:
    """The fields inside ``token``, each checked for its type and range."""
    if token.count(".") != 1:
        raise InvalidPageTokenError(token, "it does not have the shape of a page token")
    encoded, checksum = token.split(".")
    try:
        # ``validate``: a character outside the alphabet is refused, not silently dropped.
        body = base64.b64decode(encoded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPageTokenError(token, "it does not decode") from None
    if _checksum(body) != checksum:
        raise InvalidPageTokenError(token, "it was edited or truncated (its checksum does not match)")
    # The checksum is no secret: a forged token can pass it, so every field is checked below.
    try:
        fields = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidPageTokenError(token, "it does not decode") from None
    if not isinstance(fields, dict) or set(fields) != TOKEN_FIELDS:
        raise InvalidPageTokenError(token, "it does not hold the fields of a page token")
    problem = _field_problem(fields)
    if problem is not None:
        raise InvalidPageTokenError(token, problem)
    return fields


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _field_problem(fields: dict[str, Any]) -> str | None:
    """What is wrong with a token's fields, or ``None``."""
    if not isinstance(fields["adapter"], str) or not isinstance(fields["event_store_id"], str):
        return "its adapter and event store must be str"
    limit = fields["limit"]
    # A token is only issued after a page of at least one row: its limit is never 0 (nor, as a
    # negative slice would count from the end, below 0).
    if limit is not None and not (_is_int(limit) and limit >= 1):
        return f"its limit must be None or an int >= 1, not {quote(limit)}"
    for name in ("initial_event_after", "initial_event_before"):
        if fields[name] is not None and not isinstance(fields[name], str):
            return f"its {name} must be None or a str"
    if not isinstance(fields["reverse"], bool):
        return "its reverse must be True or False"
    after = fields["after"]
    if not (
        isinstance(after, list)
        and len(after) == 3
        and isinstance(after[0], str)
        and _is_int(after[1])
        and after[1] >= 0
        and isinstance(after[2], str)
    ):
        return "its position must be [timestamp: str, created: int >= 0, aggregate_id: str]"
    return None
