"""``make handout`` gives learners the course without the answers, and the copy works on its own.

The handout (``tools/handout.py``) is built once, into a temporary folder, and checked three ways:

1. **No answer in it**: no ``instructor/`` path, no solution marker, and the code of no solution
   region of ``instructor/exercises/*.py`` in any file (notebooks read cell by cell). The check
   itself is tested too: a solution smuggled in, under its own name or another, is found, and the
   command refuses to report such a handout as written.
2. **Consistent without instructor/**: its Makefile, pyproject and README name no instructor
   material, and every local link of its README leads to a file of the handout.
3. **Its own tests pass inside it**, run as a learner runs them (``python -m pytest`` from the
   handout's root, its pyproject's options, its ``castore_edu`` first on ``PYTHONPATH``):
   collecting the *whole* suite proves that no test module needs ``instructor/``; running all of
   it would take minutes (servers, the browser, every notebook), so a representative subset runs:
   the tests that read the files the handout edits (README, Makefile, pyproject), the layout and
   notebook-contract tests, the event store's unit tests, and nbval on the first two notebooks. The learner exercise notebooks run in a kernel, and every
   check there must say "Not yet" — what a learner sees before writing anything.

About 40 s on a quiet machine, 50 s on a loaded one. The handout leaves this file out: it tests the instructor layout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

from tools import handout as handout_tool
from tools.build_notebooks import execute

pytestmark = pytest.mark.tooling  # the same on every Python: make test runs it on the newest only

SOLUTION_NOTEBOOK = "instructor/solutions/01_reducers_and_commands.ipynb"
# Representative of the learner's `make test` (see the module docstring for why not all of it).
SUBSET = [
    # the tests that read the files the handout edits (README, Makefile, pyproject.toml)
    "tests/test_environment.py",
    "tests/test_api_docs.py",
    "tests/test_readme.py",
    "tests/test_layout.py",
    "tests/test_notebooks_meta.py",
    "tests/test_event_store.py",
    "notebooks/00_setup_check.ipynb",
    "notebooks/01_events_and_aggregates.ipynb",
]
CHECK_CALL = re.compile(r"^await check_\w+\(", re.M)
NOT_YET = "Not yet: this exercise still raises NotImplementedError — "


@pytest.fixture(scope="module")
def handout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("handout") / "castore_edu-workshop"
    handout_tool.build(dest)
    return dest


def files_in(folder: Path) -> list[str]:
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


def learner_env(handout: Path) -> dict[str, str]:
    """This interpreter's environment, with the handout's ``castore_edu`` (and ``tools``) first."""
    return {**os.environ, "PYTHONPATH": str(handout)}


# --- 1. no answer ----------------------------------------------------------------------------


def test_there_are_solution_regions_to_look_for() -> None:
    regions = handout_tool.solution_regions()
    assert len(regions) >= 10  # ten exercises, at least one region each
    assert all(code.count("\n") >= 1 for _, code in regions)  # no one-liner that common code could match


def test_the_handout_holds_the_course_and_the_stubs_but_no_instructor_material(handout: Path) -> None:
    files = files_in(handout)
    assert not [name for name in files if name.startswith("instructor/")]
    for name in ["README.md", "LICENSE", "Makefile", "pyproject.toml", "environment.yml", "docs/api.md"]:
        assert name in files
    assert "requirements/constraints.txt" in files and "castore_edu/__init__.py" in files
    exercises = [name for name in files if name.startswith("notebooks/exercises/")]
    sources = handout_tool.ROOT / "instructor" / "exercises"
    assert len(exercises) == len(list(sources.glob("*.py"))) >= 5  # one learner notebook per source
    assert len([name for name in files if re.fullmatch(r"notebooks/\d\d_\w+\.ipynb", name)]) >= 10
    assert "tools/build_exercises.py" not in files and "tests/test_handout.py" not in files
    assert ".venv/pyvenv.cfg" not in files  # only tracked files are copied


def test_no_file_of_the_handout_gives_an_answer_away(handout: Path) -> None:
    assert handout_tool.answers_in(handout) == []


def test_a_solution_copied_under_another_name_is_found(handout: Path, tmp_path: Path) -> None:
    leaky = tmp_path / "leaky"
    shutil.copytree(handout, leaky)
    solution = handout_tool.ROOT / SOLUTION_NOTEBOOK
    shutil.copy(solution, leaky / "notebooks" / "exercises" / "01_reducers_and_commands.ipynb")
    # a source with its markers taken out, re-indented: still the answer
    source = (handout_tool.SOURCES / "02_channels_and_connected_stores.py").read_text(encoding="utf-8")
    unmarked = "\n".join("  " + line for line in source.splitlines() if "SOLUTION" not in line)
    (leaky / "docs" / "notes.py").write_text(unmarked, encoding="utf-8")
    found = handout_tool.answers_in(leaky)
    assert any(
        line.startswith("notebooks/exercises/01_reducers_and_commands.ipynb: holds the solution of 01_")
        for line in found
    )
    assert any(line.startswith("docs/notes.py: holds the solution of 02_") for line in found)


def test_the_command_refuses_a_handout_with_a_solution_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    files = handout_tool.handout_files()
    monkeypatch.setattr(handout_tool, "handout_files", lambda: [*files, SOLUTION_NOTEBOOK])
    assert handout_tool.main([str(tmp_path / "handout")]) == 1
    error = capsys.readouterr().err
    assert f"{SOLUTION_NOTEBOOK}: instructor material" in error
    assert f"{SOLUTION_NOTEBOOK}: holds the solution of 01_reducers_and_commands.py" in error


# --- 2. consistent without instructor/ -----------------------------------------------------------


def test_its_makefile_pyproject_and_readme_name_no_instructor_material(handout: Path) -> None:
    for name in ["Makefile", "README.md"]:
        text = (handout / name).read_text(encoding="utf-8")
        assert "instructor" not in text.lower(), name
        assert "make exercises" not in text and "make handout" not in text, name
    pyproject = tomllib.loads((handout / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["tool"]["pytest"]["ini_options"]["testpaths"] == ["tests", "notebooks"]


def test_every_local_link_of_its_readme_leads_to_a_file_of_the_handout(handout: Path) -> None:
    links = re.findall(r"\]\(([^)#\s]+)\)", (handout / "README.md").read_text(encoding="utf-8"))
    local = [link for link in links if "://" not in link]
    assert local, "the README lost its links"
    assert [link for link in local if not (handout / link).exists()] == []


def test_the_instructor_only_blocks_go_and_an_unpaired_marker_is_refused() -> None:
    text = "a\n<!-- instructor-only -->\nsecret\n<!-- /instructor-only -->\nb\n"
    assert handout_tool.learner_markdown(text) == "a\nb\n"
    with pytest.raises(ValueError, match="not closed"):
        handout_tool.learner_markdown("a\n<!-- instructor-only -->\nsecret\n")


@pytest.mark.parametrize("dest", [".", "..", "castore_edu", "notebooks/exercises"])
def test_it_never_empties_the_repository_or_a_folder_of_it(dest: str) -> None:
    with pytest.raises(ValueError, match="outside the repository, or under build/"):
        handout_tool.build(handout_tool.ROOT / dest)


def test_a_makefile_without_the_target_to_remove_is_refused() -> None:
    with pytest.raises(ValueError, match="expected one match"):
        handout_tool.without_make_target("help:\n\t@echo hi\n", "exercises")


# --- 3. its own tests pass inside it ----------------------------------------------------------


def run_pytest_in(handout: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *arguments],
        cwd=handout,
        env=learner_env(handout),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_it_imports_its_own_castore_edu(handout: Path) -> None:
    where = subprocess.run(
        [sys.executable, "-c", "import castore_edu; print(castore_edu.__file__)"],
        cwd=handout,
        env=learner_env(handout),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(handout)


def test_its_whole_test_suite_collects_without_instructor(handout: Path) -> None:
    collected = run_pytest_in(handout, "--collect-only")
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    items = [line for line in collected.stdout.splitlines() if "::" in line]
    assert len(items) > 500
    assert not [item for item in items if item.startswith(("instructor", "notebooks/exercises"))]


def test_a_representative_subset_of_its_tests_passes_inside_it(handout: Path) -> None:
    result = run_pytest_in(handout, *SUBSET)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"\d+ passed", result.stdout)


@pytest.mark.parametrize("name", ["01", "02", "03", "04", "05"])
def test_every_check_of_the_learner_notebook_says_not_yet(
    handout: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (path,) = (handout / "notebooks" / "exercises").glob(f"{name}_*.ipynb")
    notebook = nbformat.read(path, as_version=4)
    # a first cell of our own: which castore_edu does the kernel import?
    notebook.cells.insert(0, nbformat.v4.new_code_cell("import castore_edu; print(castore_edu.__file__)"))
    monkeypatch.setenv("PYTHONPATH", str(handout))  # the kernel inherits this process's environment
    execute(notebook, path.parent, allow_errors=True)
    where, *cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert Path(where.outputs[0].text.strip()).is_relative_to(handout)
    checks = [cell for cell in cells if CHECK_CALL.search(cell.source)]
    assert len(checks) == 2
    for cell in checks:
        (output,) = cell.outputs
        assert output.output_type == "error" and output.ename == "NotYet"
        assert output.traceback[0].startswith(NOT_YET), output.traceback
    others = [
        index for index, cell in enumerate(cells) if not CHECK_CALL.search(cell.source) and cell.outputs
    ]
    assert others == [], "cells other than the checks should run silently"
