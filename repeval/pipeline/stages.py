"""The pipeline's decode stage (:class:`DecodeDeform`) and the chunk rows it emits. Like the model's UDFs
(:mod:`repeval.pipeline.embedder`), it is a plain callable, testable without Ray.

Batches are dicts of numpy arrays (Ray Data's ``numpy`` batch format). The unit of work between
the stages is a *chunk*: one window of at most 1.5 × ``chunk_s`` seconds of one track in one
scenario. A short clip is one chunk; a long file becomes many, decoded block by block, so a
multi-hour file never sits in memory — except in a deformation scenario that acts on the track as a whole
(Reverse, Shift, loudness normalisation, …; see :class:`DecodeDeform`), which is applied to the whole track, held up to
``run.deform_whole_track_max_s``, and then cut into chunks. Every chunk row carries ``chunk`` (its index) and
``n_chunks`` (0, except on a track's last chunk, where it is the number of chunks); the driver
reassembles tracks from their chunks (:mod:`repeval.pipeline.assemble`).
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from repeval.audio import chunk_blocks, iter_blocks, iter_chunks
from repeval.audio.decode import error_reason, window_sizes
from repeval.audio.partial import DEFAULT_TRUNCATED_AUDIO, TruncatedAudio
from repeval.deformations import CLEAN, WHOLE_TRACK_MAX_S, Scenario, scenario_seed
from repeval.models.base import FrameGeometry
from repeval.pipeline.readahead import ReadAhead, samples_for_cut
from repeval.quiet_exit import quiet_exit_requests_in_callbacks

#: default analysis window when a model does not declare ``chunk_s``
DEFAULT_CHUNK_S = 30.0

#: a decode task yields an output batch once it holds this many samples (bounded task memory)
MAX_BATCH_SAMPLES = 1 << 22

DECODE_COLUMNS = (
    "track_id",
    "split",
    "scenario",
    "chunk",
    "n_chunks",
    "audio",
    "deformation_params",
    "error",
    "stage",
    "skip",
    "keep",
    "context",
    "offset",
    "note",
)
#: the integer columns of a chunk row: its index, the track's number of chunks (on its last), and — for a model that
#: declares its frame geometry — the frames to drop (computed on context), to keep (-1: all), the context samples
#: (the model's input less the window's length: negative when the window's end was left out) and
#: where in its input the model starts its frames (samples; 0 unless its geometry has an ``align``)
INT_COLUMNS = ("chunk", "n_chunks", "skip", "keep", "context", "offset")


def _object_array(items: list[Any]) -> np.ndarray:
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return arr


def chunks_table(out: dict[str, list[Any]]) -> pa.Table:
    """Decode output as Arrow: the audio of all chunks in one ``large_list<float32>`` column.

    One copy into a contiguous buffer; Ray Data stores the table as its block as is (converting
    an object array of waveforms to a tensor column costs more than decoding them).
    """
    audio = out["audio"]
    lengths = np.fromiter((len(a) for a in audio), np.int64, len(audio))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = np.concatenate(audio).astype(np.float32, copy=False) if len(audio) else np.zeros(0, np.float32)
    cols = {k: pa.array(v, pa.string()) for k, v in out.items() if k != "audio" and k not in INT_COLUMNS}
    for k in INT_COLUMNS:
        if k in out:
            cols[k] = pa.array(out[k], pa.int32())
    cols["audio"] = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values, pa.float32()))
    return pa.table(cols)


def table_to_batch(table: pa.Table) -> dict[str, np.ndarray]:
    """A chunk table as a numpy batch; ``audio`` becomes an object array of zero-copy views."""
    batch = {c: table.column(c).to_numpy() for c in table.column_names if c != "audio"}
    if "audio" in table.column_names:
        audio = table.column("audio").combine_chunks()
        offsets = audio.offsets.to_numpy()
        values = audio.values.to_numpy(zero_copy_only=False)
        batch["audio"] = _object_array([values[offsets[i] : offsets[i + 1]] for i in range(len(audio))])
    return batch


def _drain(blocks: deque[np.ndarray]) -> Iterator[np.ndarray]:
    """Yield and drop the blocks held (each is freed once the windows have taken it)."""
    while blocks:
        yield blocks.popleft()


def chunk_seed(run_seed: int, track_id: str, scenario_id: str, chunk: int) -> int:
    """Chunk 0 uses the track's scenario seed (a short clip is seeded exactly like an unchunked one)."""
    if chunk == 0:
        return scenario_seed(run_seed, track_id, scenario_id)
    return scenario_seed(run_seed, f"{track_id}\0chunk{chunk}", scenario_id)


def _note(notes: list[str], last: bool) -> str:
    """The ``note`` of a track's chunk: on its last, the file's ``audio_note`` when it was decoded only in part."""
    return notes[-1] if last and notes else ""


def window_grid(geometry: Any) -> tuple[int, int]:
    """``(hop, min_size)`` of the windows (:func:`repeval.audio.decode.window_sizes`) for a model's frame
    ``geometry``: on its frame grid, each at least twice what a frame reads (so a window's context fits in its
    neighbours, and the last window holds whole frames); ``(1, 0)`` without one."""
    g = geometry
    return (1, 0) if g is None else (g.hop, 2 * max(g.span, g.right, g.before, g.after))


class DecodeDeform:
    """Decode each track once, chunk it, and emit one row per (chunk, scenario it needs).

    A scenario whose steps all act window by window (:data:`repeval.deformations.WINDOWED`: gain, filters, MP3, …)
    streams: its parameters are sampled once per (track, scenario) on the first chunk and frozen for the others (a
    gain applies to the whole track), and the random signal each chunk receives (noise, say) is seeded per chunk. A
    scenario with a track-level step (Reverse, Shift, LoudnessNormalization, an SNR, …: they act on the signal as a
    whole) is applied once to the whole decoded track, seeded like a first chunk — so a track of one window is
    deformed bit for bit as in a streamed scenario — and its output is cut into windows; a track longer than
    ``whole_track_max_s`` is an error record in that scenario. The sampled parameters are returned as JSON.

    With a model's :class:`~repeval.models.base.FrameGeometry` (``geometry``), the windows of a track of several
    windows are invisible in its frames: window boundaries fall on the model's frame grid (:func:`window_sizes`; a
    window holds at least twice a frame's extent), and each window reaches the model with the end of the previous
    window and the start of the next one — as deformed in their own windows, so the model reads the track's deformed
    audio as a whole — with ``skip`` and ``keep`` saying which of its frames start in the window (a model whose
    geometry has an ``align``: ``offset``, where in its input the model starts its frames — at the window's start, so
    it computes none on the context). A track of one window reaches the model as before (``keep`` -1: all its
    frames).
    """

    def __init__(
        self,
        sample_rate_hz: int,
        scenarios: dict[str, list[tuple[str, dict[str, Any]]]],
        run_seed: int,
        max_duration_s: float | None = None,
        chunk_s: float | None = DEFAULT_CHUNK_S,
        scenario_ids: list[str] | None = None,
        seed_ids: dict[str, str] | None = None,
        whole_track_max_s: float | None = WHOLE_TRACK_MAX_S,
        geometry: FrameGeometry | None = None,
        truncated_audio: TruncatedAudio = DEFAULT_TRUNCATED_AUDIO,
    ) -> None:
        self.sample_rate_hz = sample_rate_hz
        #: what becomes of a file cut short (``run.truncated_audio``: :mod:`repeval.audio.partial`)
        self.truncated_audio = truncated_audio
        #: where the model's frames lie: windows then overlap by the context its frames need (``None``: windows alone)
        self.geometry = geometry if chunk_s is not None else None
        self.scenario_steps = scenarios
        self.run_seed = run_seed
        self.max_duration_s = max_duration_s
        self.chunk_s = chunk_s
        #: the longest track (seconds; ``None``: no limit) a scenario with a track-level step deforms whole
        self.whole_track_max_s = whole_track_max_s
        #: names of the scenario indices in the input's ``scenarios`` column (when it holds integers)
        self.scenario_ids = scenario_ids or [CLEAN, *scenarios]
        #: a stream over several datasets names its scenarios by routing key (``dataset<US>D1``): the plain id
        #: of each key, which seeds the deformation (so results do not depend on what shares the stream)
        self.seed_ids = dict(seed_ids or {})
        self._built: dict[str, Scenario] | None = None

    def _plain(self, key: str) -> str:
        return self.seed_ids.get(key, key)

    def _scenarios(self) -> dict[str, Scenario]:
        if self._built is None:
            self._built = {key: Scenario(self._plain(key), steps) for key, steps in self.scenario_steps.items()}
        return self._built

    def _wanted(self, wanted: Any) -> list[str]:
        return [self.scenario_ids[int(w)] if isinstance(w, int | np.integer) else str(w) for w in wanted]

    def __call__(self, batch: dict[str, np.ndarray]) -> Iterator[pa.Table]:
        # Ray Data ends its decode workers with SIGTERM, which may land in a collection and print "Exception ignored …
        # SystemExit" under `repeval -v` (repeval/quiet_exit.py); installed here, at a task's first batch, not as the
        # embedded Ray's setup hook (which slowed every first task by seconds): once per process, a getattr after that
        quiet_exit_requests_in_callbacks()
        out: dict[str, list[Any]] = {k: [] for k in DECODE_COLUMNS}
        held = 0

        def emit(
            tid: str,
            split: str,
            sid: str,
            chunk: int,
            last: bool,
            audio: np.ndarray | None,
            params: str,
            error: str = "",
            stage: str = "",
            seam: tuple[int, int, int, int] = (0, -1, 0, 0),
            note: str = "",
        ) -> None:
            nonlocal held
            out["track_id"].append(tid)
            out["split"].append(split)
            out["scenario"].append(sid)
            out["chunk"].append(chunk)
            out["n_chunks"].append(chunk + 1 if last else 0)
            out["audio"].append(audio if audio is not None else np.zeros(0, np.float32))
            out["deformation_params"].append(params)
            out["error"].append(error)
            out["stage"].append(stage)
            out["skip"].append(seam[0])
            out["keep"].append(seam[1])
            out["context"].append(seam[2])
            out["offset"].append(seam[3])
            out["note"].append(note)
            held += 0 if audio is None else len(audio)

        for tid, path, split, wanted in zip(
            batch["track_id"], batch["audio_path"], batch["split"], batch["scenarios"], strict=True
        ):
            for _ in self._track(str(tid), str(path), str(split), self._wanted(wanted), emit):
                if held >= MAX_BATCH_SAMPLES:
                    yield self._to_table(out)
                    out = {k: [] for k in DECODE_COLUMNS}
                    held = 0
        if out["track_id"]:
            yield self._to_table(out)

    def _track(self, tid: str, path: str, split: str, wanted: list[str], emit: Any) -> Iterator[None]:
        """Emit the rows of one track chunk by chunk (a generator so the caller can flush between chunks).

        A scenario with a track-level step (:data:`repeval.deformations.TRACK_LEVEL`) is applied once to the whole
        track, whose deformed audio is then cut into the usual windows (as many as its own length makes); the track
        is decoded whole for it, up to ``whole_track_max_s`` seconds — a longer track is an error record in that
        scenario, naming the setting. The other scenarios stream: each window is deformed as it is decoded.

        An error closes the track in a scenario: its row comes after the chunks already sent,
        and says how many chunks the track has (so the driver knows when it has them all). A track decoded from part of
        its file (:mod:`repeval.audio.partial`) carries its ``note`` on its last chunk (the file is read to its end by
        then: its last window is known from the end of its blocks on).
        """
        # audiomentations (~1 s to import) is loaded by the first track that needs a deformation
        scenarios = self._scenarios() if any(self._plain(sid) != CLEAN for sid in wanted) else {}
        open_ = dict.fromkeys(wanted, True)
        params: dict[str, str] = {}
        #: the deformed windows of each scenario applied to the whole track (``whole``)
        windows: dict[str, list[np.ndarray]] = {}
        # a whole-file model (chunk_s None) has one window: every scenario is applied to the whole file anyway
        whole = [sid for sid in wanted if sid in scenarios and scenarios[sid].track_level and self.chunk_s is not None]
        index = 0
        notes: list[str] = []  # the file's audio_note, once read to its end (a file decoded only in part)
        truncated = self.truncated_audio
        try:
            windows_in: Iterator[np.ndarray]
            if self.chunk_s is None:
                windows_in = iter_chunks(path, self.sample_rate_hz, None, self.max_duration_s, truncated, notes)
            else:
                blocks: Iterator[np.ndarray] = iter_blocks(
                    path, self.sample_rate_hz, self.max_duration_s, truncated, notes
                )
                if whole:
                    blocks = self._whole_track(blocks, self.chunk_s, tid, split, whole, windows, params, open_, emit)
                windows_in = chunk_blocks(blocks, self.sample_rate_hz, self.chunk_s, *self._grid())
            # the windows, read ahead as far as the model's cut of a track's rows needs (samples_for_cut)
            chunks = ReadAhead(windows_in)
            streamed = [sid for sid in wanted if sid not in windows]
            current: np.ndarray | None = next(chunks) if any(open_[sid] for sid in streamed) else None
            # each streamed scenario's window ``index`` and (once known) ``index + 1``, deformed — or why not; the
            # end of its window ``index - 1`` (the context the model's frames need across window edges)
            ahead = self._deformed(scenarios, tid, streamed, open_, 0, current)
            behind: dict[str, np.ndarray | None] = {}
            while True:
                following = None if current is None else next(chunks, None)  # one window of look-ahead: the last?
                going = [sid for sid, got in ahead.items() if not isinstance(got, Exception)]
                now, ahead = ahead, self._deformed(scenarios, tid, going, open_, index + 1, following)
                if current is not None and following is not None:  # (window ``index`` is not the last)
                    chunks.reach(samples_for_cut(self.geometry, self._start(index) + len(current)))
                sent = False
                for sid in wanted:
                    if not open_[sid]:
                        continue
                    if sid in windows:
                        w = windows[sid]
                        last = index == len(w) - 1
                        previous = w[index - 1] if index else None
                        nxt_w = None if last else w[index + 1]
                        audio, seam = self._seam(w[index], previous, nxt_w, index, last, sum(map(len, w)), True)
                        emit(tid, split, sid, index, last, audio, params[sid], seam=seam, note=_note(notes, last))
                        open_[sid] = not last
                        sent = True
                        continue
                    if current is None:
                        continue
                    sent = True
                    last = following is None
                    got = now[sid]
                    if isinstance(got, Exception):
                        emit(tid, split, sid, index, True, None, "", f"{type(got).__name__}: {got}", "deform")
                        open_[sid] = False
                        continue
                    window, sampled = got
                    if sampled is not None:
                        params.setdefault(sid, json.dumps(sampled))
                    nxt = ahead.get(sid)
                    # a deformation that changed a window's length moved the frame grid: that window goes alone
                    fits = len(window) == len(current)
                    nxt_fits = isinstance(nxt, tuple) and following is not None and len(nxt[0]) == len(following)
                    audio, seam = self._seam(
                        window,
                        behind.get(sid) if fits else None,
                        nxt[0] if fits and isinstance(nxt, tuple) and nxt_fits else None,
                        index,
                        last,
                        chunks.read,
                        chunks.ended,
                    )
                    behind[sid] = self._tail(window) if fits else None
                    emit(tid, split, sid, index, last, audio, params.get(sid, ""), seam=seam, note=_note(notes, last))
                if not sent:
                    break
                yield None
                index += 1
                current = following
        except Exception as exc:
            reason = error_reason(exc)
            for sid in wanted:
                if open_[sid]:
                    emit(tid, split, sid, index, True, None, "", reason, "decode")
        finally:
            for sid in scenarios:
                for t in scenarios[sid].transforms:
                    t.unfreeze_parameters()
        yield None

    def _grid(self) -> tuple[int, int]:
        return window_grid(self.geometry)

    def _deformed(
        self, scenarios: dict[str, Scenario], tid: str, sids: list[str], open_: dict[str, bool], index: int, audio: Any
    ) -> dict[str, tuple[np.ndarray, Any] | Exception]:
        """Window ``index`` (``audio``) in each open scenario of ``sids``: ``(audio, sampled parameters or None)``,
        or the exception that deforming it raised (an error record of the track when its turn comes)."""
        if audio is None:
            return {}
        out: dict[str, tuple[np.ndarray, Any] | Exception] = {}
        for sid in sids:
            if not open_[sid]:
                continue
            if self._plain(sid) == CLEAN:
                out[sid] = (audio, None)
                continue
            try:
                out[sid] = self._deform(scenarios[sid], tid, sid, index, audio)
            except Exception as exc:
                out[sid] = exc
        return out

    def _tail(self, window: np.ndarray) -> np.ndarray | None:
        """The end of a window that the next one's first frames read (a copy: the window itself is freed)."""
        n = 0 if self.geometry is None else self.geometry.before
        return window[len(window) - n :].copy() if n else None

    def _start(self, index: int) -> int:
        """Where window ``index`` starts in the track (samples)."""
        return index * window_sizes(self.sample_rate_hz, float(self.chunk_s or 0), *self._grid())[0]

    def _seam(
        self,
        window: np.ndarray,
        previous: np.ndarray | None,
        following: np.ndarray | None,
        index: int,
        last: bool,
        read: int,
        ended: bool,
    ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """Window ``index`` as the model reads it: with the end of the previous window and the start of the next one
        that its frames need, and ``(skip, keep, context, offset)``: the frames computed on the previous window's end,
        the frames that start in this window (the last window: as many as the whole track has from its start on),
        the context samples and where the model starts its frames (a model whose geometry has an ``align``: the
        previous window's end, so it computes no frame there and ``skip`` is 0); a window but the last goes without
        the end its frames do not read (:attr:`FrameGeometry.trim`). A model that cuts a track's rows
        (:attr:`FrameGeometry.rows_per_sample`) has its rows past the cut dropped in whichever window they start — ``read``
        samples of the track are read (:func:`~repeval.pipeline.readahead.samples_for_cut`), all of it when ``ended``. Without a frame geometry, for
        a track of one window, or when context is missing (a deformation changed a neighbour's length): the window
        alone, all its frames kept."""
        g = self.geometry
        if g is None or (index == 0 and last):
            return window, (0, -1, 0, 0)
        before = previous[len(previous) - g.before :] if index and g.before and previous is not None else None
        after = following[: g.after] if not last and g.after and following is not None else None
        if (index and g.before and before is None) or (not last and g.after and after is None):
            return window, (0, -1, 0, 0)
        start = self._start(index)
        # rows (``g.rows`` per frame) that start in the window, none past the model's cut of the track's rows
        # (``rows_per_sample``): the last window, as many as the track has from its start on — none where the cut
        # falls in an earlier window (read far enough ahead to know it: ``read``)
        first = start // g.hop * g.rows
        if last:
            keep = max(0, g.count_rows(start + len(window)) - first)
        else:
            keep = len(window) // g.hop * g.rows
            if g.rows_per_sample > 0 and ended:
                keep = max(0, min(keep, int(np.floor(read * g.rows_per_sample)) - first))
        # a window none of whose frames reads its last samples (a frame shorter than a hop) goes without them: the
        # model computes no frame past its end
        body = window if last or not g.trim else window[: len(window) - g.trim]
        parts = [p for p in (before, body, after) if p is not None]
        context = sum(len(p) for p in parts) - len(window)  # negative: samples left out
        ahead = 0 if before is None else len(before)
        offset = ahead if g.offset else 0
        return (np.concatenate(parts) if len(parts) > 1 else body), (
            (ahead - offset) // g.hop * g.rows,
            keep,
            context,
            offset,
        )

    def _whole_track(
        self,
        blocks: Iterator[np.ndarray],
        chunk_s: float,
        tid: str,
        split: str,
        whole: list[str],
        windows: dict[str, list[np.ndarray]],
        params: dict[str, str],
        open_: dict[str, bool],
        emit: Any,
    ) -> Iterator[np.ndarray]:
        """Read the track whole (up to ``whole_track_max_s``) and deform it once in each of the ``whole`` scenarios,
        filling ``windows`` and ``params`` (or emitting the scenario's error record). Returns the track's blocks for
        the streamed scenarios: the whole track as one block, or — a track over the limit — the blocks read so far
        followed by the rest of the file."""
        limit = None if self.whole_track_max_s is None else round(self.whole_track_max_s * self.sample_rate_hz)
        held: deque[np.ndarray] = deque()
        n = 0
        for block in blocks:
            held.append(block)
            n += len(block)
            if limit is not None and n > limit:
                for sid in whole:
                    emit(tid, split, sid, 0, True, None, "", self._too_long(sid), "deform")
                    open_[sid] = False
                return itertools.chain(_drain(held), blocks)
        track = held[0] if len(held) == 1 else np.concatenate(held)
        held.clear()
        scenarios = self._scenarios()
        for sid in whole:
            scenario = scenarios[sid]
            try:
                for t in scenario.transforms:
                    t.unfreeze_parameters()
                seed = chunk_seed(self.run_seed, tid, self._plain(sid), 0)  # a one-window track's: bit-identical
                audio, sampled = scenario(track, self.sample_rate_hz, seed)
                if not len(audio):
                    raise ValueError(f"the deformation left no audio of the track's {len(track)} samples")
                windows[sid] = list(chunk_blocks([audio], self.sample_rate_hz, chunk_s, *self._grid()))
                params[sid] = json.dumps(sampled)
            except Exception as exc:
                emit(tid, split, sid, 0, True, None, "", f"{type(exc).__name__}: {exc}", "deform")
                open_[sid] = False
        return iter([track])

    def _too_long(self, sid: str) -> str:
        scenario = self._scenarios()[sid]
        steps = ", ".join(dict.fromkeys(scenario.track_level))
        cap = self.whole_track_max_s
        return (
            f"track longer than {cap:g} s: scenario {scenario.scenario_id!r} applies {steps} to the whole track, "
            f"which it decodes and deforms at once up to run.deform_whole_track_max_s ({cap:g} s) — raise that "
            "(null: no limit; a decode task then holds the whole track and its deformed copies) and rerun with "
            "--retry-errors"
        )

    def _deform(self, scenario: Scenario, tid: str, sid: str, index: int, audio: np.ndarray) -> tuple[np.ndarray, Any]:
        if index == 0:
            for t in scenario.transforms:
                t.unfreeze_parameters()
        out, sampled = scenario(audio, self.sample_rate_hz, chunk_seed(self.run_seed, tid, self._plain(sid), index))
        if index == 0:
            for t in scenario.transforms:
                t.freeze_parameters()  # later chunks reuse the parameters sampled for the track
        if not np.isfinite(out).all():
            raise ValueError("deformation produced non-finite samples")
        return out, sampled

    @staticmethod
    def _to_table(out: dict[str, list[Any]]) -> pa.Table:
        return chunks_table(out)
