"""The contract every projection runner keeps, whatever its database: one suite, run on each.

Subclass :class:`ProjectionRunnerContract` in a test module and say how to make, on your
database, a fresh storage adapter (``make_adapter``), a projection whose read model records every
entry it is given (``seen_projection``), a runner (``make_runner``) and how to read a table from a
connection of its own (``rows``). ``tests/test_projections.py`` does it for SQLite and PostgreSQL.

The read model used here is the bluntest there is: a table ``<name>_seen`` with one row per
applied entry and *no* unique key. An entry applied twice shows as two rows, an entry missed as
none, and a batch that was half kept as rows without their checkpoint.

The suite needs pytest (and anyio's plugin), so the ``testing`` room does not import it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, cast

import pytest

from castore_edu.core.event_store import EventStore
from castore_edu.core.events import EventDetail, LoggedEvent
from castore_edu.projections.projection import Projection
from castore_edu.projections.runner import ProjectionRunner
from castore_edu.storage.protocol import OrderedLogStorage, close_adapter
from castore_edu.testing.faults import SimulatedCrash

POKEMONS, TRAINERS = "POKEMONS", "TRAINERS"
GYM_POKEMONS = "GYM_POKEMONS"  # a third store in the same log, which the projections do not follow
POISON = "missingno"  # an aggregate whose events the read model's apply refuses, while told to


def appeared(pokemon_id: str, level: int = 5) -> EventDetail:
    return EventDetail(aggregate_id=pokemon_id, version=1, type="POKEMON_APPEARED", payload={"level": level})


def leveled_up(pokemon_id: str, version: int) -> EventDetail:
    return EventDetail(aggregate_id=pokemon_id, version=version, type="POKEMON_LEVELED_UP")


def trainer_created(trainer_id: str) -> EventDetail:
    return EventDetail(aggregate_id=trainer_id, version=1, type="TRAINER_CREATED")


def a_store(event_store_id: str, adapter: Any) -> EventStore:
    """A store whose reducer only counts versions: the contract is about the log, not a domain."""
    return EventStore(
        event_store_id=event_store_id,
        event_types=[],
        reducer=lambda aggregate, event: event.version,
        event_storage_adapter=adapter,
    )


class ProjectionRunnerContract:
    """Subclass and implement the four ``make_``/``rows`` methods; see the module docstring."""

    # -- what a subclass says --------------------------------------------------------------

    def make_adapter(self) -> OrderedLogStorage:
        """A storage adapter on an empty database (closed when the test ends: see :meth:`opened`)."""
        raise NotImplementedError

    def seen_projection(self, name: str, stores: list[EventStore]) -> Projection:
        """A projection of ``stores`` whose ``apply`` inserts ``(position, event_store_id,
        aggregate_id, version)`` into ``<name>_seen`` and *then* calls ``self.applying(entry)``
        (which may raise); ``create`` and ``drop`` make and remove the table."""
        raise NotImplementedError

    def make_runner(self, projection: Projection, *, batch_size: int = 100) -> ProjectionRunner:
        """A runner of ``projection`` (closed when the test ends: see :meth:`opened`)."""
        raise NotImplementedError

    async def rows(self, statement: str) -> list[tuple[Any, ...]] | None:
        """The rows of ``statement``, read on a connection of its own; ``None`` if its table does
        not exist."""
        raise NotImplementedError

    # -- the suite's own tools ---------------------------------------------------------------

    @pytest.fixture(autouse=True)
    async def _close_opened_runners(self) -> AsyncIterator[None]:
        self._opened: list[Any] = []
        self.poison: type[BaseException] | None = None
        self.shape: Callable[[EventStore, EventDetail], EventDetail] | None = None
        self.applied_entries: list[LoggedEvent] = []
        yield
        for closable in self._opened:
            await close_adapter(closable)

    def opened(self, closable: Any) -> Any:
        self._opened.append(closable)
        return closable

    def applying(self, entry: LoggedEvent) -> None:
        """Called by the read model's ``apply`` after its insert: fails on the poison aggregate
        while ``self.poison`` names an error."""
        if self.poison is not None and entry.event.aggregate_id == POISON:
            raise self.poison("the read model refuses missingno")
        self.applied_entries.append(entry)

    async def story(self) -> tuple[EventStore, EventStore, EventStore, OrderedLogStorage]:
        """The course's opening scene, then two gym Pokémon: 9 log entries, of three stores.

        1 Pikachu appears, 2 Charmander appears, 3 Ash starts, 4 and 5 Ash catches Pikachu (one
        event in each store, one group), 6 and 7 Pikachu levels up, 8 and 9 the gym's Pokémon.
        """
        storage = self.make_adapter()
        pokemons, trainers, gym = (
            a_store(store_id, storage) for store_id in (POKEMONS, TRAINERS, GYM_POKEMONS)
        )
        await pokemons.push_event(appeared("pikachu"))
        await pokemons.push_event(appeared("charmander", level=3))
        await trainers.push_event(trainer_created("ash"))
        await EventStore.push_event_group(
            pokemons.group_event(EventDetail(aggregate_id="pikachu", version=2, type="POKEMON_CAUGHT")),
            trainers.group_event(EventDetail(aggregate_id="ash", version=2, type="TRAINER_CAUGHT_POKEMON")),
        )
        await pokemons.push_event(leveled_up("pikachu", 3))
        await pokemons.push_event(leveled_up("pikachu", 4))
        await gym.push_event(appeared("onix", level=12))
        await gym.push_event(appeared("staryu", level=9))
        return pokemons, trainers, gym, storage

    @staticmethod
    async def followed(storage: OrderedLogStorage) -> list[int]:
        return [entry.position for entry in await storage.read_log() if entry.event_store_id != GYM_POKEMONS]

    async def seen(self, name: str) -> list[int] | None:
        rows = await self.rows(f"SELECT position FROM {name}_seen ORDER BY position")
        return None if rows is None else [row[0] for row in rows]

    async def saved_checkpoint(self, name: str) -> int | None:
        rows = await self.rows(
            f"SELECT position FROM projection_checkpoints WHERE projection_name = '{name}'"
        )
        return None if not rows else int(rows[0][0])

    # -- the contract ------------------------------------------------------------------------

    async def test_it_applies_every_followed_event_once_in_log_order(self) -> None:
        pokemons, trainers, _, storage = await self.story()
        runner = self.make_runner(self.seen_projection("board", [pokemons, trainers]), batch_size=3)
        followed = await self.followed(storage)
        assert await runner.run_until_caught_up() == len(followed) == 7
        assert await self.seen("board") == followed  # each once, the gym's passed over
        assert await runner.checkpoint() == await storage.last_position() == 9
        assert await runner.run_until_caught_up() == 0 and await self.seen("board") == followed
        assert runner.applied == 7 and await self.saved_checkpoint("board") == 9

    async def test_a_step_applies_one_batch_and_moves_the_checkpoint_to_its_last_entry(self) -> None:
        pokemons, _, gym, _ = await self.story()
        await gym.push_event(leveled_up("onix", 2))  # position 10
        runner = self.make_runner(self.seen_projection("board", [pokemons]), batch_size=5)
        assert await runner.step() == 3  # positions 1-5: pikachu, charmander, (ash), pikachu caught, (ash)
        assert await self.seen("board") == [1, 2, 4] and await runner.checkpoint() == 5
        assert await runner.step() == 2  # 6-10: two level-ups, then the gym's three entries
        assert await runner.checkpoint() == 10  # the last entry covered, though not applied
        assert await runner.step() == 0 and await runner.checkpoint() == 10

    async def test_a_new_runner_resumes_from_the_saved_checkpoint(self) -> None:
        pokemons, trainers, _, storage = await self.story()
        first = self.make_runner(self.seen_projection("board", [pokemons, trainers]), batch_size=4)
        await first.step()
        assert await self.saved_checkpoint("board") == 4
        await close_adapter(first)
        await trainers.push_event(trainer_created("misty"))
        again = self.make_runner(self.seen_projection("board", [pokemons, trainers]), batch_size=4)
        assert await again.checkpoint() == 4
        assert await again.run_until_caught_up() == 4  # positions 5, 6, 7 and Misty's, 10
        assert await self.seen("board") == await self.followed(storage)

    @pytest.mark.parametrize("failure", [ValueError, SimulatedCrash], ids=["error", "crash"])
    async def test_a_failing_apply_keeps_neither_the_read_model_nor_the_checkpoint(
        self, failure: type[BaseException]
    ) -> None:
        pokemons, trainers, _, storage = await self.story()
        runner = self.make_runner(self.seen_projection("board", [pokemons, trainers]))
        await runner.run_until_caught_up()
        before = await self.seen("board")
        await pokemons.push_event(leveled_up("charmander", 2))
        await pokemons.push_event(appeared(POISON, level=0))
        await pokemons.push_event(leveled_up("charmander", 3))
        self.poison = failure
        with pytest.raises(failure):
            await runner.step()  # applied charmander v2 and inserted missingno's row, then failed
        assert await self.seen("board") == before  # neither row kept...
        assert await self.saved_checkpoint("board") == await runner.checkpoint() == 9  # ...nor the checkpoint
        assert runner.applied == 7
        self.poison = None  # the bug fixed: the same batch again, on the same runner
        assert await runner.step() == 3
        assert await self.seen("board") == await self.followed(storage)

    async def test_two_projections_with_different_names_are_independent(self) -> None:
        pokemons, trainers, _, storage = await self.story()
        board = self.make_runner(self.seen_projection("board", [pokemons, trainers]))
        audit = self.make_runner(self.seen_projection("audit", [trainers]), batch_size=4)
        await board.run_until_caught_up()
        assert await audit.step() == 1  # positions 1-4 hold one trainer event: Ash created, at 3
        assert (await board.checkpoint(), await audit.checkpoint()) == (9, 4)
        assert await self.seen("audit") == [3]
        assert await audit.run_until_caught_up() == 1
        trainer_positions = [e.position for e in await storage.read_log() if e.event_store_id == "TRAINERS"]
        assert await self.seen("audit") == trainer_positions == [3, 5]
        assert await self.seen("board") == await self.followed(storage)

    async def test_two_runners_of_one_projection_never_apply_an_entry_twice(self) -> None:
        pokemons, trainers, _, storage = await self.story()
        slow = self.make_runner(self.seen_projection("board", [pokemons, trainers]))
        fast = self.make_runner(self.seen_projection("board", [pokemons, trainers]))
        # fast catches up while slow reads the log: a log reader that is not a whole adapter
        slow.storage = cast(OrderedLogStorage, _RaceBeforeTheTransaction(storage, fast))
        assert await slow.step() == 0  # its checkpoint moved under it: it applied nothing
        assert fast.applied == 7 and await self.seen("board") == await self.followed(storage)
        assert await slow.run_until_caught_up() == 0

    async def test_a_rebuild_under_a_new_name_serves_only_once_switched(self) -> None:
        pokemons, trainers, _, storage = await self.story()
        v1 = self.make_runner(self.seen_projection("board_v1", [pokemons]))
        assert await v1.serving("board") is None
        assert await v1.switch("board") is None  # nothing served it before
        assert await v1.serving("board") == "board_v1"
        await pokemons.push_event(leveled_up("charmander", 2))
        v2 = self.make_runner(self.seen_projection("board_v2", [pokemons, trainers]), batch_size=3)
        assert await v2.step() == 3 and await v2.lag() == 7
        await v1.step()  # the old one keeps serving, and keeping up
        assert await v1.serving("board") == await v2.serving("board") == "board_v1"
        assert await v2.switch("board") == "board_v1"  # caught up, then switched
        assert await v1.serving("board") == "board_v2" and await v2.lag() == 0
        assert await self.seen("board_v2") == await self.followed(storage)
        with pytest.raises(RuntimeError, match=r"still serves \['board'\]"):
            await v2.drop()
        await v1.drop()
        assert await self.seen("board_v1") is None and await self.saved_checkpoint("board_v1") is None
        with pytest.raises(RuntimeError, match="was dropped"):
            await v1.step()

    async def test_lag_counts_the_log_entries_beyond_the_checkpoint(self) -> None:
        pokemons, _, gym, storage = await self.story()
        runner = self.make_runner(self.seen_projection("board", [pokemons]), batch_size=4)
        assert await runner.lag() == 9
        await runner.step()
        assert await runner.lag() == 5
        await runner.run_until_caught_up()
        assert await runner.lag() == 0
        await gym.push_event(leveled_up("onix", 2))  # not followed, but in the log
        await pokemons.push_event(leveled_up("charmander", 2))
        assert await runner.lag() == 2 == await storage.last_position() - await runner.checkpoint()

    async def test_every_event_reaches_apply_through_its_store_s_upcast(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pokemons, trainers, _, storage = await self.story()
        calls: list[tuple[str, int]] = []

        def shaped_by(event_store: EventStore) -> Callable[[EventDetail], list[EventDetail]]:
            def upcast(event: EventDetail) -> list[EventDetail]:
                calls.append((event_store.event_store_id, event.version))
                return [replace(event, metadata={"shape": "current"})]

            return upcast

        for store in (pokemons, trainers):
            monkeypatch.setattr(store, "upcast", shaped_by(store))
        runner = self.make_runner(self.seen_projection("board", [pokemons, trainers]))
        await runner.run_until_caught_up()
        followed = [e for e in await storage.read_log() if e.event_store_id != GYM_POKEMONS]
        assert calls == [(entry.event_store_id, entry.event.version) for entry in followed]
        assert [entry.event for entry in self.applied_entries] == [
            replace(entry.event, metadata={"shape": "current"}) for entry in followed
        ]
        assert [entry.position for entry in self.applied_entries] == [entry.position for entry in followed]


class _RaceBeforeTheTransaction:
    """A log that lets another runner catch up right after it was read, before the reader's
    transaction begins: the moment two runners of one projection can collide."""

    def __init__(self, inner: OrderedLogStorage, rival: ProjectionRunner) -> None:
        self.inner, self.rival = inner, rival

    async def read_log(self, *, after_position: int = 0, limit: int | None = None) -> list[LoggedEvent]:
        entries = await self.inner.read_log(after_position=after_position, limit=limit)
        if self.rival.applied == 0:
            await self.rival.run_until_caught_up()
        return entries

    async def last_position(self) -> int:
        return await self.inner.last_position()
