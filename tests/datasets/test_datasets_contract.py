"""Contract over every registered loader, the dataset-name validator, and the CLI support."""

from __future__ import annotations

import itertools
import pickle
import urllib.error
from pathlib import Path

import pytest
from dataset_fixtures import ds_cfg

import repeval.datasets  # noqa: F401  (registers the loaders)
from repeval.datasets.base import DATASET_INFO, DATASETS
from repeval.datasets.cli_support import download, list_datasets
from repeval.datasets.labels import TASK_LABEL_ALIASES, task_label_name
from repeval.tasks import TASK_TYPES

KINDS = {"mirdata", "custom", "catalog"}


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_loader_is_described_and_pickles(name):
    loader = DATASETS.get(name)
    info = DATASET_INFO[name]
    assert info.name == name and info.kind in KINDS
    assert info.labels, f"{name} declares no labels"
    for lab in info.labels:
        assert lab.task_type in set(TASK_TYPES) | {"any"}
        assert lab.splits
    # Ray ships plug-ins by pickle
    assert pickle.loads(pickle.dumps(loader)) is not None
    assert pickle.loads(pickle.dumps(info)) == info


def test_mirdata_loaders_are_registered_under_mirdata_names():
    import mirdata

    wired = [n for n, i in DATASET_INFO.items() if i.kind == "mirdata" and n != "mirdata"]
    assert set(wired) <= set(mirdata.list_datasets())
    for required in (
        "tinysol",
        "beatport_key",
        "giantsteps_key",
        "gtzan_genre",
        "medley_solos_db",
        "mtg_jamendo_autotagging_moodtheme",
        "good_sounds",
        "openmic2018",
    ):
        assert required in wired
    assert {"instrument", "pitch_class"} <= {lab.name for lab in DATASET_INFO["tinysol"].labels}


def test_thesis_task_names_resolve():
    cases = {
        ("magnatagatune", "autotagging"): "tags",
        ("beatport_key", "key_estimation"): "key",
        ("tinysol", "instrument_classification"): "instrument",
        ("tinysol", "pitch_class_classification"): "pitch_class",
        ("vocalset", "singer_identification"): "singer",
        ("vocalset", "technique_identification"): "technique",
        ("gtzan_genre", "genre_classification"): "genre",
    }
    for (ds, task), label in cases.items():
        t = type("T", (), {"name": task, "label": None})()
        assert task_label_name(t, DATASET_INFO[ds]) == label
    assert all(isinstance(v, str) for v in TASK_LABEL_ALIASES.values())


def test_dataset_name_validator_names_the_closest_loader():
    with pytest.raises(ValueError, match="did you mean 'tinysol'"):
        ds_cfg("tinysoll", "mirdata")
    with pytest.raises(ValueError, match="did you mean 'magnatagatune'"):
        ds_cfg("magnatagatun", "custom")
    with pytest.raises(ValueError, match="set type: custom"):
        ds_cfg("vocalset", "mirdata")
    with pytest.raises(ValueError, match="set type: mirdata"):
        ds_cfg("guitarset", "custom")
    # any mirdata data set is valid with type mirdata (generic loader); wired ones also as custom
    assert ds_cfg("guitarset", "mirdata").name == "guitarset"
    assert ds_cfg("tinysol", "custom").name == "tinysol"
    assert ds_cfg("anything", "catalog", manifest="m.csv").name == "anything"
    with pytest.raises(ValueError, match="n_folds ≥ 3"):
        ds_cfg("tinysol", "mirdata", split_type="all", n_folds=2)


def test_dataset_name_validator_runs_in_full_configs():
    from repeval.config import ConfigError, parse_config

    cfg = {
        "experiments": [
            {
                "task": {"name": "instrument", "type": "multiclass_classification"},
                "datasets": [{"name": "tinysl", "type": "mirdata"}],
                "embedding_models": ["mfcc-stats"],
                "downstream_models": [{}],
            }
        ]
    }
    with pytest.raises((ConfigError, ValueError), match="tinysol"):
        parse_config(cfg)


def test_list_datasets():
    listing = list_datasets()
    by_name = {d["name"]: d for d in listing}
    assert by_name["vocalset"]["type"] == "custom"
    assert {t["label"] for t in by_name["vocalset"]["tasks"]} == {"singer", "technique"}
    assert by_name["tinysol"]["type"] == "mirdata" and by_name["catalog"]["type"] == "catalog"
    assert all({"name", "type", "description", "tasks"} <= set(d) for d in listing)
    full = list_datasets(include_unwired_mirdata=True)
    assert "guitarset" in {d["name"] for d in full} and len(full) > len(listing)


def test_datasets_name_describes_where_the_data_comes_from_and_its_layout():
    from typer.testing import CliRunner

    from repeval.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["datasets", "magnatagatune"])
    assert res.exit_code == 0, res.output
    assert "task label 'tags' (multilabel_classification)" in res.output
    assert "annotations_final.csv" in res.output and "Won et al." in res.output  # the loader's on-disk layout
    res = runner.invoke(app, ["datasets", "mtg_jamendo_genre"])  # a subset: a partial of the shared loader
    assert res.exit_code == 0 and "official split files" in res.output, res.output
    res = runner.invoke(app, ["datasets", "beatport_key"])
    assert res.exit_code == 0 and "repeval data download beatport_key --data-home DIR" in res.output
    # mirdata's default folder when dir is not set, and the index alone for data already here
    said = " ".join(runner.invoke(app, ["datasets", "medley_solos_db"]).output.split())
    assert said.startswith("medley_solos_db (mirdata) task label"), said  # no description: no dangling colon
    assert "~/mir_datasets/medley_solos_db is read" in said and "download medley_solos_db --index-only`" in said
    # the generic loader is no data set to download: its NAME is dataset.name's
    said = " ".join(runner.invoke(app, ["datasets", "mirdata"]).output.split())
    assert "download NAME --data-home DIR" in said and "download mirdata" not in said, said
    res = runner.invoke(app, ["datasets", "vocalst"])
    assert res.exit_code == 1 and "did you mean 'vocalset'" in res.output


def test_datasets_name_shows_the_loaders_documentation_as_text_not_its_source():
    """``repeval datasets catalog`` printed its module's docstring as written: RST double backticks (````decimal````),
    code references (``:data:`~repeval.datasets.base.OBSERVED```) and the source's line breaks mid-sentence. Each
    paragraph is now one text wrapped to the terminal, a folder layout (a literal block) kept as it is."""
    from typer.testing import CliRunner

    from repeval.cli import app

    said = CliRunner().invoke(app, ["datasets", "catalog"], env={"COLUMNS": "100"}).output
    assert "``" not in said and ":data:" not in said and ":class:" not in said, said
    assert "carry them in the `OBSERVED` column" in said and "(`ManifestRowError`)" in said, said
    assert max(len(line) for line in said.splitlines()[3:]) <= 100, said
    lines = said.splitlines()
    # a sentence wraps where the width falls: its source's break ("…relative to the manifest's folder, or ``dir`` when
    # given…" over two source lines) is gone, and a line ends short only at a paragraph's or item's end
    short = [a for a, b in itertools.pairwise(lines) if a and b and not b.startswith("- ") and len(a) < 80]
    assert short == [], short
    layout = CliRunner().invoke(app, ["datasets", "magnatagatune"], env={"COLUMNS": "100"}).output
    assert "On-disk layout (`dataset.dir`; the first existing location of each file is used):\n\n    annotations_" in (
        layout
    ), layout


def test_a_missing_data_path_says_how_to_get_the_data(tmp_path, monkeypatch):
    import mirdata.core

    from repeval.config import ConfigError, parse_config
    from repeval.config.loader import _said_once, check_data_paths

    monkeypatch.chdir(tmp_path)
    # mirdata's index folder, as on a machine that never downloaded one
    monkeypatch.setattr(mirdata.core.Index, "get_path", lambda self: str(tmp_path / "indexes" / self.filename))
    exp = {"task": {"name": "instrument_classification", "type": "multiclass_classification"},
           "embedding_models": ["mfcc-stats"], "downstream_models": [{"hidden_units": []}]}  # fmt: skip
    datasets = [
        {"name": "tinysol", "type": "mirdata", "dir": "data/tinysol"},
        {"name": "vocalset", "type": "custom", "dir": "data/vocalset"},
        {"name": "notes", "type": "catalog", "manifest": "data/notes.csv", "label_column": "instrument"},
    ]
    cfg = parse_config({"experiments": [{**exp, "datasets": [ds]} for ds in datasets]})
    with pytest.raises(ConfigError) as err:
        check_data_paths(cfg)
    lines = str(err.value).splitlines()[1:]
    assert len(lines) == 4, lines
    assert "experiments[0].datasets[0].dir" in lines[0] and "`repeval data download tinysol --data-home" in lines[0]
    # mirdata's index, missing too, is said with the folder (not once the folder is there)
    assert "experiments[0].datasets[0].index_path: not set" in lines[1] and "tinysol --index-only`" in lines[1]
    assert "experiments[1].datasets[0].dir" in lines[2] and "`repeval datasets vocalset` gives the source" in lines[2]
    assert "experiments[2].datasets[0].manifest: no such file" in lines[3] and "write the manifest" in lines[3]
    # one dataset three experiments share (a YAML anchor): its missing manifest is said once, naming the other places
    # (it was three long lines saying the same)
    cfg = parse_config({"experiments": [{**exp, "task": {**exp["task"], "name": f"t{i}"}, "datasets": [datasets[2]]}
                                        for i in range(3)]})  # fmt: skip
    with pytest.raises(ConfigError) as err:
        check_data_paths(cfg)
    said = str(err.value)
    assert len(said.splitlines()) == 1 and said.count("no such file") == 1, said
    assert said.endswith("(the same at experiments[1].datasets[0], experiments[2].datasets[0])"), said
    assert "experiments[0].datasets[0].manifest: no such file" in said, said
    # a problem of no place said twice is said once, not with "(the same at )"
    assert _said_once(["a problem", "a problem", "another"]) == ["a problem", "another"]


def test_download_offline_error_names_the_fix(monkeypatch, tmp_path):
    import mirdata.core

    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(mirdata.core.Dataset, "download", offline)
    with pytest.raises(RuntimeError, match=r"network is unreachable.*repeval data download gtzan_genre"):
        download("gtzan_genre", str(tmp_path))
    with pytest.raises(ValueError, match="by hand"):
        download("vocalset", str(tmp_path))
    with pytest.raises(ValueError, match="did you mean 'gtzan_genre'"):
        download("gtzan_genr", str(tmp_path))


def test_download_index_only_fetches_mirdatas_index_and_no_data(monkeypatch, tmp_path):
    """`repeval data download NAME --index-only`: the fix a dataset without index_path is told when mirdata's index is
    not here — only the index (mirdata's partial download "index"), no data home made for it; offline, the fix."""
    import mirdata.core
    from typer.testing import CliRunner

    from repeval.cli import app

    asked = []
    monkeypatch.setenv("HOME", str(tmp_path))  # mirdata's default data home: ~/mir_datasets/<name>
    monkeypatch.setattr(mirdata.core.Dataset, "download", lambda self, **kw: asked.append((self.data_home, kw)))
    res = CliRunner().invoke(app, ["data", "download", "medley_solos_db", "--index-only"])
    index = mirdata.initialize("medley_solos_db").index_path
    assert res.exit_code == 0 and f"index downloaded to {index}" in " ".join(res.output.split()), res.output
    assert [kw for _, kw in asked] == [{"partial_download": ["index"], "force_overwrite": False}]
    assert not Path(asked[0][0]).exists() and not (tmp_path / "mir_datasets").exists()

    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(mirdata.core.Dataset, "download", offline)
    with pytest.raises(RuntimeError, match=r"unreachable.*`repeval data download tinysol --index-only` on a machine"):
        download("tinysol", partial=["index"])


def test_download_passes_other_errors_through(monkeypatch, tmp_path):
    import mirdata.core

    def broken(self, *args, **kwargs):
        raise KeyError("partial_download")

    monkeypatch.setattr(mirdata.core.Dataset, "download", broken)
    with pytest.raises(KeyError):
        download("gtzan_genre", str(tmp_path))


def test_a_misspelled_name_gets_the_names_it_may_mean_in_the_cli_and_the_config():
    """`repeval datasets medly` (meant medley_solos_db) suggested nothing: difflib compares whole names, and an
    abbreviation or a misspelled start of a long name is far from it. So were `mfcc` (mfcc-stats), a mirdata name in
    a config, and a misspelled dataset type, task type or aggregation (pydantic's "expected …", no suggestion)."""
    from typer.testing import CliRunner

    from repeval.cli import app
    from repeval.config import ConfigError, parse_config

    res = CliRunner().invoke(app, ["datasets", "medly"])
    assert res.exit_code == 1
    assert "did you mean 'medley_solos_db', 'medleydb_melody' or 'medleydb_pitch'?" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["validate-model", "mfcc"])
    assert res.exit_code != 0 and "did you mean 'mfcc-stats'?" in " ".join(res.output.split())
    with pytest.raises(ValueError, match="did you mean 'medley_solos_db'"):
        ds_cfg("medly", "mirdata")

    def problem(task: dict, dataset: dict) -> str:
        cfg = {"experiments": [{"task": {"name": "t", "type": "multiclass_classification", **task},
                                "datasets": [{"name": "notes", "manifest": "m.csv", "type": "catalog", **dataset}],
                                "embedding_models": ["mfcc-stats"], "downstream_models": [{}]}]}  # fmt: skip
        with pytest.raises(ConfigError) as err:
            parse_config(cfg)
        return str(err.value)

    assert "got 'catalogue'; expected 'mirdata', 'custom' or 'catalog' — did you mean 'catalog'?" in problem(
        {}, {"type": "catalogue"}
    )
    assert "— did you mean 'multiclass_classification'?" in problem({"type": "multiclass"}, {})
    assert "got 'meen'; expected 'mean', " in problem({"embedding_aggregation": "meen"}, {})
    assert "— did you mean 'mean'?" in problem({"embedding_aggregation": "meen"}, {})
    assert "did you mean" not in problem({"type": "xyz"}, {})  # nothing close: the valid values only
