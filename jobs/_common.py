"""Shared code of the ``ray job submit`` entry points: each is the CLI stage of the same name."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# jobs run from the submitted working directory; make the package importable without install
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(stage: str) -> None:
    """``python jobs/<stage>.py CONFIG [--run-id ID] [--store URI] [--runs-dir URI] [--smoke-test]``."""
    from repeval.cli import hoist_global_options, script_command
    from repeval.cpu import prepare_entry_point
    from repeval.ray_signals import exit_on_sigterm

    prepare_entry_point()  # as `repeval` does; under `ray job submit` the node's LD_PRELOAD (cluster/*.yaml) applies
    exit_on_sigterm()  # `ray job stop` sends SIGTERM: the run says it was interrupted
    if not os.environ.get("RAY_ADDRESS"):
        print(
            "note: RAY_ADDRESS is not set; starting an embedded Ray (use `ray job submit` for a cluster)",
            file=sys.stderr,
        )
    script = f"jobs/{stage}.py"  # how `ray job submit` runs it: its usage line and errors name it so
    script_command(stage, script)(hoist_global_options([script, *sys.argv[1:]]), prog_name="")
