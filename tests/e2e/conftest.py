"""Fixtures for the browser test: a JupyterLab started by ``make lab``, and headless Chromium.

The lab is started by the README's own command, ``make lab``, with ``LAB_ARGS`` that keep it
private and disposable: loopback only, a port the OS picks, a random token (never without
authentication), no browser of its own, and settings, workspaces and runtime files in a
temporary directory — with autosave off, so that running the notebooks never rewrites the
committed ``.ipynb`` files (a teardown check proves it).

Everything started here is stopped here, once the module's tests are done: the lab's kernels
are shut down through its API, then the lab itself; its process group and every process it
spawned are killed if still alive. Playwright closes the browser. Screenshots and logs of a
failed test go to ``test-artifacts/``.

The browser comes from pytest-playwright's ``browser`` fixture (one per session; its command
line options work, e.g. ``--headed``, ``--slowmo 200``), launched with the options set here in
``browser_type_launch_args``: the system's Chromium (``/usr/bin/chromium`` from Debian, or
``$E2E_CHROMIUM``) through ``executable_path``, headless, with the flags below; where there is none
(macOS), Playwright's own Chromium, which ``make e2e-setup`` (``tools/e2e_setup.sh``) installs.
When neither is there the test fails: a browser test that did not run must not look like one
that passed. The tab stays ours (``lab_app``, ``page``): pytest-playwright's ``page`` is a new
context per test, and loading JupyterLab once per module instead saves seconds per test.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))
# The flags this machine's Chromium needs in a closed network (the others make it quiet and
# fast). Playwright adds --headless, --no-sandbox and a fresh, empty --user-data-dir itself.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAB_START_TIMEOUT = 45.0  # seconds; a cold `make lab` with .venv already set up takes ~5 s
BUDGET = 60.0  # seconds for the whole browser test, from `make lab` to the last process stopped
# JupyterLab settings for the test only (written to a temporary user-settings directory).
LAB_SETTINGS = {
    # Never write the committed notebooks: the test runs them, it must not save them.
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    # No "Would you like to receive Jupyter news?" toast over the screenshots, no network.
    "@jupyterlab/apputils-extension/notification": {"checkForUpdates": False, "fetchNews": "false"},
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: end-to-end test in JupyterLab and headless Chromium (slow)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # pytest-playwright's Playwright lives for the whole session, and its sync API keeps an event
    # loop running in this thread: any `asyncio.run` after it would fail. So the browser test
    # runs last, whatever else the session holds.
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Keep each phase's report on the item, so that fixtures can tell whether the test failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _missing(reason: str) -> NoReturn:
    # Never a skip: a browser test that did not run must not look like one that passed.
    pytest.fail(f"{reason}: run `make e2e-setup` (installs Chromium and Playwright)", pytrace=False)


# -- JupyterLab ---------------------------------------------------------------------------------


@dataclass
class Lab:
    """A running JupyterLab: its address, token, and what it printed (for failure reports)."""

    url: str  # e.g. http://127.0.0.1:40123/
    token: str
    log: Path

    def app_url(self) -> str:
        """JupyterLab's page, with a fresh workspace (``reset``: no tabs restored) and the token."""
        return f"{self.url}lab?reset&token={self.token}"

    def api(self, method: str, path: str) -> Any:
        """Call the server's REST API with the token; return the decoded JSON answer, if any."""
        request = urllib.request.Request(
            f"{self.url}api/{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
        return json.loads(body) if body else None


def _wait_for_lab(process: subprocess.Popen[bytes], runtime_dir: Path, token: str, log: Path) -> str:
    """The lab's URL once it answers an authenticated request; fail with its log if it dies."""
    deadline = time.monotonic() + LAB_START_TIMEOUT
    url = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"`make lab` exited with {process.returncode}:\n{log.read_text()[-3000:]}", pytrace=False
            )
        if url is None:
            # The server writes its address (the port the OS chose) to a jpserver-<pid>.json file.
            for info in runtime_dir.glob("jpserver-*.json"):
                with contextlib.suppress(ValueError, KeyError):  # half-written: read it again later
                    url = json.loads(info.read_text())["url"]
        if url is not None:
            try:
                Lab(url, token, log).api("GET", "status")
                return url
            except (OSError, urllib.error.URLError):
                pass
        time.sleep(0.2)
    late = f"JupyterLab did not answer within {LAB_START_TIMEOUT:.0f} s"
    pytest.fail(f"{late}:\n{log.read_text()[-3000:]}", pytrace=False)


def _stop(process: subprocess.Popen[bytes], lab: Lab | None) -> list[str]:
    """Stop ``make lab`` and everything below it; return what had to be killed by force."""
    import psutil  # type: ignore[import-untyped]  # installed with ipykernel

    try:
        spawned = psutil.Process(process.pid).children(recursive=True)  # make -> jupyter -> kernels
    except psutil.NoSuchProcess:
        spawned = []
    names = {}
    for child in spawned:
        with contextlib.suppress(psutil.NoSuchProcess):
            names[child.pid] = child.name()
    if lab is not None and process.poll() is None:
        try:  # the clean way: stop each kernel, then the server
            for kernel in lab.api("GET", "kernels"):
                lab.api("DELETE", f"kernels/{kernel['id']}")
            lab.api("POST", "shutdown")
            process.wait(timeout=3)
        except (OSError, urllib.error.URLError, subprocess.TimeoutExpired):
            pass

    # A server can hang at exit after its shutdown (jupyterlab/jupyterlab#10442: AnyIO worker
    # threads that nobody stops); its kernels and files are closed by then, so kill it.
    def still_running() -> list[psutil.Process]:
        try:
            return [p for p in spawned if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        except psutil.NoSuchProcess:  # one ended while we looked: look again
            return still_running()

    forced = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = still_running()
        if process.poll() is None or alive:
            forced += [f"{p.pid} {names.get(p.pid, '?')} ({sig.name})" for p in alive]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)  # make and the server share the group we made
            for p in alive:  # kernels run in groups of their own
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.send_signal(sig)
            psutil.wait_procs(alive, timeout=2)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=2)
    return forced


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab on notebooks/, started exactly as the README says: ``make lab``."""
    home = tmp_path_factory.mktemp("jupyterlab")
    settings = home / "user-settings"
    for plugin, values in LAB_SETTINGS.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    runtime = home / "runtime"
    token = secrets.token_hex(24)
    lab_args = [
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port=0",  # the OS picks a free port; the server writes it to the runtime dir
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
    ]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime)}
    env.pop("JUPYTER_TOKEN", None)
    log = home / "lab.log"
    started = time.monotonic()
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "lab", f"LAB_ARGS={shlex.join(lab_args)}"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so that teardown can stop all of it
        )
    running = None
    try:
        running = Lab(_wait_for_lab(process, runtime, token, log), token, log)
        yield running
    finally:
        forced = _stop(process, running)
        if forced:
            print(f"e2e teardown had to kill: {forced}")
        took = time.monotonic() - started
        if took > BUDGET:  # a warning, not a failure: a busy machine is slower, CI's is not busy
            warnings.warn(f"the browser test took {took:.0f} s, over its {BUDGET:.0f} s budget", stacklevel=1)
        saved = [line for line in log.read_text().splitlines() if "Saving file at" in line]
        assert not saved, "the browser test saved files it must only run:\n" + "\n".join(saved)


# -- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's launch options (from its command line), plus this machine's Chromium."""
    # The system's Chromium when there is one, else the one `playwright install` put in its cache.
    executable = {"executable_path": str(CHROMIUM)} if CHROMIUM.exists() else {}
    return {"headless": True, **browser_type_launch_args, **executable, "args": CHROMIUM_ARGS}


@dataclass
class LabApp:
    """One browser tab with JupyterLab loaded, shared by the tests, and what its console said."""

    page: Any
    console: list[str]

    def load(self, lab: Lab) -> None:
        """(Re)load JupyterLab in a fresh workspace; ready once the file browser lists the notebooks."""
        self.page.goto(lab.app_url())
        self.page.locator(".jp-DirListing-item").first.wait_for(timeout=30_000)


@pytest.fixture(scope="module")
def lab_app(request: pytest.FixtureRequest, lab: Lab) -> Iterator[LabApp]:
    """JupyterLab in a browser tab, loaded once: each test opens and closes its notebook in it."""
    if not request.config.pluginmanager.hasplugin("playwright"):
        _missing("pytest-playwright (and playwright) is not installed in this environment")
    from playwright.sync_api import Error

    try:
        browser = request.getfixturevalue("browser")  # pytest-playwright's, closed by it
    except Error as error:
        _missing(f"no Chromium could be started ({str(error).splitlines()[0]})")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    app = LabApp(context.new_page(), [])
    app.page.on("console", lambda message: app.console.append(f"{message.type}: {message.text}"))
    app.page.on("pageerror", lambda error: app.console.append(f"pageerror: {error}"))
    app.load(lab)
    try:
        yield app
    finally:
        context.close()


@pytest.fixture
def page(lab_app: LabApp, lab: Lab, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The JupyterLab tab. After a failure: a screenshot and the logs, then a clean reload."""
    yield lab_app.page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        stem = ARTIFACTS / request.node.name
        from playwright.sync_api import Error as PlaywrightError

        try:
            lab_app.page.screenshot(path=f"{stem}.png", full_page=True)
        except PlaywrightError as error:  # a crashed page still deserves its logs
            lab_app.console.append(f"(no screenshot: {error})")
        Path(f"{stem}.console.log").write_text("\n".join(lab_app.console) + "\n")
        Path(f"{stem}.lab.log").write_bytes(lab.log.read_bytes())
        print(f"e2e failure artifacts: {stem}.png, .console.log, .lab.log")
        lab_app.load(lab)  # whatever the failed test left open (dialogs, menus), start afresh
