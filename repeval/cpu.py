"""MKL's code path on AMD CPUs; chosen before the process starts (docs/benchmarks.md, sessions 11 and 12).

torch links MKL statically; MKL takes a generic (slower) code path unless it sees an Intel CPU.
``repeval/mkl_intel_cpu.c`` (shipped in the wheel; compiled by :func:`build_shim` —
``python -m repeval.cpu build``, which ``scripts/setup.sh`` runs when gcc exists, ``make mkl-shim`` and the
cluster configs' setup commands) answers MKL's CPU check with "Intel"; preloaded into a process
(``LD_PRELOAD``) MKL's AVX2/AVX-512 kernels run on AMD too. It has to be in place when the process starts,
and the embedded Ray's workers inherit it from the driver, so :func:`reexec_with_mkl_shim` re-executes the
CLI once with it. A cluster's workers inherit the environment of their node's ``ray start`` instead: the
cluster configs start Ray with ``LD_PRELOAD="$(python -m repeval.cpu preload)"`` (:func:`node_library`: the
same decision for the node, whoever drives it), and a job's driver started there inherits it too.
``REPEVAL_MKL_SHIM`` decides: unset or ``auto`` — on an AMD CPU when the library is built and Ray is
embedded; ``0``/``off`` — never; ``1``/``on`` — always (the default library); a path — that library.
Results differ between the two paths in rounding only, so :func:`mkl_status` says which one ran
(``repeval plan`` prints it, each run's ``environment.json`` keeps it).

Also chosen before a process starts: whether torch puts large tensors on transparent huge pages
(:func:`use_huge_pages`, :func:`huge_pages_status`); and how it ends (:func:`skip_exit_collection`). Set when
a probe trial starts: glibc keeps the blocks a stack frees each step (:func:`keep_freed_memory`); and in the
environment of the isolated model processes (:func:`model_process_env`).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import functools
import gc
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "REPEVAL_MKL_SHIM"
#: set in the re-executed process, so it never re-executes twice
_DONE = "REPEVAL_MKL_SHIM_ACTIVE"
LIB_NAME = "librepeval-mkl-intel-cpu.so"
_OFF = {"0", "off", "false", "no"}
_ON = {"1", "on", "true", "yes"}


def cpu_vendor(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """``vendor_id`` of the first CPU (``AuthenticAMD``, ``GenuineIntel``), or None when unknown."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


@functools.cache
def _this_cpu() -> str | None:
    """:func:`cpu_vendor` of this machine, read once per process."""
    return cpu_vendor()


#: the shim's C source, shipped in the wheel
SOURCE = Path(__file__).with_name("mkl_intel_cpu.c")


def default_library() -> Path:
    """Where :func:`build_shim` (``scripts/setup.sh``, ``make mkl-shim``) puts the library: the environment's
    ``lib/``."""
    return Path(sys.prefix) / "lib" / LIB_NAME


class NoCompilerError(RuntimeError):
    """No C compiler to build the shim with."""


def build_shim(output: Path | None = None, cc: str | None = None) -> Path:
    """Compile :data:`SOURCE` into ``output`` (default :func:`default_library`) with ``cc`` (default ``$CC`` or
    gcc) and return its path. The library is written under a temporary name and renamed into place, so a
    process that preloads it meanwhile never maps a half-written file."""
    output = default_library() if output is None else Path(output)
    name = cc or os.environ.get("CC") or "gcc"
    compiler = shutil.which(name)
    if compiler is None:
        raise NoCompilerError(
            f"no C compiler ({name}) to build the MKL shim: install gcc "
            f"(Debian/Ubuntu: apt-get install gcc), or run without it (probe training on AMD CPUs then takes "
            f"MKL's slower path)"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".building-", suffix=".so", dir=output.parent)
    os.close(fd)
    try:
        subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", tmp, str(SOURCE)], check=True)
        os.chmod(tmp, 0o755)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return output


@dataclass(frozen=True)
class ShimDecision:
    library: Path | None  # the library to preload, or None
    reason: str


def decide(env: dict[str, str] | None = None, vendor: str | None = None, platform: str | None = None) -> ShimDecision:
    """Whether to run with the MKL shim, and why (see the module docstring)."""
    env = dict(os.environ) if env is None else env
    platform = sys.platform if platform is None else platform
    setting = env.get(ENV, "auto").strip()
    low = setting.lower()
    if low in _OFF:
        return ShimDecision(None, f"{ENV}={setting}")
    if not platform.startswith("linux"):
        return ShimDecision(None, "not Linux")
    forced = low in _ON or low not in {"", "auto"}
    default = default_library()
    lib = default if low in _ON | {"", "auto"} else Path(setting).expanduser()
    if not lib.is_file():
        how = "make mkl-shim" if lib == default else f"point {ENV} at a built library"
        why = f"{lib} not built ({how})"
        if forced:
            log.warning("MKL shim requested (%s=%s) but %s", ENV, setting, why)
        return ShimDecision(None, why)
    if forced:
        return ShimDecision(lib, f"{ENV}={setting}")
    vendor = _this_cpu() if vendor is None else vendor
    if vendor != "AuthenticAMD":
        return ShimDecision(None, f"{vendor or 'unknown'} CPU: MKL's own check suffices")
    if env.get("RAY_ADDRESS"):
        # the cluster's workers start from the nodes' environment, not the driver's: kernels would differ
        return ShimDecision(
            None,
            f"attached to a Ray cluster (its nodes preload {lib} when their `ray start` runs with "
            f'LD_PRELOAD="$(python -m repeval.cpu preload)", as cluster/*.yaml do; or {ENV}=1)',
        )
    return ShimDecision(lib, "AMD CPU")


def node_library(env: dict[str, str] | None = None, vendor: str | None = None) -> Path | None:
    """The library this *node*'s Ray processes should preload (what ``python -m repeval.cpu preload`` prints for a
    cluster node's ``ray start``): :func:`decide`'s rules for this CPU and ``REPEVAL_MKL_SHIM``, whether or not a
    driver is attached to a cluster — every node that starts Ray this way takes the same path."""
    env = dict(os.environ) if env is None else dict(env)
    env.pop("RAY_ADDRESS", None)
    return decide(env, vendor).library


def _preloads() -> list[str]:
    """This process' ``LD_PRELOAD`` entries (separated by spaces or colons)."""
    return os.environ.get("LD_PRELOAD", "").replace(":", " ").split()


def reexec_with_mkl_shim(argv: list[str] | None = None) -> None:
    """Re-execute this Python program with the MKL shim preloaded when :func:`decide` says so.

    ``argv`` is the command line to run again (default ``sys.argv``; a module run as ``python -m``
    passes ``["-m", "pkg.mod", *args]``). Returns when nothing is to be done; otherwise does not return.
    """
    if os.environ.get(_DONE):
        return
    d = decide()
    if d.library is None or str(d.library) in _preloads():
        return
    env = dict(os.environ)
    env["LD_PRELOAD"] = " ".join(x for x in (str(d.library), env.get("LD_PRELOAD", "")) if x)
    env[_DONE] = str(d.library)
    if argv is None:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        # `python -m pkg.mod`: run the module again, not its file (whose folder would shadow top-level names)
        argv = ["-m", spec.name, *sys.argv[1:]] if spec is not None and spec.name else list(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv], env)


def mkl_status() -> str:
    """Which MKL code path this process runs, in one line (printed by ``repeval plan``, kept in environment.json)."""
    vendor = _this_cpu() or "unknown"
    lib = next((p for p in _preloads() if LIB_NAME in p), None)
    if lib is not None:
        try:
            active = ctypes.CDLL(None).mkl_serv_intel_cpu_true() == 1
        except (AttributeError, OSError):
            active = False
        if active:
            return f"Intel code path on this {vendor} CPU (shim {lib})"
    if vendor == "AuthenticAMD":
        return f"generic code path on this AMD CPU ({decide().reason})"
    return f"MKL's own dispatch ({vendor} CPU)"


# ------------------------------------------------------------------ huge pages for large tensors

#: torch's switch (``c10/core/alloc_cpu.cpp``): tensors of 2 MiB and more 2 MiB-aligned and ``madvise(MADV_HUGEPAGE)``
THP_ENV = "THP_MEM_ALLOC_ENABLE"
_THP_SYSFS = "/sys/kernel/mm/transparent_hugepage/enabled"


def use_huge_pages(env: MutableMapping[str, str] | None = None) -> None:
    """Put torch's tensors of 2 MiB and more on transparent huge pages in this process and the Ray it starts.

    glibc maps every block above 32 MiB afresh and unmaps it on free, so each step of a probe stack
    (a weight gradient of ``K × in × out`` floats: 54 × 512 × 512 × 4 B = 54 MiB for a Jukemir MLP stack)
    page-faults its tensors in again, 4 KiB at a time: the stack's backward product ran at 32 GFLOP/s
    instead of 61 on 2 MiB pages, and the Jukemir grid on a 2,000 × 1,728 table (MULE's width) ran 1.13–1.23×
    faster (docs/benchmarks.md, session 20). torch reads ``THP_MEM_ALLOC_ENABLE`` once, at a process'
    first allocation, so it is set before torch is imported: by the ``repeval`` command and the jobs' entry
    points for themselves, by :func:`repeval.ray_utils.init_ray` for the embedded Ray's workers (they
    inherit it), by the cluster configs for a cluster's nodes. A value the user set (``0``) is kept.
    """
    env = os.environ if env is None else env
    env.setdefault(THP_ENV, "1")


def kernel_thp(path: str = _THP_SYSFS) -> str | None:
    """The kernel's transparent-huge-page mode (``always``, ``madvise`` or ``never``; None when unknown)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    return next((w[1:-1] for w in text.split() if w.startswith("[") and w.endswith("]")), None)


def huge_pages_status(env: Mapping[str, str] | None = None, kernel: str | None = None) -> str:
    """Whether this process' large tensors go on huge pages, in one line (``repeval plan``, environment.json)."""
    env = os.environ if env is None else env
    kernel = kernel_thp() if kernel is None else kernel
    asked = env.get(THP_ENV) == "1"
    if asked and kernel in ("always", "madvise"):
        return f"huge pages for tensors of 2 MiB and more ({THP_ENV}=1; kernel THP {kernel})"
    if asked:
        return f"4 KiB pages: the kernel's transparent huge pages are {kernel or 'unavailable'} ({THP_ENV}=1)"
    return f"4 KiB pages ({THP_ENV}={env.get(THP_ENV, 'unset')}; kernel THP {kernel or 'unavailable'})"


# ------------------------------------------------------------------ freed blocks stay in the process

#: ``0``/``off`` leaves glibc's allocator as it is in the processes that train probes and in the embedding actors
#: (and keeps ``GLIBC_TUNABLES`` out of the isolated model groups' environments)
KEEP_FREED_ENV = "REPEVAL_KEEP_FREED"
#: blocks below this size come from the heap and stay there when freed: glibc's largest default mmap threshold
#: (``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit), so larger blocks (a 1,728-d stack's gradients) are mapped as before
KEEP_FREED_BELOW = 32 * 1024**2
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
_TRIM_NEVER = 2**31 - 1  # mallopt takes an int; the heap never holds this much free memory at its top


@functools.cache  # once per process: a probe trial's actor is reused for the next trial
def keep_freed_memory() -> str:
    """Make glibc keep the blocks a probe stack frees each step, instead of handing them back to the kernel
    and faulting them in again at the next step. Returns what this process runs with, in one line (each
    trial reports it; ``environment.json`` keeps it).

    glibc's default moves its mmap threshold up to the largest block freed so far and trims the heap's free
    top above twice that, so the tensors of a stack's step (a 14-probe Jukemir MLP stack: 1.8 MiB
    activations, 14 MiB weight gradients) are unmapped or trimmed and then page-faulted back 4 KiB at a
    time, ~40,000–70,000 faults per 5 epochs. A fixed threshold of :data:`KEEP_FREED_BELOW` and no
    trimming keep them in the heap: the Jukemir grid's stacks trained 1.10–1.35× faster in one process and
    the process' peak RSS went down, not up (656 against 704–836 MiB; docs/benchmarks.md, session 22). A
    plain loop training one probe at a time does not fault (its blocks stay under the threshold) and is
    unaffected. Freed memory stays with the process until it exits; probe trials and embedding actors call this
    (PESTO's actor-side model faulted 850,000 times for 32 clips without it, 0 with it).

    Only glibc has ``mallopt``; elsewhere, with ``REPEVAL_KEEP_FREED=0``, or in a process started with malloc
    settings in ``GLIBC_TUNABLES`` (an isolated model group's, :func:`model_process_env`, or the user's), nothing
    changes."""
    value = os.environ.get(KEEP_FREED_ENV, "").strip()
    if value.lower() in _OFF:
        return f"glibc's default (freed blocks go back to the kernel; {KEEP_FREED_ENV}={value})"
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc." in tunables:  # the process started with its own settings (a model group's, or the user's)
        return f"the process' GLIBC_TUNABLES ({tunables})"
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "the C library's default (no mallopt)"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # the threshold first: setting either fixes both (no more dynamic adjustment)
    if mallopt(_M_MMAP_THRESHOLD, KEEP_FREED_BELOW) != 1 or mallopt(_M_TRIM_THRESHOLD, _TRIM_NEVER) != 1:
        return "glibc's default (mallopt refused the settings)"
    return f"freed blocks under {KEEP_FREED_BELOW >> 20} MiB stay in the process (glibc mallopt)"


#: glibc's allocator in the isolated model processes (TensorFlow's, essentia's): one arena, blocks up to 1 GiB from
#: it, its free top never trimmed — read by glibc when the process starts (they are started for their group)
MODEL_TUNABLES = (
    "glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=4294967296"
)


def model_process_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for the worker processes of an isolated model group: glibc keeps what the model frees.

    TensorFlow allocates each call's activations afresh from its intra-op threads, whose glibc arenas map
    every large block and unmap it on free: MusiCNN (MSD) on 16 clips of 3 s at a time page-faulted ~12,000
    times per clip (1.95 million faults for 160 clips). With one arena (the main heap, which can grow), a
    1 GiB mmap threshold and no trimming those blocks stay in the process: ~0 faults after the first batch and
    the same 160 clips embedded 1.24–1.32× faster on one thread (docs/benchmarks.md, session 22). The setting
    takes effect only when a process starts, which is why it goes to the groups whose actors Ray starts in
    processes of their own (``runtime_env``, so it holds on a cluster whose nodes started without it); Ray's
    shared workers get it from the environment Ray started with (:func:`ray_process_env`). Memory freed
    by the model stays with its process (the next call reuses it). Nothing is set when the environment
    already has ``GLIBC_TUNABLES`` (the user's choice) or ``REPEVAL_KEEP_FREED=0``."""
    env = os.environ if env is None else env
    if env.get(KEEP_FREED_ENV, "").strip().lower() in _OFF or "GLIBC_TUNABLES" in env:
        return {}
    return {"GLIBC_TUNABLES": MODEL_TUNABLES}


def ray_process_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment the embedded Ray starts with, and so every worker it starts: glibc's settings of
    :func:`model_process_env` — one arena, blocks up to 1 GiB from the heap, its free top never trimmed.

    Ray Tune runs a trial's function in a thread of its own, and glibc gives a process' other threads arenas
    of their own: heaps of at most 64 MiB that :func:`keep_freed_memory`'s ``mallopt`` does not keep (a heap
    whose blocks are all freed is unmapped, a block that does not fit one is mapped afresh), and whose
    threshold stops at 32 MiB (a 54-probe stack's weight gradients are 54 MiB). A 27-probe Jukemir MLP stack
    (batch 64) trained for 5 epochs in such a thread page-faulted ~88,000 times per pass, 1.1–3.1 s of system
    time beside ~3 s of user time; with one arena ~13,000 times in its first pass and ~1,000–2,000 after. The
    Jukemir grid on a fresh embedded Ray with these settings against ``mallopt`` alone, two runs in opposite
    order: 1.26× / 1.17× the wall time, 1.23× / 1.21× the trials' training time, every result identical, peak
    RSS of Ray's processes 1,632 against 2,379–2,519 MiB (docs/benchmarks.md, session 29). The settings take
    effect only when a process starts, so the embedded Ray starts inside :func:`ray_process_environment`; on a
    cluster the node's ``ray start`` has them (the cluster configs export them). Memory a worker frees stays
    with it until it exits. Nothing is set when the environment already has ``GLIBC_TUNABLES`` (the user's
    choice) or ``REPEVAL_KEEP_FREED=0``."""
    return model_process_env(env)


@contextlib.contextmanager
def ray_process_environment() -> Iterator[None]:
    """Start a Ray inside this block: its processes inherit :func:`ray_process_env`; this process'
    environment is as it was afterwards."""
    extra = ray_process_env()
    os.environ.update(extra)
    try:
        yield
    finally:
        for key in extra:
            os.environ.pop(key, None)


# ------------------------------------------------------------------ exit without a last collection


@functools.cache  # registered once per process
def skip_exit_collection() -> None:
    """Let this process exit without the garbage collector tearing its heap down.

    At exit CPython clears every module and then runs a full collection over what that left unreachable. In
    the driver of a run (pyarrow, torch, Ray Data and Tune loaded: ~400,000 tracked objects) that collection
    took 2.0–2.3 s on the 2-core development VM — after the results were written and Ray had shut down, so
    every ``repeval run`` made its user wait that long for the prompt (docs/benchmarks.md, session 21).
    ``gc.freeze()`` as the process' last exit handler moves the heap into the collector's permanent
    generation, which no collection scans; the memory goes back with the process. Objects are still freed
    by reference counting, and the standard streams are still flushed; only objects kept alive by reference
    cycles are not finalized (repeval closes its files and writers itself and has no finalizers).

    Call it before ``ray`` is imported (the ``repeval`` command and the jobs' entry points do): exit handlers
    run last-registered first, so this one then runs after Ray's (``ray.shutdown``) and every later one."""
    atexit.register(gc.freeze)


def _in_ray_worker() -> bool:
    """Whether this process is a Ray worker (a task's or an actor's process, not a driver)."""
    worker = sys.modules.get("ray._private.worker")  # not imported: not a Ray process
    return worker is not None and getattr(worker.global_worker, "mode", None) == worker.WORKER_MODE


@contextlib.contextmanager
def imports_frozen_in_workers() -> Iterator[None]:
    """In a Ray worker: the cyclic garbage collector off for a block of imports, then what they built moved into
    its permanent generation (``gc.freeze()``) and the collector back as it was. Elsewhere: nothing.

    Importing torch builds ~340,000 tracked objects that stay alive as long as the process, and the collector,
    triggered every 700 allocations, scans them again and again while they are built: in a fresh process with
    ``ray.tune`` imported, ``import torch`` and the allocations after it took 1.6–1.8 CPU-s against 1.0 this way, and
    every later full collection of that process 0.15 s against 0.01 (docs/benchmarks.md, session 59). Every trial
    actor pays that import on its own core before its first probe trains. Objects are still freed by reference
    counting; what the imports leave in reference cycles (~6,500 objects, ~0.5 MiB) stays for the process' life."""
    if not _in_ray_worker():
        yield
        return
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was:
            gc.enable()


def prepare_entry_point(reexec: bool = True) -> None:
    """What the ``repeval`` command and the jobs' entry points do first, in this order: the exit handler that
    must run after Ray's (:func:`skip_exit_collection`), huge pages before torch is imported (inherited by the
    embedded Ray and a re-executed process: :func:`use_huge_pages`), then — with ``reexec`` — the MKL shim
    (:func:`reexec_with_mkl_shim`; on AMD CPUs with the shim built, MKL's fast path here and in the embedded Ray)."""
    skip_exit_collection()
    use_huge_pages()
    if reexec:
        reexec_with_mkl_shim()


def main(argv: list[str] | None = None) -> int:
    """``python -m repeval.cpu build [--output PATH] [--optional]`` compiles the shim;
    ``python -m repeval.cpu preload`` prints the library this node's processes should preload (nothing when none);
    ``python -m repeval.cpu tunables`` the ``GLIBC_TUNABLES`` its Ray should start with (:func:`ray_process_env`)."""
    ap = argparse.ArgumentParser(prog="python -m repeval.cpu", description="MKL's Intel code path on AMD CPUs")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help=f"compile the shim into <environment>/lib/{LIB_NAME}")
    b.add_argument("--output", type=Path, default=None, help="where to write the library")
    b.add_argument("--optional", action="store_true", help="without a C compiler: say so and exit 0")
    sub.add_parser("preload", help="print the library to put in LD_PRELOAD on this node (empty: none)")
    sub.add_parser("tunables", help="print the GLIBC_TUNABLES this node's Ray should start with (empty: none)")
    args = ap.parse_args(argv)
    if args.cmd == "preload":
        lib = node_library()
        print(lib if lib is not None else "")
        return 0
    if args.cmd == "tunables":
        print(ray_process_env().get("GLIBC_TUNABLES", ""))
        return 0
    try:
        print(build_shim(args.output))
    except NoCompilerError as exc:
        print(f"repeval.cpu: {exc}", file=sys.stderr)
        return 0 if args.optional else 2
    except (subprocess.CalledProcessError, OSError) as exc:  # the compiler failed, or the folder is not writable
        print(
            f"repeval.cpu: building the MKL shim failed ({exc}); probe training on AMD CPUs takes MKL's slower path",
            file=sys.stderr,
        )
        return 0 if args.optional else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
