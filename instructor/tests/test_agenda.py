"""The workshop agenda adds up: each table runs without gaps from 0:00 to the length its heading
says, a walkthrough gets at least a learner's time for its notebooks, and each pair of exercises
its 25 minutes."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from tools.course_time import course_notebooks, estimated_minutes

AGENDA = Path(__file__).resolve().parent.parent / "README.md"
MINUTES = {path.stem[:2]: estimated_minutes(path) for path in course_notebooks()}
MINUTES_PER_EXERCISE = 12.5  # an exercise notebook, two exercises, takes about 25 minutes


def minutes(clock: str) -> int:
    hours, mins = clock.split(":")
    return 60 * int(hours) + int(mins)


def agenda_tables() -> dict[str, list[tuple[int, int, str, str]]]:
    """``{heading: [(start, end, what, format), ...]}`` for every table under a ### heading."""
    tables: dict[str, list[tuple[int, int, str, str]]] = {}
    heading = None
    for line in AGENDA.read_text(encoding="utf-8").splitlines():
        if line.startswith("### "):
            heading = line[4:]
        elif heading and (row := re.fullmatch(r"\| (\d+:\d\d)–(\d+:\d\d) \| (.*) \|(.*)\|", line)):
            tables.setdefault(heading, []).append((minutes(row[1]), minutes(row[2]), row[3], row[4].strip()))
    return tables


TABLES = agenda_tables()


def test_there_are_two_half_days_and_an_optional_third() -> None:
    assert [heading.split(":")[0] for heading in TABLES] == [
        "Half-day 1",
        "Half-day 2",
        "Half-day 3, optional",
    ]


def test_every_course_notebook_has_a_slot_but_the_setup_check_and_the_servers_ones() -> None:
    """00 is done before the day; 09 and 10 start servers: homework, or demos in a longer session."""
    slotted = {
        number
        for rows in TABLES.values()
        for _, _, what, _ in rows
        for number in re.findall(r"`(\d\d)`", what)
    }
    assert slotted == set(MINUTES) - {"00", "09", "10"}


@pytest.mark.parametrize("heading", TABLES)
def test_the_table_runs_without_gaps_to_the_length_its_heading_says(heading: str) -> None:
    rows = TABLES[heading]
    said = re.search(r"\((\d+:\d\d),", heading)
    assert said is not None, f"{heading!r} does not say how long it is"
    assert rows[0][0] == 0
    for (_, end, _, _), (start, _, what, _) in itertools.pairwise(rows):
        assert start == end, f"{what!r} starts at {start} min, the row before ends at {end} min"
    assert rows[-1][1] == minutes(said[1])


@pytest.mark.parametrize("heading", TABLES)
def test_walkthroughs_and_exercises_get_their_time(heading: str) -> None:
    for start, end, what, form in TABLES[heading]:
        notebooks = re.findall(r"`(\d\d)`", what)
        if form == "walkthrough":
            needed = sum(MINUTES[number] for number in notebooks)
            assert notebooks and end - start >= needed, (
                f"{what!r}: {end - start} min, a learner needs {needed}"
            )
        if exercises := re.match(r"exercises? (\d+)(?:–(\d+))?", what):
            count = int(exercises[2] or exercises[1]) - int(exercises[1]) + 1
            assert end - start >= count * MINUTES_PER_EXERCISE, f"{what!r}: {end - start} min"
        if form == "demo":
            assert "section" in what, f"a demo names the sections it shows: {what!r}"
