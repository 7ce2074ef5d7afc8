#!/usr/bin/env bash
# Install what the browser test (tests/e2e/test_jupyterlab.py) needs, and nothing else:
#
#   1. Playwright's Python package and pytest-playwright into .venv, at the versions pinned in
#      requirements/constraints.txt, when those versions are not already there.
#   2. Chromium, when /usr/bin/chromium is missing: Debian's package (`apt-get install chromium`)
#      where apt-get exists — Playwright drives it through `executable_path` and downloads
#      nothing; elsewhere (macOS) Playwright's own build (`playwright install chromium`).
#
# Each step checks first and does nothing when already done, so CI can call this on every run
# at the cost of about a second. It runs from the repository root, after `make setup` (it calls
# that itself when .venv is missing). apt-get needs root: CI runs as root; elsewhere sudo is
# used when present.
#
# Without root or sudo (a shared machine, say), two ways out:
#
#   E2E_CHROMIUM=/path/to/chromium   a Chromium you already have: step 2 counts it as installed,
#                                    and the browser test uses it (tests/e2e/conftest.py)
#   E2E_SKIP=1                       do nothing and say so; deselect the test too, or it fails:
#                                    E2E_SKIP=1 make test PYTEST_ARGS="-m 'not e2e'"
#
#   bash tools/e2e_setup.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CHROMIUM=${E2E_CHROMIUM:-/usr/bin/chromium}
VENV_PY=.venv/bin/python
CONSTRAINTS=requirements/constraints.txt

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "error: '$*' needs root. Run it as root, or install Debian's chromium yourself." >&2
    echo "       Without root: E2E_CHROMIUM=/path/to/chromium (a Chromium you have), or skip the" >&2
    echo "       browser test: E2E_SKIP=1 make test PYTEST_ARGS=\"-m 'not e2e'\"" >&2
    exit 1
  fi
}

if [ "${E2E_SKIP:-}" = 1 ]; then
  echo "e2e setup: skipped (E2E_SKIP=1): deselect the browser test, -m 'not e2e', or it fails"
  exit 0
fi

if [ ! -x "$VENV_PY" ]; then
  make setup
fi

# Playwright and pytest-playwright (its browser fixture), at their pinned versions.
for package in playwright pytest-playwright; do
  pinned=$(sed -n "s/^$package==\([^ ;]*\).*/\1/p" "$CONSTRAINTS" | head -n 1)
  installed=$("$VENV_PY" -c "import importlib.metadata as m; print(m.version('$package'))" 2>/dev/null || true)
  if [ -n "$installed" ] && [ "$installed" = "$pinned" ]; then
    echo "e2e setup: $package $installed already installed"
  else
    echo "e2e setup: installing $package${pinned:+==$pinned} into .venv"
    "$VENV_PY" -m pip install --quiet -c "$CONSTRAINTS" "$package"
  fi
done

if [ -x "$CHROMIUM" ]; then
  echo "e2e setup: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM") already installed"
elif command -v apt-get >/dev/null 2>&1; then
  echo "e2e setup: installing Debian's chromium"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  "$CHROMIUM" --version 2>/dev/null  # (Debian's launcher script complains on stderr; harmless)
else
  # No Debian here (macOS, say): Playwright fetches its own Chromium build into its cache.
  echo "e2e setup: no $CHROMIUM and no apt-get; installing Playwright's Chromium"
  "$VENV_PY" -m playwright install chromium
fi
