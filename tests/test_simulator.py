"""The failure simulator widget, driven headlessly: set slider values, click, await the task."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("matplotlib")

from castore_edu.course.experiment import FaultRates, plot_experiment, run_experiment
from castore_edu.course.widgets.simulator import FailureSimulator, chart_png, result_html

pytestmark = pytest.mark.anyio

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_sliders_start_from_the_given_settings() -> None:
    simulator = FailureSimulator(pushes=60, rates=FaultRates(fail=0.2, crash=0.05), seed=3)
    assert simulator.pushes.value == 60 and simulator.seed.value == 3
    assert simulator.fault_rates() == FaultRates(fail=0.2, crash=0.05)
    assert all(slider.max == 0.25 for slider in simulator.rates.values())  # 4 x 25 % <= 100 %
    assert simulator.chart.value == b"" and simulator.result is None
    assert simulator._repr_mimebundle_()["text/plain"] == "FailureSimulator(pushes=60, seed=3)"


async def test_a_click_in_a_running_loop_schedules_the_experiment_and_redraws_when_it_ends() -> None:
    simulator = FailureSimulator()
    simulator.pushes.value = 120
    simulator.rates["fail"].value = 0.15
    simulator.rates["duplicate"].value = 0.05
    simulator.seed.value = 9
    simulator.run_button.click()
    assert simulator.status.value == "Running…" and simulator.run_button.disabled
    assert simulator.result is None  # scheduled, not run yet: the callback returned at once
    await simulator.finished()

    expected = await run_experiment(pushes=120, rates=FaultRates(fail=0.15, duplicate=0.05), seed=9)
    assert simulator.result == expected
    assert not simulator.run_button.disabled
    assert bytes(simulator.chart.value).startswith(PNG_SIGNATURE)
    assert simulator.summary.value == result_html(expected)
    assert simulator.status.value == (
        f"120 pushes: the connected store lost {expected.connected.lost_messages} messages, "
        f"the relay 0 (and delivered {expected.relay.duplicated_messages} duplicates)."
    )
    assert expected.connected.lost_messages > 0

    first_chart = bytes(simulator.chart.value)
    simulator.rates["fail"].value = 0.0
    simulator.run_button.click()
    await simulator.finished()
    assert simulator.result.connected.lost_messages == 0
    assert bytes(simulator.chart.value) != first_chart


async def test_a_second_click_while_running_does_not_start_another_run() -> None:
    calls = []

    async def slow_runner(**settings: object) -> object:
        calls.append(settings)
        await asyncio.sleep(0)
        return await run_experiment(**settings)  # type: ignore[arg-type]

    simulator = FailureSimulator(pushes=20, runner=slow_runner)
    simulator.run_button.click()
    task = simulator.task
    simulator.run_button.click()
    assert simulator.status.value == "Still running the previous experiment…"
    await simulator.finished()
    assert simulator.task is task and len(calls) == 1


async def test_a_failing_experiment_shows_the_error_and_re_enables_the_button() -> None:
    async def failing_runner(**settings: object) -> object:
        raise ValueError("fault rates add up to 1.2")

    simulator = FailureSimulator(runner=failing_runner)
    simulator.run_button.click()
    await simulator.finished()
    simulator = simulator
    assert simulator.status.value == "The experiment failed: fault rates add up to 1.2"
    assert not simulator.run_button.disabled and simulator.result is None


def test_outside_an_event_loop_a_click_runs_to_completion() -> None:
    simulator = FailureSimulator(pushes=30, rates=FaultRates(lose_ack=0.2), seed=4)
    simulator.run_button.click()
    assert simulator.task is None
    assert simulator.result == asyncio.run(run_experiment(pushes=30, rates=FaultRates(lose_ack=0.2), seed=4))
    assert simulator.result.relay.duplicated_messages > 0


async def test_the_html_table_and_the_chart_render_a_result() -> None:
    result = await run_experiment(pushes=20, rates=FaultRates(fail=0.25), seed=1)
    table = result_html(result)
    assert table.count("<tr>") == 8
    assert (
        "<td>read model equals store</td><td style='text-align:right'>no</td><td style='text-align:right'>yes</td>"
        in table
    )
    assert chart_png(result).startswith(PNG_SIGNATURE)


async def test_the_chart_puts_lost_and_duplicated_messages_on_their_own_scale() -> None:
    result = await run_experiment(pushes=300, rates=FaultRates(fail=0.05, duplicate=0.05), seed=8)
    figure = plot_experiment(result)
    volumes, faults = figure.axes
    panels = {}
    for axes in (volumes, faults):
        names = [label.get_text() for label in axes.get_xticklabels()]
        heights = [
            int(bar.get_height()) for bar in axes.patches
        ]  # the connected store's bars, then the relay's
        panels[tuple(names)] = heights
        assert heights == [path.counts()[name] for path in (result.connected, result.relay) for name in names]
    assert list(panels) == [("stored events", "delivered messages"), ("lost messages", "duplicated messages")]

    # Each panel is scaled to its own bars: the handful lost or duplicated fill theirs.
    highest_fault = max(panels["lost messages", "duplicated messages"])
    assert 0 < result.connected.lost_messages < 30 and result.relay.lost_messages == 0
    assert faults.get_ylim() == pytest.approx((0, 1.2 * highest_fault))
    assert volumes.get_ylim() == pytest.approx((0, 1.2 * max(panels["stored events", "delivered messages"])))
    assert faults.get_ylim()[1] < volumes.get_ylim()[1] / 5

    (legend,) = figure.legends  # one legend for both panels
    assert [text.get_text() for text in legend.get_texts()] == [
        "connected store (read model ≠ store)",
        "relay (read model = store)",
    ]
    assert "300 pushes, seed 8" in figure.get_suptitle()


async def test_without_faults_the_fault_panel_still_has_a_scale() -> None:
    result = await run_experiment(pushes=20, rates=FaultRates(), seed=2)
    _, faults = plot_experiment(result).axes
    assert [bar.get_height() for bar in faults.patches] == [0, 0, 0, 0]
    assert faults.get_ylim() == pytest.approx((0, 1.2))


async def test_the_chart_draws_on_a_figure_it_is_given() -> None:
    from matplotlib.figure import Figure

    result = await run_experiment(pushes=20, rates=FaultRates(fail=0.2), seed=3)
    given = Figure()
    assert plot_experiment(result, given) is given
    assert [axes.get_title() for axes in given.axes] == [
        "stored and delivered",
        "lost and duplicated (its own scale)",
    ]
