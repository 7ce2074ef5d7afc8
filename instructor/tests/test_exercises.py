"""The workshop exercises work both ways: every check fails on the stub, passes on the solution.

Three promises, each checked here:

1. The notebooks are the sources' (``tools/build_exercises.py``): the learner version, rebuilt in
   memory, is byte for byte the stored one; the solution version has the source's cells, stored
   executed, each check printing its success line (nbval re-runs it and compares).
2. A learner who runs the notebook without doing anything gets, from every check cell, exactly a
   "Not yet: this exercise still raises NotImplementedError — <hint>" box — and nothing else in
   the notebook fails. The learner notebooks are run here, in a kernel, as a learner would.
3. Each check passes on the instructor's solution and fails — for the right reason — on plausible
   wrong answers, not only on the stub. The cells are run in-process (top-level ``await``
   included), the solution swapped for a wrong answer, and the check cell run again.

In a learner's copy of the repository (``instructor/`` removed, see instructor/README.md)
there is nothing to compare with: the module is skipped.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import copy
import inspect
import re
import tomllib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.anyio

nbformat = pytest.importorskip("nbformat")

from castore_edu import (  # noqa: E402
    Command,
    ConnectedEventStore,
    EventDetail,
    EventStore,
    InMemoryMessageBusAdapter,
    InMemoryMessageQueueAdapter,
    NotificationMessage,
    NotificationMessageQueue,
    StateCarryingMessageBus,
    StateCarryingMessageQueue,
    pour_aggregate_events,
    pour_event_store_events,
)
from castore_edu.core.errors import EventAlreadyExistsError  # noqa: E402
from castore_edu.course.exercises import (  # noqa: E402
    EXERCISES,
    NotYet,
    apply_level,
    load_checkpoint,
    save_checkpoint,
)
from castore_edu.course.exercises.feedback import attempt  # noqa: E402
from castore_edu.course.pokedex import (  # noqa: E402
    POKEMON_LEVELED_UP,
    TRAINER_CREATED,
    Trainer,
    pokemon_caught,
    pokemon_leveled_up,
    trainer_caught_pokemon,
    trainer_reducer as course_trainer_reducer,
)
from tools.build_exercises import (  # noqa: E402
    BEGIN,
    EXERCISES as LEARNER_DIR,
    SOURCES,
    STUB_COMMENT,
    exercise_path,
    problems,
    solution_path,
    source_cells,
    strip_solutions,
)
from tools.build_notebooks import BUDGET_SECONDS, execute, stems  # noqa: E402

if not SOURCES.is_dir():
    pytest.skip("no instructor sources here (a learner's copy)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
STEMS = stems(None, SOURCES)
# The check each exercise calls, in course order (each check cell is found by the check it calls).
CHECKS = {
    1: "check_trainer_reducer",
    2: "check_level_up_command",
    3: "check_level_up_listener",
    4: "check_level_queue",
    5: "check_catch",
    6: "check_rebuild_levels",
    7: "check_idempotent_counter",
    8: "check_relay_step",
    9: "check_read_new",
    10: "check_ack_after_commit",
    11: "check_projection_step",
    12: "check_fold_from_snapshot",
    13: "check_sighting_upcaster",
}
SNAPSHOT_READ = "get_aggregate_from_snapshots"  # what exercise 12's wrong answers replace
CHECK_CALL = re.compile(r"^await (check_\w+)\(", re.MULTILINE)


def is_check(source: str) -> bool:
    return CHECK_CALL.search(source) is not None


def check_cells() -> list[tuple[str, int, str]]:
    """``(stem, cell index, check name)`` of every check cell, in course order."""
    return [
        (stem, index, CHECK_CALL.search(cell.source)[1])
        for stem in STEMS
        for index, cell in enumerate(source_cells(stem))
        if cell.kind == "code" and is_check(cell.source)
    ]


# --- 1. the notebooks are their sources' --------------------------------------------------


def test_the_exercises_in_their_notebooks_one_check_cell_each_in_course_order() -> None:
    assert len(STEMS) == 8
    assert [name for _, _, name in check_cells()] == list(CHECKS.values())
    assert [exercise.number for exercise in EXERCISES] == list(CHECKS)
    assert sorted(path.stem for path in LEARNER_DIR.glob("*.ipynb")) == STEMS
    assert sorted(path.stem for path in solution_path(STEMS[0]).parent.glob("*.ipynb")) == STEMS


@pytest.mark.parametrize("stem", STEMS)
def test_both_versions_match_the_source(stem: str) -> None:
    assert problems(stem) == []


@pytest.mark.parametrize("stem", STEMS)
def test_the_learner_version_has_stubs_where_the_solutions_were_and_no_outputs(stem: str) -> None:
    text = exercise_path(stem).read_text(encoding="utf-8")
    notebook = nbformat.reads(text, as_version=4)
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    regions = sum(bool(BEGIN.match(line)) for cell in source_cells(stem) for line in cell.source.splitlines())
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    stubs = sum(cell.source.count("raise NotImplementedError(") for cell in code)
    assert stubs == regions >= 1
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            compile(cell.source, stem, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)  # a stub is valid Python


def test_a_stub_keeps_the_lines_before_the_region_at_its_indentation() -> None:
    source = '''def f(x):
    """Doc."""
    ### BEGIN SOLUTION (hint: double it)
    return 2 * x
    ### END SOLUTION'''
    stripped, hints = strip_solutions(source)
    assert (
        stripped
        == f'''def f(x):
    """Doc."""
    {STUB_COMMENT}
    raise NotImplementedError("double it")'''
    )
    assert hints == ["double it"]


@pytest.mark.parametrize(
    "broken, complaint",
    [
        ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", "write the hint"),
        ("### BEGIN SOLUTION (hint: h)\nx = 1", "never closed"),
        ("x = 1\n### END SOLUTION", "without a BEGIN"),
        ("### BEGIN SOLUTION (hint: h)\n### BEGIN SOLUTION (hint: h)\n### END SOLUTION", "inside another"),
    ],
)
def test_a_malformed_region_is_refused(broken: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        strip_solutions(broken)


def test_a_hint_with_quotes_still_makes_valid_python() -> None:
    stripped, _ = strip_solutions('### BEGIN SOLUTION (hint: say "hi" \\o/)\n### END SOLUTION')
    with pytest.raises(NotImplementedError, match=re.escape('say "hi" \\o/')):
        exec(stripped, {})


@pytest.mark.parametrize("stem", STEMS)
def test_the_solution_is_stored_executed_and_every_check_prints_its_success_line(stem: str) -> None:
    notebook = nbformat.read(solution_path(stem), as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    for cell in code:
        texts = [(output.output_type, output.get("name"), output.get("text")) for output in cell.outputs]
        if is_check(cell.source):
            ((kind, name, text),) = texts
            assert (kind, name) == ("stream", "stdout")
            assert re.fullmatch(r"✅ Exercise \d+ passed: [^\n]+\n", text)
        else:
            assert texts == []


@pytest.mark.parametrize("stem", STEMS)
def test_it_opens_with_time_objectives_and_how_to_check_and_each_exercise_has_task_hint_check(
    stem: str,
) -> None:
    cells = source_cells(stem)
    opening = cells[0].source
    minutes = re.search(r"\*\*Time:\*\* about (\d+) minutes", opening)
    assert minutes is not None and 10 <= int(minutes[1]) <= 30
    assert "Learning objectives" in opening and "How the exercises work" in opening and "**check**" in opening
    exercises = [
        cell.source for cell in cells if cell.kind == "markdown" and cell.source.startswith("## Exercise ")
    ]
    checks = [cell for cell in cells if cell.kind == "code" and is_check(cell.source)]
    assert len(exercises) == len(checks) in (1, 2)
    for text in exercises:
        assert "**Task.**" in text and "<summary><b>Hint</b>" in text and "**Check yourself.**" in text
    assert "## Recap" in cells[-1].source and "**Further reading**" in cells[-1].source


def test_nbval_skips_the_learner_notebooks_which_fail_by_design() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--ignore=notebooks/exercises" in options["addopts"]
    assert "instructor" in options["testpaths"]  # ...while the solutions, under instructor/, are run


# --- 2. a learner who runs the checks first gets "Not yet" from each, and nothing else fails ---


@pytest.mark.parametrize("stem", STEMS)
def test_every_check_says_not_yet_on_the_untouched_learner_notebook(stem: str) -> None:
    notebook = nbformat.read(exercise_path(stem), as_version=4)
    sources = source_cells(stem)  # cell for cell the learner notebook's (test_both_versions_match_the_source)
    seconds = execute(notebook, LEARNER_DIR, allow_errors=True)
    assert seconds <= BUDGET_SECONDS
    hints: list[str] = []  # the hints of the stubs since the last check
    checked = 0
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        hints += strip_solutions(sources[index].source)[1]
        if not is_check(cell.source):
            assert cell.outputs == [], f"cell {index}"
            continue
        (output,) = cell.outputs
        assert output.output_type == "error" and output.ename == "NotYet", f"cell {index}"
        first, second = output.traceback  # two lines, no traceback
        assert first in [
            f"Not yet: this exercise still raises NotImplementedError — {hint}" for hint in hints
        ]
        assert re.fullmatch(
            r"\(Exercise [1-9]\d* · .+: replace the `raise NotImplementedError\(\.\.\.\)` .+\.\)", second
        )
        hints = []
        checked += 1
    assert checked == sum(cell.kind == "code" and is_check(cell.source) for cell in sources) >= 1


# --- 3. each check passes on the solution and fails on wrong answers, for the right reason --------


async def run_cell(source: str, namespace: dict[str, Any], name: str) -> None:
    """Run a notebook cell's code in ``namespace``, with top-level ``await`` as in Jupyter."""
    code = compile(source, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if code.co_flags & inspect.CO_COROUTINE:
        await result


async def run_exercise(number: int, target: str = "", wrong: Any = None, *, learner: bool = False) -> None:
    """Run the cells of exercise ``number``'s notebook, then its check cell.

    ``target`` names what ``wrong`` replaces before the check runs: a function, or a method
    (``"Class.method"``: the class becomes a subclass of the solution's, with that method).
    ``learner`` runs the learner's version (the stubs) instead of the solution.
    """
    ((stem, check_index),) = [(stem, index) for stem, index, name in check_cells() if name == CHECKS[number]]
    namespace: dict[str, Any] = {}
    for index, cell in enumerate(source_cells(stem)[:check_index]):
        if cell.kind == "code" and not is_check(cell.source):
            source = strip_solutions(cell.source)[0] if learner else cell.source
            await run_cell(source, namespace, f"<{stem} cell {index}>")
    if target:
        class_name, _, method = target.rpartition(".")
        if class_name:
            solution_class = namespace[class_name]
            namespace[class_name] = type(f"Wrong{class_name}", (solution_class,), {method: wrong})
        else:
            namespace[target] = wrong
    await run_cell(source_cells(stem)[check_index].source, namespace, f"<{stem} cell {check_index}>")


@pytest.mark.parametrize("number", list(CHECKS))
async def test_the_check_passes_on_the_solution(number: int, capsys: pytest.CaptureFixture[str]) -> None:
    await run_exercise(number)
    assert capsys.readouterr().out.startswith(f"✅ Exercise {number} passed: ")


@pytest.mark.parametrize("number", list(CHECKS))
async def test_the_check_fails_on_the_stub(number: int) -> None:
    with pytest.raises(NotYet, match=r"^Not yet: this exercise still raises NotImplementedError — "):
        await run_exercise(number, learner=True)


# Exercise 1: trainer_reducer


def release_ignored(trainer: Any, event: Any) -> Any:
    return course_trainer_reducer(trainer, event)  # the course's reducer, as it is


def release_keeps_the_version(trainer: Any, event: Any) -> Any:
    if event.type == "TRAINER_RELEASED_POKEMON":
        gone = event.payload["pokemon_id"]
        return replace(trainer, pokemon_ids=tuple(p for p in trainer.pokemon_ids if p != gone))
    return course_trainer_reducer(trainer, event)


def unknown_types_refused(trainer: Any, event: Any) -> Any:
    if event.type not in {"TRAINER_CREATED", "TRAINER_CAUGHT_POKEMON", "TRAINER_RELEASED_POKEMON"}:
        raise ValueError(f"unknown event type {event.type}")
    if event.type == "TRAINER_RELEASED_POKEMON":
        gone = event.payload["pokemon_id"]
        return replace(
            trainer, version=event.version, pokemon_ids=tuple(p for p in trainer.pokemon_ids if p != gone)
        )
    return course_trainer_reducer(trainer, event)


def released(trainer: Any, event: Any, pokemon_ids: tuple[str, ...]) -> Any:
    return replace(trainer, version=event.version, pokemon_ids=pokemon_ids)


def a_right_reducer(trainer: Any, event: Any) -> Any:
    """What the wrong answers below get right: every event but the one each gets wrong."""
    if event.type == "TRAINER_RELEASED_POKEMON":
        gone = event.payload["pokemon_id"]
        return released(trainer, event, tuple(p for p in trainer.pokemon_ids if p != gone))
    return course_trainer_reducer(trainer, event)


def release_the_first(trainer: Any, event: Any) -> Any:
    if event.type == "TRAINER_RELEASED_POKEMON":
        return released(trainer, event, trainer.pokemon_ids[1:])  # the one released is not always the first
    return a_right_reducer(trainer, event)


def compared_with_the_event_type(trainer: Any, event: Any) -> Any:
    if event.type == TRAINER_CREATED:  # an EventType, never equal to a str: no branch matches
        return Trainer(aggregate_id=event.aggregate_id, version=event.version, name=event.payload["name"])
    return replace(trainer, version=event.version)


def pokemon_ids_in_a_list(trainer: Any, event: Any) -> Any:
    if event.type == "TRAINER_CREATED":
        return Trainer(event.aggregate_id, event.version, event.payload["name"], [])
    if event.type == "TRAINER_CAUGHT_POKEMON":
        return replace(
            trainer, version=event.version, pokemon_ids=[*trainer.pokemon_ids, event.payload["pokemon_id"]]
        )
    return a_right_reducer(trainer, event)


def popping_the_payload(trainer: Any, event: Any) -> Any:
    if event.type == "TRAINER_CAUGHT_POKEMON":
        caught = event.payload.pop("pokemon_id")  # changes the stored event
        return replace(trainer, version=event.version, pokemon_ids=(*trainer.pokemon_ids, caught))
    return a_right_reducer(trainer, event)


def created_as_misty(trainer: Any, event: Any) -> Any:
    if event.type == "TRAINER_CREATED":
        return Trainer(event.aggregate_id, event.version, "Misty")
    return a_right_reducer(trainer, event)


# Exercise 2: make_level_up_command


async def level_up_handler(input: Any, event_stores: Any) -> int:
    (store,) = event_stores
    current = (await store.get_existing_aggregate(input["pokemon_id"])).aggregate
    event = pokemon_leveled_up(input["pokemon_id"], version=current.version + 1)
    result = await store.push_event(event, prev_aggregate=current)
    return result.next_aggregate.level


def level_up_command(pokemons: EventStore, handler: Callable[..., Any], **options: Any) -> Command:
    return Command(command_id="LEVEL_UP", required_event_stores=[pokemons], handler=handler, **options)


def default_retries(pokemons: EventStore) -> Command:
    return level_up_command(pokemons, level_up_handler)


def swallowing_conflicts(pokemons: EventStore) -> Command:
    async def handler(input: Any, event_stores: Any) -> Any:
        try:
            return await level_up_handler(input, event_stores)
        except EventAlreadyExistsError:
            return None

    return level_up_command(pokemons, handler, event_already_exists_retries=3)


def returning_the_aggregate(pokemons: EventStore) -> Command:
    async def handler(input: Any, event_stores: Any) -> Any:
        await level_up_handler(input, event_stores)
        return (await event_stores[0].get_aggregate(input["pokemon_id"])).aggregate

    return level_up_command(pokemons, handler, event_already_exists_retries=3)


def levelling_up_pikachu_only(pokemons: EventStore) -> Command:
    async def handler(input: Any, event_stores: Any) -> Any:
        return await level_up_handler({"pokemon_id": "pikachu"}, event_stores)

    return level_up_command(pokemons, handler, event_already_exists_retries=3)


def reading_once_for_all_calls(pokemons: EventStore) -> Command:
    known: dict[str, Any] = {}  # the state of each Pokémon, read once, then kept across calls

    async def handler(input: Any, event_stores: Any) -> Any:
        (store,) = event_stores
        pokemon_id = input["pokemon_id"]
        if pokemon_id not in known:
            known[pokemon_id] = (await store.get_existing_aggregate(pokemon_id)).aggregate
        current = known[pokemon_id]
        event = pokemon_leveled_up(pokemon_id, version=current.version + 1)
        known[pokemon_id] = (await store.push_event(event, prev_aggregate=current)).next_aggregate
        return known[pokemon_id].level

    return level_up_command(pokemons, handler, event_already_exists_retries=3)


# Exercise 3: listen_for_level_ups


def filtering_in_the_handler(bus_adapter: Any, alerts: list) -> None:
    async def alert(message: Any, context: Any) -> None:
        if message.event_store_id == "POKEMONS" and message.event.type == POKEMON_LEVELED_UP.type:
            alerts.append((message.event.aggregate_id, message.event.version))

    bus_adapter.on({}, alert)


def cancelling_to_skip(bus_adapter: Any, alerts: list) -> None:
    """Raises CancelledError to "skip" a message: a failed delivery, retried a minute later."""

    async def alert(message: Any, context: Any) -> None:
        if message.event.type != POKEMON_LEVELED_UP.type:
            raise asyncio.CancelledError
        alerts.append((message.event.aggregate_id, message.event.version))

    bus_adapter.on({"event_store_id": "POKEMONS"}, alert)


def alerting_on_replays(bus_adapter: Any, alerts: list) -> None:
    async def alert(message: Any, context: Any) -> None:
        alerts.append((message.event.aggregate_id, message.event.version))

    bus_adapter.on(
        {"event_store_id": "POKEMONS", "event_type": POKEMON_LEVELED_UP.type, "on_replay": True}, alert
    )


def with_a_plain_function(bus_adapter: Any, alerts: list) -> None:
    def alert(message: Any, context: Any) -> None:
        alerts.append((message.event.aggregate_id, message.event.version))

    bus_adapter.on({"event_store_id": "POKEMONS", "event_type": POKEMON_LEVELED_UP.type}, alert)


def any_store_s_level_ups(bus_adapter: Any, alerts: list) -> None:
    async def alert(message: Any, context: Any) -> None:
        alerts.append((message.event.aggregate_id, message.event.version))

    bus_adapter.on({"event_type": POKEMON_LEVELED_UP.type}, alert)


def filtering_on_the_event_type_object(bus_adapter: Any, alerts: list) -> None:
    async def alert(message: Any, context: Any) -> None:
        alerts.append((message.event.aggregate_id, message.event.version))

    bus_adapter.on({"event_store_id": "POKEMONS", "event_type": POKEMON_LEVELED_UP}, alert)


# Exercise 4: connect_to_level_queue, level_up


async def level_up_then_read(connected: Any, pokemon: Any) -> Any:
    await connected.push_event(pokemon_leveled_up(pokemon.aggregate_id, version=pokemon.version + 1))
    return (await connected.get_aggregate(pokemon.aggregate_id)).aggregate


def connected_to_a_bus(pokemons: EventStore, worker: Any) -> Any:
    bus = StateCarryingMessageBus(message_bus_id="LEVELS", source_event_stores=[pokemons])
    InMemoryMessageBusAdapter.attach_to(bus).on({}, worker)
    return ConnectedEventStore(pokemons, bus)


def connected_to_a_notification_queue(pokemons: EventStore, worker: Any) -> Any:
    queue = NotificationMessageQueue(message_queue_id="LEVELS", source_event_stores=[pokemons])
    InMemoryMessageQueueAdapter.attach_to(queue, worker=worker)
    return ConnectedEventStore(pokemons, queue)


def connected_with_a_worker_of_its_own(pokemons: EventStore, worker: Any) -> Any:
    queue = StateCarryingMessageQueue(message_queue_id="LEVELS", source_event_stores=[pokemons])

    async def print_it(message: Any, context: Any) -> None:
        print(message)  # the worker it was given is never called

    InMemoryMessageQueueAdapter.attach_to(queue, worker=print_it)
    return ConnectedEventStore(pokemons, queue)


def connected_with_a_wrapped_worker(pokemons: EventStore, worker: Any) -> Any:
    """Right, although the adapter's worker is not the one given: it calls it."""
    queue = StateCarryingMessageQueue(message_queue_id="LEVELS", source_event_stores=[pokemons])

    async def logging_worker(message: Any, context: Any) -> None:
        await worker(message, context)

    InMemoryMessageQueueAdapter.attach_to(queue, worker=logging_worker)
    return ConnectedEventStore(pokemons, queue)


async def test_a_queue_whose_worker_calls_the_given_one_passes(capsys: pytest.CaptureFixture[str]) -> None:
    await run_exercise(4, "connect_to_level_queue", connected_with_a_wrapped_worker)
    assert capsys.readouterr().out.startswith("✅ Exercise 4 passed: ")


# Exercise 5: catch


async def catch_events(pokemons: EventStore, trainers: EventStore, pokemon_id: str, trainer_id: str) -> Any:
    """The two events of a catch, each at its aggregate's next version."""
    pokemon = (await pokemons.get_existing_aggregate(pokemon_id)).aggregate
    trainer = (await trainers.get_existing_aggregate(trainer_id)).aggregate
    return (
        (pokemons, pokemon_caught(pokemon_id, version=pokemon.version + 1, trainer_id=trainer_id)),
        (trainers, trainer_caught_pokemon(trainer_id, version=trainer.version + 1, pokemon_id=pokemon_id)),
    )


async def catch_in_two_pushes(*stores_and_ids: Any) -> None:
    for store, event in await catch_events(*stores_and_ids):
        await store.push_event(event)


async def catch_in_two_pushes_trainer_first(*stores_and_ids: Any) -> None:
    for store, event in reversed(await catch_events(*stores_and_ids)):
        await store.push_event(event)


async def catch_swallowing_the_conflict(*stores_and_ids: Any) -> None:
    grouped = [store.group_event(event) for store, event in await catch_events(*stores_and_ids)]
    with contextlib.suppress(EventAlreadyExistsError):
        await EventStore.push_event_group(*grouped)


async def catch_retrying_three_times(*stores_and_ids: Any) -> None:
    for attempt_number in range(3):
        grouped = [store.group_event(event) for store, event in await catch_events(*stores_and_ids)]
        try:
            await EventStore.push_event_group(*grouped)
            return
        except EventAlreadyExistsError:
            if attempt_number == 2:
                raise


async def catch_at_version_two(
    pokemons: EventStore, trainers: EventStore, pokemon_id: str, trainer_id: str
) -> None:
    trainer = (await trainers.get_existing_aggregate(trainer_id)).aggregate
    caught = pokemon_caught(pokemon_id, version=2, trainer_id=trainer_id)  # a wild Pokémon is not always at 1
    recorded = trainer_caught_pokemon(trainer_id, version=trainer.version + 1, pokemon_id=pokemon_id)
    await EventStore.push_event_group(pokemons.group_event(caught), trainers.group_event(recorded))


# Exercise 6: rebuild_levels


def levels_listener(levels: dict[str, int]) -> Callable[..., Any]:
    async def keep(message: Any, context: Any) -> None:
        event = message.event
        if event.type == "POKEMON_APPEARED":
            levels[event.aggregate_id] = event.payload["level"]
        elif event.type == "POKEMON_LEVELED_UP":
            levels[event.aggregate_id] += 1

    return keep


async def rebuild_without_on_replay(pokemons: EventStore, bus: Any) -> dict[str, int]:
    levels: dict[str, int] = {}
    bus.message_channel_adapter.on({"event_store_id": "POKEMONS"}, levels_listener(levels))
    await pour_event_store_events(event_store=pokemons, message_channel=bus)
    return levels


async def rebuild_one_aggregate(pokemons: EventStore, bus: Any) -> dict[str, int]:
    levels: dict[str, int] = {}
    bus.message_channel_adapter.on({"on_replay": True}, levels_listener(levels))
    await pour_aggregate_events(event_store=pokemons, message_channel=bus, aggregate_id="pikachu")
    return levels


async def rebuild_by_reading(pokemons: EventStore, bus: Any) -> dict[str, int]:
    listing = await pokemons.list_aggregate_ids()
    return {
        entry.aggregate_id: (await pokemons.get_aggregate(entry.aggregate_id)).aggregate.level
        for entry in listing.aggregate_ids
    }


async def rebuild_on_a_new_adapter(pokemons: EventStore, bus: Any) -> dict[str, int]:
    levels: dict[str, int] = {}
    InMemoryMessageBusAdapter.attach_to(bus).on({"on_replay": True}, levels_listener(levels))
    await pour_event_store_events(event_store=pokemons, message_channel=bus)
    return levels


async def rebuild_live(pokemons: EventStore, bus: Any) -> dict[str, int]:
    levels: dict[str, int] = {}
    bus.message_channel_adapter.on({}, levels_listener(levels))
    for entry in await pokemons.event_storage_adapter.read_log():
        await bus.publish_message(NotificationMessage("POKEMONS", entry.event))
    return levels


async def rebuild_without_waiting(pokemons: EventStore, bus: Any) -> dict[str, int]:
    levels: dict[str, int] = {}
    bus.message_channel_adapter.on({"on_replay": True}, levels_listener(levels))
    await pour_event_store_events(event_store=pokemons, message_channel=bus)
    return levels  # the in-memory bus may have run the listener already; a broker has not


async def rebuild_reading_the_store(pokemons: EventStore, bus: Any) -> dict[str, int]:
    levels: dict[str, int] = {}

    async def keep(message: Any, context: Any) -> None:
        pokemon_id = message.event.aggregate_id
        levels[pokemon_id] = (await pokemons.get_aggregate(pokemon_id)).aggregate.level

    bus.message_channel_adapter.on({"on_replay": True}, keep)
    await pour_event_store_events(event_store=pokemons, message_channel=bus)
    await bus.message_channel_adapter.wait_idle()
    return levels


# Exercise 7: LevelUpCounter.handle (subclasses of the solution's class)


async def handle_without_memory(self: Any, message: Any, context: Any) -> None:
    self.apply(message)


async def handle_recording_first(self: Any, message: Any, context: Any) -> None:
    key = (message.event_store_id, message.event.aggregate_id, message.event.version)
    if key not in self.processed:
        self.processed.add(key)
        self.apply(message)


async def handle_keyed_by_version(self: Any, message: Any, context: Any) -> None:
    if message.event.version not in self.processed:
        self.apply(message)
        self.processed.add(message.event.version)


async def handle_swallowing_errors(self: Any, message: Any, context: Any) -> None:
    key = (message.event_store_id, message.event.aggregate_id, message.event.version)
    if key in self.processed:
        return
    try:
        self.apply(message)
        self.processed.add(key)
    except Exception:
        pass


async def handle_keyed_by_identity(self: Any, message: Any, context: Any) -> None:
    if id(message) not in self.processed:  # a redelivery is another object, equal to the first
        self.apply(message)
        self.processed.add(id(message))


async def handle_keyed_without_the_store(self: Any, message: Any, context: Any) -> None:
    key = (message.event.aggregate_id, message.event.version)
    if key not in self.processed:
        self.apply(message)
        self.processed.add(key)


async def handle_keeping_the_last_version(self: Any, message: Any, context: Any) -> None:
    key = (message.event_store_id, message.event.aggregate_id)
    last_versions = self.__dict__.setdefault("last_versions", {})
    if message.event.version > last_versions.get(key, 0):  # skips a version that comes late
        self.apply(message)
        last_versions[key] = message.event.version


# Exercise 8: relay_step


async def relay_from_the_start(storage: Any, channel: Any, checkpoints: Any, name: str) -> int:
    entries = await storage.read_log()
    for entry in entries:
        await channel.publish_message(NotificationMessage(entry.event_store_id, entry.event))
        await checkpoints.save(name, entry.position)
    return len(entries)


async def relay_saving_first(storage: Any, channel: Any, checkpoints: Any, name: str) -> int:
    entries = await storage.read_log(after_position=await checkpoints.load(name))
    await checkpoints.save(name, await storage.last_position())
    for entry in entries:
        await channel.publish_message(NotificationMessage(entry.event_store_id, entry.event))
    return len(entries)


async def relay_saving_at_the_end(storage: Any, channel: Any, checkpoints: Any, name: str) -> int:
    entries = await storage.read_log(after_position=await checkpoints.load(name))
    for entry in entries:
        await channel.publish_message(NotificationMessage(entry.event_store_id, entry.event))
    if entries:
        await checkpoints.save(name, entries[-1].position)
    return len(entries)


async def relay_stopping_quietly(storage: Any, channel: Any, checkpoints: Any, name: str) -> int:
    published = 0
    for entry in await storage.read_log(after_position=await checkpoints.load(name)):
        try:
            await channel.publish_message(NotificationMessage(entry.event_store_id, entry.event))
        except Exception:
            break
        await checkpoints.save(name, entry.position)
        published += 1
    return published


async def relay_with_one_checkpoint(storage: Any, channel: Any, checkpoints: Any, name: str) -> int:
    published = 0
    for entry in await storage.read_log(after_position=await checkpoints.load("relay")):
        await channel.publish_message(NotificationMessage(entry.event_store_id, entry.event))
        await checkpoints.save("relay", entry.position)
        await checkpoints.save(name, entry.position)
        published += 1
    return published


async def relay_saving_a_count(storage: Any, channel: Any, checkpoints: Any, name: str) -> int:
    start, published = await checkpoints.load(name), 0
    for entry in await storage.read_log(after_position=start):
        await channel.publish_message(NotificationMessage(entry.event_store_id, entry.event))
        published += 1
        await checkpoints.save(name, start + published)  # a count, not a position
    return published


async def relay_ignoring_its_name(storage: Any, channel: Any, checkpoints: Any, name: str) -> int:
    published = 0
    for entry in await storage.read_log(after_position=await checkpoints.load("relay")):
        await channel.publish_message(NotificationMessage(entry.event_store_id, entry.event))
        await checkpoints.save("relay", entry.position)
        published += 1
    return published


# Exercise 9: read_new


async def read_everything_committed(log: Any, checkpoint: int) -> Any:
    entries = await log.read_log(after_position=checkpoint)
    return entries, entries[-1].position if entries else checkpoint


async def read_until_a_gap(log: Any, checkpoint: int) -> Any:
    entries = []
    for entry in await log.read_log(after_position=checkpoint):
        if entry.position != checkpoint + len(entries) + 1:
            break  # waits for the gap to fill: a rolled-back position never does
        entries.append(entry)
    return entries, entries[-1].position if entries else checkpoint


async def read_then_ask_for_the_horizon(log: Any, checkpoint: int) -> Any:
    entries = await log.read_log(after_position=checkpoint)
    horizon = await log.oldest_in_flight()  # too late: a transaction may have committed meanwhile
    if horizon is not None:
        entries = [entry for entry in entries if entry.position < horizon]
    return entries, entries[-1].position if entries else checkpoint


async def read_returning_the_entries_only(log: Any, checkpoint: int) -> Any:
    horizon = await log.oldest_in_flight()
    entries = await log.read_log(after_position=checkpoint)
    return [entry for entry in entries if horizon is None or entry.position < horizon]


async def read_counting_the_checkpoint(log: Any, checkpoint: int) -> Any:
    horizon = await log.oldest_in_flight()
    entries = await log.read_log(after_position=checkpoint)
    entries = [entry for entry in entries if horizon is None or entry.position < horizon]
    return entries, checkpoint + len(entries)  # a count: wrong after a gap


# Exercise 10: work


def level_up_key(message: Any) -> tuple[str, str, int]:
    return (message.event_store_id, message.event.aggregate_id, message.event.version)


async def work_acking_first(delivery: Any, board: Any) -> None:
    await delivery.ack()
    async with board.transaction() as tx:
        if not tx.has_applied(level_up_key(delivery.message)):
            tx.level_up(delivery.message.event.aggregate_id)
            tx.remember(level_up_key(delivery.message))


async def work_acking_inside_the_transaction(delivery: Any, board: Any) -> None:
    async with board.transaction() as tx:
        if not tx.has_applied(level_up_key(delivery.message)):
            tx.level_up(delivery.message.event.aggregate_id)
            tx.remember(level_up_key(delivery.message))
        await delivery.ack()


async def work_without_a_key(delivery: Any, board: Any) -> None:
    async with board.transaction() as tx:
        tx.level_up(delivery.message.event.aggregate_id)
    await delivery.ack()


async def work_skipping_without_ack(delivery: Any, board: Any) -> None:
    async with board.transaction() as tx:
        if tx.has_applied(level_up_key(delivery.message)):
            return
        tx.level_up(delivery.message.event.aggregate_id)
        tx.remember(level_up_key(delivery.message))
    await delivery.ack()


async def work_swallowing_errors(delivery: Any, board: Any) -> None:
    try:
        async with board.transaction() as tx:
            if not tx.has_applied(level_up_key(delivery.message)):
                tx.level_up(delivery.message.event.aggregate_id)
                tx.remember(level_up_key(delivery.message))
    except Exception:
        pass
    await delivery.ack()


async def work_keyed_without_the_store(delivery: Any, board: Any) -> None:
    message = delivery.message
    key = (message.event.aggregate_id, message.event.version)
    async with board.transaction() as tx:
        if not tx.has_applied(key):
            tx.level_up(message.event.aggregate_id)
            tx.remember(key)
    await delivery.ack()


async def work_keyed_by_identity(delivery: Any, board: Any) -> None:
    async with board.transaction() as tx:
        if not tx.has_applied(id(delivery.message)):
            tx.level_up(delivery.message.event.aggregate_id)
            tx.remember(id(delivery.message))
    await delivery.ack()


async def work_retrying_the_transaction(delivery: Any, board: Any) -> None:
    for _ in range(3):
        try:
            async with board.transaction() as tx:
                if not tx.has_applied(level_up_key(delivery.message)):
                    tx.level_up(delivery.message.event.aggregate_id)
                    tx.remember(level_up_key(delivery.message))
            break
        except ConnectionError:
            continue
    await delivery.ack()


async def work_remembering_in_a_second_transaction(delivery: Any, board: Any) -> None:
    key = level_up_key(delivery.message)
    async with board.transaction() as tx:
        applied = tx.has_applied(key)
        if not applied:
            tx.level_up(delivery.message.event.aggregate_id)
    if not applied:
        async with board.transaction() as tx:
            tx.remember(key)
    await delivery.ack()


# Exercise 11: project_step


async def step_without_a_transaction(connection: Any, storage: Any, name: str) -> int:
    entries = await storage.read_log(after_position=load_checkpoint(connection, name))
    for entry in entries:
        apply_level(connection, entry)  # each statement commits by itself
    if entries:
        save_checkpoint(connection, name, entries[-1].position)
    return len(entries)


async def step_saving_the_checkpoint_first(connection: Any, storage: Any, name: str) -> int:
    connection.execute("BEGIN IMMEDIATE")
    entries = await storage.read_log(after_position=load_checkpoint(connection, name))
    if entries:
        save_checkpoint(connection, name, entries[-1].position)
    connection.execute("COMMIT")  # the checkpoint, committed before what it covers
    connection.execute("BEGIN IMMEDIATE")
    try:
        for entry in entries:
            apply_level(connection, entry)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return len(entries)


async def step_committing_the_checkpoint_apart(connection: Any, storage: Any, name: str) -> int:
    connection.execute("BEGIN IMMEDIATE")
    try:
        entries = await storage.read_log(after_position=load_checkpoint(connection, name))
        for entry in entries:
            apply_level(connection, entry)
        connection.execute("COMMIT")  # the levels, committed without their checkpoint...
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    if entries:
        save_checkpoint(connection, name, entries[-1].position)  # ...which comes in a second transaction
    return len(entries)


def one_transaction(
    name: str, read_after: Callable[[Any, str], int], save: Callable[[Any, Any, str, int], None]
) -> Any:
    """A step in one transaction, that reads after ``read_after(connection, name)`` and saves with
    ``save(connection, entries, name, checkpoint)``: the right shape, with one part wrong."""

    async def step(connection: Any, storage: Any, name: str) -> int:
        connection.execute("BEGIN IMMEDIATE")
        try:
            checkpoint = read_after(connection, name)
            entries = await storage.read_log(after_position=checkpoint)
            for entry in entries:
                apply_level(connection, entry)
            save(connection, entries, name, checkpoint)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return len(entries)

    step.__name__ = name
    return step


def save_the_last_position(connection: Any, entries: Any, name: str, checkpoint: int) -> None:
    if entries:
        save_checkpoint(connection, name, entries[-1].position)


step_reading_from_the_start = one_transaction(
    "step_reading_from_the_start", lambda connection, name: 0, save_the_last_position
)
step_saving_a_count = one_transaction(
    "step_saving_a_count",
    load_checkpoint,
    lambda connection, entries, name, checkpoint: save_checkpoint(
        connection, name, checkpoint + len(entries)
    ),
)
step_with_a_hard_coded_name = one_transaction(
    "step_with_a_hard_coded_name",
    lambda connection, name: load_checkpoint(connection, "levels"),
    lambda connection, entries, name, checkpoint: save_the_last_position(
        connection, entries, "levels", checkpoint
    ),
)
step_never_saving = one_transaction(
    "step_never_saving", load_checkpoint, lambda connection, entries, name, checkpoint: None
)


async def step_without_rollback(connection: Any, storage: Any, name: str) -> int:
    connection.execute("BEGIN IMMEDIATE")
    entries = await storage.read_log(after_position=load_checkpoint(connection, name))
    for entry in entries:
        apply_level(connection, entry)
    if entries:
        save_checkpoint(connection, name, entries[-1].position)
    connection.execute("COMMIT")  # never reached after an error: the transaction stays open
    return len(entries)


async def step_swallowing_errors(connection: Any, storage: Any, name: str) -> int:
    connection.execute("BEGIN IMMEDIATE")
    try:
        entries = await storage.read_log(after_position=load_checkpoint(connection, name))
        for entry in entries:
            apply_level(connection, entry)
        if entries:
            save_checkpoint(connection, name, entries[-1].position)
        connection.execute("COMMIT")
    except Exception:
        connection.execute("ROLLBACK")
        return 0  # rolled back, but nobody learns that the step failed
    return len(entries)


# Exercise 12: get_aggregate_from_snapshots


def of_this_reducer(snapshots: Any, reducer_version: str, max_version: int | None) -> list[Any]:
    return [
        snapshot
        for snapshot in snapshots
        if snapshot.reducer_version == reducer_version
        and (max_version is None or snapshot.version <= max_version)
    ]


async def fold_after(event_store: Any, aggregate_id: str, snapshot: Any, max_version: int | None) -> Any:
    """What the solution does once it has chosen ``snapshot``."""
    events = await event_store.get_events(
        aggregate_id, min_version=snapshot.version + 1, max_version=max_version
    )
    return event_store.build_aggregate(events, copy.deepcopy(snapshot.aggregate))


async def fold_ignoring_the_reducer_version(
    event_store: Any, snapshots: Any, aggregate_id: str, *, reducer_version: str, max_version: Any = None
) -> Any:
    fitting = [snapshot for snapshot in snapshots if max_version is None or snapshot.version <= max_version]
    if not fitting:
        return event_store.build_aggregate(
            await event_store.get_events(aggregate_id, max_version=max_version)
        )
    return await fold_after(event_store, aggregate_id, max(fitting, key=lambda s: s.version), max_version)


async def fold_reading_every_event(
    event_store: Any, snapshots: Any, aggregate_id: str, *, reducer_version: str, max_version: Any = None
) -> Any:
    events = await event_store.get_events(aggregate_id, max_version=max_version)  # then slices
    fitting = of_this_reducer(snapshots, reducer_version, max_version)
    if not fitting:
        return event_store.build_aggregate(events)
    latest = max(fitting, key=lambda s: s.version)
    return event_store.build_aggregate(events[latest.version :], copy.deepcopy(latest.aggregate))


async def fold_from_the_snapshots_own_version(
    event_store: Any, snapshots: Any, aggregate_id: str, *, reducer_version: str, max_version: Any = None
) -> Any:
    fitting = of_this_reducer(snapshots, reducer_version, max_version)
    if not fitting:
        return event_store.build_aggregate(
            await event_store.get_events(aggregate_id, max_version=max_version)
        )
    latest = max(fitting, key=lambda s: s.version)
    events = await event_store.get_events(aggregate_id, min_version=latest.version, max_version=max_version)
    return event_store.build_aggregate(events, copy.deepcopy(latest.aggregate))


async def fold_in_place(
    event_store: Any, snapshots: Any, aggregate_id: str, *, reducer_version: str, max_version: Any = None
) -> Any:
    fitting = of_this_reducer(snapshots, reducer_version, max_version)
    if not fitting:
        return event_store.build_aggregate(
            await event_store.get_events(aggregate_id, max_version=max_version)
        )
    latest = max(fitting, key=lambda s: s.version)
    events = await event_store.get_events(
        aggregate_id, min_version=latest.version + 1, max_version=max_version
    )
    return event_store.build_aggregate(events, latest.aggregate)  # the kept snapshot's own dict


async def fold_from_a_snapshot_after_max_version(
    event_store: Any, snapshots: Any, aggregate_id: str, *, reducer_version: str, max_version: Any = None
) -> Any:
    fitting = of_this_reducer(snapshots, reducer_version, None)  # the newest, whatever max_version says
    if not fitting:
        return event_store.build_aggregate(
            await event_store.get_events(aggregate_id, max_version=max_version)
        )
    return await fold_after(event_store, aggregate_id, max(fitting, key=lambda s: s.version), max_version)


async def fold_past_max_version(
    event_store: Any, snapshots: Any, aggregate_id: str, *, reducer_version: str, max_version: Any = None
) -> Any:
    fitting = of_this_reducer(snapshots, reducer_version, max_version)
    if not fitting:
        return event_store.build_aggregate(
            await event_store.get_events(aggregate_id, max_version=max_version)
        )
    return await fold_after(event_store, aggregate_id, max(fitting, key=lambda s: s.version), None)


async def fold_from_the_first_snapshot_that_fits(
    event_store: Any, snapshots: Any, aggregate_id: str, *, reducer_version: str, max_version: Any = None
) -> Any:
    fitting = of_this_reducer(snapshots, reducer_version, max_version)
    if not fitting:
        return event_store.build_aggregate(
            await event_store.get_events(aggregate_id, max_version=max_version)
        )
    return await fold_after(event_store, aggregate_id, fitting[0], max_version)  # not the latest


async def fold_without_a_fallback(
    event_store: Any, snapshots: Any, aggregate_id: str, *, reducer_version: str, max_version: Any = None
) -> Any:
    latest = max(of_this_reducer(snapshots, reducer_version, max_version), key=lambda s: s.version)
    return await fold_after(event_store, aggregate_id, latest, max_version)


# Exercise 13: sighted_v1_to_v2


def sighted_mutating_the_payload(event: Any) -> Any:
    payload = event.payload  # the old event's own dict
    payload["species"] = payload.pop("name")
    payload["route"], payload["region"] = payload.pop("place").rsplit(", ", 1)
    return replace(event, payload=payload, schema_version=2)


def sighted_dropping_unknown_fields(event: Any) -> Any:
    route, region = event.payload["place"].rsplit(", ", 1)
    payload = {
        "species": event.payload["name"],
        "level": event.payload["level"],
        "route": route,
        "region": region,
    }
    return replace(event, payload=payload, schema_version=2)


def sighted_not_bumped(event: Any) -> Any:
    payload = dict(event.payload)
    payload["species"] = payload.pop("name")
    payload["route"], payload["region"] = payload.pop("place").rsplit(", ", 1)
    return replace(event, payload=payload)


def sighted_in_kanto(event: Any) -> Any:
    payload = dict(event.payload)
    payload["species"] = payload.pop("name")
    payload["route"] = payload.pop("place").rsplit(", ", 1)[0]
    payload["region"] = "Kanto"  # every example is in Kanto...
    return replace(event, payload=payload, schema_version=2)


def sighted_capping_the_level(event: Any) -> Any:
    payload = dict(event.payload)
    payload["species"] = payload.pop("name")
    payload["route"], payload["region"] = payload.pop("place").rsplit(", ", 1)
    payload["level"] = min(payload["level"], 50)  # today's rule, applied to history
    return replace(event, payload=payload, schema_version=2)


def sighted_keeping_the_name(event: Any) -> Any:
    payload = dict(event.payload, species=event.payload["name"])
    payload["route"], payload["region"] = payload.pop("place").rsplit(", ", 1)
    return replace(event, payload=payload, schema_version=2)


def sighted_returning_the_payload(event: Any) -> Any:
    payload = dict(event.payload)
    payload["species"] = payload.pop("name")
    payload["route"], payload["region"] = payload.pop("place").rsplit(", ", 1)
    return payload


def sighted_as_a_new_event(event: Any) -> Any:
    payload = dict(event.payload)
    payload["species"] = payload.pop("name")
    payload["route"], payload["region"] = payload.pop("place").rsplit(", ", 1)
    return EventDetail(
        aggregate_id=event.aggregate_id,
        version=event.version,
        type=event.type,
        payload=payload,
        schema_version=2,
    )


# (exercise, what the wrong answer replaces, the wrong answer, what the check must say about it)
WRONG_ANSWERS = [
    (1, "trainer_reducer", release_ignored, "should no longer own that Pokémon"),
    (
        1,
        "trainer_reducer",
        release_keeps_the_version,
        "should change pokemon_ids and the version, nothing else",
    ),
    (1, "trainer_reducer", unknown_types_refused, "your reducer (on TRAINER_WAVED) raised ValueError"),
    (
        1,
        "trainer_reducer",
        release_the_first,
        "without the released id (payload['pokemon_id']), wherever it stands",
    ),
    (1, "trainer_reducer", compared_with_the_event_type, "event.type == TRAINER_CREATED.type"),
    (1, "trainer_reducer", pokemon_ids_in_a_list, "pokemon_ids is a list, not a tuple"),
    (1, "trainer_reducer", popping_the_payload, "changed the payload of the event it was given"),
    (1, "trainer_reducer", created_as_misty, "payload['name']"),
    (
        2,
        "make_level_up_command",
        default_retries,
        "of 4 concurrent level-ups failed with EventAlreadyExistsError",
    ),
    (2, "make_level_up_command", swallowing_conflicts, "Pikachu should be at level 9"),
    (2, "make_level_up_command", returning_the_aggregate, "should return the Pokémon's new level"),
    (2, "make_level_up_command", levelling_up_pikachu_only, "the Pokémon that input['pokemon_id'] names"),
    (2, "make_level_up_command", reading_once_for_all_calls, "must read the Pokémon each time it runs"),
    (3, "listen_for_level_ups", filtering_in_the_handler, "your handler was called for 10 messages"),
    (3, "listen_for_level_ups", alerting_on_replays, "a replayed level-up raised an alert"),
    (3, "listen_for_level_ups", cancelling_to_skip, "CancelledError"),
    (
        3,
        "listen_for_level_ups",
        with_a_plain_function,
        "raised TypeError: The handler must be an async function",
    ),
    (3, "listen_for_level_ups", any_store_s_level_ups, "the filter pattern can name the event_store_id too"),
    (
        3,
        "listen_for_level_ups",
        filtering_on_the_event_type_object,
        "Hint:     The event_type filter value must be a string",
    ),
    (4, "level_up", level_up_then_read, "your 3 level-ups read the store 6 times"),
    (
        4,
        "connect_to_level_queue",
        connected_to_a_bus,
        "the store is connected to a StateCarryingMessageBus, not to a queue",
    ),
    (
        4,
        "connect_to_level_queue",
        connected_to_a_notification_queue,
        "a NotificationMessageQueue carries no aggregate",
    ),
    (
        4,
        "connect_to_level_queue",
        connected_with_a_worker_of_its_own,
        "must be (or call) the worker you were given",
    ),
    (5, "catch", catch_in_two_pushes, "half a catch"),
    (5, "catch", catch_in_two_pushes_trainer_first, "stored one after the other"),
    (5, "catch", catch_swallowing_the_conflict, "yet catch did not raise"),
    (5, "catch", catch_retrying_three_times, "after the conflict, it tried again"),
    (5, "catch", catch_at_version_two, "never assume its version"),
    (6, "rebuild_levels", rebuild_without_on_replay, "your listener received none of the replayed messages"),
    (6, "rebuild_levels", rebuild_one_aggregate, "4 of the store's 8 events were replayed"),
    (6, "rebuild_levels", rebuild_by_reading, "nothing was published on the bus you were given"),
    (6, "rebuild_levels", rebuild_live, "8 messages were published live, not as replays"),
    (6, "rebuild_levels", rebuild_on_a_new_adapter, "the bus you were given has another adapter now"),
    (6, "rebuild_levels", rebuild_without_waiting, "not complete when rebuild_levels returned"),
    (6, "rebuild_levels", rebuild_reading_the_store, "fold message.event into your read model"),
    (7, "LevelUpCounter.handle", handle_without_memory, "delivered again, messages were counted again"),
    (7, "LevelUpCounter.handle", handle_recording_first, "its level-up is lost"),
    (
        7,
        "LevelUpCounter.handle",
        handle_keyed_by_version,
        "after one delivery of each message, the counts are wrong",
    ),
    (7, "LevelUpCounter.handle", handle_swallowing_errors, "did not let the error out"),
    (7, "LevelUpCounter.handle", handle_keyed_by_identity, "a message delivered again is another object"),
    (7, "LevelUpCounter.handle", handle_keyed_without_the_store, "needs the event store too"),
    (7, "LevelUpCounter.handle", handle_keeping_the_last_version, "deliveries may come out of order"),
    (8, "relay_step", relay_from_the_start, "every event should have been published once"),
    (8, "relay_step", relay_saving_first, "the checkpoint passed events never published"),
    (8, "relay_step", relay_saving_at_the_end, "save the checkpoint after each successful publish"),
    (8, "relay_step", relay_stopping_quietly, "but relay_step returned normally"),
    (8, "relay_step", relay_with_one_checkpoint, "should have its own checkpoint"),
    (8, "relay_step", relay_saving_a_count, "not a count: a log may have gaps"),
    (8, "relay_step", relay_ignoring_its_name, "not under the name it was given ('news')"),
    (9, "read_new", read_everything_committed, "nothing at or above await log.oldest_in_flight() is safe"),
    (9, "read_new", read_until_a_gap, "a rolled-back transaction leaves a gap that never fills"),
    (9, "read_new", read_then_ask_for_the_horizon, "ask for oldest_in_flight *before* reading the log"),
    (9, "read_new", read_returning_the_entries_only, "should return a pair"),
    (9, "read_new", read_counting_the_checkpoint, "not a count: position 6 is a gap"),
    (10, "work", work_acking_first, "acknowledge after the `async with board.transaction()` block"),
    (10, "work", work_acking_inside_the_transaction, "was acknowledged before its level-up was committed"),
    (10, "work", work_without_a_key, "was applied twice"),
    (10, "work", work_skipping_without_ack, "was never acknowledged"),
    (10, "work", work_swallowing_errors, "your worker returned normally"),
    (10, "work", work_keyed_without_the_store, "a message's key needs the event store"),
    (10, "work", work_keyed_by_identity, "a message delivered again is a new, equal object"),
    (10, "work", work_retrying_the_transaction, "nor retry it yourself"),
    (10, "work", work_remembering_in_a_second_transaction, "in the same transaction as its level-up"),
    (11, "project_step", step_without_a_transaction, "committed without the checkpoint that covers them"),
    (
        11,
        "project_step",
        step_saving_the_checkpoint_first,
        "the checkpoint was committed before the level changes",
    ),
    (
        11,
        "project_step",
        step_committing_the_checkpoint_apart,
        "apply and save the checkpoint in ONE transaction",
    ),
    (
        11,
        "project_step",
        step_reading_from_the_start,
        "events the checkpoint had already passed were applied again",
    ),
    (11, "project_step", step_saving_a_count, "not a count of entries"),
    (11, "project_step", step_with_a_hard_coded_name, "not under the name it was given ('pokemon-levels')"),
    (11, "project_step", step_never_saving, "your step never saved its checkpoint"),
    (11, "project_step", step_without_rollback, "left its transaction open"),
    (11, "project_step", step_swallowing_errors, "project_step returned normally"),
    (12, SNAPSHOT_READ, fold_ignoring_the_reducer_version, "the snapshot of reducer version 'v2'"),
    (
        12,
        SNAPSHOT_READ,
        fold_reading_every_event,
        "your read got all 35 events, where the 5 after the snapshot",
    ),
    (12, SNAPSHOT_READ, fold_from_the_snapshots_own_version, "the snapshot's own version was folded again"),
    (12, SNAPSHOT_READ, fold_in_place, "a kept snapshot has changed"),
    (12, SNAPSHOT_READ, fold_from_a_snapshot_after_max_version, "the snapshot at 40, after max_version"),
    (12, SNAPSHOT_READ, fold_past_max_version, "went past max_version: pass max_version to get_events"),
    (12, SNAPSHOT_READ, fold_from_the_first_snapshot_that_fits, "start from the latest snapshot that fits"),
    (12, SNAPSHOT_READ, fold_without_a_fallback, "when no snapshot fits"),
    (13, "sighted_v1_to_v2", sighted_mutating_the_payload, "changed the payload of the event it was given"),
    (13, "sighted_v1_to_v2", sighted_dropping_unknown_fields, "your upcaster dropped 'shiny'"),
    (13, "sighted_v1_to_v2", sighted_not_bumped, "says schema_version=1"),
    (13, "sighted_v1_to_v2", sighted_in_kanto, "never hard-coded"),
    (
        13,
        "sighted_v1_to_v2",
        sighted_capping_the_level,
        "today's rules (the level cap) belong in the command",
    ),
    (13, "sighted_v1_to_v2", sighted_keeping_the_name, "version 1 called it `name`"),
    (13, "sighted_v1_to_v2", sighted_returning_the_payload, "not an event"),
    (13, "sighted_v1_to_v2", sighted_as_a_new_event, "changed timestamp and metadata of the event"),
]


async def test_the_reducer_the_wrong_answers_start_from_is_right(capsys: pytest.CaptureFixture[str]) -> None:
    await run_exercise(1, "trainer_reducer", a_right_reducer)  # so each row shows one mistake only
    assert capsys.readouterr().out.startswith("✅ Exercise 1 passed: ")


def test_every_exercise_has_wrong_answers() -> None:
    assert {number for number, _, _, _ in WRONG_ANSWERS} == set(CHECKS)


@pytest.mark.parametrize(
    "number, target, wrong, says",
    WRONG_ANSWERS,
    ids=[f"{n}-{wrong.__name__}" for n, _, wrong, _ in WRONG_ANSWERS],
)
async def test_the_check_fails_on_a_plausible_wrong_answer(
    number: int, target: str, wrong: Any, says: str
) -> None:
    with pytest.raises(NotYet) as raised:
        await run_exercise(number, target, wrong)
    error = raised.value
    assert error.text.startswith("Not yet: ") and says in error.text, error.text
    assert "NotImplementedError" not in error.text
    assert f"(Exercise {number} · " in error.text.splitlines()[-1]


async def relay_forgetting_await(storage: Any, channel: Any, checkpoints: Any, name: str) -> int:
    published = 0
    for entry in storage.read_log(after_position=await checkpoints.load(name)):  # no await: a coroutine
        await channel.publish_message(NotificationMessage(entry.event_store_id, entry.event))
        await checkpoints.save(name, entry.position)
        published += 1
    return published


# The coroutine it never awaits warns when it is collected, as it would in the learner's kernel.
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
async def test_the_relay_check_says_that_an_await_is_missing() -> None:
    with pytest.raises(NotYet) as raised:
        await run_exercise(8, "relay_step", relay_forgetting_await)
    text = raised.value.text
    assert "raised TypeError: 'coroutine' object is not iterable" in text, text
    assert "put await before the call (await storage.read_log(...))" in text, text


# --- how a failure looks -------------------------------------------------------------------


async def test_a_failure_renders_as_its_message_alone_with_no_chained_exception() -> None:
    def broken() -> None:
        try:
            raise ExceptionGroup("inner", [KeyError("level")])
        except ExceptionGroup:
            raise ValueError("the learner's bug") from None

    with pytest.raises(NotYet) as raised:
        await attempt(EXERCISES[0], "your reducer", broken)
    error = raised.value
    # IPython prints an exception's whole chain (and falls back to a full traceback when the
    # chain holds an ExceptionGroup): a NotYet carries none, and renders as its own lines.
    assert error.__context__ is None and error.__cause__ is None
    assert error._render_traceback_() == error.text.splitlines()
    first_line = error.text.splitlines()[0]
    assert re.fullmatch(
        r"Not yet: your reducer raised ValueError: the learner's bug \(in broken, line \d+\)", first_line
    )
