# castore_edu developer commands (GNU make). `make help` lists them.
#
#   make lab     set up .venv if needed, then open JupyterLab on notebooks/
#   make test    set up .venv if needed, run make lint, then every test (unit tests + nbval on notebooks/)
#
# Variables you may override on the command line:
#   PYTHON=python3.12          interpreter for the new .venv (default: the newest Python >= 3.11
#                              that tools/pythons.sh finds, through pyenv or on PATH)
#   OTHER_PYTHONS=             make test: no extra Pythons (default: every other one found)
#   LAB_ARGS="--no-browser"    extra arguments for `jupyter lab`
#   PYTEST_ARGS="-k store"     extra arguments for pytest

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV        := .venv
VENV_PY     := $(VENV)/bin/python
CONSTRAINTS := requirements/constraints.txt
EXTRAS      := notebooks,test,lint,postgres,nats,servers
STAMP       := $(VENV)/.installed-$(EXTRAS)
BENCH_STAMP := $(VENV)/.installed-bench
LOCK_CONSTRAINTS := requirements/lock-constraints.txt

# Every CPython >= 3.11 here, newest first, as `3.13=/path/to/python3.13` (tools/pythons.sh:
# pyenv's versions when pyenv is there, then python3.X on PATH). .venv takes the newest; `make
# test` also runs the unit tests and nbval on each of the others, in .venv-3.X.
# `make test OTHER_PYTHONS=` tests the newest only. (`=`: found only when a recipe needs it.)
FOUND_PYTHONS      = $(shell bash tools/pythons.sh)
PYTHON_CANDIDATES  = $(or $(PYTHON),$(word 2,$(subst =, ,$(firstword $(FOUND_PYTHONS)))),python3)
OTHER_PYTHONS     ?= $(FOUND_PYTHONS)
# The lock is universal: uv resolves for Python >= 3.11 on every platform at once.
LAB_ARGS    ?=
# Jupyter refuses to run as root unless told; containers and CI machines often are root.
LAB_ROOT    := $(if $(filter 0,$(shell id -u)),--allow-root)
# 127.0.0.1 only, a token, no terminals (tests/test_lab_server.py checks them)
LAB_CONFIG  := tools/jupyter/jupyter_server_config.py
PYTEST_ARGS ?=

.PHONY: help setup lab lint test e2e-setup bench notebooks exercises handout lock clean

help:
	@echo "make lab    set up .venv and open JupyterLab on notebooks/ (LAB_ARGS=... for extra flags)"
	@echo "make test   set up .venv, run make lint, then every test: unit tests and nbval on notebooks/"
	@echo "make lint   ruff check, ruff format --check and mypy (configured in pyproject.toml)"
	@echo "make bench  set up .venv and run the benchmark with the peer comparison (python -m benchmarks --all)"
	@echo "make notebooks  rebuild notebooks/*.ipynb from tools/notebooks/*.py with fresh outputs (NOTEBOOKS=\"02 05\" for some)"
	@echo "make exercises  rebuild instructor/solutions/ (run) and notebooks/exercises/ (stubs) from instructor/exercises/*.py"
	@echo "make handout  build the learners' copy, without instructor/ and any answer, in build/handout/ (HANDOUT=DIR elsewhere)"
	@echo "make setup  only create/update .venv (fast when nothing changed)"
	@echo "make e2e-setup  install Chromium and Playwright for the browser test (tests/e2e/)"
	@echo "make lock   re-resolve $(CONSTRAINTS) for every platform and Python >= 3.11 (uv), check the wheels"
	@echo "make clean  remove .venv and generated files"

# $(call find_python,CANDIDATES) sets the shell variable py to the first candidate that runs and
# is >= 3.11. Running it (not just `command -v`) matters: a pyenv shim exists for every installed
# version but fails unless that version is active.
define find_python
py=""; \
for c in $(1); do \
  if "$$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then py="$$c"; break; fi; \
done; \
if [ -z "$$py" ]; then \
  echo "error: castore_edu needs Python >= 3.11, and none of these is: $(1)." >&2; \
  echo "       Install Python 3.11 or newer, or name one, e.g. make setup PYTHON=/path/to/python3.11" >&2; \
  exit 1; \
fi
endef

$(VENV_PY):
	@$(call find_python,$(PYTHON_CANDIDATES)); \
	echo "Creating $(VENV) with $$py ($$("$$py" --version 2>&1))"; \
	"$$py" -m venv --clear $(VENV) || { rm -rf $(VENV); \
	  echo "error: '$$py -m venv' failed (on Debian/Ubuntu: apt install python3-venv)." >&2; exit 1; }

# The stamp is newer than pyproject.toml and the constraints once they are installed, so a
# second `make setup` does nothing. Editing either file reinstalls.
$(STAMP): $(VENV_PY) pyproject.toml $(CONSTRAINTS)
	$(VENV_PY) -m pip install --quiet --upgrade pip -c $(CONSTRAINTS)
	$(VENV_PY) -m pip install --quiet -e '.[$(EXTRAS)]' -c $(CONSTRAINTS)
	@# build matplotlib's font cache now, so its one-time notice never lands in a notebook
	$(VENV_PY) -c 'import matplotlib.pyplot'
	@touch $@

$(BENCH_STAMP): $(STAMP)
	$(VENV_PY) -m pip install --quiet -e '.[$(EXTRAS),bench]' -c $(CONSTRAINTS)
	@touch $@

setup: $(STAMP)

lab: setup
	$(VENV)/bin/jupyter lab notebooks/ --config=$(LAB_CONFIG) $(LAB_ROOT) $(LAB_ARGS)

# The browser test (tests/e2e/) needs Chromium and Playwright; installing them costs about a
# second once they are there. On Debian/Ubuntu Chromium comes from apt-get (root or sudo).
e2e-setup: setup
	bash tools/e2e_setup.sh

# All three run even when one fails, so that one report shows every problem.
lint: setup
	@status=0; \
	$(VENV)/bin/ruff check . || status=1; \
	$(VENV)/bin/ruff format --check . || status=1; \
	$(VENV)/bin/mypy || status=1; \
	exit $$status

# --cov: branch coverage of the library, with its floor ([tool.coverage] in pyproject.toml).
# Every other Python found (not .venv's) gets a venv .venv-3.X with the notebook and test extras,
# and the unit tests plus nbval there (no lint, no browser test, no tooling test: those are the
# same on every Python). Those venvs are set up in the background while lint and the main suite
# run, and their suites run at the same time as each other (tools/test_other_pythons.sh).
MAIN_MINOR = $(shell $(VENV_PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
test: setup
	@bash tools/test_other_pythons.sh setup "$(MAIN_MINOR)" "$(OTHER_PYTHONS)"
	@$(MAKE) --no-print-directory lint e2e-setup
	@echo "== Python $$($(VENV_PY) -c 'import platform; print(platform.python_version())') (.venv): the whole suite"
	$(VENV_PY) -m pytest --cov=castore_edu --cov-report=term $(PYTEST_ARGS)
	@newest=$(firstword $(FOUND_PYTHONS)); \
	if [ -z "$(PYTHON)" ] && [ -n "$$newest" ] && [ "$${newest%%=*}" != "$(MAIN_MINOR)" ]; then \
	  echo "note: .venv runs Python $(MAIN_MINOR), the newest here is $${newest%%=*}: make clean, then make test, to move"; \
	fi
	@bash tools/test_other_pythons.sh run "$(MAIN_MINOR)" "$(OTHER_PYTHONS)" $(PYTEST_ARGS)

NOTEBOOKS ?=
notebooks: setup
	$(VENV_PY) tools/build_notebooks.py $(NOTEBOOKS)

exercises: setup
	$(VENV_PY) tools/build_exercises.py $(NOTEBOOKS)

# The learners' copy of the course (tools/handout.py): tracked files only, without instructor/ and
# the tools and targets that need it, checked for answers before it is reported as written.
handout: setup
	$(VENV_PY) tools/handout.py $(HANDOUT)

bench: $(BENCH_STAMP)
	$(VENV_PY) -m benchmarks --all

# Resolve the newest versions allowed by pyproject.toml, every extra, for every platform and
# Python >= 3.11 at once (`--universal`: platform-only packages are pinned with markers), then
# check that each pin has a wheel on Linux, macOS and Windows (tools/check_wheels.py); a gap is
# closed in $(LOCK_CONSTRAINTS). uv is a maintainer's tool: only this target installs it (the
# `lock` extra), so learners and CI never download it. Commit the result after `make test`.
lock: setup
	$(VENV_PY) -m pip install --quiet -e '.[$(EXTRAS),lock]' -c $(CONSTRAINTS)
	$(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --all-extras --upgrade \
	  --custom-compile-command 'make lock' -c $(LOCK_CONSTRAINTS) pyproject.toml -o $(CONSTRAINTS)
	$(VENV_PY) tools/check_wheels.py
	@echo "Wrote $(CONSTRAINTS): update environment.yml's pins to match, then run make test"

clean:
	rm -rf $(VENV) .venv-3.* build dist *.egg-info .pytest_cache bench-results test-artifacts
	find . -path ./.git -prune -o -name __pycache__ -type d -exec rm -rf {} +
