"""The opt-in MKL shim (``make mkl-shim``, scripts/mkl_intel_cpu.c) builds, takes over the symbol MKL asks, and
leaves torch's products correct. Its speed is measured in benchmarks/ (docs/benchmarks.md, session 11)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHECK = r"""
import ctypes, torch, numpy as np
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
x, w = torch.randn(27, 64, 512, generator=g), torch.randn(27, 512, 512, generator=g)
b = torch.randn(27, 1, 512, generator=g)
out = torch.baddbmm(b, x, w)
ref = b.double().numpy() + np.matmul(x.double().numpy(), w.double().numpy())
err = float(np.abs(out.double().numpy() - ref).max() / np.abs(ref).max())
try:
    flag = ctypes.CDLL(None).mkl_serv_intel_cpu_true()
except AttributeError:  # no global definition without the shim
    flag = -1
print(flag, err)
"""


def _run(env: dict[str, str]) -> tuple[int, float]:
    out = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    flag, err = out.stdout.split()
    return int(flag), float(err)


def test_mkl_shim_builds_preloads_and_keeps_products_correct(tmp_path: Path) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is needed to build the MKL shim (make mkl-shim); install gcc")
    lib = tmp_path / "librepeval-mkl-intel-cpu.so"
    subprocess.run(
        [gcc, "-O2", "-shared", "-fPIC", "-o", str(lib), str(ROOT / "scripts" / "mkl_intel_cpu.c")], check=True
    )
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    plain_flag, plain_err = _run(env)
    shim_flag, shim_err = _run({**env, "LD_PRELOAD": str(lib)})
    assert shim_flag == 1 and plain_flag != 1  # the preloaded definition is the one the process resolves
    assert plain_err < 1e-5 and shim_err < 1e-5, (plain_err, shim_err)
