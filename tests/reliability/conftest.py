"""Session fixtures of the reliability tests: one generated catalog and one uninterrupted reference run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from reliability_helpers import FAST_MODEL, SLOW_MODEL, experiment, make_catalog, write_config


@dataclass
class Reference:
    root: Path
    config: Path
    stdout: str

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def run_dir(self) -> Path:
        return self.root / "runs" / "r"


@pytest.fixture(scope="session")
def fault_catalog(tmp_path_factory) -> Path:
    """24 two-second tones (2 pitch classes; 16 train, 4 validation, 4 test)."""
    return make_catalog(tmp_path_factory.mktemp("catalog"), per_class=12)


@pytest.fixture(scope="session")
def reference_run(ray_session, fault_catalog, tmp_path_factory) -> Reference:
    """An uninterrupted ``repeval run`` (fast + slow model, one deformation) — what every fault test must end equal to.
    It runs in this process on the session's Ray (a ``repeval`` process of its own would start a Ray of its own, ~10 s):
    the fault tests' own runs are the separate processes, each on its embedded Ray, that end equal to it."""
    from typer.testing import CliRunner

    from repeval.cli import app

    root = tmp_path_factory.mktemp("reference")
    cfg = write_config(root / "config.yaml", root, [experiment(fault_catalog, [FAST_MODEL, SLOW_MODEL])])
    res = CliRunner().invoke(app, ["run", str(cfg)])
    assert res.exit_code == 0, res.output[-4000:]
    return Reference(root, cfg, res.output)
