"""Notebook widgets (they need the ``notebooks`` extra: ``pip install castore_edu[notebooks]``).

The core package uses the standard library only; this subpackage is the one place that needs
ipywidgets. Each widget keeps its logic in plain classes and functions, tested without a
browser; the widget itself only wires buttons and sliders to that logic.
"""

from castore_edu.course.widgets.explorer import (
    EventStoreExplorer,
    LoadedHistories,
    aggregate_html,
    event_html,
    load_histories,
)
from castore_edu.course.widgets.simulator import FailureSimulator, chart_png, result_html

__all__ = [
    "EventStoreExplorer",
    "FailureSimulator",
    "LoadedHistories",
    "aggregate_html",
    "chart_png",
    "event_html",
    "load_histories",
    "result_html",
]
