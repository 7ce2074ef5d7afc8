"""The side-by-side experiment: a connected event store and a relay under the same faults.

One seeded workload of ``pushes`` Pokémon events runs twice, each time against fresh in-memory
storage and a fresh bus whose adapter fails on the same seeded :class:`~castore_edu.testing.faults.FaultSchedule`
(publish number ``n`` meets the same fault in both runs):

(a) **connected**: a :class:`~castore_edu.connected.connected_event_store.ConnectedEventStore` stores and publishes each
    event. A caller that gets an error moves on (retrying the push would only hit
    ``EventAlreadyExistsError``: the event *is* stored); a crash kills the "process" between the
    store and the publish, and the next push runs in a new one.
(b) **relay**: a plain event store stores each event, and a :class:`~castore_edu.reliability.relay.Relay` then
    steps through the log; a failed step is retried, a crashed relay is replaced by a new one on
    the same checkpoints.

On the bus, a recorder counts every delivery and a :class:`~castore_edu.reliability.idempotency.LevelBoard`
read model (behind its idempotent handler) follows the messages. Each path reports how many
events were stored, how many messages were delivered, lost (stored, never delivered) and
duplicated (delivered more than once), and whether the read model ended equal to the store.

Everything runs on in-memory adapters with no retry delays and no latency: no real time passes,
so the experiment is fast, and the same arguments always give the same result.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from castore_edu.connected.connected_event_store import ConnectedEventStore
from castore_edu.core.clock import stepping_clock
from castore_edu.core.event_store import EventStore
from castore_edu.core.events import EventDetail
from castore_edu.course.pokedex import POKEMONS, pokemon_appeared, pokemon_leveled_up, pokemons_event_store
from castore_edu.course.read_models import LevelBoard
from castore_edu.messaging.channels import NotificationMessageBus
from castore_edu.messaging.delivery import TaskContext
from castore_edu.messaging.in_memory_bus import InMemoryMessageBusAdapter
from castore_edu.reliability.idempotency import MessageKey, message_key
from castore_edu.reliability.relay import InMemoryCheckpointStore, Relay
from castore_edu.storage.in_memory import InMemoryEventStorageAdapter
from castore_edu.storage.protocol import require_ordered_log
from castore_edu.testing.faults import FaultSchedule, FaultyChannelAdapter, InjectedFault, SimulatedCrash

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

POKEMON_NAMES = ("Pikachu", "Bulbasaur", "Charmander", "Squirtle", "Eevee", "Snorlax", "Mew", "Onix")


def seeded_workload(pushes: int, seed: int = 0, *, aggregates: int = 8) -> list[EventDetail]:
    """``pushes`` events of the course's ``POKEMONS`` store over up to ``aggregates`` Pokémon:
    each push picks one at random, which appears (at a random level) the first time it is picked
    and levels up every later time."""
    if pushes < 0 or aggregates < 1:
        raise ValueError("pushes must be >= 0 and aggregates >= 1")
    rng = random.Random(f"workload/{seed}")
    versions: dict[str, int] = {}
    events = []
    for _ in range(pushes):
        number = rng.randrange(aggregates)
        name = POKEMON_NAMES[number % len(POKEMON_NAMES)]
        aggregate_id = name.lower() if number < len(POKEMON_NAMES) else f"{name.lower()}-{number}"
        version = versions[aggregate_id] = versions.get(aggregate_id, 0) + 1
        if version == 1:
            events.append(pokemon_appeared(aggregate_id, name=name, level=rng.randint(1, 20)))
        else:
            events.append(pokemon_leveled_up(aggregate_id, version=version))
    return events


@dataclass(frozen=True)
class FaultRates:
    """Per-publish fault probabilities (their sum must not exceed 1).

    ``fail``: the publish raises, nothing is delivered. ``lose_ack``: the message is delivered but
    the publisher gets an error. ``duplicate``: delivered twice. ``crash``: the publishing process
    dies before delivering.
    """

    fail: float = 0.0
    lose_ack: float = 0.0
    duplicate: float = 0.0
    crash: float = 0.0

    def schedule(self, seed: int) -> FaultSchedule:
        """The fault schedule of this seed; built afresh, it makes the same decisions every time."""
        return FaultSchedule.seeded(
            f"faults/{seed}",
            fail=self.fail,
            fail_after=self.lose_ack,
            duplicate=self.duplicate,
            crash=self.crash,
        )


@dataclass(frozen=True)
class PathResult:
    """What one path did with the workload."""

    path: str
    stored_events: int
    delivered_messages: int  # deliveries, duplicates included
    lost_messages: int  # stored events never delivered
    duplicated_messages: int  # deliveries beyond the first of each message
    read_model_equals_store: bool
    errors_seen: int  # errors the publisher saw (push_event raised, a relay step failed)
    crashes: int  # simulated process crashes

    def counts(self) -> dict[str, int]:
        return {
            "stored events": self.stored_events,
            "delivered messages": self.delivered_messages,
            "lost messages": self.lost_messages,
            "duplicated messages": self.duplicated_messages,
        }


@dataclass(frozen=True)
class ExperimentResult:
    pushes: int
    seed: int
    rates: FaultRates
    connected: PathResult
    relay: PathResult

    def rows(self) -> list[tuple[str, Any, Any]]:
        """One row per measure: its name, the connected store's value, the relay's value."""
        return [
            (
                field.name.replace("_", " "),
                getattr(self.connected, field.name),
                getattr(self.relay, field.name),
            )
            for field in fields(PathResult)[1:]  # every field but the path's name
        ]

    def table(self) -> str:
        """The two paths side by side, as plain text."""
        rows = [("", "connected store", "relay")]
        rows += [(name, str(connected), str(relay)) for name, connected, relay in self.rows()]
        width = max(len(row[0]) for row in rows)
        return "\n".join(f"{a:<{width}}  {b:>15}  {c:>6}" for a, b, c in rows)


class _Consumers:
    """What listens on a path's bus: a recorder of every delivery, and the read model."""

    def __init__(self, bus_adapter: InMemoryMessageBusAdapter) -> None:
        self.deliveries: list[MessageKey] = []
        self.board = LevelBoard()
        bus_adapter.on({}, self.record)
        bus_adapter.on({}, self.board.handler)

    async def record(self, message: Any, context: TaskContext) -> None:
        self.deliveries.append(message_key(message))


@dataclass
class _Path:
    """A fresh store, bus and consumers, with the fault schedule between the bus and its adapter."""

    store: EventStore
    bus: NotificationMessageBus
    bus_adapter: InMemoryMessageBusAdapter
    faulty: FaultyChannelAdapter
    consumers: _Consumers

    @classmethod
    def build(cls, schedule: FaultSchedule) -> _Path:
        store = pokemons_event_store(InMemoryEventStorageAdapter(clock=stepping_clock()))
        bus = NotificationMessageBus(message_bus_id="POKEMON_NEWS", source_event_stores=[store])
        bus_adapter = InMemoryMessageBusAdapter.attach_to(bus, retry_attempts=0, retry_delay_ms=0)
        consumers = _Consumers(bus_adapter)
        return cls(store, bus, bus_adapter, FaultyChannelAdapter.wrap(bus, schedule), consumers)

    async def result(self, name: str, errors: int, crashes: int) -> PathResult:
        await self.faulty.release_held()
        await self.bus_adapter.wait_idle()
        adapter = require_ordered_log(self.store.get_event_storage_adapter())
        stored = {message_key(entry) for entry in await adapter.read_log()}
        delivered = Counter(self.consumers.deliveries)
        levels = {}
        for aggregate_id in {key[1] for key in stored}:
            levels[aggregate_id] = (await self.store.get_aggregate(aggregate_id)).aggregate.level
        return PathResult(
            path=name,
            stored_events=len(stored),
            delivered_messages=sum(delivered.values()),
            lost_messages=len(stored - set(delivered)),
            duplicated_messages=sum(count - 1 for count in delivered.values()),
            read_model_equals_store=self.consumers.board.levels == levels,
            errors_seen=errors,
            crashes=crashes,
        )


async def run_connected(events: list[EventDetail], schedule: FaultSchedule) -> PathResult:
    """Path (a): push every event through a connected store."""
    path = _Path.build(schedule)
    connected = ConnectedEventStore(path.store, path.bus)
    errors = crashes = 0
    for event in events:
        try:
            await connected.push_event(event)
        except InjectedFault:
            errors += 1  # stored, and the caller moves on: retrying would hit EventAlreadyExistsError
        except SimulatedCrash:
            crashes += 1  # the process died after storing; the next push runs in a new one
    return await path.result("connected store", errors, crashes)


async def run_relay(
    events: list[EventDetail], schedule: FaultSchedule, *, batch_size: int = 10
) -> PathResult:
    """Path (b): push every event to a plain store, with a relay stepping after each push, then
    step until the relay has caught up."""
    path = _Path.build(schedule)
    adapter = path.store.get_event_storage_adapter()
    checkpoints = InMemoryCheckpointStore()  # outlives each relay "process"

    def new_relay() -> Relay:
        return Relay(adapter, {POKEMONS: path.bus}, checkpoints=checkpoints, batch_size=batch_size)

    relay = new_relay()
    errors = crashes = 0

    async def step() -> None:
        nonlocal relay, errors, crashes
        try:
            await relay.step()
        except InjectedFault:
            errors += 1  # the checkpoint stayed before the failed message: the next step retries it
        except SimulatedCrash:
            crashes += 1  # unsaved progress is forgotten; a new relay starts from the checkpoint
            relay = new_relay()

    for event in events:
        await path.store.push_event(event)
        await step()
    # Fault rates below 1 make each step succeed eventually; the bound only guards against a bug.
    for _ in range(1000 + 100 * len(events)):
        if await relay.lag() == 0:
            break
        await step()
    else:
        raise RuntimeError("the relay did not catch up")
    return await path.result("relay", errors, crashes)


async def run_experiment(
    *, pushes: int = 100, rates: FaultRates = FaultRates(fail=0.1), seed: int = 0, aggregates: int = 8
) -> ExperimentResult:
    """Run the same seeded workload and fault schedule through both paths."""
    events = seeded_workload(pushes, seed, aggregates=aggregates)
    return ExperimentResult(
        pushes=pushes,
        seed=seed,
        rates=rates,
        connected=await run_connected(events, rates.schedule(seed)),
        relay=await run_relay(events, rates.schedule(seed)),
    )


# The chart's two panels: a title and the counts (keys of PathResult.counts()) each one shows.
PANELS = (
    ("stored and delivered", ("stored events", "delivered messages")),
    ("lost and duplicated (its own scale)", ("lost messages", "duplicated messages")),
)
PATH_COLOURS = {"connected store": "#d95f02", "relay": "#1b9e77"}


def _draw_panel(axes: Axes, paths: tuple[PathResult, PathResult], names: tuple[str, ...]) -> None:
    """Grouped bars: one group per count in ``names``, one bar per path, each bar labelled."""
    from matplotlib.ticker import MaxNLocator

    width = 0.38
    for offset, path in zip((-width / 2, width / 2), paths, strict=True):
        counts = path.counts()
        verdict = "read model = store" if path.read_model_equals_store else "read model ≠ store"
        bars = axes.bar(
            [i + offset for i in range(len(names))],
            [counts[name] for name in names],
            width,
            label=f"{path.path} ({verdict})",
            color=PATH_COLOURS[path.path],
        )
        axes.bar_label(bars, padding=2, fontsize=8)
    axes.set_xticks(range(len(names)), names, fontsize=8)
    highest = max(path.counts()[name] for path in paths for name in names)
    axes.set_ylim(0, 1.2 * max(highest, 1))  # headroom for the labels; 0 to 1.2 when all are 0
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.5 message


def plot_experiment(result: ExperimentResult, figure: Figure | None = None) -> Figure:
    """Both paths' counts as two bar panels side by side, each on its own y scale: what was stored
    and delivered (hundreds), and what went wrong (a handful lost or duplicated). On one scale the
    bars that tell the designs apart, 21 lost against 0 say, would be slivers beside the
    300-high ones.

    Drawn on ``figure`` (in a notebook, ``plt.figure()``, which ``plt.show()`` then shows), or
    on a new figure that pyplot does not keep (to save it)."""
    from matplotlib.figure import Figure  # the core stays stdlib-only; plotting is optional

    if figure is None:
        figure = Figure(figsize=(7.5, 3.6), layout="constrained")
    paths = (result.connected, result.relay)
    for axes, (title, names) in zip(figure.subplots(1, len(PANELS)), PANELS, strict=True):
        _draw_panel(axes, paths, names)
        axes.set_title(title, fontsize=9)
        axes.set_ylabel("count")
    rates = ", ".join(
        f"{field.name.replace('_', ' ')} {getattr(result.rates, field.name):.0%}"
        for field in fields(FaultRates)
    )
    figure.suptitle(f"{result.pushes} pushes, seed {result.seed} — faults per publish: {rates}", fontsize=9)
    handles, labels = figure.axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8)
    return figure
