"""Where a dataset takes its audio from, as the store's partitions record it (``sources``), and whether the rows a
partition holds were computed from the audio a run's dataset now points at: the notes a run and ``repeval plan`` say
when they may not be."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from repeval import ray_cluster
from repeval.datasets.rows import iso_time
from repeval.words import counted

#: ``relative_to`` of a source whose paths lie in a ``ray job submit`` job's working directory — Ray's copy of the
#: uploaded directory, unpacked anew at ``…/_ray_pkg_<hash>`` whenever a file of it changes, every file's
#: modification time reset to the unpacking: its paths are recorded relative to that directory, without times
JOB_WORKING_DIR = "job_working_dir"
#: the keys of a source that hold paths
_PATHS = ("dir", "manifest", "index")
#: an unpacked working directory in an absolute path, as a store recorded it before :data:`JOB_WORKING_DIR`
_RAY_PKG = re.compile(r"^(.*/working_dir_files/_ray_pkg_[0-9a-f]+)/")


def _place(path: str) -> str:
    """A configured path as a source records it: a URI as given, a local path made absolute."""
    return path if "://" in path else str(Path(path).resolve())


def _file_identity(uri: str) -> dict[str, Any]:
    """Size and modification time of one file (a catalog's manifest, a mirdata index): one ``stat``, which changes
    when the file is written again (a set rendered anew, another copy); nothing when it cannot be read."""
    from repeval.datasets.catalog import _filesystem

    try:
        fs, path = _filesystem(uri)
        info = fs.get_file_info(path)
    except (OSError, ValueError, pa.ArrowException):
        return {}
    if info.type != pafs.FileType.File or info.mtime_ns is None:
        return {}
    return {"size": info.size, "modified": iso_time(info.mtime_ns)}


def dataset_source(ds: Any, listed: dict[str, Any] | None = None) -> dict[str, Any]:
    """Where a dataset definition takes its audio from, as the store's partitions record it (``sources``): the
    loader, the folder its audio paths start from and, for a catalog (a mirdata data set), the manifest (index: the
    config's ``index_path``, else the one mirdata read) with its size and modification time; and ``audio``, what
    its loader found of the audio files (``listed``: a :class:`~repeval.datasets.base.LoadReport`'s, when it
    checked them): their number, total size and newest modification time — so audio downloaded again into the
    same folder is told from the audio a partition was computed from. Cheap at catalog scale: one ``stat``, none of
    the audio files (the loader's check stats them already)."""
    from repeval.datasets.catalog import _base_dir

    listed = listed or {}
    listing = ds.manifest if ds.type == "catalog" else ds.index_path or listed.get("index")
    root = _base_dir(ds.manifest, ds.dir) if ds.type == "catalog" else ds.dir
    out: dict[str, Any] = {"type": ds.type, "dir": _place(root) if root else None}
    if listing:
        out["manifest" if ds.type == "catalog" else "index"] = _place(listing)
        out.update(_file_identity(listing))
    if listed.get("audio"):
        out["audio"] = dict(listed["audio"])
    here = job_dir()
    return (_relative(out, here) if here else None) or out


def job_dir() -> Path | None:
    """The working directory of the ``ray job submit`` job this process drives (:func:`repeval.ray_cluster.
    job_working_dir`, looked up on each call), resolved; ``None`` outside a job."""
    here = ray_cluster.job_working_dir()
    return Path(here).resolve() if here else None


def _relative(source: dict[str, Any], base: Path) -> dict[str, Any] | None:
    """``source`` as recorded from a job's working directory ``base`` (:data:`JOB_WORKING_DIR`): its paths relative
    to ``base``, without the modification times an unpacked copy resets (the manifest's, the newest audio file's) —
    sizes and counts are compared instead; ``None`` when one of its paths is not under ``base`` (or none is set)."""
    out = {k: v for k, v in source.items() if k != "modified"}
    moved = False
    for key in _PATHS:
        value = source.get(key)
        if not value:
            continue
        if "://" in value:
            return None
        try:
            out[key] = Path(value).relative_to(base).as_posix()
        except ValueError:
            return None
        moved = True
    if not moved:
        return None
    if isinstance(out.get("audio"), dict):
        out["audio"] = {k: v for k, v in out["audio"].items() if k != "newest"}
    out["relative_to"] = JOB_WORKING_DIR
    return out


def _in_copy(source: Any) -> bool:
    """Whether ``source`` was recorded from a job's working directory: relative to it, or (by an earlier repeval)
    at its absolute path in Ray's unpacked copy."""
    if not isinstance(source, dict):
        return False
    paths = (source.get(k) for k in _PATHS)
    return source.get("relative_to") == JOB_WORKING_DIR or any(isinstance(p, str) and _RAY_PKG.match(p) for p in paths)


def _as_in_copy(source: dict[str, Any], base: Path | None) -> dict[str, Any] | None:
    """``source`` as a job's working directory records it (:func:`_relative`): as it is when so recorded; from the
    unpacked copy its absolute paths name (recorded so before); else relative to ``base`` (the job's working
    directory, or the current one: a checkout a job was submitted from), when its paths lie there."""
    if source.get("relative_to") == JOB_WORKING_DIR:
        return source
    for key in _PATHS:
        found = _RAY_PKG.match(str(source.get(key) or ""))
        if found:
            return _relative(source, Path(found.group(1)))
    return _relative(source, base) if base else None


def _same_size(recorded: list[dict[str, Any]], source: dict[str, Any]) -> bool:
    """Whether the audio files ``source``'s loader found (their number and total size) may be those a record from a
    job's working directory found, where times tell nothing: one of them found as many files of the same total
    size, or none found as many (another task may list a subset: not told)."""
    now = source.get("audio")
    if not isinstance(now, dict):
        return True
    alike = [
        a for a in (r.get("audio") for r in recorded) if isinstance(a, dict) and a.get("files") == now.get("files")
    ]
    return not alike or any(a.get("bytes") == now.get("bytes") for a in alike)


def _same_content(recorded: list[dict[str, Any]], source: dict[str, Any]) -> bool:
    """Whether the audio ``source``'s loader found may be that of ``recorded`` by their content digests (``audio``'s
    ``content``: :class:`~repeval.datasets.content.ContentSample`): a record of as many files of the same total size
    has the same digest, or none of them holds one (written before repeval kept it, or of another subset) — times
    aside, so a file rewritten at the same size (a rendering of the same lengths, an upload whose unpacking resets the
    times, a copy that keeps an older time) is told where its sampled ends changed."""
    now = source.get("audio")
    if not isinstance(now, dict) or not now.get("content"):
        return True
    found = (now.get("files"), now.get("bytes"))
    digests = [
        a["content"]
        for a in (r.get("audio") for r in recorded)
        if isinstance(a, dict) and a.get("content") and (a.get("files"), a.get("bytes")) == found
    ]
    return not digests or now["content"] in digests


def run_sources(definitions: Iterable[tuple[Any, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Dataset name → the sources of its definitions in a run (:func:`dataset_source`; several when tasks define it
    differently — the run checks that their shared track ids name the same audio files), from ``(dataset config,
    its loader's report or None)`` pairs."""
    out: dict[str, list[dict[str, Any]]] = {}
    for ds, report in definitions:
        found = out.setdefault(ds.name, [])
        source = dataset_source(ds, getattr(report, "listed", None))
        if source not in found:
            found.append(source)
    return out


def _newest(source: dict[str, Any]) -> str | None:
    audio = source.get("audio")
    return audio.get("newest") if isinstance(audio, dict) else None


def _covered(recorded: list[Any], source: dict[str, Any], base: Path | None = None) -> bool:
    """Whether rows computed from ``recorded`` sources are of ``source``'s audio as far as can be told: one of them
    names the same place (all but ``audio`` alike) and no audio file ``source``'s loader found is newer than the
    newest those saw (audio written since — downloaded or rendered again — may differ), nor is its sampled content
    another (:func:`_same_content`). A count or size alone does not tell: another task may list a subset of the same files. Sources from a job's working directory (where
    ``base`` is the job's, or the checkout it was submitted from) are compared by their paths relative to it and
    by size (:func:`_same_size`): unpacking resets the times."""
    copies = [r for r in recorded if _in_copy(r)]  # the others are compared as they are, times included
    now = _as_in_copy(source, base) if copies else None
    if now is not None:
        place = {k: v for k, v in now.items() if k != "audio"}
        alike = [r for r in (_as_in_copy(r, base) for r in copies) if r is not None]
        same = [r for r in alike if {k: v for k, v in r.items() if k != "audio"} == place]
        if same and _same_size(same, now) and _same_content(same, now):
            return True
    if _in_copy(source):
        return False
    place = {k: v for k, v in source.items() if k != "audio"}
    same = [r for r in recorded if isinstance(r, dict) and {k: v for k, v in r.items() if k != "audio"} == place]
    seen = [t for t in map(_newest, same) if t]
    now_t = _newest(source)
    return bool(same) and (now_t is None or not seen or now_t <= max(seen)) and _same_content(same, source)


def changed_source(part: Any, sources: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The sources ``part`` records when this run's dataset (``sources``) is not among them — the rows it reuses
    may have been computed from other audio under the same track ids: audio elsewhere, or audio written since in
    the same place — else ``None`` (also for a partition that records none: stored before repeval recorded them).
    A source from a job's working directory matches a record of the same paths relative to it from another job (a
    new copy), and one from the checkout those paths resolve under (the current directory, outside a job)."""
    recorded = part.sources()
    base = job_dir() or Path.cwd().resolve()
    if recorded is None or all(_covered(recorded, s, base) for s in sources):
        return None
    return list(recorded)


def describe_source(source: Any) -> str:
    """One source (:func:`dataset_source`) in words: ``/data/notes (manifest /data/notes/manifest.csv, 1,234 bytes,
    modified 2025-…)``, and the audio files its loader found: ``; 120 audio files, 4,567,890 bytes, the newest
    modified 2025-…, content sampled 3f9a…`` (the start of their content digest: what differs when the rest does not); one from a job's working directory ``data/notes in the job's working directory (…)``."""
    if not isinstance(source, dict):
        return json.dumps(source, default=str)
    text = str(source.get("dir") or f"{source.get('type', 'the loader')}'s default folder")
    if source.get("relative_to") == JOB_WORKING_DIR:
        text += " in the job's working directory"
    for key in ("manifest", "index"):
        if source.get(key):
            size = f", {source['size']:,} bytes" if "size" in source else ""
            size += f", modified {source['modified']}" if "modified" in source else ""
            text += f" ({key} {source[key]}{size})"
    audio = source.get("audio")
    if isinstance(audio, dict) and {"files", "bytes"} <= set(audio):
        newest = f", the newest modified {audio['newest']}" if "newest" in audio else ""
        newest += f", content sampled {str(audio['content'])[:12]}" if audio.get("content") else ""
        text += f" ({audio['files']:,} audio files, {audio['bytes']:,} bytes{newest})"
    return text


#: what a listing file's record says of the file itself (:func:`_file_identity`), not of where it is
_FILE_STAT = ("size", "modified")


def _edited_listing(recorded: list[Any], now: list[Any]) -> tuple[str, str] | None:
    """``(key, path)`` of the manifest (or index) that ``now``'s one source shares with every ``recorded`` one, all
    else alike — the file edited in place, not audio elsewhere; ``None`` otherwise."""
    if len(now) != 1 or not isinstance(now[0], dict):
        return None
    key = next((k for k in ("manifest", "index") if now[0].get(k)), None)
    if key is None:
        return None
    here = {k: v for k, v in now[0].items() if k not in _FILE_STAT}
    same = all(isinstance(r, dict) and {k: v for k, v in r.items() if k not in _FILE_STAT} == here for r in recorded)
    return (key, str(now[0][key])) if same and recorded else None


#: the words of :func:`source_notes` for a manifest edited in place (:func:`plan_source_note` counts them)
_EDITED = "embedded before"


def _file_state(source: dict[str, Any]) -> str:
    """A listing file's size and time as a source records them: ``1,234 bytes, modified 2026-…``."""
    said = [f"{source['size']:,} bytes" if "size" in source else "", f"modified {source['modified']}"
            if "modified" in source else ""]  # fmt: skip
    return ", ".join(x for x in said if x) or "not recorded"


def source_notes(
    store_uri: str, dataset: str, changed: dict[str, dict[str, tuple[Any, int]]], now: Any, run: bool = True
) -> list[str]:
    """What a run says once per dataset whose stored rows were computed from audio elsewhere (or written since):
    ``changed`` maps each model, then each of its such partitions' scenario, both in the configuration's order
    (listed so), to (its recorded sources, tracks reused). One note names every model whose partitions recorded the
    same sources (three models embedded by one run: one note, not three alike), with each one's partitions in its
    ``store rm`` command; partitions that recorded other sources get a note of their own — a model's too, when its
    partitions recorded different ones (its partitions are then named in each note by what they recorded). ``run=False``: the
    same without the run's closing words (``repeval plan`` joins its notes, :func:`plan_source_note`). A manifest
    edited in place (a path fixed, a row added: its size and time changed, nothing else) is said in a few words: the
    store keeps no track's audio path, so which stored tracks, if any, the edit pointed at other audio is not known —
    only a track whose path it changed can hold another file's embedding."""
    return [note for note, _ in counted_source_notes(store_uri, dataset, changed, now, run)]


def counted_source_notes(
    store_uri: str, dataset: str, changed: dict[str, dict[str, tuple[Any, int]]], now: Any, run: bool = True
) -> list[tuple[str, int]]:
    """:func:`source_notes`, each with the tracks it counts (its models' alone: ``repeval plan`` adds them up)."""
    alike: dict[str, dict[str, dict[str, tuple[Any, int]]]] = {}  # recorded sources → model → its partitions
    for model, parts in changed.items():
        for sid, part in parts.items():  # each partition by its own record: a model's may differ
            key = json.dumps(part[0], sort_keys=True, default=str)
            alike.setdefault(key, {}).setdefault(model, {})[sid] = part
    return [
        (_source_note(store_uri, dataset, models, now, run), sum(n for ps in models.values() for _, n in ps.values()))
        for models in alike.values()
    ]


def _source_note(
    store_uri: str, dataset: str, models: dict[str, dict[str, tuple[Any, int]]], now: Any, run: bool
) -> str:
    """:func:`source_notes`' note of the ``models`` whose partitions recorded the same sources."""
    import shlex

    recorded = next(iter(next(iter(models.values())).values()))[0]
    reused = sum(n for parts in models.values() for _, n in parts.values())
    names = " ".join(shlex.quote(f"{dataset}/{m}/{sid}") for m, parts in models.items() for sid in parts)
    rm = f"`repeval store rm {shlex.quote(store_uri)} {names} --yes`"
    which = [(m, ", ".join(parts)) for m, parts in models.items()]
    if len(which) == 1:
        what = f"{dataset}/{which[0][0]} ({which[0][1]})"
    elif len({sids for _, sids in which}) == 1:  # every model the same scenarios: said once
        what = f"{dataset} ({', '.join(m for m, _ in which)}: {which[0][1]})"
    else:
        what = f"{dataset} ({'; '.join(f'{m}: {sids}' for m, sids in which)})"
    if edited := _edited_listing(recorded, now):
        key, path = edited
        if now[0].get("relative_to") == JOB_WORKING_DIR:
            path += " in the job's working directory"
        said = (
            f"{what} reuses {counted(reused, 'stored track')} {_EDITED} {key} {path} was edited "
            f"({_file_state(recorded[-1])}; now {_file_state(now[0])}): only a track whose audio path the edit changed "
            f"may hold another file's embedding — if it changed a stored track's path, delete that track's rows "
            f"(`repeval store rm {shlex.quote(store_uri)} {names} --track TRACK_ID --yes`: the next run embeds it "
            f"again) or recompute the partitions ({rm}); "
            "if it fixed labels or splits, added rows or gave a missing file's track its audio, nothing to do"
        )
        return f"store: {said}: this run records the edited {key}, and this is not said again" if run else said
    said = (
        f"{what} holds {counted(reused, 'track')} reused as stored, computed "
        f"from the audio of {' and '.join(describe_source(s) for s in recorded)}; dataset {dataset!r} now takes its "
        f"audio from {' and '.join(describe_source(s) for s in now)}. If that is other audio under the same track ids "
        f"(another copy, catalog, rendering or download), delete the partitions to recompute them ({rm}); if it is "
        "the same audio (moved, copied or downloaded again), nothing to do"
    )
    return f"store: {said}: this run records the new source, and this is not said again" if run else said


def plan_notes(
    store_uri: str, moved: dict[str, dict[str, dict[str, tuple[Any, int]]]], sources: dict[str, Any]
) -> list[tuple[str, str, int]]:
    """``repeval plan``'s :func:`source_notes` (``run=False``) of each dataset of ``moved`` (dataset → model →
    scenario → (recorded sources, tracks)), as :func:`plan_source_note` takes them: (dataset, note, the tracks of
    that note's models alone — a dataset's models with other recorded sources get a note each)."""
    return [
        (dataset, note, n)
        for dataset, changed in moved.items()
        if changed
        for note, n in counted_source_notes(store_uri, dataset, changed, sources[dataset], run=False)
    ]


def plan_source_note(notes: list[tuple[str, str, int]]) -> str:
    """``repeval plan``'s one note for the datasets a run would say :func:`source_notes` of: ``notes`` holds each
    note's dataset, words (``run=False``) and tracks. The plan only reads the store, so it says until a run has
    recorded the new source, after which neither says it."""
    tail = (
        "`repeval run` says so and records the new source (this plan only reads the store), after which neither says it"
    )
    if len(notes) == 1:
        return f"store: {notes[0][1]}: {tail}"
    total = sum(n for _, _, n in notes)
    edits = sum(_EDITED in said for _, said, _ in notes)
    what = ["computed from other audio", "computed from other audio or before an edit of their manifest",
            "embedded before an edit of their manifest"][(edits > 0) + (edits == len(notes))]  # fmt: skip
    datasets = len({d for d, _, _ in notes})
    head = f"store: partitions of {counted(datasets, 'dataset')} reuse {counted(total, 'stored track')} {what}; {tail}:"
    return "\n".join([head, *(f"  - {said}" for _, said, _ in notes)])
