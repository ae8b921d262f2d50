"""What ``repeval plan`` reads of a run's progress (:func:`~repeval.plan.make_plan`): what the embedding stage would do
with each partition (:func:`_progress`), whether the training stage would skip a probe grid (:func:`_trained`) or only
test it on changed deformation scenarios (:func:`_retest`), and the trainings an interrupted run finished that a rerun
reuses (:func:`_reused`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from repeval.config import Config
from repeval.pipeline.stages import CLEAN
from repeval.words import counted, named

if TYPE_CHECKING:
    from repeval.plan import Plan


def _progress(
    cfg: Config,
    store: Any,
    run_dir: Path | None,
    p: Plan,
    retry_errors: bool = False,
    retry_models: frozenset[str] = frozenset(),
) -> tuple[Any, Any]:
    """A read-only run context (the datasets' rows loaded, nothing written) and what the embedding stage would do
    with each partition: ``(dataset, model, scenario)`` → :func:`~repeval.pipeline.partitions.partition_state`
    (for a partition several experiments share, the one with the most to do) — under ``--retry-errors`` when
    ``retry_errors`` (for the partitions of the models ``retry_models`` names: ``--retry-model``). The partitions' error records are counted into :attr:`Plan.retries` either way. ``(None, None)``
    when the rows cannot be loaded (the reason is added to the plan's lines)."""
    from repeval.models import resolve_model
    from repeval.models.provenance import changed_code_note, plugin_code
    from repeval.pipeline.failing import left_out_again
    from repeval.pipeline.partitions import (
        CutReused,
        ModelSpec,
        StoredIds,
        changed_source,
        error_tracks,
        partition_state,
        plan_notes,
        plan_source_note,
        wanted_masks,
    )
    from repeval.runner import RunContext, audio_sources, deform_ids, load_rows

    ctx = RunContext(cfg, "plan", run_dir if run_dir is not None else Path("/nonexistent"), store)
    try:
        load_rows(ctx, save=False)
    except (ValueError, OSError) as exc:
        p.lines.append(f"done: not known — the datasets could not be loaded: {exc}")
        return None, None
    p.notes += _load_notes(ctx)
    rank = {"complete": 0, "todo": 1, "conflict": 2}
    states: dict[tuple[str, str, str], tuple[str, str]] = {}
    sources = audio_sources(ctx)
    moved: dict[str, dict[str, dict[str, tuple[Any, int]]]] = {}  # dataset → model → partitions from elsewhere
    read: dict[tuple[str, str, str], StoredIds] = {}  # partition → its stored ids (the plan writes nothing)
    code_notes: dict[str, str] = {}  # model → the plugin code or weights changed since its reused rows
    again: dict[str, str] = {}  # model → why the run would leave it out again, not run (pipeline.failing)
    cut = CutReused()  # the run's tracks whose reused rows were cut, which a run under truncated_audio: error warns of
    wanted_ids: dict[tuple[str, str, str], list[pa.Array]] = {}  # partition → the ids each experiment wants
    todo_ids: dict[tuple[str, str, str], list[pa.Array]] = {}  # … and, of those, the ids it holds no row of
    for ei, exp in enumerate(cfg.experiments):
        to_deform = deform_ids(ctx, ei)
        for ds in exp.datasets:
            rows = ctx.rows[(ei, ds.name)]
            ids = rows.column("track_id").combine_chunks()
            masks = wanted_masks(cfg, exp, ds, rows, to_deform)
            for m in exp.embedding_models:
                spec = ModelSpec.of(cfg, m)
                fam, params = resolve_model(m)
                code = plugin_code(fam, params)  # a plugin's model: what the run would warn of its reused rows
                retry = retry_errors or m.id in retry_models
                for sid, wanted in masks.items():
                    key = (ds.name, m.id, sid)
                    part = store.partition(*key)
                    # the partition's ids, read once for its state and error records, whatever the experiments using it
                    stored = read.setdefault(key, StoredIds(part))
                    state, what, done = partition_state(
                        part, spec.partition(cfg, exp, ds, sid), ids, wanted, retry, stored
                    )
                    if key not in states or rank[state] > rank[states[key][0]]:
                        states[key] = (state, what)
                    if done is not None:  # the store rows it wants and those still to embed (tasks sharing it: both)
                        wanted_ids.setdefault(key, []).append(ids.filter(pa.array(wanted)))
                        todo_ids.setdefault(key, []).append(ids.filter(pa.array(wanted & ~done)))
                    if done is not None:  # the error records --retry-errors deletes, and the run's tracks they name
                        records, tracks = error_tracks(part, ids, wanted, stored)
                        if records:
                            p.retries[part.name] = (records, max(len(tracks), p.retries.get(part.name, (0, 0))[1]))
                            p.retry_tracks.update((ds.name, t) for t in tracks)  # a track fails in each scenario
                            p.retry_tracks_of.setdefault(m.id, set()).update((ds.name, t) for t in tracks)
                    if code is not None and done is not None and m.id not in code_notes and (wanted & done).any():
                        note = changed_code_note(part, m.id, fam, code, "plan")
                        if note is not None:  # once per model, as the run says it
                            code_notes[m.id] = note
                    if state == "todo" and m.id not in again:  # a model an earlier run stopped: not run again
                        why = left_out_again(m, [part], code, retry, cfg.run.stop_model_after_failed_tracks)
                        if why is not None:
                            again[m.id] = f"`repeval run` would leave it out: {why}"
                    if done is not None and cfg.run.truncated_audio == "error":
                        cut.add(part, ids, wanted & done)
                    recorded = changed_source(part, sources[ds.name]) if done is not None else None
                    by_model = moved.setdefault(ds.name, {})
                    if recorded is not None and done is not None and sid not in by_model.get(m.id, {}):
                        reused = int((wanted & done).sum())
                        if reused:
                            by_model.setdefault(m.id, {})[sid] = (recorded, reused)
    p.rows = sum(_distinct(arrays) for arrays in wanted_ids.values())
    p.rows_to_embed = sum(_distinct(arrays) for key, arrays in todo_ids.items() if key[1] not in again)
    p.rows_left_out = sum(_distinct(arrays) for key, arrays in todo_ids.items() if key[1] in again)
    p.left_out = set(again)
    p.notes += list(code_notes.values())
    p.notes += list(again.values())
    p.notes += _failed_split_notes(ctx, store, states)
    said = plan_notes(store.uri, moved, sources)
    if said:  # one note, however many datasets and models: the plan says it on every call until a run records them
        p.notes.append(plan_source_note(said))
    if cut.tracks:
        from repeval.pipeline.summary import cut_reused_note

        p.notes.append(cut_reused_note(store.uri, cut.counts(), run=False))
    return (ctx if run_dir is not None else None), states


def _distinct(arrays: list[pa.Array]) -> int:
    """How many distinct ids ``arrays`` hold together."""
    return len(pc.unique(pa.chunked_array([a.cast(pa.string()) for a in arrays]).combine_chunks())) if arrays else 0


def _failed_split_notes(ctx: Any, store: Any, states: dict[tuple[str, str, str], tuple[str, str]]) -> list[str]:
    """The training stage's stop on a split (or k-fold fold) whose every track is an error record of a clean
    partition the run leaves as it is (:func:`~repeval.run.split_check.failed_split`), said once per problem before
    anything trains — not under ``--retry-errors``, which computes those tracks again; when some model of the run
    has none, the models that have are left out of training instead (:func:`repeval.run.train._leave_out`)."""
    from repeval.run.rows import fold_rows
    from repeval.run.split_check import failed_split, unassigned_split

    whys: dict[str, list[str]] = {}  # model → its problems
    embedded: dict[tuple[str, str, str], Any] = {}  # a partition's track ids, read once for its tasks and folds
    for ei, exp in enumerate(ctx.cfg.experiments):
        for ds in exp.datasets:
            for m in exp.embedding_models:
                key = (ds.name, m.id, CLEAN)
                if states.get(key, ("todo", ""))[0] != "complete":
                    continue
                part = store.partition(*key)
                if key not in embedded:
                    embedded[key] = part.embedded_ids()
                ids = embedded[key]
                for fold, rows in fold_rows(ctx, ei, ds.name).items():
                    if unassigned_split(ctx, ei, exp.task.name, ds, fold, rows):
                        continue  # a split without tracks: said before embedding (split_notes)
                    why = failed_split(
                        ctx, ei, exp.task.name, ds.name, m.id, fold, rows, ids, part.show_errors_command()
                    )
                    if why and why not in whys.setdefault(m.id, []):
                        whys[m.id].append(why)
    models = {m.id for exp in ctx.cfg.experiments for m in exp.embedding_models}
    if models <= {m for m, said in whys.items() if said}:  # no model left to train on (run.train._leave_out)
        return [f"`repeval run` would stop before training: {why}" for said in whys.values() for why in said]
    return [
        f"`repeval run` would leave embedding model '{m}' out of training, and train the others: {why}"
        for m, said in whys.items()
        for why in said
    ]


def load_notes(cfg: Config, p: Plan | None = None) -> list[str]:
    """:func:`_load_notes` for a plan without a store (nothing embedded yet — a first run's plan, when what its load
    drops matters most): the datasets loaded read-only for them alone; none when they cannot be loaded (the plan's
    notes say why: a data path ``repeval run`` would stop on). With ``p``, its store rows are counted too: every row
    the run's partitions want is to embed (:attr:`Plan.rows`, as a plan with a store counts them)."""
    from repeval.runner import RunContext, load_rows

    ctx = RunContext(cfg, "plan", Path("/nonexistent"), None)  # type: ignore[arg-type]  # the load reads no store
    try:
        load_rows(ctx, save=False)
    except (ValueError, OSError):
        return []
    if p is not None:
        p.rows = p.rows_to_embed = _wanted_rows(ctx)
    return _load_notes(ctx)


def _wanted_rows(ctx: Any) -> int:
    """The store rows (track × model × scenario) the run's partitions want, a partition several experiments share
    counted once (as :func:`_progress` counts them)."""
    from repeval.pipeline.partitions import wanted_masks
    from repeval.runner import deform_ids

    wanted: dict[tuple[str, str, str], list[pa.Array]] = {}
    for ei, exp in enumerate(ctx.cfg.experiments):
        to_deform = deform_ids(ctx, ei)
        for ds in exp.datasets:
            rows = ctx.rows[(ei, ds.name)]
            ids = rows.column("track_id").combine_chunks()
            for sid, mask in wanted_masks(ctx.cfg, exp, ds, rows, to_deform).items():
                for m in exp.embedding_models:
                    wanted.setdefault((ds.name, m.id, sid), []).append(ids.filter(pa.array(mask)))
    return sum(_distinct(arrays) for arrays in wanted.values())


def _load_notes(ctx: Any) -> list[str]:
    """What loading each dataset found, as ``repeval run`` logs it: one note per dataset for the rows dropped
    (missing audio, duplicate ids, unusable labels or splits), saying how many ``run --strict`` fails on, then one
    per finding of its loader that drops no row (a key the data left unused, a likely ``label_separator``); a dataset
    that two tasks load is said once, naming the tasks only when their loads found other things: the records
    ``load_report.json`` keeps (:func:`~repeval.run.rows.said_once`)."""
    from repeval.run.rows import said_once

    notes = []
    for record, _ in said_once(ctx):
        lines, kinds = record.lines, len(record.problems)
        dropped, noted = lines[:kinds], lines[kinds:]  # a line per kind, then notes
        n = record.not_evaluated
        if dropped:
            strict = f" — {counted(n, 'row')} not evaluated, which `repeval run --strict` fails on" if n else ""
            # the pointer to `data check` where it helps: it lists audio files, not rows of bad labels or splits
            check = (
                " (`repeval data check CONFIG --out FILE` lists every missing or unreadable audio file)"
                if record.problems.get("missing_audio")
                else ""
            )
            notes.append(
                f"dataset {record.name} at load ({counted(record.rows or 0, 'row')} kept): {'; '.join(dropped)}{strict}{check}"
            )
        notes += [f"dataset {record.name}: {line}" for line in noted]
    from repeval.run.rows import split_notes

    return notes + split_notes(ctx)


def _trained(ctx: Any, states: dict[tuple[str, str, str], tuple[str, str]], ei: int, ds: Any, model: str,
             fold: int | None) -> tuple[bool, str, dict[str, Any] | None]:  # fmt: skip
    """Whether the training stage would skip this probe grid — trained on the inputs it would have now, and none
    of its partitions is left for the embedding stage (which would change those inputs) — its name, and those
    inputs: a partition the embedding stage computes (further) is ``None`` in them (its record is not known yet,
    only that it changes); ``None`` while one is a conflict (the run stops before training)."""
    from repeval.runner import group_inputs, group_name, group_trained

    exp = ctx.cfg.experiments[ei]
    scen = list(exp.scenarios_for(ds))
    name = group_name(exp, ds.name, model, fold)
    left = {sid for sid in [CLEAN, *scen] if states.get((ds.name, model, sid), ("todo", ""))[0] != "complete"}
    if any(states.get((ds.name, model, sid), ("todo", ""))[0] == "conflict" for sid in left):
        return False, name, None
    rows = ctx.folds[(ei, ds.name)][fold] if fold is not None else ctx.rows[(ei, ds.name)]
    inputs = group_inputs(ctx, ei, ds.name, model, scen, rows)
    if left:
        inputs["partitions"] = {sid: None if sid in left else v for sid, v in inputs["partitions"].items()}
        return False, name, inputs
    return bool(group_trained(ctx, name, inputs, ds.name, model)), name, inputs


def _retest(
    ctx: Any,
    p: Plan,
    name: str,
    inputs: dict[str, Any] | None,
    tune_storage: str,
    trainings: int,
    pair: tuple[str, str],
) -> list[str] | None:
    """The changed deformation scenarios the training stage would test grid ``name`` (not done) on with the probes
    it selected before instead of training it (``None``: it trains it, or not at all) — trained before, only its scenarios changed
    (:func:`repeval.retest.scenarios_only`, a partition still to be computed counted as changed) and its record of
    those probes and their checkpoints there (:func:`repeval.retest.retest_check`) — counted and described in ``p``.
    Whether the checkpoints' content is the one recorded, and testing on the embeddings succeeds, is known only when
    the run reads them (it trains the grid again otherwise): said. A grid whose scenarios alone changed but whose
    probes cannot be read back is said to be trained again, as the run's warning will."""
    from repeval.retest import changed_scenarios, retest_check, scenarios_only
    from repeval.run.groups import recorded_inputs

    groups = ctx.run_dir / "groups"
    if inputs is None or not (groups / f"{name}.parquet").exists():
        return None  # never trained, or the run stops before training
    # read as the run reads it: an earlier repeval's record of a partition re-embedded since counts as changed
    before = recorded_inputs(ctx, name, *pair)
    change = scenarios_only(before, inputs)
    if change is None:
        return None
    added, removed = change
    tested, why = retest_check(ctx.run_dir, tune_storage, name, added)
    if why is not None:
        p.retrained.append(f"{name}: only its deformation scenarios changed, but {why}")
        return None
    changed = [s for s in added if s in removed]
    new, gone = [s for s in added if s not in changed], [s for s in removed if s not in changed]
    said = [f"tested on the added {named('scenario', new)}"] if new else []
    said += [f"tested again on the changed {changed_scenarios(before, inputs, changed)}"] if changed else []
    said += [f"the results of the removed {named('scenario', gone)} dropped"] if gone else []
    p.retests.setdefault("; ".join(said), []).append((name, len(tested) if added else 0))
    p.grids_retest += 1
    p.trainings_retest += trainings
    p.probes_retested += len(tested) if added else 0
    return list(added)


def _written(
    ctx: Any, pending: dict[str, dict[str, Any]], trains_on: dict[str, tuple[str, str]]
) -> Callable[[Sequence[str]], int | None]:
    """Grid names → the latest write of the row part files of the partitions they train on, as the training stage
    gives it to their Tune experiment (:func:`repeval.run.groups.partitions_written_ns`, over every scenario of each):
    what tells a Tune marker an earlier repeval wrote from a partition embedded anew since."""
    from repeval.run.groups import partitions_written_ns

    def written(grids: Sequence[str]) -> int | None:
        times = [
            partitions_written_ns(ctx, *trains_on[g], list(pending[g]["partitions"])) for g in grids if g in trains_on
        ]
        return max((t for t in times if t is not None), default=None)

    return written


def _reused(
    cfg: Config,
    p: Plan,
    pending: dict[str, dict[str, Any]],
    tune_storage: str,
    cluster: Mapping[str, float] | None,
    written: Callable[[Sequence[str]], int | None] | None = None,
) -> None:
    """Count the trainings (and trials) of the ``pending`` grids that an interrupted run finished and the rerun
    reuses — at most: the rerun checks their data's content, which this does not read (:attr:`Plan.trainings_reused`)
    — :func:`repeval.tuning.reusable.finished_of_groups`, for the trial slots the rerun plans — set, or those of the
    cluster's CPUs, else of this machine's (a note says so when it matters) — and, apart, those of experiments whose
    markers do not record their groups (:func:`repeval.tuning.reusable.unrecorded_of_groups`: not known). A marker an
    earlier repeval wrote without the data, older than a rewrite of its grids' partitions (``written``: :func:`_written`),
    is told as the rerun tells it: moved aside, its trials not counted."""
    from repeval.ray_utils import local_cpus
    from repeval.tuning.reusable import finished_of_groups, unrecorded_of_groups
    from repeval.tuning.units import trial_slots, unit_settings

    cpus = float(cluster.get("CPU", 1.0)) if cluster is not None else local_cpus()
    slots = trial_slots(cfg, cpus)
    for trials, trainings in finished_of_groups(tune_storage, pending, unit_settings(cfg, slots), written).values():
        p.trials_reused += trials
        p.trainings_reused += trainings
    _, p.trials_unknown, p.trainings_unknown = unrecorded_of_groups(
        tune_storage, _experiment_of(list(pending)), written
    )
    if cluster is not None or cfg.run.resources.max_concurrent_trials:
        return
    # the slots of this machine's CPUs: a run sent to a cluster plans its units for the cluster's, and reuses only
    # the experiments planned for those (any slots: what the markers hold, however many slots they were planned for)
    anywhere = sum(n for _, n in finished_of_groups(tune_storage, pending, unit_settings(cfg), written).values())
    if not anywhere:
        return
    said = (
        f"trainings an interrupted run finished are counted for this machine's {cpus:g} "
        f"{'CPU' if cpus == 1 else 'CPUs'} ({counted(slots, 'trial slot')}), as `repeval run` here plans them"
    )
    if anywhere > p.trainings_reused:
        said += (
            f"; {anywhere - p.trainings_reused:,} more are in Tune experiments planned for other trial slots (another "
            "machine or a cluster), reused only by a run with those"
        )
    p.notes.append(
        f"{said}. For a run on a cluster, give `repeval plan --address HOST:PORT` (or set RAY_ADDRESS) to count for "
        "its CPUs, or set run.resources.max_concurrent_trials"
    )


def _experiment_of(pending: list[str]) -> Callable[[str], list[str]]:
    """The grids of ``pending`` (in the training stage's order) a rerun may start a Tune experiment for, by its name
    (none: not one of theirs): named after one of them (a probe trained one configuration per trial: after the grid
    and the probe — the longest grid name it starts with), or after a batch of consecutive ones
    (:func:`repeval.tuning.grid.batch_name`)."""
    import re

    from repeval.tuning.grid import batch_name

    names = set(pending)

    def grids(name: str) -> list[str]:
        if name in names:
            return [name]
        prefixed = [g for g in pending if name.startswith(f"{g}__")]
        if prefixed:
            return [max(prefixed, key=len)]
        m = re.fullmatch(r"groups-(\d+)-[0-9a-f]{12}", name)
        k = int(m[1]) if m else 0
        batches = (pending[i : i + k] for i in range(len(pending) - k + 1)) if k > 1 else iter(())
        return next((b for b in batches if batch_name(b) == name), [])

    return grids
