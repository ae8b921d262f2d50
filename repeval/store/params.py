"""The ``deformation_params`` of rows an earlier repeval wrote. Before, a step its ``p`` skipped kept in a row the values
audiomentations had drawn for the track its process deformed before (``{"type": "Gain", "should_apply": false,
"amplitude_ratio": 0.27}``: a gain that track got, not this one); now such a step is ``{"type": …, "should_apply":
false}`` alone. The old rows tell themselves apart — ``should_apply`` false beside other values — and what the step
did to the row (nothing) is known, so the column is mended in place, once per partition: the embeddings, the part files'
names and so every probe grid trained on them stay as they were. The partition's stamp and manifest then record
:data:`PARAMS_AS_APPLIED`; a partition stamped by this repeval records it from the start."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from repeval.store.layout import read_parquet, write_table_atomic

if TYPE_CHECKING:
    from repeval.store.partition import Partition

#: the stamp's and manifest's key saying every row's ``deformation_params`` holds only what its audio got (a step its
#: ``p`` skipped: its type and ``should_apply: false``)
PARAMS_AS_APPLIED = "params_as_applied"

COLUMN = "deformation_params"

#: in a row's ``deformation_params`` (``json.dumps`` of its steps): a step its ``p`` skipped, and one as a run writes it
#: now — a row with more of the first than of the second is what :func:`bare_skipped` mends
SKIPPED = '"should_apply": false'
BARE = r'\{"type": "[^"]*", "should_apply": false\}'


def bare_skipped(text: str | None) -> str | None:
    """``text``, a row's ``deformation_params``, with each step its ``p`` skipped cut to its type and ``should_apply:
    false``, as a row is written now; ``None`` when no step holds more (nothing to mend, or not repeval's JSON)."""
    if not text:
        return None
    try:
        steps = json.loads(text)
    except ValueError:
        return None
    if not isinstance(steps, list):
        return None
    mended: list[Any] = []
    for step in steps:
        if isinstance(step, dict) and step.get("should_apply") is False and set(step) - {"type", "should_apply"}:
            step = {"type": step.get("type"), "should_apply": False}
        mended.append(step)
    return json.dumps(mended) if mended != steps else None


def _bare_column(column: pa.ChunkedArray) -> list[str | None] | None:
    """:func:`bare_skipped` of each of ``column``'s values (``None`` where a row needs nothing); ``None`` when no row
    does. Only a row whose skipped steps are not all bare (counted in Arrow, its JSON as a run writes it) is parsed."""
    skipped = pc.count_substring(column, SKIPPED)
    maybe = pc.fill_null(pc.not_equal(skipped, pc.count_substring_regex(column, BARE)), False)
    if not pc.any(maybe).as_py():
        return None
    bare = [bare_skipped(t) if m else None for t, m in zip(column.to_pylist(), maybe.to_pylist(), strict=True)]
    return bare if any(b is not None for b in bare) else None


def earlier_rows(part: Partition) -> int:
    """How many of ``part``'s rows :func:`mend_skipped_params` would mend: none when its stamp records
    :data:`PARAMS_AS_APPLIED` (nothing read then), else counted from the one column (``repeval store show``)."""
    if (part.stamped() or {}).get(PARAMS_AS_APPLIED):
        return 0
    found = (_bare_column(part._column(f, COLUMN)) for f in part.part_files())
    return sum(sum(b is not None for b in bare) for bare in found if bare is not None)


def mend_skipped_params(part: Partition) -> int:
    """Mend the ``deformation_params`` of ``part``'s rows written by an earlier repeval (:func:`bare_skipped`) and
    record :data:`PARAMS_AS_APPLIED` in its stamp and manifest; returns how many rows were mended. Reads that one column
    of each part file; a file holding such a row is written anew under its own name (atomically: a reader sees the old
    file or the new one), the other columns as they were. Stopped midway, the next run mends the rest. The caller holds
    the store's lock."""
    mended = 0
    for f in part.part_files():
        column = part._column(f, COLUMN)
        bare = _bare_column(column)
        if bare is None:
            continue
        part.store.check_lock()
        table = read_parquet(part.fs, f)
        at = table.schema.get_field_index(COLUMN)
        texts = pa.array([t if b is None else b for t, b in zip(column.to_pylist(), bare, strict=True)], pa.string())
        table = table.set_column(at, table.schema.field(at), texts)
        write_table_atomic(part.fs, part.path, table, f.rsplit("/", 1)[-1])
        mended += sum(b is not None for b in bare)
    part.record(PARAMS_AS_APPLIED, True)
    return mended
