"""Replay ("dam", after Castore's lib-dam): pour past events into a channel again (notebooks 03, 08).

Every message is published with ``replay=True``, so consumers can tell history from real time.
"""

from castore_edu.replay.dam import (
    PouredAggregateIds,
    PouredCollectionEvents,
    PouredEvents,
    PouredStoreEvents,
    ScanInfo,
    pour_aggregate_events,
    pour_event_store_aggregate_ids,
    pour_event_store_collection_events,
    pour_event_store_events,
)

__all__ = [
    "PouredAggregateIds",
    "PouredCollectionEvents",
    "PouredEvents",
    "PouredStoreEvents",
    "ScanInfo",
    "pour_aggregate_events",
    "pour_event_store_aggregate_ids",
    "pour_event_store_collection_events",
    "pour_event_store_events",
]
