"""The command line's smoke tests and plans: where a smoke test with ``--run-id`` writes, what ``run.smoke_test``
means, and what ``repeval plan`` says before a run (what the load drops, a store or data not where it looks).
No Ray: each runs the commands' own code with a configuration that embeds nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from repeval.cli import app
from repeval.cli.common import _stage
from repeval.testing.configs import one_row_config


def _config(tmp_path: Path, run_id: str | None) -> Path:
    return one_row_config(tmp_path, run_id)


def test_a_smoke_test_given_a_run_id_runs_beside_that_run_not_into_it(tmp_path):
    """``repeval run CONFIG --run-id exp1 --smoke-test`` trained the smoke test's grids into run exp1 — replacing
    the full run's results and moving its Tune experiments aside as stale — while the README (and the smoke test
    without --run-id) put it under ``<run_id>-smoke``. With --run-id it now runs under ``exp1-smoke`` too, and
    ``repeval plan --smoke-test --run-id exp1`` plans that run."""
    cfg = _config(tmp_path, "cfgid")
    with _stage("run", cfg, "exp1", None, True, None) as ctx:
        pass
    assert ctx.run_id == "exp1-smoke" and ctx.run_dir == tmp_path / "runs" / "exp1-smoke"
    assert not (tmp_path / "runs" / "exp1").exists()
    with _stage("run", cfg, None, None, True, None) as ctx:
        pass
    assert ctx.run_id == "cfgid-smoke"

    longest = "x" * 125  # a valid run id whose smoke run's id is too long: the plan checks the smoke run's
    assert CliRunner().invoke(app, ["plan", str(cfg), "--run-id", longest]).exit_code == 0
    bad = CliRunner().invoke(app, ["plan", str(cfg), "--smoke-test", "--run-id", longest])
    assert bad.exit_code == 1 and f"run id '{longest}-smoke'" in bad.output, bad.output


def test_smoke_test_commands_are_not_refused_for_an_asha_their_smoke_test_trains_without(tmp_path):
    """``repeval run|plan --smoke-test`` of a configuration whose ASHA ``run.max_epochs`` leaves nothing to stop: the
    smoke test trains the entry's first configuration without the scheduler, so it runs and is planned (as with
    ``run.smoke_test: true``); without ``--smoke-test`` the configuration is refused as before."""
    cfg = _config(tmp_path, "cfgid")
    grid = "search: {grid: {learning_rate: [0.001, 0.01]}, scheduler: asha}"
    text = (
        cfg.read_text()
        .replace("run: {", "run: {max_epochs: 3, ")
        .replace("hidden_units: []", f"hidden_units: [], {grid}")
    )
    cfg.write_text(text)
    with _stage("run", cfg, None, None, True, None) as ctx:
        pass
    assert ctx.run_id == "cfgid-smoke" and ctx.cfg.run.max_epochs == 3
    planned = CliRunner().invoke(app, ["plan", str(cfg), "--smoke-test"])
    assert planned.exit_code == 0 and "a smoke test trains one" in planned.output, planned.output
    refused = CliRunner().invoke(app, ["plan", str(cfg)])
    assert refused.exit_code == 2 and "grace_period (10) is not below run.max_epochs (3)" in refused.output


def test_a_configuration_setting_run_smoke_test_is_that_smoke_test_once(tmp_path):
    """A smoke run's config.yaml (``run.smoke_test: true``, run id ``cfgid-smoke``) run again with ``--smoke-test``
    trained into ``cfgid-smoke-smoke``; without it, it was marked a smoke test but had none of its settings, and a
    hand-written ``run.smoke_test: true`` trained the full grid into the full run's id. ``run.smoke_test: true`` now
    means what ``--smoke-test`` means, and the two together the same again: the run id is suffixed once."""
    cfg = _config(tmp_path, "cfgid")
    with _stage("run", cfg, None, None, True, None) as ctx:
        pass
    first = ctx.cfg
    assert ctx.run_id == "cfgid-smoke" and first.run.smoke_test
    copy = tmp_path / "copy.yaml"
    copy.write_text((ctx.run_dir / "config.yaml").read_text())
    for flag in (True, False):
        with _stage("run", copy, None, None, flag, None) as ctx:
            pass
        assert ctx.run_id == "cfgid-smoke" and ctx.cfg == first, flag
    for given, rid in (("y", "y-smoke"), ("y-smoke", "y-smoke")):  # --run-id names the full run, or the smoke run
        with _stage("embed", copy, given, None, False, None) as ctx:
            pass
        assert ctx.run_id == rid, given
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["cfgid-smoke", "y-smoke"]

    hand = tmp_path / "hand.yaml"  # set by hand: the smoke settings too, beside the full run
    hand.write_text(_config(tmp_path, "full").read_text().replace("run: {", "run: {smoke_test: true, "))
    with _stage("run", hand, None, None, False, None) as ctx:
        pass
    assert ctx.run_id == "full-smoke" and ctx.cfg.run.seeds == 1
    assert ctx.cfg.experiments[0].datasets[0].max_tracks == 40
    named = _config(tmp_path, "x-smoke")  # a full run named x-smoke: its smoke test is not that run
    with _stage("run", named, None, None, True, None) as ctx:
        pass
    assert ctx.run_id == "x-smoke-smoke"
    longest = "x" * 125  # plan plans the smoke test a configuration setting run.smoke_test is, without --smoke-test
    bad = CliRunner().invoke(app, ["plan", str(hand), "--run-id", longest])
    assert bad.exit_code == 1 and f"run id '{longest}-smoke'" in bad.output, bad.output
    # the smoke plan of a preset entry says which configuration it trains and the preset's source and departures
    preset = tmp_path / "preset.yaml"
    preset.write_text(hand.read_text().replace("{type: classifier, hidden_units: []}", "{preset: mir_ref_thesis}"))
    flagged = tmp_path / "preset-flagged.yaml"  # the same without run.smoke_test, planned with --smoke-test
    flagged.write_text(preset.read_text().replace("smoke_test: true, ", ""))
    for args in (["plan", str(preset)], ["plan", str(flagged), "--smoke-test"]):
        res = CliRunner().invoke(app, args)
        said = " ".join(res.output.split())
        assert res.exit_code == 0, said
        assert (
            "- probe mir_ref_thesis (hidden []): 1 configuration (M1, the first of the entry's 5: a smoke test trains one)"
            in said
        )
        assert "; preset mir_ref_thesis [Plachouras 2023" in said and "; differs from the source: " in said, said


def _plan_tiny_catalog(tmp_path: Path, monkeypatch: Any, manifest: str, audio: tuple[str, ...], dataset: str) -> str:
    """``repeval plan`` of a one-task config on the catalog ``manifest`` (its ``audio`` files written) from
    ``tmp_path``, no store there; its output."""
    from repeval.testing.badaudio import write_good

    for name in audio:
        write_good(tmp_path / f"{name}.wav", seconds=0.2)
    (tmp_path / "m.csv").write_text(manifest)
    (tmp_path / "exp.yaml").write_text(
        "run: {run_id: r, store: store, runs_dir: runs}\n"
        "experiments:\n- task: {name: t, type: multiclass_classification}\n"
        f"  datasets: [{{name: d, type: catalog, manifest: m.csv, label_column: label{dataset}}}]\n"
        "  embedding_models: [mfcc-stats]\n  downstream_models: [{type: classifier, hidden_units: []}]\n"
    )
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["plan", "exp.yaml"])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "store").exists() and not (tmp_path / "runs").exists()  # the plan only reads
    return res.output


def test_plan_before_anything_is_embedded_says_what_the_load_drops(tmp_path, monkeypatch):
    """A first run's plan — no store yet — skipped loading the datasets, so it never said the catalog row whose audio
    file is missing (a plan with a store said it): the user learnt of it only from the run's warning."""
    manifest = "track_id,audio_path,label\na,a.wav,x\nb,b.wav,y\nc,c.wav,x\ngone,gone.wav,y\n"
    said = _plan_tiny_catalog(tmp_path, monkeypatch, manifest, ("a", "b", "c"), "")
    assert "note: no embedding store at store yet" in said
    assert "note: dataset d at load (3 rows kept): 1 missing audio file: gone (row 5: " in said, said


def test_plan_notes_a_label_that_no_training_track_has(tmp_path, monkeypatch):
    """A label only validation or test tracks have (a split column that put every violin in test) can be learnt by no
    probe: the training stage warned of it, but only once every track was embedded; the plan says it first."""
    manifest = (
        "track_id,audio_path,label,split\na,a.wav,x,train\nb,b.wav,y,test\nc,c.wav,x,validation\nd,d.wav,x,test\n"
    )
    said = _plan_tiny_catalog(tmp_path, monkeypatch, manifest, ("a", "b", "c", "d"), ", split_column: split")
    assert (
        "note: dataset d (t): 1 label has no training track, so no probe can learn it: 'y' (0 validation, 1 test "
        "tracks) — check the splits (a split_column, or split_ratios) or leave them out with dataset.classes"
    ) in said, said
    assert "'x'" not in said
    # a second experiment of the task on the dataset (another model) loads the same rows: said once
    exp = (tmp_path / "exp.yaml").read_text()
    first = exp[exp.index("- task:") :]
    (tmp_path / "exp.yaml").write_text(exp + first.replace("[mfcc-stats]", "[chroma-stats]"))
    said = CliRunner().invoke(app, ["plan", "exp.yaml"]).output
    assert said.count("label has no training track") == 1, said
    (tmp_path / "exp.yaml").write_text(exp)
    # a row dropped for its label is noted without the pointer to `repeval data check`, which lists audio files
    (tmp_path / "m.csv").write_text(manifest + "e,a.wav,,train\n")
    said = CliRunner().invoke(app, ["plan", "exp.yaml"]).output
    assert (
        "note: dataset d at load (4 rows kept): 1 track with no usable label: e (row 6: empty label) — 1 row not evaluated"
        in said
    ), said
    assert "data check" not in said, said


def test_plan_notes_a_split_the_set_is_too_small_to_fill(tmp_path, monkeypatch):
    """Four tracks under the default split_ratios (0.8/0.1/0.1) leave validation empty: the run embedded every track,
    then stopped before training; the plan says it first, with how the tracks are split and the fix."""
    manifest = "track_id,audio_path,label\na,a.wav,x\nb,b.wav,y\nc,c.wav,x\nd,d.wav,y\n"
    said = _plan_tiny_catalog(tmp_path, monkeypatch, manifest, ("a", "b", "c", "d"), "")
    assert (
        "note: `repeval run` would stop before embedding: t on d: the validation split holds none of its tracks — the "
        "dataset's 4 tracks are split train 2, validation 0, test 2: add tracks, give them their splits (a catalog's "
        "split_column), or raise the validation split's share of split_ratios (now 0.8/0.1/0.1)"
    ) in said, said


def test_plan_says_when_the_store_or_the_data_is_not_where_it_looks(tmp_path, monkeypatch):
    """``repeval plan`` run from another folder than the runs' (a relative ``run.store`` and ``manifest``) printed
    "0 complete", "0 done" and nothing else — as if everything were lost — while ``repeval run`` from there stops on
    the manifest, or on a model that cannot run here. The plan now says the store does not exist where it looked
    and what the run would stop on."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "m.csv").write_text("track_id,audio_path,label\na,a.wav,x\n")
    (project / "store").mkdir()
    cfg = project / "exp.yaml"
    cfg.write_text(
        "run: {run_id: r, store: store, runs_dir: runs}\n"
        "experiments:\n- task: {name: t, type: multiclass_classification}\n"
        "  datasets: [{name: d, type: catalog, manifest: data/m.csv, label_column: label}]\n"
        "  embedding_models: [mfcc-stats]\n  downstream_models: [{type: classifier, hidden_units: []}]\n"
    )
    monkeypatch.chdir(tmp_path)  # not the project's folder
    res = CliRunner().invoke(app, ["plan", str(cfg)])
    assert res.exit_code == 0, res.output
    said = res.output
    assert f"note: no embedding store at store yet: nothing is embedded there ({tmp_path / 'store'}: relative" in said
    assert f"note: `repeval run` would stop here: experiments[0].datasets[0].manifest: no such file: {tmp_path}" in said
    assert f"run repeval from {project}" in said

    monkeypatch.chdir(project)
    res = CliRunner().invoke(app, ["plan", str(cfg)])
    assert res.exit_code == 0 and "note:" not in res.output, res.output

    # a model that cannot run here: the plan names it and the fix, as `repeval validate` and the run do
    missing = tmp_path / "no-such-weights.pt"
    cfg.write_text(cfg.read_text().replace("[mfcc-stats]", f"[{{id: mule, params: {{checkpoint: {missing}}}}}]"))
    res = CliRunner().invoke(app, ["plan", str(cfg)])
    assert res.exit_code == 0, res.output
    assert f"note: embedding model 'mule' cannot run here: weights file {missing} not found" in res.output

    # a file given as the store is an error naming what to pass, not a plan with nothing done
    (project / "notes.csv").write_text("track_id\n")
    res = CliRunner().invoke(app, ["plan", str(cfg), "--store", "notes.csv"])
    said = " ".join(res.output.split())
    assert res.exit_code == 1 and "notes.csv is a file, not an embedding store directory" in said, said
    assert "no embedding store" not in said and "already done" not in said

    # rows the load drops (a missing file, a duplicate id): `repeval data check --help` sends the user to the plan
    # for them, which said nothing; it now says what `repeval run` logs, and what --strict fails on
    import numpy as np
    import soundfile as sf

    sf.write(project / "data" / "a.wav", np.zeros(2205, np.float32), 22050)
    (project / "data" / "m.csv").write_text("track_id,audio_path,label\na,a.wav,x\na,a.wav,y\nb,Audio/b.wav,x\n")
    cfg.write_text(cfg.read_text().replace(f"[{{id: mule, params: {{checkpoint: {missing}}}}}]", "[mfcc-stats]"))
    res = CliRunner().invoke(app, ["plan", str(cfg)])
    said = " ".join(res.output.split())
    assert res.exit_code == 0, said
    assert "note: dataset d at load (1 row kept): 1 missing audio file: b (row 4: " in said, said
    assert (
        "; 1 duplicate id: a (row 3: repeats the id of row 2 — only an id's first row is read) — 2 rows not "
        "evaluated, which `repeval run --strict` fails on"
    ) in said
