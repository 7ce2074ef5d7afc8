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
of the relay. instructor/tests/test_exercises.py proves that every check fails on its stub and on plausible
wrong answers, and passes on the instructor's solution.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from castore_edu.connected.connected_event_store import ConnectedEventStore
from castore_edu.core.command import Command
from castore_edu.core.errors import EventAlreadyExistsError, is_event_already_exists_error
from castore_edu.core.event_store import EventStore
from castore_edu.core.events import EventDetail, EventType
from castore_edu.course.exercises.feedback import Exercise, attempt, expect, passed
from castore_edu.course.pokedex import (
    POKEMON_CAUGHT,
    POKEMON_LEVELED_UP,
    POKEMONS,
    TRAINERS,
    Pokemon,
    Trainer,
    in_memory_pokedex,
    pokemon_appeared,
    pokemon_leveled_up,
    tell_the_story,
    trainer_caught_pokemon,
    trainer_created,
)
from castore_edu.messaging.channels import MessageQueue, NotificationMessageBus, StateCarryingMessageChannel
from castore_edu.messaging.delivery import require_async_callable
from castore_edu.messaging.in_memory_bus import InMemoryMessageBusAdapter
from castore_edu.messaging.messages import NotificationMessage
from castore_edu.reliability.relay import InMemoryCheckpointStore
from castore_edu.storage.protocol import EventStorageAdapter, require_ordered_log
from castore_edu.testing.faults import FaultSchedule, FaultyChannelAdapter, InjectedFault
from castore_edu.testing.latency import SimulatedLatencyAdapter

REDUCER = Exercise(1, "Write a reducer")
COMMAND = Exercise(2, "Make a command retry on conflicts")
LISTENER = Exercise(3, "Listen on a bus, with a filter")
QUEUE = Exercise(4, "Feed a state-carrying queue without reads")
GROUP = Exercise(5, "Push an event group")
REPLAY = Exercise(6, "Build a read model by replaying the store")
IDEMPOTENT = Exercise(7, "Make a consumer idempotent")
RELAY = Exercise(8, "Make a relay resume from its checkpoint")
EXERCISES = (REDUCER, COMMAND, LISTENER, QUEUE, GROUP, REPLAY, IDEMPOTENT, RELAY)

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


async def check_trainer_reducer(reducer: Callable[[Any, EventDetail], Any]) -> None:
    """Fold Misty's story — created, two catches, a release, an unknown event — with ``reducer``."""
    ex = REDUCER
    at = "2024-01-01T00:00:00.000Z"

    async def fold(state: Any, event: EventDetail) -> Any:
        return await attempt(ex, f"your reducer (on {event.type})", lambda: reducer(state, event))

    misty = await fold(None, trainer_created("misty", name="Misty", timestamp=at))
    expect(
        misty == Trainer("misty", 1, "Misty"),
        ex,
        "TRAINER_CREATED folded into None should make a new trainer.",
        expected=short(Trainer("misty", 1, "Misty")),
        got=short(misty),
        hint="build a Trainer from the event: its aggregate_id, its version and payload['name'].",
    )
    state = misty
    for version, pokemon_id in ((2, "staryu"), (3, "psyduck")):
        event = trainer_caught_pokemon("misty", version=version, pokemon_id=pokemon_id, timestamp=at)
        state = await fold(state, event)
    both = Trainer("misty", 3, "Misty", ("staryu", "psyduck"))
    expect(
        state == both,
        ex,
        "after two TRAINER_CAUGHT_POKEMON events, the trainer should own both Pokémon, in order.",
        expected=short(both),
        got=short(state),
        hint="add payload['pokemon_id'] at the end of pokemon_ids, and set version to the event's version.",
    )
    released = await fold(
        state, trainer_released_pokemon("misty", version=4, pokemon_id="staryu", timestamp=at)
    )
    expect(
        state == both,
        ex,
        "your reducer changed the aggregate it was given.",
        hint="return a new aggregate (dataclasses.replace) and leave the old one alone: others may still use it.",
    )
    after_release = Trainer("misty", 4, "Misty", ("psyduck",))
    expect(
        isinstance(released, Trainer) and released.pokemon_ids == after_release.pokemon_ids,
        ex,
        "after TRAINER_RELEASED_POKEMON, the trainer should no longer own that Pokémon.",
        expected=f"pokemon_ids == {after_release.pokemon_ids!r}",
        got=short(released),
        hint="build a new tuple without the released id: a tuple cannot be changed in place.",
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
        released, EventDetail(aggregate_id="misty", version=5, type="TRAINER_WAVED", timestamp=at)
    )
    expect(
        waved == Trainer("misty", 5, "Misty", ("psyduck",)),
        ex,
        "an event type the reducer does not know should only move the version on.",
        expected=short(Trainer("misty", 5, "Misty", ("psyduck",))),
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
    passed(
        ex,
        f"{WRITERS} concurrent level-ups, every conflict retried on fresh state: Pikachu reached level {final.level}.",
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
        self.errors: list[Exception] = []
        self._wrappers: list[tuple[Any, Any]] = []

    async def publish_message(self, message: Any, *, replay: bool = False) -> None:
        self.published.append((message, replay))
        await super().publish_message(message, replay=replay)

    def on(self, filter_pattern: Any, handler: Any) -> None:
        require_async_callable(handler, "handler")
        self.patterns.append(dict(filter_pattern))
        super().on(filter_pattern, self._watched(handler))

    def _watched(self, handler: Any) -> Any:
        """One wrapper per handler, so that registering it twice adds a pattern, as it should."""
        for known, known_wrapper in self._wrappers:
            if known == handler:
                return known_wrapper

        async def wrapper(message: Any, context: Any) -> None:
            self.deliveries += 1
            try:
                await handler(message, context)
            except Exception as error:
                self.errors.append(error)

        self._wrappers.append((handler, wrapper))
        return wrapper

    async def settle(self, exercise: Exercise) -> None:
        """Wait for every delivery; report the first error a learner's handler raised."""
        await self.wait_idle()
        if self.errors:
            error = self.errors[0]

            def raise_it() -> None:
                raise error

            await attempt(exercise, "your handler", raise_it)


# -- Exercise 3 ------------------------------------------------------------------------------


async def check_level_up_listener(listen_for_level_ups: Callable[[Any, list[Any]], Any]) -> None:
    """Publish the story of both stores, a replay and one more level-up; compare the alerts."""
    ex = LISTENER
    pokedex = in_memory_pokedex()
    await tell_the_story(pokedex)
    bus = NotificationMessageBus(message_bus_id="POKEDEX_BUS", source_event_stores=pokedex.stores)
    spy = _SpyBusAdapter.attach_to(bus)
    alerts: list[Any] = []
    await attempt(ex, "listen_for_level_ups(bus_adapter, alerts)", lambda: listen_for_level_ups(spy, alerts))
    expect(
        bool(spy.patterns),
        ex,
        "nothing was registered on the bus adapter.",
        hint="call bus_adapter.on(filter_pattern, handler) with an async handler(message, context).",
    )
    for store in pokedex.stores:  # everything that was stored, live
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
    expect(
        getattr(channel_adapter, "worker", None) is worker,
        ex,
        "the queue's adapter does not hand its messages to the worker you were given.",
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
    trainers.event_storage_adapter = _RivalWriter(
        storage, "ash", lambda version: trainer_caught_pokemon("ash", version=version, pokemon_id="bulbasaur")
    )
    outcome = await attempt(
        ex,
        "catch(pokemons, trainers, 'eevee', 'ash')",
        lambda: catch(pokemons, trainers, "eevee", "ash"),
        allow=(EventAlreadyExistsError,),
    )
    trainers.event_storage_adapter = storage
    eevee = (await pokemons.get_aggregate("eevee")).aggregate
    expect(
        eevee.status == "wild" and eevee.version == 1,
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
        hint="do not catch the conflict: let it propagate.",
    )

    ash_before = (await trainers.get_aggregate("ash")).aggregate
    await attempt(
        ex,
        "catch(pokemons, trainers, 'charmander', 'ash')",
        lambda: catch(pokemons, trainers, "charmander", "ash"),
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
    bus = NotificationMessageBus(message_bus_id="LEVELS_REPLAY", source_event_stores=[pokemons])
    spy = _SpyBusAdapter.attach_to(bus)

    levels = await attempt(ex, "rebuild_levels(pokemons, bus)", lambda: rebuild_levels(pokemons, bus))
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
    expect(
        levels == expected,
        ex,
        "the levels you returned are not the levels of the store's Pokémon.",
        expected=short(expected),
        got=short(levels),
        hint="POKEMON_APPEARED gives the starting level (payload['level']); each POKEMON_LEVELED_UP adds one; "
        "wait for the bus to be idle before returning.",
    )
    passed(
        ex,
        f"{stored_events} events replayed; your read model agrees with the store on {len(expected)} Pokémon.",
    )


# -- Exercise 7 ------------------------------------------------------------------------------


def _level_up_message(
    aggregate_id: str, version: int, event_type: str = POKEMON_LEVELED_UP.type
) -> NotificationMessage:
    return NotificationMessage(
        POKEMONS, EventDetail(aggregate_id=aggregate_id, version=version, type=event_type)
    )


async def check_idempotent_counter(counter_class: Callable[[], Any]) -> None:
    """Deliver level-ups once, then again, then make ``apply`` fail once and deliver again."""
    ex = IDEMPOTENT
    counter = await attempt(ex, f"{getattr(counter_class, '__name__', 'the class')}()", counter_class)

    async def deliver(message: NotificationMessage, **options: Any) -> Any:
        return await attempt(ex, "handle(message, context)", lambda: counter.handle(message, None), **options)

    first = [
        _level_up_message("pikachu", 3),
        _level_up_message("pikachu", 4),
        _level_up_message("charmander", 3),
        _level_up_message("pikachu", 2, POKEMON_CAUGHT.type),
    ]
    counts = {"pikachu": 2, "charmander": 1}
    for message in first:
        await deliver(message)
    expect(
        counter.level_ups == counts,
        ex,
        "after one delivery of each message, the counts are wrong.",
        expected=short(counts),
        got=short(counter.level_ups),
        hint="call self.apply(message) for each message not processed yet. Pikachu and Charmander both have "
        "a version 3: a message's key needs the store, the aggregate and the version.",
    )
    for message in [*first, first[0]]:
        await deliver(message)
    expect(
        counter.level_ups == counts,
        ex,
        "delivered again, messages were counted again.",
        expected=short(counts),
        got=short(counter.level_ups),
        hint="remember the key (event_store_id, aggregate_id, version) of each message processed; skip known keys.",
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
    await deliver(fifth)  # the redelivery
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
    storage = require_ordered_log(pokemons.event_storage_adapter)
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

    log = [(entry.event.aggregate_id, entry.event.version) for entry in await storage.read_log()]
    outcome = await step(allow=(InjectedFault,))
    position = await checkpoints.load("news")
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
        position == 2,
        ex,
        f"after the failed publish of the 3rd event, the checkpoint is at {position}.",
        expected="2: the position of the last event published",
        hint="save the checkpoint after each successful publish, so that a failure costs no duplicate."
        if position < 2
        else "the checkpoint passed events never published: save it only after a publish succeeded.",
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
        and await checkpoints.load("news") == await checkpoints.load("audit") == len(log) + 1,
        ex,
        "a relay with another name should have its own checkpoint, starting from the beginning of the log.",
        hint="load and save the checkpoint under the name you were given.",
    )
    passed(
        ex,
        "the relay resumed after a failed publish, losing and repeating nothing; each name has its checkpoint.",
    )
