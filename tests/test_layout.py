"""The package is laid out in rooms, and a room only imports the rooms below it.

The order is the course's: ``core`` knows nothing of storage, ``storage`` nothing of messaging,
and no library room knows ``testing`` or ``course``, which exist to teach and test the library.
Imports under ``if TYPE_CHECKING:`` do not count: they only name types, and never run.
The front door, ``castore_edu/__init__.py``, re-exports the public API from every room.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "castore_edu"
# Lowest first: a room may import the rooms before it in this list, and itself.
ROOMS = [
    "core",
    "storage",
    "snapshots",
    "messaging",
    "connected",
    "replay",
    "reliability",
    "projections",
    "testing",
    "course",
]
LIBRARY = ROOMS[: ROOMS.index("projections") + 1]


def runtime_imports(path: Path) -> set[str]:
    """The ``castore_edu`` modules a file imports when it runs."""
    tree = ast.parse(path.read_text(), str(path))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(child) for statement in node.body for child in ast.walk(statement))
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "castore_edu"}


def room_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ROOMS else None


@pytest.mark.parametrize("room", ROOMS)
def test_a_room_imports_only_the_rooms_below_it(room: str) -> None:
    allowed = set(ROOMS[: ROOMS.index(room) + 1])
    wrong = sorted(
        f"{path.relative_to(PACKAGE.parent)} imports {module}"
        for path in (PACKAGE / room).rglob("*.py")
        for module in runtime_imports(path)
        if room_of(module) not in allowed
    )
    assert wrong == []


def test_every_module_lives_in_a_room() -> None:
    loose = sorted(path.name for path in PACKAGE.glob("*.py") if path.name != "__init__.py")
    assert loose == []
    assert sorted(
        path.name for path in PACKAGE.iterdir() if path.is_dir() and path.name != "__pycache__"
    ) == sorted(ROOMS)


def test_each_room_says_what_it_holds_and_which_notebook_teaches_it() -> None:
    for room in ROOMS:
        docstring = ast.get_docstring(ast.parse((PACKAGE / room / "__init__.py").read_text()))
        assert docstring, room
        assert "notebook" in docstring.lower(), room


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "from castore_edu.course.pokedex import POKEMONS\n"
        "if TYPE_CHECKING:\n    from castore_edu.testing.faults import Fault\n"
    )
    assert runtime_imports(module) == {"castore_edu.course.pokedex"}
    assert room_of("castore_edu.course.pokedex") not in LIBRARY
