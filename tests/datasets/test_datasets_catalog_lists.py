"""A Parquet catalog manifest whose label column holds a list per row — how pandas writes a column of lists and a
database exports an array: the tags as they are (no ``label_separator``), the one label of a single-label task, a
regression task's targets. It stopped the load with an Arrow cast error."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from dataset_fixtures import ds_cfg, task_cfg

import repeval.datasets.catalog as catalog
from repeval.datasets import load_dataset
from repeval.datasets.manifest_check import decimal_comma_warning

TAGS = task_cfg("label", "multilabel_classification")


def _write(folder, labels, type_, name="m.parquet", **columns):
    n = len(labels)
    table = pa.table(
        {
            "track_id": [f"t{i}" for i in range(n)],
            "audio_path": [f"audio/a{i % 3}.wav" for i in range(n)],
            "label": pa.array(labels, type_),
            **columns,
        }
    )
    pq.write_table(table, folder / name)
    return folder / name


def _load(path, task=TAGS, **kw):
    ds = ds_cfg("cat", "catalog", manifest=str(path), label_column="label", **kw)
    return load_dataset(ds, task), catalog.manifest_problems(ds, task)


@pytest.mark.parametrize(
    "type_",
    [
        pa.list_(pa.string()),
        pa.large_list(pa.large_string()),
        pa.list_(pa.dictionary(pa.int32(), pa.string())),
    ],
    ids=["list", "large_list", "dictionary"],
)
def test_a_list_column_is_a_multilabel_tasks_tags(audio_dir, type_):
    """Each list is a track's tags as they are: a tag holding ``,`` or ``;`` stays one tag (no separator note), an
    empty or null list is a track without tags as an empty cell is, empty items are dropped; the same rows as the
    CSV whose cells join the tags with ``|``."""
    labels = [["rock", "pop"], ["string orchestra, F# minor"], [], None, ["jazz", None, " ", "drum;bass"], [" folk "]]
    (table, report), problems = _load(_write(audio_dir, labels, type_))
    assert problems == [] and report.lines() == [], report.lines()
    want = [["rock", "pop"], ["string orchestra, F# minor"], [], [], ["jazz", "drum;bass"], ["folk"]]
    assert table.column("label").to_pylist() == want
    cells = ["|".join(t for t in (tags or []) if t and t.strip()) for tags in labels]
    csv = audio_dir / "m.csv"
    pacsv.write_csv(pa.table({"track_id": table.column("track_id"), "audio_path": [f"audio/a{i % 3}.wav" for i in
                              range(6)], "label": cells}), csv)  # fmt: skip
    (from_csv, _), _ = _load(csv, label_separator="|")
    assert from_csv.column("label").to_pylist() == want and from_csv.column("split") == table.column("split")


def test_an_annotated_column_may_be_a_list_column_too(audio_dir):
    labels = [["piano"], [], ["voice"]]
    path = _write(audio_dir, labels, pa.list_(pa.string()), seen=pa.array([["voice"], None, []], pa.list_(pa.string())))
    (table, report), _ = _load(path, classes=["piano", "voice"], annotated_column="seen")
    assert report.lines() == [] and table.column("observed").to_pylist() == [["piano", "voice"], None, None]


def test_a_single_label_task_takes_lists_of_one_and_refuses_lists_of_several_naming_the_fix(audio_dir):
    task = task_cfg("label", "multiclass_classification")
    path = _write(audio_dir, [["piano"], ["voice"], [], None, ["piano"]], pa.list_(pa.string()))
    (table, report), _ = _load(path, task)
    assert table.column("label").to_pylist() == [["piano"], ["voice"], ["piano"]]
    assert report.counts() == {"unlabelled": 2}, report.lines()  # an empty list, as an empty cell: no label
    _write(audio_dir, [["piano"], ["voice", "piano"], ["voice", "piano"]], pa.list_(pa.string()))
    with pytest.raises(ValueError) as err:
        load_dataset(ds_cfg("cat", "catalog", manifest=str(path), label_column="label"), task)
    assert str(err.value).endswith(
        "label_column 'label' is a list column and 2 of its rows hold several labels (e.g. t1 (row 1): ['voice', "
        "'piano']), but a multiclass_classification task takes one label per track — set the task's type: "
        "multilabel_classification if they are its tags, else write one label per row (a list of one, or a column "
        "of strings)"
    ), str(err.value)


def test_a_list_of_numbers_is_a_regression_tasks_targets(audio_dir):
    """A list<double> column: each item one target, read as it is (``decimal`` has no effect on it, noted); a row
    with another number of targets than most is refused, as a text cell's is; validate neither refuses the column
    nor warns of decimal commas."""
    task = task_cfg("label", "regression")
    labels = [[0.5, -1.25], [2.0, 3.0], [1e-3, 4.0], [7.0]]
    (table, report), problems = _load(_write(audio_dir, labels, pa.list_(pa.float64())), task, decimal=",")
    assert problems == [] and table.column("label").to_pylist() == [["0.5", "-1.25"], ["2", "3"], ["0.001", "4"]]
    assert report.counts() == {"unknown_labels": 1}
    assert "t3 (row 3: 1 regression target in label, '7', where 3 of its 4 rows have 2" in report.lines()[0], (
        report.lines()
    )
    assert any("decimal ',' has no effect on label_column 'label'" in n for n in report.notes), report.notes
    text = _write(audio_dir, [["0.5", "2"], ["3", "1"]], pa.list_(pa.string()))  # text items: a word is refused
    ds = ds_cfg("cat", "catalog", manifest=str(text), label_column="label")
    assert catalog.manifest_problems(ds, task) == [] and decimal_comma_warning(ds, task) is None
    _write(audio_dir, [["high"], []], pa.list_(pa.string()))
    assert catalog.manifest_problems(ds, task) == [
        "label_column: no row of 'label' holds a regression target, it has cells such as ['high'] (row 0) — check "
        "that label_column 'label' holds numbers, or name=value pairs for a regression task"
    ]


def test_a_track_id_or_audio_list_column_is_refused_naming_it(audio_dir):
    path = _write(audio_dir, ["a", "b"], pa.string(), name="ids.parquet", g=pa.array([["x"], ["y"]]))
    ds = ds_cfg("cat", "catalog", manifest=str(path), label_column="label", group_column="g")
    task = task_cfg("label", "multiclass_classification")
    said = (
        "group_column: the manifest's column 'g' is a list column (list<element: string>), but it takes one value per "
        "row — write it as a column of strings (only label_column and annotated_column may hold lists)"
    )
    assert catalog.manifest_problems(ds, task) == [said]
    nested = _write(audio_dir, [[["a"]], [["b", "c"]]], pa.list_(pa.list_(pa.string())), name="nested.parquet")
    with pytest.raises(ValueError, match="'label' is a list column whose items are not strings or numbers"):
        load_dataset(ds_cfg("cat", "catalog", manifest=str(nested), label_column="label"), TAGS)
    with pytest.raises(ValueError) as err:
        load_dataset(ds, task)
    assert str(err.value) == f"catalog {path}: {said}"
