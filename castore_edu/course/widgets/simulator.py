"""The failure simulator: sliders for fault rates and workload size, a button, a chart.

It runs :func:`castore_edu.course.experiment.run_experiment` — the same seeded workload through a
connected event store and through a relay, under the same random faults — and redraws the bar
chart and the table of counts. The chart has two panels, each on its own scale: what was stored
and delivered (hundreds of messages), and what went wrong (a handful lost or duplicated). On one
scale the bars that tell the two designs apart — 21 lost against 0, say — would be slivers beside
the 300-high ones.

Widget callbacks are plain synchronous functions, and the experiment is a coroutine. In a
notebook an event loop is already running (the kernel's), so the button's callback *schedules*
the experiment as a task on that loop and returns at once; the task updates the chart when it
ends. :attr:`FailureSimulator.task` is that task: a cell (or a test) can ``await simulator.task``
— or ``await simulator.finished()`` — to continue once the chart is up to date. Outside any event
loop (a plain script) the click runs the experiment to completion before returning.

The experiment runs on in-memory adapters without retry delays, so a run takes milliseconds of
computation and no wall-clock waiting.
"""

from __future__ import annotations

import asyncio
import html
import io
from collections.abc import Awaitable, Callable
from typing import Any

import ipywidgets as widgets

from castore_edu.course.experiment import ExperimentResult, FaultRates, plot_experiment, run_experiment

Runner = Callable[..., Awaitable[ExperimentResult]]
DEFAULT_RATES = FaultRates(fail=0.1)
RATE_LABELS = {
    "fail": "publish fails",
    "lose_ack": "ack lost",
    "duplicate": "duplicated",
    "crash": "crash",
}


def chart_png(result: ExperimentResult) -> bytes:
    """:func:`~castore_edu.course.experiment.plot_experiment` as PNG bytes (rendered off-screen, no pyplot state kept)."""
    buffer = io.BytesIO()
    plot_experiment(result).savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def result_html(result: ExperimentResult) -> str:
    """The two paths side by side, as an HTML table."""
    header = "<tr><th></th><th>connected store</th><th>relay</th></tr>"
    rows = []
    for name, *values in result.rows():
        shown = ["yes" if value is True else "no" if value is False else str(value) for value in values]
        rows.append(
            f"<tr><td>{html.escape(name)}</td>"
            + "".join(f"<td style='text-align:right'>{value}</td>" for value in shown)
            + "</tr>"
        )
    return f"<table>{header}{''.join(rows)}</table>"


class FailureSimulator:
    """Sliders (``pushes``, one per fault rate, ``seed``), a ``run_button``, and the outputs
    ``chart`` (an image), ``summary`` (a table) and ``status`` (a line of text).

    Each rate slider goes up to 25 %, so that the four rates never add up to more than 100 %.
    """

    def __init__(
        self,
        *,
        pushes: int = 100,
        rates: FaultRates = DEFAULT_RATES,
        seed: int = 0,
        runner: Runner = run_experiment,
    ) -> None:
        self.runner = runner
        self.pushes = widgets.IntSlider(value=pushes, min=10, max=500, step=10, description="pushes")
        self.rates = {
            name: widgets.FloatSlider(
                value=getattr(rates, name),
                min=0.0,
                max=0.25,
                step=0.01,
                description=label,
                readout_format=".0%",
                style={"description_width": "7em"},
            )
            for name, label in RATE_LABELS.items()
        }
        self.seed = widgets.BoundedIntText(value=seed, min=0, max=10**9, description="seed")
        self.run_button = widgets.Button(description="Run experiment", button_style="primary")
        self.status = widgets.Label(value="Set the faults, then run the experiment.")
        self.chart = widgets.Image(format="png")
        self.summary = widgets.HTML()
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.pushes, self.seed]),
                widgets.HBox(list(self.rates.values())[:2]),
                widgets.HBox(list(self.rates.values())[2:]),
                widgets.HBox([self.run_button, self.status]),
                self.chart,
                self.summary,
            ]
        )
        self.result: ExperimentResult | None = None
        self.task: asyncio.Task[None] | None = None
        self.run_button.on_click(lambda _button: self.run())

    def __repr__(self) -> str:
        return f"FailureSimulator(pushes={self.pushes.value}, seed={self.seed.value})"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)  # the default text lists every child widget
        return bundle

    def fault_rates(self) -> FaultRates:
        return FaultRates(**{name: slider.value for name, slider in self.rates.items()})

    def run(self) -> None:
        """What the button does: start the experiment with the sliders' values (see the module
        docstring for when it has finished)."""
        if self.task is not None and not self.task.done():
            self.status.value = "Still running the previous experiment…"
            return
        self.run_button.disabled = True
        self.status.value = "Running…"
        experiment = self._run(self.pushes.value, self.fault_rates(), self.seed.value)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop: a plain script, not a notebook
            asyncio.run(experiment)
            return
        self.task = loop.create_task(experiment, name="failure simulator")

    async def finished(self) -> None:
        """Wait for the experiment the last click started (returns at once if there is none)."""
        if self.task is not None:
            await self.task

    async def _run(self, pushes: int, rates: FaultRates, seed: int) -> None:
        try:
            result = await self.runner(pushes=pushes, rates=rates, seed=seed)
        except Exception as error:  # shown in the widget: a callback has nobody to raise to
            self.status.value = f"The experiment failed: {error}"
            return
        finally:
            self.run_button.disabled = False
        self.show(result)

    def show(self, result: ExperimentResult) -> None:
        """Draw ``result``: chart, table and a one-line verdict."""
        self.result = result
        self.chart.value = chart_png(result)
        self.summary.value = result_html(result)
        self.status.value = (
            f"{result.pushes} pushes: the connected store lost {result.connected.lost_messages} "
            f"messages, the relay {result.relay.lost_messages} "
            f"(and delivered {result.relay.duplicated_messages} duplicates)."
        )
