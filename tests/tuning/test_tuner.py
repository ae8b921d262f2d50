"""Which earlier Tune experiments a grid resumes or reuses trials from (:mod:`repeval.tuning.tuner`): never one trained
on other data, and the copies moved aside kept only while a rerun needs them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import grid_cases
import pytest
from grid_cases import marker_wrapper, resume_config, resume_data

from repeval.probes.synthetic import gaussian_probe_data
from repeval.tuning.grid import run_group


@pytest.fixture(scope="module", autouse=True)
def pickle_by_value():
    from ray import cloudpickle

    for module in (grid_cases, sys.modules[__name__]):  # Ray workers cannot import test modules
        cloudpickle.register_pickle_by_value(module)
    yield
    for module in (grid_cases, sys.modules[__name__]):
        cloudpickle.unregister_pickle_by_value(module)


def values(g) -> list[tuple]:
    return sorted((r["probe"], r["scenario"], r["metric"], r["label"] or "", r["value"]) for r in g.rows)


def test_a_rerun_on_other_data_of_the_same_shapes_reuses_nothing_trained_on_the_old(ray_session, tmp_path, caplog):
    """An experiment's fingerprint covered the embeddings' shapes, not their values: a grid interrupted, then run on
    partitions embedded anew (another model version, fixed audio: as many tracks, the same dimension) reused the
    finished trials of the old embeddings, and a grid trained again because its inputs changed restored its whole old
    experiment — the old results committed as the new ones. The marker records what the data holds: neither is
    reused, and the old data's results come back when it does."""
    marks = tmp_path / "marks"
    marks.mkdir()
    storage = tmp_path / "tune"
    cfg = resume_config(hidden=(2,))  # one trial per run
    old, new = resume_data(), gaussian_probe_data(n=90, d=8, c=3, scenarios=False, seed=1)
    assert old.x_train.shape == new.x_train.shape and old.x_val.shape == new.x_val.shape

    def run(data):
        for p in marks.iterdir():
            p.unlink()
        g = run_group(
            cfg, cfg.experiments[0], "notes", "m", data, str(storage), wrap_trainable=marker_wrapper(str(marks))
        )
        return g, sorted(p.name.split("-")[1] for p in marks.glob("ran-*"))

    first, trained = run(old)
    assert trained == ["p2"] and not first.failed
    (exp,) = [d for d in storage.iterdir() if d.is_dir()]
    for f in exp.glob("experiment_state-*.json"):  # interrupted before Tune wrote its state: its checkpoints remain
        f.unlink()
    assert len(list(exp.glob("*/checkpoint_*/summary.json"))) == 1

    with caplog.at_level("WARNING", logger="repeval.tuning.grid"):
        second, trained = run(new)
    assert trained == ["p2"] and second.reused_trials == 0  # nothing of the old embeddings' trials
    assert values(second) != values(first)
    assert "was trained on other data" in caplog.text
    assert not list(storage.glob("*.incomplete-*"))  # moved aside as stale: never reused

    third, trained = run(old)  # the new data's finished experiment, rerun on the old: not restored
    assert trained == ["p2"] and third.reused_trials == 0
    assert values(third) == values(first)


def test_an_experiment_from_before_markers_recorded_the_data_is_resumed_on_its_fingerprint(
    ray_session, tmp_path, caplog
):
    """A marker written before markers recorded the data says nothing of it: its experiment is resumed on its
    fingerprint, as it was then (an interrupted run is not trained again for the upgrade), and its marker records
    the data from there on — so other data is not resumed after. Unless a store partition its trials read was
    embedded anew after the marker was written (a row part file of a later time): then its trials are of the old
    embeddings, and trained again."""
    from grid_cases import reporting_trainable
    from ray import tune

    from repeval.tuning.tuner import _fit

    tune_dir = tmp_path / "tune"
    marker = tune_dir / "exp.repeval.json"
    asked: list[int] = []

    def fit(data: str, written_ns: int | None = None, fingerprint: str = "fp"):
        def written() -> int | None:  # the store partitions' latest row part file, as the train stage lists it
            asked.append(1)
            return written_ns

        space = {"unit": tune.grid_search([0])}
        storage = str(tune_dir)
        return _fit(
            "exp",
            lambda _f: reporting_trainable,
            space,
            tune.TuneConfig(),
            storage,
            fingerprint,
            1,
            None,
            data,
            written,
        )

    assert not fit("a")[1]
    assert json.loads(marker.read_text()) == {"fingerprint": "fp", "data": "a"}
    marker.write_text(json.dumps({"fingerprint": "fp"}))  # as an earlier repeval wrote it, after the partitions' rows
    assert fit("b", written_ns=marker.stat().st_mtime_ns - 10**9)[1]
    assert json.loads(marker.read_text()) == {"fingerprint": "fp", "data": "b"}
    assert len(asked) == 1  # asked once, of the marker without data alone
    assert not fit("c")[1]
    assert [d.name.split(".")[1].split("-")[0] for d in tune_dir.glob("exp.*-*") if d.is_dir()] == ["stale"]
    assert len(asked) == 1

    # an earlier repeval's marker, and a partition its trials read embedded anew two minutes after it (a row part file
    # of that time): the trials are of the old embeddings — not restored, trained again, the warning says why
    marker.write_text(json.dumps({"fingerprint": "fp"}))
    two_minutes_ns = 120 * 10**9
    caplog.clear()
    with caplog.at_level("WARNING", logger="repeval.tuning.grid"):
        assert not fit("c", written_ns=marker.stat().st_mtime_ns + two_minutes_ns)[1]
    (said,) = [r.getMessage() for r in caplog.records if "Tune experiment" in r.getMessage()]
    assert "was started by an earlier repeval (its marker does not record the data) before a store partition" in said
    assert json.loads(marker.read_text()) == {"fingerprint": "fp", "data": "c"}
    # another plan: it said "planned for another configuration" also of a grid whose configuration was the same and
    # only a split's number of tracks changed (a track added, or an error record's track computed again)
    caplog.clear()
    with caplog.at_level("WARNING", logger="repeval.tuning.grid"):
        assert not fit("c", fingerprint="fp2")[1]
    (said,) = [r.getMessage() for r in caplog.records if "Tune experiment" in r.getMessage()]
    assert "was planned for another grid (other probe settings, scenarios or numbers of tracks per split)" in said


def whole_checkpoint(exp: Path, key: str) -> None:
    """A trial's whole checkpoint (its summary, and the file it lists at its size) for trial key ``key``."""
    ck = exp / f"trial_{key}" / "checkpoint_000000"
    ck.mkdir(parents=True)
    (ck / "probes.pt").write_bytes(b"weights")
    (ck / "summary.json").write_text(json.dumps({"key": key, "metrics": {}, "files": {"probes.pt": 7}}))


def test_incomplete_copies_are_kept_while_a_rerun_needs_them(tmp_path, caplog):
    """``<grid>.incomplete-<time>`` copies piled up across reruns. A copy of the plan is there for its finished trials:
    it is deleted once a newer experiment of the plan holds each of them whole, kept while it holds one that none
    does. Of the copies a rerun cannot reuse (another plan's or data's, no marker) the newest stays. Nothing a rerun
    would reuse is lost; other grids' copies and stale copies are left alone."""
    from repeval.rundir import TuneStorage
    from repeval.tuning.tuner import _plan_checkpoints, _prune_incomplete, _reusable

    tune_dir = tmp_path / "tune"
    st = TuneStorage(str(tune_dir))
    plan = {"fingerprint": "fp", "data": "d"}

    def experiment(name: str, keys: list[str], marker: dict | None) -> str:
        (tune_dir / name).mkdir(parents=True)
        for key in keys:
            whole_checkpoint(tune_dir / name, key)
        if marker is not None:
            (tune_dir / f"{name}.repeval.json").write_text(json.dumps(marker))
        return name

    experiment("exp", ["u0", "u1"], plan)  # the experiment itself, after a fit
    copies = {
        "superseded": experiment("exp.incomplete-20260101-000001", ["u0"], plan),
        "needed": experiment("exp.incomplete-20260101-000002", ["u2", "u0"], plan),  # u2: no newer one holds it
        "older marker": experiment("exp.incomplete-20260101-000003", ["u1"], {"fingerprint": "fp"}),  # superseded
        "empty": experiment("exp.incomplete-20260101-000004", [], plan),
        "unmarked": experiment("exp.incomplete-20260101-000005", ["u3"], None),
        "other data": experiment("exp.incomplete-20260101-000006", ["u0"], {"fingerprint": "fp", "data": "e"}),
        "other plan": experiment("exp.incomplete-20260101-000007", ["u9"], {"fingerprint": "fp2"}),
    }
    untouched = [experiment("other.incomplete-20260101-000001", ["u0"], plan), experiment("exp.stale-1", [], None)]
    reusable = _reusable(st, "exp", "fp", "d", current=True, say=False)
    assert sorted(reusable) == ["u0", "u1", "u2"]

    with caplog.at_level("INFO", logger="repeval.tuning.grid"):
        _prune_incomplete(st, "exp", "fp", "d")
    left = sorted(n for n in st.names() if (tune_dir / n).is_dir())
    assert left == sorted(["exp", copies["needed"], copies["other plan"], *untouched]), left
    assert sorted(n for n in st.names() if n.endswith(".repeval.json")) == sorted(
        f"{n}.repeval.json" for n in ["exp", copies["needed"], copies["other plan"], untouched[0]]
    )  # the deleted copies' markers went with them
    assert _reusable(st, "exp", "fp", "d", current=True, say=False) == reusable  # nothing a rerun reuses is lost
    assert "deleted 5 copies of Tune experiment" in caplog.text  # not "5 copy(ies)"
    caplog.clear()
    with caplog.at_level("INFO", logger="repeval.tuning.grid"):
        _reusable(st, "exp", "fp", "d", current=True)
    assert f"{tune_dir}/exp holds 2 whole trial checkpoints; a trial that must run again" in caplog.text, caplog.text

    # before a fit, the experiment moved aside as a new (here: empty) copy: it is kept, and the older copies stay while
    # they hold a trial it does not
    (tune_dir / "exp").rename(tune_dir / "exp.incomplete-20260101-000008")
    (tune_dir / "exp.repeval.json").rename(tune_dir / "exp.incomplete-20260101-000008.repeval.json")
    made = experiment("exp.incomplete-20260101-000009", [], plan)
    _prune_incomplete(st, "exp", "fp", "d", found=_plan_checkpoints(st, "exp", "fp", "d"), keep=made)
    assert sorted(n for n in st.names() if n.startswith("exp.incomplete-") and (tune_dir / n).is_dir()) == sorted(
        [made, "exp.incomplete-20260101-000008", copies["needed"], copies["other plan"]]
    )
    assert _reusable(st, "exp", "fp", "d", say=False) == {
        k: v.replace("/exp/", "/exp.incomplete-20260101-000008/") for k, v in reusable.items() if k != "u2"
    } | {"u2": reusable["u2"]}


def test_tune_saves_its_state_on_its_period_and_a_snapshot_older_than_finished_trials_resumes(
    ray_session, tmp_path, monkeypatch, caplog
):
    """``CheckpointConfig(num_to_keep=1)`` made Tune save and sync its experiment state after every trial checkpoint
    (a save in the driver per trial, while the others train), though a trial reports one checkpoint. Now the state is
    saved as it starts, on Tune's period and at the end — so a driver killed mid-run leaves a snapshot older than the
    trials it finished. The rerun restores that snapshot (not moved aside) and reports those trials' checkpoints
    instead of training them: the first run's results."""
    import shutil

    from ray.tune.execution.tune_controller import TuneController

    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "600")  # no save on Tune's timer: only those it must make
    marks, storage, snaps = tmp_path / "marks", tmp_path / "tune", tmp_path / "snaps"
    marks.mkdir()
    recorded: list[int] = []  # per save of the state: trials it records a checkpoint of
    save = TuneController.save_to_dir

    def save_and_copy(self):  # the state as a driver killed after this save would leave it
        save(self)
        recorded.append(sum(t.checkpoint is not None for t in self.get_trials()))
        staged = Path(self._storage.experiment_driver_staging_path)
        to = snaps / str(len(recorded))
        to.mkdir(parents=True)
        for f in staged.iterdir():
            if f.is_file():
                shutil.copy2(f, to / f.name)

    cfg = resume_config()  # probes p2 … p5, a trial each, two at a time
    with monkeypatch.context() as m:
        m.setattr(TuneController, "save_to_dir", save_and_copy)
        first = run_group(cfg, cfg.experiments[0], "notes", "m", resume_data(), str(storage),
                          wrap_trainable=marker_wrapper(str(marks)))  # fmt: skip
    assert len(list(marks.glob("ran-*"))) == 4 and not first.failed
    assert recorded == [0, 4]  # as Tune started and at the end: none after each trial's checkpoint
    (exp,) = [d for d in storage.iterdir() if d.is_dir()]
    assert len(list(exp.glob("*/checkpoint_*/summary.json"))) == 4
    saved = list((snaps / "1").iterdir())
    assert saved and all((exp / f.name).is_file() for f in saved)  # the files Tune restores from, replaced
    for f in saved:  # the driver killed after the last trial's checkpoint: the first save is on disk
        shutil.copy2(f, exp / f.name)
    for p in marks.iterdir():
        p.unlink()
    with caplog.at_level("INFO", logger="repeval.tuning.grid"):
        again = run_group(cfg, cfg.experiments[0], "notes", "m", resume_data(), str(storage),
                          wrap_trainable=marker_wrapper(str(marks)))  # fmt: skip
    assert "resuming Tune experiment" in caplog.text and "running it again" not in caplog.text, caplog.text
    assert not list(storage.glob("*.incomplete-*"))  # restored whole, not moved aside
    assert not list(marks.glob("ran-*")) and again.reused_trials == 4  # nothing trained again
    assert values(again) == values(first)


#: a fit's driver as :func:`repeval.tuning.tuner._fit_grid` starts it: tensorboardX imported for Tune's TensorBoard logger,
#: while another thread imports google-cloud-storage (as tensorboardX's record writer reaches its next import); then an
#: ``s3://`` SummaryWriter of the same process writing to a moto bucket (copied to ``argv[1]``/s3) and a local one to
#: ``argv[1]``/local. Prints what the other thread got, the boto3 modules the import loaded, and the record writer's switches
TBX_SCRIPT = r"""
import importlib, importlib.machinery, json, os, re, sys, threading
from pathlib import Path
from repeval.tuning.tune_setup import import_tensorboardx_locally

beside = {}

def import_gcs():
    try:
        beside["gcs"] = importlib.import_module("google.cloud.storage").__name__
    except ImportError as e:
        beside["gcs"] = repr(e)

class Beside:  # the other thread, run as the record writer's next import runs (no global import lock held then)
    def find_spec(self, name, path=None, target=None):
        if name != "tensorboardX.crc32c":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        exec_module = spec.loader.exec_module

        def exec_beside(module):
            thread = threading.Thread(target=import_gcs)
            thread.start()
            thread.join()
            exec_module(module)

        spec.loader.exec_module = exec_beside
        return spec

sys.meta_path.insert(0, Beside())
import_tensorboardx_locally()
boto3_loaded = sorted(m for m in sys.modules if m.split(".")[0] == "boto3")
from tensorboardX import SummaryWriter, record_writer
import pyarrow.fs as pafs
from repeval.testing.s3 import moto_s3

out = Path(sys.argv[1])
with moto_s3() as s3:
    os.environ["S3_ENDPOINT"] = "http://" + re.search(r"endpoint_override=([^&]+)", s3["query"]).group(1)
    for logdir in ("s3://repeval/tb", out / "local"):
        with SummaryWriter(str(logdir)) as writer:
            writer.add_scalar("ray/tune/val_accuracy", 0.5, global_step=3)
    (info,) = s3["fs"].get_file_info(pafs.FileSelector("repeval/tb"))
    (out / "s3").mkdir()
    (out / "s3" / info.base_name).write_bytes(s3["fs"].open_input_file(info.path).read())
print(json.dumps([beside["gcs"], boto3_loaded, record_writer.S3_ENABLED, record_writer.GCS_ENABLED]))
"""


def test_tensorboardx_is_imported_without_its_cloud_writers_for_tune(tmp_path):
    """Tune's TensorBoard logger imports tensorboardX in the driver as a fit starts, before it submits a trial actor,
    and tensorboardX's record writer imported boto3 and google-cloud-storage for ``s3://`` and ``gs://`` writers that
    Tune never uses (it writes each trial's events locally): 0.2–0.3 s of the driver's CPU and a full collection of its
    heap. The fit's driver skips those two imports of the record writer's only — another thread importing
    google-cloud-storage meanwhile gets it — and an ``s3://`` SummaryWriter of anything else in the process still
    writes (boto3 imported then); both its events and a local writer's are TensorBoard-readable."""
    import subprocess

    from test_events import read_events, scalars

    out = subprocess.run([sys.executable, "-c", TBX_SCRIPT, str(tmp_path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.splitlines()[-1]) == ["google.cloud.storage", [], True, True]
    for where in ("local", "s3"):
        (events,) = (tmp_path / where).glob("events.out.tfevents*")
        assert scalars(read_events(events)) == [("ray/tune/val_accuracy", 0.5, 3)]


def test_a_trial_restored_from_the_checkpoint_tune_recorded_does_not_write_it_again(
    ray_session, tmp_path, monkeypatch, caplog
):
    """Tune's state saved between a trial's last report and its end (the trial running, its checkpoint recorded), then
    the driver killed: the rerun restores the trial from that checkpoint, and its reuse reported the checkpoint once
    more — a ``checkpoint_000001`` beside ``checkpoint_000000`` (``num_to_keep=1`` deleted the first; without it both
    stayed, the trial's probes twice on disk or in the bucket). The trial reports its results again, not the checkpoint
    Tune holds: one checkpoint per trial, the results and what the grid tested the first run's, and restored again."""
    import shutil

    from ray.tune.execution.tune_controller import TuneController

    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "0")  # a save at each step of Tune's loop: also in that moment
    marks, storage, snap = tmp_path / "marks", tmp_path / "tune", tmp_path / "snap"
    marks.mkdir()
    save = TuneController.save_to_dir

    def save_and_copy(self):  # the last state with a running trial whose checkpoint it records
        save(self)
        if any(t.status == "RUNNING" and t.checkpoint is not None for t in self.get_trials()):
            shutil.rmtree(snap, ignore_errors=True)
            shutil.copytree(self._storage.experiment_driver_staging_path, snap)

    cfg = resume_config(hidden=(2, 3))  # two trials, side by side

    def run():
        for p in marks.iterdir():
            p.unlink()
        return run_group(cfg, cfg.experiments[0], "notes", "m", resume_data(), str(storage),
                         wrap_trainable=marker_wrapper(str(marks)))  # fmt: skip

    with monkeypatch.context() as m:
        m.setattr(TuneController, "save_to_dir", save_and_copy)
        first = run()
    (exp,) = [d for d in storage.iterdir() if d.is_dir()]
    saved = list(snap.glob("*.json"))
    assert saved and all((exp / f.name).is_file() for f in saved)  # the files Tune restores from, replaced
    for f in saved:  # the driver killed after that save
        shutil.copy2(f, exp / f.name)
    with caplog.at_level("INFO", logger="repeval.tuning.grid"):
        again = run()
    assert "resuming Tune experiment" in caplog.text and "running it again" not in caplog.text, caplog.text
    assert not list(marks.glob("ran-*")) and again.reused_trials == 2 and values(again) == values(first)
    assert sorted(p.name for p in exp.glob("*/checkpoint_*")) == ["checkpoint_000000"] * 2
    assert {t["path"] for t in again.tested} == {t["path"] for t in first.tested}
    third = run()  # the finished experiment restored: each trial's results read from the checkpoint Tune holds
    assert not list(marks.glob("ran-*")) and values(third) == values(first)
