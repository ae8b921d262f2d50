#!/usr/bin/env bash
# Create .venv (Python 3.11) and install repeval with its pinned dependencies.
# Packages whose published metadata conflicts with the rest are installed here with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -c 'import sys; assert sys.version_info[:2] == (3, 11), f"repeval needs Python 3.11, found {sys.version}"'
stamp=.venv/.repeval-installed
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
python -m pip install --quiet --disable-pip-version-check "pip==25.3"
python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
# tinysoundfont's metadata pulls PyAudio (needs PortAudio headers) only for live playback,
# which repeval never uses: install it without dependencies.
python -m pip install --quiet --disable-pip-version-check --no-deps "tinysoundfont==0.3.7"
echo "$want" > "$stamp"
