"""An embedding model that fails — its plugin's constructor raises, or it raises on every track — is left out of the
run, each named with its reason and fix, while the run's other models are embedded, trained, tested and reported; a
model failing on each of its first tracks is stopped early, its error records kept; one failing on a few tracks is
not stopped. One ``repeval run`` of five models (a module fixture) serves the tests."""

from __future__ import annotations

import json
import logging
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from repeval.words import counted

#: plugin models: one whose constructor reads a weights file, one that raises at every call, one that fails on some
#: of the tracks (every third clip, by its content), one that cannot run here (an extra not installed)
FAILING_MODELS = """
import numpy as np

from repeval.models import EmbeddingModel, register_model

@register_model("weights-model")
class WeightsModel(EmbeddingModel):
    sample_rate_hz = 16000
    embedding_dim = 2

    def __init__(self, weights_path: str = ""):
        super().__init__(weights_path=weights_path)
        self.w = np.load(weights_path)

    def embed(self, audio):
        return np.zeros((1, 2), np.float32)


@register_model("always-fails")
class AlwaysFails(EmbeddingModel):
    sample_rate_hz = 16000
    embedding_dim = 2

    def embed(self, audio):
        raise RuntimeError(f"no accelerator for {len(audio)} samples")


@register_model("sometimes-fails")
class SometimesFails(EmbeddingModel):
    sample_rate_hz = 16000
    embedding_dim = 2

    def embed(self, audio):
        if int(abs(float(np.sum(audio))) * 1000) % 3 == 0:
            raise ValueError("a clip it cannot take")
        return np.array([[audio.mean(), audio.std()]], np.float32)


@register_model("needs-extra")
class NeedsExtra(EmbeddingModel):
    sample_rate_hz = 16000
    embedding_dim = 2

    @classmethod
    def availability(cls, params):
        return "needs the 'nothing' extra (pip install nothing)"

    def embed(self, audio):
        return np.zeros((1, 2), np.float32)
"""

#: the run's notes: 3 instruments × 4; a model is stopped once its first STOP tracks all failed (of 12: the runs set
#: run.stop_model_after_failed_tracks, 32 by default)
N_TRACKS, STOP = 12, 4


def _config(root: Path, notes: Path, models: list, run_id: str, in_decode: str = "auto") -> Path:
    plugin = root / "failing_models.py"
    plugin.write_text(textwrap.dedent(FAILING_MODELS))
    body = {
        "plugins": [str(plugin)],
        "run": {
            "run_id": run_id, "store": str(root / "store"), "runs_dir": str(root / "runs"), "max_epochs": 2,
            "bootstrap_resamples": 0, "resources": {"embed_in_decode": in_decode, "embed_actors": 1},
            "stop_model_after_failed_tracks": STOP,
        },
        "experiments": [{
            "task": {"name": "inst", "type": "multiclass_classification", "label": "instrument"},
            "datasets": [{"name": "notes", "type": "catalog", "manifest": str(notes), "label_column": "instrument",
                          "split_column": "split"}],
            "embedding_models": models,
            "downstream_models": [{"name": "linear", "type": "classifier", "hidden_units": [], "epochs": 2}],
        }],
    }  # fmt: skip
    path = root / f"{run_id}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def _alive_embed_actors(wait_s: float = 10.0) -> list[str]:
    """This job's embedding actors (of a stream's pool) still alive once a kill had ``wait_s`` to reach them."""
    import ray

    from repeval.pipeline.stream_watch import EMBED_ACTOR_CLASS

    job = ray.get_runtime_context().get_job_id()
    deadline = time.monotonic() + wait_s
    while True:
        alive = [
            actor_id
            for actor_id, info in ray._private.state.actors().items()
            if info.get("ActorClassName") == EMBED_ACTOR_CLASS and info.get("JobID") == job and info["State"] != "DEAD"
        ]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


@pytest.fixture(scope="module")
def left_out_run(ray_session, tmp_path_factory, forget_module_plugins):
    """``repeval run`` of mfcc-stats beside two models whose constructors raise (a weights file that is not there), one
    that raises on every track and one that fails on some."""
    from typer.testing import CliRunner

    from repeval.cli import app
    from repeval.datasets.render import render_dataset
    from repeval.datasets.render_specs import RenderSpec

    root = tmp_path_factory.mktemp("failing-models")
    notes = render_dataset(root / "notes", RenderSpec(instruments=("piano", "violin", "flute"), notes_per_instrument=4))
    gone = {"net-a": root / "net-a.npy", "net-b": root / "net-b.npy"}
    models = [
        "mfcc-stats",
        {"id": "net-a", "type": "weights-model", "params": {"weights_path": str(gone["net-a"])}},
        {"id": "net-b", "type": "weights-model", "params": {"weights_path": str(gone["net-b"])}},
        {"id": "broken", "type": "always-fails"},
        {"id": "flaky", "type": "sometimes-fails"},
    ]
    said: list[str] = []  # the embedding stage's log, as the run goes
    leaked: list[str] = []  # embedding actors alive once a failed stream was left out

    def emit(record: logging.LogRecord) -> None:
        said.append(record.getMessage())
        if "— left out" in said[-1] and (alive := _alive_embed_actors()):
            leaked.extend(alive)  # stops the run (the next stream would wait for their CPUs forever)
            raise AssertionError(f"{len(alive)} embedding actors of a failed stream still alive")

    handler = logging.Handler(logging.ERROR)
    handler.emit = emit  # type: ignore[method-assign]
    logging.getLogger("repeval.pipeline.embed").addHandler(handler)
    try:
        res = CliRunner().invoke(app, ["run", str(_config(root, notes, models, "built"))])
    finally:
        logging.getLogger("repeval.pipeline.embed").removeHandler(handler)
    run_dir = root / "runs" / "built"
    return SimpleNamespace(root=root, notes=notes, gone=gone, res=res, log=said, leaked=leaked, run_dir=run_dir)


def test_models_that_fail_to_build_are_each_left_out_and_the_others_train_test_and_report(left_out_run, tmp_path):
    """Two plugin models whose constructors raise (a weights file that is not there) beside one that works: the run
    stopped at the first, naming it only, and trained nothing. Now each is named with its reason and fix, the other
    models are embedded, trained, tested and reported, the report's left-out section names them, and the run ends
    incomplete (exit status 3, as --strict's), recorded as such; no embedding actor of a failed stream is left."""
    from repeval.report.html import write_report
    from repeval.run.left_out import LEFT_OUT

    r = left_out_run
    assert r.leaked == []  # the failed streams' actors (started before their first batch) killed before the next one
    assert r.res.exit_code == 3, r.res.output[-4000:]
    said = " ".join(r.res.stderr.split())
    assert "error: 4 embedding models left out ('net-a', 'net-b', 'broken', 'flaky'), the others' results are" in said
    for model, weights in r.gone.items():
        assert (
            f"embedding model '{model}' failed to build" in said and f"No such file or directory: '{weights}'" in said
        )
    assert f"repeval validate-model weights-model --plugin {r.root / 'failing_models.py'}" in said
    logged = [line for line in r.log if line.endswith("— left out, the run's other embedding models go on")]
    assert [line.split("'")[1] for line in logged] == ["net-a", "net-b", "broken"], r.log  # said as the others ran
    assert "3 embedding models left out (not trained, tested or reported):" in " ".join(r.res.stdout.split())
    results = pq.read_table(r.run_dir / "results.parquet").to_pylist()
    assert {row["model"] for row in results} == {"mfcc-stats"}
    status = json.loads((r.run_dir / "status.json").read_text())
    assert status["state"] == "failed" and status["reason"].startswith("4 embedding models left out"), status
    assert set(json.loads((r.run_dir / LEFT_OUT).read_text())["embed"]) == {"net-a", "net-b", "broken"}
    page = write_report([r.run_dir], tmp_path / "report.html").read_text()
    section = page[page.index('id="not-evaluated"') :]
    assert "Embedding models left out (4)" in section
    assert "<code>net-a</code>: embedding model &#x27;net-a&#x27; failed to build" in section


def test_repeval_runs_names_the_models_a_run_left_out(left_out_run):
    """`repeval runs` did not read ``models_left_out.json``: a run that left models out listed them among its models
    like the others, and their grids as not trained, which `repeval run` would train (it leaves them out again). Now
    its models column marks them, a line names each with why, and ``--json`` has them."""
    from repeval.report.runs import runs_text

    runs = str(left_out_run.root / "runs")
    built = next(i for i in json.loads(runs_text(runs, as_json=True)) if i["run"] == "built")
    assert list(built["models_left_out"]) == ["net-a", "net-b", "broken", "flaky"], built
    assert built["models_left_out"]["flaky"].startswith("embedding model 'flaky': inst on notes/flaky: the test")
    text = " ".join(runs_text(runs).split())
    assert "broken (left out), flaky (left out), mfcc-stats, net-a (left out), net-b (left out)" in text, text
    assert "built: 4 embedding models left out (not trained, tested or reported): embedding model 'net-a' fail" in text
    # nor are their grids "not trained when it was evaluated", which "`repeval run …` trains" (it leaves them out)
    assert built["grids_untrained"] == [] and "probe grids of its configuration" not in text, built["grids_untrained"]


def test_a_model_failing_on_every_track_is_stopped_early_and_one_failing_on_some_is_not(left_out_run):
    """A model that raises on every track wrote an identical error record per track of the whole run, then stopped
    the training of every model. Now its stream stops once its first tracks all failed with one reason (none
    embedded), in one message naming the model, the reason and the fix, the records written kept; a model failing on
    some tracks runs to its end. A rerun stopped it again, 32 error records more each time: now it is left out again
    without running (its records as they were; `repeval plan` says it) until its plugin changes, the setting is raised
    (null: never stopped) or --retry-errors asks; a run whose every model failed kept an earlier attempt's
    models_left_out.json. Embedded again to its end (all its tracks error records), it is left out of training while
    the other trains."""
    from repeval import runner
    from repeval.config import load_config
    from repeval.models import ModelUnavailable
    from repeval.plan import make_plan
    from repeval.run.left_out import LEFT_OUT

    r = left_out_run
    why = json.loads((r.run_dir / LEFT_OUT).read_text())["embed"]["broken"]
    assert why.startswith(f"embedding model 'broken' failed on each of the first {STOP} tracks"), why
    assert "embedded none" in why
    assert "RuntimeError: no accelerator for" in why and "other models" not in why
    assert "`repeval validate-model always-fails --plugin " in why
    assert "then rerun with --retry-model broken (it and the tracks it failed on; --retry-errors retries every" in why
    ctx = runner.make_context(load_config(r.run_dir / "config.yaml"))
    broken = ctx.store.partition("notes", "broken", "clean")
    kept = broken.read_errors().num_rows
    assert not broken.complete and STOP <= kept < N_TRACKS, kept  # stopped early; what it wrote is kept
    assert f"its {counted(kept, 'error record')} so far are kept" in why, why
    flaky = ctx.store.partition("notes", "flaky", "clean")
    failed = flaky.read_errors().num_rows
    assert flaky.complete and 0 < failed < N_TRACKS and len(flaky.embedded_ids()) == N_TRACKS - failed  # not stopped
    # run again (another run of the same store): left out again without running — it wrote as many error records
    # again with each rerun — its left-out record saying so
    models = [{"id": "broken", "type": "always-fails"}, "mfcc-stats"]
    ctx = runner.make_context(load_config(_config(r.root, r.notes, models, "every", in_decode="always")))
    alone = _config(r.root, r.notes, models[:1], "alone")  # (before the plugin's edit below: it writes the plugin)
    again = runner.stage_embed(ctx)
    why = again.models_failed["broken"]
    assert set(again.models_failed) == {"broken"} and broken.read_errors().num_rows == kept, again
    assert why.startswith("embedding model 'broken' left out again, not run: a run stopped it at "), why
    assert f"(store partition notes/broken/clean) when it failed on each of the first {STOP} tracks" in why, why
    assert "RuntimeError: no accelerator for # samples" not in why and "RuntimeError: no accelerator for" in why
    assert (
        "then rerun with --retry-model broken, which tries it and the tracks it failed on again, the other models' "
        "error records left as they are (--retry-errors retries every model's); a plain run after a change" in why
    )
    assert why.endswith(f"under a run.stop_model_after_failed_tracks above {STOP} (now {STOP}), or null"), why
    assert json.loads((ctx.run_dir / LEFT_OUT).read_text()) == {"embed": {"broken": why}}
    runner.stage_embed(ctx, deformed_only=True)  # `repeval deform`, none to embed: it deleted the record
    assert json.loads((ctx.run_dir / LEFT_OUT).read_text()) == {"embed": {"broken": why}}  # its clean tracks: none
    plain = make_plan(ctx.cfg, ctx.store, ctx.run_dir)
    said = [n for n in plain.notes if "left out again" in n]
    assert said == [f"`repeval run` would leave it out: {why}"], said  # the plan says it too, the store as it is
    assert (  # its error records' note named --retry-errors alone
        "once their files (or the model failing on them) are fixed, `repeval run --retry-errors` computes them again, "
        "or `--retry-model broken` those of that model alone (`repeval plan` with the same option says" in plain.text()
    ), plain.text()
    # nor does it count the model's grid as to train, and its partition's missing tracks as to embed
    assert "1 to train, 1 of broken, which `repeval run` leaves out (note below))" in plain.text(), plain.text()
    assert (
        f"0 of {2 * N_TRACKS} rows to embed, {N_TRACKS - kept} more of broken, which `repeval run` leaves out"
        in plain.text()
    ), plain.text()
    retried = make_plan(ctx.cfg, ctx.store, ctx.run_dir, retry_models=frozenset({"broken"}))  # plan --retry-model
    assert not [n for n in retried.notes if "left out again" in n], retried.notes
    assert f"retry errors: notes/broken/clean: {counted(kept, 'error record')} deleted, " in retried.text()
    assert "computed again (--retry-model broken); these partitions" in retried.text(), retried.text()
    none = make_plan(ctx.cfg, ctx.store, ctx.run_dir, retry_models=frozenset({"mfcc-stats"})).text()
    assert (  # it said "of the models --retry-model mfcc-stats names"
        "retry errors: none — no error records in this configuration's store partitions of embedding model "
        "'mfcc-stats' (--retry-model mfcc-stats)\n" in none
    ), none
    # an attempt that another model's check stops before any stream starts: its models_left_out.json says this
    # attempt, not an earlier one's (it kept it: `repeval runs` named models the latest attempt had not left out) ...
    needs = {"id": "no-extra", "type": "needs-extra"}
    flaky_cfg = {"id": "flaky", "type": "sometimes-fails"}
    checked = runner.make_context(load_config(_config(r.root, r.notes, [models[0], flaky_cfg, needs], "checked")))
    (checked.run_dir / LEFT_OUT).write_text(json.dumps({"embed": {"net-a": "an earlier attempt's"}}))
    with pytest.raises(ModelUnavailable, match="needs the 'nothing' extra"):
        runner.stage_embed(checked)
    assert json.loads((checked.run_dir / LEFT_OUT).read_text()) == {"embed": {"broken": why}}
    # ... and, the setting raised past the stop, the stop stays recorded until the model's stream runs: it was
    # cleared before the check, so the next plain run tried the model once more
    checked.cfg = checked.cfg.model_copy(
        update={"run": checked.cfg.run.model_copy(update={"stop_model_after_failed_tracks": STOP + 1})}
    )
    with pytest.raises(ModelUnavailable, match="needs the 'nothing' extra"):
        runner.stage_embed(checked)
    assert "stopped_failing" in (broken.stamped() or {}), broken.stamped()
    assert not (checked.run_dir / LEFT_OUT).exists()  # this attempt left none out
    # --retry-model broken stopped by that check keeps its error records: they were deleted as its partitions were
    # planned, before the check, and their tracks computed by no one
    with pytest.raises(ModelUnavailable, match="needs the 'nothing' extra"):
        runner.stage_embed(checked, retry_models=frozenset({"broken", "flaky"}))
    assert broken.read_errors().num_rows == kept and "stopped_failing" in (broken.stamped() or {})
    # ... and a retried complete partition stays complete, its records as they were: it was marked incomplete as it
    # was planned, before the check, and stayed so though nothing in it changed; the model the check stopped has no
    # partition (it was stamped, an empty folder, as planned)
    assert flaky.complete and flaky.read_errors().num_rows == failed
    assert not (r.root / "store" / "notes" / "no-extra").exists()
    # --retry-model broken: it alone is tried again with the tracks it failed on (its error records deleted first: not
    # kept + STOP of them), another model's error records left as they are (--retry-errors, the only way, retried
    # those too)
    both = runner.make_context(load_config(_config(r.root, r.notes, [models[0], flaky_cfg], "retry-one")))
    with pytest.raises(ValueError, match="--retry-model: the configuration has no embedding model 'brokn'; give the"):
        runner.stage_embed(both, retry_models=frozenset({"brokn"}))
    retried = runner.stage_embed(both, retry_models=frozenset({"broken"})).models_failed["broken"]
    assert retried.startswith("embedding model 'broken' failed on each of the first"), retried  # run, stopped again
    assert STOP <= broken.read_errors().num_rows < kept + STOP, kept  # its records computed anew
    assert flaky.complete and flaky.read_errors().num_rows == failed  # another model's: as they were
    # --retry-model flaky, a model failing on some tracks, given those only: they fail again, as before — no sign of
    # a model failing on every track (it was stopped, and left out from then on, its embedded tracks unused)
    assert failed >= STOP, failed  # as many as the stop's count
    assert "flaky" not in runner.stage_embed(both, retry_models=frozenset({"flaky"})).models_failed
    assert (
        flaky.complete and flaky.read_errors().num_rows == failed and "stopped_failing" not in (flaky.stamped() or {})
    )
    assert not len(flaky.retried_ids())  # its _retried.parquet deleted as it was marked complete
    kept = broken.read_errors().num_rows
    # its plugin edited: run again, in the decode tasks (run.resources.embed_in_decode), and stopped again
    plugin = r.root / "failing_models.py"
    written = plugin.read_text()
    plugin.write_text(written + "# edited\n")
    again = runner.stage_embed(ctx)
    assert set(again.models_failed) == {"broken"} and "model inside the decode tasks" in again.resources["broken"]
    assert again.models_failed["broken"].startswith("embedding model 'broken' failed on each of the first"), again
    assert not broken.complete and broken.read_errors().num_rows >= kept + STOP
    # a run of it alone, which an earlier attempt of left another model out: the run stops, its record says this one
    alone = runner.make_context(load_config(alone))
    (alone.run_dir / LEFT_OUT).write_text(json.dumps({"embed": {"net-a": "an earlier attempt's"}}))
    with pytest.raises(ModelUnavailable, match="left out again, not run"):
        runner.stage_embed(alone)
    assert list(json.loads((alone.run_dir / LEFT_OUT).read_text())["embed"]) == ["broken"]
    # never stopped (run.stop_model_after_failed_tracks: null; its plugin as it was stopped): run again, to its end —
    # an embedding of every partition, whose record replaces what a `repeval deform` since recorded
    (ctx.run_dir / LEFT_OUT).write_text(json.dumps({"deform": {"broken": "a `repeval deform` attempt's"}}))
    ctx.cfg = ctx.cfg.model_copy(
        update={"run": ctx.cfg.run.model_copy(update={"stop_model_after_failed_tracks": None})}
    )
    assert runner.stage_embed(ctx).models_failed == {}  # every track an error record
    assert broken.complete and broken.read_errors().num_rows == N_TRACKS and len(broken.embedded_ids()) == 0
    assert not (ctx.run_dir / LEFT_OUT).exists()  # the model ran: no earlier attempt's record
    assert "stopped_failing" not in (broken.stamped() or {}), broken.stamped()  # nor its stop's, in the store
    plugin.write_text(written)  # as the other tests' runs wrote it
    t = runner.stage_train(ctx)
    assert t["trained"] == 1 and set(t["left_out"]) == {"broken"}, t
    assert f"embedding model 'broken' embedded none of the {N_TRACKS} tracks of notes" in t["left_out"]["broken"]


def test_a_model_that_embedded_none_of_a_split_is_left_out_of_training_and_the_others_train(left_out_run):
    """A model that embedded some of a dataset's tracks but none of its test split (each an error record) stopped the
    training of every model ("nothing was trained", exit status 1); now it is left out, named with the split and the
    command that lists why, and the run's other models train."""
    import pyarrow.csv as pcsv

    from repeval import runner
    from repeval.config import load_config
    from repeval.run.left_out import LEFT_OUT

    r = left_out_run
    test = set(pcsv.read_csv(r.notes).filter(pc.field("split") == "test").column("track_id").to_pylist())
    ctx = runner.make_context(load_config(r.run_dir / "config.yaml"))
    part = ctx.store.partition("notes", "flaky", "clean")
    ids = set(part.embedded_ids().to_pylist())
    assert ids and not ids & test, (ids, test)  # (the notes flaky fails on: its content's; all of the test split's)
    why = json.loads((r.run_dir / LEFT_OUT).read_text())["train"]["flaky"]
    assert why.startswith("embedding model 'flaky': inst on notes/flaky: the test split has no embedded tracks"), why
    assert "notes/flaky/clean --errors` says why" in why and why.endswith(
        "then rerun with --retry-model flaky (--retry-errors: every model's error records)"
    )
    assert {row["model"] for row in pq.read_table(r.run_dir / "results.parquet").to_pylist()} == {"mfcc-stats"}
    from repeval.plan import make_plan

    notes = [n for n in make_plan(ctx.cfg, ctx.store, ctx.run_dir).notes if "flaky" in n and "`repeval run`" in n]
    assert notes == [
        "`repeval run` would leave embedding model 'flaky' out of training, and train the others: inst on notes/flaky:"
        f" the test split has no embedded tracks — none of its {counted(len(test), 'track')} was embedded: "
        f"`{part.show_errors_command()}`"
        " says why"
    ], notes  # `repeval plan` said the run would stop
