#!/usr/bin/env bash
# The Python environment of the end-to-end test (tests/otel/requirements.txt), kept in the cache
# so that a fresh clone reuses it. Rebuilt from scratch whenever the requirements or the base
# interpreter change: a venv is tied to the interpreter it was made from, and upgrading in place
# would leave packages that were dropped from the requirements behind.
#   scripts/python-env.sh        prints the venv's python path on stdout (its only output there)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"

requirements="$here/../tests/otel/requirements.txt"
venv="$TRACEJOIN_CACHE/venv"
stamp_file="$venv/.tracejoin-stamp"
base_python="${PYTHON:-python3}"

# The stamp covers what the venv depends on: the pinned list and the exact base interpreter.
stamp="$( { sha256sum < "$requirements"
            "$base_python" -c 'import sys; print(sys.executable, sys.version)'; } | sha256sum | cut -d' ' -f1)"

build() {
  log "python-env: building $venv from $(basename "$requirements")"
  rm -rf "$venv"
  "$base_python" -m venv "$venv" >&2 || {
    log "python-env: '$base_python -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)"
    return 1
  }
  # An old bundled pip may not know the wheel tags of current packages (e.g. manylinux_2_28).
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
  # Written last, so an interrupted build is never mistaken for a complete one.
  echo "$stamp" > "$stamp_file"
  log "python-env: ready"
}

# Two test runs starting at once must not build the same venv concurrently.
exec 9>"$TRACEJOIN_CACHE/venv.lock"
if command -v flock >/dev/null; then flock 9; fi
if [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp" ] || [ ! -x "$venv/bin/python" ]; then
  build
fi
exec 9>&-

echo "$venv/bin/python"
