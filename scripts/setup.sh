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
# MKL's Intel code path for torch on AMD CPUs (repeval/mkl_intel_cpu.c; repeval/cpu.py decides at run time
# whether to preload it — REPEVAL_MKL_SHIM=0 turns it off). Without gcc repeval runs without it.
# (repeval.cpu needs only the standard library: it runs from the checkout before the install.)
shim=.venv/lib/librepeval-mkl-intel-cpu.so
if command -v gcc >/dev/null 2>&1 && { [ ! -f "$shim" ] || [ repeval/mkl_intel_cpu.c -nt "$shim" ]; }; then
  python -m repeval.cpu build --optional >/dev/null \
    || echo "setup: could not build the MKL shim; probe training on AMD CPUs runs MKL's slower path" >&2
fi
# repeval's own bytecode: the editable install writes none, and with PYTHONDONTWRITEBYTECODE=1 (set on these
# machines) every process — each CLI command, each Ray worker and trial actor — compiled repeval's modules from
# source (~0.1-0.2 CPU-s each); compileall writes what is missing or stale, ~0.3 s when all is up to date
python -m compileall -q -j 0 repeval jobs >/dev/null
stamp=.venv/.repeval-installed
want=$( (cat pyproject.toml scripts/setup.sh; echo "${EXTRAS:-}") | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
# pip compiles .pyc at install (~0.6 GB): keep it — with PYTHONDONTWRITEBYTECODE=1 (set on these machines) a
# --no-compile install recompiles every module in every process, which made the test suite 2.3× slower
PIP=(python -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" "pip==25.3"
# EXTRAS=models (all embedding-model families) is what the test suite uses
"${PIP[@]}" -e ".[dev${EXTRAS:+,$EXTRAS}]"
if [ -n "${EXTRAS:-}" ]; then
  # metadata of these pins numpy<1.17 / CUDA torchaudio; repeval needs none of those pins
  "${PIP[@]}" --no-deps \
    "musicnn==0.1.0" "torchcrepe==0.0.24" "pesto-pitch==2.0.1" "basic-pitch==0.4.0"
  # musicnn's checkpoints as ONNX models (its default backend), converted once with TensorFlow into
  # $REPEVAL_MODELS_DIR (default ~/.cache/repeval/models), so no run or test converts them
  if python -c 'import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in sys.argv[1:]))' \
    tensorflow tf_keras onnx musicnn; then
    TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2 python -m repeval.models.musicnn_onnx --all >/dev/null
  fi
fi
# tinysoundfont's metadata pulls PyAudio (needs PortAudio headers) only for live playback,
# which repeval never uses: install it without dependencies.
"${PIP[@]}" --no-deps "tinysoundfont==0.3.7"
# librosa's numba kernels (its peak picking, zero crossings, pitch tracking) compile when their module is first
# imported, 15-30 s on 2 cores, into numba's cache beside librosa in .venv: compile them once here, not in the first
# command or test that builds a chroma filter bank (chroma-stats) or loads audio through librosa
python -c 'import librosa.util.utils, librosa.core.audio, librosa.core.pitch'
echo "$want" > "$stamp"
