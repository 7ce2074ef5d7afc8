"""Every notebook says how long it takes, and so do both course tables: the same number, the one
``tools/course_time.py`` estimates from what the notebook holds. A notebook that grows must say so.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools.course_time import Contents, contents, course_notebooks, estimated_minutes

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = [path.stem for path in course_notebooks()]


def table_minutes(markdown: Path, column: int) -> dict[str, int]:
    """``{notebook: minutes}`` from the rows of a Markdown table that start with a notebook name."""
    found = {}
    for line in markdown.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells and (name := re.fullmatch(r"`(\d\d_\w+)`", cells[0])):
            found[name[1]] = int(cells[column])
    return found


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_the_notebook_says_its_estimated_time(stem: str) -> None:
    source = (ROOT / "tools" / "notebooks" / f"{stem}.py").read_text(encoding="utf-8")
    said = re.search(r"\*\*Time:\*\* about (\d+) minutes", source)
    assert said is not None, f"{stem} does not say its time"
    assert int(said[1]) == estimated_minutes(ROOT / "notebooks" / f"{stem}.ipynb"), (
        f"{stem} says {said[1]} minutes; `python tools/course_time.py` estimates otherwise"
    )


@pytest.mark.parametrize(("table", "column"), [("README.md", 2), ("notebooks/README.md", 2)])
def test_the_course_tables_say_the_same_times(table: str, column: int) -> None:
    expected = {stem: estimated_minutes(ROOT / "notebooks" / f"{stem}.ipynb") for stem in NOTEBOOKS}
    assert table_minutes(ROOT / table, column) == expected


def test_the_estimate_counts_prose_code_cells_plots_and_widgets() -> None:
    counted = contents(ROOT / "notebooks" / "08_remedies.ipynb")
    assert counted.words > 1000 and counted.code_lines > 100 and counted.code_cells > 10
    assert counted.plots >= 1 and counted.widgets == 1  # the experiment's chart; the simulator
    # 150 words, 10 lines of code and 3 cells make 3 minutes; a plot 1 more, a widget 2.
    assert Contents(words=150, code_lines=10, code_cells=3, plots=0, widgets=0).minutes() == pytest.approx(3)
    assert Contents(words=0, code_lines=0, code_cells=0, plots=1, widgets=1).minutes() == 3


def test_the_core_course_takes_no_less_than_a_timed_learner_took() -> None:
    """The rates were set on a timed run: 3.9 h for notebooks 00–08 (about 235 minutes), before
    they grew. An estimate below that would promise too little time again."""
    core = [path for path in course_notebooks() if path.stem[:2] <= "08"]
    assert len(core) == 9
    assert sum(contents(path).minutes() for path in core) >= 230


def test_the_readme_says_how_long_the_core_course_takes() -> None:
    said = re.search(r"([\d.]+) hours for `00`–`08`", (ROOT / "README.md").read_text(encoding="utf-8"))
    core = sum(estimated_minutes(path) for path in course_notebooks() if path.stem[:2] <= "08")
    assert said is not None and float(said[1]) == round(core / 60, 1)
