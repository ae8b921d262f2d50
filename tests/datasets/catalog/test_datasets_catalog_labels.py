"""The catalog loader's labels and rows: keys, tags and regression targets, a missing manifest or column, the
report's examples, the shared data's manifests, repeated ids, local paths, decimal commas, the annotated column."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import yaml
from catalog_cases import _write_csv
from dataset_fixtures import ds_cfg, task_cfg, write_audio
from typer.testing import CliRunner

import repeval.datasets.catalog as catalog
from repeval.cli import app
from repeval.datasets import load_dataset
from repeval.datasets.splits import split_counts


def test_key_labels_are_normalised_and_invalid_keys_reported(audio_dir):
    rows = [
        ["k1", "audio/a0.wav", "Db major"],
        ["k2", "audio/a1.wav", "bb minor"],
        ["k3", "audio/a2.wav", "X"],
        ["k4", "audio/a3.wav", "D minor"],
        ["k5", "audio/a0.wav", "Db major"],
    ]
    manifest = _write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "key"], rows)
    ds = ds_cfg("cat", "catalog", manifest=str(manifest), label_column="key")
    table, report = load_dataset(ds, task_cfg("key_estimation", "key_estimation"))
    assert table.column("label").to_pylist() == [["C# major"], ["A# minor"], ["D minor"], ["C# major"]]
    assert report.unknown_labels == ["k3 (row 4: 'X' is not a key (expected e.g. 'C# minor'))"]
    # dataset.classes written with flats are normalised like the labels
    table, report = load_dataset(
        ds.model_copy(update={"classes": ("Db major", "D minor")}), task_cfg("key_estimation", "key_estimation")
    )
    assert table.column("label").to_pylist() == [["C# major"], ["D minor"], ["C# major"]]
    assert report.unknown_labels[1:] == ["k2 (row 3: label 'A# minor' not in dataset.classes)"]


def test_multilabel_unknown_tags_dropped_and_regression_validated(audio_dir):
    rows = [["m1", "audio/a0.wav", "rock,kazoo"], ["m2", "audio/a1.wav", ""]]
    manifest = _write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "tags"], rows)
    ds = ds_cfg("cat", "catalog", manifest=str(manifest), label_column="tags", classes=["rock", "pop"])
    table, report = load_dataset(ds, task_cfg("tags", "multilabel_classification"))
    assert table.column("label").to_pylist() == [["rock"], []]
    assert report.unknown_labels == ["m1 (row 2: label 'kazoo' not in dataset.classes, dropped)"]

    rows = [
        ["r1", "audio/a0.wav", "0.5;-1"],
        ["r2", "audio/a1.wav", "high;0"],
        ["r3", "audio/a2.wav", "valence=1e-3;arousal=2"],
        ["r4", "audio/a3.wav", ""],
    ]
    manifest = _write_csv(audio_dir / "r.csv", ["track_id", "audio_path", "va"], rows)
    ds = ds_cfg("cat", "catalog", manifest=str(manifest), label_column="va", label_separator=";")
    table, report = load_dataset(ds, task_cfg("emotion", "regression", label="va"))
    assert table.column("label").to_pylist() == [["0.5", "-1"], ["valence=1e-3", "arousal=2"]]
    assert report.unknown_labels[0].startswith("r2 (row 3: non-numeric")
    assert report.unlabelled[0].startswith("r4 (row 5")


def test_tags_joined_by_another_separator_than_label_separator_are_named_with_the_fix(audio_dir):
    """``label_separator`` defaults to ``,``; a manifest joining its tags with ``;`` loaded with every cell one tag
    (``piano;voice`` a class of its own) and nothing said. The report now notes the separator the tags hold."""
    rows = [[f"t{i}", f"audio/a{i}.wav", tags] for i, tags in enumerate(["piano;voice", "piano", "drums;voice"])]
    manifest = _write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "tags"], rows)
    task = task_cfg("tags", "multilabel_classification")
    _, report = load_dataset(ds_cfg("cat", "catalog", manifest=str(manifest), label_column="tags"), task)
    assert report.notes == [
        "every track has one tag of tags split at label_separator ',', but 2 of its 3 tags hold ';' (e.g. "
        "'piano;voice'): if ';' separates the tags, set label_separator: ';'"
    ]
    right = ds_cfg("cat", "catalog", manifest=str(manifest), label_column="tags", label_separator=";")
    table, report = load_dataset(right, task)
    assert not report.notes and table.column("label").to_pylist()[0] == ["piano", "voice"]


def test_missing_manifest_and_columns_name_the_fix(tmp_path):
    ds = ds_cfg("cat", "catalog", manifest=str(tmp_path / "nope.csv"))
    with pytest.raises(FileNotFoundError, match=r"dataset\.manifest"):
        load_dataset(ds, task_cfg("x", "multiclass_classification"))
    m = _write_csv(tmp_path / "m.csv", ["track_id", "audio_path", "label"], [["a", "b", "c"]])
    ds = ds_cfg("cat", "catalog", manifest=str(m), label_column="genre")
    with pytest.raises(ValueError, match="has no column"):
        load_dataset(ds, task_cfg("x", "multiclass_classification"))
    ds = ds_cfg("cat", "catalog", manifest=str(m), label_column="label")
    with pytest.raises(ValueError, match="no usable rows") as err:
        load_dataset(ds, task_cfg("x", "multiclass_classification"))
    assert str(err.value).endswith(f"— check audio_column 'audio_path' and where its relative paths start ({tmp_path}: "
                                   "dataset.dir, else the manifest's folder)")  # fmt: skip
    # a regression task on a column of words: the error names the column and what it must hold
    write_audio(tmp_path / "b")
    with pytest.raises(ValueError, match="non-numeric regression target") as err:
        load_dataset(ds, task_cfg("x", "regression"))
    assert str(err.value).endswith("— check that label_column 'label' holds numbers, or name=value pairs for a "
                                   "regression task")  # fmt: skip
    # …which `repeval validate` says too (it stops at the first batch holding a target: only a column without one)
    fix = "check that label_column 'label' holds numbers, or name=value pairs for a regression task"
    assert catalog.manifest_problems(ds, task_cfg("x", "regression")) == [
        f"label_column: no row of 'label' holds a regression target, it has cells such as 'c' (row 2) — {fix}"
    ]
    m = _write_csv(tmp_path / "m.csv", ["track_id", "audio_path", "label"], [["a", "b", ""], ["c", "b", "high"]])
    assert catalog.manifest_problems(ds, task_cfg("x", "regression")) == [
        f"label_column: no row of 'label' holds a regression target, it has cells such as 'high' (row 3) — {fix}"
    ]
    folder = tmp_path / "m.d"  # a Parquet manifest in a folder: its rows numbered as the load numbers them, from 0
    folder.mkdir()
    pq.write_table(
        pa.table({"track_id": ["a", "c"], "audio_path": ["b", "b"], "label": ["", "high"]}), folder / "0.parquet"
    )
    assert catalog.manifest_problems(ds.model_copy(update={"manifest": str(folder)}), task_cfg("x", "regression")) == [
        f"label_column: no row of 'label' holds a regression target, it has cells such as 'high' (row 1) — {fix}"
    ]
    _write_csv(m, ["track_id", "audio_path", "label"], [["a", "b", "high"], ["c", "b", "valence=0.5"]])
    assert catalog.manifest_problems(ds, task_cfg("x", "regression")) == []  # one target: the load drops row 2
    assert catalog.manifest_problems(ds, task_cfg("x", "multiclass_classification")) == []


def test_report_caps_examples_but_counts_everything():
    from repeval.datasets.base import LoadReport

    report = LoadReport(max_items=3)
    for i in range(10):
        report.add("missing_audio", f"t{i}")
    assert len(report.missing_audio) == 3 and report.count("missing_audio") == 10
    assert report.lines()[0].startswith("10 missing audio files: t0, t1, t2 … (+5)")
    with pytest.raises(ValueError, match="unknown report kind"):
        report.add("typo", "x")


# ---------------------------------------------------------------- the shared data's manifests


def test_shared_manifests_load_as_catalogs(shared_data):
    medley = shared_data / "medley_solos_db_small" / "manifest.csv"
    ds = ds_cfg(
        "medley",
        "catalog",
        manifest=str(medley),
        track_id_column="uuid4",
        audio_column="path",
        label_column="instrument",
        split_column="subset",
    )
    table, report = load_dataset(ds, task_cfg("instrument", "multiclass_classification"))
    assert table.num_rows == 97 and not report.lines()
    assert split_counts(table) == {"train": 80, "validation": 9, "test": 8}

    tinysol = shared_data / "tinysol_mini" / "manifest.csv"
    ds = ds_cfg(
        "tinysol_mini",
        "catalog",
        manifest=str(tinysol),
        track_id_column="path",
        audio_column="path",
        label_column="pitch_class",
    )
    table, report = load_dataset(ds, task_cfg("pitch_class", "multiclass_classification"))
    assert table.num_rows == 12 and not report.lines()

    librosa = shared_data / "librosa_examples" / "manifest.csv"
    ds = ds_cfg(
        "librosa",
        "catalog",
        manifest=str(librosa),
        track_id_column="key",
        audio_column="path",
        label_column="description",
        label_separator=";",
    )
    table, report = load_dataset(ds, task_cfg("description", "multilabel_classification"))
    assert table.num_rows == 5 and not report.lines()
    assert ["jazz", "CC BY 3.0"] in table.column("label").to_pylist()


def test_first_row_of_an_id_wins_even_if_a_later_copy_is_broken(audio_dir, monkeypatch):
    """A later row of an id is a duplicate whatever happens to the first; when the first is left out itself (its
    audio missing), the id has no track though the later row was usable: its line said "only an id's first row is
    read" alone, as if that row had been — it now says the first was left out and to correct or delete it, whether
    the two rows are in one batch or not."""
    rows = [
        ["d1", "audio/a0.wav", "x"],
        ["d2", "audio/gone.wav", "x"],  # first d2 is unusable ...
        ["d1", "audio/gone.wav", "y"],  # ... a later copy of d1 is reported as a duplicate, not as missing audio
        ["d2", "audio/a1.wav", "y"],  # ... and a later d2 never silently replaces the first one
        ["", "audio/a1.wav", "y"],
        ["", "audio/a2.wav", "y"],  # empty ids are not duplicates of each other
    ]
    manifest = _write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "label"], rows)
    ds = ds_cfg("cat", "catalog", manifest=str(manifest), label_column="label")
    for block in (catalog.CSV_BLOCK_BYTES, 40):  # one batch; a batch or two a row
        monkeypatch.setattr("repeval.datasets.manifest.CSV_BLOCK_BYTES", block)
        table, report = load_dataset(ds, task_cfg("label", "multiclass_classification"))
        assert table.column("track_id").to_pylist() == ["d1"]
        assert report.duplicate_ids == [
            "d1 (row 4: repeats the id of row 2 — only an id's first row is read)",
            "d2 (row 5: repeats the id of row 3, itself left out: correct row 3 or delete it — only an id's first row "
            "is read)",
        ]
        assert report.missing_rows.table().column("track_id").to_pylist() == ["d2"]
        assert len(report.other) == 2 and all("empty track id" in o for o in report.other)


def test_a_repeated_ids_first_row_dropped_for_its_number_of_targets_is_said_left_out(audio_dir):
    """A regression row whose number of targets is not most rows' is dropped after the rows are read: when it was the
    first row of a repeated id, the later row's line read as if it had been kept ("only an id's first row is read"),
    though the id had no track — it now says that row was left out itself, with the fix."""
    rows = [["r0", "audio/a0.wav", "0.1"], ["d1", "audio/a1.wav", "0.1;0.2"], ["r2", "audio/a2.wav", "0.3"]]
    rows.append(["d1", "audio/a3.wav", "0.4"])
    manifest = _write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "va"], rows)
    ds = ds_cfg("cat", "catalog", manifest=str(manifest), label_column="va", label_separator=";")
    table, report = load_dataset(ds, task_cfg("va", "regression"))
    assert table.column("track_id").to_pylist() == ["r0", "r2"]
    assert report.duplicate_ids == [
        "d1 (row 5: repeats the id of row 3, itself left out: correct row 3 or delete it — only an id's first row is "
        "read)"
    ]
    assert report.unknown_labels[0].startswith("d1 (row 3: 2 regression targets in va, '0.1;0.2', where 2 of its")


def test_dot_dot_steps_of_local_audio_paths_follow_one_rule(audio_dir):
    """An absolute audio path kept its '..' steps (one file under two names beside a relative path to it) while a
    relative one had them resolved as text — where a folder is a symlink, to another file than the one the system
    opens (``link/../audio`` is the link's target's parent's ``audio``): both are now resolved where the system finds
    the same file, and opened as written where it does not."""
    elsewhere = audio_dir / "elsewhere"
    write_audio(elsewhere / "audio" / "b.wav")
    (elsewhere / "sub").mkdir()
    (audio_dir / "link").symlink_to(elsewhere / "sub")
    rows = [
        ["t0", str(audio_dir / "audio" / ".." / "audio" / "a0.wav"), "x"],
        ["t1", "link/../audio/b.wav", "y"],
        ["t2", "audio/../audio/a1.wav", "y"],
    ]
    manifest = _write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "label"], rows)
    ds = ds_cfg("cat", "catalog", manifest=str(manifest), label_column="label")
    table, report = load_dataset(ds, task_cfg("label", "multiclass_classification"))
    assert table.column("audio_path").to_pylist() == [
        str(audio_dir / "audio" / "a0.wav"),
        str(audio_dir / "link" / ".." / "audio" / "b.wav"),
        str(audio_dir / "audio" / "a1.wav"),
    ]
    assert report.lines() == []


def test_regression_targets_get_a_plain_seeded_split(audio_dir):
    """Each distinct target is not a stratum of its own (those all landed in train): 80/10/10 exactly."""
    rows = [[f"r{i}", f"audio/a{i % 4}.wav", f"{0.001 * i:.3f}"] for i in range(200)]
    manifest = _write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "valence"], rows)
    ds = ds_cfg("cat", "catalog", manifest=str(manifest), label_column="valence")
    table, _ = load_dataset(ds, task_cfg("valence", "regression"))
    assert split_counts(table) == {"train": 160, "validation": 20, "test": 20}
    classes, _ = load_dataset(ds, task_cfg("valence", "multiclass_classification"))
    assert split_counts(classes)["train"] == 200  # as classes, every value is a one-track stratum
    # a ';'-separated export whose decimal mark is a comma: '0,031' split at label_separator ',' into 0 and 31 — noted
    (audio_dir / "eu.csv").write_text("".join(f"{a};{p};{v.replace('.', ',')}\n" for a, p, v in [
        ("track_id", "audio_path", "valence"), *rows]))  # fmt: skip
    eu = ds_cfg("cat", "catalog", manifest=str(audio_dir / "eu.csv"), label_column="valence", delimiter=";")
    table, report = load_dataset(eu, task_cfg("valence", "regression"))
    assert table.column("label")[31].as_py() == ["0", "031"] and report.notes == [
        "every track has two targets in valence, split at label_separator ',', each a whole number (e.g. '0,000': 0 "
        "and 000): if ',' is its decimal mark, set decimal: ',' — each cell is then one target (0.000)"
    ]
    assert not load_dataset(ds, task_cfg("valence", "regression"))[1].notes  # decimal points: nothing to note


def test_decimal_commas_of_a_semicolon_export_are_read_as_the_same_labels_as_decimal_points(audio_dir):
    """A spreadsheet exported where the decimal mark is a comma: ``;`` between the columns (``delimiter``), ``0,031``
    for 0.031 (``decimal: ','``, as pandas' ``decimal=``). Its rows are the point-decimal manifest's — the same labels
    (kept with a decimal point), splits and digests, so a group trained on either is not trained again and runs on
    either compare — while reading it with the default ``decimal`` gives other labels, two whole numbers each: the
    group's tracks digest tells them apart, and the note names the fix. A cell is one target unless
    ``label_separator`` is another character than the mark; the wrong mark either way names its fix."""
    from repeval.run.groups import tracks_digest
    from repeval.run.split_digest import digest_test_rows

    task = task_cfg("valence", "regression")
    rows = [[f"r{i}", f"audio/a{i % 4}.wav", f"{0.001 * i - 0.05:.3f}", "x=1.5e-2|y=2"] for i in range(60)]
    header = ["track_id", "audio_path", "valence", "xy"]
    point = ds_cfg(
        "cat", "catalog", label_column="valence", manifest=str(_write_csv(audio_dir / "m.csv", header, rows))
    )
    (audio_dir / "eu.csv").write_text(
        "".join(";".join(r[:2] + [c.replace(".", ",") for c in r[2:]]) + "\n" for r in [header, *rows])
    )
    eu = ds_cfg("cat", "catalog", manifest=str(audio_dir / "eu.csv"), label_column="valence", delimiter=";",
                decimal=",")  # fmt: skip
    want, _ = load_dataset(point, task)
    got, report = load_dataset(eu, task)
    assert catalog.manifest_problems(eu, task) == [] and report.lines() == []
    assert got.column("label")[31].as_py() == ["-0.019"] and got.to_pylist() == want.to_pylist()
    assert tracks_digest(got) == tracks_digest(want) and digest_test_rows(got) == digest_test_rows(want)
    as_points, report = load_dataset(eu.model_copy(update={"decimal": "."}), task)  # the setting changes the labels
    assert as_points.column("label")[31].as_py() == ["-0", "019"] and "set decimal: ','" in report.notes[0]
    assert tracks_digest(as_points) != tracks_digest(want) and digest_test_rows(as_points) != digest_test_rows(want)

    # the same cells quoted in a comma-separated file: the same note, and decimal ',' reads them (its own module)
    quoted = _write_csv(audio_dir / "quoted.csv", ["track_id", "audio_path", "valence"],
                        [[i, p, v.replace(".", ",")] for i, p, v, _ in rows])  # fmt: skip
    note = load_dataset(point.model_copy(update={"manifest": str(quoted)}), task)[1].notes[0]
    assert note.endswith(": if ',' is its decimal mark, set decimal: ',' — each cell is then one target (-0.050)")

    # `repeval validate` warns of it from the first rows, naming the fix; with decimal ',' it has nothing to say
    config = {"experiments": [{
        "task": {"name": "valence", "type": "regression"},
        "datasets": [eu.model_dump(include={"name", "type", "manifest", "label_column", "delimiter"})],
        "deformations": [], "embedding_models": ["mfcc-stats"], "metrics": ["r2"],
        "downstream_models": [{"type": "linear"}],
    }]}  # fmt: skip
    warned = (
        "warning: experiments[0].datasets[0].label_column: the first 60 cells of 'valence' each hold two whole numbers "
        "split at label_separator ',' (e.g. '-0,050'), read as two targets — if ',' is its decimal mark, set "
        "decimal: ','\n"
    )
    for decimal, said in ((".", warned), (",", "")):
        config["experiments"][0]["datasets"][0]["decimal"] = decimal
        (audio_dir / "c.yaml").write_text(yaml.safe_dump(config))
        res = CliRunner().invoke(app, ["validate", "--skip-model-check", str(audio_dir / "c.yaml")])
        assert (res.exit_code, res.stderr) == (0, said), res.output

    # several targets per cell: at a label_separator other than the mark, named ones too (a name's comma stays)
    xy = task_cfg("xy", "regression")
    pairs, _ = load_dataset(eu.model_copy(update={"label_column": "xy", "label_separator": "|"}), xy)
    assert pairs.column("label")[0].as_py() == ["x=1.5e-2", "y=2"]
    assert pairs.to_pylist() == load_dataset(point.model_copy(update={"label_column": "xy", "label_separator": "|"}),
                                             xy)[0].to_pylist()  # fmt: skip
    # the other mark than the one set: every row named with the fix, and `repeval validate` (manifest_problems) says it
    (points := audio_dir / "points.csv").write_text((audio_dir / "m.csv").read_text().replace(",", ";"))
    wrong = [
        (
            eu.model_copy(update={"label_separator": "|", "decimal": "."}),
            "if ',' is its decimal mark, set decimal: ','",
        ),
        (
            eu.model_copy(update={"manifest": str(points)}),
            "it has a decimal point, but decimal is ',': remove decimal if '.' is its decimal mark",
        ),
    ]
    for ds, fix in wrong:
        with pytest.raises(ValueError, match="no usable rows among 60") as err:
            load_dataset(ds, task)
        assert f"r0 (row 2: non-numeric regression target in valence — {fix})" in str(err.value)
        (problem,) = catalog.manifest_problems(ds, task)
        assert problem.startswith("label_column: no row of 'valence' holds a regression target, it has cells such as")
        assert problem.endswith(f"(row 2) — {fix}")


def test_annotated_column_masks_the_labels_a_track_leaves_unannotated(audio_dir):
    """A catalog manifest names each track's annotated labels (``annotated_column``, cells split like the labels):
    with ``unannotated: mask`` the rows carry them (a track's own labels count as annotated, labels outside
    ``dataset.classes`` are left out, an empty cell annotates every label) and the targets are NaN elsewhere;
    ``unannotated: absent`` reads every unannotated pair as absent; the key is a catalog's."""
    from repeval.datasets.base import OBSERVED
    from repeval.tuning.data import encode

    rows = [
        ["t0", "audio/a0.wav", "piano|violin", "piano | violin|flute"],
        ["t1", "audio/a1.wav", "flute", ""],  # every label annotated
        ["t2", "audio/a2.wav", "", "piano"],  # piano annotated absent; violin, flute unannotated
        ["t3", "audio/a3.wav", "violin", "piano|kazoo"],  # violin present: annotated though not listed
    ]
    header = ["track_id", "audio_path", "instruments", "rated"]
    manifest = str(_write_csv(audio_dir / "m.csv", header, rows))
    pq.write_table(pacsv.read_csv(manifest), audio_dir / "m.parquet")
    task = task_cfg("instruments", "multilabel_classification")
    kw = {"label_column": "instruments", "label_separator": "|", "classes": ["piano", "violin", "flute"]}
    for path in (manifest, str(audio_dir / "m.parquet")):
        table, _ = load_dataset(ds_cfg("cat", "catalog", manifest=path, annotated_column="rated", **kw), task)
        by_id = dict(zip(table.column("track_id").to_pylist(), table.column(OBSERVED).to_pylist(), strict=True))
        assert by_id == {"t0": ["flute", "piano", "violin"], "t1": None, "t2": ["piano"], "t3": ["piano", "violin"]}
    order = sorted(range(4), key=lambda i: table.column("track_id")[i].as_py())
    labels, observed = table.column("label").take(order), table.column(OBSERVED).take(order)
    y, _ = encode(task.type, labels.to_pylist(), ["flute", "piano", "violin"], observed.to_pylist())
    nan = np.nan
    np.testing.assert_array_equal(y, [[0, 1, 1], [1, 0, 0], [nan, 0, nan], [nan, 0, 1]])
    absent, _ = load_dataset(
        ds_cfg("cat", "catalog", manifest=manifest, annotated_column="rated", unannotated="absent", **kw), task
    )
    assert OBSERVED not in absent.column_names
    with pytest.raises(ValueError, match="'unannotated' does not apply"):
        ds_cfg("cat", "catalog", manifest=manifest, unannotated="absent", **kw)
    with pytest.raises(ValueError, match="'annotated_column' does not apply"):
        ds_cfg("tinysol", "mirdata", annotated_column="rated")
    missing = ds_cfg("cat", "catalog", manifest=manifest, annotated_column="rate", **kw)
    assert any(
        "annotated_column: the manifest has no column 'rate'" in p for p in catalog.manifest_problems(missing, task)
    )
