"""The README's example plugin end to end in Ray workers, and what a plugin run leaves for the report."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import yaml
from plugins_cases import EXAMPLE, EXAMPLE_CONFIG, REPO, TEAM_MODEL, _config, _plugin, _problem

from repeval import runner
from repeval.config import parse_config
from repeval.models import plugins as plugins_mod


def test_the_example_model_runs_end_to_end_in_ray_workers(
    ray_session, rendered_notes, tmp_path, monkeypatch, forget_plugins, caplog
):
    """The README's example, as shipped: its config (on clean audio, the baseline left out: a short test) on the
    rendered notes, embedded by an actor pool — Ray worker processes, which import the plugin themselves — then
    trained and scored."""
    monkeypatch.chdir(REPO)  # the config's plugin path is relative, as a user writes it
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    parse_config(data)  # the whole file as shipped, baseline included
    exp = data["experiments"][0]
    exp["datasets"][0]["manifest"] = str(rendered_notes)
    exp["embedding_models"] = [m for m in exp["embedding_models"] if m != "mfcc-stats"]
    exp["deformations"] = []
    data["run"] = {
        "run_id": "plugin",
        "store": str(tmp_path / "store"),
        "runs_dir": str(tmp_path / "runs"),
        "max_epochs": 5,
        "bootstrap_resamples": 0,
    }
    cfg = parse_config(data)
    ctx = runner.make_context(cfg)
    summary = runner.stage_embed(ctx)
    assert summary.errors == 0
    assert "embedding actor" in summary.resources["my-model"]  # not the driver's process: Ray's workers
    part = ctx.store.partition("rendered_notes", "my-model", "clean")
    assert part.complete
    ids, _, x = part.embeddings()
    assert len(ids) == sum(1 for _ in rendered_notes.open()) - 1  # every note
    assert x.shape[1] == 64 and np.isfinite(x).all() and x.std() > 0
    # the partition records the plugin file it was embedded with; a later stage that finds the file changed (the same
    # embedding_version) says so once per model, naming the fix: the plan (where a user decides; it records nothing),
    # the training stage (it trains on the rows) and the embedding stage, which then records the file as it is now
    import hashlib
    import json
    import logging

    from repeval.plan import make_plan

    now = {"plugin": "examples/my_model.py", "sha256": hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()}
    assert part.manifest()["model_code"] == now
    for name in ("_stamp.json", "_manifest.json"):  # as an earlier version of the file left them
        path = Path(part.path) / name
        path.write_text(json.dumps({**json.loads(path.read_text()), "model_code": {**now, "sha256": "0" * 64}}))
    (noted,) = [n for n in make_plan(cfg, ctx.store, ctx.run_dir).notes if "has changed since" in n]
    assert noted.startswith("my-model: its plugin examples/my_model.py has changed since store partition")
    assert noted.endswith("(`repeval run` says it once, then records the files as they are now)")
    assert part.manifest()["model_code"] != now  # the plan only reads
    with caplog.at_level(logging.WARNING):
        assert runner.stage_train(ctx)["trained"] == 1
        (said,) = [r.getMessage() for r in caplog.records if "has changed since" in r.getMessage()]
        assert said.startswith("my-model: its plugin examples/my_model.py has changed since store partition")
        caplog.clear()
        results = runner.stage_evaluate(ctx)
        assert runner.stage_embed(ctx).partitions_completed == []
    assert results.num_rows > 0
    rows = pq.read_table(ctx.run_dir / "results.parquet").to_pylist()
    mine = [r for r in rows if r["model"] == "my-model" and r["metric"] == "accuracy"]
    assert [r["scenario"] for r in mine] == ["clean"]
    assert all(0.0 <= r["value"] <= 1.0 and not math.isnan(r["value"]) for r in mine)
    assert "plugins:\n- examples/my_model.py" in (ctx.run_dir / "config.yaml").read_text()  # a rerun imports it

    (said,) = [r.getMessage() for r in caplog.records if "has changed since" in r.getMessage()]  # the embedding stage
    assert said.startswith("my-model: its plugin examples/my_model.py has changed since store partition")
    assert "embedding_version is still '1'" in said and f"repeval store rm {ctx.store.uri}" in said
    assert part.manifest()["model_code"] == now
    assert not [n for n in make_plan(cfg, ctx.store, ctx.run_dir).notes if "has changed since" in n]

    # the embedding stage of a run that reuses none of the partition's rows (other tracks) said its stored embeddings
    # "are reused": it says the rows it embeds join them; one that neither reuses nor adds rows says nothing
    import pyarrow.compute as pc

    from repeval.datasets import load_dataset
    from repeval.pipeline.summary import EmbedSummary
    from repeval.pipeline.todo import plan_dataset
    from repeval.warn import reset_warned

    exp, ds = cfg.experiments[0], cfg.experiments[0].datasets[0]
    rows = load_dataset(ds, exp.task)[0]
    others = rows.set_column(0, "track_id", pc.binary_join_element_wise(rows.column("track_id"), "new", "-"))

    def embed_plan(table, wanted_none: bool = False) -> list[str]:
        for path in (
            Path(part.path) / n for n in ("_stamp.json", "_manifest.json")
        ):  # (a reopened one has no manifest)
            if path.exists():
                path.write_text(json.dumps({**json.loads(path.read_text()), "model_code": {**now, "sha256": "0" * 64}}))
        reset_warned()
        caplog.clear()
        plan_dataset(cfg, exp, ds, table.slice(0, 0) if wanted_none else table, None, ctx.store, {}, EmbedSummary(),
                     False, False, {})  # fmt: skip
        return [r.getMessage() for r in caplog.records if "has changed since" in r.getMessage()]

    with caplog.at_level(logging.WARNING):
        assert embed_plan(rows, wanted_none=True) == []
        assert part.stamped()["model_code"]["sha256"] == "0" * 64  # left for the run that reuses or adds rows
        (said,) = embed_plan(others)
        assert "'1'; this run reuses none of its stored embeddings, but those it computes now join them: if" in said
        assert "are reused" not in said and part.stamped()["model_code"] == now
        (said,) = embed_plan(rows)
        assert "'1', so its stored embeddings are reused: if" in said, said


def test_the_readme_shows_the_example_file():
    """README's "Your own model" block is examples/my_model.py without its comments: the one the tests run."""
    import ast
    import re

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("\n## Your own model\n") :]
    shown = re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]

    def code(source: str) -> str:
        tree = ast.parse(source)
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
                if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                    node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
        tree.body = [n for n in tree.body if not (isinstance(n, ast.ImportFrom) and n.module == "__future__")]
        return ast.dump(tree)

    assert code(shown) == code(EXAMPLE.read_text())


def test_the_report_reads_a_plugin_runs_scenarios_without_importing_the_plugin(tmp_path, forget_plugins):
    """``repeval report`` on a run of a model of your own — from another folder, on a machine without the plugin —
    lists the configured scenario that has no results (every test track an error record) as it does for repeval's
    models: it read the run's config by validating it, which imports the plugin (running its code) and, the plugin
    not there, failed and left the scenario out."""
    import pandas as pd

    from repeval.report.left_out import run_partitions
    from repeval.report.results import Run

    gone = str(tmp_path / "not_here" / "team_model.py")
    data = _config([gone], "my-model")
    exp = data["experiments"][0]
    exp["embedding_models"] = [{"id": "my-model", "type": "team-model", "params": {"dim": 8}}]
    exp["deformations"] = [{"name": "loud", "steps": [{"type": "Gain", "params": {"p": 1}}]}]
    results = pd.DataFrame({"dataset": ["n"], "model": ["my-model"], "scenario": ["clean"]})
    run = Run("r", tmp_path, results, config_text=yaml.safe_dump(data))
    loaded = dict(plugins_mod._LOADED)
    assert run_partitions(run) == [("n", "my-model", "clean"), ("n", "my-model", "loud")]
    assert plugins_mod._LOADED == loaded  # nothing imported


def test_an_installed_plugin_that_fails_leaves_other_models_usable(tmp_path, monkeypatch, forget_plugins):
    """A broken package's ``repeval.models`` entry point: a configuration of repeval's models still validates, a
    misspelt model is still named with the closest spelling (the broken plugin said beside it), and ``repeval
    models`` still lists every model it can, then the plugin's line (exit status 1) — it printed that line alone."""
    from typer.testing import CliRunner

    from repeval.cli import app

    _plugin(tmp_path, "bad_team", "import numpyy\n")
    _plugin(tmp_path, "good_team", TEAM_MODEL.replace("team-model", "good-model"))
    dist = tmp_path / "bad_team-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-team\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[repeval.models]\nbad = bad_team\ngood = good_team\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    assert parse_config(_config([], "mfcc-stats")).experiments[0].embedding_models[0].id == "mfcc-stats"
    assert parse_config(_config([], "good-model")).experiments[0].embedding_models[0].id == "good-model"
    said = _problem([], "mfcc-stat")
    assert "unknown embedding model 'mfcc-stat'" in said and "mfcc-stats" in said
    assert "plugin 'bad_team' (entry point 'bad' of bad-team" in said and "`pip uninstall bad-team`" in said

    r = CliRunner().invoke(app, ["models"])
    assert r.exit_code == 1
    assert any(ln.startswith("mfcc-stats ") for ln in r.output.splitlines()), r.output
    assert "plugin 'bad_team' (entry point 'bad' of bad-team, group repeval.models) failed to import" in r.output


def test_a_model_returning_float64_frames_is_said_once_per_model_and_stored_as_float32(forget_plugins):
    """A model whose embed returns float64 frames had them cast to float32 (the store's precision) without a word.
    The cast stays; the embedding stage now says it once per model — in its log as it happens and in the summary it
    prints — however many batches and actors had such frames, with the fix."""
    from repeval.config.embed import EmbeddingModelConfig
    from repeval.models import EmbeddingModel, register_model
    from repeval.pipeline.embedder import Embed
    from repeval.pipeline.summary import EmbedSummary

    @register_model("float64-model")
    class Float64Model(EmbeddingModel):
        sample_rate_hz = 16000
        embedding_dim = 3

        def embed(self, audio):
            return np.full((2, 3), 0.1, np.float64)

    embed = Embed(EmbeddingModelConfig(id="float64-model"), threads=1)

    def batch(n):
        return {
            "track_id": np.array([f"t{i}" for i in range(n)]), "split": np.array(["train"] * n),
            "scenario": np.array(["clean"] * n), "chunk": np.zeros(n, np.int32), "n_chunks": np.ones(n, np.int32),
            "deformation_params": np.array(["{}"] * n), "audio": [np.zeros(1600, np.float32)] * n,
            "error": np.array([""] * n), "stage": np.array([""] * n),
        }  # fmt: skip

    summary, other = EmbedSummary(), EmbedSummary()
    notes = []
    for n in (2, 3):
        out = embed(batch(n))
        assert out["embedding"].dtype == np.float32 and np.allclose(out["embedding"], 0.1)
        notes.append(summary.note_cast("float64-model", out))
    assert notes[0] == (
        "note: embedding model float64-model returned float64 frames, stored as float32 (the store's precision) — make "
        "its embed return frames.astype(np.float32) to store what it computes (`repeval validate-model` checks it)"
    )
    assert notes[1] is None  # said once per model, not per batch
    other.note_cast("float64-model", embed(batch(1)))  # another stream's (another dataset's) summary, merged
    summary.merge(other)
    assert summary.text().count("returned float64 frames") == 1
