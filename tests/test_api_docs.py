"""docs/api.md documents the whole public API: every name of ``castore_edu.__all__``.

Its sections are numbered so that tests and docstrings can cite them ("docs/api.md §3"); a
citation must name a section that exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import castore_edu

ROOT = Path(__file__).resolve().parent.parent
API = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
SECTIONS = {int(number) for number in re.findall(r"^## §(\d+) ", API, re.MULTILINE)}


def documented(name: str, text: str = API) -> bool:
    """``name`` opens a code span (`` `name(...)` ``, `` `async name(...)` ``), not inside a longer name."""
    return re.search(rf"`(async )?{re.escape(name)}\b", text) is not None


def test_every_public_name_is_documented() -> None:
    missing = [name for name in castore_edu.__all__ if not documented(name)]
    assert missing == []


def test_the_check_tells_a_name_from_a_longer_one() -> None:
    assert documented("EventStore", "**`EventStore(*, event_store_id)`**")
    assert not documented("EventStore", "**`EventStoreContext(event_store_id)`**")
    assert not documented("Relay", "a relay, in prose")


def test_the_sections_are_numbered_from_one_without_gaps() -> None:
    assert sorted(SECTIONS) == list(range(1, len(SECTIONS) + 1))
    assert len(SECTIONS) >= 11


def test_every_citation_in_the_repository_names_an_existing_section() -> None:
    cited = {
        (path.relative_to(ROOT).as_posix(), int(number))
        for folder in ("castore_edu", "tests", "tools", "README.md", "CONTRIBUTING.md")
        for path in ([ROOT / folder] if folder.endswith(".md") else (ROOT / folder).rglob("*.py"))
        if path.exists()
        for number in re.findall(r"docs/api\.md §(\d+)", path.read_text(encoding="utf-8"))
    }
    assert {(path, number) for path, number in cited if number not in SECTIONS} == set()
