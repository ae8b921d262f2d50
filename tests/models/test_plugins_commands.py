"""Plugin models in repeval's commands: listed, validated (in their own process too), their weights recorded."""

from __future__ import annotations

import numpy as np
from plugins_cases import EXAMPLE, EXAMPLE_CONFIG, EXAMPLE_MODEL, REPO, TEAM_MODEL, WEIGHTS_MODEL, _config, _plugin

from repeval.config import parse_config
from repeval.models import plugins as plugins_mod
from repeval.models.validate import list_models, validate_model


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
