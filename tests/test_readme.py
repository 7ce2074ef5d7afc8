"""The README's example runs as written (inside a coroutine, as top-level await in a notebook)."""

from __future__ import annotations

import asyncio
import re
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_example_runs_and_publishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = re.search(r"## The library in one screen\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert code is not None, "README lost its example"
    monkeypatch.chdir(tmp_path)  # the example creates pokedex.sqlite in the working directory
    namespace: dict[str, object] = {}
    exec(
        compile("async def example():\n" + textwrap.indent(code.group(1), "    "), "README.md", "exec"),
        namespace,
    )
    asyncio.run(namespace["example"]())  # type: ignore[operator]
    assert capsys.readouterr().out == "heard POKEMON_APPEARED attempt 1\n"
    assert (tmp_path / "pokedex.sqlite").exists()
