"""The peer comparison runs end to end (``--quick``) and fills every row of its table.

A smoke test, not a performance test: no figure is compared with a threshold here, because a
busy CI machine would make such a test flake. The figures are for people (docs/benchmarks.md).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from benchmarks import floor as bench_floor, peers as bench_peers
from benchmarks.peers import QUICK, Results, eventsourcing_installed

pytestmark = pytest.mark.tooling  # the benchmark commands, the same on every Python: newest only

# Every (group, workload, peer) the table must have. The eventsourcing rows are there even when
# the library is not installed, with an empty peer figure.
EXPECTED_ROWS = {
    ("push, one event per call", "in memory: EventStore.push_event", "eventsourcing POPO: Application.save"),
    (
        "push, one event per call",
        "in memory, storage: adapter.push_event",
        "eventsourcing POPO: EventStore.put",
    ),
    ("push, one event per call", "SQLite: EventStore.push_event", "eventsourcing SQLite: Application.save"),
    ("push, one event per call", "SQLite: EventStore.push_event", "raw sqlite3, 1 row per transaction"),
    (
        "push, one event per call",
        "SQLite, storage: adapter.push_event",
        "eventsourcing SQLite: recorder.insert_events",
    ),
    ("push in batches of 100", "in memory: push_event_group", "eventsourcing POPO: Application.save"),
    ("push in batches of 100", "SQLite: push_event_group", "eventsourcing SQLite: Application.save"),
    ("push in batches of 100", "SQLite: push_event_group", "raw sqlite3, 100 rows per transaction"),
    (
        "push in batches of 100",
        "SQLite: push_event_group",
        "raw sqlite3, 100 rows per transaction, built and JSON-encoded",
    ),
    ("rebuild a 1,000-event aggregate", "in memory: get_aggregate", "eventsourcing POPO: repository.get"),
    ("rebuild a 1,000-event aggregate", "SQLite: get_aggregate", "eventsourcing SQLite: repository.get"),
    ("rebuild a 1,000-event aggregate", "SQLite: get_aggregate", "raw sqlite3: select, json.loads, fold"),
    (
        "connected store (in memory)",
        "push + publish, notification bus, 1 no-op handler",
        "castore_edu plain EventStore.push_event",
    ),
    *(
        (
            "state-carrying publish (in memory)",
            f"{size:,} events: with prev_aggregate",
            "castore_edu without prev_aggregate",
        )
        for size in (10, 100, 1_000, 10_000)
    ),
    (
        "relay from the SQLite log",
        "Relay.catch_up, 1 no-op handler",
        "eventsourcing: Follower.pull_and_process",
    ),
    ("relay from the SQLite log", "Relay.catch_up, 1 no-op handler", "raw sqlite3: read the log, json.loads"),
    (
        "relay from the SQLite log",
        "Relay.catch_up, 1 no-op handler",
        "raw sqlite3: read, json.loads, commit the position per page",
    ),
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Results, list[str], Path]:
    """One quick run for every test of this module (it takes a few seconds)."""
    printed: list[str] = []
    plots = tmp_path_factory.mktemp("plots")
    with_plots = importlib.util.find_spec("matplotlib") is not None  # the notebooks extra has it
    results = bench_peers.run(
        quick=True, plot_directory=str(plots) if with_plots else None, print_fn=printed.append
    )
    return results, printed, plots


def positive(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def test_the_table_has_every_row(quick_run: tuple[Results, list[str], Path]) -> None:
    results, _, _ = quick_run
    assert {(row.group, row.workload, row.peer) for row in results.rows} == EXPECTED_ROWS
    assert len(results.rows) == len(EXPECTED_ROWS)


def test_every_figure_is_a_positive_number(quick_run: tuple[Results, list[str], Path]) -> None:
    results, _, _ = quick_run
    for row in results.rows:
        assert positive(row.castore_edu), row
        if row.peer.startswith("eventsourcing") and not eventsourcing_installed():
            assert row.peer_value is None and row.ratio is None, row
        else:
            assert positive(row.peer_value), row
            assert positive(row.ratio), row


def test_prev_aggregate_spares_every_storage_read(quick_run: tuple[Results, list[str], Path]) -> None:
    """Counts, not times: with prev_aggregate a publish reads nothing, without it reads once."""
    results, _, _ = quick_run
    assert set(results.state_carrying) == set(QUICK.state_sizes)
    for figures in results.state_carrying.values():
        assert figures["reads_with"] == 0
        assert figures["reads_without"] == 1


def test_it_prints_progress_the_table_and_writes_the_plots(
    quick_run: tuple[Results, list[str], Path],
) -> None:
    results, printed, plots = quick_run
    progress = [line for line in printed if line.startswith("[")]
    assert len(progress) == bench_peers.Bench.GROUPS
    assert progress[0].startswith(f"[1/{bench_peers.Bench.GROUPS}]")
    table = [line for line in printed if line.startswith("| ")]
    assert len(table) == len(results.rows) + 1  # a header line, then one line per row
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed: no plots")
    for name in ("benchmarks-prev-aggregate.png", "benchmarks-peers.png"):
        assert (plots / name).read_bytes().startswith(b"\x89PNG")


def test_the_floor_command_prints_both_floors(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m benchmarks.floor --quick``: every part is timed, and the best ratio it derives is
    a fraction (raw sqlite3 alone can only be faster than raw sqlite3 plus the parts)."""
    best = bench_floor.main(["--quick"])
    printed = capsys.readouterr().out
    assert set(best) == {"push_event_group of 100, SQLite", "Relay.catch_up from SQLite"}
    for workload, ratio in best.items():
        assert 0 < ratio < 1, (workload, ratio)
        assert workload in printed
    for part in (
        "validate_event (checks + JSON)",
        "stamped copy (with_timestamp)",
        "checkpoint commit, per event",
    ):
        assert part in printed
    assert printed.count("best possible ratio to raw sqlite3") == 2


def test_the_postgres_comparison_runs_and_fills_its_table(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``python -m benchmarks.postgres --quick --plot DIR``, on a private server it starts and stops itself."""
    from benchmarks import postgres as bench_postgres

    with_plot = importlib.util.find_spec("matplotlib") is not None
    results = bench_postgres.run(quick=True, plot_directory=str(tmp_path) if with_plot else None)
    printed = capsys.readouterr().out
    if with_plot:
        assert (tmp_path / "benchmarks-postgres.png").stat().st_size > 10_000
    assert [(row.group, row.peer) for row in results.rows] == [
        ("PostgreSQL, one event per transaction", "raw psycopg: insert + commit"),
        ("PostgreSQL, one event per transaction", "eventsourcing PostgreSQL: Application.save"),
        ("PostgreSQL, groups of 100", "raw psycopg: executemany of 100 rows in one transaction"),
    ]
    for row in results.rows:
        assert positive(row.castore_edu), row
        if row.peer.startswith("eventsourcing") and not eventsourcing_installed():
            assert row.peer_value is None, row
        else:
            assert positive(row.peer_value) and row.target_met is not None, row
    assert "| PostgreSQL, groups of 100: push_event_group |" in printed


def test_the_nats_comparison_runs_fills_its_table_and_draws_its_plot(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``python -m benchmarks.nats --quick``, on private NATS and PostgreSQL servers it starts and
    stops itself: every row and both lag summaries are there, every figure a positive number."""
    from benchmarks import nats as bench_nats

    with_plot = importlib.util.find_spec("matplotlib") is not None
    results = bench_nats.main(["--quick", *(["--plot", str(tmp_path)] if with_plot else [])])
    printed = capsys.readouterr().out
    assert [(row.group, row.workload) for row in results.rows] == [
        ("NATS publish, broker ack", "NatsMessageBusAdapter.publish_message"),
        ("relay PostgreSQL -> NATS", "Relay.catch_up, batch 100"),
        (bench_nats.LAG_GROUP, "relay woken by commits(), p50"),
        (bench_nats.LAG_GROUP, "relay woken by commits(), p95"),
    ]
    for row in results.rows:
        assert positive(row.castore_edu) and positive(row.peer_value) and positive(row.ratio), row
    assert set(results.lags) == {"relay, polling", "relay, woken by commits()"}
    for figures in results.lags.values():
        assert all(positive(value) for value in figures.values()), figures
    assert "| NATS publish, broker ack: NatsMessageBusAdapter.publish_message |" in printed
    assert printed.count("lag, relay") == 2
    if with_plot:
        assert (tmp_path / "benchmarks-nats.png").read_bytes().startswith(b"\x89PNG")


def test_the_contention_command_prints_its_table() -> None:
    """``python -m benchmarks.contention --quick``: one row per crowd; without back-off the retries
    are exactly n (n - 1) / 2 (no wait, so no timing in it). With back-off they depend on real
    sleeps, so only their ceiling is checked here; tests/test_command.py checks the drop itself."""
    from benchmarks import contention as bench_contention

    printed: list[str] = []
    rows = bench_contention.main(["--quick"], print_fn=printed.append)
    assert [row.commands for row in rows] == [10, 50]
    for row in rows:
        assert row.retries_at_once == row.commands * (row.commands - 1) // 2
        assert positive(row.seconds_at_once) and positive(row.seconds_backed_off), row
        assert 0 <= row.retries_backed_off <= row.retries_at_once, row
    table = [line for line in printed if line.startswith("| ")]
    assert len(table) == 1 + len(rows)  # a header line, then one line per crowd
    assert table[-1].startswith("| 50 | 1,225 |")


def test_the_snapshot_benchmark_reads_what_it_says_on_each_storage(postgres_server_url: str) -> None:
    """``python -m benchmarks.snapshots --quick`` (with PostgreSQL, on the tests' server): the reads
    are counted, not timed against a threshold; the ratio is printed for people."""
    from benchmarks import snapshots as bench_snapshots

    printed: list[str] = []
    rows = bench_snapshots.run(quick=True, print_fn=printed.append, postgres_server=postgres_server_url)
    assert [row.storage for row in rows] == ["in memory", "SQLite (one file)", "PostgreSQL"]
    for row in rows:
        assert row.events_read == {"without": 1_000, "behind": 100, "last": 1}, row
        assert all(positive(ms) for ms in (row.ms_without, row.ms_behind, row.ms_at_last)), row
        assert positive(row.ratio)
    table = [line for line in printed if line.startswith("| ")]
    assert len(table) == 1 + len(rows)  # a header line, then one line per storage
    assert sum("× the time without" in line for line in printed) == len(rows)


def test_the_projection_comparison_runs_and_fills_its_table(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m benchmarks.projections --quick``: a projection against the relay on SQLite and on a
    private PostgreSQL server it starts and stops itself; every figure a positive number."""
    from benchmarks import projections as bench_projections

    rows = bench_projections.main(["--quick"])
    printed = capsys.readouterr().out
    assert [(row.database, row.batch_size) for row in rows] == [
        ("SQLite", 1),
        ("SQLite", 100),
        ("PostgreSQL", 1),
        ("PostgreSQL", 100),
    ]
    for row in rows:
        assert positive(row.projection) and positive(row.relay) and positive(row.ratio), row
    table = [line for line in printed.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(rows)  # a header, its rule, then one line per row
    assert table[2].startswith("| SQLite | 1 | 20 | ")
