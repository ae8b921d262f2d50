"""``repeval plan`` counts as done only what ``repeval run`` would not redo; failures are recorded in the run.

One rendered note set, mfcc-stats and one deformation, a real Ray: a smoke run (fewer tracks) then the plan of
the full configuration in the same run directory and store; a changed model parameter; ``train`` before
anything is embedded; a failed (a store conflict) and then a successful ``repeval run`` as ``repeval runs`` lists
them.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from repeval import runner
from repeval.cli import app
from repeval.config import parse_config
from repeval.plan import make_plan
from repeval.plan_progress import load_notes
from repeval.store import StoreConflict
from repeval.testing.configs import notes_dataset

REPO = Path(__file__).resolve().parents[2]


def _raw(root: Path, manifest: Path, run_id: str = "mixed", **model_params: Any) -> dict[str, Any]:
    model: Any = {"id": "mfcc-stats", "params": model_params} if model_params else "mfcc-stats"
    return {
        "run": {"run_id": run_id, "store": str(root / "store"), "runs_dir": str(root / "runs")},
        "experiments": [
            {
                "task": {"name": "instrument", "type": "multiclass_classification"},
                "datasets": [notes_dataset(manifest)],
                "deformations": [[{"type": "Gain", "params": {"min_gain_db": -6, "max_gain_db": -3, "p": 1}}]],
                "embedding_models": [model],
                "downstream_models": [{"name": "linear", "hidden_units": [], "batch_size": 16, "epochs": 2}],
                "metrics": ["accuracy"],
            }
        ],
    }


@pytest.fixture(scope="module")
def smoke_then_full(ray_session, rendered_notes, tmp_path_factory):
    """Plans of the full configuration: after a smoke run (24 of 48 tracks), after the full embedding stage, after
    its training stage."""
    root = tmp_path_factory.mktemp("planprogress")
    cfg = parse_config(_raw(root, rendered_notes))
    smoke = runner.make_context(runner.smoke_test_config(cfg, max_tracks=24), run_id="mixed")
    runner.stage_embed(smoke)
    runner.stage_train(smoke)
    plans = {"after smoke": make_plan(cfg, smoke.store, smoke.run_dir)}
    ctx = runner.make_context(cfg, run_id="mixed")
    embedded = runner.stage_embed(ctx)
    plans["after embed"] = make_plan(cfg, ctx.store, ctx.run_dir)
    trained = runner.stage_train(ctx)
    plans["after train"] = make_plan(cfg, ctx.store, ctx.run_dir)
    return root, rendered_notes, plans, embedded, trained


def test_plan_after_a_smoke_run_counts_what_the_full_run_redoes(smoke_then_full):
    root, manifest, plans, embedded, trained = smoke_then_full
    smoke = plans["after smoke"]
    assert (smoke.partitions, smoke.trainings) == (2, 1)
    # the smoke run embedded 24 of the 48 tracks and trained on them: the full run embeds and trains again
    assert (smoke.partitions_done, smoke.trainings_done) == (0, 0), smoke.text()
    assert embedded.computed > 0 and trained["trained"] == 1 and trained["skipped"] == 0
    # embedded, not yet trained on these embeddings; then everything done, as the next run would find it
    assert (plans["after embed"].partitions_done, plans["after embed"].trainings_done) == (2, 0)
    assert (plans["after train"].partitions_done, plans["after train"].trainings_done) == (2, 1)
    assert not plans["after train"].conflicts
    # the store rows (track × scenario) the run wants, and those the full run then embedded: said beside the
    # partitions (a catalog's interrupted run read "0 complete" with 3,098 of its 3,596 rows in the store)
    after_embed = plans["after embed"]
    assert (smoke.rows, smoke.rows_to_embed) == (after_embed.rows, embedded.computed)
    assert after_embed.rows == embedded.computed + embedded.skipped and after_embed.rows_to_embed == 0
    assert f"; {embedded.computed:,} of {smoke.rows:,} rows to embed)" in smoke.text(), smoke.text()
    # with no store yet (a catalog sized before its first run) the count was left out: every row is to embed
    first = make_plan(cfg := parse_config(_raw(root, manifest)))
    load_notes(cfg, first)  # what `repeval plan` adds when it finds no store
    assert (first.rows, first.rows_to_embed) == (after_embed.rows, after_embed.rows), first.text()
    assert f"; {first.rows:,} of {first.rows:,} rows to embed)" in first.text(), first.text()


def test_plan_counts_the_trainings_an_interrupted_run_finished_as_the_rerun_reuses_them(
    smoke_then_full, ray_session, monkeypatch
):
    """``plan`` said "0 done" after a run interrupted in its training stage, while the rerun reuses the trials that
    had finished: it counts those now — the whole checkpoints of the grids not done whose experiments were planned
    for the same inputs — and the rerun's summary line reuses as many. A driver stopped before Tune first wrote its
    state (one trial's checkpoint not written yet), then one stopped after every trial but before the grid was
    committed (the rerun restores Tune's experiment). They are counted for the trial slots the rerun plans: this
    machine's, a cluster's (``--address``) or set; and said to be unknown for experiments whose markers an earlier
    repeval wrote without their grids."""
    from repeval.cli.experiment import _train_line

    root, manifest, _, _, _ = smoke_then_full
    # this machine, as plan counts its CPUs: the session Ray's, which the runs here train on (whatever the host has)
    monkeypatch.setattr("repeval.ray_utils.local_cpus", lambda: 2.0)

    def config(epochs: int = 2) -> dict[str, Any]:
        raw = _raw(root, manifest, run_id="interrupted")
        grid = {"grid": {"learning_rate": [1e-3, 1e-2, 3e-2]}}
        probe = {"name": "linear", "hidden_units": [], "batch_size": 16, "epochs": epochs, "search": grid}
        raw["experiments"][0]["downstream_models"] = [probe]
        return raw

    cfg = parse_config(config())
    ctx = runner.make_context(cfg, run_id="interrupted")
    runner.stage_embed(ctx)  # the module's store holds these partitions already
    first = runner.stage_train(ctx)
    done = make_plan(cfg, ctx.store, ctx.run_dir)
    assert (done.trainings, done.trainings_done, done.trainings_reused) == (3, 3, 0), done.text()
    name = "instrument__notes__mfcc-stats"
    exp = ctx.run_dir / "tune" / name
    checkpoints = sorted(exp.glob("*/checkpoint_*"))
    assert first["trained"] == 1 and len(checkpoints) == 2  # two trials (two trial slots) share the three trainings

    def interrupt() -> Any:  # the grid was not committed: its results are not in the run directory
        (ctx.run_dir / "groups" / f"{name}.parquet").unlink()
        plan = make_plan(cfg, ctx.store, ctx.run_dir)
        assert plan.trainings_done == 0
        return plan

    def before_the_rows(path: Path) -> None:  # a file's time an hour before the partitions' newest row part file
        newest = max(ctx.store.partition("notes", "mfcc-stats", s).newest_write_ns() or 0 for s in ("clean", "D1"))
        os.utime(path, ns=(newest - 3600 * 10**9,) * 2)

    for f in exp.glob("experiment_state-*.json"):
        f.unlink()
    shutil.rmtree(checkpoints[0])
    plan = interrupt()
    assert plan.trials_reused == 1 and 0 < plan.trainings_reused < 3, plan.text()
    assert plan.trials_unknown == 0 and "counted for this machine's 2 CPUs (2 trial slots)" in plan.text()
    said = (
        f"; up to {plan.trainings_reused} more finished by an interrupted run, reused in 1 trial, not trained again "
        "while the embeddings hold what they trained on)"
    )
    path = root / "interrupted.yaml"
    path.write_text(yaml.safe_dump(config()))
    # planned for other trial slots than this machine's (a run sent to a cluster of 8 CPUs): not counted, and said
    monkeypatch.setattr("repeval.ray_utils.local_cpus", lambda: 8.0)
    other = make_plan(cfg, ctx.store, ctx.run_dir)
    assert other.trainings_reused == 0, other.text()
    assert (
        f"counted for this machine's 8 CPUs (8 trial slots), as `repeval run` here plans them; "
        f"{plan.trainings_reused} more are in Tune experiments planned for other trial slots"
    ) in other.text()
    assert make_plan(cfg, ctx.store, ctx.run_dir, cluster={"CPU": 2.0}).trainings_reused == plan.trainings_reused
    monkeypatch.setattr("repeval.ray_utils.local_cpus", lambda: 2.0)
    # a marker an earlier repeval wrote, without the grid's groups: how many the rerun reuses is not known — said
    marker = ctx.run_dir / "tune" / f"{name}.repeval.json"
    recorded = marker.read_text()
    marker.write_text(json.dumps({"fingerprint": json.loads(recorded)["fingerprint"]}))
    older = make_plan(cfg, ctx.store, ctx.run_dir)
    assert (older.trainings_reused, older.trials_unknown, older.trainings_unknown) == (0, 1, plan.trainings_reused)
    assert (
        f"probe trainings:    3 (0 done; reuse not known of up to {plan.trainings_reused} more in 1 finished trial "
        "of Tune experiments an earlier repeval wrote" in older.text()
    ), older.text()
    # such a marker older than the partitions' row part files: the rerun moves it aside whatever it plans — not counted
    before_the_rows(marker)
    assert make_plan(cfg, ctx.store, ctx.run_dir).trials_unknown == 0
    marker.write_text(recorded)
    # pointed at the cluster the run goes to: its resources, read by attaching to it (another process, no Ray of its
    # own started)
    gcs = ray_session.get_runtime_context().gcs_address
    cli = subprocess.run(
        [sys.executable, "-m", "repeval.cli", "plan", str(path), "--address", gcs],
        env={**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
        capture_output=True, text=True, timeout=120, check=False, cwd=root,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert f"probe trainings:    3 (0 done{said}\n" in cli.stdout and "  cluster:" in cli.stdout, cli.stdout
    assert "counted for this machine's" not in cli.stdout
    res = CliRunner().invoke(app, ["plan", str(path)])
    assert res.exit_code == 0 and f"probe trainings:    3 (0 done{said}\n" in res.output, res.output
    # not for other inputs: another epoch count is another grid, which the rerun trains whole
    assert make_plan(parse_config(config(epochs=3)), ctx.store, ctx.run_dir).trainings_reused == 0
    rerun = runner.stage_train(ctx)
    assert rerun["reused_trials"] == plan.trials_reused and rerun["trained"] == 1
    assert "; 1 trial finished by an interrupted run reused, not trained again" in _train_line(rerun)

    plan = interrupt()  # every trial finished and Tune recorded them: the rerun restores them all
    assert (plan.trials_reused, plan.trainings_reused) == (2, 3), plan.text()
    rerun = runner.stage_train(ctx)
    assert rerun["reused_trials"] == 2 and rerun["trained"] == 1
    assert make_plan(cfg, ctx.store, ctx.run_dir).trainings_done == 3

    # a marker an earlier repeval wrote without the data (its grid recorded), older than the partitions' row part
    # files: the rerun moves the experiment aside as stale and trains the grid again, reusing none of its trials. The
    # plan counted them all the same ("up to"); it tells the marker by its time as the run does, and the rerun does
    # what it predicted
    plan = interrupt()
    assert (plan.trials_reused, plan.trainings_reused) == (2, 3), plan.text()
    rec = json.loads(marker.read_text())
    del rec["data"]
    marker.write_text(json.dumps(rec))
    assert make_plan(cfg, ctx.store, ctx.run_dir).trials_reused == 2  # written after the partitions: reused
    before_the_rows(marker)
    stale = make_plan(cfg, ctx.store, ctx.run_dir)
    assert (stale.trials_reused, stale.trainings_reused, stale.trials_unknown) == (0, 0, 0), stale.text()
    assert "up to" not in stale.text().splitlines()[1], stale.text()
    rerun = runner.stage_train(ctx)
    assert rerun["reused_trials"] == stale.trials_reused and rerun["trained"] == 1, rerun
    assert [p.name for p in (ctx.run_dir / "tune").glob(f"{name}.stale-*") if p.is_dir()], "moved aside as stale"

    # the embeddings changed under the same recorded inputs (a part file rewritten in place: same name, rows and
    # manifest): the plan, which reads the store's records but not the embeddings (a read of every partition the grid
    # trains on), still counts the finished trials — an upper bound, said "up to" — while the rerun compares the
    # data's content with the one its Tune marker records and trains the grid again
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = ctx.store.partition("notes", "mfcc-stats", "clean").data_files()
    kept = {f: Path(f).read_bytes() for f in files}
    for f in files:
        t = pq.read_table(f)
        col = t.column("embedding").combine_chunks()
        values = pc.list_flatten(col).to_numpy(zero_copy_only=False) * np.float32(2) + np.float32(1)
        changed = pa.FixedSizeListArray.from_arrays(pa.array(values), col.type.list_size)
        pq.write_table(t.set_column(t.schema.get_field_index("embedding"), t.schema.field("embedding"), changed), f)
    plan = interrupt()
    assert plan.trainings_reused == 3 and "(0 done; up to 3 more finished by an interrupted run" in plan.text()
    rerun = runner.stage_train(ctx)
    assert rerun["reused_trials"] == 0 and rerun["trained"] == 1, rerun
    for f, data in kept.items():  # the module's store as it was
        Path(f).write_bytes(data)


def test_changed_model_parameter_is_a_conflict_in_plan_and_run_naming_it(smoke_then_full):
    root, manifest, _, _, _ = smoke_then_full
    cfg = parse_config(_raw(root, manifest, n_mfcc=30))
    ctx = runner.make_context(cfg, run_id="mixed")
    plan = make_plan(cfg, ctx.store, ctx.run_dir)
    assert (plan.partitions_done, plan.trainings_done) == (0, 0)
    assert sorted(plan.conflicts) == ["notes/mfcc-stats/D1", "notes/mfcc-stats/clean"]
    with pytest.raises(StoreConflict) as err:
        runner.stage_embed(ctx)
    msg = str(err.value)
    assert "model.params.n_mfcc: stored 20, now 30" in msg  # the parameter, not two hashes
    # every conflict plan lists, at once and each as plan says it (the same fix); and the one command for them all
    assert all(f"\n  - {said}" in msg for said in plan.conflicts.values()), msg
    # the plan says the changed model's conflict once, naming its other scenario (the same fix for both)
    assert f"conflict: {plan.conflicts['notes/mfcc-stats/clean']} (the same at scenario D1)" in plan.text()
    assert plan.text().count("conflict: ") == 1, plan.text()
    store = shlex.quote(ctx.store.uri)
    assert f"`repeval store rm {store} notes/mfcc-stats/clean notes/mfcc-stats/D1 --yes` deletes them" in msg


def test_plan_refuses_the_run_id_run_refuses(smoke_then_full, tmp_path):
    root, manifest, _, _, _ = smoke_then_full
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_raw(root, manifest)))
    res = CliRunner().invoke(app, ["plan", str(path), "--run-id", "../escape"])
    assert res.exit_code == 1, res.output
    assert "run id '../escape': use letters, digits" in res.output and "probe trainings" not in res.output


def test_train_before_embedding_says_to_embed_first_and_is_no_failure(ray_session, rendered_notes, tmp_path):
    """`repeval train` before anything is embedded is a step out of order, not a failure: it stops (exit status 1)
    naming the fix, and leaves the run's recorded state as it was — none for a new run (it read "failed (train)" in
    `repeval runs`), an interrupted embedding's, with the command that finishes it, for one that has it."""
    from repeval.run.status import read_status, write_status
    from repeval.rundir import EarlierStageUnfinished

    raw = _raw(tmp_path, rendered_notes, run_id="fresh-train")
    with pytest.raises(EarlierStageUnfinished) as err:
        runner.stage_train(runner.make_context(parse_config(raw)))
    msg = str(err.value)
    assert "notes/mfcc-stats: the embeddings are missing — store partition notes/mfcc-stats/clean" in msg
    assert "does not exist; run `repeval embed CONFIG` (or `repeval run CONFIG`)" in msg
    assert "check the dataset's splits" not in msg

    path, runs, run = tmp_path / "c.yaml", str(tmp_path / "runs"), tmp_path / "runs" / "fresh-train"
    path.write_text(yaml.safe_dump(raw))
    cli = CliRunner()
    res = cli.invoke(app, ["train", str(path)])
    said = " ".join(res.output.split())
    assert res.exit_code == 1 and f"run `repeval embed {path}` (or `repeval run {path}`) with this" in said, said
    assert read_status(run) == {}
    (listed,) = json.loads(cli.invoke(app, ["runs", runs, "--json"]).output)
    assert (listed["state"], listed["reason"]) == ("started", None)

    write_status(run, "embed", "interrupted", "stopped by Ctrl-C; rerun it to resume (finished work is kept)")
    res = cli.invoke(app, ["train", str(path)])
    said = " ".join(res.output.split())
    assert res.exit_code == 1 and f"`repeval embed` was interrupted: finish it with `repeval embed {path}`" in said
    (listed,) = json.loads(cli.invoke(app, ["runs", runs, "--json"]).output)
    assert listed["state"] == "interrupted (embed)" and "rerun it to resume" in listed["reason"]


def test_failed_run_is_recorded_and_a_successful_rerun_replaces_it(smoke_then_full, tmp_path):
    root, manifest, _, _, _ = smoke_then_full
    # valid, but the store holds these partitions under another n_mfcc: the run stops in its embedding stage
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_raw(root, manifest, run_id="badlabel", n_mfcc=30)))
    cli = CliRunner()
    res = cli.invoke(app, ["run", str(path)])
    assert res.exit_code == 1, res.output
    listed = {r["run"]: r for r in json.loads(cli.invoke(app, ["runs", str(root / "runs"), "--json"]).output)}
    assert listed["badlabel"]["state"] == "failed (run)"
    reason = listed["badlabel"]["reason"]
    # every conflicting partition, and what differs in each (the reason: its first line, naming them and the fix)
    assert res.output.count("model.params.n_mfcc: stored 20, now 30") == 2, res.output
    assert "store partitions were computed with a different configuration (notes/mfcc-stats/clean, " in reason
    assert "--yes` deletes them to recompute them" in reason and "\n" not in reason
    assert f"badlabel: {reason}" in cli.invoke(app, ["runs", str(root / "runs")]).output
    assert listed["mixed"]["reason"] is None  # a run that never failed: its own state

    path.write_text(yaml.safe_dump(_raw(root, manifest, run_id="badlabel")))  # n_mfcc as stored: the rerun succeeds
    res = cli.invoke(app, ["run", str(path)])
    assert res.exit_code == 0, res.output
    again = {r["run"]: r for r in json.loads(cli.invoke(app, ["runs", str(root / "runs"), "--json"]).output)}
    assert (again["badlabel"]["state"], again["badlabel"]["reason"]) == ("evaluated", None)


def test_an_interrupted_command_is_recorded_as_such(smoke_then_full, tmp_path):
    """Ctrl-C (KeyboardInterrupt) in a stage: ``repeval runs`` says the run was interrupted and how to resume."""
    from repeval.cli.common import _stage

    root, manifest, _, _, _ = smoke_then_full
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_raw(root, manifest, run_id="ctrlc")))
    with pytest.raises(KeyboardInterrupt), _stage("embed", path, None, None, False, None):
        raise KeyboardInterrupt
    listed = {r["run"]: r for r in json.loads(CliRunner().invoke(app, ["runs", str(root / "runs"), "--json"]).output)}
    assert listed["ctrlc"]["state"] == "interrupted (embed)"
    assert f"`repeval embed {path}` resumes it" in listed["ctrlc"]["reason"]


def test_a_failure_that_came_of_another_names_its_root_cause(rendered_notes, tmp_path, capsys):
    """``status.json``'s reason and the CLI's one-line error said the last exception only: one raised while another
    was handled (a cleanup that failed too) or raised from another lost the first — the root cause — from both.
    They name it now, briefly (the whole chain: --debug); not when the message already says it or the chain was cut
    (``from None``)."""
    import typer

    from repeval.cli.common import _stage
    from repeval.cli.errors import _guard, _reason

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_raw(tmp_path, rendered_notes, run_id="chained")))

    def cleanup_failed():
        try:
            raise KeyError("violin")
        finally:
            raise RuntimeError("could not release the store lock")  # while the KeyError is handled

    with pytest.raises(RuntimeError), _stage("plan", path, None, None, False, None):
        cleanup_failed()
    status = json.loads((tmp_path / "runs" / "chained" / "status.json").read_text())
    assert status["reason"] == "could not release the store lock (raised while handling KeyError: 'violin')"

    missing = tmp_path / "missing.csv"

    def caused(say_it: bool = False):
        try:
            missing.read_text()
        except FileNotFoundError as exc:
            raise ValueError(f"dataset 'notes': cannot read its manifest{f': {exc}' if say_it else ''}") from exc

    with pytest.raises(typer.Exit):
        _guard(caused)
    assert capsys.readouterr().err == (
        "error: dataset 'notes': cannot read its manifest (caused by FileNotFoundError: [Errno 2] No such file or "
        f"directory: '{missing}')\n"
    )
    with pytest.raises(ValueError) as said:
        caused(say_it=True)
    assert _reason(said.value) == f"dataset 'notes': cannot read its manifest: {said.value.__cause__}"
    try:
        try:
            raise KeyError("violin")
        except KeyError:
            raise ValueError("no such instrument") from None
    except ValueError as cut:
        assert _reason(cut) == "no such instrument"


def test_plan_counts_read_in_the_singular_for_one_and_plural_for_more():
    """The plan's counts said "1 error record(s) in 1 partition(s), 1 track(s)" and "1 trial(s)": now the noun
    agrees with its count, and a count of thousands has its separator."""
    from repeval.plan import Plan, _retest_line
    from repeval.words import counted

    one = Plan(trainings_reused=2, trials_reused=1, retries={"ds/m/clean": (1, 1)}, retry_tracks={("ds", "t1")})
    said = one.text()
    assert "reused in 1 trial, not trained again" in said, said
    assert "note: 1 error record in 1 partition (ds/m/clean), 1 track of this run:" in said, said
    two = Plan(retries={"ds/m/clean": (2, 1), "ds/m/D1": (1, 1)}, retry_tracks={("ds", "t1"), ("ds", "t2")})
    assert "note: 3 error records in 2 partitions (ds/m/clean, ds/m/D1), 2 tracks of this run:" in two.text()
    retry = Plan(retries={"ds/m/clean": (1, 1)}, retry_tracks={("ds", "t1")}, retry_errors=True)
    assert "1 error record deleted, 1 track of this run they name computed again" in retry.text()
    assert _retest_line("g: tested on D2", [("g", 1)]).count("1 selected probe scored again") == 1
    assert counted(1200, "row") == "1,200 rows" and counted(1, "row") == "1 row"


def test_a_partitions_spec_hashes_the_other_scenarios_only_for_a_conflict(tmp_path, monkeypatch):
    """``repeval plan`` of 500 partitions (2 models × 250 scenarios) took 3.3 s of CPU warm, 2.1 s at c9407e4: each
    partition's spec hashed every other scenario of its dataset (125,000 hashes), which only a conflict's hint reads.
    They are hashed when a conflict asks — once per scenario otherwise."""
    from repeval.pipeline import partitions
    from repeval.pipeline.partitions import ModelSpec

    raw = _raw(tmp_path, tmp_path / "manifest.csv")
    gain = [
        [{"type": "Gain", "params": {"min_gain_db": -1 - i / 10, "max_gain_db": -1 - i / 10, "p": 1}}]
        for i in range(30)
    ]
    raw["experiments"][0]["deformations"] = [{"name": f"d{i}", "steps": steps} for i, steps in enumerate(gain)]
    cfg = parse_config(raw)
    exp = cfg.experiments[0]
    ds = exp.datasets[0]
    hashed = []
    real_hash = partitions.config_hash
    monkeypatch.setattr(partitions, "config_hash", lambda obj: hashed.append(obj) or real_hash(obj))
    spec = ModelSpec.of(cfg, exp.embedding_models[0])
    specs = [spec.partition(cfg, exp, ds, sid) for sid in exp.scenarios_for(ds)]
    assert len(specs) == 30 and len(hashed) == 31, len(hashed)  # the model's params; each scenario, in its fingerprint
