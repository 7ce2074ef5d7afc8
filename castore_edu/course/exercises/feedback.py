"""How a self-check talks to a learner: one line when it passes, a short "Not yet" block when not.

A check must tell a learner *what* is not right yet and *where to look*, never the answer, and
it must not bury that under a traceback: a learner who sees forty lines of asyncio internals
stops reading. So a failed check raises :class:`NotYet`, whose text is the whole message:

    Not yet: after TRAINER_RELEASED_POKEMON, the trainer should no longer own that Pokémon.
      Expected: pokemon_ids == ('psyduck',)
      Got:      Trainer(aggregate_id='misty', version=4, name='Misty', pokemon_ids=('staryu', 'psyduck'))
      Hint:     build a new tuple without the released id: a tuple cannot be changed in place.
    (Exercise 1 · Write a reducer: change your code, run its cell, then run this check again.)

Why an exception rather than a printed message and ``return False``: IPython renders an
exception that has a ``_render_traceback_`` method with exactly the lines that method returns —
JupyterLab shows them in its red error box, and nothing else. The learner sees a failure that
looks like one, "Run All" stops at the first exercise that is not done (as it would at any
error), and outside Jupyter — in a script, in pytest — it is an ordinary, readable assertion
error. A printed "not yet" would scroll by unnoticed and let the cells below run on a wrong
answer.

Learner code is run through :func:`attempt`, which turns the stub's ``NotImplementedError``
(and any other error the learner's code raises) into a :class:`NotYet` — raised *after* the
``except`` block, so that it carries no chained exception that IPython would print in full.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)
# Learner code that never returns (awaiting a message that never comes...) is cut off after this.
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Exercise:
    """One exercise of the workshop: its number across the course and its title."""

    number: int
    title: str

    def __str__(self) -> str:
        return f"Exercise {self.number} · {self.title}"


class NotYet(AssertionError):
    """A check found the exercise not done yet. Its message is all a learner needs to read."""

    def __init__(
        self,
        exercise: Exercise,
        problem: str,
        *,
        expected: str | None = None,
        got: str | None = None,
        hint: str | None = None,
        next_step: str = "change your code, run its cell, then run this check again",
    ) -> None:
        self.exercise = exercise
        self.problem = problem
        lines = [f"Not yet: {problem}"]
        for label, text in (("Expected", expected), ("Got", got), ("Hint", hint)):
            if text is not None:
                lines.append(f"  {label + ':':<9} {text}")
        lines.append(f"({exercise}: {next_step}.)")
        self.text = "\n".join(lines)
        super().__init__(self.text)

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: the message alone."""
        return self.text.splitlines()


def passed(exercise: Exercise, what: str) -> None:
    """Print the one success line of a check."""
    print(f"✅ Exercise {exercise.number} passed: {what}")


def not_yet(exercise: Exercise, problem: str, **details: str) -> NoReturn:
    """Fail the check (see :class:`NotYet` for ``expected``, ``got`` and ``hint``)."""
    raise NotYet(exercise, problem, **details)


def expect(condition: bool, exercise: Exercise, problem: str, **details: str) -> None:
    """Fail the check with ``problem`` unless ``condition`` holds."""
    if not condition:
        not_yet(exercise, problem, **details)


STUB_NEXT_STEP = (
    "replace the `raise NotImplementedError(...)` line with your code, run that cell, then this one again"
)
# A coroutine used as if it were its result ("'coroutine' object is not iterable") means an await
# is missing: say so, since the error message itself does not.
FORGOT_AWAIT_HINT = (
    "a coroutine was used without await: put await before the call (await storage.read_log(...))."
)


async def attempt(
    exercise: Exercise, doing: str, call: Callable[[], Any], *, allow: tuple[type[Exception], ...] = ()
) -> Any:
    """Run ``call()`` — learner code — and await its result if it is awaitable.

    ``doing`` names the call for messages ("your reducer", "catch(...)"). A stub's
    ``NotImplementedError`` and any other error become a :class:`NotYet`, except errors of the
    ``allow`` types, which the check expects: those are *returned*, for the check to inspect.
    A :class:`NotYet` raised inside passes through unchanged.
    """
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            result = call()
            if inspect.isawaitable(result):
                result = await result
        return result
    except NotYet:
        raise
    except allow as expected:
        return expected
    except NotImplementedError as error:
        failure = NotYet(
            exercise, f"this exercise still raises NotImplementedError — {error}", next_step=STUB_NEXT_STEP
        )
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # the check itself is being stopped (an interrupted cell): not the learner's error
        failure = NotYet(
            exercise,
            f"{doing} raised CancelledError.",
            hint="CancelledError tells asyncio that a task was cancelled; a channel adapter counts it as a "
            "failed delivery and retries it. To skip a message, return; to report a failure, raise an ordinary error.",
        )
    except TimeoutError:
        failure = NotYet(
            exercise,
            f"{doing} did not finish within {TIMEOUT_SECONDS:g} s.",
            hint="does it await something that never happens (a message nobody publishes, a queue without worker)?",
        )
    except Exception as error:
        failure = NotYet(
            exercise,
            f"{doing} raised {type(error).__name__}: {error}{where(error)}",
            hint=FORGOT_AWAIT_HINT
            if "'coroutine'" in str(error)
            else "read the error: it comes from your code (or from what your code called).",
        )
    raise failure  # outside the except blocks: no chained traceback to print


def where(error: BaseException) -> str:
    """`` (in f, line n)`` for the innermost frame of the learner's code in ``error``'s traceback."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith(PACKAGE_DIR) and f"{os.sep}asyncio{os.sep}" not in frame.filename
    ]
    return f" (in {frames[-1].name}, line {frames[-1].lineno})" if frames else ""
