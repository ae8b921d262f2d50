"""Large tensors on transparent huge pages (repeval.cpu.use_huge_pages).

Counted in page faults, not time: torch maps a tensor above glibc's mmap threshold afresh each time,
and writing it faults once per page — 4 KiB pages, or 2 MiB ones when torch was asked for huge pages
(``THP_MEM_ALLOC_ENABLE=1``, read once at a process' first allocation).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from repeval.cpu import THP_ENV, huge_pages_status, kernel_thp, use_huge_pages

# a Jukemir MLP stack's weight gradient (54 × 512 × 512 floats): allocated, written and freed 4 times
FAULTS = r"""
import json, resource, torch
torch.set_num_threads(1)
out = []
for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.empty(54 * 2**20 // 4)
    t.fill_(1.0)
    del t
    out.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps(out))
"""
PAGES_4K = 54 * 2**20 // 4096


def faults(value: str | None) -> list[int]:
    env = {k: v for k, v in os.environ.items() if k != THP_ENV}
    if value is not None:
        env[THP_ENV] = value
    out = subprocess.run([sys.executable, "-c", FAULTS], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_large_tensors_fault_in_huge_pages_when_asked():
    asked, plain = faults("1"), faults("0")
    kernel = kernel_thp()
    if kernel != "always":  # (a kernel in `always` mode gives every large mapping huge pages unasked)
        assert min(plain) >= 0.9 * PAGES_4K  # 4 KiB pages: every page of the block faults, every time
    if kernel in ("always", "madvise"):
        # 2 MiB pages: ~27 faults for the block plus bookkeeping (min: the kernel may fall back to 4 KiB pages
        # when it finds no free 2 MiB page at once)
        assert min(asked) <= 0.1 * PAGES_4K, asked
        assert huge_pages_status({THP_ENV: "1"}).startswith("huge pages for tensors of 2 MiB and more")
    else:  # a kernel without transparent huge pages: nothing changes, and the status line says why
        assert min(asked) >= 0.9 * PAGES_4K
        assert huge_pages_status({THP_ENV: "1"}).startswith("4 KiB pages: the kernel's transparent huge pages")


def test_use_huge_pages_keeps_a_users_choice():
    env: dict[str, str] = {}
    use_huge_pages(env)
    assert env == {THP_ENV: "1"}
    env = {THP_ENV: "0"}
    use_huge_pages(env)
    assert env == {THP_ENV: "0"}


@pytest.mark.parametrize(
    ("env", "kernel", "start"),
    [
        (
            {THP_ENV: "1"},
            "madvise",
            "huge pages for tensors of 2 MiB and more (THP_MEM_ALLOC_ENABLE=1; kernel THP madvise)",
        ),
        ({THP_ENV: "1"}, "never", "4 KiB pages: the kernel's transparent huge pages are never"),
        ({THP_ENV: "0"}, "always", "4 KiB pages (THP_MEM_ALLOC_ENABLE=0; kernel THP always)"),
        ({}, "madvise", "4 KiB pages (THP_MEM_ALLOC_ENABLE=unset; kernel THP madvise)"),
    ],
)
def test_status_line(env, kernel, start):
    assert huge_pages_status(env, kernel).startswith(start)


def test_kernel_mode_is_read_from_sysfs(tmp_path):
    f = tmp_path / "enabled"
    f.write_text("always [madvise] never\n")
    assert kernel_thp(str(f)) == "madvise"
    assert kernel_thp(str(tmp_path / "missing")) is None


def test_init_ray_asks_for_huge_pages_for_its_workers(ray_session, monkeypatch):
    from repeval.ray_utils import init_ray

    monkeypatch.delenv(THP_ENV, raising=False)
    init_ray()  # Ray is up (the session's): nothing is started, but the setting is in place for a new one
    assert os.environ[THP_ENV] == "1"
    monkeypatch.setenv(THP_ENV, "0")
    init_ray()
    assert os.environ[THP_ENV] == "0"
