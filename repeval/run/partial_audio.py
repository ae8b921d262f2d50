"""The test tracks a run scored on embeddings of partial audio: store rows whose ``audio_note`` says their file was
decoded only in part (a WAV, MP3 or FLAC cut short, embedded under ``run.truncated_audio: decode``; an Ogg file
without its end, under either setting — :mod:`repeval.audio.partial`).

The evaluation counts them (:func:`partial_test_tracks`) and records them in ``results.parquet``'s schema metadata
(:data:`PARTIAL_KEY`), where ``repeval runs`` (from the footer it reads anyway) and ``repeval report`` find them. It
reads each tested partition's manifest (``noted_rows``), and only a partition holding noted rows has its ``track_id``
and ``audio_note`` columns read (of the part files that hold a note) and matched against the run's test split."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from repeval.store.partition import CUT, OGG
from repeval.words import counted

if TYPE_CHECKING:  # `repeval runs` reads the record without the stages' imports
    from repeval.run.context import RunContext

log = logging.getLogger("repeval.runner")

#: ``results.parquet``'s schema metadata: a JSON list of the tested partitions whose test tracks include rows embedded
#: from partial audio, each ``{"task", "dataset", "model", "scenario", "tracks", "cut", "ogg"}`` (``tracks``: the
#: test tracks noted; ``cut``/``ogg``: of them, by kind); absent in results evaluated before it was kept
PARTIAL_KEY = b"repeval.partial_audio"


def _test_ids(ctx: RunContext, task: str, dataset: str, folds: list[int | None]) -> Any:
    """The test track ids of ``task`` on ``dataset`` in the splits the run saved (every fold's: each is tested in
    one); ``None`` when a splits file is missing."""
    from repeval.run.context import fold_suffix

    ids = []
    for fold in folds:
        path = ctx.run_dir / "splits" / f"{task}__{dataset}{fold_suffix(fold)}.parquet"
        if not path.exists():
            return None
        t = pq.read_table(path, columns=["track_id", "split"])
        ids.append(t.filter(pc.equal(t.column("split"), "test")).column("track_id").combine_chunks())
    return pc.unique(pc.concat_arrays(ids)) if len(ids) > 1 else (ids[0] if ids else None)


def partial_test_tracks(ctx: RunContext) -> list[dict[str, Any]]:
    """For every (task, dataset, model, scenario) the configuration tests whose partition holds rows embedded from
    partial audio (its manifest's ``noted_rows``), how many of the run's test tracks they are (``tracks``) and of
    them how many from files cut short (``cut``) and from Ogg files without their end (``ogg``); only those with
    some. A partition that cannot be read is skipped (logged): the count is a note, never a failed evaluation."""
    from repeval.pipeline.stages import CLEAN
    from repeval.store.inspect import audio_notes

    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str, str]] = set()
    for exp in ctx.cfg.experiments:
        for ds in exp.datasets:
            folds: list[int | None] = list(range(ds.n_folds)) if ds.split_type == "all" else [None]
            test = None
            for m in exp.embedding_models:
                for sid in [CLEAN, *exp.scenarios_for(ds)]:
                    key = (exp.task.name, ds.name, m.id, sid)
                    if key in seen:
                        continue
                    seen.add(key)
                    try:
                        part = ctx.store.partition(ds.name, m.id, sid)
                        if not sum(part.noted_rows().values()):
                            continue
                        test = _test_ids(ctx, exp.task.name, ds.name, folds) if test is None else test
                        if test is None:
                            continue
                        noted = audio_notes(part)
                        noted = noted.filter(pc.is_in(noted.column("track_id"), value_set=test))
                    except Exception as exc:  # a note about the results: never what fails their evaluation
                        log.warning("partial audio of %s/%s/%s not counted: %s", ds.name, m.id, sid, exc)
                        continue
                    if noted.num_rows:
                        cut = int(pc.sum(pc.starts_with(noted.column("audio_note"), "cut ")).as_py() or 0)
                        task, dataset, model, scenario = key
                        out.append({"task": task, "dataset": dataset, "model": model, "scenario": scenario,
                                    "tracks": noted.num_rows, CUT: cut, OGG: noted.num_rows - cut})  # fmt: skip
    return out


def recorded_partial(metadata: dict[bytes, bytes] | None) -> list[dict[str, Any]] | None:
    """The :data:`PARTIAL_KEY` entries of a ``results.parquet`` schema's ``metadata``; ``None`` when the results
    were evaluated before it was kept (or it is unreadable)."""
    raw = (metadata or {}).get(PARTIAL_KEY)
    if raw is None:
        return None
    try:
        found = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else None


def partial_text(entry: dict[str, Any], *, task: bool = True) -> str:
    """One entry in words: ``3 test tracks of instrument on notes embedded from partial audio (audio_note) in scenario
    clean, model mfcc-stats: 2 cut short, 1 Ogg without its end``."""
    n = int(entry.get("tracks") or 0)
    kinds = [f"{entry.get(CUT) or 0} cut short", f"{entry.get(OGG) or 0} Ogg without its end"]
    of = f" of {entry.get('task')} on {entry.get('dataset')}" if task else ""
    return (
        f"{counted(n, 'test track')}{of} embedded from partial audio (audio_note) in scenario "
        f"{entry.get('scenario')}, model {entry.get('model')}: {', '.join(k for k in kinds if not k.startswith('0 '))}"
    )
