"""What a catalog's load report says of the rows it drops: counts in the singular or the plural as they are, and a
regression row with another number of targets than the others named by its row, as every other dropped row is."""

from __future__ import annotations

from dataset_fixtures import ds_cfg, task_cfg

from repeval.datasets import load_dataset


def _manifest(path, rows):
    path.write_text("\n".join(["track_id,audio_path,label", *rows]) + "\n")
    return str(path)


def test_counts_of_one_are_singular_and_of_several_plural(audio_dir):
    """The report read "1 duplicate ids" and "1 unknown labels"."""
    task = task_cfg("genre", "multiclass_classification")
    one = _manifest(audio_dir / "one.csv", ["a,audio/a0.wav,rock", "a,audio/a1.wav,rock", "b,audio/a2.wav,polka"])
    _, report = load_dataset(ds_cfg("cat", "catalog", manifest=one, label_column="label", classes=["rock"]), task)
    assert report.lines() == [
        "1 duplicate id: a (row 3)",
        "1 unknown label: b (row 4: label 'polka' not in dataset.classes)",
    ]
    rows = ["a,audio/a0.wav,rock", "a,audio/a1.wav,rock", "a,audio/a2.wav,rock", "b,audio/a2.wav,polka"]
    two = _manifest(audio_dir / "two.csv", [*rows, "c,audio/a2.wav,jazz"])
    _, report = load_dataset(ds_cfg("cat", "catalog", manifest=two, label_column="label", classes=["rock"]), task)
    assert [line.split(":")[0] for line in report.lines()] == ["2 duplicate ids", "2 unknown labels"]
