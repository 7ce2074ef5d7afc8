"""Listing an event store's aggregates, one page at a time — shared by both adapters.

Each adapter only has to produce :class:`ListedAggregate` rows; the ordering, the inclusive
time bounds, ``reverse``, ``limit`` and the page token are decided here, once, so the two
adapters cannot drift apart.

Order: by the timestamp of each aggregate's first event; aggregates created at the same
timestamp keep the order in which they were created (``created``, a number that grows).

A page token is opaque to callers. Inside it is the listing's options and the sort key of the
last aggregate returned; the next page starts strictly after that key, whether or not that
aggregate is still in the listing. A short checksum and the adapter's name guard against a
token that was edited, truncated or made by another adapter: those raise ``ValueError``.
(The checksum catches accidents, it is not a security feature.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from castore_edu.core.events import AggregateIdEntry, AggregateIdsPage
from castore_edu.storage.protocol import check_limit


class ListedAggregate(NamedTuple):
    """One aggregate as an adapter sees it; tuples compare in listing order."""

    initial_event_timestamp: str
    created: int
    aggregate_id: str


@dataclass(frozen=True)
class ListingOptions:
    limit: int | None = None
    initial_event_after: str | None = None
    initial_event_before: str | None = None
    reverse: bool = False
    after_key: ListedAggregate | None = None


def resolve_options(
    adapter_kind: str,
    *,
    limit: int | None,
    page_token: str | None,
    initial_event_after: str | None,
    initial_event_before: str | None,
    reverse: bool | None,
) -> ListingOptions:
    """Merge explicit options with those carried by ``page_token``; explicit ones win."""
    check_limit(limit)
    for name, bound in (
        ("initial_event_after", initial_event_after),
        ("initial_event_before", initial_event_before),
    ):
        if bound is not None and not isinstance(bound, str):
            raise TypeError(f"{name} must be a str timestamp or None, got {bound!r}")
    carried = _decode_token(adapter_kind, page_token) if page_token is not None else ListingOptions()
    return ListingOptions(
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


def _checksum(adapter_kind: str, body: bytes) -> str:
    return hashlib.sha256(adapter_kind.encode() + b"\0" + body).hexdigest()[:16]


def _encode_token(adapter_kind: str, options: ListingOptions, last: ListedAggregate) -> str:
    body = json.dumps(
        {
            "limit": options.limit,
            "initial_event_after": options.initial_event_after,
            "initial_event_before": options.initial_event_before,
            "reverse": options.reverse,
            "after": list(last),
        },
        separators=(",", ":"),
    ).encode()
    return base64.urlsafe_b64encode(body).decode() + "." + _checksum(adapter_kind, body)


def _decode_token(adapter_kind: str, token: str) -> ListingOptions:
    invalid = ValueError(f"Invalid page token for {adapter_kind}: {token!r}")
    if not isinstance(token, str) or token.count(".") != 1:
        raise invalid
    encoded, checksum = token.split(".")
    try:
        body = base64.urlsafe_b64decode(encoded.encode())
        fields: dict[str, Any] = json.loads(body)
    except (binascii.Error, ValueError):
        raise invalid from None
    if _checksum(adapter_kind, body) != checksum:
        raise invalid
    timestamp, created, aggregate_id = fields["after"]
    return ListingOptions(
        limit=fields["limit"],
        initial_event_after=fields["initial_event_after"],
        initial_event_before=fields["initial_event_before"],
        reverse=fields["reverse"],
        after_key=ListedAggregate(timestamp, created, aggregate_id),
    )
