#!/usr/bin/env bash
# The second half of `make test`: the unit tests and nbval on every other Python >= 3.11 found
# (tools/pythons.sh), each in its own .venv-3.X, at the same time.
#
#   bash tools/test_other_pythons.sh setup MAIN_MINOR "3.12=/path/python3.12 3.11=/path/python3.11"
#   bash tools/test_other_pythons.sh run   MAIN_MINOR "3.12=/path/python3.12 3.11=/path/python3.11" [pytest args]
#
# `setup` starts creating the venvs in the background and returns at once: `make test` calls it
# before lint, so that the downloads and installs overlap with lint and the main suite. `run`
# waits for them, runs pytest in all of them at once (the machine's cores are otherwise idle
# while one suite waits on servers and kernels), then prints each Python's log in turn and fails
# if any failed. Logs are in test-artifacts/python-3.X.log. An interrupt stops every job.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

action=$1 main=$2 found_pythons=$3
shift 3
logs=test-artifacts
mkdir -p "$logs"

others=()
for found in $found_pythons; do
  if [ "${found%%=*}" != "$main" ]; then others+=("$found"); fi
done

case $action in
  setup)
    for found in ${others[@]+"${others[@]}"}; do
      minor=${found%%=*}
      rm -f "$logs/setup-$minor.rc"
      # In the background: it carries on after this script returns.
      (
        status=0
        make --no-print-directory setup VENV=".venv-$minor" PYTHON="${found#*=}" \
          EXTRAS=notebooks,test,postgres,nats,servers >"$logs/setup-$minor.log" 2>&1 || status=$?
        echo "$status" >"$logs/setup-$minor.rc"
      ) </dev/null &
    done
    ;;
  run)
    pids=()
    stop_all() {
      for pid in ${pids[@]+"${pids[@]}"}; do
        pkill -TERM -P "$pid" 2>/dev/null || true # its pytest
        kill -TERM "$pid" 2>/dev/null || true
      done
      exit 130
    }
    trap stop_all INT TERM
    for found in ${others[@]+"${others[@]}"}; do
      minor=${found%%=*}
      # The setup was started in the background by `setup`; wait for its exit status.
      until [ -s "$logs/setup-$minor.rc" ]; do sleep 1; done
      (
        SECONDS=0
        {
          echo "== Python $minor (.venv-$minor): unit tests and nbval"
          if [ "$(cat "$logs/setup-$minor.rc")" != 0 ]; then
            cat "$logs/setup-$minor.log"
            echo "error: setting up .venv-$minor failed (log above)"
            exit 1
          fi
          status=0
          ".venv-$minor/bin/python" -m pytest -m "not e2e and not tooling" -q -p no:cacheprovider "$@" || status=$?
          echo "== Python $minor: done in $SECONDS s"
          exit "$status"
        } >"$logs/python-$minor.log" 2>&1
      ) &
      pids+=("$!")
    done
    failed=0
    for index in ${pids[@]+"${!pids[@]}"}; do
      minor=${others[$index]%%=*}
      wait "${pids[$index]}" || failed=1
      cat "$logs/python-$minor.log"
    done
    exit "$failed"
    ;;
  *)
    echo "usage: $0 setup|run MAIN_MINOR FOUND_PYTHONS [pytest args]" >&2
    exit 2
    ;;
esac
