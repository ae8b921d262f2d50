"""Session fixtures of the reliability tests: one generated catalog and one uninterrupted reference run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from reliability_helpers import FAST_MODEL, SLOW_MODEL, experiment, make_catalog, run_cli, write_config


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
def reference_run(fault_catalog, tmp_path_factory) -> Reference:
    """An uninterrupted ``repeval run`` (fast + slow model, one deformation) — what every fault test must end equal to."""
    root = tmp_path_factory.mktemp("reference")
    cfg = write_config(root / "config.yaml", root, [experiment(fault_catalog, [FAST_MODEL, SLOW_MODEL])])
    res = run_cli(["run", str(cfg)], root)
    assert res.returncode == 0, res.stdout + res.stderr[-4000:]
    return Reference(root, cfg, res.stdout)
