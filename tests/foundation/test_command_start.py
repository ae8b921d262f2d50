"""Ctrl-C and SIGTERM in the first moment of a ``repeval`` command, while its modules are imported
(:mod:`repeval.cli.starting`): one line and the shell's status, not numpy's traceback nor a silent -15."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

# the console script's lines (`repeval validate x.yaml`), with numpy's import held until the signal comes
STALLED_IMPORT = """
import os, sys, time
class Stall:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy":
            os.write(1, b"importing numpy\\n")
            time.sleep(60)
        return None
sys.meta_path.insert(0, Stall())
sys.argv = ["repeval", "validate", "x.yaml"]
from repeval.cli import entrypoint
sys.exit(entrypoint())
"""


@pytest.mark.parametrize(("signum", "status", "line"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")])  # fmt: skip
def test_a_signal_while_the_command_imports_its_modules_ends_it_with_one_line(signum, status, line):
    env = {**os.environ, "REPEVAL_MKL_SHIM": "0"}
    p = subprocess.Popen(
        [sys.executable, "-c", STALLED_IMPORT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert p.stdout is not None and p.stdout.readline() == "importing numpy\n"
        p.send_signal(signum)
        _, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert (p.returncode, err) == (status, f"{line} while starting: nothing was done\n")
