"""The connected event store: an event store that publishes what it stores (notebooks 04–06).

The whole idea fits in one short module, ``connected_event_store``: store the event, then
publish it on a channel. Notebook 07 shows what that "then" costs.
"""

from castore_edu.connected.connected_event_store import ConnectedEventStore, publish_pushed_event

__all__ = ["ConnectedEventStore", "publish_pushed_event"]
