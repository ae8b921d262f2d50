"""Probe grids interrupted (killed, Ctrl-C, a dead worker, a full disk) and run again: what they resume and reuse."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from grid_cases import (
    REPO,
    marker_wrapper,
    pickle_this_module_by_value,  # noqa: F401 (autouse)
    resume_config,
    resume_data,
)

from repeval.tuning.grid import run_group

RESUME_SCRIPT = """
import os, sys, time
from pathlib import Path
import ray
from ray import cloudpickle
sys.path.insert(0, {tests!r})
import grid_cases as tg
from repeval.tuning.grid import run_group
cloudpickle.register_pickle_by_value(tg)
ray.init(address={address!r}, log_to_driver=False)  # a second driver on the session's Ray
# Tune snapshots its experiment state as it starts, every 10 s and at the end: snapshot often, so the state the test
# waits for (trials recorded as finished) is on disk as soon as it holds, not up to 10 s later
os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = "0.2"
data = tg.resume_data()
cfg = tg.resume_config(hidden={hidden!r})
wrap = tg.marker_wrapper({marks!r}, hang_before={{"p2"}}, hang_after={{"p3"}})
run_group(cfg, cfg.experiments[0], "notes", "m", data, {storage!r}, wrap_trainable=wrap)
"""


def finished_in_snapshot(storage: Path) -> int:
    """Trials recorded as finished in the newest experiment-state snapshot Tune wrote."""
    files = sorted(storage.glob("*/experiment_state-*.json"))
    if not files:
        return 0
    try:
        state = json.loads(files[-1].read_text())
    except (json.JSONDecodeError, OSError):  # being written
        return 0
    return sum('"status": "TERMINATED"' in entry[0] for entry in state["trial_data"])


def test_interrupted_experiment_resumes(ray_session, tmp_path):
    """Kill a run with two trials recorded as finished, one that reported its checkpoint but had not returned
    (so Tune's state still says running) and one mid-training: the rerun restores the experiment, reuses the
    reported checkpoint and trains only the unit that never finished."""
    marks = tmp_path / "marks"
    marks.mkdir()
    storage = tmp_path / "tune"
    script = tmp_path / "run.py"
    address = ray_session.get_runtime_context().gcs_address
    script.write_text(
        RESUME_SCRIPT.format(tests=str(Path(__file__).parent), storage=str(storage), marks=str(marks), address=address,
                             hidden=(2, 3, 4, 5))
    )  # fmt: skip
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, start_new_session=True, cwd=tmp_path)

    def ran() -> list[str]:
        return sorted(p.name.split("-")[1] for p in marks.glob("ran-*"))

    try:
        deadline = time.time() + 300
        while (
            time.time() < deadline
            and proc.poll() is None
            and not (len(ran()) == 4 and (marks / "reported-p3").exists() and finished_in_snapshot(storage) == 2)
        ):
            time.sleep(0.1)  # Tune snapshots its experiment state after checkpoints and every 0.2 s (RESUME_SCRIPT)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert ran() == ["p2", "p3", "p4", "p5"] and (marks / "reported-p3").exists()
        assert finished_in_snapshot(storage) == 2  # p4 and p5; p3 reported but is still running
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # our own subprocess; Ray ends the dead driver's trial actors
        proc.wait()
    for p in marks.iterdir():
        p.unlink()
    cfg = resume_config()
    g = run_group(
        cfg,
        cfg.experiments[0],
        "notes",
        "m",
        resume_data(),
        str(storage),
        wrap_trainable=marker_wrapper(str(marks)),
    )
    assert ran() == ["p2"]  # only the unit that never finished trained again
    # p4 and p5 restored as Tune recorded them, p3's persisted checkpoint reported instead: none trained again
    assert g.reused_trials == 3
    # p3 restored from the checkpoint Tune recorded reports its results, not that checkpoint again (a second copy)
    assert sorted(p.name for p in storage.glob("*/*/checkpoint_*")) == ["checkpoint_000000"] * 4
    assert {r["probe"] for r in g.rows} == {"p2", "p3", "p4", "p5"} and not g.failed
    assert {p["probe"]: p["status"] for p in g.probes} == {"p2": "ok", "p3": "ok", "p4": "ok", "p5": "ok"}
    # p3's actor restored it from its checkpoint without Tune's "Restored on <node> from checkpoint: Checkpoint(…)",
    # which a job's log showed once per restored trial (the driver's "resuming Tune experiment" says it once)
    logs = Path(ray_session._private.worker._global_node.get_session_dir_path()) / "logs"
    said = [
        line
        for f in logs.glob("worker-*")
        for line in f.read_text(errors="replace").splitlines()
        if "Restored on" in line and str(storage) in line
    ]
    assert not said, said
    from repeval.tuning.tune_setup import RestoredLines

    kept = logging.LogRecord("ray.tune.trainable.trainable", logging.WARNING, "", 0, "Restored on x: failed", (), None)
    assert RestoredLines().filter(kept)  # the logger's warnings and errors pass


def test_ctrl_c_during_training_raises_and_the_rerun_resumes(ray_session, tmp_path):
    """Ctrl-C (SIGINT) while trials run: Tune stopped them and returned normally — the grid was collected with the
    units that happened to finish and committed as done. Now Tune's handler is off: KeyboardInterrupt reaches the
    caller (nothing returned), and the rerun restores the experiment and trains what did not finish. Two probes are
    enough: p2 hangs before training, p4 finishes."""
    marks = tmp_path / "marks"
    marks.mkdir()
    storage = tmp_path / "tune"
    script = tmp_path / "run.py"
    address = ray_session.get_runtime_context().gcs_address
    text = RESUME_SCRIPT.format(tests=str(Path(__file__).parent), storage=str(storage), marks=str(marks),
                                address=address, hidden=(2, 4))  # fmt: skip
    script.write_text(text + 'print("RETURNED", flush=True)\n')
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, start_new_session=True, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.time() + 300
        while (
            time.time() < deadline
            and proc.poll() is None
            and not (any(marks.glob("ran-p2-*")) and finished_in_snapshot(storage) >= 1)
        ):
            time.sleep(0.1)  # p2 hangs before training; another unit has finished
        assert proc.poll() is None, "the run ended before it could be interrupted"
        os.kill(proc.pid, signal.SIGINT)  # Ctrl-C in the driver's terminal
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "RETURNED" not in out and proc.returncode != 0, (out, err[-2000:])
    assert "KeyboardInterrupt" in err and "Stop signal received" not in err, err[-2000:]
    for p in marks.iterdir():
        p.unlink()
    cfg = resume_config(hidden=(2, 4))
    g = run_group(cfg, cfg.experiments[0], "notes", "m", resume_data(), str(storage),
                  wrap_trainable=marker_wrapper(str(marks)))  # fmt: skip
    assert {r["probe"] for r in g.rows} == {"p2", "p4"} and not g.failed
    assert "p2" in {p.name.split("-")[1] for p in marks.glob("ran-*")}  # the unit stopped mid-way trained now


def kill_once_wrapper(marks: str):
    """The first trial that trains 'p2' writes its process id and waits; the test kills that process."""

    def wrap(fn):
        def wrapped(config, data=None, units=None):
            if "p2" in {m.name for m in units[config["unit"]].members} and not Path(marks, "killed").exists():
                Path(marks, f"pid-{os.getpid()}").touch()
                time.sleep(600)
            return fn(config, data=data, units=units)

        return wrapped

    return wrap


def test_a_trial_whose_worker_died_is_trained_again(ray_session, tmp_path):
    """A trial actor killed mid-trial (kill -9, the OOM killer): Tune starts the trial again and the group has every
    probe — before, the probe was recorded as failed ("The actor is dead") and its group committed without it."""
    import threading

    marks = tmp_path / "marks"
    marks.mkdir()

    def killer() -> None:
        deadline = time.time() + 300
        while time.time() < deadline and not any(marks.glob("pid-*")):
            time.sleep(0.2)
        for f in marks.glob("pid-*"):
            (marks / "killed").touch()
            os.kill(int(f.name.split("-")[1]), signal.SIGKILL)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    cfg = resume_config(hidden=(2, 3))  # p2's worker is killed, p3 trains beside it
    g = run_group(cfg, cfg.experiments[0], "notes", "m", resume_data(), str(tmp_path / "tune"),
                  wrap_trainable=kill_once_wrapper(str(marks)))  # fmt: skip
    t.join(timeout=5)
    assert (marks / "killed").exists()
    assert not g.failed, g.failed
    assert {r["probe"] for r in g.rows} == {"p2", "p3"}


def marked_run(cfg, marks: Path, storage: Path):
    """``run_group`` of ``cfg`` on the resume data into Tune ``storage``, each trial that trains marked in ``marks``:
    the group and the probes trained (not reused)."""
    for p in marks.iterdir():
        p.unlink()
    g = run_group(
        cfg, cfg.experiments[0], "notes", "m", resume_data(), str(storage), wrap_trainable=marker_wrapper(str(marks))
    )
    return g, sorted(p.name.split("-")[1] for p in marks.glob("ran-*"))


@pytest.fixture(scope="module")
def resume_run_done(ray_session, tmp_path_factory):
    """One finished ``resume_config()`` run (probes p2 … p5, a trial each) that the tests of a rerun over the same
    experiment start from, each on a copy of its Tune storage (``finished_resume_run``): the group, the probes it
    trained and that storage."""
    root = tmp_path_factory.mktemp("resume_run_done")
    (root / "marks").mkdir()
    g, trained = marked_run(resume_config(), root / "marks", root / "tune")
    return g, trained, root / "tune"


def finished_resume_run(done, tmp_path: Path):
    """A copy of ``resume_run_done``'s Tune storage as ``tmp_path``/tune, as if this test had run it there: the
    group, the probes it trained, the storage and an empty ``tmp_path``/marks."""
    import shutil

    g, trained, template = done
    storage = tmp_path / "tune"
    shutil.copytree(template, storage)
    (tmp_path / "marks").mkdir()
    return g, trained, storage, tmp_path / "marks"


def test_finished_trials_are_reused_when_the_experiment_state_was_lost(resume_run_done, tmp_path, monkeypatch):
    """A driver killed before Tune first wrote its experiment state leaves trial checkpoints but nothing to
    restore: the rerun moves the experiment aside and reuses every whole checkpoint of the same plan (results
    identical to the first run's), also when reruns are killed in turn; a checkpoint cut short is trained
    again, and another plan's never reused. The copies moved aside are kept while they hold a finished trial, and
    deleted once the experiment holds them all."""
    import repeval.tuning.tuner

    first, trained, storage, marks = finished_resume_run(resume_run_done, tmp_path)
    cfg = resume_config()

    def run(c=cfg):
        return marked_run(c, marks, storage)

    assert trained == ["p2", "p3", "p4", "p5"] and first.reused_trials == 0
    (exp,) = [d for d in storage.iterdir() if d.is_dir()]
    states = list(exp.glob("experiment_state-*.json"))
    assert states
    for f in states:
        f.unlink()
    probes = sorted(exp.glob("*/checkpoint_*/probes.pt"))
    assert len(probes) == 4
    cut = probes[0]
    cut.write_bytes(cut.read_bytes()[:-1])  # one checkpoint cut short by the kill

    def copies() -> list[Path]:
        return [d for d in storage.glob(f"{exp.name}.incomplete-*") if d.is_dir()]

    def killed_as_tune_starts(tuner, path):
        raise KeyboardInterrupt

    # reruns killed twice as Tune starts (the experiment moved aside, no trial run yet): the second finds the first's
    # new experiment (nothing in it) and moves it aside too; the copy that holds the finished trials stays
    for _ in range(2):
        with monkeypatch.context() as m:
            m.setattr(repeval.tuning.tuner, "_fit_grid", killed_as_tune_starts)
            with pytest.raises(KeyboardInterrupt):
                run()
    assert len(copies()) == 2 and not list(marks.iterdir())

    second, trained = run()
    assert len(trained) == 1 and second.reused_trials == 3

    def values(g):
        return sorted((r["probe"], r["scenario"], r["metric"], r["label"] or "", r["value"]) for r in g.rows)

    assert values(second) == values(first)  # reused or retrained, the same results
    assert sorted(map(repr, second.history)) == sorted(map(repr, first.history))
    assert not copies()  # the experiment holds every finished trial now: no rerun needs them

    # another plan (more epochs; two of the probes): a new fingerprint, so nothing of the old experiment is reused
    _, trained = run(resume_config(epochs=4, hidden=(2, 3)))
    assert trained == ["p2", "p3"]


def test_an_experiment_whose_trial_file_a_full_disk_cut_is_run_again_reusing_its_trials(
    resume_run_done, tmp_path, monkeypatch, caplog
):
    """A disk that filled during training left a trial's error.pkl empty; Ray Tune's ResultGrid unpickles it in
    ``fit()`` and raised EOFError, which the CLI printed as a bare "Aborted." — and every rerun restored the same
    experiment and stopped on it again, after space was freed. Now the error names the file's experiment and the fix,
    and a rerun moves the experiment aside and runs it again, reusing every finished trial."""
    from ray import tune

    from repeval.tuning.tuner import TrialFilesCut

    first, trained, storage, marks = finished_resume_run(resume_run_done, tmp_path)
    cfg = resume_config()

    def run():
        return marked_run(cfg, marks, storage)

    assert len(trained) == 4

    def cut_error_file(self):
        raise EOFError("Ran out of input")  # pickle's words for an empty error.pkl

    caplog.set_level("WARNING", logger="repeval.tuning.grid")
    with monkeypatch.context() as m:
        m.setattr(tune.Tuner, "fit", cut_error_file)
        with pytest.raises(
            TrialFilesCut, match=r"a file cut short — when the disk of run.runs_dir is full .*free space"
        ):
            run()  # the restore stops on it (moved aside), then the fresh experiment too: said with the fix
    assert "holds a trial file cut short (EOFError: Ran out of input); running it again" in caplog.text
    second, trained = run()  # space freed
    assert trained == [] and second.reused_trials == 4
    assert sorted(map(repr, second.rows)) == sorted(map(repr, first.rows))
