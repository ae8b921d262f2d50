"""Probe trials that raise, die or warn: their failure reasons, retries, and what the driver says of them."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from grid_cases import (
    config,
    gpu_granted,
    gpu_said,
    pickle_this_module_by_value,  # noqa: F401 (autouse)
    resume_config,
    resume_data,
)

from repeval.probes.synthetic import gaussian_probe_data
from repeval.tuning.grid import run_group
from repeval.warn import reset_warned


def test_what_a_trial_warned_before_it_raised_is_said_on_the_driver(ray_session, tmp_path, caplog):
    """A trial that raises leaves no checkpoint, and what it had warned — what a user debugging the failed probe
    needs most — was lost with it (only the finished trials' warnings were said). It is kept beside the trial's
    results as it raises, and said with the others: here a GPU granted that torch cannot use, then a sampled PCA
    wider than the embeddings, which fails the trial (Tune's retry re-raises at once and keeps the first attempt's)."""
    data = gaussian_probe_data(n=60, d=6, c=3, scenarios=False)
    wide = {"name": "wide", "epochs": 2, "search": {"space": {"pca_dim": {"choice": [50]}}, "num_samples": 1}}
    cfg = config([{"name": "lin", "epochs": 2}, wide])
    reset_warned()
    with caplog.at_level("WARNING", logger="repeval"):
        g = run_group(cfg, cfg.experiments[0], "notes", "m", data, str(tmp_path / "tune"), wrap_trainable=gpu_granted)
    from repeval.probes.inputs import pca_too_wide

    assert [(f["probe"], f["reason"]) for f in g.failed] == [
        ("wide", f"ValueError: {pca_too_wide(50, *data.x_train.shape)}")
    ]
    assert gpu_said(caplog) == ["inst__notes__m, 2 of 2 probes/seeds (lin (seed 0); wide (seed 0))"]


def gpu_granted_then_killed(fn):
    """:func:`gpu_granted`, and every attempt's worker killed (kill -9, as the OOM killer does) once its probes have
    trained, before it saves its checkpoint."""

    def wrapped(config, data=None, units=None):
        import repeval.tuning.trial

        def killed(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        repeval.tuning.trial.write_tensorboard = killed  # (this worker dies: nothing else runs in it)
        return fn({**config, "use_gpu": True}, data=data, units=units)

    return wrapped


def test_what_a_trial_whose_worker_died_warned_is_said_on_the_driver(ray_session, tmp_path, caplog, monkeypatch):
    """A grid trial kept its warnings beside its results only as it raised: one whose worker died (not an exception)
    wrote none, and what it warned was lost however often Tune started it again. It writes them as they change (after
    each validation, once trained): the driver says them with the failed probe. (Not started again here: a retry is
    the same trial in a new worker, and costs ~10 s.)"""
    import repeval.tuning.tuner

    monkeypatch.setattr(repeval.tuning.tuner, "TRIAL_RETRIES", 0)
    data = gaussian_probe_data(n=60, d=6, c=3, scenarios=False)
    cfg = config([{"name": "lin", "epochs": 2}])
    reset_warned()
    with caplog.at_level("WARNING", logger="repeval"):
        g = run_group(cfg, cfg.experiments[0], "notes", "m", data, str(tmp_path / "tune"),
                      wrap_trainable=gpu_granted_then_killed)  # fmt: skip
    assert [f["probe"] for f in g.failed] == ["lin"] and not g.rows, g.failed
    assert gpu_said(caplog) == ["inst__notes__m, probe lin (seed 0)"]


def raise_counting_wrapper(marks: str):
    """Every trial that trains 'p2' records its attempt in ``marks`` and raises (a deterministic bug); its cleanup
    then fails too, while handling that failure."""

    def cleanup():
        raise RuntimeError("cleanup failed too")

    def wrap(fn):
        def wrapped(config, data=None, units=None):
            if "p2" in {m.name for m in units[config["unit"]].members}:
                Path(marks, f"attempt-{os.getpid()}-{time.time_ns()}").touch()
                try:
                    raise ValueError("p2 cannot train: injected bug")
                finally:
                    cleanup()
            return fn(config, data=data, units=units)

        return wrapped

    return wrap


def test_a_trial_that_raises_is_trained_once_and_recorded_as_failed(ray_session, tmp_path):
    """Tune's retry is for a worker that died: a trial whose code raises runs once (before: twice, the same
    exception) and is recorded as failed with the exception as its reason while the other units finish; Tune still
    sees it errored, so a rerun of the experiment keeps it failed without running it again. Its cleanup failed too
    while handling the failure: the reason was the second exception only (the last line of the traceback), the
    first, its cause, lost from failed.parquet and the report — both are kept, the first first."""
    marks = tmp_path / "marks"
    marks.mkdir()
    cfg = resume_config(hidden=(2, 3))  # p2 raises, p3 finishes beside it

    def run():
        return run_group(cfg, cfg.experiments[0], "notes", "m", resume_data(), str(tmp_path / "tune"),
                         wrap_trainable=raise_counting_wrapper(str(marks)))  # fmt: skip

    for attempt in range(2):  # the run, then its rerun (restored)
        g = run()
        assert len(list(marks.glob("attempt-*"))) == 1, attempt
        assert [(f["probe"], f["reason"]) for f in g.failed] == [
            (
                "p2",
                "ValueError: p2 cannot train: injected bug; then, while handling it: RuntimeError: cleanup failed too",
            )
        ], attempt
        assert {r["probe"] for r in g.rows} == {"p3"}
    (exp,) = [d for d in (tmp_path / "tune").iterdir() if d.is_dir()]
    (err,) = exp.glob("*/error.txt")
    assert "Failure # 2" in err.read_text() and "RaisedBefore" in err.read_text()  # Tune's retry, raised at once


def test_a_trials_reason_keeps_the_exception_it_was_raised_from(tmp_path):
    """A trial's failure reason (failed.parquet, the report) kept an exception raised while handling another, not one
    it was raised from (``raise … from exc``): the last line alone, the cause lost. It keeps it, first — unless the
    last line already says it — also from the traceback text that Tune's retry re-raises (``RaisedBefore``)."""
    import traceback

    from repeval.tuning.group import _reason, exception_reason
    from repeval.tuning.notes import RaisedBefore

    labels = tmp_path / "labels.json"

    def read(say_it: bool) -> None:
        try:
            labels.read_text()
        except FileNotFoundError as exc:
            raise ValueError(f"cannot read the label map{f': {exc}' if say_it else ''}") from exc

    with pytest.raises(ValueError) as err:
        read(say_it=False)
    reason = f"FileNotFoundError: [Errno 2] No such file or directory: '{labels}'; which caused: ValueError: cannot " \
             "read the label map"  # fmt: skip
    assert exception_reason(err.value) == reason
    assert _reason(RaisedBefore("".join(traceback.format_exception(err.value)))) == reason
    with pytest.raises(ValueError) as said:
        read(say_it=True)
    assert exception_reason(said.value) == f"ValueError: cannot read the label map: {said.value.__cause__}"


@pytest.mark.filterwarnings("ignore:`get_storage` is meant to only be called")
def test_memory_io_and_rays_own_errors_are_retried_like_a_dying_worker():
    """What a retry may get past (memory, the storage for a moment, a lost node's objects) is not noted, so Tune runs
    the trial again; the unit's own errors are. Outside a Tune trial nothing is noted and errors pass through."""
    from ray.exceptions import RaySystemError

    from repeval.tuning.notes import _retried, raised_once

    assert _retried(MemoryError()) and _retried(ConnectionResetError()) and _retried(RaySystemError("node lost"))
    assert not any(_retried(e) for e in (ValueError("bad"), RuntimeError("nan"), KeyError("x"), AssertionError()))
    with pytest.raises(ValueError, match="bad"), raised_once():
        raise ValueError("bad")


def test_a_granted_gpu_that_torch_cannot_use_warns_once_and_trains_on_the_cpu(caplog):
    """Tune hands a trial its GPU grant as ``use_gpu`` in its configuration (``run_groups``' param space); a worker
    whose torch has no CUDA (here: the CPU build) silently trained on the CPU while the GPU stayed reserved. It still
    trains on the CPU, and says so once per process, naming the fix."""
    import torch

    from repeval.tuning import trial

    assert not torch.cuda.is_available()  # this machine: a granted GPU torch cannot use
    reset_warned()  # this process may have warned already
    with caplog.at_level("WARNING", logger="repeval.tuning.trial"):
        assert trial._device({"unit": 0, "use_gpu": False}) == "cpu"
        assert not caplog.records  # no GPU asked for: nothing to say
        assert [trial._device({"unit": u, "use_gpu": True}) for u in (0, 1)] == ["cpu", "cpu"]
    (record,) = caplog.records  # once per process, not once per trial
    msg = record.getMessage()
    assert "was granted a GPU" in msg and "CPU-only build" in msg and "train on the CPU" in msg
    assert "install a CUDA build of torch on the GPU nodes" in msg and "run.resources.trial_num_gpus: 0" in msg


def test_a_note_of_a_raised_trial_written_part_way_is_not_left_for_the_retry(tmp_path, monkeypatch, caplog):
    """A trial that raised notes its traceback (raised.txt) so that Tune's retry re-raises it instead of training
    again. A write that failed part-way (a full disk; here a file-size limit, a real partial write) left the
    truncated note in place, although the warning said Tune would run the trial again: the retry re-raised the
    truncated text, so the trial failed with a garbled reason in place of its own. The note is written under a
    temporary name and moved into place: a failed write leaves none, the error raised is the trial's, and the retry
    trains."""
    import resource

    import pyarrow.fs as pafs

    from repeval.tuning import notes

    note = tmp_path / "trial" / "raised.txt"
    # where the note goes: the trial's directory in the experiment's storage, as Ray's Tune context would say
    monkeypatch.setattr(notes, "_raised_note", lambda: (pafs.LocalFileSystem(), str(note)))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        with pytest.raises(ValueError, match="p2 cannot train"), notes.raised_once():
            resource.setrlimit(resource.RLIMIT_FSIZE, (64, hard))  # the note's write stops after 64 bytes
            raise ValueError("p2 cannot train: injected bug")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert "could not note that the trial raised" in caplog.text
    assert not [p.name for p in note.parent.iterdir()]  # no note, whole or partial
    ran = []
    with notes.raised_once():  # Tune's retry: it trains
        ran.append(True)
    assert ran


def test_a_trials_warnings_are_said_on_the_driver_once_with_how_many_probes_had_them(ray_session, tmp_path, caplog):
    """What repeval warns in a probe trial's process reached only that process's log, which the user does not see
    (Ray's worker output is off unless REPEVAL_WORKER_LOGS=1). Here label c5 has no positive test track (a
    ``MetricWarning`` about a degenerate test set) and four labels one each, so roc_auc_macro's bootstrap interval
    rests on the ~15% of resamples that drew all four (a warning logged once per process). Both seeds of probe lin
    train and test in one trial, on an actor that may have said either before; the driver says each once — logged,
    or warned in its category — naming the group and how many probes/seeds had it. Probe pick (``select: best``) is
    tested in the driver, which says its warnings as it goes, and not again. Each names the test sets it is about:
    clean and the deformed D1, which hold the same labels, give them word for word — said once for both."""
    import warnings

    import numpy as np

    from repeval.metrics import MetricWarning

    data = gaussian_probe_data("multilabel_classification", n=90, d=6, c=6)
    _, y, ids = data.tests["clean"]
    y = np.zeros_like(y)
    y[:4, :4] = np.eye(4)
    y[::2, 4] = 1  # c5: no positive
    data.tests = {sid: (xs, y, ids) for sid, (xs, _, _) in data.tests.items()}
    pick = {"name": "pick", "epochs": 2, "search": {"grid": {"learning_rate": [1e-3, 3e-3]}}}  # select: best
    cfg = config([{"name": "lin", "epochs": 2}, pick], seeds=2, metrics=("roc_auc_macro",),
                 task_type="multilabel_classification")  # fmt: skip
    reset_warned()  # this process may have warned already
    with caplog.at_level("WARNING", logger="repeval"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # as a user's: a warning's text once per line of code
        g = run_group(cfg, cfg.experiments[0], "notes", "m", data, str(tmp_path / "tune"))
    assert {(r["probe"], r["seed"]) for r in g.rows} == {(p, s) for p in ("lin", "pick") for s in (0, 1)}
    lin = "inst__notes__m, 2 of 6 probes/seeds (lin (seeds 0, 1)): "  # tested in the trial; pick's 4 trained there
    both = "test sets clean, D1: "  # the same labels: the same warnings, said once for both
    said = [r for r in caplog.records if "resamples" in r.getMessage()]
    assert len(said) == 2, [r.getMessage() for r in said]
    for r, prefix in zip(said, (lin, ""), strict=True):  # the trial's, said again; then the driver's, of pick
        assert r.getMessage().startswith(f"{prefix}{both}roc_auc_macro: its bootstrap interval rests on ")
    assert {(r.name, r.levelname) for r in said} == {("repeval.metrics.compute", "WARNING")}
    none = [w for w in caught if "no positive test example" in str(w.message)]
    assert len(none) == 2, [str(w.message) for w in none]
    for w, prefix in zip(none, (lin, ""), strict=True):
        assert str(w.message).startswith(f"{prefix}{both}1 of 6 labels have no positive test example (c5): ")
    assert {w.category for w in none} == {MetricWarning}
