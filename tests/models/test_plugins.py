"""Embedding models of your own: plugins from a configuration's ``plugins:`` list or the ``repeval.models`` entry
points — imported by the driver and by the Ray workers that build the model, each fault one line naming the fix —
and the shipped example (examples/my_model.py, examples/my_model.yaml) run end to end."""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from repeval import runner
from repeval.config import ConfigError, parse_config
from repeval.models import MODELS
from repeval.models import plugins as plugins_mod
from repeval.models.validate import list_models, validate_model

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "my_model.py"
EXAMPLE_CONFIG = REPO / "examples" / "my_model.yaml"
EXAMPLE_MODEL = "my-spectrum-projection"

#: an installed package's plugin module, registering ``team-model``
TEAM_MODEL = """
from repeval.models import EmbeddingModel, register_model

@register_model("team-model")
class TeamModel(EmbeddingModel):
    sample_rate_hz = 16000
    embedding_dim = 3

    def embed(self, audio):
        return audio[: len(audio) // 3 * 3].reshape(-1, 3)[:1].astype("float32")
"""


def _config(plugins: list[str], model: str = "mfcc-stats") -> dict:
    return {
        "plugins": plugins,
        "experiments": [
            {
                "task": {"name": "t", "type": "multiclass_classification"},
                "datasets": [{"name": "n", "type": "catalog", "manifest": "m.csv", "label_column": "instrument"}],
                "embedding_models": [model],
                "downstream_models": [{}],
            }
        ],
    }


def _plugin(tmp_path: Path, stem: str, body: str) -> str:
    path = tmp_path / f"{stem}.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def _problem(plugins: list[str], model: str = "mfcc-stats") -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(_config(plugins, model))
    assert len(err.value.problems) == 1, err.value.problems
    return err.value.problems[0]


def test_plugin_faults_are_one_line_naming_the_fix(tmp_path, forget_plugins):
    broken = _plugin(tmp_path, "broken_plugin", "import numpyy\n")
    said = _problem([broken])
    assert said.startswith(f"plugins[0]: plugin {broken!r} failed to import: ModuleNotFoundError")
    assert f"`python {broken}` shows the traceback" in said

    empty = _plugin(tmp_path, "empty_plugin", "x = 1\n")
    assert "registers no embedding model: decorate a subclass of repeval.models.EmbeddingModel" in _problem([empty])

    clash = _plugin(
        tmp_path,
        "clash_plugin",
        """
        from repeval.models import EmbeddingModel, register_model

        @register_model("mfcc-stats")
        class Mine(EmbeddingModel):
            def embed(self, audio):
                return audio[None, :1]
        """,
    )
    said = _problem([clash])
    assert "registers embedding model 'mfcc-stats', a name repeval's own model has" in said
    assert "give its class Mine another name in @register_model" in said
    assert MODELS.get("mfcc-stats").cls.__module__ == "repeval.models.handcrafted"  # repeval's own is kept

    no_embed = _plugin(
        tmp_path,
        "no_embed_plugin",
        """
        from repeval.models import EmbeddingModel, register_model

        @register_model("half-done")
        class HalfDone(EmbeddingModel):
            sample_rate_hz = 16000
        """,
    )
    said = _problem([no_embed])
    assert "embedding model 'half-done'" in said and "has no embed method: define embed(self, audio)" in said
    assert "half-done" not in MODELS  # a refused plugin leaves nothing registered

    said = _problem([str(tmp_path / "absent.py")])
    assert f"no such file: {tmp_path / 'absent.py'} — fix the path" in said and "--working-dir" in said
    said = _problem(["no_such_team.models"])
    assert "no module named 'no_such_team' here — install the package" in said
    assert "or give the path of its .py file (./no_such_team/models.py)" in said  # the module's file, not the package's
    assert _problem(["bad spec!"]).endswith("nor the path of a .py file (./my_model.py): write one of them")


def test_a_misspelled_plugins_key_is_said_alone_not_also_its_models_as_unknown(tmp_path, forget_plugins):
    """`plugin:` for `plugins:` is one problem: its modules are still imported, so the models they register are not
    also said to be unknown (the fix the user would chase)."""
    plugin = _plugin(tmp_path, "misspelt_key_plugin", TEAM_MODEL.replace("team-model", "misspelt-key-model"))
    d = _config([plugin], "misspelt-key-model")
    d["plugin"] = d.pop("plugins")
    with pytest.raises(ConfigError) as err:
        parse_config(d)
    assert err.value.problems == ["(top level): unknown key 'plugin' — did you mean 'plugins'?"]


def test_a_torch_module_registered_as_a_model_is_told_to_hold_its_network(tmp_path, forget_plugins):
    module = _plugin(
        tmp_path,
        "torch_module_plugin",
        """
        import torch

        from repeval.models import register_model

        @register_model("torch-module")
        class Net(torch.nn.Module):
            def embed(self, audio):
                return audio[None, :1]
        """,
    )
    said = _problem([module])
    assert said.endswith(
        "(repeval_plugin_torch_module_plugin.Net) is not a subclass of repeval.models.EmbeddingModel: derive it from "
        "EmbeddingModel and hold the network in an attribute (self.net = MyNet(), loaded in __init__)"
    )


def test_a_relative_plugin_path_starts_from_the_current_directory(tmp_path, monkeypatch, forget_plugins):
    """As the data paths do; a worker given the record finds the file by the path resolved where it was read."""
    monkeypatch.chdir(REPO)
    cfg = parse_config(_config(["examples/my_model.py"], EXAMPLE_MODEL))
    assert cfg.plugins == ("examples/my_model.py",)
    assert plugins_mod.plugins_of(cfg.plugins) == (plugins_mod.Plugin("examples/my_model.py", str(EXAMPLE)),)
    assert plugins_mod.plugin_of(EXAMPLE_MODEL) == "examples/my_model.py"
    rows = {m["id"]: m for m in list_models()}
    assert rows[EXAMPLE_MODEL]["plugin"] == "examples/my_model.py" and rows[EXAMPLE_MODEL]["sample_rate_hz"] == 16000


def test_a_worker_on_another_node_finds_a_plugin_file_in_its_copy_of_the_working_directory(
    tmp_path, monkeypatch, forget_plugins
):
    """Under ``ray job submit --working-dir .`` each node unpacks its own copy: the path resolved by the driver may
    not exist on a worker's node, the path as written does from the worker's current directory (its copy)."""
    monkeypatch.chdir(REPO)
    elsewhere = plugins_mod.Plugin("examples/my_model.py", str(tmp_path / "driver_copy" / "examples" / "my_model.py"))
    assert plugins_mod.load_plugins([elsewhere]) == [EXAMPLE_MODEL]
    assert MODELS.get(EXAMPLE_MODEL).cls.__module__ == "repeval_plugin_my_model"


def test_in_a_job_a_worker_imports_a_plugin_file_from_its_own_nodes_copy_of_the_upload(
    tmp_path, monkeypatch, forget_plugins
):
    """``ray job submit --working-dir .``: the driver runs in the head's copy of the upload, a worker on another node
    in its own (``<its temp dir>/…/_ray_pkg_<hash>``). Where the head's copy is visible too (nodes of one machine, a
    shared temp dir), the worker still imports its own node's copy — what it does on any cluster. A file outside
    the upload is refused in the driver, naming the fix (seen on a real head + worker cluster: docs/cluster.md)."""
    import json
    import sys

    from repeval.ray_cluster import RAY_JOB_CONFIG_ENV

    pkg = "_ray_pkg_0123abcd"
    copies = {}
    for node in ("head", "worker"):
        copy = tmp_path / node / "runtime_resources" / "working_dir_files" / pkg
        (copy / "examples").mkdir(parents=True)
        text = EXAMPLE.read_text().replace(f'"{EXAMPLE_MODEL}"', '"upload-model"')
        (copy / "examples" / "upload_model.py").write_text(text + f"\nNODE = {node!r}\n")
        copies[node] = copy
    monkeypatch.setenv(RAY_JOB_CONFIG_ENV, json.dumps({"runtime_env": {"working_dir": f"gcs://{pkg}.zip"}}))
    monkeypatch.chdir(copies["head"])  # the job's driver
    (plugin,) = plugins_mod.plugins_of(["examples/upload_model.py"])
    assert plugin.upload == (pkg, "examples/upload_model.py")
    assert plugin.path == str(copies["head"].resolve() / "examples" / "upload_model.py")
    assert "is outside the directory this job was submitted with" in _problem(["../../outside/far_model.py"])
    assert "py_modules" in _problem(["../../outside/far_model.py"])

    monkeypatch.chdir(copies["worker"])  # a worker on another node, the driver's copy visible as well
    monkeypatch.delenv(RAY_JOB_CONFIG_ENV)
    try:
        assert plugins_mod.load_plugins([plugin]) == ["upload-model"]
        module = sys.modules[MODELS.get("upload-model").cls.__module__]
        assert module.NODE == "worker" and Path(module.__file__).parent.parent == copies["worker"]
    finally:
        sys.modules.pop("repeval_plugin_upload_model", None)


def test_a_worker_that_cannot_import_a_plugin_says_so_as_the_models_unavailability(tmp_path, forget_plugins):
    from repeval.config.embed import EmbeddingModelConfig
    from repeval.pipeline.embedder import Embed, this_node
    from repeval.pipeline.preflight import unavailable_here

    gone = plugins_mod.Plugin("gone/model.py", str(tmp_path / "gone" / "model.py"))
    mcfg = EmbeddingModelConfig(id="mfcc-stats")
    reason = unavailable_here([mcfg], (gone,))["mfcc-stats"]
    assert reason.startswith("plugin 'gone/model.py': no such file") and "--working-dir" in reason
    embed = Embed(mcfg, plugins=(gone,))
    where = re.escape(this_node())  # "here", or "on node <ip>" once the suite's Ray runs in this process
    with pytest.raises(Exception, match=rf"embedding model 'mfcc-stats' cannot run {where}: plugin 'gone/model.py'"):
        embed({"track_id": np.array(["a"])})


def test_a_plugin_model_whose_init_raises_in_a_worker_is_one_line_naming_the_fix(tmp_path, forget_plugins):
    from repeval.config.embed import EmbeddingModelConfig
    from repeval.pipeline.embedder import Embed, this_node
    from repeval.pipeline.preflight import unavailable_in_stream

    plugin = _plugin(tmp_path, "weights_plugin_in_a_worker", WEIGHTS_MODEL)
    gone = tmp_path / "gone.npy"
    plugins_mod.load_plugins([plugin])
    mcfg = EmbeddingModelConfig(id="mine", type="weights-model", params={"weights_path": str(gone)})
    embed = Embed(mcfg, plugins=plugins_mod.plugins_of([plugin]))  # the actor starts (Ray Data's pool keeps it)
    with pytest.raises(Exception) as err:  # and says it at its first batch, as a model that cannot run
        embed({"track_id": np.array(["a"])})
    said = str(unavailable_in_stream(err.value))
    assert said.startswith(f"embedding model 'mine' failed to build {this_node()}: its class WeightsModel (plugin ")
    assert f"raised FileNotFoundError: [Errno 2] No such file or directory: '{gone}'" in said
    assert f"`repeval validate-model weights-model --plugin {plugin} --param weights_path={gone}` builds it" in said
    assert "node that joins later" not in said  # a fault of the plugin's, not of a node


def test_frames_a_model_gets_wrong_are_error_records_naming_the_fix():
    from repeval.pipeline.embedder import frames_problem
    from repeval.pipeline.summary import REASON_CHARS, EmbedSummary

    frames = np.ones((5, 3), np.float32)
    assert frames_problem(frames, 3) is None
    said = frames_problem(frames.mean(axis=0), 3)  # a track's vector, not its frames
    assert (
        said
        == "model returned frames of shape (3,), not (n_frames, 3): make embed return a 2-D array (one frame: frames[None, :])"
    )
    assert "but its embedding_dim is 4: make embed's frames that wide" in str(frames_problem(frames, 4))
    assert "returned no frames (shape (0, 3))" in str(frames_problem(frames[:0], 3))
    frames[0, 0] = np.nan
    assert "model returned 1 NaN or infinite value in frames of shape (5, 3)" in str(frames_problem(frames, 3))
    frames[0, :2] = [np.nan, np.inf]
    said = str(frames_problem(frames, 3))
    assert (
        said
        == "model returned 2 NaN or infinite values in frames of shape (5, 3): fix it (`repeval validate-model` checks it)"
    )
    assert len(said) <= REASON_CHARS  # a run's summary shows it whole
    summary = EmbedSummary()
    summary.add_failures("d/m/clean", ["t1"], ["embed"], [said])
    assert (  # --retry-model, which retries that model's records alone, was not named
        "all of them (not evaluated; once the files (or, stage embed, the model) are fixed, `--retry-errors` computes "
        "them again, or `--retry-model m` those of that model alone):" in "\n".join(summary.failure_lines())
    )


def test_a_raised_embedding_version_is_said_as_such_by_the_store():
    from repeval.store.fingerprint import fingerprint_diff

    stored = {"model": {"family": "team-cnn", "params": "ab"}}  # at "1" the fingerprint has no version
    said = fingerprint_diff(stored, {"model": {**stored["model"], "version": "2"}})
    assert said == 'the model\'s embedding_version: stored "1", now "2"'


def test_the_commands_show_plugin_models(monkeypatch, forget_plugins):
    from typer.testing import CliRunner

    from repeval.cli import app

    monkeypatch.chdir(REPO)
    r = CliRunner().invoke(app, ["models", "--plugin", "examples/my_model.py"])
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if ln.startswith(EXAMPLE_MODEL))
    assert line.endswith("available (plugin examples/my_model.py)")
    assert (
        line.split()[1:5] == ["dim", "at", "build", "@"] and "16000 Hz" in line
    )  # its __init__ sets it: "?-d" was said
    assert "?-d" not in r.output and "? Hz" not in r.output and "at build: a size the model sets when built" in r.output
    r = CliRunner().invoke(app, ["validate", str(EXAMPLE_CONFIG.relative_to(REPO)), "--skip-data-check"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[1:] == [
        "plugins: examples/my_model.py (my-spectrum-projection)",
        "models: 2 checked on this machine",
    ]


def test_validate_puts_a_plugin_model_s_error_right_under_the_line_that_announces_it(tmp_path, forget_plugins):
    """The headline "… cannot run on this machine:" was followed by the ``plugins:`` line, its error lines after it."""
    import yaml
    from typer.testing import CliRunner

    from repeval.cli import app

    plugin = _plugin(
        tmp_path,
        "unrunnable_plugin",
        TEAM_MODEL.replace(
            "    embedding_dim = 3\n",
            "    embedding_dim = 3\n    availability = classmethod(lambda cls, p: "
            "'needs the team-weights package: pip install team-weights')\n",
        ),
    )
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(_config([plugin], "team-model")))
    r = CliRunner().invoke(app, ["validate", str(cfg), "--skip-data-check"])
    assert r.exit_code == 1, r.output
    assert r.output.splitlines() == [
        f"{cfg}: valid (1 experiment), but 1 of its 1 embedding model cannot run on this machine:",
        "error: embedding model 'team-model' cannot run here: needs the team-weights package: pip install team-weights",
        f"plugins: {plugin} (team-model)",
    ], r.output


#: a model whose weights file is a parameter, as a team's trained network has it
WEIGHTS_MODEL = """
import numpy as np

from repeval.models import EmbeddingModel, register_model

@register_model("weights-model")
class WeightsModel(EmbeddingModel):
    sample_rate_hz = 16000

    def __init__(self, weights_path: str = "", dim: int = 2):
        super().__init__(weights_path=weights_path, dim=dim)
        self.w = np.load(weights_path).astype(np.float32)[:, :dim]
        self.embedding_dim = self.w.shape[1]

    def embed(self, audio):
        if audio.size == 0:
            raise ValueError("empty audio")
        return (np.abs(audio[: len(audio) // 4 * 4 or 4].reshape(-1, 4)) @ self.w).astype(np.float32)
"""


def test_validate_model_takes_the_params_a_weights_path_is_given_in(tmp_path, forget_plugins):
    from typer.testing import CliRunner

    from repeval.cli import app

    plugin = _plugin(tmp_path, "weights_plugin", WEIGHTS_MODEL)
    np.save(tmp_path / "w.npy", np.ones((4, 3)))
    base = ["validate-model", "weights-model", "--plugin", plugin]
    r = CliRunner().invoke(app, base)  # no weights: the build's error names the file it did not find
    assert r.exit_code == 1 and "FAIL build: FileNotFoundError: [Errno 2] No such file or directory: ''" in r.output
    assert "sr=16000 dim=? (set at build): FAILED" in r.output  # its class' rate, and why its dim is not known
    r = CliRunner().invoke(app, [*base, "--param", f"weights_path={tmp_path / 'w.npy'}", "--param", "dim=3"])
    assert r.exit_code == 0, r.output
    assert "weights-model [weights-model, default] sr=16000 dim=3: OK" in r.output  # dim read as a number
    r = CliRunner().invoke(app, [*base, "--param", "dim"])
    assert r.exit_code == 1 and "--param 'dim' is not NAME=VALUE: write it as --param weights_path=" in r.output
    r = CliRunner().invoke(app, [*base, "--param", "weigths_path=w.npy"])
    assert r.exit_code == 1 and "no parameter 'weigths_path' — did you mean 'weights_path'?" in r.output


def test_a_partition_records_the_weights_a_plugin_model_names_and_a_change_to_them_is_said(
    tmp_path, monkeypatch, forget_plugins
):
    """``model_code`` holds each file the model's params (or class attributes) name — its weights — by content, so a
    checkpoint retrained at the same path is said as a changed plugin file is; each file is read once per process and
    version, and a large one by its size and samples (multi-GB weights are not read on every check)."""
    import hashlib
    import os
    from types import SimpleNamespace

    from repeval.config.embed import EmbeddingModelConfig
    from repeval.models import provenance, resolve_model

    plugin = _plugin(tmp_path, "weights_plugin_recorded", WEIGHTS_MODEL)
    plugins_mod.load_plugins([plugin])
    weights = tmp_path / "w.npy"
    np.save(weights, np.ones((4, 3)))
    mcfg = EmbeddingModelConfig(id="mine", type="weights-model", params={"weights_path": str(weights)})
    fam, params = resolve_model(mcfg)
    monkeypatch.setattr(provenance, "_DIGESTS", {})
    reads: list[str] = []
    digest = provenance._digest
    monkeypatch.setattr(provenance, "_digest", lambda path, size: reads.append(path) or digest(path, size))
    code = provenance.plugin_code(fam, params)
    assert code is not None and code["plugin"] == plugin
    recorded = {"path": str(weights), "size": weights.stat().st_size}
    assert code["files"] == {
        "params.weights_path": {**recorded, "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    }
    assert provenance.plugin_code(fam, params) == code and len(reads) == 2  # the plugin and its weights, read once

    np.save(weights, 2 * np.ones((4, 3)))  # retrained: the same path and size
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    now = provenance.plugin_code(fam, params)
    assert now is not None and len(reads) == 3 and now["files"] != code["files"]
    part = SimpleNamespace(
        name="n/mine/clean",
        stamped=lambda: {"model_code": code},
        rm_command=lambda: "repeval store rm store n/mine/clean",
    )
    said = provenance.changed_code_note(part, "mine", fam, now, "train")
    assert said is not None and said.startswith(
        f"mine: its file {weights} (params.weights_path) has changed since store partition n/mine/clean"
    )
    assert provenance.code_changes({"plugin": plugin, "sha256": code["sha256"]}, now) == []  # recorded before files

    subclass = type("Named", (fam.cls,), {"WEIGHTS": str(weights)})  # a file the class names
    assert provenance.named_files(SimpleNamespace(cls=subclass), {}) == {"Named.WEIGHTS": str(weights)}

    monkeypatch.setattr(provenance, "WHOLE_FILE_BYTES", 1024)  # a large file: its size and samples
    monkeypatch.setattr(provenance, "EDGE_BYTES", 64)
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(4096))
    first = provenance.file_digest(big)
    big.write_bytes(bytes(4095) + b"\x01")
    os.utime(big, ns=(big.stat().st_atime_ns, big.stat().st_mtime_ns + 10**9))
    second = provenance.file_digest(big)
    assert first is not None and second is not None and first[1].startswith("sampled:") and first != second


def test_installed_plugins_register_through_their_entry_points(tmp_path, monkeypatch, forget_plugins):
    _plugin(tmp_path, "team_models", TEAM_MODEL)
    dist = tmp_path / "team_models-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: team-models\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[repeval.models]\nteam = team_models\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = parse_config(_config([], "team-model"))  # no plugins: key — the installed package's entry point
    assert cfg.experiments[0].embedding_models[0].id == "team-model"
    rows = {m["id"]: m for m in list_models()}
    assert rows["team-model"]["plugin"] == "team-models (team_models)"
    assert rows["team-model"]["embedding_dim"] == 3


def test_validate_model_checks_a_plugin_model_also_in_its_own_process(forget_plugins):
    for isolate in (False, True):  # True: the process the isolated families are checked in imports it too
        report = validate_model(EXAMPLE_MODEL, plugins=[str(EXAMPLE)], isolate=isolate)
        assert report.ok, report.summary()
        assert (report.sample_rate_hz, report.embedding_dim) == (16000, 64)
        assert any(c.name == "pickle round trip" for c in report.checks)


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
