"""What validate and plan check of a mirdata data set before the load: GTZAN's split files, an index or data
folder that is not there, the generic loader's track attributes, an index that cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest
from dataset_fixtures import ds_cfg, task_cfg
from mirdata_cases import MC

from repeval.datasets import load_dataset


def _gtzan_with_split_files(shared: Path, root: Path, test_lines: list[str]) -> Path:
    """The GTZAN sample's layout under ``root`` with fault-filtered split files in ``root/GTZAN_split``."""
    sample = shared / "mirdata_samples" / "mir_datasets" / "gtzan_genre"
    (root / "gtzan_genre").symlink_to(sample / "gtzan_genre")
    (root / "GTZAN_split").mkdir()
    for name, lines in (("train", ["blues/blues.00029.wav"]), ("valid", []), ("test", test_lines)):
        (root / "GTZAN_split" / f"{name}_filtered.txt").write_text("".join(x + "\n" for x in lines))
    return next((shared / "mirdata_samples" / "indexes").glob("gtzan_genre_index_*.json"))


def test_validate_and_plan_check_gtzans_split_files_before_the_load(shared_data, tmp_path, monkeypatch):
    """GTZAN's fault-filtered split files fix every listed track's split: split_type: all passed `repeval validate` and
    stopped the run at the load (the folds cannot rotate), as did split files naming none of the index's tracks (no
    rows). Both are now errors of `validate` (and notes of `plan`: what `repeval run` would stop on), read from the
    index and the split files; without the data here, the missing data folder is the error."""
    from typer.testing import CliRunner

    from repeval.cli import app

    index = _gtzan_with_split_files(shared_data, tmp_path, ["country/country.00000.wav"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # mirdata's default data home: absent
    dataset = f"{{name: gtzan_genre, type: mirdata, dir: {tmp_path}, index_path: {index}, split_type: all}}"
    body = (
        "run: {{store: store, runs_dir: runs}}\nexperiments:\n- task: {{name: genre_classification, type: "
        "multiclass_classification}}\n  datasets: [{}]\n  embedding_models: [mfcc-stats]\n"
        "  downstream_models: [{{type: classifier, hidden_units: []}}]\n"
    )
    Path("c.yaml").write_text(body.format(dataset))
    res = CliRunner().invoke(app, ["validate", "--skip-model-check", "c.yaml"])
    said = " ".join(res.output.split())
    assert res.exit_code == 2, said
    assert "experiments[0].datasets[0].split_type: all, but the fault-filtered split files in" in said
    assert "the 5 folds cannot rotate" in said and "use split_type: single" in said
    plan = " ".join(CliRunner().invoke(app, ["plan", "c.yaml"]).output.split())
    assert "note: `repeval run` would stop here: experiments[0].datasets[0].split_type: all, but the fault" in plan
    Path("c.yaml").write_text(body.format(dataset.replace(", split_type: all", "")))
    res = CliRunner().invoke(app, ["validate", "--skip-model-check", "c.yaml"])
    assert res.exit_code == 0 and "split_type: all" not in res.output, res.output
    # what the load drops, said as plan says it (validate said "valid" alone): the track of no official split file
    assert "note: dataset gtzan_genre at load (1 row kept): 1 other problem: 1 track is in no file" in res.output
    # split files that list none of the index's tracks: the load would keep none
    (tmp_path / "GTZAN_split" / "test_filtered.txt").write_text("rock/rock.00001.wav\n")
    res = CliRunner().invoke(app, ["validate", "--skip-model-check", "c.yaml"])
    said = " ".join(res.output.split())
    assert res.exit_code == 2 and "none of the 2 tracks of mirdata's index is in the fault-filtered split" in said, said
    with pytest.raises(ValueError, match="no usable tracks"):  # what the load says of it
        load_dataset(
            ds_cfg("gtzan_genre", "mirdata", dir=str(tmp_path), index_path=str(index)),
            task_cfg("genre_classification", MC),
        )
    # no dir, and the data not in mirdata's default folder: an error of the data paths (it was a note that the split
    # check was skipped, and the run stopped at the load), not a split problem
    Path("c.yaml").write_text(
        body.format(f"{{name: gtzan_genre, type: mirdata, index_path: {index}, split_type: all}}")
    )
    res = CliRunner().invoke(app, ["validate", "--skip-model-check", "c.yaml"])
    said = " ".join(res.output.split())
    home = tmp_path / "home" / "mir_datasets" / "gtzan_genre"
    assert (
        res.exit_code == 2
        and f"datasets[0].dir: not set, and mirdata's default data folder of gtzan_genre does not exist: {home}" in said
    ), said
    assert "split_type" not in said and "note:" not in said, said


def test_a_dataset_without_index_path_whose_mirdata_index_is_not_here_is_said_before_the_load(
    shared_data, tmp_path, monkeypatch
):
    """mirdata 1.0 ships no index files: a mirdata dataset without ``index_path`` on a machine that never downloaded
    mirdata's index passed `repeval validate` and `plan`, and the run stopped only at the load. It is now an error of
    the data paths (validate, the run's start; a note of plan) naming both fixes, without the network."""
    import mirdata.core
    from typer.testing import CliRunner

    from repeval.cli import app

    root = shared_data / "medley_solos_db_small"
    indexes = tmp_path / "indexes"  # mirdata's index folder, as on a machine that never downloaded one
    monkeypatch.setattr(mirdata.core.Index, "get_path", lambda self: str(indexes / self.filename))
    default = mirdata.initialize("medley_solos_db").index_path
    monkeypatch.chdir(tmp_path)
    body = (
        "run: {{store: store, runs_dir: runs}}\nexperiments:\n- task: {{name: instrument_classification, type: "
        "multiclass_classification}}\n  datasets: [{{name: medley_solos_db, type: mirdata, dir: {}{}}}]\n"
        "  embedding_models: [mfcc-stats]\n  downstream_models: [{{type: classifier, hidden_units: []}}]\n"
    )
    Path("c.yaml").write_text(body.format(root, ""))
    fix = (
        f"experiments[0].datasets[0].index_path: not set, and mirdata's own index of medley_solos_db is not on this "
        f"machine ({default}): mirdata 1.0 ships no index files and a run does not download one — set "
        "dataset.index_path to a local index JSON, or fetch mirdata's where the network is reachable: `repeval data "
        "download medley_solos_db --index-only` (without --index-only, the data too)"
    )
    for args in (["validate", "--skip-model-check", "c.yaml"], ["run", "c.yaml"]):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2 and fix in " ".join(res.output.split()), (args, res.output)
    assert not Path("runs").exists()  # the run stopped before its run directory
    plan = " ".join(CliRunner().invoke(app, ["plan", "c.yaml"]).output.split())
    assert f"note: `repeval run` would stop here: {fix}" in plan, plan
    with pytest.raises(FileNotFoundError, match="repeval data download medley_solos_db"):  # what the load says
        load_dataset(ds_cfg("medley_solos_db", "mirdata", dir=str(root)), task_cfg("instrument", MC))
    # dir set to a folder that does not exist: the folder and the missing index are said at once, each with its fix
    # (the index was said only once dir was fixed) — and so for a custom dataset whose loader reads through mirdata
    gone = tmp_path / "gone"
    lost = (
        f"experiments[0].datasets[0].dir: no such directory: {gone} — fix the path (relative paths start from "
        f"{tmp_path}), or fetch it with `repeval data download medley_solos_db --data-home {gone}`"
    )
    for kind in ("mirdata", "custom"):
        Path("c.yaml").write_text(body.format(gone, "").replace("type: mirdata", f"type: {kind}"))
        res = CliRunner().invoke(app, ["validate", "--skip-model-check", "c.yaml"])
        said = " ".join(res.output.split())
        assert res.exit_code == 2 and "2 problems" in said and lost in said and fix in said, (kind, res.output)
    # an index_path that does not exist: the fix fetches mirdata's own index, which a dataset without index_path reads
    Path("c.yaml").write_text(body.format(root, f", index_path: {tmp_path / 'no_index.json'}"))
    said = " ".join(CliRunner().invoke(app, ["validate", "--skip-model-check", "c.yaml"]).output.split())
    hint = "fetch mirdata's own index with `repeval data download medley_solos_db --index-only` (needs network access)"
    assert f"index_path: no such file: {tmp_path / 'no_index.json'}" in said and f"{hint} and remove index_path" in said
    Path("c.yaml").write_text(body.format(root, f", index_path: {root / 'medley_solos_db_index_small.json'}"))
    res = CliRunner().invoke(app, ["validate", "--skip-model-check", "c.yaml"])
    assert res.exit_code == 0 and "index" not in res.output, res.output


def test_a_dataset_without_dir_whose_data_is_not_in_mirdatas_default_folder_is_said_before_the_load(
    shared_data, tmp_path, monkeypatch
):
    """A mirdata dataset without ``dir`` reads mirdata's default folder (``$HOME/mir_datasets/<name>``): when it did
    not exist, `repeval validate` and `plan` passed (GTZAN and the generic loader: a note that the split check was
    skipped) and the run stopped only at the load. It is now an error of the data paths — validate, the run's start; a
    note of plan — naming the folder and both fixes (with mirdata's index when it is missing too: one error, not
    two); `--skip-data-check` skips it, and the default folder there, or `dir` set, is not affected."""
    import mirdata
    import mirdata.core
    from typer.testing import CliRunner

    from repeval.cli import app

    root = shared_data / "medley_solos_db_small"
    index = root / "medley_solos_db_index_small.json"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # mirdata's default data home: ~/mir_datasets/<name>
    home = tmp_path / "home" / "mir_datasets" / "medley_solos_db"
    assert mirdata.initialize("medley_solos_db").data_home == str(home)  # the folder mirdata's load reads
    monkeypatch.chdir(tmp_path)
    body = (
        "run: {{store: store, runs_dir: runs}}\nexperiments:\n- task: {{name: instrument_classification, type: "
        "multiclass_classification}}\n  datasets: [{{name: medley_solos_db, type: mirdata{}}}]\n"
        "  embedding_models: [mfcc-stats]\n  downstream_models: [{{type: classifier, hidden_units: []}}]\n"
    )
    Path("c.yaml").write_text(body.format(f", index_path: {index}"))
    fix = (
        "experiments[0].datasets[0].dir: not set, and mirdata's default data folder of medley_solos_db does not "
        f"exist: {home} — set dataset.dir to the folder that holds the data, or fetch it where the network is "
        "reachable: `repeval data download medley_solos_db --data-home DIR` and set dataset.dir to DIR (without "
        f"--data-home, into {home})"
    )
    for args in (["validate", "--skip-model-check", "c.yaml"], ["run", "c.yaml"]):
        res = CliRunner().invoke(app, args)
        said = " ".join(res.output.split())
        assert res.exit_code == 2 and fix in said and "either" not in said, (args, res.output)
    assert not Path("runs").exists()  # the run stopped before its run directory
    plan = " ".join(CliRunner().invoke(app, ["plan", "c.yaml"]).output.split())
    assert f"note: `repeval run` would stop here: {fix}" in plan, plan
    res = CliRunner().invoke(app, ["validate", "--skip-data-check", "--skip-model-check", "c.yaml"])
    assert res.exit_code == 0 and "mir_datasets" not in res.output, res.output
    with pytest.raises(FileNotFoundError, match="has no data under"):  # what the load says of it
        load_dataset(ds_cfg("medley_solos_db", "mirdata", index_path=str(index)), task_cfg("instrument", MC))
    # mirdata's index not here either: said in the same error, the index's own not added
    monkeypatch.setattr(mirdata.core.Index, "get_path", lambda self: str(tmp_path / "indexes" / self.filename))
    Path("c.yaml").write_text(body.format(""))
    res = CliRunner().invoke(app, ["validate", "--skip-model-check", "c.yaml"])
    said = " ".join(res.output.split())
    assert (
        res.exit_code == 2
        and f"{fix}; mirdata's own index of it is not on this machine either ({tmp_path / 'indexes'}" in said
    ), said
    assert "--index-only`, or set dataset.index_path)" in said and "index_path: not set" not in said, said
    # the data in mirdata's default folder, or dir set: nothing said, and the load reads it from there
    Path("c.yaml").write_text(body.format(f", index_path: {index}"))
    home.parent.mkdir(parents=True)
    home.symlink_to(root)
    res = CliRunner().invoke(app, ["validate", "--skip-model-check", "c.yaml"])
    assert res.exit_code == 0 and "dir" not in res.output, res.output
    rows, _ = load_dataset(ds_cfg("medley_solos_db", "mirdata", index_path=str(index)), task_cfg("instrument", MC))
    assert rows.num_rows == 97 and rows.column("audio_path")[0].as_py().startswith(str(home))
    home.unlink()
    Path("c.yaml").write_text(body.format(f", dir: {root}, index_path: {index}"))
    res = CliRunner().invoke(app, ["validate", "--skip-model-check", "c.yaml"])
    assert res.exit_code == 0 and "mir_datasets" not in res.output, res.output


def test_the_generic_loaders_track_attributes_are_checked_from_the_index_and_metadata(shared_data):
    """The generic mirdata loader reads the task's label, group_column and split from track attributes: a missing
    attribute, split_type: all over every track's official train/validation/test split (Medley-solos-DB's subsets),
    and a fold or n_folds beyond the tracks' official folds (TinySOL's 5) each stopped the load; the check finds them
    with mirdata's real loaders on the shared data, and what it passes loads."""
    from repeval.datasets.load import load_folds
    from repeval.datasets.mirdata_check import _generic

    root = shared_data / "medley_solos_db_small"
    medley = {"dir": str(root), "index_path": str(root / "medley_solos_db_index_small.json")}
    task = task_cfg("instrument", MC)
    found = _generic(ds_cfg("medley_solos_db", "mirdata", split_type="all", **medley), task)
    assert len(found) == 1 and found[0].startswith("split_type: all, but every track's split (or subset) attribute")
    with pytest.raises(ValueError, match="cannot rotate"):  # what the load says
        load_folds(ds_cfg("medley_solos_db", "mirdata", split_type="all", **medley), task)
    assert _generic(ds_cfg("medley_solos_db", "mirdata", **medley), task) == []
    (found,) = _generic(ds_cfg("medley_solos_db", "mirdata", group_column="singer", **medley), task)
    assert found.startswith("group_column: mirdata dataset 'medley_solos_db' tracks have no attribute 'singer'")
    (found,) = _generic(ds_cfg("medley_solos_db", "mirdata", **medley), task_cfg("x", MC, label="colour"))
    assert found.startswith("task.label: mirdata dataset 'medley_solos_db' tracks have no attribute 'colour'")
    root = shared_data / "tinysol_mini"
    tinysol = {"dir": str(root), "index_path": str(root / "tinysol_index_mini.json")}
    task = task_cfg("instrument", MC, label="instrument_full")
    (found,) = _generic(ds_cfg("tinysol", "mirdata", split_type="all", n_folds=6, **tinysol), task)
    assert "n_folds: 6, but the tracks' split attribute gives 5 official folds" in found
    (found,) = _generic(ds_cfg("tinysol", "mirdata", fold=5, **tinysol), task)
    assert "fold: 5, but the tracks' split attribute gives 5 official folds (0..4)" in found
    assert _generic(ds_cfg("tinysol", "mirdata", split_type="all", n_folds=5, **tinysol), task) == []
    assert _generic(ds_cfg("tinysol", "mirdata", fold=4, **tinysol), task) == []


def test_an_unreadable_index_is_a_problem_of_the_split_check_not_a_crash(shared_data, tmp_path):
    from repeval.datasets.mirdata_check import split_problems

    _gtzan_with_split_files(shared_data, tmp_path, ["country/country.00000.wav"])
    bad = tmp_path / "index.json"
    bad.write_text("{not json")
    ds = ds_cfg("gtzan_genre", "mirdata", dir=str(tmp_path), index_path=str(bad))
    (found,) = split_problems(ds, task_cfg("genre_classification", MC))
    assert found.startswith("index_path: mirdata could not read gtzan_genre's index or split files (JSONDecodeError")
