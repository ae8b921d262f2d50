"""Plugins: a model outside repeval (a module or file in ``plugins:``) imported in the driver and the Ray workers, and
its faults said in one line naming the fix."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from plugins_cases import EXAMPLE, EXAMPLE_MODEL, REPO, TEAM_MODEL, WEIGHTS_MODEL, _config, _plugin, _problem

from repeval.config import ConfigError, parse_config
from repeval.models import MODELS
from repeval.models import plugins as plugins_mod
from repeval.models.validate import list_models


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
