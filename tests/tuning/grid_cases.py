"""What the probe grid tests share: a configuration, trial wrappers, the resume runs' data and probes."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from repeval.config import parse_config
from repeval.probes.synthetic import gaussian_probe_data

REPO = Path(__file__).resolve().parents[2]


def config(
    probes: list[dict],
    seeds: int = 1,
    metrics: tuple[str, ...] = ("accuracy", "f1_macro"),
    task_type: str = "multiclass_classification",
    **run: object,
):
    return parse_config(
        {
            "run": {"seeds": seeds, "bootstrap_resamples": 100, **run},
            "experiments": [
                {
                    "task": {"name": "inst", "type": task_type},
                    "datasets": [{"name": "notes", "type": "catalog", "manifest": "m.csv", "label_column": "x"}],
                    "embedding_models": ["mfcc-stats"],
                    "downstream_models": probes,
                    "metrics": list(metrics),
                }
            ],
        }
    )


@pytest.fixture(scope="module", autouse=True)
def pickle_this_module_by_value(request: pytest.FixtureRequest):
    """Autouse in each test module that imports it: that module and this one pickled by value."""
    from ray import cloudpickle

    modules = (sys.modules[__name__], request.module)
    for module in modules:
        cloudpickle.register_pickle_by_value(module)  # Ray workers cannot import test modules
    yield
    for module in modules:
        cloudpickle.unregister_pickle_by_value(module)


def resume_data():
    return gaussian_probe_data(n=90, d=8, c=3, scenarios=False)


def resume_config(epochs: int = 3, hidden: tuple[int, ...] = (2, 3, 4, 5)):
    """Probes ``p2`` … ``p5`` (``p<h>``: ``h`` hidden units), one trial each, two at a time."""
    probes = [{"name": f"p{h}", "hidden_units": [h], "epochs": epochs, "batch_size": 30} for h in hidden]
    return config(probes, run_id="resume", resources={"max_concurrent_trials": 2}, pack_trials=False)


def marker_wrapper(marks: str, hang_before: set[str] = frozenset(), hang_after: set[str] = frozenset()):
    """Record which probes trained; a unit with a probe in ``hang_before`` blocks before training, one in
    ``hang_after`` after its trial reported its checkpoint (so a test can kill the run at those points)."""

    def wrap(fn):
        def wrapped(config, data=None, units=None):
            names = sorted(m.name for m in units[config["unit"]].members)
            Path(marks, f"ran-{'-'.join(names)}-{os.getpid()}-{time.time_ns()}").touch()
            if hang_before & set(names):
                time.sleep(600)
            out = fn(config, data=data, units=units)
            if hang_after & set(names):
                Path(marks, f"reported-{'-'.join(names)}").touch()
                time.sleep(600)
            return out

        return wrapped

    return wrap


def gpu_granted(fn):
    """Hand every trial a GPU grant (``use_gpu``) that torch here cannot use: each warns that its probes train on the
    CPU (a warning every trial of a batch gives alike)."""

    def wrapped(config, data=None, units=None):
        return fn({**config, "use_gpu": True}, data=data, units=units)

    return wrapped


def gpu_said(caplog) -> list[str]:
    """What the driver's lines of :func:`gpu_granted`'s warning say before its text: which trials gave it."""
    said = [
        r.getMessage().split(": a probe trial on ") for r in caplog.records if "was granted a GPU" in r.getMessage()
    ]
    assert all(len(parts) == 2 for parts in said), said  # said on the driver, never of a trial of its own
    return [parts[0] for parts in said]


def reporting_trainable(config):
    """:func:`unit_trainable` without its failing unit (a failed trial's retry starts a trial actor of its own)."""
    from ray import tune

    tune.report({"score": float(config["unit"])})
