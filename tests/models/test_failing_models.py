"""An embedding model that fails — its plugin's constructor raises, or it raises on every track — is left out of the
run, each named with its reason and fix, while the run's other models are embedded, trained, tested and reported; a
model failing on each of its first tracks is stopped early, its error records kept; one failing on a few tracks is
not stopped."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from repeval.words import counted

#: plugin models: one whose constructor reads a weights file, one that raises at every call, one that fails on some
#: of the tracks (every other clip, by its content)
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
"""


def _config(tmp_path: Path, notes: Path, models: list, run_id: str) -> Path:
    plugin = tmp_path / f"failing_models_{run_id}.py"  # (one file name per plugin of the session)
    plugin.write_text(textwrap.dedent(FAILING_MODELS))
    body = {
        "plugins": [str(plugin)],
        "run": {
            "run_id": run_id, "store": str(tmp_path / "store"), "runs_dir": str(tmp_path / "runs"), "max_epochs": 3,
            "bootstrap_resamples": 0,
        },
        "experiments": [{
            "task": {"name": "inst", "type": "multiclass_classification", "label": "instrument"},
            "datasets": [{"name": "notes", "type": "catalog", "manifest": str(notes), "label_column": "instrument",
                          "split_column": "split"}],
            "embedding_models": models,
            "downstream_models": [{"name": "linear", "type": "classifier", "hidden_units": [], "epochs": 3}],
        }],
    }  # fmt: skip
    path = tmp_path / f"{run_id}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def test_models_that_fail_to_build_are_each_left_out_and_the_others_train_test_and_report(
    ray_session, rendered_notes, tmp_path, forget_plugins
):
    """Two plugin models whose constructors raise (a weights file that is not there) beside one that works: the run
    stopped at the first, naming it only, and trained nothing. Now each is named with its reason and fix, the other
    model is embedded, trained, tested and reported, the report's left-out section names both, and the run ends
    incomplete (exit status 3, as --strict's), recorded as such."""
    from typer.testing import CliRunner

    from repeval.cli import app
    from repeval.report.html import write_report

    gone = {m: tmp_path / f"{m}.npy" for m in ("net-a", "net-b")}
    models = [
        "mfcc-stats",
        *({"id": m, "type": "weights-model", "params": {"weights_path": str(w)}} for m, w in gone.items()),
    ]
    cfg = _config(tmp_path, rendered_notes, models, "built")
    res = CliRunner().invoke(app, ["run", str(cfg)])
    assert res.exit_code == 3, res.output[-4000:]
    said = " ".join(res.stderr.split())
    assert "error: 2 embedding models left out ('net-a', 'net-b'), the others' results are in" in said, said[-3000:]
    for model, weights in gone.items():
        assert (
            f"embedding model '{model}' failed to build" in said and f"No such file or directory: '{weights}'" in said
        )
        assert f"repeval validate-model weights-model --plugin {tmp_path / 'failing_models_built.py'}" in said
    run_dir = tmp_path / "runs" / "built"
    results = pq.read_table(run_dir / "results.parquet").to_pylist()
    assert {r["model"] for r in results} == {"mfcc-stats"} and results
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "failed" and status["reason"].startswith("2 embedding models left out"), status
    from repeval.run.left_out import LEFT_OUT

    assert set(json.loads((run_dir / LEFT_OUT).read_text())["embed"]) == {"net-a", "net-b"}
    page = write_report([run_dir], tmp_path / "report.html").read_text()
    section = page[page.index('id="not-evaluated"') :]
    assert "Embedding models left out (2)" in section
    assert "<code>net-a</code>: embedding model &#x27;net-a&#x27; failed to build" in section


def test_a_model_failing_on_every_track_is_stopped_early_and_one_failing_on_some_is_not(
    ray_session, rendered_notes, tmp_path, forget_plugins, monkeypatch
):
    """A model that raises on every track wrote an identical error record per track of the whole run, then stopped
    the training of every model. Now its stream stops once its first tracks all failed with one reason (none
    embedded), in one message naming the model, the reason and the fix, the records written kept; a model failing on
    some tracks runs to its end. Embedded again to its end (all its tracks error records), it is left out of training
    while the other trains."""
    from repeval import runner
    from repeval.config import load_config
    from repeval.pipeline import failing

    monkeypatch.setattr(failing, "STOP_AFTER_FAILED_TRACKS", 6)  # (of the 48 notes: 32 by default)
    models = [{"id": "broken", "type": "always-fails"}, {"id": "flaky", "type": "sometimes-fails"}]
    ctx = runner.make_context(load_config(_config(tmp_path, rendered_notes, models, "every")))
    summary = runner.stage_embed(ctx)
    (why,) = summary.models_failed.values()
    assert why.startswith("embedding model 'broken' failed on each of the first ") and "embedded none" in why, why
    assert "RuntimeError: no accelerator for" in why and "the run's other models go on" in why
    assert "`repeval validate-model always-fails --plugin " in why and "then rerun with --retry-errors" in why
    broken = ctx.store.partition("notes", "broken", "clean")
    kept = broken.read_errors().num_rows
    assert not broken.complete and 6 <= kept < 48, kept  # stopped early; what it wrote is kept
    assert f"its {counted(kept, 'error record')} so far are kept" in why, why
    flaky = ctx.store.partition("notes", "flaky", "clean")
    failed = flaky.read_errors().num_rows
    assert flaky.complete and 0 < failed < 48 and len(flaky.embedded_ids()) == 48 - failed  # never stopped
    assert "1 embedding model left out" in summary.text() and why in summary.text()

    monkeypatch.setattr(failing, "STOP_AFTER_FAILED_TRACKS", 1000)
    assert runner.stage_embed(ctx).models_failed == {}  # to its end: every track an error record
    assert broken.complete and broken.read_errors().num_rows == 48 and len(broken.embedded_ids()) == 0
    t = runner.stage_train(ctx)
    assert t["trained"] == 1 and set(t["left_out"]) == {"broken"}, t
    assert "embedding model 'broken' embedded none of the 48 tracks of notes" in t["left_out"]["broken"]
