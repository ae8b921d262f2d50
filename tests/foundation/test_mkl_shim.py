"""The MKL shim (repeval/mkl_intel_cpu.c, built by ``python -m repeval.cpu build``: scripts/setup.sh, ``make mkl-shim``
and the cluster configs' setup run it) builds, takes over the
symbol MKL asks and leaves torch's products correct; repeval.cpu turns it on for the driver and the embedded Ray
workers alike and says which path ran. Its speed is measured in benchmarks/ (docs/benchmarks.md, sessions 11
and 12)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from repeval.testing.ahead import ahead_fixture
from repeval.testing.processes import one_by_one, side_by_side

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


def _lib(tmp_path: Path, env: dict[str, str] | None = None) -> Path:
    """The shim built as scripts/setup.sh builds it (``python -m repeval.cpu build``), in an environment ``env``
    (``None``: this process')."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed to build the MKL shim (make mkl-shim); install gcc")
    lib = tmp_path / "lib" / "librepeval-mkl-intel-cpu.so"
    out = subprocess.run(
        [sys.executable, "-m", "repeval.cpu", "build", "--output", str(lib)],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip() == str(lib), out.stderr
    assert not [p for p in lib.parent.iterdir() if p != lib]  # built under a temporary name, renamed into place
    return lib


def test_mkl_shim_builds_preloads_and_keeps_products_correct(tmp_path: Path) -> None:
    lib = _lib(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    plain_flag, plain_err = _run(env)
    shim_flag, shim_err = _run({**env, "LD_PRELOAD": str(lib)})
    assert shim_flag == 1 and plain_flag != 1  # the preloaded definition is the one the process resolves
    assert plain_err < 1e-5 and shim_err < 1e-5, (plain_err, shim_err)


def test_building_without_a_compiler_names_the_fix(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "repeval.cpu", "build", "--output", str(tmp_path / "shim.so")]
    env = {**os.environ, "CC": str(tmp_path / "no-such-cc")}
    strict = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert strict.returncode == 2 and "install gcc" in strict.stderr, strict.stderr
    optional = subprocess.run([*cmd, "--optional"], env=env, capture_output=True, text=True, timeout=60)
    assert optional.returncode == 0 and "install gcc" in optional.stderr  # cluster setup goes on without the shim
    assert not list(tmp_path.iterdir())


def test_the_wheel_ships_the_shim_source(tmp_path: Path) -> None:
    """Cluster nodes install repeval from a wheel and build the shim from the source inside it."""
    import zipfile

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "repeval", src / "repeval", ignore=shutil.ignore_patterns("__pycache__"))
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "w"),
         str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = (tmp_path / "w").glob("repeval-*.whl")
    with zipfile.ZipFile(wheel) as z:
        assert z.read("repeval/mkl_intel_cpu.c") == (ROOT / "repeval" / "mkl_intel_cpu.c").read_bytes()


# ------------------------------------------------------------------ turning it on automatically (repeval.cpu)
def test_cpu_vendor_reads_cpuinfo(tmp_path: Path) -> None:
    from repeval.cpu import cpu_vendor

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n")
    assert cpu_vendor(str(info)) == "AuthenticAMD"
    info.write_text("processor\t: 0\n")
    assert cpu_vendor(str(info)) is None
    assert cpu_vendor(str(tmp_path / "missing")) is None


def test_shim_decision_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from repeval import cpu

    lib = tmp_path / cpu.LIB_NAME
    monkeypatch.setattr(cpu, "default_library", lambda: lib)
    amd, intel = "AuthenticAMD", "GenuineIntel"

    d = cpu.decide({}, amd, "linux")  # not built yet: the reason names the fix
    assert d.library is None and "make mkl-shim" in d.reason
    lib.write_bytes(b"")
    assert cpu.decide({}, amd, "linux").library == lib
    assert cpu.decide({cpu.ENV: "auto"}, amd, "linux").library == lib
    assert cpu.decide({}, intel, "linux").library is None  # MKL already takes its fast path on Intel
    assert cpu.decide({cpu.ENV: "0"}, amd, "linux").library is None
    assert cpu.decide({cpu.ENV: "off"}, amd, "linux").reason == f"{cpu.ENV}=off"
    assert cpu.decide({}, amd, "darwin").library is None
    attached = cpu.decide({"RAY_ADDRESS": "10.0.0.1:6379"}, amd, "linux")  # the cluster's workers would differ
    assert attached.library is None and "nodes" in attached.reason
    assert cpu.decide({cpu.ENV: "1"}, intel, "linux").library == lib  # forced
    other = tmp_path / "elsewhere.so"
    assert cpu.decide({cpu.ENV: str(other)}, amd, "linux").library is None  # a path that does not exist
    other.write_bytes(b"")
    assert cpu.decide({cpu.ENV: str(other)}, intel, "linux").library == other
    # a cluster node's `ray start` (python -m repeval.cpu preload): the same rules, whoever drives the cluster
    assert cpu.node_library({"RAY_ADDRESS": "10.0.0.1:6379"}, amd) == lib
    assert cpu.node_library({"RAY_ADDRESS": "10.0.0.1:6379"}, intel) is None
    assert cpu.node_library({cpu.ENV: "off"}, amd) is None
    assert cpu.node_library({cpu.ENV: str(other)}, intel) == other


REEXEC = r"""
import os, sys
from repeval.cpu import mkl_status, reexec_with_mkl_shim
reexec_with_mkl_shim()
import ray
from repeval.ray_utils import init_ray
init_ray(num_cpus=1)

@ray.remote
def worker():
    from repeval.cpu import mkl_status
    return mkl_status()

print("driver:", mkl_status())
print("worker:", ray.get(worker.remote()))
print("argv:", sys.argv[1:])
# the monitor first, as a `repeval` command's exit does (repeval.ray_utils.stop_monitor_first_at_exit): Ray's
# shutdown SIGTERMs it after the GCS and waits a second for it (1.45 s from here to exit, 0.7 s so)
from repeval.ray_utils import _kill_monitor
_kill_monitor()
ray.shutdown()
"""


#: the shim, the run on it and the run without it
Reexec = tuple[Path, subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]


def reexec_runs(environ: dict[str, str]) -> Iterator[Reexec]:
    """The shim built, then a script re-executed on it and one that is not: each starts an embedded Ray (~10 s, mostly
    waiting). Started as soon as the tests are collected (``ahead_fixture``): they run, one after the other, while the
    tests before this module do. The shim's folder goes at the end."""
    tmp = Path(tempfile.mkdtemp(prefix="rvmkl-"))
    try:
        lib = _lib(tmp, environ)
        script = tmp / "prog.py"
        script.write_text(REEXEC)
        drop = ("LD_PRELOAD", "RAY_ADDRESS", "REPEVAL_MKL_SHIM_ACTIVE")
        # PYTHONPATH: the checkout's package for the script, which runs from another folder
        env = {k: v for k, v in environ.items() if k not in drop} | {"PYTHONPATH": str(ROOT)}
        on, off = one_by_one(
            ([sys.executable, str(script), "--x", "1"], {**env, "REPEVAL_MKL_SHIM": str(lib)}),
            ([sys.executable, str(script)], {**env, "REPEVAL_MKL_SHIM": "0"}),
            timeout=300,
            cwd=ROOT,
        )
        yield lib, on, off
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


reexec = ahead_fixture("reexec", reexec_runs, scope="module")


def test_reexec_puts_the_driver_and_embedded_ray_workers_on_the_shim(reexec) -> None:
    lib, on, off = reexec
    assert on.returncode == 0, on.stderr[-3000:]
    lines = dict(line.split(": ", 1) for line in on.stdout.splitlines() if ": " in line)
    assert lines["driver"].startswith("Intel code path") and str(lib) in lines["driver"], on.stdout
    assert lines["worker"] == lines["driver"], on.stdout  # Ray's worker processes inherit the preload
    assert lines["argv"] == "['--x', '1']"  # the command line survives the re-execution
    assert off.returncode == 0, off.stderr[-3000:]
    assert "shim" not in off.stdout and "Intel code path" not in off.stdout, off.stdout


def test_cli_plan_reports_the_mkl_path(tmp_path: Path) -> None:
    from repeval.cpu import THP_ENV, huge_pages_status

    lib = _lib(tmp_path)
    drop = ("LD_PRELOAD", "RAY_ADDRESS", "REPEVAL_MKL_SHIM_ACTIVE", THP_ENV)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    cmd = [sys.executable, "-m", "repeval.cli", "plan", str(ROOT / "configs" / "quickstart.yaml")]
    on, off = side_by_side(
        (cmd, {**env, "REPEVAL_MKL_SHIM": str(lib)}), (cmd, {**env, "REPEVAL_MKL_SHIM": "0", THP_ENV: "0"}), timeout=120
    )
    assert on.returncode == 0, on.stderr[-2000:]
    assert "MKL (torch's products): Intel code path on this" in on.stdout and str(lib) in on.stdout, on.stdout
    # …and the pages of its large tensors: the command asks for huge pages when the user did not say
    assert f"large tensors: {huge_pages_status({THP_ENV: '1'})}" in on.stdout, on.stdout
    assert off.returncode == 0, off.stderr[-2000:]
    line = next(x for x in off.stdout.splitlines() if x.startswith("MKL (torch's products):"))
    assert "shim" not in line, line
    assert f"large tensors: 4 KiB pages ({THP_ENV}=0;" in off.stdout, off.stdout  # the user's choice stands
