"""Build the workshop's exercise notebooks — a solution and a learner version — from one source each.

An exercise source, ``instructor/exercises/NN_name.py``, is written like the course's sources (the
percent format of ``tools/build_notebooks.py``), and marks in its code cells what the learner
has to write::

    def trainer_reducer(trainer, event):
        \"\"\"Fold one event of the TRAINERS store into a trainer.\"\"\"
        ### BEGIN SOLUTION (hint: start with TRAINER_CREATED)
        ...the instructor's answer...
        ### END SOLUTION

Two notebooks come out of it:

- ``instructor/solutions/NN_name.ipynb``, for instructors: the source as it is, markers included,
  run in a fresh kernel and stored with its outputs. nbval runs it again in the test suite, so
  every check must pass on the solution, for good.
- ``notebooks/exercises/NN_name.ipynb``, for learners: every solution region becomes a stub at the
  region's indentation — the lines above it (the signature, the docstring) stay::

        # Your code here: replace the line below.
        raise NotImplementedError("start with TRAINER_CREATED")

  It is stored *without* outputs and never run by the build. A learner opens a clean notebook with
  no stale "Not yet" boxes in it, and the file depends on its source only, so the tests rebuild it
  in memory and compare it byte for byte (instructor/tests/test_exercises.py also runs it, and checks that
  every check there says "Not yet"). nbval skips these notebooks: they fail by design.

    python tools/build_exercises.py              # build both versions of every exercise notebook
    python tools/build_exercises.py 02           # only those whose name starts with 02
    python tools/build_exercises.py --check      # are both versions up to date with the sources?
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make ``tools`` importable
    sys.path.insert(0, str(ROOT))

from tools import build_notebooks  # noqa: E402
from tools.build_notebooks import (  # noqa: E402
    NOTEBOOKS,
    SourceCell,
    cell_differences,
    notebook_text,
    parse_source,
    run_and_store,
    to_notebook,
)

INSTRUCTOR = ROOT / "instructor"
SOURCES = INSTRUCTOR / "exercises"
SOLUTIONS = INSTRUCTOR / "solutions"
EXERCISES = NOTEBOOKS / "exercises"
BEGIN = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION(?: \(hint: (?P<hint>.+)\))?[ \t]*$")
END = re.compile(r"^[ \t]*### END SOLUTION[ \t]*$")
STUB_COMMENT = "# Your code here: replace the line below."


def stub(indent: str, hint: str) -> list[str]:
    """The two lines that stand for a solution region in the learner's notebook."""
    text = f'"{hint}"' if '"' not in hint and "\\" not in hint else repr(hint)
    return [f"{indent}{STUB_COMMENT}", f"{indent}raise NotImplementedError({text})"]


def strip_solutions(code: str) -> tuple[str, list[str]]:
    """``code`` with every solution region replaced by its stub, and the stubs' hints in order.

    A region must close, must not nest, and must carry a hint: the hint is all a learner who runs
    the check too early gets ("Not yet: this exercise still raises NotImplementedError — <hint>").
    """
    lines: list[str] = []
    hints: list[str] = []
    region: re.Match[str] | None = None
    for number, line in enumerate(code.splitlines(), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if region is None and end:
            raise ValueError(f"line {number}: END SOLUTION without a BEGIN SOLUTION")
        if region is None and begin:
            if not begin["hint"]:
                raise ValueError(
                    f"line {number}: write the hint on the marker: ### BEGIN SOLUTION (hint: ...)"
                )
            region = begin
        elif region is None:
            lines.append(line)
        elif begin:
            raise ValueError(f"line {number}: BEGIN SOLUTION inside another solution region")
        elif end:
            lines += stub(region["indent"], region["hint"])
            hints.append(region["hint"])
            region = None
    if region is not None:
        raise ValueError("a BEGIN SOLUTION is never closed by an END SOLUTION")
    return "\n".join(lines), hints


def learner_cells(cells: list[SourceCell]) -> list[SourceCell]:
    """The learner's cells: code cells stripped of their solutions, everything else unchanged."""
    result = []
    for cell in cells:
        if cell.kind == "code":
            cell = SourceCell("code", strip_solutions(cell.source)[0], list(cell.tags))
        result.append(cell)
    if [cell.source for cell in result] == [cell.source for cell in cells]:
        raise ValueError("an exercise source needs at least one ### BEGIN SOLUTION region")
    return result


def source_cells(stem: str) -> list[SourceCell]:
    return parse_source((SOURCES / f"{stem}.py").read_text(encoding="utf-8"))


def solution_path(stem: str) -> Path:
    return SOLUTIONS / f"{stem}.ipynb"


def exercise_path(stem: str) -> Path:
    return EXERCISES / f"{stem}.ipynb"


def learner_text(stem: str) -> str:
    """The learner's notebook, exactly as stored: no outputs, nothing run."""
    return notebook_text(to_notebook(stem, learner_cells(source_cells(stem))))


def build(stem: str) -> float:
    """Write both notebooks of ``stem``; return how long the solution took to run."""
    SOLUTIONS.mkdir(exist_ok=True)
    EXERCISES.mkdir(exist_ok=True)
    # Raises if a check fails on the solution.
    seconds = run_and_store(stem, to_notebook(stem, source_cells(stem)), solution_path(stem))
    exercise_path(stem).write_text(learner_text(stem), encoding="utf-8")
    return seconds


def problems(stem: str) -> list[str]:
    """How the stored notebooks of ``stem`` differ from its source (empty when both are in sync)."""
    found = []
    learner = exercise_path(stem)
    if not learner.exists() or learner.read_text(encoding="utf-8") != learner_text(stem):
        found.append(f"exercises/{learner.name} is not what its source gives")
    solution = solution_path(stem)
    if not solution.exists():
        found.append(f"solutions/{solution.name} is missing")
    else:
        found += [f"solutions/{problem}" for problem in cell_differences(solution, source_cells(stem))]
    return [f"{problem}: run python tools/build_exercises.py {stem[:2]}" for problem in found]


def main(argv: list[str] | None = None) -> int:
    return build_notebooks.main(
        argv, description=__doc__.split("\n\n")[0], sources=SOURCES, build=build, problems=problems
    )


if __name__ == "__main__":
    sys.exit(main())
