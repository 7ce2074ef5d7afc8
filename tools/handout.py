"""Build the learner's copy of the course — the handout — from the instructor's repository.

A learner who clones this repository finds the answers next to the exercises: ``instructor/``
holds the exercise sources (solutions between ``### BEGIN SOLUTION`` and ``### END SOLUTION``),
the solution notebooks and the wrong-answer tests. The handout is the same course without them:
the package, the course notebooks, the learner exercise notebooks (stubs only), the tests a
learner can run, the docs and the files that set up ``.venv`` — and no answer.

How it is built, and why that way:

1. **Only tracked files** (``git ls-files``), read from the working tree: ``.venv/``, build
   output and other untracked junk never reach a learner, uncommitted edits do.
2. **Leave out** what holds an answer or only works with one (``LEFT_OUT``, each with its reason).
3. **Edit** the few files that name the instructor layout, so that the copy is consistent on
   its own: the Makefile loses the targets that need ``instructor/`` (``make exercises``,
   ``make handout``), pyproject's ``testpaths`` loses ``instructor``, and Markdown loses what
   sits between ``<!-- instructor-only -->`` and ``<!-- /instructor-only -->``.
4. **Check the result** (``answers_in``): no ``instructor/`` path, no solution marker, and the
   code of no solution region, in any file — notebooks read cell by cell. A handout that fails
   the check is reported and the command exits with 1: a leak is never handed out quietly.

    python tools/handout.py                  # into build/handout/ (emptied first)
    python tools/handout.py ../workshop      # anywhere else
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make ``tools`` importable
    sys.path.insert(0, str(ROOT))

from tools.build_exercises import BEGIN, END, SOURCES  # noqa: E402

DEFAULT_DEST = ROOT / "build" / "handout"
INSTRUCTOR = "instructor/"
MARKER = "BEGIN SOLUTION"
# What the handout leaves out (a path, or a folder ending in "/"), and why.
LEFT_OUT = {
    INSTRUCTOR: "the answers: exercise sources, solution notebooks, wrong-answer tests, the agenda",
    "tools/build_exercises.py": "builds the exercise notebooks from instructor/exercises/, which is not there",
    "tools/handout.py": "builds a handout from the instructor layout",
    "tests/test_handout.py": "tests that build against instructor/",
    ".pre-commit-config.yaml": "a maintainer's hooks, one of them runs tools/build_exercises.py",
}
# The Makefile targets that need instructor/ (their rules, help lines and .PHONY entries go).
INSTRUCTOR_TARGETS = ["exercises", "handout"]
INSTRUCTOR_ONLY = re.compile(r"<!-- instructor-only -->.*?<!-- /instructor-only -->\n?", re.S)


# --- 1. and 2.: which files ------------------------------------------------------------------


def tracked_files() -> list[str]:
    """Every file git tracks, as a path relative to the repository root (``/`` separators)."""
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return [path for path in listing.split("\0") if path]


def is_left_out(path: str) -> bool:
    return any(path == entry or (entry.endswith("/") and path.startswith(entry)) for entry in LEFT_OUT)


def handout_files() -> list[str]:
    """The files a learner gets: tracked, present in the working tree, not left out."""
    return [path for path in tracked_files() if not is_left_out(path) and (ROOT / path).is_file()]


# --- 3.: the edits that keep the copy consistent ---------------------------------------------


def without_make_target(makefile: str, target: str) -> str:
    """``makefile`` without the rule of ``target``, its ``make help`` line and its .PHONY entry.

    Each of the three must be there: a Makefile that changed shape fails the build here, instead
    of handing out a target that cannot run.
    """
    # the comment lines just above the rule, the rule, its recipe lines and one blank line
    rule = re.compile(rf"^(?:#.*\n)*{re.escape(target)}:.*\n(?:\t.*\n)*\n?", re.M)
    help_line = re.compile(rf'^\t@echo "make {re.escape(target)} .*\n', re.M)
    phony = re.compile(rf"^(\.PHONY:.*) {re.escape(target)}\b", re.M)
    for pattern, replacement in [(rule, ""), (help_line, ""), (phony, r"\1")]:
        makefile, count = pattern.subn(replacement, makefile)
        if count != 1:
            raise ValueError(f"Makefile: expected one match of {pattern.pattern!r}, found {count}")
    return makefile


def learner_makefile(makefile: str) -> str:
    for target in INSTRUCTOR_TARGETS:
        makefile = without_make_target(makefile, target)
    return makefile


def learner_pyproject(pyproject: str) -> str:
    """``pyproject`` with ``instructor`` out of pytest's ``testpaths`` (the rest as it is)."""
    testpaths = tomllib.loads(pyproject)["tool"]["pytest"]["ini_options"]["testpaths"]
    kept = [path for path in testpaths if path != "instructor"]
    line = re.compile(r"^testpaths = \[.*\]$", re.M)
    pyproject, count = line.subn(f"testpaths = {json.dumps(kept)}", pyproject)
    if count != 1:
        raise ValueError("pyproject.toml: expected one line 'testpaths = [...]'")
    return pyproject


def learner_markdown(text: str) -> str:
    """``text`` without its instructor-only blocks (a marker left unpaired is an error)."""
    text = INSTRUCTOR_ONLY.sub("", text)
    if "instructor-only -->" in text:
        raise ValueError("an <!-- instructor-only --> block is not closed (or not opened)")
    return text


def learner_text(path: str, text: str) -> str:
    """The learner's version of the text file ``path``: edited where it names the instructor layout."""
    if path == "Makefile":
        return learner_makefile(text)
    if path == "pyproject.toml":
        return learner_pyproject(text)
    if path.endswith(".md"):
        return learner_markdown(text)
    return text


EDITED = ("Makefile", "pyproject.toml", ".md")


def copy_file(path: str, dest: Path) -> None:
    target = dest / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if path.endswith(EDITED):
        text = (ROOT / path).read_text(encoding="utf-8")
        target.write_text(learner_text(path, text), encoding="utf-8")
    else:
        shutil.copy2(ROOT / path, target)  # bytes as they are, the executable bit included


# --- 4.: the check for answers ---------------------------------------------------------------


def normalized(code: str) -> str:
    """``code`` with each line stripped and blank lines dropped: indentation cannot hide a copy."""
    return "\n".join(line.strip() for line in code.splitlines() if line.strip())


def solution_regions(sources: Path = SOURCES) -> list[tuple[str, str]]:
    """``(where, code)`` of every solution region of the exercise sources, code normalized."""
    regions = []
    for source in sorted(sources.glob("*.py")):
        lines: list[str] | None = None
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
            if BEGIN.match(line):
                lines, start = [], number
            elif END.match(line) and lines is not None:
                regions.append((f"{source.name}:{start}", normalized("\n".join(lines))))
                lines = None
            elif lines is not None:
                lines.append(line)
    return regions


def readable_text(path: Path) -> str | None:
    """What a person reads in ``path``: a notebook's cells and outputs, a text file as it is.

    A notebook is JSON, where code is split into quoted lines: searched raw, a copied solution
    would not be found. Binary files (the screenshots) have no text to search.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None
    if path.suffix != ".ipynb":
        return text
    parts = []
    for cell in json.loads(text)["cells"]:
        parts.append("".join(cell["source"]))
        for output in cell.get("outputs", []):
            parts.append(json.dumps(output, ensure_ascii=False))
    return "\n".join(parts)


def answers_in(dest: Path, regions: list[tuple[str, str]] | None = None) -> list[str]:
    """Every way ``dest`` gives an answer away, one line each (empty: no answer in it)."""
    regions = solution_regions() if regions is None else regions
    found = []
    for path in sorted(p for p in dest.rglob("*") if p.is_file()):
        name = path.relative_to(dest).as_posix()
        if name.startswith(INSTRUCTOR):
            found.append(f"{name}: instructor material")
        text = readable_text(path)
        if text is None:
            continue
        if MARKER in text:
            found.append(f"{name}: holds a solution marker ({MARKER})")
        flat = normalized(text)
        found += [f"{name}: holds the solution of {where}" for where, code in regions if code in flat]
    return found


# --- the command ----------------------------------------------------------------------------


def build(dest: Path) -> list[str]:
    """Write the handout into ``dest`` (emptied first); return its files."""
    # dest is emptied first: never a folder that holds the repository or part of it
    where = dest.resolve()
    if where in (ROOT, *ROOT.parents) or (
        where.is_relative_to(ROOT) and not where.is_relative_to(ROOT / "build")
    ):
        raise ValueError(f"{dest}: choose a folder outside the repository, or under build/")
    shutil.rmtree(dest, ignore_errors=True)
    files = handout_files()
    for path in files:
        copy_file(path, dest)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", nargs="?", type=Path, default=DEFAULT_DEST, help="default: build/handout/")
    dest = parser.parse_args(argv).dest
    files = build(dest)
    leaks = answers_in(dest)
    if leaks:
        print(f"error: the handout in {dest} gives answers away:", *leaks, sep="\n  ", file=sys.stderr)
        return 1
    print(f"Wrote the handout, {len(files)} files and no answer, to {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
