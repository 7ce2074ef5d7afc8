"""The event store explorer: pick an aggregate, slide through its versions, travel in time.

At every version the explorer shows two things side by side: the event stored at that version,
and the aggregate *as it was* right after it. That second part is the whole promise of event
sourcing — the past is not overwritten, it is replayed — and it is exactly what
``event_store.get_aggregate(aggregate_id, max_version=v)`` returns.

Why everything is loaded up front: widget callbacks are plain synchronous functions, called by
ipywidgets when a slider moves; they cannot ``await`` a storage read. So
:func:`load_histories` reads the events of every listed aggregate once (async, in a notebook cell),
and the explorer then time-travels by folding the preloaded events up to the chosen version with
the store's own reducer — which gives the same aggregate as ``get_aggregate(max_version=...)``
(the tests check that they agree). What was loaded does not follow the store: push more events,
load again.

The logic lives in :class:`LoadedHistories` and the two ``*_html`` functions; the
:class:`EventStoreExplorer` widget only wires a dropdown, a slider and two buttons to them, so
tests drive it headlessly by setting ``.value`` and calling ``.click()``.
"""

from __future__ import annotations

import dataclasses
import html
import json
from collections.abc import Iterable, Mapping
from typing import Any

import ipywidgets as widgets

from castore_edu.core.event_store import EventStore
from castore_edu.core.events import EventDetail

AggregateKey = tuple[str, str]  # (event_store_id, aggregate_id)


class LoadedHistories:
    """The events of some aggregates, loaded once, and the stores that know how to fold them."""

    def __init__(
        self,
        event_stores: Iterable[EventStore],
        histories: Mapping[AggregateKey, Iterable[EventDetail]],
    ) -> None:
        self.event_stores = {store.event_store_id: store for store in event_stores}
        self.histories: dict[AggregateKey, tuple[EventDetail, ...]] = {
            key: tuple(sorted(events, key=lambda event: event.version)) for key, events in histories.items()
        }
        for event_store_id, _ in self.histories:
            if event_store_id not in self.event_stores:
                raise ValueError(f"No event store {event_store_id!r} to fold its aggregates")

    def aggregate_keys(self) -> list[AggregateKey]:
        """Every aggregate, in the order it was loaded (store by store, oldest first)."""
        return list(self.histories)

    def versions(self, key: AggregateKey) -> list[int]:
        return [event.version for event in self.histories[key]]

    def event_at(self, key: AggregateKey, version: int) -> EventDetail | None:
        """The event stored at ``version`` (``None`` if that version holds none)."""
        return next((event for event in self.histories[key] if event.version == version), None)

    def aggregate_at(self, key: AggregateKey, version: int) -> Any:
        """The aggregate right after ``version``: the reducer folded over events 1..version."""
        event_store_id, _ = key
        events = [event for event in self.histories[key] if event.version <= version]
        return self.event_stores[event_store_id].build_aggregate(events)


async def load_histories(*event_stores: EventStore, page_size: int = 100) -> LoadedHistories:
    """Read every aggregate of ``event_stores`` (all pages of ``list_aggregate_ids``) and their events."""
    histories: dict[AggregateKey, list[EventDetail]] = {}
    for store in event_stores:
        page_token: str | None = None
        while True:
            page = await store.list_aggregate_ids(limit=page_size, page_token=page_token)
            for entry in page.aggregate_ids:
                histories[(store.event_store_id, entry.aggregate_id)] = await store.get_events(
                    entry.aggregate_id
                )
            page_token = page.next_page_token
            if page_token is None:
                break
    return LoadedHistories(event_stores, histories)


# -- rendering: pure functions from values to HTML ------------------------------------------


def _cell(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict | list | tuple):
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)  # tuples show as lists
    else:
        text = repr(value)
    return html.escape(text)


def _table(title: str, rows: Iterable[tuple[str, Any]]) -> str:
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(name)}</th><td>{_cell(value)}</td></tr>"
        for name, value in rows
    )
    return f"<b>{html.escape(title)}</b><table>{body}</table>"


def event_html(event: EventDetail | None) -> str:
    """The event as a two-column table (or a note that the version holds no event).

    ``schema_version`` shows only when it is not 1, as in the event's repr: the event of a type
    that never evolved (the whole course before notebook 13) has nothing to say about it."""
    if event is None:
        return "<b>Event</b><p><i>no event at this version</i></p>"
    rows = [
        (field.name, getattr(event, field.name))
        for field in dataclasses.fields(event)
        if field.name != "schema_version" or event.schema_version != 1
    ]
    return _table("Event", rows)


def aggregate_html(aggregate: Any) -> str:
    """The aggregate as a two-column table: dataclass fields, mapping items, or its repr."""
    if aggregate is None:
        return "<b>Aggregate</b><p><i>does not exist yet</i></p>"
    if dataclasses.is_dataclass(aggregate) and not isinstance(aggregate, type):
        rows = [(field.name, getattr(aggregate, field.name)) for field in dataclasses.fields(aggregate)]
    elif isinstance(aggregate, Mapping):
        rows = [(str(name), value) for name, value in aggregate.items()]
    else:
        rows = [("value", aggregate)]
    return _table(f"Aggregate ({type(aggregate).__name__})", rows)


# -- the widget -------------------------------------------------------------------------------


class EventStoreExplorer:
    """A dropdown of aggregates, a version slider with ◀ ▶ buttons, the event and the aggregate.

    Display it by making it the last expression of a cell. The widgets are public attributes
    (``aggregate``, ``version``, ``previous``, ``next``, ``event_view``, ``aggregate_view``)
    so that code — a test, or a notebook cell checking what the explorer shows — can drive it.
    """

    def __init__(self, loaded: LoadedHistories) -> None:
        self.loaded = loaded
        keys = loaded.aggregate_keys()
        self.aggregate = widgets.Dropdown(
            description="Aggregate",
            options=[
                (f"{store_id} · {aggregate_id}", (store_id, aggregate_id)) for store_id, aggregate_id in keys
            ],
        )
        self.version = widgets.IntSlider(description="Version", min=0, max=0, value=0, continuous_update=True)
        self.previous = widgets.Button(description="◀ previous", layout=widgets.Layout(width="8em"))
        self.next = widgets.Button(description="next ▶", layout=widgets.Layout(width="8em"))
        self.title = widgets.HTML()
        self.event_view = widgets.HTML(layout=widgets.Layout(width="50%"))
        self.aggregate_view = widgets.HTML(layout=widgets.Layout(width="50%"))
        self.widget = widgets.VBox(
            [
                self.aggregate,
                widgets.HBox([self.previous, self.version, self.next]),
                self.title,
                widgets.HBox([self.event_view, self.aggregate_view]),
            ]
        )

        self.aggregate.observe(lambda _change: self._select_aggregate(), names="value")
        self.version.observe(lambda _change: self._render(), names="value")
        self.previous.on_click(lambda _button: self.step(-1))
        self.next.on_click(lambda _button: self.step(+1))
        self._select_aggregate()

    def __repr__(self) -> str:
        return f"EventStoreExplorer({len(self.loaded.aggregate_keys())} aggregates)"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # The widget view, with a short, stable text form (the default one lists every child).
        bundle: dict[str, Any] = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)
        return bundle

    @property
    def selected(self) -> AggregateKey | None:
        selected: AggregateKey | None = self.aggregate.value
        return selected

    def step(self, delta: int) -> None:
        """Move the slider ``delta`` versions, staying within the aggregate's versions."""
        self.version.value = min(max(self.version.value + delta, self.version.min), self.version.max)

    def _select_aggregate(self) -> None:
        """A new aggregate: stretch the slider over its versions and show its latest state."""
        key = self.selected
        versions = self.loaded.versions(key) if key is not None else []
        first, last = (versions[0], versions[-1]) if versions else (0, 0)
        # Widen before narrowing: ipywidgets refuses min > max at every single step.
        self.version.max = max(self.version.max, last)
        self.version.min = first
        self.version.max = last
        self.version.value = last
        self._render()

    def _render(self) -> None:
        key, version = self.selected, self.version.value
        disabled = key is None
        for control in (self.aggregate, self.version):
            control.disabled = disabled
        self.previous.disabled = disabled or version <= self.version.min
        self.next.disabled = disabled or version >= self.version.max
        if key is None:
            self.title.value = (
                "<p><i>No aggregate to explore: push some events, then load them again.</i></p>"
            )
            self.event_view.value = self.aggregate_view.value = ""
            return
        store_id, aggregate_id = key
        self.title.value = (
            f"<p><b>{html.escape(store_id)} · {html.escape(aggregate_id)}</b>: "
            f"version {version} of {self.version.max}</p>"
        )
        self.event_view.value = event_html(self.loaded.event_at(key, version))
        self.aggregate_view.value = aggregate_html(self.loaded.aggregate_at(key, version))
