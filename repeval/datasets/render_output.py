"""What a render writes beside its audio: the manifest, streamed row by row into a temporary file that becomes
``manifest.<csv|parquet>`` only when the set is whole (:class:`_ManifestWriter`; pyarrow is imported only for
Parquet), and the SoundFont's licence, ``LICENSE-AUDIO.txt`` (:func:`_write_licence`)."""

from __future__ import annotations

import csv
import filecmp
import logging
from pathlib import Path
from typing import Any

from repeval.datasets.render_specs import MANIFEST_FORMATS

log = logging.getLogger(__name__)


class _ManifestWriter:
    """Rows written as they come: a CSV stream, or Parquet in row groups of ``group`` rows, into a temporary file
    that :meth:`close` renames to ``manifest.<fmt>`` only when the set is whole (``commit``). An earlier render's
    manifest is set aside meanwhile (no manifest describes a half-written folder) and, when the new one is the same
    bytes, put back as it was: its time unchanged, a run does not take the same set rendered again for an edited
    manifest. A manifest of the other format (``manifest.csv`` beside a Parquet render) is put back as it was when it
    lists the same rows — the same clips, which a configuration reading it still reads —, else it no longer describes
    the audio and is kept as ``manifest.<csv|parquet>.replaced``, with a warning: never deleted."""

    def __init__(self, out: Path, fields: list[str], fmt: str, group: int = 8192) -> None:
        self.fields, self.fmt, self.group = fields, fmt, group
        self.path = out / f"manifest.{fmt}"
        self.partial = out / f".manifest.{fmt}.partial"
        self.asides = {f: set_aside(out / f"manifest.{f}") for f in MANIFEST_FORMATS}
        for f, aside in self.asides.items():  # an interrupted render's aside is kept: the manifest is not there
            if (out / f"manifest.{f}").is_file():
                (out / f"manifest.{f}").replace(aside)
        self.rows: list[dict[str, Any]] = []
        self._fh: Any = None
        self._csv: Any = None
        self._pq: Any = None
        if fmt == "csv":
            self._fh = self.partial.open("w", newline="")
            self._csv = csv.DictWriter(self._fh, fieldnames=fields)
            self._csv.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        if self._csv is not None:
            self._csv.writerow(row)
            return
        self.rows.append(row)
        if len(self.rows) >= self.group:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.rows:
            return
        table = pa.table({f: pa.array([r[f] for r in self.rows]) for f in self.fields})  # counts stay integers
        if self._pq is None:
            self._pq = pq.ParquetWriter(self.partial, table.schema)
        self._pq.write_table(table)
        self.rows = []

    def close(self, commit: bool) -> None:
        if self._fh is not None:
            self._fh.close()
        else:
            if commit:
                self._flush()
            if self._pq is not None:
                self._pq.close()
        if not commit:
            self.partial.unlink(missing_ok=True)
            return
        previous = self.asides[self.fmt]
        if previous.is_file() and filecmp.cmp(previous, self.partial, shallow=False):
            previous.replace(self.path)  # the same manifest: the earlier file, its time kept
            self.partial.unlink()
        else:
            self.partial.replace(self.path)
        self.asides[self.fmt].unlink(missing_ok=True)
        for f, aside in self.asides.items():
            if f != self.fmt and aside.is_file():
                self._other_manifest(f, aside)

    def _other_manifest(self, fmt: str, aside: Path) -> None:
        """Put back the manifest of format ``fmt`` an earlier render (or a user) wrote, set aside at ``aside``, when it
        lists the rows of the one written: else keep it as ``manifest.<fmt>.replaced``, said in a warning."""
        kept = self.path.with_name(f"manifest.{fmt}")
        if _same_rows(aside, fmt, self.path, self.fmt):
            aside.replace(kept)
            return
        replaced = replaced_path(kept)
        aside.replace(replaced)
        log.warning(
            "%s listed other clips than this render's %s (an earlier render of another spec, or an edit): it no "
            "longer describes the audio in %s, so it is kept as %s — a configuration that read %s reads this set "
            "with manifest: %s",
            kept, self.path.name, kept.parent, replaced.name, kept.name, self.path,
        )  # fmt: skip


def set_aside(manifest: Path) -> Path:
    """Where a render sets an earlier render's ``manifest`` aside while it writes (:class:`_ManifestWriter`): an
    interrupted render leaves it there, and the next render of the folder puts it back or replaces it."""
    return manifest.with_name(f".{manifest.name}.previous")


def other_format(manifest: Path) -> Path | None:
    """The manifest a render in the other ``--format`` writes beside ``manifest`` (``manifest.csv`` ↔
    ``manifest.parquet``); ``None`` for a file no render writes."""
    fmt = manifest.name.removeprefix("manifest.")
    if manifest.name == fmt or fmt not in MANIFEST_FORMATS:
        return None
    (other,) = (f for f in MANIFEST_FORMATS if f != fmt)
    return manifest.with_name(f"manifest.{other}")


def replaced_path(manifest: Path) -> Path:
    """Where a render keeps ``manifest`` it replaced (:class:`_ManifestWriter`): ``manifest.csv.replaced``, or
    ``manifest.csv.replaced-2``, ``-3``, … when an earlier one is kept there — never over it (a manifest a user edited,
    replaced before)."""
    path, n = manifest.with_name(f"{manifest.name}.replaced"), 1
    while path.exists():
        n += 1
        path = manifest.with_name(f"{manifest.name}.replaced-{n}")
    return path


def last_replaced(manifest: Path) -> Path | None:
    """The last of the manifests a render kept in place of ``manifest`` (:func:`replaced_path`); ``None``: none."""

    def number(path: Path) -> int:
        tail = path.name.removeprefix(f"{manifest.name}.replaced")
        return int(tail[1:]) if tail[:1] == "-" and tail[1:].isdigit() else 1

    found = [p for p in manifest.parent.glob(f"{manifest.name}.replaced*") if p.is_file()]
    return max(found, key=number, default=None)


def _same_rows(a: Path, fmt_a: str, b: Path, fmt_b: str) -> bool:
    """Whether manifests ``a`` and ``b`` (each CSV or Parquet, ``fmt_*``) list the same rows, every cell as text; not
    when either cannot be read."""
    import pandas as pd

    def rows(path: Path, fmt: str) -> pd.DataFrame:
        if fmt == "csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        return pd.read_parquet(path).astype(str)

    try:
        return rows(a, fmt_a).equals(rows(b, fmt_b))
    except (OSError, ValueError):
        return False


def _write_licence(out: Path) -> None:
    (out / "LICENSE-AUDIO.txt").write_text(
        "Rendered with the TimGM6mb General-MIDI SoundFont shipped in the pretty-midi wheel "
        "(GPL-2.0, Tim Brechbill) using tinysoundfont.\n"
    )


#: each kind of ``repeval data render --kind``: what its clips are, its label column and its task's type
KINDS = {
    "notes": ("notes", "instrument", "multiclass_classification"),
    "mixtures": ("instrument mixtures", "instruments", "multilabel_classification"),
    "keys": ("chord progressions", "key", "key_estimation"),
}
#: the shipped configurations that read a set where the README renders it (relative to the repository's root)
SHIPPED = {
    "data/quickstart/manifest.csv": "configs/quickstart.yaml",
    "data/mixtures/manifest.csv": "configs/catalog.yaml",
    "data/keys/manifest.csv": "configs/key_estimation.yaml",
}


def rendered_text(kind: str, manifest: Path, clips: int, detail: str = "", kept: int = 0) -> str:
    """What ``repeval data render`` says it rendered: how many clips of ``kind`` (``detail`` after them, e.g. the
    notes' instruments) — and, when ``kept`` of them were already there from a render of the same spec and kept, how
    many it rendered —, where, and how to use them — the catalog dataset entry that reads them (its manifest as
    given: relative paths start from the current directory, as a configuration's do), and, for a set rendered where a
    shipped configuration reads it (:data:`SHIPPED`) from this directory, the command that runs that one. A manifest
    of the other format beside it lists the same clips (:class:`_ManifestWriter` keeps no other): said, either reads
    the set; a Parquet render where a shipped configuration reads the CSV says whether that CSV is there (the same
    clips) or to point the configuration at the Parquet manifest."""
    import yaml

    what, label, task = KINDS[kind]
    out = manifest.parent
    # a shipped configuration reads the CSV manifest: of a Parquet render where it reads one, it reads the CSV twin
    twin = manifest.with_name("manifest.csv")
    config = SHIPPED.get(manifest.as_posix()) or SHIPPED.get(twin.as_posix())
    shipped = config is not None and Path(config).is_file()
    # the shipped configuration's name for the set: an entry copied from here shares its store partitions
    name = (_shipped_name(Path(config), twin) if shipped and config else None) or kind
    entry = {"name": name, "type": "catalog", "manifest": str(manifest), "label_column": label}
    if kind == "mixtures":
        entry["label_separator"] = "|"
    entry["split_column"] = "split"
    flow = yaml.safe_dump(entry, default_flow_style=True, sort_keys=False, width=10**6).strip()
    lines = [
        f"rendered {clips - kept} of {clips} {what}{detail} into {out} ({kept} already there, kept): audio in "
        f"{out / 'audio'}, manifest {manifest}"
        if kept
        else f"rendered {clips} {what}{detail} into {out}: audio in {out / 'audio'}, manifest {manifest}",
        f"an experiment with a task of type {task} (label: {label}) reads it as one of its datasets:",
        f"  - {flow}",
    ]
    others = [p for f in MANIFEST_FORMATS if (p := manifest.with_name(f"manifest.{f}")) != manifest and p.is_file()]
    lines += [f"{p} beside it lists the same clips (an earlier render's, kept): either reads this set" for p in others]
    if shipped and twin == manifest:
        lines.append(f"{config} reads it: `repeval run {config}`")
    elif shipped and twin.is_file():
        lines.append(f"{config} reads {twin}, the same clips: `repeval run {config}`")
    elif shipped:
        lines.append(
            f"{config} reads {twin}, which this render did not write: set its manifest to {manifest} (or render with "
            f"--format csv), then `repeval run {config}`"
        )
    return "\n".join(lines)


def _shipped_name(config: Path, manifest: Path) -> str | None:
    """The name ``config`` gives the catalog dataset that reads ``manifest`` (``rendered_notes``), if it has one."""
    import yaml

    try:
        doc = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError):
        return None
    experiments = doc.get("experiments") if isinstance(doc, dict) else None
    for exp in experiments if isinstance(experiments, list) else []:
        datasets = exp.get("datasets") if isinstance(exp, dict) else None
        for ds in datasets if isinstance(datasets, list) else []:
            if isinstance(ds, dict) and ds.get("manifest") == manifest.as_posix() and ds.get("name"):
                return str(ds["name"])
    return None
