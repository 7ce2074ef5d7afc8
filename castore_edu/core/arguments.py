"""Checks that public constructors and functions run on their arguments, before anything else.

A wrong argument should fail where it is passed, with a message that names it, rather than
later and far away (a channel that learns at its first publish that its "event stores" are
strings, a relay whose ``poll_interval="1"`` breaks the loop it runs in). Each check raises:

- ``TypeError`` when the argument is the wrong *kind* of thing (``None`` for a list, a str for a
  number, ``1`` for a bool);
- ``ValueError`` when it is the right kind with a wrong *value* (an empty id, a negative delay).

Every message reads ``<name> must be <what was expected>, got <what was passed>``, and some add
a hint for a slip a learner is likely to make. What was passed is quoted briefly: an argument
can be huge, and a message is meant to be read.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a type only: core does not depend on storage
    from castore_edu.core.event_store import EventStore

QUOTE_LIMIT = 40


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)``, cut to ``limit`` characters (with ``...``) so a message stays short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def got(value: object) -> str:
    """What was passed, for a message: its (short) repr and, unless obvious, its type."""
    if value is None or isinstance(value, bool | int | float | str):
        return quote(value)
    return f"{quote(value)} (a {type(value).__name__})"


def _with_hint(message: str, hint: str | None) -> str:
    return message if hint is None else f"{message}. Hint: {hint}"


def require_str(name: str, value: object, *, hint: str | None = None) -> str:
    """``value``, checked to be a non-empty str."""
    if not isinstance(value, str):
        raise TypeError(_with_hint(f"{name} must be a non-empty str, got {got(value)}", hint))
    if not value:
        raise ValueError(_with_hint(f"{name} must be a non-empty str, got ''", hint))
    return value


def require_bool(name: str, value: object, *, may_be_none: bool = False) -> None:
    """Refuse a flag that is not ``True`` or ``False`` (nor ``None``, where that means "the
    default"): ``force="no"`` is a true string, and reading it as true would overwrite an event
    the caller meant to keep."""
    if isinstance(value, bool) or (may_be_none and value is None):
        return
    expected = "True, False or None" if may_be_none else "True or False"
    raise TypeError(f"{name} must be {expected}, got {got(value)}")


def require_callable(name: str, value: object, *, hint: str | None = None) -> None:
    """Refuse a ``value`` that cannot be called."""
    if not callable(value):
        raise TypeError(_with_hint(f"{name} must be callable (a function), got {got(value)}", hint))


def require_int(name: str, value: object, *, minimum: int) -> int:
    """``value``, checked to be an int ``>= minimum``.

    ``bool`` is a subclass of ``int`` in Python, so ``True`` would pass as ``1``: it is refused.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {got(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return value


def require_duration(name: str, value: object, *, unit: str = "seconds", positive: bool = False) -> float:
    """``value``, checked to be a finite number of ``unit``, ``>= 0`` (``> 0`` if ``positive``).

    A str such as ``"1"`` is the likely slip (read from a command line or a config file).
    """
    expected = f"a number of {unit} " + ("> 0" if positive else ">= 0")
    if isinstance(value, bool) or not isinstance(value, int | float):
        hint = "convert it first, e.g. float(text)" if isinstance(value, str) else None
        raise TypeError(_with_hint(f"{name} must be {expected}, got {got(value)}", hint))
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def require_event_store(name: str, value: object, *, hint: str | None = None) -> EventStore:
    """``value``, checked to be an event store: an ``EventStore``, or a store that wraps one (a
    ``ConnectedEventStore``), recognised by its ``event_store_id`` and ``reducer``.

    Duck typing, so that a wrapper needs no common base class; a str (the store's *id* instead of
    the store) is the likely slip, and gets a hint.
    """
    if isinstance(value, str):
        hint = hint or f"pass the event store object itself, not its id {quote(value)}"
    store_id = getattr(value, "event_store_id", None)
    if not isinstance(store_id, str) or not callable(getattr(value, "reducer", None)):
        raise TypeError(_with_hint(f"{name} must be an event store, got {got(value)}", hint))
    return value  # type: ignore[return-value]  # an EventStore for all a caller can tell


def require_event_stores(name: str, value: object) -> list[EventStore]:
    """``value``, checked to be a list (or any iterable but a str) of event stores."""
    if isinstance(value, str) or not _is_iterable(value):
        raise TypeError(f"{name} must be a list of event stores, got {got(value)}")
    items = list(value)  # type: ignore[call-overload]  # iterable, as just checked
    return [require_event_store(f"{name}[{index}]", item) for index, item in enumerate(items)]


def _is_iterable(value: object) -> bool:
    try:
        iter(value)  # type: ignore[call-overload]  # the question asked
    except TypeError:
        return False
    return True
