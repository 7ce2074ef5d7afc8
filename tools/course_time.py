"""How long a course notebook takes a learner who reads everything and runs every cell.

Every notebook says its time ("**Time:** about 25 minutes") and so does the README's course
table. Those numbers used to be guesses, and a timed run by a learner new to event sourcing took
3.9 h for notebooks 00–08 where the table promised 3.0 h. So they are now estimated from what
each notebook holds, at rates whose total for 00–08 is that run's:

- prose (the markdown cells) at 150 words a minute: careful reading of new ideas;
- code at 10 lines a minute: reading it, and reading it again against its output;
- 20 seconds per code cell: run it, look at what it printed;
- a minute per plot, two per widget: a person looks at those, and plays with a widget.

The estimate is rounded to the nearest 5 minutes. ``tests/test_course_time.py`` checks that every
notebook and the README say the estimated time, so that a notebook that grows says so.

    python tools/course_time.py          # the table, with what each estimate is made of
    python tools/course_time.py --write  # and write the estimates where the course says its times

``--write`` edits the "**Time:**" line of each notebook's source and of the built notebook (the
same text, so no rebuild is needed: the line's words do not change, nor does the estimate), and
the minutes of the course tables in README.md and notebooks/README.md.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

WORDS_PER_MINUTE = 150
CODE_LINES_PER_MINUTE = 10
MINUTES_PER_CELL = 1 / 3
MINUTES_PER_PLOT = 1
MINUTES_PER_WIDGET = 2
WIDGET = "application/vnd.jupyter.widget-view+json"


@dataclass(frozen=True)
class Contents:
    """What a learner goes through in one notebook."""

    words: int
    code_lines: int
    code_cells: int
    plots: int
    widgets: int

    def minutes(self) -> float:
        return (
            self.words / WORDS_PER_MINUTE
            + self.code_lines / CODE_LINES_PER_MINUTE
            + self.code_cells * MINUTES_PER_CELL
            + self.plots * MINUTES_PER_PLOT
            + self.widgets * MINUTES_PER_WIDGET
        )


def contents(path: Path) -> Contents:
    """Count what the stored notebook holds (its sources and the outputs it shows)."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    words = code_lines = code_cells = plots = widgets = 0
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            words += len(re.findall(r"\w+", source))
        elif cell["cell_type"] == "code":
            code_cells += 1
            code_lines += sum(1 for line in source.splitlines() if line.strip())
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                plots += "image/png" in data
                widgets += WIDGET in data
    return Contents(words, code_lines, code_cells, plots, widgets)


def rounded(minutes: float) -> int:
    """To the nearest 5 minutes, and at least 5."""
    return max(5, 5 * round(minutes / 5))


def estimated_minutes(path: Path) -> int:
    """The estimate for the notebook at ``path``, rounded (:func:`rounded`)."""
    return rounded(contents(path).minutes())


def course_notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


TIME_LINE = re.compile(r"\*\*Time:\*\* about \d+ minutes")
TABLES = (ROOT / "README.md", ROOT / "notebooks" / "README.md")


def write_times() -> None:
    """Put each estimate in the notebook's source, the built notebook and the course tables."""
    tables = {path: path.read_text(encoding="utf-8") for path in TABLES}
    for path in course_notebooks():
        minutes = estimated_minutes(path)
        said = f"**Time:** about {minutes} minutes"
        for text_file in (ROOT / "tools" / "notebooks" / f"{path.stem}.py", path):
            text = text_file.read_text(encoding="utf-8")
            text_file.write_text(TIME_LINE.sub(said, text, count=1), encoding="utf-8")
        for table, text in tables.items():  # the minutes are the third column of the row
            row = re.compile(rf"^(\| `{path.stem}` \|[^|]*\| )\d+( \|)", re.MULTILINE)
            tables[table] = row.sub(rf"\g<1>{minutes}\2", text)
    for table, text in tables.items():
        table.write_text(text, encoding="utf-8")


def main() -> int:
    print(
        f"{'notebook':<28} {'words':>6} {'code':>5} {'cells':>5} {'plots':>5} {'widgets':>7} {'minutes':>8}"
    )
    total = 0
    for path in course_notebooks():
        counted = contents(path)
        minutes = rounded(counted.minutes())
        total += minutes
        print(
            f"{path.stem:<28} {counted.words:>6} {counted.code_lines:>5} {counted.code_cells:>5} "
            f"{counted.plots:>5} {counted.widgets:>7} {minutes:>5} ({counted.minutes():.1f})"
        )
    print(f"{'total':<28} {total:>47} min = {total / 60:.1f} h")
    if "--write" in sys.argv[1:]:
        write_times()
        print("written to the notebooks, their sources, README.md and notebooks/README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
