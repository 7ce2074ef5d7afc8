"""``make test`` runs the other Pythons' suites at the same time (tools/test_other_pythons.sh).

Run for real by every ``make test``; these tests check what a green run cannot show: that a
failure in one Python fails the whole command and shows its log, and that a passing one is
reported. A fake Python minor version, 3.99, keeps them apart from the real venvs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.tooling  # the same on every Python: make test runs it on the newest only

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "test_other_pythons.sh"
FAKE = "3.99"


@pytest.fixture
def fake_python() -> Iterator[Path]:
    """A .venv-3.99 whose python is this one, and the status files its setup would leave."""
    venv = ROOT / f".venv-{FAKE}"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    yield artifacts
    shutil.rmtree(venv)
    for name in (f"setup-{FAKE}.rc", f"setup-{FAKE}.log", f"python-{FAKE}.log"):
        (artifacts / name).unlink(missing_ok=True)


def run(*pytest_args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), "run", "3.13", f"3.13=/main/python {FAKE}=/fake/python", *pytest_args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_passing_python_is_reported_with_its_time(fake_python: Path) -> None:
    (fake_python / f"setup-{FAKE}.rc").write_text("0\n")
    result = run("tests/test_clock.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"== Python {FAKE} (.venv-{FAKE}): unit tests and nbval" in result.stdout
    assert " passed" in result.stdout
    assert f"== Python {FAKE}: done in" in result.stdout
    assert "== Python 3.13" not in result.stdout  # the main Python is not run again


def test_a_failing_suite_fails_the_command(fake_python: Path) -> None:
    (fake_python / f"setup-{FAKE}.rc").write_text("0\n")
    result = run("tests/test_clock.py", "-k", "no_test_has_this_name")
    assert result.returncode != 0
    assert "deselected" in result.stdout


def test_a_failed_setup_fails_the_command_and_shows_its_log(fake_python: Path) -> None:
    (fake_python / f"setup-{FAKE}.rc").write_text("2\n")
    (fake_python / f"setup-{FAKE}.log").write_text("pip: no matching distribution\n")
    result = run("tests/test_clock.py")
    assert result.returncode == 1
    assert "pip: no matching distribution" in result.stdout
    assert f"error: setting up .venv-{FAKE} failed" in result.stdout
