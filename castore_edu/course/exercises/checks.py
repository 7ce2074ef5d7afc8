"""The self-checks of the workshop exercises (``notebooks/exercises/``), one per exercise.

Each ``check_...`` takes the learner's code (a function or a class), runs it against a small,
fresh Pokédex — the course's domain, with its deterministic clock — and compares what it *does*
with what the exercise asks: the aggregates it builds, the events it stores, the messages it
publishes, the reads it makes. It never shows a solution: a failure says what was expected, what
happened, and gives a hint (see :mod:`castore_edu.course.exercises.feedback`); a success prints one line.

Every check is a coroutine, so a notebook cell reads ``await check_...(...)`` whatever the
exercise: many exercises are asynchronous, and one way to call them all is easier to remember.

The checks provoke what the exercises are about instead of hoping for it: a storage wrapper that
yields on every call makes concurrent commands collide, another one lets a rival writer take a
trainer's next version between the learner's read and write, a fault schedule fails one publish
of the relay, a miniature server log commits a transaction in the middle of the learner's read,
a broker that redelivers whatever was not acknowledged meets a worker that dies mid-message.
They also close the doors a wrong answer passes through by luck: a redelivered message is a new,
equal object (as from a real broker); a replay's listeners run only once someone waits for the bus
to be idle; the relay's log has gaps, so a count is not a position; a third store has events of
the same types, so a filter or a key that forgets the store shows.
None needs a server. instructor/tests/test_exercises.py proves that every check fails on its stub and on plausible
wrong answers, and passes on the instructor's solution.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from castore_edu.connected.connected_event_store import ConnectedEventStore
from castore_edu.core.command import Command
from castore_edu.core.errors import EventAlreadyExistsError, is_event_already_exists_error
from castore_edu.core.event_store import EventStore
from castore_edu.core.events import EventDetail, EventType, LoggedEvent
from castore_edu.course.exercises.evolving_events import UPCASTER
from castore_edu.course.exercises.feedback import Exercise, attempt, expect, not_yet, passed
from castore_edu.course.exercises.read_models import PROJECTION_STEP
from castore_edu.course.exercises.snapshots import SNAPSHOT_READ
from castore_edu.course.pokedex import (
    POKEMON_CAUGHT,
    POKEMON_EVENT_TYPES,
    POKEMON_LEVELED_UP,
    POKEMONS,
    TRAINERS,
    Pokemon,
    Trainer,
    in_memory_pokedex,
    pokemon_appeared,
    pokemon_leveled_up,
    pokemon_reducer,
    tell_the_story,
    trainer_caught_pokemon,
    trainer_created,
)
from castore_edu.messaging.channels import MessageQueue, NotificationMessageBus, StateCarryingMessageChannel
from castore_edu.messaging.delivery import require_async_callable
from castore_edu.messaging.in_memory_bus import InMemoryMessageBusAdapter, check_filter_pattern
from castore_edu.messaging.messages import NotificationMessage
from castore_edu.reliability.relay import InMemoryCheckpointStore
from castore_edu.replay.dam import pour_event_store_events
from castore_edu.storage.in_memory import InMemoryEventStorageAdapter
from castore_edu.storage.protocol import EventStorageAdapter, require_ordered_log
from castore_edu.testing.faults import FaultSchedule, FaultyChannelAdapter, InjectedFault, SimulatedCrash
from castore_edu.testing.gaps import LogWithGaps
from castore_edu.testing.latency import SimulatedLatencyAdapter

REDUCER = Exercise(1, "Write a reducer")
COMMAND = Exercise(2, "Make a command retry on conflicts")
LISTENER = Exercise(3, "Listen on a bus, with a filter")
QUEUE = Exercise(4, "Feed a state-carrying queue without reads")
GROUP = Exercise(5, "Push an event group")
REPLAY = Exercise(6, "Build a read model by replaying the store")
IDEMPOTENT = Exercise(7, "Make a consumer idempotent")
RELAY = Exercise(8, "Make a relay resume from its checkpoint")
LOG_READER = Exercise(9, "Read a server's log without skipping a late commit")
ACK_AFTER_COMMIT = Exercise(10, "Acknowledge only after the read model committed")
EXERCISES = (
    REDUCER,
    COMMAND,
    LISTENER,
    QUEUE,
    GROUP,
    REPLAY,
    IDEMPOTENT,
    RELAY,
    LOG_READER,
    ACK_AFTER_COMMIT,
    PROJECTION_STEP,  # its check: castore_edu/course/exercises/read_models.py
    SNAPSHOT_READ,  # exercise 12, in its own module: castore_edu/course/exercises/snapshots.py
    UPCASTER,  # exercise 13: castore_edu/course/exercises/evolving_events.py
)

# The gym leaders' Pokémon: a store whose events have the same types as POKEMONS' (exercises 3, 7, 10).
GYM_POKEMONS = "GYM_POKEMONS"

# Exercise 1 adds an event to the course's domain: a trainer lets a Pokémon go.
TRAINER_RELEASED_POKEMON = EventType("TRAINER_RELEASED_POKEMON")  # payload: {"pokemon_id": str}


def trainer_released_pokemon(
    trainer_id: str, *, version: int, pokemon_id: str, timestamp: str | None = None
) -> EventDetail:
    return EventDetail(
        aggregate_id=trainer_id,
        version=version,
        type=TRAINER_RELEASED_POKEMON.type,
        timestamp=timestamp,
        payload={"pokemon_id": pokemon_id},
    )


def short(value: Any, limit: int = 110) -> str:
    """``repr(value)``, cut to fit on one line of a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- Exercise 1 ------------------------------------------------------------------------------


class _WatchedEventType(str):
    """An event's type that notices when it is compared with an :class:`EventType`.

    ``event.type == TRAINER_CREATED`` compares a str with an ``EventType``: never equal, so no
    branch of the reducer matches and the error comes later, from somewhere unrelated
    (``replace()`` of ``None``...). The check gives the reducer events whose type is this str,
    and names the real mistake when it sees that comparison.
    """

    compared_with_event_type = False

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EventType):
            self.compared_with_event_type = True
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = str.__hash__


def _raise(error: BaseException) -> None:
    raise error


async def _fold_one(
    ex: Exercise, reducer: Callable[[Any, EventDetail], Any], state: Any, event: EventDetail
) -> Any:
    """``reducer(state, event)``, refused if it compared the type with an EventType, changed the
    event, or made ``pokemon_ids`` something other than a tuple."""
    watched_type = _WatchedEventType(event.type)
    watched = dataclasses.replace(event, type=watched_type, payload=copy.deepcopy(event.payload))
    doing = f"your reducer (on {event.type})"
    outcome = await attempt(ex, doing, lambda: reducer(state, watched), allow=(Exception,))
    expect(
        not watched_type.compared_with_event_type,
        ex,
        f"your reducer compared event.type with an EventType (on {event.type}): a str never equals an EventType.",
        hint=f"compare with the EventType's name: event.type == {event.type}.type",
    )
    if isinstance(outcome, Exception):  # reported only now, once the comparison was looked at
        await attempt(ex, doing, lambda: _raise(outcome))
    expect(
        watched.payload == event.payload,
        ex,
        f"your reducer changed the payload of the event it was given (on {event.type}).",
        expected=short(event.payload),
        got=short(watched.payload),
        hint="read the payload (event.payload['...']), never change it: a stored event is history, "
        "and other readers fold the same event object.",
    )
    pokemon_ids = getattr(outcome, "pokemon_ids", ())
    expect(
        isinstance(pokemon_ids, tuple),
        ex,
        f"pokemon_ids is a {type(pokemon_ids).__name__}, not a tuple (on {event.type}).",
        got=short(outcome),
        hint="Trainer is a frozen dataclass: its pokemon_ids is a tuple, which nobody can change in place. "
        "Build a new tuple for each new state.",
    )
    return outcome


async def check_trainer_reducer(reducer: Callable[[Any, EventDetail], Any]) -> None:
    """Fold Misty's story — created, three catches, a release, an unknown event — with ``reducer``."""
    ex = REDUCER
    at = "2024-01-01T00:00:00.000Z"

    async def fold(state: Any, event: EventDetail) -> Any:
        return await _fold_one(ex, reducer, state, event)

    for trainer_id, name in (("misty", "Misty"), ("brock", "Brock")):
        created = await fold(None, trainer_created(trainer_id, name=name, timestamp=at))
        expect(
            created == Trainer(trainer_id, 1, name),
            ex,
            "TRAINER_CREATED folded into None should make a new trainer.",
            expected=short(Trainer(trainer_id, 1, name)),
            got=short(created),
            hint="build a Trainer from the event: its aggregate_id, its version and payload['name'].",
        )
    state = Trainer("misty", 1, "Misty")
    caught = ("staryu", "psyduck", "goldeen")
    for version, pokemon_id in enumerate(caught, start=2):
        event = trainer_caught_pokemon("misty", version=version, pokemon_id=pokemon_id, timestamp=at)
        state = await fold(state, event)
    all_three = Trainer("misty", 4, "Misty", caught)
    expect(
        state == all_three,
        ex,
        "after three TRAINER_CAUGHT_POKEMON events, the trainer should own the three Pokémon, in order.",
        expected=short(all_three),
        got=short(state),
        hint="add payload['pokemon_id'] at the end of pokemon_ids, and set version to the event's version.",
    )
    released = await fold(
        state, trainer_released_pokemon("misty", version=5, pokemon_id="psyduck", timestamp=at)
    )
    expect(
        state == all_three,
        ex,
        "your reducer changed the aggregate it was given.",
        hint="return a new aggregate (dataclasses.replace) and leave the old one alone: others may still use it.",
    )
    after_release = Trainer("misty", 5, "Misty", ("staryu", "goldeen"))
    expect(
        isinstance(released, Trainer) and released.pokemon_ids == after_release.pokemon_ids,
        ex,
        "after TRAINER_RELEASED_POKEMON, the trainer should no longer own that Pokémon.",
        expected=f"pokemon_ids == {after_release.pokemon_ids!r} (psyduck, the one in the middle, released)",
        got=short(released),
        hint="build a new tuple without the released id (payload['pokemon_id']), wherever it stands.",
    )
    expect(
        released == after_release,
        ex,
        "TRAINER_RELEASED_POKEMON should change pokemon_ids and the version, nothing else.",
        expected=short(after_release),
        got=short(released),
        hint="every event sets the aggregate's version to its own.",
    )
    waved = await fold(
        released, EventDetail(aggregate_id="misty", version=6, type="TRAINER_WAVED", timestamp=at)
    )
    after_wave = Trainer("misty", 6, "Misty", after_release.pokemon_ids)
    expect(
        waved == after_wave,
        ex,
        "an event type the reducer does not know should only move the version on.",
        expected=short(after_wave),
        got=short(waved),
        hint="newer writers may store types an older reader does not know (see trainer_reducer's docstring).",
    )
    passed(ex, "your reducer folds Misty's whole story, release and unknown event included.")


# -- Exercise 2 ------------------------------------------------------------------------------

WRITERS = 4


async def check_level_up_command(make_level_up_command: Callable[[EventStore], Command]) -> None:
    """Run ``WRITERS`` level-ups of Pikachu at once, on storage that yields at every call."""
    ex = COMMAND
    pokemons = in_memory_pokedex().pokemons
    await pokemons.push_event(pokemon_appeared("pikachu", name="Pikachu", level=5))
    await pokemons.push_event(pokemon_appeared("eevee", name="Eevee", level=4))
    # A zero-latency round trip still yields to the event loop: every writer reads before any writes.
    pokemons.event_storage_adapter = SimulatedLatencyAdapter(
        pokemons.get_event_storage_adapter(), latency_ms=0
    )

    command = await attempt(ex, "make_level_up_command(pokemons)", lambda: make_level_up_command(pokemons))
    expect(
        isinstance(command, Command), ex, "make_level_up_command should return a Command.", got=short(command)
    )

    async def level_up_together() -> list[Any]:
        outcomes = await asyncio.gather(
            *(command.handler({"pokemon_id": "pikachu"}, [pokemons]) for _ in range(WRITERS)),
            return_exceptions=True,
        )
        for outcome in outcomes:  # a conflict is this check's business; any other error is reported
            if isinstance(outcome, BaseException) and not is_event_already_exists_error(outcome):
                raise outcome
        return outcomes

    outcomes = await attempt(ex, "your command's handler", level_up_together)
    conflicts = sum(isinstance(outcome, BaseException) for outcome in outcomes)
    expect(
        conflicts == 0,
        ex,
        f"{conflicts} of {WRITERS} concurrent level-ups failed with EventAlreadyExistsError.",
        expected=f"all {WRITERS} succeed, one after the other",
        hint=f"each writer that loses a race runs again; with {WRITERS} writers, the last one can lose "
        f"{WRITERS - 1} times. How many retries does your Command allow?",
    )
    final = (await pokemons.get_aggregate("pikachu")).aggregate
    expect(
        final.level == 5 + WRITERS and final.version == 1 + WRITERS,
        ex,
        f"after {WRITERS} level-ups, Pikachu should be at level {5 + WRITERS} (version {1 + WRITERS}).",
        got=f"level {final.level}, version {final.version}",
        hint="the handler must read the Pokémon each time it runs (a retry runs it again) and push version + 1; "
        "never swallow EventAlreadyExistsError: the Command must see it to retry.",
    )
    levels = list(range(6, 6 + WRITERS))
    expect(
        all(isinstance(level, int) for level in outcomes) and sorted(outcomes) == levels,
        ex,
        "each call of the handler should return the Pokémon's new level.",
        expected=f"the levels {levels}, in any order",
        got=short(outcomes),
        hint="push_event returns a result; with prev_aggregate, its next_aggregate is the new state.",
    )
    # Another writer moves Pikachu on; then one more level-up of Pikachu, and one of Eevee.
    await pokemons.push_event(pokemon_leveled_up("pikachu", version=final.version + 1))
    for pokemon_id in ("pikachu", "eevee"):
        await _level_up_once_more(ex, command, pokemons, pokemon_id)
    passed(
        ex,
        f"{WRITERS} concurrent level-ups, every conflict retried on fresh state: Pikachu reached level {final.level}.",
    )


async def _level_up_once_more(ex: Exercise, command: Command, pokemons: EventStore, pokemon_id: str) -> None:
    """One more call of the handler, for ``pokemon_id``: it must level that Pokémon up, from its
    current state (another writer may have moved it on since the handler last ran)."""
    before = (await pokemons.get_aggregate(pokemon_id)).aggregate
    outcome = await attempt(
        ex,
        f"your command's handler (for {pokemon_id})",
        functools.partial(command.handler, {"pokemon_id": pokemon_id}, [pokemons]),
        allow=(EventAlreadyExistsError,),
    )
    expect(
        not isinstance(outcome, EventAlreadyExistsError),
        ex,
        f"after another writer levelled {before.name} up, your handler kept failing with EventAlreadyExistsError.",
        hint="the handler must read the Pokémon each time it runs: what it read on an earlier call is stale.",
    )
    after = (await pokemons.get_aggregate(pokemon_id)).aggregate
    expect(
        after.level == before.level + 1 and outcome == after.level,
        ex,
        f"a level-up of {before.name} ({{'pokemon_id': {pokemon_id!r}}}) should level {before.name} up once "
        "and return the new level.",
        expected=f"{before.name} at level {before.level + 1}, and {before.level + 1} returned",
        got=f"{before.name} at level {after.level}, {short(outcome)} returned",
        hint="level up the Pokémon that input['pokemon_id'] names.",
    )


# -- a bus adapter that watches the learner's handlers ------------------------------------------


class _SpyBusAdapter(InMemoryMessageBusAdapter):
    """An in-memory bus adapter that records what is published and what the learner registers.

    Each handler registered through :meth:`on` is wrapped: its calls are counted and its errors
    kept in ``errors`` rather than retried (the default retry waits 30 s) and logged.
    """

    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[Any, bool]] = []
        self.patterns: list[dict[str, Any]] = []
        self.deliveries = 0
        self.errors: list[BaseException] = []
        self._wrappers: list[tuple[Any, Any]] = []
        self.exercise: Exercise | None = None  # set by a check: a refused filter pattern is then a NotYet

    async def publish_message(self, message: Any, *, replay: bool = False) -> None:
        self.published.append((message, replay))
        await super().publish_message(message, replay=replay)

    def on(self, filter_pattern: Any, handler: Any) -> None:
        require_async_callable(handler, "handler")
        self._refuse_a_bad_pattern(filter_pattern)
        self.patterns.append(dict(filter_pattern))
        super().on(filter_pattern, self._watched(handler))

    def _refuse_a_bad_pattern(self, filter_pattern: Any) -> None:
        """The adapter's own refusal of a pattern, as a "Not yet" whose hint is its message.

        The message says what to write instead (``.type`` of an EventType...); shown as an error
        raised by the learner's function, it would come with "read the error" and be skimmed.
        """
        try:
            check_filter_pattern(filter_pattern)
        except (TypeError, ValueError) as error:
            if self.exercise is None:
                raise
            refusal = str(error)
        else:
            return
        # Raised here, after the except block, so that the NotYet carries no chained exception.
        not_yet(
            self.exercise,
            f"bus_adapter.on refused your filter pattern {short(filter_pattern)}.",
            hint=refusal,
        )

    def _watched(self, handler: Any) -> Any:
        """One wrapper per handler, so that registering it twice adds a pattern, as it should."""
        for known, known_wrapper in self._wrappers:
            if known == handler:
                return known_wrapper

        async def wrapper(message: Any, context: Any) -> None:
            self.deliveries += 1
            await self.before_delivery()
            try:
                await handler(message, context)
            except (Exception, asyncio.CancelledError) as error:
                task = asyncio.current_task()
                if isinstance(error, asyncio.CancelledError) and task is not None and task.cancelling():
                    raise  # the adapter itself is being stopped
                self.errors.append(error)  # reported by settle(), not retried for a minute

        self._wrappers.append((handler, wrapper))
        return wrapper

    async def before_delivery(self) -> None:
        """What a delivery waits for before it reaches the handler: nothing here (see the subclass)."""

    async def settle(self, exercise: Exercise) -> None:
        """Wait for every delivery; report the first error a learner's handler raised."""
        await self.wait_idle()
        if self.errors:
            error = self.errors[0]

            def raise_it() -> None:
                raise error

            await attempt(exercise, "your handler", raise_it)


class _LateBusAdapter(_SpyBusAdapter):
    """A spy whose handlers run only once someone awaits :meth:`wait_idle`.

    The in-memory bus starts each handler eagerly, inside ``publish_message``: a replay that
    returns without waiting for the bus to be idle finds its read model complete anyway — by
    luck. A broker's listener runs later, on its own time. Holding every delivery until
    ``wait_idle`` is awaited makes that visible, and costs a correct answer nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self._waited_for = asyncio.Event()

    async def before_delivery(self) -> None:
        await self._waited_for.wait()

    async def wait_idle(self, timeout: float | None = None) -> None:
        self._waited_for.set()
        await super().wait_idle(timeout)


# -- Exercise 3 ------------------------------------------------------------------------------


def _gym_pokemons() -> EventStore:
    """A third store on the bus: the gym leaders' Pokémon, whose events have the same types."""
    return EventStore(
        event_store_id=GYM_POKEMONS,
        event_types=POKEMON_EVENT_TYPES,
        reducer=pokemon_reducer,
        event_storage_adapter=InMemoryEventStorageAdapter(),
    )


async def check_level_up_listener(listen_for_level_ups: Callable[[Any, list[Any]], Any]) -> None:
    """Publish the story of both stores, a replay and one more level-up; compare the alerts."""
    ex = LISTENER
    pokedex = in_memory_pokedex()
    await tell_the_story(pokedex)
    gym = _gym_pokemons()
    await gym.push_event(pokemon_appeared("onix", name="Onix", level=12))
    await gym.push_event(pokemon_leveled_up("onix", version=2))  # a level-up, but not of POKEMONS
    bus = NotificationMessageBus(message_bus_id="POKEDEX_BUS", source_event_stores=[*pokedex.stores, gym])
    spy = _SpyBusAdapter.attach_to(bus)
    spy.exercise = ex
    alerts: list[Any] = []
    await attempt(ex, "listen_for_level_ups(bus_adapter, alerts)", lambda: listen_for_level_ups(spy, alerts))
    expect(
        bool(spy.patterns),
        ex,
        "nothing was registered on the bus adapter.",
        hint="call bus_adapter.on(filter_pattern, handler) with an async handler(message, context).",
    )
    for store in (*pokedex.stores, gym):  # everything that was stored, live
        for entry in await require_ordered_log(store.event_storage_adapter).read_log():
            await bus.publish_message(NotificationMessage(entry.event_store_id, entry.event))
    pikachu_events = await pokedex.pokemons.get_events("pikachu")
    await bus.publish_message(
        NotificationMessage(POKEMONS, pikachu_events[2]), replay=True
    )  # a replayed level-up
    result = await pokedex.pokemons.push_event(pokemon_leveled_up("charmander", version=2))
    await bus.publish_message(NotificationMessage(POKEMONS, result.event))
    await spy.settle(ex)

    expected = [("pikachu", 3), ("pikachu", 4), ("charmander", 2)]
    expect(
        ("onix", 2) not in alerts,
        ex,
        f"a level-up of the {GYM_POKEMONS} store raised an alert: only the POKEMONS store's level-ups should.",
        hint="other stores may have events of the same type: the filter pattern can name the event_store_id too.",
    )
    expect(
        alerts.count(("pikachu", 3)) <= 1,
        ex,
        "a replayed level-up raised an alert.",
        hint="alerts are for live messages; a listener receives replays only if its filter pattern asks for them.",
    )
    expect(
        alerts == expected,
        ex,
        "the alerts are not the Pokémon level-ups that were published.",
        expected=f"{expected}: (aggregate_id, version) of each, in order",
        got=short(alerts),
    )
    level_ups = len(expected)
    expect(
        spy.deliveries == level_ups,
        ex,
        f"your handler was called for {spy.deliveries} messages, but only {level_ups} were Pokémon level-ups.",
        hint="let the bus do the filtering: a filter pattern can name the event_store_id and the event_type.",
    )
    passed(ex, "your listener hears exactly the live level-ups of Pokémon, and the bus filters out the rest.")


# -- Exercise 4 ------------------------------------------------------------------------------


async def check_level_queue(
    connect_to_level_queue: Callable[[EventStore, Any], Any], level_up: Callable[[Any, Pokemon], Any]
) -> None:
    """Connect Pokémon to a queue, level Pikachu up three times, count the reads."""
    ex = QUEUE
    pokedex = in_memory_pokedex()
    await tell_the_story(pokedex)
    pokemons = pokedex.pokemons
    counting = SimulatedLatencyAdapter(pokemons.get_event_storage_adapter(), latency_ms=0)
    pokemons.event_storage_adapter = counting
    received: list[Any] = []

    async def worker(message: Any, context: Any) -> None:
        received.append(message)

    connected = await attempt(
        ex, "connect_to_level_queue(pokemons, worker)", lambda: connect_to_level_queue(pokemons, worker)
    )
    expect(
        isinstance(connected, ConnectedEventStore) and connected.event_store is pokemons,
        ex,
        "connect_to_level_queue should return a ConnectedEventStore around the store it was given.",
        got=short(connected),
    )
    channel = connected.message_channel
    expect(
        isinstance(channel, MessageQueue),
        ex,
        f"the store is connected to a {type(channel).__name__}, not to a queue.",
        hint="a queue hands each message to one worker, in order: StateCarryingMessageQueue.",
    )
    expect(
        isinstance(channel, StateCarryingMessageChannel),
        ex,
        f"a {type(channel).__name__} carries no aggregate: the worker would have to read the store.",
        hint="use a StateCarryingMessageQueue.",
    )
    channel_adapter = channel.message_channel_adapter
    # The worker may be wrapped (logging, an idempotency guard...): what counts is that the
    # messages reach it, checked at the end.
    expect(
        getattr(channel_adapter, "worker", None) is not None,
        ex,
        "the queue's adapter has no worker: nothing would ever take its messages.",
        hint="InMemoryMessageQueueAdapter.attach_to(queue, worker=worker).",
    )

    state = (await pokemons.get_aggregate("pikachu")).aggregate
    counting.reset_counts()
    for _ in range(3):
        before = state
        state = await attempt(
            ex, "level_up(connected, pokemon)", functools.partial(level_up, connected, before)
        )
        expect(
            isinstance(state, Pokemon)
            and (state.version, state.level) == (before.version + 1, before.level + 1),
            ex,
            "level_up should push the next level-up and return the Pokémon's new state.",
            expected=f"Pikachu at version {before.version + 1}, level {before.level + 1}",
            got=short(state),
            hint="the result of push_event has a next_aggregate — computed when you pass prev_aggregate.",
        )
    reads = counting.reset_counts().reads
    expect(
        reads == 0,
        ex,
        f"your 3 level-ups read the store {reads} times.",
        expected="no read: the Pokémon you are given is the state right before the event",
        hint="pass prev_aggregate=... to push_event: the store folds the event into it, and publishes that.",
    )
    await attempt(ex, "the queue's worker", channel_adapter.wait_idle)
    stored = [(await pokemons.get_aggregate("pikachu", max_version=v)).aggregate for v in (5, 6, 7)]
    expect(
        [getattr(message, "aggregate", None) for message in received] == stored,
        ex,
        "the worker did not receive Pikachu's state after each of the 3 level-ups.",
        expected="3 state-carrying messages, at versions 5, 6 and 7",
        got=f"{len(received)} messages: {short([type(m).__name__ for m in received])}",
        **({} if received else {"hint": "the queue's worker must be (or call) the worker you were given."}),
    )
    passed(ex, "3 level-ups published on a state-carrying queue with 0 reads; the worker got every state.")


# -- Exercise 5 ------------------------------------------------------------------------------


class _RivalWriter:
    """Wraps a storage adapter: right after every read of ``aggregate_id`` (up to ``limit``),
    another writer stores that aggregate's next event, so what was just read is already stale."""

    def __init__(
        self,
        inner: EventStorageAdapter,
        aggregate_id: str,
        make_event: Callable[[int], EventDetail],
        limit: int = 5,
    ) -> None:
        self.inner = inner
        self.aggregate_id = aggregate_id
        self.make_event = make_event
        self.limit = limit
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    async def get_events(self, aggregate_id: str, **options: Any) -> list[EventDetail]:
        events = await self.inner.get_events(aggregate_id, **options)
        if aggregate_id == self.aggregate_id and self.writes < self.limit:
            last = await self.inner.get_events(aggregate_id, event_store_id=TRAINERS, reverse=True, limit=1)
            await self.inner.push_event(self.make_event(last[0].version + 1), event_store_id=TRAINERS)
            self.writes += 1
        return events


async def check_catch(catch: Callable[[EventStore, EventStore, str, str], Any]) -> None:
    """Ash tries to catch Eevee while a rival writer updates Ash; then Ash catches Charmander."""
    ex = GROUP
    pokedex = in_memory_pokedex()
    await tell_the_story(pokedex)
    pokemons, trainers = pokedex.pokemons, pokedex.trainers
    await pokemons.push_event(pokemon_appeared("eevee", name="Eevee", level=4))
    await pokemons.push_event(pokemon_leveled_up("charmander", version=2))

    storage = trainers.get_event_storage_adapter()
    rival = _RivalWriter(
        storage, "ash", lambda version: trainer_caught_pokemon("ash", version=version, pokemon_id="bulbasaur")
    )
    trainers.event_storage_adapter = rival
    outcome = await attempt(
        ex,
        "catch(pokemons, trainers, 'eevee', 'ash')",
        lambda: catch(pokemons, trainers, "eevee", "ash"),
        allow=(EventAlreadyExistsError,),
    )
    trainers.event_storage_adapter = storage
    eevee = (await pokemons.get_aggregate("eevee")).aggregate
    ash_owns_eevee = "eevee" in (await trainers.get_aggregate("ash")).aggregate.pokemon_ids
    expect(
        (eevee.status == "wild" and eevee.version == 1) or ash_owns_eevee,
        ex,
        "half a catch: Eevee is stored as caught, but Ash's event was refused (a rival writer took his version).",
        expected="nothing stored when either event is refused",
        hint="push both events in one EventStore.push_event_group: all or nothing.",
    )
    expect(
        isinstance(outcome, EventAlreadyExistsError),
        ex,
        "a rival writer took Ash's next version while catch was running, yet catch did not raise.",
        expected="EventAlreadyExistsError reaches the caller (a Command would then retry on fresh state)",
        hint="do not catch the conflict (nor try again): let it propagate.",
    )
    expect(
        rival.writes <= 1,
        ex,
        f"catch read Ash {rival.writes} times: after the conflict, it tried again.",
        expected="the first conflict reaches the caller",
        hint="retrying on fresh state is the caller's decision (a Command does it, within its limit): "
        "let the first EventAlreadyExistsError out.",
    )

    ash_before = (await trainers.get_aggregate("ash")).aggregate
    outcome = await attempt(
        ex,
        "catch(pokemons, trainers, 'charmander', 'ash')",
        lambda: catch(pokemons, trainers, "charmander", "ash"),
        allow=(EventAlreadyExistsError,),
    )
    expect(
        not isinstance(outcome, EventAlreadyExistsError),
        ex,
        f"with no rival writer, catch(..., 'charmander', 'ash') was refused: {outcome}.",
        hint="an event takes its aggregate's current version + 1: read each aggregate, never assume its version.",
    )
    charmander = await pokemons.get_aggregate("charmander")
    ash = await trainers.get_aggregate("ash")
    got = charmander.aggregate
    expect(
        (got.version, got.status, got.trainer_id) == (3, "caught", "ash"),
        ex,
        "after catch(..., 'charmander', 'ash'), Charmander should be caught by Ash.",
        expected="Charmander at version 3 (its next version), status 'caught', trainer_id 'ash'",
        got=short(got),
        hint="read the Pokémon first: its next event takes its current version + 1.",
    )
    owned = (*ash_before.pokemon_ids, "charmander")
    expect(
        (ash.aggregate.version, ash.aggregate.pokemon_ids) == (ash_before.version + 1, owned),
        ex,
        "Ash should have recorded the catch, at his next version.",
        expected=f"Ash at version {ash_before.version + 1}, pokemon_ids {owned}",
        got=short(ash.aggregate),
    )
    stamps = [result.last_event.timestamp for result in (charmander, ash) if result.last_event is not None]
    expect(
        len(stamps) == 2 and stamps[0] == stamps[1],
        ex,
        "the two events were stored one after the other (they have different timestamps).",
        expected="one group: events pushed together are stored together, with one timestamp",
        hint="store.group_event(event) for each, then one EventStore.push_event_group(...).",
    )
    passed(
        ex,
        "a conflict on Ash stores nothing of the catch; without conflict, both events are stored as one group.",
    )


# -- Exercise 6 ------------------------------------------------------------------------------


async def check_rebuild_levels(rebuild_levels: Callable[[EventStore, Any], Any]) -> None:
    """Replay a store of three Pokémon into a bus; compare the read model with the aggregates."""
    ex = REPLAY
    pokedex = in_memory_pokedex()
    await tell_the_story(pokedex)
    pokemons = pokedex.pokemons
    await pokemons.push_event(pokemon_appeared("bulbasaur", name="Bulbasaur", level=1))
    for version in (2, 3):
        await pokemons.push_event(pokemon_leveled_up("charmander", version=version))
    stored_events = await require_ordered_log(pokemons.event_storage_adapter).last_position()
    listing = await pokemons.list_aggregate_ids()
    expected = {
        entry.aggregate_id: (await pokemons.get_aggregate(entry.aggregate_id)).aggregate.level
        for entry in listing.aggregate_ids
    }
    counting = SimulatedLatencyAdapter(pokemons.get_event_storage_adapter(), latency_ms=0)
    pokemons.event_storage_adapter = counting
    reads_of_a_replay = await _reads_of_a_replay(pokemons, counting)
    bus = NotificationMessageBus(message_bus_id="LEVELS_REPLAY", source_event_stores=[pokemons])
    spy = _LateBusAdapter.attach_to(bus)

    levels = await attempt(ex, "rebuild_levels(pokemons, bus)", lambda: rebuild_levels(pokemons, bus))
    as_returned = dict(levels) if isinstance(levels, dict) else levels  # before the bus is settled
    expect(
        bus.message_channel_adapter is spy,
        ex,
        "the bus you were given has another adapter now.",
        hint="register your listener on the adapter the bus already has: bus.message_channel_adapter.",
    )
    await spy.settle(ex)
    live = [message for message, replay in spy.published if not replay]
    expect(
        bool(spy.published),
        ex,
        "nothing was published on the bus you were given.",
        hint="pour the store's events into it: the pour_* functions of castore_edu.replay.dam (notebook 03, section 6).",
    )
    expect(
        not live,
        ex,
        f"{len(live)} messages were published live, not as replays.",
        hint="replaying history is what the pour_* functions do: they publish with replay=True.",
    )
    expect(
        len(spy.published) == stored_events,
        ex,
        f"{len(spy.published)} of the store's {stored_events} events were replayed.",
        hint="pour the whole store (every aggregate), not one aggregate.",
    )
    expect(
        spy.deliveries > 0,
        ex,
        "your listener received none of the replayed messages.",
        hint="a bus listener receives replays only if its filter pattern says so.",
    )
    extra_reads = counting.reset_counts().reads - reads_of_a_replay
    expect(
        extra_reads <= 0,
        ex,
        f"your code read the store {extra_reads} more times than the replay itself needs.",
        hint="each replayed message carries its event: fold message.event into your read model "
        "instead of reading the aggregate.",
    )
    expect(
        as_returned == expected or levels != expected,
        ex,
        "the levels were not complete when rebuild_levels returned: listeners were still at work.",
        expected=short(expected),
        got=f"{short(as_returned)} when it returned",
        hint="publishing hands the messages to the listeners; wait until the bus adapter is idle before "
        "you return.",
    )
    expect(
        as_returned == expected,
        ex,
        "the levels you returned are not the levels of the store's Pokémon.",
        expected=short(expected),
        got=short(as_returned),
        hint="POKEMON_APPEARED gives the starting level (payload['level']); each POKEMON_LEVELED_UP adds one.",
    )
    passed(
        ex,
        f"{stored_events} events replayed; your read model agrees with the store on {len(expected)} Pokémon.",
    )


async def _reads_of_a_replay(pokemons: EventStore, counting: SimulatedLatencyAdapter) -> int:
    """How many reads pouring ``pokemons`` takes by itself (into a bus nobody listens to)."""
    bus = NotificationMessageBus(message_bus_id="SCRATCH", source_event_stores=[pokemons])
    InMemoryMessageBusAdapter.attach_to(bus)
    counting.reset_counts()
    await pour_event_store_events(event_store=pokemons, message_channel=bus)
    return counting.reset_counts().reads


# -- Exercise 7 ------------------------------------------------------------------------------


def _level_up_message(
    aggregate_id: str,
    version: int,
    event_type: str = POKEMON_LEVELED_UP.type,
    event_store_id: str = POKEMONS,
) -> NotificationMessage:
    return NotificationMessage(
        event_store_id, EventDetail(aggregate_id=aggregate_id, version=version, type=event_type)
    )


# Every copy handed out stays alive: CPython gives a new object the id() of a freed one, so without
# this a consumer keyed on id(message) would sometimes take a new delivery for an old one, and fail
# the check with another hint from run to run. (A few small objects per check run.)
_HANDED_OUT: list[NotificationMessage] = []


def redelivered(message: NotificationMessage) -> NotificationMessage:
    """The same message delivered again: a broker hands over a new object, equal to the first one
    (a consumer that remembers ``id(message)`` would not recognise it)."""
    copy_of_message = dataclasses.replace(message)
    _HANDED_OUT.append(copy_of_message)
    return copy_of_message


# The first deliveries of exercise 7, in three rounds: (the Pokémon the round is about, its
# messages, the hint when that Pokémon's last message of the round was skipped as a duplicate).
FIRST_DELIVERIES = (
    (
        "pikachu",
        [_level_up_message("pikachu", 4), _level_up_message("pikachu", 3)],
        "Pikachu's version 4 came before its version 3 (deliveries may come out of order): a message "
        "not processed yet must be applied, whatever came before it.",
    ),
    (
        "charmander",
        [_level_up_message("charmander", 3), _level_up_message("pikachu", 2, POKEMON_CAUGHT.type)],
        "Pikachu and Charmander both have a version 3: a message's key needs the aggregate, not only "
        "the version.",
    ),
    (
        "eevee",
        [_level_up_message("eevee", 2), _level_up_message("eevee", 2, event_store_id=GYM_POKEMONS)],
        f"the {POKEMONS} and {GYM_POKEMONS} stores both have an Eevee at version 2: a message's key "
        "needs the event store too.",
    ),
)


def _level_ups_in(messages: list[NotificationMessage]) -> dict[str, int]:
    """How many level-ups each Pokémon of ``messages`` had (each message counted once)."""
    counts: dict[str, int] = {}
    for message in messages:
        if message.event.type == POKEMON_LEVELED_UP.type:
            counts[message.event.aggregate_id] = counts.get(message.event.aggregate_id, 0) + 1
    return counts


async def check_idempotent_counter(counter_class: Callable[[], Any]) -> None:
    """Deliver level-ups once, then again, then make ``apply`` fail once and deliver again."""
    ex = IDEMPOTENT
    counter = await attempt(ex, f"{getattr(counter_class, '__name__', 'the class')}()", counter_class)

    async def deliver(message: NotificationMessage, **options: Any) -> Any:
        return await attempt(ex, "handle(message, context)", lambda: counter.handle(message, None), **options)

    first: list[NotificationMessage] = []
    counts: dict[str, int] = {}
    for pokemon_id, messages, hint_if_skipped in FIRST_DELIVERIES:
        for message in messages:
            await deliver(message)
        first += messages
        counts = _level_ups_in(first)
        one_skipped = {**counts, pokemon_id: counts[pokemon_id] - 1}
        expect(
            counter.level_ups == counts,
            ex,
            "after one delivery of each message, the counts are wrong.",
            expected=short(counts),
            got=short(counter.level_ups),
            hint=hint_if_skipped
            if {k: v for k, v in counter.level_ups.items() if v}
            == {k: v for k, v in one_skipped.items() if v}
            else "call self.apply(message) for each message not processed yet.",
        )
    for message in [*first, first[0]]:
        await deliver(redelivered(message))
    expect(
        counter.level_ups == counts,
        ex,
        "delivered again, messages were counted again.",
        expected=short(counts),
        got=short(counter.level_ups),
        hint="a message delivered again is another object, equal to the first: remember the key "
        "(event_store_id, aggregate_id, version) of each message processed; skip known keys.",
    )

    failed: list[Any] = []
    apply = counter.apply

    def apply_failing_once(message: Any) -> Any:
        if not failed:
            failed.append(message)
            raise ConnectionError("the read model's database did not answer")
        return apply(message)

    counter.apply = apply_failing_once
    fifth = _level_up_message("pikachu", 5)
    outcome = await deliver(fifth, allow=(ConnectionError,))
    expect(
        bool(failed),
        ex,
        "a new message did not reach self.apply.",
        hint="handle should call self.apply(message) for the effect (the check makes apply fail once).",
    )
    expect(
        isinstance(outcome, ConnectionError),
        ex,
        "when self.apply failed, handle did not let the error out.",
        expected="the error propagates, so that the bus or queue delivers the message again",
        hint="do not catch errors of apply.",
    )
    await deliver(redelivered(fifth))
    expect(
        counter.level_ups.get("pikachu") == 3,
        ex,
        "the message whose first delivery failed was skipped when it came again: its level-up is lost.",
        hint="record a message as processed only after self.apply(message) succeeded.",
    )
    passed(ex, "duplicates are skipped, and a delivery that failed is applied when it comes again.")


# -- Exercise 8 ------------------------------------------------------------------------------


async def check_relay_step(relay_step: Callable[[Any, Any, Any, str], Any]) -> None:
    """Step a relay over the Pokémon log while its 3rd publish fails; then step again, and again."""
    ex = RELAY
    pokedex = in_memory_pokedex()
    await tell_the_story(pokedex)
    pokemons = pokedex.pokemons
    storage = LogWithGaps(require_ordered_log(pokemons.event_storage_adapter))
    bus = NotificationMessageBus(message_bus_id="POKEMON_NEWS", source_event_stores=[pokemons])
    spy = _SpyBusAdapter.attach_to(bus)
    FaultyChannelAdapter.wrap(bus, FaultSchedule.on_calls(3))  # the 3rd publish fails, nothing delivered
    checkpoints = InMemoryCheckpointStore()

    def published() -> list[tuple[str, int]]:
        return [(message.event.aggregate_id, message.event.version) for message, _ in spy.published]

    async def step(name: str = "news", **options: Any) -> Any:
        return await attempt(
            ex, f"relay_step(..., {name!r})", lambda: relay_step(storage, bus, checkpoints, name), **options
        )

    entries = await storage.read_log()
    log = [(entry.event.aggregate_id, entry.event.version) for entry in entries]
    second, last = entries[1].position, entries[-1].position
    outcome = await step(allow=(InjectedFault,))
    position = await checkpoints.load("news")
    other_names = sorted(set(checkpoints.positions) - {"news"})
    expect(
        not (position == 0 and other_names),
        ex,
        f"your relay saved its checkpoint under {short(other_names)}, not under the name it was given ('news').",
        hint="load and save the checkpoint under `name`: each relay has its own.",
    )
    expect(
        isinstance(outcome, InjectedFault),
        ex,
        "the 3rd publish failed, but relay_step returned normally.",
        expected="the publish error propagates (whoever runs the relay steps again later)",
        hint="do not catch errors of publish_message.",
    )
    expect(
        all(isinstance(message, NotificationMessage) for message, _ in spy.published)
        and published() == log[:2],
        ex,
        "before the failure, the first 2 events of the log should have been published, in order.",
        expected=f"NotificationMessages for {log[:2]}",
        got=short(published()),
    )
    expect(
        position == second,
        ex,
        f"after the failed publish of the 3rd event, the checkpoint is at {position}.",
        expected=f"{second}: the log position of the last event published (positions may have gaps)",
        hint=_relay_checkpoint_hint(position, published=2, expected=second),
    )
    count = await step()
    expect(
        published() == log,
        ex,
        "after the next step, every event should have been published once, in log order.",
        expected=short(log),
        got=short(published()),
        hint="start after the checkpoint: await storage.read_log(after_position=...).",
    )
    expect(
        count == 3,
        ex,
        "relay_step should return how many events it published.",
        expected="3",
        got=short(count),
    )
    count = await step()
    expect(
        count == 0 and published() == log,
        ex,
        "a step with nothing new to publish published events again.",
        hint="read the log after the saved checkpoint, not from the start.",
    )
    await pokemons.push_event(pokemon_leveled_up("pikachu", version=5))
    count = await step()
    expect(
        count == 1 and published() == [*log, ("pikachu", 5)],
        ex,
        "a new event was not published exactly once.",
        expected="1 event published: pikachu v5",
        got=f"{short(count)} — published so far: {short(published())}",
    )
    audit = await step("audit")
    expect(
        audit == len(log) + 1
        and await checkpoints.load("news") == await checkpoints.load("audit") == last + 2,
        ex,
        "a relay with another name should have its own checkpoint, starting from the beginning of the log.",
        hint="load and save the checkpoint under the name you were given.",
    )
    passed(
        ex,
        "the relay resumed after a failed publish, losing and repeating nothing; each name has its checkpoint.",
    )


def _relay_checkpoint_hint(position: Any, *, published: int, expected: int) -> str:
    """What a wrong checkpoint after the failed publish says about the relay."""
    if position == published:
        return (
            "save the position of the entry you published (entry.position), not a count: a log may have gaps."
        )
    if isinstance(position, int) and position < expected:
        return "save the checkpoint after each successful publish, so that a failure costs no duplicate."
    return "the checkpoint passed events never published: save it only after a publish succeeded."


# -- Exercise 9 ------------------------------------------------------------------------------


class ServerLog:
    """A server database's log in miniature: positions are taken at once, committed later.

    On a server database many transactions write at once. Each takes its position when it writes
    (``begin``), and its event becomes visible only when it commits (``commit``) — or never, if it
    rolls back (``roll_back``: its position stays a gap for good). ``read_log`` shows what is
    committed; ``oldest_in_flight`` is the lowest position still held by a running transaction
    (``None`` when none runs), the miniature of PostgreSQL's ``pg_snapshot_xmin`` (notebook 09,
    section 3). Both are coroutines, as a query to the server would be.
    """

    def __init__(self) -> None:
        self._next = 1
        self._committed: dict[int, LoggedEvent] = {}
        self._in_flight: dict[int, LoggedEvent] = {}
        self.commit_during_read: int | None = None  # the check's trap: a commit lands mid-read

    def begin(self, event: EventDetail, event_store_id: str = POKEMONS) -> int:
        """A transaction writes ``event``: it takes the next position, not committed yet."""
        position, self._next = self._next, self._next + 1
        self._in_flight[position] = LoggedEvent(position, event_store_id, event)
        return position

    def commit(self, position: int) -> None:
        self._committed[position] = self._in_flight.pop(position)

    def roll_back(self, position: int) -> None:
        del self._in_flight[position]

    def write(self, event: EventDetail) -> int:
        """A transaction that writes ``event`` and commits at once."""
        position = self.begin(event)
        self.commit(position)
        return position

    async def read_log(self, after_position: int = 0) -> list[LoggedEvent]:
        """The committed entries after ``after_position``, in position order."""
        await asyncio.sleep(0)
        entries = [self._committed[p] for p in sorted(self._committed) if p > after_position]
        if self.commit_during_read is not None:  # it commits right after the read saw the table
            self.commit(self.commit_during_read)
            self.commit_during_read = None
        return entries

    async def oldest_in_flight(self) -> int | None:
        """The lowest position a running transaction holds, or ``None``: below it, nothing can change."""
        await asyncio.sleep(0)
        return min(self._in_flight, default=None)


def _positions(entries: Any) -> Any:
    try:
        return [entry.position for entry in entries]
    except (TypeError, AttributeError):
        return entries


def _second_read_hint(seen: Any, checkpoint: Any) -> str:
    """What the second read of exercise 9 got wrong: the gap, the checkpoint, or where it read."""
    if seen == [3, 4, 5, 7]:
        return (
            "the new checkpoint is the position of the last entry returned, not a count: position 6 is a gap."
        )
    if seen[:3] == [3, 4, 5] and 7 not in seen:
        return (
            "a rolled-back transaction leaves a gap that never fills: do not wait for positions to follow "
            "each other, rely on oldest_in_flight (None: nothing is running)."
        )
    return "read after the checkpoint you were given: await log.read_log(after_position=checkpoint)."


async def check_read_new(read_new: Callable[[Any, int], Any]) -> None:
    """Read a log whose transactions commit out of order, one rolls back, one commits mid-read."""
    ex = LOG_READER
    log = ServerLog()
    names = ["pikachu", "charmander", "slowpoke", "bulbasaur", "eevee", "mew", "psyduck", "snorlax", "onix"]

    def appeared(index: int) -> EventDetail:
        name = names[index]
        return pokemon_appeared(name, name=name.capitalize(), level=index + 1)

    async def read(checkpoint: int) -> tuple[list[int], int]:
        result = await attempt(ex, f"read_new(log, {checkpoint})", lambda: read_new(log, checkpoint))
        expect(
            isinstance(result, tuple) and len(result) == 2,
            ex,
            "read_new should return a pair: (the entries to publish, the new checkpoint).",
            got=short(result),
        )
        entries, new_checkpoint = result
        expect(
            isinstance(entries, list) and all(isinstance(entry, LoggedEvent) for entry in entries),
            ex,
            "the entries should be a list of the log's LoggedEvents, as read_log returns them.",
            got=short(entries),
        )
        return _positions(entries), new_checkpoint

    log.write(appeared(0))  # 1
    log.write(appeared(1))  # 2
    slow = log.begin(appeared(2))  # 3: a slow transaction, still running
    log.write(appeared(3))  # 4
    log.write(appeared(4))  # 5
    seen, checkpoint = await read(0)
    expect(
        seen == [1, 2] and checkpoint == 2,
        ex,
        "position 3 is held by a transaction still running, yet your reader went past it.",
        expected="entries at positions [1, 2], checkpoint 2 (positions 4 and 5 wait for the next read)",
        got=f"positions {short(seen)}, checkpoint {short(checkpoint)}",
        hint="nothing at or above await log.oldest_in_flight() is safe yet: publish only what lies below it."
        if 3 not in seen and checkpoint != 2
        else "read what is committed after the checkpoint, and stop below the oldest transaction in flight.",
    )
    log.commit(slow)  # Slowpoke commits late
    rolled_back = log.begin(appeared(5))  # 6
    log.roll_back(rolled_back)  # a gap for good
    log.write(appeared(6))  # 7
    seen, checkpoint = await read(checkpoint)
    expect(
        seen == [3, 4, 5, 7] and checkpoint == 7,
        ex,
        "after the slow transaction committed (position 3) and another rolled back (position 6), "
        "the next read should take everything up to 7.",
        expected="entries at positions [3, 4, 5, 7], checkpoint 7",
        got=f"positions {short(seen)}, checkpoint {short(checkpoint)}",
        hint=_second_read_hint(seen, checkpoint),
    )
    late = log.begin(appeared(7))  # 8, still running as the reader starts
    log.write(appeared(8))  # 9
    log.commit_during_read = late  # ...and it commits while the reader reads
    seen, checkpoint = await read(checkpoint)
    first_seen, first_checkpoint = seen, checkpoint
    seen, checkpoint = await read(checkpoint)
    expect(
        first_seen + seen == [8, 9] and checkpoint == 9,
        ex,
        "a transaction that was running when your reader started committed while it read: its event "
        "(position 8) was skipped.",
        expected="position 8, then 9, over the next reads, and checkpoint 9",
        got=f"positions {short(first_seen)} (checkpoint {short(first_checkpoint)}), then {short(seen)} "
        f"(checkpoint {short(checkpoint)})",
        hint="ask for oldest_in_flight *before* reading the log: what it reports must hold for the rows you read.",
    )
    seen, again = await read(checkpoint)
    expect(
        seen == [] and again == 9,
        ex,
        "with nothing new in the log, read_new should return no entries and keep the checkpoint.",
        got=f"positions {short(seen)}, checkpoint {short(again)}",
    )
    passed(ex, "no late commit skipped, no gap waited for, nothing read twice.")


# -- Exercise 10 -----------------------------------------------------------------------------


class Delivery:
    """One delivery of a message by the broker: ``message``, ``attempt`` (1, 2...) and ``await ack()``."""

    def __init__(self, broker: _RedeliveringBroker, message: NotificationMessage, attempt: int) -> None:
        self.message = message
        self.attempt = attempt
        self._broker = broker

    async def ack(self) -> None:
        """Tell the broker the message is done: it will not deliver it again."""
        await asyncio.sleep(0)
        self._broker.acked(self)

    def __repr__(self) -> str:
        event = self.message.event
        return f"Delivery({event.aggregate_id} v{event.version}, attempt={self.attempt})"


class LevelDatabase:
    """A read model in a database of its own: level-ups per Pokémon, changed in transactions.

    ``async with board.transaction() as tx:`` opens one; inside, ``tx.level_up(pokemon_id)``
    counts a level-up, ``tx.remember(key)`` records that a message was applied, and
    ``tx.has_applied(key)`` says whether one was. Leaving the block commits all of it at once;
    an error inside (or at the commit) rolls all of it back. ``levels`` is what is committed.
    """

    def __init__(self) -> None:
        self.levels: dict[str, int] = {}
        self.applied: set[Any] = set()
        self.fail_next_commit: BaseException | None = None  # the check's fault, raised at the commit
        # The check's other fault: the process dies right after a commit that counted a level-up.
        self.crash_after_level_up_commit = False

    def transaction(self) -> Any:
        return _LevelTransaction(self)


class _LevelTransaction:
    def __init__(self, board: LevelDatabase) -> None:
        self.board = board
        self.level_ups: list[str] = []
        self.remembered: set[Any] = set()

    async def __aenter__(self) -> _LevelTransaction:
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, kind: Any, error: Any, traceback: Any) -> None:
        await asyncio.sleep(0)
        if kind is not None:
            return  # rolled back; the error goes on
        fault, self.board.fail_next_commit = self.board.fail_next_commit, None
        if fault is not None:
            raise fault  # the commit failed (or the process died during it): nothing is kept
        for pokemon_id in self.level_ups:
            self.board.levels[pokemon_id] = self.board.levels.get(pokemon_id, 0) + 1
        self.board.applied |= self.remembered
        if self.level_ups and self.board.crash_after_level_up_commit:
            self.board.crash_after_level_up_commit = False
            raise SimulatedCrash("right after the commit of the read model, before the ack")

    def level_up(self, pokemon_id: str) -> None:
        self.level_ups.append(pokemon_id)

    def remember(self, key: Any) -> None:
        self.remembered.add(key)

    def has_applied(self, key: Any) -> bool:
        return key in self.board.applied or key in self.remembered


class _RedeliveringBroker:
    """Hands out messages one at a time and delivers again whatever was not acknowledged."""

    MAX_ATTEMPTS = 5

    def __init__(self, messages: list[NotificationMessage]) -> None:
        self.waiting = list(messages)
        self.attempts: dict[int, int] = {}
        self.done: list[NotificationMessage] = []

    def acked(self, delivery: Delivery) -> None:
        if delivery.message not in self.done:
            self.done.append(delivery.message)


async def check_ack_after_commit(work: Callable[[Any, Any], Any]) -> None:
    """Deliver six level-ups; crash in the commit of one, after the commit of another, fail a third."""
    ex = ACK_AFTER_COMMIT
    messages = [
        _level_up_message("pikachu", 3),
        _level_up_message("pikachu", 4),  # the process dies during its commit
        _level_up_message("charmander", 2),  # the process dies after its commit, before the ack
        _level_up_message("pikachu", 5),  # its commit fails with an error
        _level_up_message("eevee", 2),
        _level_up_message("eevee", 2, event_store_id=GYM_POKEMONS),  # another Eevee, same version
    ]
    board = LevelDatabase()
    broker = _RedeliveringBroker(messages)
    returned_after_failed_commit = False

    async def deliver(delivery: Delivery) -> str:
        try:
            await work(delivery, board)
        except SimulatedCrash:
            return "crashed"  # the "process" is gone; the broker redelivers after ack_wait
        return "returned"

    for _ in range(_RedeliveringBroker.MAX_ATTEMPTS):
        for message in messages:
            if message in broker.done:
                continue
            index = messages.index(message)
            attempt_number = broker.attempts[index] = broker.attempts.get(index, 0) + 1
            if attempt_number == 1 and index == 1:
                board.fail_next_commit = SimulatedCrash("during the commit of the read model")
            board.crash_after_level_up_commit = attempt_number == 1 and index == 2
            if attempt_number == 1 and index == 3:
                board.fail_next_commit = ConnectionError("the read model's database did not answer")
            delivery = Delivery(broker, redelivered(message), attempt_number)
            outcome = await attempt(
                ex,
                f"work({delivery!r}, board)",
                functools.partial(deliver, delivery),
                allow=(ConnectionError,),
            )
            board.fail_next_commit, board.crash_after_level_up_commit = None, False
            if index == 3 and attempt_number == 1 and outcome == "returned":
                returned_after_failed_commit = True

    never_acked = [m for m in messages if m not in broker.done]
    expect(
        not never_acked,
        ex,
        f"{len(never_acked)} of the {len(messages)} messages {'was' if len(never_acked) == 1 else 'were'} never acknowledged: "
        "the broker would deliver them for ever.",
        hint="call await delivery.ack() once the message is applied (or was applied before).",
    )
    expected = {"pikachu": 3, "charmander": 1, "eevee": 2}
    got = board.levels
    expect(
        not returned_after_failed_commit,
        ex,
        "when the read model's commit failed, your worker returned normally: the broker took the message as "
        "done, and cannot know that the database failed.",
        hint="do not catch errors of the transaction, nor retry it yourself: an error that gets out makes the "
        "broker deliver the message again, later.",
    )
    expect(
        got.get("eevee", 0) >= 2,
        ex,
        f"the level-up of the {GYM_POKEMONS} store's Eevee was skipped as applied: the {POKEMONS} store's Eevee, "
        "at the same version, was applied before.",
        expected=short(expected),
        got=short(got),
        hint="two stores can have aggregates with the same id and version: a message's key needs the event store.",
    )
    lost = [pokemon for pokemon, count in expected.items() if got.get(pokemon, 0) < count]
    expect(
        not lost,
        ex,
        "a message was acknowledged before its level-up was committed: when the process died in the commit, "
        "the broker did not deliver it again, and the level-up is lost.",
        expected=short(expected),
        got=short(got),
        hint="acknowledge after the `async with board.transaction()` block, never inside it or before it.",
    )
    expect(
        got == expected,
        ex,
        "a message delivered again after a crash (its commit done, its ack not) was applied twice.",
        expected=short(expected),
        got=short(got),
        hint="a message delivered again is a new, equal object: remember the message's key (event_store_id, "
        "aggregate_id, version) in the same transaction as its level-up, and skip a message the board has applied already — but still acknowledge it.",
    )
    passed(ex, "a crash before the commit loses nothing, a crash after it applies nothing twice.")
