"""The JupyterLab server that ``make lab`` starts, set up for a course on one's own machine.

- **Reachable from this machine only:** it listens on 127.0.0.1, not on every network interface.
- **A token, always:** JupyterLab makes a random one and puts it in the link it opens; nothing
  here turns it off.
- **No terminals:** the notebooks need none. On a machine where ``make lab`` runs as root (it
  adds ``--allow-root`` there), a terminal would be a root shell for anyone who has the link.
- **No news:** JupyterLab would otherwise ask, in a toast over the first notebook, whether to fetch
  Jupyter news from the internet. ``lab-settings/overrides.json`` answers no (and no update check).

tests/test_lab_server.py starts a server with this file and checks all four.
"""

from pathlib import Path

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (traitlets provides get_config)

c.ServerApp.ip = "127.0.0.1"
c.ServerApp.terminals_enabled = False
c.LabApp.app_settings_dir = str(Path(__file__).parent / "lab-settings")
