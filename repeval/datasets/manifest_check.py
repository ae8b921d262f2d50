"""What ``repeval validate`` finds in a ``catalog`` manifest before it is loaded, as the load would refuse it: the
columns the dataset names (each matched to the header cell that holds it with stray spaces around it — `` Audio File ``
for ``Audio File`` — else named with the closest header cell), a header read with the wrong delimiter, a manifest
without rows, bytes that are not UTF-8 anywhere in the columns read, a regression column without a target or whose
target cells are numbers with a thousands separator ``,`` (every one, or most beside single numbers); and what it warns of (a decimal comma read with a
decimal point)."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from repeval import cloud_reach
from repeval.cloud_reach import bounded, error_line
from repeval.datasets.manifest import (
    EmptyManifestError,
    JsonManifestError,
    ManifestRowError,
    _filesystem,
    csv_delimiter,
    encoding_error,
    iter_manifest,
    list_type,
    manifest_columns,
    manifest_format,
    one_value_problem,
)
from repeval.datasets.manifest_format import ManifestEncodingError, WorkbookManifestError
from repeval.uri_text import scheme_refusal

#: how long ``repeval validate`` lets Google Cloud Storage's client retry reaching a manifest (its own default is 15
#: minutes: a machine without the network or the credentials waited that long before the error)
REACH_RETRY_SECONDS = 5


#: the line a shell prints when the Azure SDK's credential chain tries the Azure CLI on a machine without it (the chain
#: goes on to its error, which is said with the fix)
_AZ_NOT_FOUND = re.compile(rb"^(/bin/)?sh: (\d+: )?az: (command )?not found\r?\n?$")


@contextlib.contextmanager
def _without_az_not_found(uri: str) -> Iterator[None]:
    """For an Azure URI, what is written to the standard error (file descriptor 2, a child shell's too) while the block
    runs, written after it without the lines of :data:`_AZ_NOT_FOUND` — every other line kept, in order."""
    if uri.split("://", 1)[0].lower() not in ("abfs", "abfss", "az"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = b"".join(line for line in held.read().splitlines(keepends=True) if not _AZ_NOT_FOUND.match(line))
            if kept:
                os.write(2, kept)


#: what ``repeval validate`` adds to the fix of a manifest it cannot reach (a run reads it where it starts)
VALIDATE_FIX = ", or pass --skip-data-check when only the cluster reaches it"
#: ... and a command that has no --skip-data-check (``repeval run`` reads the manifest where it starts)
RUN_FIX = " on this machine (a run reads the manifest where it starts: on a cluster, the job's driver)"


def reach_problem(uri: str, seconds: float | None = None, fix: str = VALIDATE_FIX) -> str | None:
    """Why ``repeval validate`` (or a run's load) cannot read the manifest at the URI ``uri`` (``s3://``, ``file://``,
    any pyarrow filesystem) as the load would: no such file, or its filesystem not reached from here within
    ``seconds`` of ``gs://`` retries (default :data:`REACH_RETRY_SECONDS`; with a run's ``fix``, :data:`RUN_FIX`, its
    load's :data:`~repeval.cloud_reach.GCS_RETRY_SECONDS`) — the first line of the error, with the fix, ``fix`` after
    it; ``None`` when it can — it is then read through that filesystem, streaming, as a local one."""
    if seconds is None:  # a command that reads the manifest itself (a run) waits for it as long as its load
        seconds = cloud_reach.GCS_RETRY_SECONDS if fix == RUN_FIX else REACH_RETRY_SECONDS
    try:
        with _without_az_not_found(uri):  # "/bin/sh: 1: az: not found" from the Azure SDK: its error follows, said here
            fs, path = _filesystem(bounded(uri, seconds))
            found = fs.get_file_info(path).type != pafs.FileType.NotFound
    except (OSError, ValueError, pa.ArrowException) as exc:  # an unknown scheme, no network, refused credentials
        if "Unrecognized filesystem type" in str(exc):  # http(s)://: said as the configuration is when it is read
            return f"manifest: {scheme_refusal(uri, uri.split('://', 1)[0])}"
        why = error_line(exc, uri, seconds)
        return f"manifest: {uri} cannot be read from here ({why}) — check the URI, the network and the credentials{fix}"
    return None if found else f"manifest: no such file: {uri} — check dataset.manifest"


#: what a one-column header is looked for to hold, in this order: the characters its columns may be separated by
_DELIMITERS = {"\t": "tabs", ";": "semicolons", "|": "vertical bars", ",": "commas"}


def one_column_problem(ds: Any, have: list[str]) -> str | None:
    """The problem of a CSV manifest whose header reads as one column holding another usual delimiter than the one
    it is read with (a ``;``-separated spreadsheet export read with commas): the character, and ``delimiter`` set to
    it as the fix; ``None`` otherwise."""
    if len(have) != 1:
        return None
    now = csv_delimiter(ds.manifest, ds.delimiter)
    seps = [sep for sep in _DELIMITERS if sep != now and sep in have[0]]
    if not seps:
        return None
    sep = seps[0]
    return (
        f"manifest: {ds.manifest}'s header reads as one column, {have[0]!r}: its columns are separated by "
        f"{_DELIMITERS[sep]} ({sep!r}), not {_DELIMITERS.get(now, repr(now))} — set delimiter: "
        + ("tab" if sep == "\t" else repr(sep))
        + " (or write it as Parquet)"
    )


#: what the columns a catalog names by default hold, for the error when a manifest lacks them
_WHAT = {"track_id_column": "track ids", "audio_column": "audio file paths"}


def manifest_problems(ds: Any, task: Any) -> list[str]:
    """What ``load_catalog`` would refuse, from the manifest's header and rows: columns the dataset names that
    the manifest lacks (with the closest column), a manifest without rows (or without a byte), one written as JSON
    (:class:`JsonManifestError`), a row of another number of cells than the header (:class:`ManifestRowError`, in the
    rows read), an audio path no filesystem here reads (:func:`_audio_problem`, every row), and a regression task's
    label column with no target or whose every target is a number with a thousands separator
    (:func:`_target_problem`: read until a batch has held a target and one of another kind — the first, for a usable
    manifest; the whole column only when it is refused)."""
    try:
        return _problems(ds, task)
    except (
        EmptyManifestError,
        JsonManifestError,
        ManifestRowError,
        WorkbookManifestError,
        ManifestEncodingError,
    ) as exc:
        return [f"manifest: {exc}"]


#: the dataset keys that name a manifest's columns
COLUMN_KEYS = ("track_id_column", "audio_column", "label_column", "split_column", "group_column", "annotated_column")


def wanted_columns(ds: Any, task: Any = None) -> dict[str, str | None]:
    """The manifest column each of :data:`COLUMN_KEYS` names (the label column by default the task's ``label``, else
    its ``name``; ``None``: not read)."""
    label = ds.label_column or (task.label or task.name if task is not None else None)
    return {key: label if key == "label_column" else getattr(ds, key) for key in COLUMN_KEYS}


def matched_columns(ds: Any, have: list[str], task: Any = None) -> Any:
    """``ds`` with each column it names that the header ``have`` holds only with other spaces around it named as the
    header writes it — a spreadsheet's `` Audio File `` cell (stray spaces typed around a name) for ``audio_column:
    Audio File``, or ``label_column: ' label '`` for ``label``; ``ds`` itself when it names every column as written
    (or a name matches several header cells, then named by :func:`column_problems`)."""
    update = {}
    for key, col in wanted_columns(ds, task).items():
        if not col or col in have:
            continue
        same = [h for h in have if h.strip() == col.strip()]
        if len(same) == 1:
            update[key] = same[0]
    return ds.model_copy(update=update) if update else ds


def column_problems(ds: Any, task: Any, have: list[str]) -> list[str]:
    """Each column ``ds`` names (:func:`wanted_columns`, matched by :func:`matched_columns`) that the header ``have``
    lacks, with the closest header cell and the header; for a default name without a close cell, the key to set."""
    from repeval.registry import closest

    out = []
    # a header cell with spaces around it: named as it matches (its name without them), the header with its quotes
    names = [h.strip() for h in have]
    header = ", ".join(repr(h) if h != h.strip() else h for h in have)
    for key, col in wanted_columns(ds, task).items():
        if col and col not in have and len(same := [h for h in have if h.strip() == col.strip()]) > 1:
            # ' y' and 'y ' for 'y': "did you mean 'y'?" named the column the dataset names
            out.append(
                f"{key}: the manifest has no column {col!r} but {len(same)} that differ from it only by the spaces "
                f"around them, {', '.join(map(repr, same))} — rename the one to read {col!r} in the header, "
                f"or set {key} to the one to read ({key}: {same[0]!r})"
            )
        elif col and col not in have:
            hint = closest(col.strip(), names)
            field = getattr(type(ds), "model_fields", {}).get(key)
            default = key in _WHAT and field is not None and col == field.default
            out.append(
                f"{key}: the manifest has no column {col!r}"
                + (f" — did you mean {hint!r}?" if hint else "")
                + (
                    f" — set {key} to its column of {_WHAT[key]} ({col!r} is the default)"
                    if default and not hint
                    else ""
                )
                + f" (its columns: {header})"
            )
    return out


def read_columns(ds: Any, task: Any) -> list[str]:
    """The columns the load of ``ds`` reads (:func:`wanted_columns`), each once."""
    return list(dict.fromkeys(c for c in wanted_columns(ds, task).values() if c))


def _problems(ds: Any, task: Any) -> list[str]:
    """:func:`manifest_problems`, raising :class:`EmptyManifestError` and :class:`ManifestRowError`."""
    have = manifest_columns(ds.manifest, ds.delimiter)
    if one := one_column_problem(ds, have):
        # every column would be reported missing, each "did you mean" the whole header
        return [one]
    ds = matched_columns(ds, have, task)
    out = column_problems(ds, task, have)
    if not out and (one := one_value_problem(ds)):
        return [one]
    if not out:
        with contextlib.closing(iter_manifest(ds.manifest, [ds.track_id_column], delimiter=ds.delimiter)) as rows:
            # a blank line is a row of empty cells (the load skips it): read on to the first track id, the first
            # batch's in a manifest that has one
            if not any(pc.any(pc.not_equal(pc.utf8_trim_whitespace(b.column(0)), "")).as_py() for _, b in rows):
                out.append(f"manifest: {ds.manifest} has a header but no rows — write its rows first")
    if not out and (audio := _audio_problem(ds)):
        out.append(audio)
    if not out and (err := encoding_error(ds.manifest, read_columns(ds, task), ds.delimiter)):
        out.append(f"manifest: {err}")  # anywhere in the file, as the load reads it: not only in its first rows
    if not out and getattr(task, "effective_type", None) == "regression" and (text := _target_problem(ds, task)):
        out.append(text)
    return out


def _audio_problem(ds: Any) -> str | None:
    """The first audio path of the manifest that the load refuses: a URI of a scheme no pyarrow filesystem reads, a
    Windows path on another system (:meth:`~repeval.datasets.audio_paths.AudioPaths.unread`) — with its row. Every
    row is read, a batch (a CSV block, a Parquet batch) at a time: the first batch alone let a manifest whose later
    rows hold such a path pass ``repeval validate`` and stop the run's load."""
    from repeval.datasets.audio_paths import AudioPaths
    from repeval.datasets.manifest_rows import AUDIO_SCHEME_FIX, _rowref

    paths_of = AudioPaths(ds)
    with contextlib.closing(iter_manifest(ds.manifest, [ds.audio_column], delimiter=ds.delimiter)) as batches:
        for start, batch in batches:
            paths = pc.utf8_trim_whitespace(batch.column(0).fill_null(""))
            if (unread := paths_of.unread(paths, AUDIO_SCHEME_FIX)) is not None:
                at, why = unread
                return f"audio_column: {_rowref(manifest_format(ds.manifest), start + at)}'s audio path {why}"
    return None


def label_fix(ds: Any, task: Any) -> str:
    """What to check when a catalog's labels left no usable row: the label column and what the task needs of it."""
    kind = getattr(task, "effective_type", None)
    decimal = getattr(ds, "decimal", ".")
    want = {
        "regression": "numbers, or name=value pairs"
        + (f" (decimal mark {decimal!r}, as decimal sets)" if decimal != "." else ""),
        "key_estimation": "keys such as 'C# minor'",
    }.get(str(kind), "labels" + (" in dataset.classes" if ds.classes else ""))
    return f"check that label_column {ds.label_column or task.label or task.name!r} holds {want} for a {kind} task"


def _target_problem(ds: Any, task: Any) -> str | None:
    """The problem of a regression task's label column, read once: no target in any cell (a column of words: every
    row would be dropped and the load stop with :func:`label_fix`), with its first cell of text; else every target cell
    a number such as ``1,234`` split at ``,`` with a decimal point, beside one number each or none
    (:class:`~repeval.datasets.target_text.CommaGroups`). ``None`` as soon as a batch has held a target and a cell of
    several targets of another shape (``0.1,0.2``); else the whole column is read, as the load reads it."""
    from repeval.datasets.manifest_rows import (
        _rowref,
        column_decimal,
        comma_grouped,
        target_cells,
        target_hint,
        target_separator,
    )
    from repeval.datasets.target_text import CommaGroups

    column = ds.label_column or task.label or task.name
    decimal = getattr(ds, "decimal", ".")
    fmt = manifest_format(ds.manifest)
    found, example, hint = False, None, ""
    groups = CommaGroups()
    with contextlib.closing(iter_manifest(ds.manifest, [column], delimiter=ds.delimiter)) as batches:
        for start, batch in batches:
            field, cells = batch.schema.field(0), batch.column(0)
            groups.add(cells, start, comma_grouped(field, ds))
            if not found:
                mark = column_decimal(field, decimal)
                ok, text = target_cells(cells, target_separator(ds), mark)
                found = bool(ok.any())
                if not found and example is None and text.any():
                    i = int(np.flatnonzero(text)[0])
                    example = f"{cells[i].as_py()!r} ({_rowref(fmt, start + i)})"
                    hint = target_hint(cells.slice(i, 1), target_separator(ds), mark)
            if found and groups.other:
                return None
    if found:
        return groups.why(column, lambda row: _rowref(fmt, row))
    what = f"cells such as {example}" if example else "empty cells only"
    fix = hint or f" — {label_fix(ds, task)}"  # the other decimal mark's numbers: that mark's fix
    return f"label_column: no row of {column!r} holds a regression target, it has {what}{fix}"


#: a label cell of two whole numbers split at ``,`` — ``0,31``, a number with a decimal comma read as two targets
_COMMA_CELL = r"^\s*[-+]?\d+\s*,\s*\d+\s*$"


def decimal_comma_warning(ds: Any, task: Any) -> str | None:
    """What ``repeval validate`` warns of a regression catalog read with a decimal point whose first rows' target cells
    (a CSV block, a Parquet batch) are each two whole numbers split at ``label_separator`` ``,`` (``0,31``: two targets,
    0 and 31), naming ``decimal: ','``; the load notes the same of every row. ``None`` otherwise."""
    from repeval.datasets.manifest_rows import COMMA_FIX, target_separator

    if getattr(task, "effective_type", None) != "regression" or target_separator(ds) != ",":
        return None
    ds = matched_columns(ds, manifest_columns(ds.manifest, ds.delimiter), task)
    column = ds.label_column or task.label or task.name
    with contextlib.closing(iter_manifest(ds.manifest, [column], delimiter=ds.delimiter)) as batches:
        first = next(batches, None)
    if first is None:
        return None
    if list_type(first[1].schema.field(0)) is not None:  # each item one target: nothing split at ','
        return None
    cells = pc.utf8_trim_whitespace(first[1].column(0).fill_null(""))
    cells = cells.filter(pc.not_equal(cells, ""))
    if not len(cells) or not pc.all(pc.match_substring_regex(cells, _COMMA_CELL)).as_py():
        return None
    return (
        f"label_column: {f'the first {len(cells)} cells' if len(cells) > 1 else 'the first cell'} of {column!r} "
        f"{'each hold' if len(cells) > 1 else 'holds'} two whole numbers split at "
        f"label_separator ',' (e.g. {cells[0].as_py()!r}), read as two targets — if ',' is its decimal mark, "
        f"{COMMA_FIX}"
    )
