"""The setup story stays true: one set of tested versions, described the same way everywhere.

pyproject.toml names the direct dependencies (lower bounds only), requirements/constraints.txt
pins the tested version of every installed package, environment.yml repeats the direct ones for
conda users, and the README's two commands are what CI runs. Nothing else notices when one of
these drifts from the others, so these tests do.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
# What `make setup` installs, and therefore what environment.yml must mirror.
SETUP_EXTRAS = ("notebooks", "test", "lint", "postgres", "nats", "servers")
PACKAGE = ROOT / "castore_edu"
# The rooms of the library proper (tests/test_layout.py orders them); testing/ and course/ are
# teaching aids that may use the notebook extra (widgets, plots).
LIBRARY = ("core", "storage", "snapshots", "messaging", "connected", "replay", "reliability", "projections")
# The one exception: an adapter for a real server imports that server's driver (an extra), and
# nothing else in the library imports that adapter.
DRIVERS = {
    "castore_edu/storage/postgres.py": {"psycopg"},
    "castore_edu/projections/postgres.py": {"psycopg"},
    "castore_edu/messaging/nats_jetstream.py": {"nats"},
    "castore_edu/messaging/nats_bus.py": {"nats"},
    "castore_edu/messaging/nats_queue.py": {"nats"},
}


# --- readers -------------------------------------------------------------------------------


def read_environment_yml() -> dict:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert isinstance(environment, dict), "environment.yml must be a mapping"
    return environment


def constraints() -> list[Requirement]:
    """Every pin; uv's annotations (``    # via ...``) and the header are comments."""
    lines = (ROOT / "requirements" / "constraints.txt").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def locked_versions() -> dict[str, str]:
    """Pinned version of each package on this machine (markers evaluated here)."""
    locked: dict[str, str] = {}
    for req in constraints():
        if req.marker is None or req.marker.evaluate():
            (spec,) = req.specifier
            assert spec.operator == "==", f"constraints must pin exactly: {req}"
            name = canonicalize_name(req.name)
            assert name not in locked, f"{req.name} is pinned twice on this machine"
            locked[name] = spec.version
    return locked


def direct_requirements(*extras: str) -> dict[str, Requirement]:
    """Requirements of the given extras, following self-references like castore_edu[notebooks]."""
    found: dict[str, Requirement] = {}
    pending = list(extras)
    while pending:
        for line in PROJECT["optional-dependencies"][pending.pop()]:
            req = Requirement(line)
            if canonicalize_name(req.name) == canonicalize_name(PROJECT["name"]):
                pending.extend(req.extras)
            else:
                found[canonicalize_name(req.name)] = req
    return found


def environment_pip_lines() -> list[str]:
    environment = read_environment_yml()
    sections = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict)]
    assert len(sections) == 1, "environment.yml needs exactly one `- pip:` list"
    return sections[0]


def environment_pins() -> dict[str, str]:
    pins = {}
    for line in environment_pip_lines():
        if not line.startswith("-"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"environment.yml must pin exactly: {line}"
            pins[canonicalize_name(req.name)] = spec.version
    return pins


# --- pyproject.toml and the constraints --------------------------------------------------


def test_core_depends_on_the_standard_library_only() -> None:
    assert PROJECT["dependencies"] == []


def imported_top_level_modules(path: Path) -> set[str]:
    """The top-level names of every absolute import in a file (``import a.b`` gives ``a``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("room", LIBRARY)
def test_the_library_rooms_import_only_the_standard_library(room: str) -> None:
    """What ``pip install castore_edu`` gives must run with no extra: the library rooms use the
    standard library only (testing/ and course/ may use the notebook extra: widgets, plots)."""
    assert (PACKAGE / room / "__init__.py").is_file(), f"no room {room}/ in castore_edu"
    allowed = sys.stdlib_module_names | {"castore_edu"}
    outside = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (PACKAGE / room).rglob("*.py")
        for name in imported_top_level_modules(path)
        - allowed
        - DRIVERS.get(str(path.relative_to(ROOT)), set())
    }
    assert outside == set()


def test_importing_the_package_loads_no_driver() -> None:
    """``import castore_edu`` (and every name of ``import *``) works without the server extras:
    the PostgreSQL and NATS adapters, and with them psycopg and nats-py, load only when asked for
    by name."""
    drivers = "{'psycopg', 'castore_edu.storage.postgres', 'nats', 'castore_edu.messaging.nats_jetstream'}"
    code = (
        "import sys; from castore_edu import *; import castore_edu.storage, castore_edu.reliability, "
        "castore_edu.projections, "
        f"castore_edu.messaging; print(sorted({drivers} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"
    for name, driver in [
        ("PostgresEventStorageAdapter", "psycopg"),
        ("PostgresProjectionRunner", "psycopg"),
        ("NatsMessageBusAdapter", "nats"),
        ("NatsMessageQueueAdapter", "nats"),
    ]:
        code = f"import sys; from castore_edu import {name}; print({driver!r} in sys.modules)"
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
        )
        assert done.stdout.strip() == "True"


def test_the_standard_library_check_catches_a_third_party_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("import os.path\nfrom castore_edu.core import EventStore\nfrom numpy import array\n")
    assert imported_top_level_modules(module) - sys.stdlib_module_names == {"castore_edu", "numpy"}


def test_every_direct_dependency_is_pinned_the_same_everywhere_and_within_its_range() -> None:
    pinned_anywhere = {canonicalize_name(req.name): req for req in constraints()}
    locked = locked_versions()
    for name, req in direct_requirements(*PROJECT["optional-dependencies"]).items():
        assert name in locked, f"{req.name} is not in requirements/constraints.txt: run `make lock`"
        # one version everywhere, or everywhere the requirement applies (a server binary that has
        # no Windows wheel is required with a marker, and pinned with the same one)
        assert str(pinned_anywhere[name].marker) == str(req.marker), (
            f"{req.name} must pin one version everywhere"
        )
        assert req.specifier.contains(locked[name]), (
            f"{req.name}=={locked[name]} (constraints) is outside {req} (pyproject.toml)"
        )


def test_the_lock_is_universal_platform_only_packages_are_pinned_with_their_markers() -> None:
    """`make lock` resolves for every platform: macOS- and Windows-only packages are pinned too."""
    markers = {canonicalize_name(req.name): str(req.marker) for req in constraints() if req.marker}
    assert 'sys_platform == "darwin"' in markers["appnope"]  # ipykernel, on macOS only
    assert 'sys_platform == "win32"' in markers["colorama"]  # pytest, on Windows only
    assert 'os_name == "nt"' in markers["pywinpty"]  # jupyter-server's terminals, on Windows only
    header = (ROOT / "requirements" / "constraints.txt").read_text().splitlines()[:2]
    assert header[-1].strip("# ") == "make lock"


def test_the_running_environment_is_the_pinned_one() -> None:
    locked = locked_versions()
    drift = {
        dist.name: f"{dist.version} installed, {locked[name]} pinned"
        for dist in importlib.metadata.distributions()
        if (name := canonicalize_name(dist.name)) in locked and dist.version != locked[name]
    }
    assert not drift, f"not the tested versions (run the suite with `make test`): {drift}"


# --- environment.yml ---------------------------------------------------------------------


def test_environment_yml_lists_the_setup_dependencies_at_their_pinned_versions() -> None:
    locked = locked_versions()
    expected = {name: locked[name] for name in direct_requirements(*SETUP_EXTRAS)}
    assert environment_pins() == expected


def test_environment_yml_installs_python_pip_the_constraints_and_the_package() -> None:
    environment = read_environment_yml()
    assert environment["name"] == PROJECT["name"]
    assert environment["channels"] == ["conda-forge"]
    conda_packages = [d for d in environment["dependencies"] if isinstance(d, str)]
    assert conda_packages == ["python" + PROJECT["requires-python"], "pip"]
    options = [line for line in environment_pip_lines() if line.startswith("-")]
    assert options == ["-c requirements/constraints.txt", "-e ."]


def test_environment_yml_packages_install_through_pip(tmp_path: Path) -> None:
    """Dry-run (nothing is installed) the pinned packages conda would hand to pip.

    --no-deps keeps it to a couple of seconds: that the pins work together is proven by
    `make setup`, which installs them with the constraints.
    """
    specs = [line for line in environment_pip_lines() if not line.startswith("-")]
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps"]
    command += ["--ignore-installed", "--quiet", "--report", str(report), *specs]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail("pip did not answer within 300 s: is PyPI reachable?")
    if done.returncode != 0:
        pytest.fail(
            "pip could not install environment.yml's packages (is PyPI reachable?)\n"
            + "\n".join(done.stderr.splitlines()[-40:])
        )
    resolved = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert resolved == environment_pins()


# --- README and CI -----------------------------------------------------------------------


def quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Quickstart\n(.*?)(?=^## )", readme, re.MULTILINE | re.DOTALL)
    assert section, "README.md needs a `## Quickstart` section followed by another section"
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", section[1], re.MULTILINE | re.DOTALL)
    commands = [shlex.split(line, comments=True) for block in blocks for line in block.splitlines()]
    return [shlex.join(words) for words in commands if words]


def test_readme_quickstart_is_two_make_commands_and_ci_runs_the_test_one() -> None:
    commands = quickstart_commands()
    assert commands == ["make lab", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    for command in commands:
        target = command.removeprefix("make ")
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), f"Makefile has no {target}"
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    ci_commands = [line for line in ci_lines if line and not line.startswith(("#", "set ", "cd "))]
    assert ci_commands == ["make test"]
