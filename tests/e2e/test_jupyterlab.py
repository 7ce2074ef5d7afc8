"""The course as a learner meets it: JupyterLab from ``make lab``, notebooks run in a real browser.

Unit tests and nbval run the kernel only. They cannot see whether a widget actually appears,
or whether moving its slider changes what it shows — that needs the browser half of ipywidgets
(the ``@jupyter-widgets/jupyterlab-manager`` extension, shipped by ``jupyterlab_widgets``) and
a round trip through the kernel. So each test here does what a learner does: double-click a
notebook in the file browser, clear it, run every cell from the *Run* menu, check that no cell
failed (except those tagged ``raises-exception``: the notebooks show some errors on purpose),
use the widgets with the mouse, and close the notebook, shutting its kernel down.

On success the explorer and simulator tests save the screenshots the README shows
(``docs/screenshots/``); on failure, ``conftest.py`` saves a screenshot and the logs to
``test-artifacts/``. Deselect with ``-m "not e2e"``; install with ``bash tools/e2e_setup.sh``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.conftest import NOTEBOOKS, ROOT

pytestmark = pytest.mark.e2e

SCREENSHOTS = ROOT / "docs" / "screenshots"
KERNEL_TIMEOUT = 30.0  # seconds for a notebook's kernel to start
RUN_TIMEOUT = 30.0  # seconds for "Run All Cells" on one notebook (each takes 2-6 s here)
RESPONSE_TIMEOUT = 10_000  # milliseconds for a widget to show the kernel's answer
STDERR = "application/vnd.jupyter.stderr"  # JupyterLab renders tracebacks and stderr with it
WIDGET_ERRORS = ("Error displaying widget", "Error rendering output", "Failed to load model")

# The open notebook: is its kernel there and idle?
KERNEL_READY_JS = """() => {
    const panel = document.querySelector('.jp-NotebookPanel');
    const name = panel?.querySelector('.jp-Toolbar-kernelName')?.textContent ?? 'No Kernel';
    const status = panel?.querySelector('.jp-Notebook-ExecutionIndicator')?.getAttribute('data-status');
    return name !== 'No Kernel' && status === 'idle';
}"""
# What each cell of the open notebook shows: is it code, its prompt, the texts of its outputs.
CELLS_JS = """(panel, stderr) => [...panel.querySelectorAll('.jp-Notebook .jp-Cell')].map(cell => ({
    code: cell.classList.contains('jp-CodeCell'),
    prompt: (cell.querySelector('.jp-InputArea-prompt')?.textContent ?? '').trim(),
    stderr: [...cell.querySelectorAll(`.jp-RenderedText[data-mime-type="${stderr}"]`)].map(e => e.textContent),
    outputs: [...cell.querySelectorAll('.jp-OutputArea-output')].map(e => e.textContent),
}))"""


@dataclass
class CellView:
    index: int
    code: bool
    prompt: str
    stderr: list[str]
    outputs: list[str]

    @property
    def ran(self) -> bool:
        return re.fullmatch(r"\[\d+\]:", self.prompt) is not None

    def failures(self) -> list[str]:
        """Tracebacks, and widgets that failed to display."""
        tracebacks = [
            text for text in self.stderr if "Traceback" in text or re.search(r"\w(Error|Exception)\b", text)
        ]
        broken = [text for text in self.outputs if any(marker in text for marker in WIDGET_ERRORS)]
        return tracebacks + broken


def expect(locator: Any, message: str | None = None) -> Any:
    """Playwright's auto-retrying assertions (imported late: the module loads without Playwright)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator, message)


def menu(page: Any, title: str, item: str) -> None:
    """Click a menu of the menu bar, then one of its items, both by the label a learner reads."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(f"^{re.escape(title)}$")).click()
    label = page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$"))
    page.locator(".lm-Menu-item").filter(has=label).click()


@contextmanager
def notebook(page: Any, name: str) -> Iterator[Any]:
    """Open ``notebooks/<name>`` from the file browser; yield its panel once its kernel is idle.

    Afterwards: File > Close and Shut Down Notebook, without saving (a test only runs notebooks).
    """
    cell_count = len(json.loads((NOTEBOOKS / name).read_text())["cells"])
    page.locator(".jp-DirListing-item", has=page.get_by_text(name, exact=True)).dblclick()
    panel = page.locator(".jp-NotebookPanel")
    expect(panel.locator(".jp-Notebook .jp-Cell")).to_have_count(cell_count, timeout=20_000)
    page.wait_for_function(KERNEL_READY_JS, timeout=KERNEL_TIMEOUT * 1000)
    yield panel
    menu(page, "File", "Close and Shut Down Notebook…")
    closed_or_asking = (
        "() => !document.querySelector('.jp-NotebookPanel') || !!document.querySelector('.jp-Dialog')"
    )
    dialog = page.locator(".jp-Dialog")
    for _ in range(3):  # "Shut down the notebook?", then perhaps "Save your work?"
        page.wait_for_function(closed_or_asking)
        if not dialog.count():
            break
        discard = dialog.get_by_role("button", name=re.compile("Discard|Don't Save", re.IGNORECASE))
        (discard if discard.count() else dialog.locator("button.jp-mod-accept")).click()
        expect(dialog).to_have_count(0)
    expect(panel).to_have_count(0)


def expected_errors(name: str) -> set[int]:
    """Indices of the cells that raise on purpose (tagged ``raises-exception``, as nbval reads them)."""
    cells = json.loads((NOTEBOOKS / name).read_text())["cells"]
    return {
        i for i, cell in enumerate(cells) if "raises-exception" in cell.get("metadata", {}).get("tags", [])
    }


def run_all_cells(page: Any, panel: Any, name: str) -> None:
    """Edit > Clear Outputs of All Cells, Run > Run All Cells; fail on any unexpected error."""
    menu(page, "Edit", "Clear Outputs of All Cells")
    menu(page, "Run", "Run All Cells")
    allowed = expected_errors(name)
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        cells = [CellView(i, **cell) for i, cell in enumerate(panel.evaluate(CELLS_JS, STDERR))]
        failed = [
            (cell.index, failure)
            for cell in cells
            if cell.index not in allowed
            for failure in cell.failures()
        ]
        assert not failed, f"{name}: cells failed:\n" + "\n".join(
            f"cell {i}: {text[-1500:]}" for i, text in failed
        )
        pending = [cell.index for cell in cells if cell.code and not cell.ran]
        if not pending and page.evaluate(KERNEL_READY_JS):
            return
        assert time.monotonic() < deadline, f"{name}: cells {pending} did not run within {RUN_TIMEOUT:.0f} s"
        page.wait_for_timeout(200)


def widget_cell(page: Any, panel: Any, *parts: str) -> Any:
    """The one code cell whose output holds a widget with all these parts (CSS selectors)."""
    cell = panel.locator(".jp-CodeCell")
    for part in parts:
        cell = cell.filter(has=page.locator(f".jp-OutputArea-output {part}"))
    rendered = f"one widget with {', '.join(parts)} (is ipywidgets' JupyterLab extension active?)"
    expect(cell, rendered).to_have_count(1, timeout=RESPONSE_TIMEOUT)
    cell.locator(".jp-OutputArea-output").last.scroll_into_view_if_needed()
    return cell


def drag_slider(page: Any, slider: Any, fraction: float) -> None:
    """Drag a slider's handle with the mouse to ``fraction`` of its track (0 = left, 1 = right)."""
    handle = slider.locator(".noUi-handle").bounding_box()
    track = slider.locator(".noUi-target").bounding_box()
    assert handle and track, "the slider is not on screen"
    y = handle["y"] + handle["height"] / 2
    page.mouse.move(handle["x"] + handle["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(track["x"] + track["width"] * fraction, y, steps=8)
    page.mouse.up()


def chart_digest(image: Any) -> tuple[str, str]:
    """An image's ``src`` and the SHA-256 of the bytes it shows (ipywidgets' Image uses blob: URLs)."""
    return image.evaluate(
        """async img => {
            const bytes = await (await fetch(img.src)).arrayBuffer();
            const digest = await crypto.subtle.digest('SHA-256', bytes);
            return [img.src, [...new Uint8Array(digest)].map(b => b.toString(16).padStart(2, '0')).join('')];
        }"""
    )


def save_screenshot(page: Any, cell: Any, name: str) -> None:
    """A picture of a cell, its code and its widget, for the README."""
    page.mouse.move(0, 0)  # no hover highlight, no focus ring in the picture
    page.evaluate("() => document.activeElement?.blur()")
    # The notebook scrolls inside the page: a cell taller than the window needs a taller window.
    viewport = page.viewport_size
    box = cell.bounding_box()
    page.set_viewport_size(
        {"width": viewport["width"], "height": max(viewport["height"], int(box["height"]) + 200)}
    )
    try:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        cell.scroll_into_view_if_needed()
        cell.screenshot(path=str(SCREENSHOTS / name), animations="disabled")
    finally:
        page.set_viewport_size(viewport)


def test_setup_check_notebook(page: Any) -> None:
    """00: every cell runs; the slider and the plot render; the kernel moves the slider."""
    name = "00_setup_check.ipynb"
    with notebook(page, name) as panel:
        run_all_cells(page, panel, name)
        slider = widget_cell(page, panel, ".widget-slider")
        expect(slider.locator(".widget-label")).to_have_text("level")
        # A later cell sets `slider.value = 6` in the kernel: the browser must follow.
        expect(slider.locator(".widget-readout")).to_have_text("6", timeout=RESPONSE_TIMEOUT)
        plots = panel.locator(".jp-RenderedImage img")
        expect(plots.first).to_be_visible()
        loaded = plots.evaluate_all("imgs => imgs.every(img => img.complete && img.naturalWidth > 0)")
        assert loaded, "a plot did not load"


def test_explorer_widget(page: Any) -> None:
    """02: the explorer renders; its slider and its ◀ button change the event and aggregate shown."""
    name = "02_event_store.ipynb"
    with notebook(page, name) as panel:
        run_all_cells(page, panel, name)
        explorer = widget_cell(page, panel, ".widget-dropdown", ".widget-slider")
        readout = explorer.locator(".widget-slider .widget-readout")
        previous = explorer.get_by_role("button", name="previous")
        expect(previous).to_be_visible()
        expect(explorer.get_by_role("button", name="next")).to_be_visible()
        title, *views = explorer.locator(".widget-html").all()  # title, event, aggregate
        assert len(views) == 2, "the explorer shows no event and aggregate side by side"
        expect(title).to_contain_text("version 1 of")  # where the notebook's next cell left it
        before = [view.inner_text() for view in views]

        drag_slider(page, explorer.locator(".widget-slider"), 1.0)  # to the latest version
        expect(readout).not_to_have_text("1")
        latest = int(readout.inner_text())
        moved = "moving the slider did not change what the explorer shows"
        expect(title, moved).to_contain_text(f"version {latest} of {latest}", timeout=RESPONSE_TIMEOUT)
        after_slider = [view.inner_text() for view in views]
        assert after_slider != before, moved

        previous.click()
        expect(readout).to_have_text(str(latest - 1))
        clicked = "◀ previous did not change what the explorer shows"
        expect(title, clicked).to_contain_text(f"version {latest - 1} of {latest}", timeout=RESPONSE_TIMEOUT)
        assert [view.inner_text() for view in views] != after_slider, clicked
        save_screenshot(page, explorer, "explorer.png")


def test_failure_simulator_widget(page: Any) -> None:
    """08: the simulator renders; after moving a slider, its run button redraws the chart."""
    name = "08_remedies.ipynb"
    if not (NOTEBOOKS / name).exists():
        pytest.skip(f"notebooks/{name} (the failure simulator) is not there yet")
    with notebook(page, name) as panel:
        run_all_cells(page, panel, name)
        run_button = re.compile(r"\brun\b", re.IGNORECASE)
        simulator = widget_cell(page, panel, ".widget-slider", ".jupyter-button")
        expect(simulator.get_by_role("button", name=run_button)).to_be_visible()
        chart = simulator.locator("img").first
        expect(chart).to_be_visible()
        before = chart_digest(chart)

        slider = simulator.locator(".widget-slider").first
        readout = slider.locator(".widget-readout")
        old_value = readout.inner_text()
        drag_slider(page, slider, 0.25)
        if readout.inner_text() == old_value:
            drag_slider(page, slider, 0.75)
        expect(readout).not_to_have_text(old_value)
        simulator.get_by_role("button", name=run_button).click()
        # Redrawn: the widget shows a new picture (a new src), and its bytes differ.
        redrawn = "the run button did not redraw the chart"
        expect(chart, redrawn).not_to_have_attribute("src", before[0], timeout=RESPONSE_TIMEOUT)
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=chart.element_handle())
        assert chart_digest(chart)[1] != before[1], f"{redrawn}: the new picture is the old one"
        save_screenshot(page, simulator, "simulator.png")
