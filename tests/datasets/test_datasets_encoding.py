"""Label encoding / decoding per task type."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from repeval.datasets.encoding import (
    KEY_CLASSES,
    InvalidLabelError,
    LabelEncoder,
    decode_labels,
    encode_labels,
    normalize_key,
    normalize_pitch_class,
)
from repeval.tasks import TASK_TYPES


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("Db major", "C# major"),
        ("bb minor", "A# minor"),
        ("Eb minor", "D# minor"),
        ("Gb maj", "F# major"),
        ("C#:min", "C# minor"),
        ("Am", "A minor"),
        ("F#_ minor", "F# minor"),  # Beatport annotation typo fixed by mir_ref
        ("F# Major", "F# major"),
        ("B# major", "C major"),
        ("Cb minor", "B minor"),
        ("e♭ minor", "D# minor"),
        ("D minor", "D minor"),
    ],
)
def test_normalize_key(raw, key):
    assert normalize_key(raw) == key
    assert key in KEY_CLASSES
    # mir_eval accepts every normalised key
    import mir_eval

    mir_eval.key.validate_key(key)


@pytest.mark.parametrize("raw", ["X", "x", "C other", "C", "Bb", "H major", "", "C major minor"])
def test_invalid_keys_raise_with_the_label(raw):
    with pytest.raises(ValueError, match=r"key|mode"):
        normalize_key(raw)


def test_key_encoding_reports_invalid_keys():
    with pytest.raises(InvalidLabelError) as err:
        encode_labels("key_estimation", [["Db major"], ["X"], ["C major"], ["nonsense"]])
    assert [i for i, _ in err.value.bad] == [1, 3]
    y, classes = encode_labels("key_estimation", [["Db major"], ["X"], ["bb minor"]], on_unknown="ignore")
    assert classes == list(KEY_CLASSES) and len(classes) == 24
    assert classes[y[0]] == "C# major" and y[1] == -1 and classes[y[2]] == "A# minor"
    assert decode_labels("key_estimation", y, classes) == [["C# major"], [], ["A# minor"]]


def test_pitch_class():
    assert normalize_pitch_class("Db4") == "C#"
    assert normalize_pitch_class("A#2") == "A#"
    assert normalize_pitch_class("c") == "C"
    with pytest.raises(ValueError):
        normalize_pitch_class("H2")


def test_multiclass():
    y, classes = encode_labels("multiclass_classification", [["violin"], ["flute"], ["violin"]])
    assert classes == ["flute", "violin"] and y.tolist() == [1, 0, 1] and y.dtype == np.int64
    # scores decode by argmax
    assert decode_labels("multiclass_classification", np.array([[0.2, 0.8], [0.9, 0.1]]), classes) == [
        ["violin"],
        ["flute"],
    ]
    with pytest.raises(InvalidLabelError, match="not among"):
        encode_labels("multiclass_classification", [["oboe"]], classes)
    with pytest.raises(InvalidLabelError, match="exactly one"):
        encode_labels("multiclass_classification", [["a", "b"]])
    y, _ = encode_labels("multiclass_classification", [["oboe"]], classes, on_unknown="ignore")
    assert y.tolist() == [-1]


def test_multilabel_and_top_n():
    rows = [["rock", "guitar"], ["rock"], ["piano"], [], ["rock", "piano", "rare"]]
    y, classes = encode_labels("multilabel_classification", rows)
    assert classes == ["guitar", "piano", "rare", "rock"] and y.dtype == np.float32
    assert y.sum(axis=1).tolist() == [2, 1, 1, 0, 3]
    y2, top = encode_labels("multilabel_classification", rows, top_n=2)
    assert top == ["piano", "rock"]
    assert y2.tolist() == [[0, 1], [0, 1], [1, 0], [0, 0], [1, 1]]
    assert decode_labels("multilabel_classification", y2, top) == [["rock"], ["rock"], ["piano"], [], ["piano", "rock"]]
    with pytest.raises(InvalidLabelError):
        encode_labels("multilabel_classification", [["jazz"]], ["rock"])
    y3, _ = encode_labels("multilabel_classification", [["jazz", "rock"]], ["rock"], on_unknown="ignore")
    assert y3.tolist() == [[1.0]]


def test_multilabel_observed_masks_unannotated_pairs_as_the_probes_do():
    """OpenMIC-2018 with ``unannotated: mask``: a label a track neither has nor annotates is NaN (unannotated), not 0
    — the targets the probe stage builds and the metrics score on the annotated pairs only."""
    from repeval.tuning.data import encode

    rows = [["piano"], ["guitar", "piano"], [], ["voice"]]
    observed = [["piano", "voice"], None, ["guitar"], []]  # row 1: every label annotated; row 3: a positive only
    y, classes = encode_labels("multilabel_classification", rows, observed=observed)
    assert classes == ["guitar", "piano", "voice"]
    np.testing.assert_array_equal(y, [[np.nan, 1, 0], [1, 1, 0], [0, np.nan, np.nan], [np.nan, np.nan, 1]])
    probe_y, probe_classes = encode("multilabel_classification", rows, None, observed)
    np.testing.assert_array_equal(probe_y, y)
    assert probe_classes == classes
    enc = LabelEncoder.fit("multilabel_classification", rows)
    np.testing.assert_array_equal(enc.encode(rows, observed=observed), y)
    with pytest.raises(ValueError, match="observed has 1 rows but the labels 4"):
        encode_labels("multilabel_classification", rows, observed=[None])
    with pytest.raises(ValueError, match="applies to multilabel_classification, not multiclass_classification"):
        encode_labels("multiclass_classification", [["a"]], observed=[None])


def test_regression_plain_and_named():
    y, names = encode_labels("regression", [["0.5", "-1"], ["2", "3e-1"]])
    assert names == ["y0", "y1"] and y.dtype == np.float32
    np.testing.assert_allclose(y, [[0.5, -1], [2, 0.3]])
    assert decode_labels("regression", y, names) == [["0.5", "-1"], ["2", "0.3"]]
    y, names = encode_labels("regression", [["valence=0.5", "arousal=-0.25"], ["arousal=1", "valence=0"]])
    assert names == ["valence", "arousal"]
    np.testing.assert_allclose(y, [[0.5, -0.25], [0, 1]])
    assert decode_labels("regression", y, names)[0] == ["valence=0.5", "arousal=-0.25"]
    with pytest.raises(InvalidLabelError, match="not a number"):
        encode_labels("regression", [["high"]])
    with pytest.raises(InvalidLabelError, match="different lengths"):
        encode_labels("regression", [["1"], ["1", "2"]])


def test_every_task_type_has_a_spec_and_encodes():
    samples = {
        "multiclass_classification": [["a"], ["b"]],
        "multilabel_classification": [["a", "b"], []],
        "regression": [["1.0"], ["2.0"]],
        "key_estimation": [["C major"], ["a minor"]],
    }
    for ttype, spec in TASK_TYPES.items():
        y, classes = encode_labels(ttype, samples[ttype])
        assert len(y) == 2 and classes
        assert spec.loss in {"cross_entropy", "binary_cross_entropy", "mse"}
    with pytest.raises(ValueError, match="unknown task type"):
        encode_labels("ranking", [["a"]])


def test_label_encoder_pickles_and_round_trips():
    enc = LabelEncoder.fit("multilabel_classification", [["a", "b"], ["b"], ["c"]], top_n=2)
    enc2 = pickle.loads(pickle.dumps(enc))
    assert enc2 == enc and enc.n_outputs == 2
    y = enc2.encode([["b"], ["a", "b", "c"]], on_unknown="ignore")
    assert enc2.decode(y) == [["b"], ["a", "b"]]


labels = st.lists(st.sampled_from(["piano", "violin", "flute", "oboe", "harp"]), min_size=1, max_size=40)


@given(labels)
def test_multiclass_round_trip(values):
    rows = [[v] for v in values]
    y, classes = encode_labels("multiclass_classification", rows)
    assert classes == sorted(set(values))
    assert decode_labels("multiclass_classification", y, classes) == rows


@given(st.lists(st.sets(st.sampled_from(["a", "b", "c", "d"])), min_size=1, max_size=30))
def test_multilabel_round_trip(sets):
    rows = [sorted(s) for s in sets]
    y, classes = encode_labels("multilabel_classification", rows)
    assert decode_labels("multilabel_classification", y, classes) == rows


@given(
    st.sampled_from(["C", "C#", "Db", "D", "D#", "Eb", "E", "F", "F#", "Gb", "G", "G#", "Ab", "A", "A#", "Bb", "B"]),
    st.sampled_from(["major", "minor"]),
    st.booleans(),
)
def test_enharmonic_keys_share_a_class(tonic, mode, lower):
    import mir_eval

    raw = f"{tonic.lower() if lower else tonic} {mode}"
    key = normalize_key(raw)
    assert "b" not in key.split()[0]
    # same semitone as mir_eval's own parser
    assert mir_eval.key.split_key_string(key) == mir_eval.key.split_key_string(f"{tonic} {mode}")
