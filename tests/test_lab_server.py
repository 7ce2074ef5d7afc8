"""The JupyterLab server ``make lab`` starts: 127.0.0.1 only, a token, no terminals, no news.

The test asks ``make -n lab`` for the very command ``make lab`` would run, starts it on a free
port (with this Python's ``jupyter``), and then talks to it as a browser would. A terminal in that
server would be a shell for anyone holding the link, a root shell where ``make lab`` runs as root.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from castore_edu.testing.servers import free_port

pytestmark = pytest.mark.tooling  # the same on every Python: make test runs it on the newest only
ROOT = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 90  # a fresh kernel-less server starts in a few seconds; a loaded machine is slower


def lab_command(port: int) -> list[str]:
    """What ``make lab`` runs, with this interpreter's jupyter and no browser."""
    dry_run = subprocess.run(
        ["make", "-n", "-s", "lab", f"LAB_ARGS=--no-browser --port={port} --ServerApp.port_retries=0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    [line] = [line for line in dry_run.splitlines() if re.search(r"/jupyter lab\b", line)]
    _jupyter, *arguments = shlex.split(line)
    return [sys.executable, "-m", "jupyter", *arguments]


def get(url: str) -> int:
    """The HTTP status of a GET of ``url`` (the server is on 127.0.0.1)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def notification_defaults(base: str, token: str) -> dict[str, object]:
    """The defaults JupyterLab's notification plugin starts with: the server applies
    ``overrides.json`` to the defaults of the plugin's settings schema."""
    url = f"{base}/lab/api/settings/@jupyterlab/apputils-extension:notification?token={token}"
    with urllib.request.urlopen(url, timeout=10) as response:
        properties = json.load(response)["schema"]["properties"]
    return {name: setting.get("default") for name, setting in properties.items()}


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on ``port``, from Linux's /proc/net/tcp*."""
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                addresses.add(address)
    return addresses


def test_the_lab_server_listens_on_loopback_asks_for_its_token_has_no_terminals_and_no_news() -> None:
    port = free_port()
    command = lab_command(port)
    assert "--config=tools/jupyter/jupyter_server_config.py" in command
    server = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(iter(server.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        token = None
        while token is None and time.monotonic() < deadline and server.poll() is None:
            found = re.search(rf"http://127\.0\.0\.1:{port}/lab\?token=(\w+)", "".join(log))
            token = found[1] if found else None
            time.sleep(0.2)
        assert token, f"no link with a token within {STARTUP_SECONDS} s:\n{''.join(log)}"
        base = f"http://127.0.0.1:{port}"
        assert get(f"{base}/api/contents?token={token}") == 200
        assert get(f"{base}/api/contents") == 403  # the token is required
        assert get(f"{base}/api/terminals?token={token}") == 404  # terminals are off
        news = notification_defaults(base, token)
        assert news["fetchNews"] == "false" and news["checkForUpdates"] is False  # no toast asking
        if sys.platform == "linux":
            assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, and nothing else
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
