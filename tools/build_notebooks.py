"""Build the course notebooks from readable sources, run each in a fresh kernel, store the outputs.

Why sources at all: a ``.ipynb`` file is JSON with outputs inside, painful to review and to
merge. The course is written in ``tools/notebooks/NN_name.py``, plain Python files in jupytext's
"percent" format, which editors understand too (jupytext reads them here)::

    # %% [markdown]
    # # A title
    # Some prose.

    # %%
    code()

    # %% tags=["raises-exception"]
    code_that_raises()

A source starts with a cell header (no jupytext header: the notebook metadata is the build's),
and a cell carries tags at most: anything else jupytext would read there (a raw cell, a title,
other metadata) is refused rather than silently dropped.

This script turns each source into ``notebooks/NN_name.ipynb``, executes it with nbclient (a
fresh kernel per notebook, working directory ``notebooks/``, as nbval uses), and writes it
with its outputs, which nbval later compares against a new run. The build is deterministic
where it matters: cell ids derive from the notebook name and the cell's position, and the
per-cell timing metadata is not recorded. ``{{build_time}}`` in a markdown cell becomes the
measured run time of that notebook.

A build refuses outputs that show a memory address (``0x7f...``): they would differ on every
run. ``--check`` only verifies that every notebook matches its source (no kernel needed); the
tests run it.

    python tools/build_notebooks.py              # build every notebook
    python tools/build_notebooks.py 02 05        # only those whose name starts with 02 or 05
    python tools/build_notebooks.py --check      # are the notebooks up to date with the sources?
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "tools" / "notebooks"
NOTEBOOKS = ROOT / "notebooks"
BUILD_TIME = "{{build_time}}"
CELL_HEADER = "# %%"
# Cell metadata with which jupytext records the layout of the text (blank lines, markers): it
# describes the source file, not the notebook, so the build drops it.
LAYOUT_METADATA = frozenset({"cell_marker", "lines_to_next_cell", "lines_to_end_of_cell_marker"})
MEMORY_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
BUDGET_SECONDS = 10.0  # per notebook, fresh kernel included (tests/test_notebooks_meta.py checks it)
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


@dataclass
class SourceCell:
    kind: str  # "markdown" or "code"
    source: str
    tags: list[str] = field(default_factory=list)


def parse_source(text: str) -> list[SourceCell]:
    """The cells of a percent-format source, read by jupytext (markdown loses its ``# ``).

    Raises ValueError for what the stored notebook could not keep: text before the first cell
    header (jupytext would make it a cell, or notebook metadata), a cell neither markdown nor
    code, metadata other than tags.
    """
    first = next((line for line in text.splitlines() if line.strip()), CELL_HEADER)
    if not first.startswith(CELL_HEADER):
        raise ValueError(f"text before the first '{CELL_HEADER}' cell header: {first!r}")
    cells = []
    for index, cell in enumerate(jupytext.reads(text, fmt="py:percent").cells):
        if cell.cell_type not in ("markdown", "code"):
            raise ValueError(f"cell {index}: a {cell.cell_type} cell; only markdown and code are built")
        extra = set(cell.metadata) - LAYOUT_METADATA - {"tags"}
        if extra:
            raise ValueError(f"cell {index}: metadata {sorted(extra)}; a cell header may carry tags only")
        tags = list(cell.metadata.get("tags", []))
        cells.append(SourceCell(cell.cell_type, cell.source.strip("\n"), tags))
    return cells


def to_notebook(stem: str, cells: list[SourceCell]) -> nbformat.NotebookNode:
    """A notebook with deterministic cell ids (``<stem>-<index>``), no outputs yet."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    for index, cell in enumerate(cells):
        cell_id = f"{stem[:50]}-{index:02d}"
        metadata = {"tags": list(cell.tags)} if cell.tags else {}
        if cell.kind == "markdown":
            notebook.cells.append(nbformat.v4.new_markdown_cell(cell.source, id=cell_id, metadata=metadata))
        else:
            notebook.cells.append(nbformat.v4.new_code_cell(cell.source, id=cell_id, metadata=metadata))
    return notebook


def source_path(stem: str) -> Path:
    return SOURCES / f"{stem}.py"


def notebook_path(stem: str) -> Path:
    return NOTEBOOKS / f"{stem}.ipynb"


def stems(prefixes: list[str] | None = None, sources: Path = SOURCES) -> list[str]:
    """Every notebook source, in course order (optionally only names starting with a prefix)."""
    found = sorted(path.stem for path in sources.glob("[0-9][0-9]_*.py"))
    if prefixes:
        found = [stem for stem in found if any(stem.startswith(prefix) for prefix in prefixes)]
    return found


def execute(notebook: nbformat.NotebookNode, cwd: Path = NOTEBOOKS, *, allow_errors: bool = False) -> float:
    """Run ``notebook`` in a fresh kernel (working directory ``cwd``); return the wall time in seconds.

    ``allow_errors`` keeps going after a cell that raises (the error becomes its output).
    """
    from nbclient import NotebookClient  # only the build needs it, not --check

    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        record_timing=False,
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(cwd)}},
    )
    started = time.perf_counter()
    client.execute()
    return time.perf_counter() - started


def output_texts(notebook: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """``(cell index, text)`` of every textual output: streams, errors, text/* and JSON data."""
    texts = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                texts.append((index, output.text))
            elif output.output_type == "error":
                texts.append((index, f"{output.ename}: {output.evalue}"))
            else:
                for mime, data in output.get("data", {}).items():
                    if mime.startswith("text/"):
                        texts.append((index, data if isinstance(data, str) else "".join(data)))
    return texts


def check_outputs(stem: str, notebook: nbformat.NotebookNode) -> None:
    for index, text in output_texts(notebook):
        if MEMORY_ADDRESS.search(text):
            raise SystemExit(f"{stem}: cell {index} shows a memory address, which changes every run:\n{text}")


def tidy(notebook: nbformat.NotebookNode, seconds: float) -> None:
    """Keep what nbval and readers need; drop what changes from machine to machine."""
    notebook.metadata["language_info"] = {"name": "python"}
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        for output in cell.get("outputs", []):
            if output.output_type == "error":  # paths relative to the repository, as a reader has it
                output.traceback = [line.replace(f"{ROOT}/", "") for line in output.traceback]
        if cell.cell_type == "markdown" and BUILD_TIME in cell.source:
            cell.source = cell.source.replace(BUILD_TIME, f"{seconds:.1f} s")


def notebook_text(notebook: nbformat.NotebookNode) -> str:
    """The notebook as stored: validated JSON, ending with a newline."""
    nbformat.validate(notebook)
    return nbformat.writes(notebook) + "\n"


def run_and_store(stem: str, notebook: nbformat.NotebookNode, path: Path) -> float:
    """Run ``notebook`` in a fresh kernel next to ``path``, tidy it, write it there; return the run time."""
    seconds = execute(notebook, path.parent)
    check_outputs(stem, notebook)
    tidy(notebook, seconds)
    path.write_text(notebook_text(notebook), encoding="utf-8")
    return seconds


def build(stem: str) -> float:
    notebook = to_notebook(stem, parse_source(source_path(stem).read_text(encoding="utf-8")))
    return run_and_store(stem, notebook, notebook_path(stem))


def cell_differences(path: Path, expected: list[SourceCell]) -> list[str]:
    """How the cells stored in ``path`` differ from ``expected`` (empty when in sync).

    Outputs are not compared (nbval does that); ``{{build_time}}`` matches any measured time.
    """
    stored = nbformat.read(path, as_version=4).cells
    problems = []
    if len(expected) != len(stored):
        problems.append(f"{path.name}: {len(stored)} cells, the source has {len(expected)}")
    for index, (want, have) in enumerate(zip(expected, stored, strict=True)):  # counts checked above
        pattern = re.escape(want.source).replace(re.escape(BUILD_TIME), r"\d+\.\d s")
        if want.kind != have.cell_type or not re.fullmatch(pattern, have.source, flags=re.DOTALL):
            problems.append(f"{path.name}: cell {index} differs from the source")
        elif want.tags != have.metadata.get("tags", []):
            tags = have.metadata.get("tags", [])
            problems.append(f"{path.name}: cell {index} has tags {tags}, the source {want.tags}")
    return problems


def sources_match(stem: str) -> list[str]:
    """Differences between ``notebooks/<stem>.ipynb`` and its source (empty when in sync)."""
    path = notebook_path(stem)
    if not path.exists():
        return [f"{path.name} is missing: run python tools/build_notebooks.py {stem[:2]}"]
    return cell_differences(path, parse_source(source_path(stem).read_text(encoding="utf-8")))


def main(
    argv: list[str] | None = None,
    *,
    description: str = __doc__.split("\n\n")[0],
    sources: Path = SOURCES,
    build: Callable[[str], float] = build,
    problems: Callable[[str], list[str]] = sources_match,
) -> int:
    """The command line; ``tools/build_exercises.py`` reuses it with its own sources and steps."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("names", nargs="*", help="build only notebooks whose name starts with these")
    parser.add_argument("--check", action="store_true", help="only check that notebooks match their sources")
    options = parser.parse_args(argv)
    selected = stems(options.names, sources)
    if not selected:
        parser.error(f"no notebook source matches {options.names} in {sources}")
    if options.check:
        found = [problem for stem in selected for problem in problems(stem)]
        print("\n".join(found) or f"{len(selected)} notebooks match their sources")
        return 1 if found else 0
    total = 0.0
    for stem in selected:
        seconds = build(stem)
        total += seconds
        warning = (
            f"  <- over the {BUDGET_SECONDS:g} s budget (busy machine?)" if seconds > BUDGET_SECONDS else ""
        )
        print(f"{stem}: {seconds:.1f} s{warning}")
    print(f"total: {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
