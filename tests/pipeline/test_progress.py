"""The embedding stage's progress where stderr is no terminal (a log file, ``nohup``, ``ray job submit``)."""

from __future__ import annotations

import io
import logging

import pytest

from repeval.pipeline import summary
from repeval.pipeline.summary import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_progress_line_a_minute_without_a_terminal(monkeypatch, caplog) -> None:
    monkeypatch.setattr(summary.sys, "stderr", io.StringIO())  # no terminal: no bar
    clock = Clock()
    caplog.set_level(logging.INFO, logger="repeval.pipeline.summary")
    bar = Progress(3600, "write catalog/msd-musicnn", clock=clock)
    assert bar.bar is None
    clock.now += 300  # five minutes of start-up before the first rows: not in the rate
    bar.update(100)
    clock.now += 30
    bar.update(300)
    assert caplog.messages == []  # not every update: once a minute
    clock.now += 30
    bar.update(300)  # 600 rows in the 60 s since the first: 10 rows/s, 2,900 left
    clock.now += 60
    bar.update(0)  # nothing written: no line
    clock.now += 60
    bar.update(1200)  # 1,800 rows in 180 s: 10 rows/s, 1,700 left
    assert caplog.messages == [
        "write catalog/msd-musicnn: 700 of 3,600 rows (19%), 10.0 rows/s, about 5 min left",
        "write catalog/msd-musicnn: 1,900 of 3,600 rows (52%), 10.0 rows/s, about 3 min left",
    ]
    clock.now += 600
    bar.update(1700)  # done: the stage's summary line says the rest
    assert len(caplog.messages) == 2


@pytest.mark.parametrize("enabled", [True, False])
def test_no_progress_lines_when_the_caller_chose(monkeypatch, caplog, enabled) -> None:
    monkeypatch.setattr(summary.sys, "stderr", io.StringIO())
    clock = Clock()
    caplog.set_level(logging.INFO, logger="repeval.pipeline.summary")
    bar = Progress(10, "render x", enabled=enabled, unit="clip", clock=clock)
    for _ in range(5):
        clock.now += 120
        bar.update(1)
    bar.close()
    assert caplog.messages == []


@pytest.mark.parametrize(
    ("seconds", "text"), [(45, "45 s"), (60, "1 min"), (61, "2 min"), (3600, "1 h 00 min"), (11100, "3 h 05 min")]
)
def test_time_left_in_words(seconds, text) -> None:
    assert summary.duration(seconds) == text


def test_the_summary_line_at_catalog_scale() -> None:
    """A 3,000-track run's summary said "[clean 3000, …]" and "4.8 rows/s" over its 104.8 s, 49.3 s of which were
    start-up (Ray's workers, the model loading): a team sizing a catalog ten times larger from it was off by two.
    Its counts now have thousands separators and its rates are those after start-up."""
    from collections import Counter

    from repeval.pipeline.summary import EmbedSummary

    s = EmbedSummary(
        tracks=3000,
        computed=3596,
        streams=1,
        wall_s=104.0,
        startup_s=50.0,
        audio_seconds=5034.4,
        rows_by_scenario=Counter(clean=3000, noise_10db=298, mp3_32kbps=298),
        partition_order=dict.fromkeys(f"c/m/{s}" for s in ("clean", "noise_10db", "mp3_32kbps")),
    )
    assert s.line() == (
        "embedded 3,596 rows [clean 3,000, noise_10db 298, mp3_32kbps 298] from 3,000 tracks, 0 rows already in "
        "store, 0 errors, in 104.0s (50.0s start-up) — 66.6 rows/s, 93 s of audio per second after start-up"
    )
    s.startup_s = 0.0  # no start-up measured: the rates over the whole stage, said as before
    assert s.line().endswith(" — 34.6 rows/s, 48 s of audio per second")


def test_a_shared_streams_datasets_are_counted_in_thousands() -> None:
    """The line a stream of several datasets starts with read "12,000 tracks to embed (msd 10000, gtzan 2000)"."""
    import numpy as np
    import pyarrow as pa

    from repeval.pipeline.todo import Stream, spool_todo

    st = Stream(mcfg=None, sample_rate=16000, chunk_s=None, keys=["msd\x1fclean", "gtzan\x1fclean"])
    for name, n in (("msd", 10_000), ("gtzan", 1)):
        ids = [f"{name}{i}" for i in range(n)]
        cols = pa.table({"track_id": ids, "audio_path": ids, "split": ["test"] * n})
        spool_todo(st, name, cols, {f"{name}\x1fclean": np.ones(n, bool)})
    assert st.labels == ["msd 10,000", "gtzan 1"]
