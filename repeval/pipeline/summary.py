"""What an embedding run did (the final summary line) and the driver-side progress bar."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from repeval.words import counted

log = logging.getLogger(__name__)

#: a progress line every so many seconds when stderr is not a terminal (:class:`Progress`)
PROGRESS_EVERY_S = 60.0
#: failed tracks the summary names (the rest: ``repeval store show --errors``)
SHOWN_FAILURES = 5
#: scenarios whose rows the summary line counts one by one (the rest together: :meth:`EmbedSummary.scenario_counts`),
#: and partitions whose error records' command it gives (:meth:`EmbedSummary.show_commands`)
SCENARIOS_SHOWN = 6
#: characters of a failure's reason the summary keeps (its first line)
REASON_CHARS = 120


@dataclass
class EmbedSummary:
    #: tracks sent through the model streams, summed over the streams (each track decoded once per model, whatever
    #: its scenarios): tracks × models
    tracks: int = 0
    #: store rows written (one per track × scenario)
    computed: int = 0
    #: of the rows written, those whose audio was decoded from part of its file (``audio_note``: a file cut short under
    #: ``run.truncated_audio: decode``, an Ogg file without its end)
    partial: int = 0
    #: rows already in the store for the run's tracks (their error records left out: :attr:`earlier_errors`)
    skipped: int = 0
    errors: int = 0
    errors_by_stage: Counter[str] = field(default_factory=Counter)
    rows_by_scenario: Counter[str] = field(default_factory=Counter)
    audio_seconds: float = 0.0
    wall_s: float = 0.0
    partitions_completed: list[str] = field(default_factory=list)
    #: partitions (``dataset/model/scenario``) of the run found complete, with nothing to embed
    partitions_already_complete: set[str] = field(default_factory=set)
    #: the run's (dataset, model) pairs, ``dataset/model``, whose partitions were complete when planned
    models_complete: dict[str, None] = field(default_factory=dict)
    #: Ray Data operators of the last pipeline (decode and embed stay separate unless the model is light)
    operators: list[str] = field(default_factory=list)
    #: resources of each model's stage
    resources: dict[str, str] = field(default_factory=dict)
    #: processes that ran each model at once: its actors, or its decode tasks when it ran inside them
    model_processes: dict[str, int] = field(default_factory=dict)
    #: tracks whose chunks were in flight when a stream stopped (recomputed next time)
    abandoned: int = 0
    #: error records deleted by ``--retry-errors`` (their tracks were computed again)
    retried: int = 0
    #: seconds from starting each stream to its first finished rows (worker start-up, model loading)
    startup_s: float = 0.0
    #: seconds spent streaming (start of each stream to its end)
    stream_s: float = 0.0
    #: model streams run: one per embedding model, whatever the number of datasets and experiments using it
    streams: int = 0
    #: partition name (``dataset/model/scenario``) → error records this run wrote there
    errors_by_partition: Counter[str] = field(default_factory=Counter)
    #: partition name → error records it holds from earlier runs for tracks this run wanted (not computed again)
    earlier_errors: Counter[str] = field(default_factory=Counter)
    #: partition name → this run's tracks whose rows there, reused under ``run.truncated_audio: error``, were embedded
    #: from a file cut short (under ``decode``) (:class:`~repeval.pipeline.partitions.CutReused`,
    #: :meth:`cut_reused_warning`)
    cut_reused: Counter[str] = field(default_factory=Counter)
    #: the run's partition names (``dataset/model/scenario``) in the configuration's order — its experiments' datasets
    #: and models, then clean and the deformation scenarios as listed —, which the summary's lists follow
    partition_order: dict[str, None] = field(default_factory=dict)
    #: the first :data:`SHOWN_FAILURES` failures of this run: (partition name, track id, stage, reason)
    failures: list[tuple[str, str, str, str]] = field(default_factory=list)
    #: the store's root, for the ``repeval store show`` commands the summary names
    store_uri: str = ""
    #: model id → the dtype of the frames it returned (float64, float16) cast to float32, the store's precision
    cast: dict[str, str] = field(default_factory=dict)
    #: embedding model id → why its stream stopped (its model failed to build, cannot run on a node, or failed on each
    #: of its first tracks): the model is left out, its partitions stay incomplete, the others go on
    models_failed: dict[str, str] = field(default_factory=dict)

    def note_cast(self, model_id: str, batch: dict[str, Any]) -> str | None:
        """Note that ``model_id``'s frames in ``batch`` (an embedding actor's output, its ``cast_from`` column) were
        cast to float32, once per model; returns the note the first time (:meth:`cast_notes`), else None."""
        if model_id in self.cast or "cast_from" not in batch:
            return None
        kinds = sorted({str(k) for k in batch["cast_from"]} - {""})
        if not kinds:
            return None
        self.cast[model_id] = kinds[0]
        return self.cast_notes([model_id])[0]

    def cast_notes(self, model_ids: Iterable[str] | None = None) -> list[str]:
        """One line per model whose frames were cast to float32 (:attr:`cast`), with the fix."""
        return [
            f"note: embedding model {m} returned {self.cast[m]} frames, stored as float32 (the store's precision) — "
            "make its embed return frames.astype(np.float32) to store what it computes (`repeval validate-model` "
            "checks it)"
            for m in (self.cast if model_ids is None else model_ids)
        ]

    def add_failures(self, partition: str, track_ids: list[str], stages: list[str], reasons: list[str]) -> None:
        """Count one partition's new error records (a track id, stage and reason each), keeping the first few."""
        self.errors_by_partition[partition] += len(track_ids)
        room = SHOWN_FAILURES - len(self.failures)
        for tid, stage, reason in list(zip(track_ids, stages, reasons, strict=True))[: max(room, 0)]:
            self.failures.append((partition, str(tid), str(stage), str(reason)))

    def merge(self, other: EmbedSummary) -> None:
        self.tracks += other.tracks
        self.computed += other.computed
        self.partial += other.partial
        self.skipped += other.skipped
        self.errors += other.errors
        self.errors_by_stage.update(other.errors_by_stage)
        self.rows_by_scenario.update(other.rows_by_scenario)
        self.audio_seconds += other.audio_seconds
        self.wall_s += other.wall_s
        self.partitions_completed += other.partitions_completed
        self.partitions_already_complete |= other.partitions_already_complete
        self.models_complete.update(other.models_complete)
        self.operators = other.operators or self.operators
        self.resources.update(other.resources)
        self.model_processes.update(other.model_processes)
        self.abandoned += other.abandoned
        self.retried += other.retried
        self.startup_s += other.startup_s
        self.stream_s += other.stream_s
        self.streams += other.streams
        self.errors_by_partition.update(other.errors_by_partition)
        self.earlier_errors.update(other.earlier_errors)
        self.cut_reused.update(other.cut_reused)
        self.partition_order.update(other.partition_order)
        self.failures += other.failures[: max(SHOWN_FAILURES - len(self.failures), 0)]
        self.store_uri = self.store_uri or other.store_uri
        self.cast = {**other.cast, **self.cast}
        self.models_failed.update(other.models_failed)

    def line(self) -> str:
        """What the stage did, in one line: the store rows it wrote (one per track, model and scenario) and the
        tracks it decoded for them (once per model), or that there was nothing to embed."""
        if not (self.tracks or self.computed or self.errors or self.retried):
            marked = f"; {len(self.partitions_completed):,} marked complete" if self.partitions_completed else ""
            return (
                f"nothing to embed: {counted(len(self.partitions_already_complete), 'partition')} already complete "
                f"({counted(self.skipped, 'row')} already in store){marked}"
            )
        wall = self.wall_s or 0.0
        # the rates once the rows flow: a catalog ten times the size takes ten times this, plus the same start-up
        busy = wall - self.startup_s if 0 < self.startup_s < wall else wall
        rate = self.audio_seconds / busy if busy else 0.0
        rows_rate = self.computed / busy if busy else 0.0
        errs = counted(self.errors, "error")
        if self.errors_by_stage:
            errs += " (" + ", ".join(f"{k} {v:,}" for k, v in sorted(self.errors_by_stage.items())) + ")"
        scen = ""
        if len(self.rows_by_scenario) > 1:
            scen = f" [{self.scenario_counts()}]"
        retried = f" (retried {counted(self.retried, 'earlier error record')})" if self.retried else ""
        partly = f" ({self.partial:,} decoded partly)" if self.partial else ""
        decoded = (
            counted(self.tracks, "track")
            if self.streams <= 1
            else f"{self.tracks:,} tracks×models ({self.streams} models)"
        )
        # "0 errors, in 4.9s": the time is the stage's, not the errors'
        return (
            f"embedded {counted(self.computed, 'row')}{scen}{partly} from {decoded}, {counted(self.skipped, 'row')} "
            f"already in store, {errs}{retried}, in {figure(wall, 1)}s ({figure(self.startup_s, 1)}s start-up) — "
            f"{figure(rows_rate, 1)} rows/s, {figure(rate, 0)} s of audio per second"
            + (" after start-up" if busy < wall else "")
        )

    def scenarios(self) -> list[str]:
        """The scenarios of :attr:`rows_by_scenario` in the configuration's order (clean first:
        :func:`repeval.report.results.ordered_scenarios`, the order of tables and the report), from
        :attr:`partition_order`; any it lacks after, in the order they were counted."""
        from repeval.report.results import ordered_scenarios

        planned = [name.rsplit("/", 1)[-1] for name in self.partition_order]
        return [s for s in ordered_scenarios([*planned, *self.rows_by_scenario]) if s in self.rows_by_scenario]

    def scenario_counts(self) -> str:
        """The rows written per scenario, in the configuration's order: ``clean 3,000, noise_10db 298``; past
        :data:`SCENARIOS_SHOWN` scenarios, the first ones and the rest together (``245 more scenarios: 73,010``) —
        every scenario's count is in the store (``repeval store ls``)."""
        names = self.scenarios()
        shown = names if len(names) <= SCENARIOS_SHOWN else names[: SCENARIOS_SHOWN - 1]
        said = [f"{k} {self.rows_by_scenario[k]:,}" for k in shown]
        rest = names[len(shown) :]
        if rest:
            said.append(f"{counted(len(rest), 'more scenario')}: {sum(self.rows_by_scenario[k] for k in rest):,}")
        return ", ".join(said)

    def in_order(self, partitions: Iterable[str]) -> list[str]:
        """Partition names in :attr:`partition_order` (the configuration's); any it lacks after, by name."""
        rank = {name: i for i, name in enumerate(self.partition_order)}
        return sorted(partitions, key=lambda name: (rank.get(name, len(rank)), name))

    def cut_reused_warning(self) -> str | None:
        """The warning of a run under ``run.truncated_audio: error`` that reuses rows embedded from files cut short
        (by a run under ``decode``) for its tracks (:func:`cut_reused_note`); ``None`` without such rows."""
        if not self.cut_reused:
            return None
        counts = {name: self.cut_reused[name] for name in self.in_order(self.cut_reused)}
        return cut_reused_note(self.store_uri or "store", counts)

    def show_command(self, partition: str) -> str:
        """The command that lists every error record of a partition, and only those."""
        from repeval.store.partition import show_errors_command

        return show_errors_command(self.store_uri or "store", partition)

    def failure_lines(self) -> list[str]:
        """The tracks that failed (the first few, with stage and reason), and the commands that list them all;
        error records earlier runs left for tracks this run wanted; nothing when there are none."""
        out: list[str] = []
        if self.failures:
            first = f"first {len(self.failures)} of " if self.errors > len(self.failures) else ""
            out.append(f"error records ({first}{self.errors}; track, partition, stage: reason):")
            for partition, tid, stage, reason in self.failures:
                text = (reason.strip().splitlines() or [""])[0]
                if len(text) > REASON_CHARS:
                    text = text[: REASON_CHARS - 1] + "…"
                out.append(f"  {tid}  {partition}  {stage}: {text}")
            fixed, by_model = "the files are fixed", []
            if any(stage == "embed" for _, _, stage, _ in self.failures):  # the model's error: its frames, its raise
                fixed, by_model = "the files (or, stage embed, the model) are fixed", list(self.errors_by_partition)
            out.append(f"all of them (not evaluated; once {fixed}, {_retry_hint(by_model)}):")
            out += self.show_commands(self.errors_by_partition)
        earlier = {p: self.earlier_errors[p] for p in self.in_order(self.earlier_errors) if self.earlier_errors[p]}
        if earlier:
            out.append(  # a track's record in each partition counted: one bad file under 3 scenarios is 3 records
                f"{counted(sum(earlier.values()), 'error record')} of earlier runs kept for this run's tracks, in "
                f"{counted(len(earlier), 'partition')} (not computed again, not evaluated; {_retry_hint(list(earlier))}):"
            )
            out += self.show_commands(earlier)
        return out

    def show_commands(self, counts: dict[str, int] | Counter[str]) -> list[str]:
        """The ``repeval store show --errors`` command of each partition of ``counts`` (name → error records), in the
        configuration's order; past :data:`SCENARIOS_SHOWN` partitions, the first ones and where the rest are listed."""
        names = self.in_order(counts)
        shown = names if len(names) <= SCENARIOS_SHOWN else names[: SCENARIOS_SHOWN - 1]
        out = [f"  {self.show_command(p)}" for p in shown]
        rest = names[len(shown) :]
        if rest:
            import shlex

            records = counted(sum(counts[p] for p in rest), "error record")
            out.append(
                f"  and {counted(len(rest), 'more partition')} ({records}): the same command with the partition's "
                f"name (`repeval store ls {shlex.quote(self.store_uri or 'store')}` lists each partition's error records)"
            )
        return out

    def failed_model_lines(self) -> list[str]:
        """One line per embedding model left out (:attr:`models_failed`): its id, why and the fix."""
        if not self.models_failed:
            return []
        head = f"{counted(len(self.models_failed), 'embedding model')} left out (not trained, tested or reported):"
        return [head, *(f"  {why}" for why in self.models_failed.values())]

    def text(self) -> str:
        """:meth:`line`, :meth:`cast_notes`, then :meth:`failure_lines` and :meth:`failed_model_lines`: what the
        CLI prints at the end of an embedding stage."""
        return "\n".join([self.line(), *self.cast_notes(), *self.failure_lines(), *self.failed_model_lines()])


def figure(x: float, decimals: int) -> str:
    """``x`` with ``decimals`` decimals, or, below 1, with as many as its first two significant digits need: a
    figure that would round to 0 ("0 s of audio per second" of a few short clips) says its size ("0.012")."""
    if 0 < abs(x) < 1:
        decimals = max(decimals, 1 - math.floor(math.log10(abs(x))))
        return f"{x:.{decimals}f}".rstrip("0").rstrip(".")
    return f"{x:.{decimals}f}"


def cut_reused_note(store_uri: str, counts: dict[str, int], run: bool = True) -> str:
    """What a run under ``run.truncated_audio: error`` says of its tracks whose stored rows, reused, were embedded from
    files cut short (by a run under ``decode``) — ``counts``: partition name → tracks, in the order to list them — and
    the two ways to keep only whole files. ``run=False``: as ``repeval plan`` notes it, of the run it plans."""
    from repeval.store.partition import rm_command

    per = "; ".join(f"{name}: {n}" for name, n in counts.items())
    rms = "; ".join(f"`{rm_command(store_uri, name)}`" for name in counts)
    reuses, are = ("this run reuses", "are") if run else ("`repeval run` would reuse", "would be")
    return (
        f"run.truncated_audio is error, but the store holds rows of this run's tracks embedded from files cut short "
        f"(by a run under run.truncated_audio: decode), which {reuses} — {per}. They {are} trained and tested on as "
        f"they are: to embed whole files only, delete {'the partition' if len(counts) == 1 else 'the partitions'} and run again ({rms}; the cut files then "
        "become error records), or keep them and filter rows on `audio_note IS NULL` where you read the store"
    )


class Progress:
    """A tqdm bar (on a terminal) of store rows written (Ray Data draws one bar per stage besides it), or of clips
    rendered (``bar=False``: none, for trials whose workers' logs would break it). Without a terminal (a log file,
    ``nohup``, ``ray job submit``'s logs) and not turned off (``enabled=None``), a line every :data:`PROGRESS_EVERY_S`
    seconds instead: done of total, the rate since the first update (model loading and worker start-up left out) and
    the time left at that rate. ``done``: already done when it starts (reused, not in the rate)."""

    def __init__(
        self,
        total: int,
        desc: str,
        enabled: bool | None = None,
        unit: str = "row",
        clock: Callable[[], float] = time.monotonic,
        bar: bool = True,
        done: int = 0,
    ) -> None:
        self.bar: Any = None
        self.total, self.desc, self.unit, self.clock = total, desc, unit, clock
        self.done = min(done, total)
        #: (time, done) at the first update, the rate's origin; the time of the last line logged (a progress line or
        #: a :meth:`waiting` line: one a minute, whichever it is)
        self.first: tuple[float, int] | None = None
        self.started = self.logged_at = clock()
        #: the time of the last update that counted rows (``None``: none yet, still starting)
        self.rows_at: float | None = None
        self.log_lines = enabled is None and not sys.stderr.isatty() and total > 0
        #: lines saying what it waits for when nothing comes for a minute (:meth:`waiting`): on a terminal too, unless
        #: the caller turned progress off
        self.wait_lines = enabled is not False and total > 0
        if enabled is None:
            enabled = sys.stderr.isatty()
        if enabled and total and bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=self.done, desc=desc, unit=unit, dynamic_ncols=True)

    def update(self, n: int) -> None:
        if self.bar is not None and n:
            self.bar.update(n)
        if not n:
            return
        now = self.rows_at = self.clock()
        self.done += n
        if not self.log_lines:
            return
        if self.first is None:  # the rate counts from here: the wait for the first rows is start-up
            self.first, self.logged_at = (now, self.done), now
        if now - self.logged_at >= PROGRESS_EVERY_S and self.done < self.total:
            self.logged_at = now
            log.info("%s", self.line(now))

    def line(self, now: float) -> str:
        """``write catalog/msd-musicnn: 1,536 of 3,600 rows (43%), 8.2 rows/s, about 4 min left``."""
        assert self.first is not None
        t0, d0 = self.first
        rate = (self.done - d0) / (now - t0) if now > t0 else 0.0
        said = f"{self.desc}: {self.done:,} of {counted(self.total, self.unit)} ({100 * self.done // self.total}%)"
        if rate <= 0:  # no rate yet (its first update, said at once): no time left either
            return said
        return f"{said}, {per_time(rate, self.unit)}, about {duration(math.ceil((self.total - self.done) / rate))} left"

    def quiet_for(self, now: float) -> float | None:
        """How long nothing has come (since the last rows, else since the start) when a :meth:`waiting` line is due —
        a minute (:data:`PROGRESS_EVERY_S`) of nothing and a minute since the last line said —, else ``None``."""
        quiet = now - (self.started if self.rows_at is None else self.rows_at)
        if not self.wait_lines or quiet < PROGRESS_EVERY_S or now - self.logged_at < PROGRESS_EVERY_S:
            return None
        return quiet

    def waiting(self, now: float, line: str) -> None:
        """Say ``line`` (what it waits for, :meth:`quiet_for` being due), counted as the minute's line."""
        self.logged_at = now
        log.info("%s", line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def per_time(rate: float, unit: str) -> str:
    """``9.1 rows/s``; a rate under one a second per minute (``2.5 trials/min``, not ``0.0 trials/s``), under one a
    minute per hour."""
    per, r = next(((p, rate * f) for p, f in (("s", 1), ("min", 60), ("h", 3600)) if rate * f >= 1), ("h", rate * 3600))
    return f"{r:.1f} {unit}s/{per}" if r < 100 else f"{r:,.0f} {unit}s/{per}"


def duration(seconds: int, up: bool = True) -> str:
    """``45 s``, ``12 min``, ``3 h 05 min``: a time left, to the second under a minute, else to the minute rounded up
    (``up=False``: down, a time gone by — :func:`elapsed`)."""
    if seconds < 60:
        return f"{seconds} s"
    minutes = math.ceil(seconds / 60) if up else seconds // 60
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def elapsed(seconds: int) -> str:
    """``45 s``, ``3 min``, ``2 h 05 min``: a time gone by, to the second under a minute, else to the whole minute."""
    return duration(seconds, up=False)


def _retry_hint(partitions: list[str]) -> str:
    """What computes error records again: ``--retry-errors``, and ``--retry-model`` of the models of ``partitions``
    (names ``dataset/model/scenario``; none: ``--retry-errors`` alone) for one model's records alone."""
    from repeval.pipeline.failing import retry_alone

    return f"`--retry-errors` computes them again{retry_alone(partitions)}"
