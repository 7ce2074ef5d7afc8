#!/usr/bin/env bash
# Print every CPython >= 3.11 on this machine, one per minor version, newest first, as
# `3.13=/path/to/python3.13`. `make test` runs the whole suite on the first and the unit tests
# plus nbval on the others, each in its own venv.
#
# Found through pyenv when it is there (every installed version, newest patch of each minor: a
# bare `python3.12` shim only works while that version is selected, so the real interpreters are
# asked for), then on PATH (python3.11, python3.12, ... and python3). Each candidate is run to
# learn its version: a name that exists but fails is skipped.
#
#   bash tools/pythons.sh
set -euo pipefail

candidates=()
if command -v pyenv >/dev/null 2>&1; then
  while read -r version; do
    if [[ $version =~ ^3\.[0-9]+\.[0-9]+$ ]] && prefix=$(pyenv prefix "$version" 2>/dev/null); then
      candidates+=("$prefix/bin/python${version%.*}")
    fi
  done < <(pyenv versions --bare --skip-aliases 2>/dev/null | sort -rV)
fi
for minor in 16 15 14 13 12 11; do
  candidates+=("python3.$minor")
done
candidates+=(python3)

seen=" "
for candidate in "${candidates[@]}"; do
  found=$("$candidate" -c '
import sys
if sys.implementation.name == "cpython" and sys.version_info >= (3, 11):
    print(f"{sys.version_info[0]}.{sys.version_info[1]}={sys.executable}")
' 2>/dev/null) || continue
  minor=${found%%=*}
  if [ -n "$found" ] && [[ $seen != *" $minor "* ]]; then
    seen+="$minor "
    echo "$found"
  fi
done | sort -t= -k1,1 -rV
