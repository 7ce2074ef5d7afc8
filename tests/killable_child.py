"""A child process a SIGKILL test drives: it prints a line at each step it reaches, the test
waits for those lines (never on the clock) and kills the child where it wants to.

The lines are read by a thread, so that waiting for the next one can give up after
``line_wait`` seconds, far longer than any step takes on a loaded machine: a slow machine makes
the test slower, never red. Used by tests/test_sqlite_kill.py and tests/test_projection_kill.py.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENT = {**os.environ, "PYTHONPATH": str(ROOT)}


class KillableChild:
    """``python script *arguments`` as a child, its stdout split into lines of words."""

    def __init__(
        self, role: str, script: str, arguments: list[str], errors: IO[str], line_wait: float
    ) -> None:
        self.role, self.errors, self.line_wait = role, errors, line_wait
        self.process = subprocess.Popen(
            [sys.executable, script, *arguments],
            env=ENVIRONMENT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        self._lines: queue.Queue[list[str] | None] = queue.Queue()
        threading.Thread(target=self._read_lines, daemon=True).start()

    def _read_lines(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.split())
        self._lines.put(None)  # the pipe closed: the child is gone

    def next_line(self) -> list[str]:
        try:
            line = self._lines.get(timeout=self.line_wait)
        except queue.Empty:
            raise AssertionError(f"the {self.role} said nothing for {self.line_wait} s") from None
        if line is None:
            self.errors.seek(0)
            raise AssertionError(f"the {self.role} stopped by itself:\n{self.errors.read()}")
        return line

    def kill(self) -> None:
        """SIGKILL: no rollback, no cleanup, no last flush."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
