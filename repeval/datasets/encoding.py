"""Label encoding and decoding per task type.

Rows carry labels as lists of strings (see :mod:`repeval.datasets.base`). The probe stage turns
them into arrays with :func:`encode_labels` and turns predictions back into label strings with
:func:`decode_labels`:

- ``multiclass_classification``: one label per row → class index (``int64``), classes sorted.
- ``multilabel_classification``: any number of labels per row → multi-hot ``float32`` matrix;
  ``top_n`` keeps the N most frequent labels (MagnaTagATune's top-50 protocol). ``observed`` (a data set that
  annotates only some labels per track, OpenMIC-2018 with ``dataset.unannotated: mask``): NaN where a row leaves a
  label unannotated — neither present nor absent, as the probes train and the metrics score them.
- ``regression``: one decimal string per target dimension (``["0.31", "-0.2"]``) or named values
  (``["valence=0.31", "arousal=-0.2"]``) → ``float32`` matrix.
- ``key_estimation``: mir_eval key labels (``"C# minor"``), enharmonics normalised to sharps
  (``"Db major"`` → ``"C# major"``, ``"bb minor"`` → ``"A# minor"``) → index into
  :data:`KEY_CLASSES` (24 keys). Unparseable keys raise :class:`InvalidLabelError` naming them.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from repeval.datasets.target_text import plain_target, target_why

#: pitch classes, sharps only (enharmonics are mapped onto these)
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_NATURALS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
#: the 24 key classes of a key-estimation task, in this order
KEY_CLASSES: tuple[str, ...] = tuple(f"{p} major" for p in PITCH_CLASSES) + tuple(f"{p} minor" for p in PITCH_CLASSES)

TASK_TYPE_NAMES = ("multiclass_classification", "multilabel_classification", "regression", "key_estimation")

_MODES = {"major": "major", "maj": "major", "minor": "minor", "min": "minor", "m": "minor", "": ""}
_KEY_RE = re.compile(
    r"^\s*([A-Ga-g])\s*([#♯b♭]*)[\s_:\-]*((?i:major|minor|maj|min)|m)?\s*$",
)
_PITCH_RE = re.compile(r"^\s*([A-Ga-g])\s*([#♯b♭]*)\s*(-?\d+)?\s*$")


class InvalidLabelError(ValueError):
    """Labels that cannot be encoded for the task; ``bad`` lists (row index, label) pairs."""

    def __init__(self, message: str, bad: list[tuple[int, str]]) -> None:
        super().__init__(message)
        self.bad = bad


def _semitone(letter: str, accidentals: str) -> int:
    shift = sum(1 if a in "#♯" else -1 for a in accidentals)
    return (_NATURALS[letter.upper()] + shift) % 12


def normalize_pitch_class(label: str) -> str:
    """``"Db"`` / ``"db4"`` / ``"C#"`` → ``"C#"`` (sharps only; an octave number is dropped)."""
    m = _PITCH_RE.match(label)
    if not m:
        raise ValueError(
            f"'{label}' is not a pitch class: expected a letter A-G with optional # or b, e.g. 'C#' or 'Eb'"
        )
    return PITCH_CLASSES[_semitone(m.group(1), m.group(2))]


def normalize_key(label: str) -> str:
    """Normalise a key label to mir_eval form with sharps: ``"Db major"`` → ``"C# major"``.

    Accepts ``"Eb minor"``, ``"bb minor"``, ``"F#:min"``, ``"Am"``, ``"C maj"``, ``"F#_ minor"``
    (a Beatport typo), unicode ♯/♭, ``"B# major"`` → ``"C major"``. The mode is required: a bare
    tonic, ``X`` (uncategorised) and mode ``other`` raise ``ValueError`` — such tracks are not
    usable for a 24-class key task and are reported by the loaders.
    """
    text = str(label).strip()
    m = _KEY_RE.match(text)
    if not m:
        raise ValueError(f"'{label}' is not a key: expected a tonic and a mode, e.g. 'C# minor' or 'Eb major'")
    mode_raw = m.group(3) or ""
    mode = _MODES[mode_raw if mode_raw == "m" else mode_raw.lower()]
    if not mode:
        raise ValueError(f"'{label}' has no mode: write '{text} major' or '{text} minor'")
    return f"{PITCH_CLASSES[_semitone(m.group(1), m.group(2))]} {mode}"


def is_key(label: str) -> bool:
    try:
        normalize_key(label)
    except ValueError:
        return False
    return True


def _single(label: Sequence[str] | str, i: int) -> str:
    if isinstance(label, str):
        return label
    if len(label) != 1:
        raise InvalidLabelError(
            f"row {i} has {len(label)} labels {list(label)!r}; a single-label task needs exactly one "
            "(use task type multilabel_classification for tag lists)",
            [(i, repr(list(label)))],
        )
    return label[0]


def _parse_regression(label: Sequence[str] | str, i: int) -> tuple[list[str] | None, list[float]]:
    items = [label] if isinstance(label, str) else list(label)
    names: list[str] | None = None
    values: list[float] = []
    for item in items:
        # read as a catalog reads a cell (:func:`~repeval.datasets.target_text.target_why`: U+2212 minus; no nan, inf
        # or 1_000, which Python's float reads); a finite number of ASCII characters (most rows) at C speed
        text, name = item.strip(), None
        try:
            value = float(text)
            plain = math.isfinite(value) and text.isascii() and "_" not in text
        except ValueError:
            plain = False
        if not plain:
            if why := target_why(item, where=f"row {i}"):
                raise InvalidLabelError(why, [(i, item)])
            text = plain_target(item)
            for sep in ("=", ":"):
                if sep in text:
                    name, text = (x.strip() for x in text.split(sep, 1))
                    break
            value = float(text)
        values.append(value)
        if name is not None:
            names = (names or []) + [name]
    if names is not None and len(names) != len(values):
        raise InvalidLabelError(f"row {i}: mix of named and unnamed regression targets {items!r}", [(i, repr(items))])
    return names, values


def encode_labels(
    task_type: str,
    label_lists: Sequence[Sequence[str] | str],
    classes: Sequence[str] | None = None,
    *,
    top_n: int | None = None,
    on_unknown: Literal["error", "ignore"] = "error",
    observed: Sequence[Sequence[str] | None] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Encode per-row labels for ``task_type``; returns ``(y, classes)``.

    ``classes`` fixes the vocabulary (pass the training split's classes when encoding validation
    and test rows). Without it: multiclass → sorted distinct labels; multilabel → sorted distinct
    labels, or the ``top_n`` most frequent (ties broken alphabetically); key → :data:`KEY_CLASSES`;
    regression → target names (``y0``, ``y1``, ... for unnamed values).

    A label outside ``classes`` raises :class:`InvalidLabelError` for single-label tasks (or gets
    ``-1`` with ``on_unknown="ignore"``); for multilabel tasks it raises only when ``classes`` was
    given explicitly without ``top_n`` (tags outside a top-N vocabulary are dropped by design).

    ``observed`` (multilabel only; the rows' :data:`repeval.datasets.base.OBSERVED` column): each row's annotated
    labels, present or absent (``None``: every label). A label a row neither has nor annotates is NaN in ``y`` —
    unannotated, which :func:`repeval.metrics.compute_metrics` leaves out of that label's scores; without
    ``observed`` every label a row lacks is absent (0), as with ``dataset.unannotated: absent``.
    """
    if task_type not in TASK_TYPE_NAMES:
        raise ValueError(f"unknown task type '{task_type}'; valid: {', '.join(TASK_TYPE_NAMES)}")
    if observed is not None and task_type != "multilabel_classification":
        raise ValueError(
            f"observed (the labels each row annotates) applies to multilabel_classification, not {task_type}: drop it"
        )
    if task_type == "regression":
        return _encode_regression(label_lists, classes)
    if task_type == "multilabel_classification":
        y, out_classes = _encode_multilabel(label_lists, classes, top_n, on_unknown)
        return (y, out_classes) if observed is None else (_mask_unannotated(y, out_classes, observed), out_classes)
    return _encode_single(task_type, label_lists, classes, on_unknown)


def _mask_unannotated(y: np.ndarray, classes: Sequence[str], observed: Sequence[Sequence[str] | None]) -> np.ndarray:
    """``y`` with NaN where a row's label is neither a positive nor in its ``observed`` list (labels outside
    ``classes`` are ignored there)."""
    if len(observed) != len(y):
        raise ValueError(f"observed has {len(observed)} rows but the labels {len(y)}: give one entry per row")
    index = {c: j for j, c in enumerate(classes)}
    for i, obs in enumerate(observed):
        if obs is None:
            continue
        annotated = y[i] == 1  # a positive is annotated
        annotated[[index[x] for x in ([obs] if isinstance(obs, str) else obs) if x in index]] = True
        y[i, ~annotated] = np.nan
    return y


def _encode_regression(
    label_lists: Sequence[Sequence[str] | str], classes: Sequence[str] | None
) -> tuple[np.ndarray, list[str]]:
    parsed = [_parse_regression(lab, i) for i, lab in enumerate(label_lists)]
    dims = {len(v) for _, v in parsed}
    if len(dims) > 1:
        raise InvalidLabelError(
            f"regression targets have different lengths {sorted(dims)}; every row needs the same number",
            [(i, repr(v)) for i, (_, v) in enumerate(parsed) if len(v) != len(parsed[0][1])][:20],
        )
    d = dims.pop() if dims else (len(classes) if classes else 0)
    named = next((names for names, _ in parsed if names is not None), None)
    out_classes = list(classes) if classes is not None else (named or [f"y{j}" for j in range(d)])
    if len(out_classes) != d:
        raise ValueError(f"regression targets have {d} values per row but {len(out_classes)} names {out_classes}")
    y = np.zeros((len(parsed), d), dtype=np.float32)
    for i, (names, values) in enumerate(parsed):
        if names is not None:
            missing = set(out_classes) - set(names)
            if missing:
                raise InvalidLabelError(f"row {i}: regression targets {sorted(missing)} missing", [(i, repr(names))])
            lookup = dict(zip(names, values, strict=True))
            values = [lookup[c] for c in out_classes]
        y[i] = values
    return y, out_classes


def _encode_multilabel(
    label_lists: Sequence[Sequence[str] | str],
    classes: Sequence[str] | None,
    top_n: int | None,
    on_unknown: str,
) -> tuple[np.ndarray, list[str]]:
    lists = [[lab] if isinstance(lab, str) else list(lab) for lab in label_lists]
    if classes is None:
        counts = Counter(t for row in lists for t in set(row))
        if top_n is not None:
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_n]
            out_classes = sorted(t for t, _ in ranked)
        else:
            out_classes = sorted(counts)
    else:
        out_classes = list(classes)
    index = {c: j for j, c in enumerate(out_classes)}
    y = np.zeros((len(lists), len(out_classes)), dtype=np.float32)
    bad: list[tuple[int, str]] = []
    strict = classes is not None and top_n is None and on_unknown == "error"
    for i, row in enumerate(lists):
        for t in row:
            j = index.get(t)
            if j is None:
                if strict:
                    bad.append((i, t))
                continue
            y[i, j] = 1.0
    if bad:
        raise InvalidLabelError(
            f"{len(bad)} labels are not among the {len(out_classes)} classes, e.g. {bad[:5]}; "
            "pass top_n or on_unknown='ignore' to drop them",
            bad,
        )
    return y, out_classes


def _encode_single(
    task_type: str,
    label_lists: Sequence[Sequence[str] | str],
    classes: Sequence[str] | None,
    on_unknown: str,
) -> tuple[np.ndarray, list[str]]:
    singles = [_single(lab, i) for i, lab in enumerate(label_lists)]
    if task_type == "key_estimation":
        bad: list[tuple[int, str]] = []
        normalised: list[str] = []
        for i, text in enumerate(singles):
            try:
                normalised.append(normalize_key(text))
            except ValueError:
                normalised.append("")
                bad.append((i, text))
        if bad and on_unknown == "error":
            raise InvalidLabelError(
                f"{len(bad)} labels are not keys, e.g. {bad[:5]} — expected e.g. 'C# minor'; loaders report and drop "
                "such tracks",
                bad,
            )
        singles = normalised
        out_classes = list(classes) if classes is not None else list(KEY_CLASSES)
    else:
        out_classes = list(classes) if classes is not None else sorted(set(singles))
    index = {c: j for j, c in enumerate(out_classes)}
    y = np.full(len(singles), -1, dtype=np.int64)
    unknown: list[tuple[int, str]] = []
    for i, text in enumerate(singles):
        j = index.get(text)
        if j is None:
            if text:
                unknown.append((i, text))
            continue
        y[i] = j
    if unknown and on_unknown == "error":
        raise InvalidLabelError(
            f"{len(unknown)} labels are not among the {len(out_classes)} classes, e.g. {unknown[:5]} — a class "
            "absent from the training split cannot be predicted; check the split or pass on_unknown='ignore'",
            unknown,
        )
    return y, out_classes


def decode_labels(
    task_type: str,
    y: np.ndarray,
    classes: Sequence[str],
    *,
    threshold: float = 0.5,
) -> list[list[str]]:
    """Turn encoded labels or probe outputs back into per-row label lists.

    Single-label tasks accept class indices ``(n,)`` or scores ``(n, C)`` (argmax); multilabel
    accepts multi-hot or probabilities ``(n, C)`` (``>= threshold``); regression gives decimal
    strings (named ``name=value`` when the classes are not the default ``y0``, ``y1``, ...).
    """
    y = np.asarray(y)
    if task_type not in TASK_TYPE_NAMES:
        raise ValueError(f"unknown task type '{task_type}'; valid: {', '.join(TASK_TYPE_NAMES)}")
    classes = list(classes)
    if task_type == "regression":
        y2 = y.reshape(len(y), -1)
        default = classes == [f"y{j}" for j in range(len(classes))]
        return [[f"{v:.6g}" if default else f"{c}={v:.6g}" for c, v in zip(classes, row, strict=True)] for row in y2]
    if task_type == "multilabel_classification":
        if y.ndim != 2 or y.shape[1] != len(classes):
            raise ValueError(f"multilabel outputs must have shape (n, {len(classes)}), got {y.shape}")
        return [[classes[j] for j in np.flatnonzero(row >= threshold)] for row in y]
    idx = y.argmax(axis=1) if y.ndim == 2 else y.astype(np.int64)
    return [[classes[j]] if 0 <= j < len(classes) else [] for j in idx]


@dataclass(frozen=True)
class LabelEncoder:
    """A fitted vocabulary for one task (picklable, so it travels to Ray workers)."""

    task_type: str
    classes: tuple[str, ...]

    @classmethod
    def fit(
        cls, task_type: str, label_lists: Sequence[Sequence[str] | str], *, top_n: int | None = None
    ) -> LabelEncoder:
        _, classes = encode_labels(task_type, label_lists, top_n=top_n, on_unknown="ignore")
        return cls(task_type, tuple(classes))

    def encode(
        self,
        label_lists: Sequence[Sequence[str] | str],
        on_unknown: Literal["error", "ignore"] = "error",
        observed: Sequence[Sequence[str] | None] | None = None,
    ) -> np.ndarray:
        return encode_labels(self.task_type, label_lists, self.classes, on_unknown=on_unknown, observed=observed)[0]

    def decode(self, y: np.ndarray, threshold: float = 0.5) -> list[list[str]]:
        return decode_labels(self.task_type, y, self.classes, threshold=threshold)

    @property
    def n_outputs(self) -> int:
        return len(self.classes)
