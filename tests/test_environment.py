"""The setup story stays true: one set of tested versions, described the same way everywhere.

pyproject.toml names the direct dependencies (lower bounds only), requirements/constraints.txt
pins the tested version of every installed package, environment.yml repeats the direct ones for
conda users, and the README's two commands are what CI runs. Nothing else notices when one of
these drifts from the others, so these tests do.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
# What `make setup` installs, and therefore what environment.yml must mirror.
SETUP_EXTRAS = ("notebooks", "test", "lint")


# --- readers -------------------------------------------------------------------------------


def parse_environment_yml(text: str) -> dict:
    """Parse the small YAML subset environment.yml uses (stdlib only, no PyYAML).

    Supported: `key: value`, `key:` followed by an indented block, `- item` lists whose items are
    scalars or a single `key:` opening a nested block (conda's `- pip:`), full-line comments.
    Anything else raises ValueError rather than being misread.
    """
    lines = [
        (len(raw) - len(raw.lstrip(" ")), raw.strip())
        for raw in text.splitlines()
        if raw.strip() and not raw.lstrip().startswith("#")
    ]
    value, end = _parse_block(lines, 0)
    if end != len(lines):
        raise ValueError(f"unexpected indentation at {lines[end][1]!r}")
    return value


def _parse_block(lines: list[tuple[int, str]], start: int) -> tuple[dict | list, int]:
    """Parse the mapping or list whose first line is lines[start]; return it and the next index."""
    indent = lines[start][0]
    is_list = lines[start][1].startswith("- ")
    result: dict | list = [] if is_list else {}
    i = start
    while i < len(lines) and lines[i][0] == indent:
        text = lines[i][1]
        if text.startswith("- ") != is_list:
            raise ValueError(f"list and mapping mixed at {text!r}")
        if is_list:
            text = text[2:].strip()
        key, colon, rest = text.partition(":")
        opens_block = bool(colon) and not rest.strip() and " " not in key
        i += 1
        if opens_block:
            # The block is indented deeper, or (YAML allows it) is a list at the key's own indent.
            child = lines[i] if i < len(lines) else (-1, "")
            same_indent_list = not is_list and child[0] == indent and child[1].startswith("- ")
            if not (child[0] > indent or same_indent_list):
                raise ValueError(f"{key!r} opens an empty block")
            nested, i = _parse_block(lines, i)
        if is_list:
            result.append({key: nested} if opens_block else text)
        elif opens_block:
            result[key] = nested
        elif colon:
            result[key.strip()] = rest.strip()
        else:
            raise ValueError(f"neither `key: value` nor a list item: {text!r}")
    return result, i


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
    environment = parse_environment_yml((ROOT / "environment.yml").read_text())
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


# --- the reader itself -------------------------------------------------------------------


def test_yaml_subset_parser_reads_nested_lists_and_rejects_what_it_does_not_know() -> None:
    text = "name: demo\n# comment\ndependencies:\n  - python>=3.11\n  - pip:\n      - -e .\n"
    assert parse_environment_yml(text) == {
        "name": "demo",
        "dependencies": ["python>=3.11", {"pip": ["-e ."]}],
    }
    with pytest.raises(ValueError):
        parse_environment_yml("dependencies:\n  - a\n    - b\n")
    with pytest.raises(ValueError):
        parse_environment_yml("just a sentence\n")


# --- pyproject.toml and the constraints --------------------------------------------------


def test_core_depends_on_the_standard_library_only() -> None:
    assert PROJECT["dependencies"] == []


def test_every_direct_dependency_is_pinned_the_same_everywhere_and_within_its_range() -> None:
    pinned_anywhere = {canonicalize_name(req.name): req for req in constraints()}
    locked = locked_versions()
    for name, req in direct_requirements(*PROJECT["optional-dependencies"]).items():
        assert name in locked, f"{req.name} is not in requirements/constraints.txt: run `make lock`"
        assert pinned_anywhere[name].marker is None, f"{req.name} must pin one version everywhere"
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
    environment = parse_environment_yml((ROOT / "environment.yml").read_text())
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
