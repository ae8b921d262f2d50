"""The embedding stage's progress where stderr is no terminal (a log file, ``nohup``, ``ray job submit``)."""

from __future__ import annotations

import io
import logging
import pickle

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


def test_a_slow_rate_is_said_per_minute_or_hour(monkeypatch, caplog) -> None:
    """A large model on long tracks writes a row every 25 s: its lines read "0.0 rows/s", a trial's always did."""
    monkeypatch.setattr(summary.sys, "stderr", io.StringIO())
    caplog.set_level(logging.INFO, logger="repeval.pipeline.summary")
    clock = Clock()
    bar = Progress(600, "write catalog/big-model", clock=clock)
    bar.update(1)
    clock.now += 75
    bar.update(3)  # 3 rows in 75 s
    clock.now += 3600
    bar.update(1)  # 4 rows in 3,675 s
    assert caplog.messages == [
        "write catalog/big-model: 4 of 600 rows (0%), 2.4 rows/min, about 4 h 09 min left",
        "write catalog/big-model: 5 of 600 rows (0%), 3.9 rows/h, about 151 h 51 min left",
    ]
    assert summary.per_time(9.14, "row") == "9.1 rows/s" and summary.per_time(1234.0, "row") == "1,234 rows/s"


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


def test_the_summary_line_of_250_scenarios_counts_the_first_and_the_rest_together() -> None:
    """A catalog run of 250 scenarios printed one line of 250 "name count" pairs (some 6,000 characters); it names the
    first five and counts the rest together, the total unchanged."""
    from collections import Counter

    from repeval.pipeline.summary import EmbedSummary

    names = ["clean", *(f"noise_{i:03d}" for i in range(249))]
    s = EmbedSummary(
        tracks=3000,
        computed=3000 + 249 * 300,
        streams=1,
        wall_s=100.0,
        audio_seconds=1000.0,
        rows_by_scenario=Counter({n: 3000 if n == "clean" else 300 for n in names}),
        partition_order=dict.fromkeys(f"c/m/{n}" for n in names),
    )
    line = s.line()
    assert line.startswith(
        "embedded 77,700 rows [clean 3,000, noise_000 300, noise_001 300, noise_002 300, noise_003 300, 245 more "
        "scenarios: 73,500] from 3,000 tracks, "
    ), line
    assert len(line) < 250
    s.rows_by_scenario = Counter({n: 1 for n in names[:6]})  # six: each named
    assert "[clean 1, noise_000 1, noise_001 1, noise_002 1, noise_003 1, noise_004 1]" in s.line()
    # a bad file under every scenario: an error record in each of the 250 partitions, whose commands were 250 lines
    s.store_uri = "/data/store"
    for n in names:
        s.add_failures(f"c/m/{n}", ["t1"], ["decode"], ["unreadable"])
    s.errors = 250
    commands = [line for line in s.failure_lines() if line.startswith("  repeval store show")]
    assert commands == [f"  repeval store show /data/store c/m/{n} --errors" for n in names[:5]]
    assert s.failure_lines()[-1] == (
        "  and 245 more partitions (245 error records): the same command with the partition's name "
        "(`repeval store ls /data/store` lists each partition's error records)"
    )


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


def test_a_line_a_minute_of_the_trials_reused_ones_counted_from_the_start(monkeypatch, caplog) -> None:
    """The training stage printed nothing without a terminal (Tune runs with verbose=0): a grid of hours said nothing
    between "training 3 probe grids together" and its summary. A line a minute now, whose rate leaves out the trials an
    interrupted run finished (they report their checkpoint at once) — as Tune calls the callback, on its trials."""
    from types import SimpleNamespace

    from repeval.tuning.checkpoint import trial_key
    from repeval.tuning.progress import TrialProgress, experiment_label, reusing

    monkeypatch.setattr(summary.sys, "stderr", io.StringIO())
    caplog.set_level(logging.INFO, logger="repeval.pipeline.summary")
    clock = Clock()
    trials = [SimpleNamespace(config={"unit": u}, status="PENDING") for u in range(8)]
    trials[0].status = "TERMINATED"  # ended in the experiment restored
    reused = [trial_key(t.config) for t in trials[:3]]  # checkpoints of the interrupted run: 0 (restored too), 1, 2
    cb = TrialProgress("grid", 8, reused, clock=clock)
    cb.setup(stop=None, num_samples=8, total_num_samples=8)
    cb.on_step_begin(0, trials)
    for t in trials[1:3]:  # the reused trials end at once: counted already
        cb.on_trial_complete(0, trials, t)
    cb.on_trial_complete(0, trials, trials[3])  # the first trained: the rate counts from here
    clock.now += 30
    cb.on_trial_error(0, trials, trials[4])  # failed for good: ended too
    clock.now += 30
    cb.on_trial_complete(0, trials, trials[5])
    cb.on_trial_complete(0, trials, trials[5])  # said twice: counted once
    assert caplog.messages == ["train grid: 6 of 8 trials (75%), 2.0 trials/min, about 1 min left"], caplog.messages
    # a restored experiment's callback is the one its first driver pickled: its next fit counts anew, with the trials
    # this fit reuses (units 2 and 5; 0 and 1 ended in the experiment)
    again = pickle.loads(pickle.dumps(TrialProgress("grid", 8, reused)))
    reusing("grid", [trial_key({"unit": u}) for u in (2, 5)])
    again.setup(stop=None, num_samples=8, total_num_samples=8)
    again.on_step_begin(0, [SimpleNamespace(config={"unit": u}, status="TERMINATED") for u in range(2)])
    again.on_trial_complete(0, trials, trials[5])
    assert again.bar is not None and again.bar.done == 4 and again.bar.first is None
    # a batch's Tune experiment was named opaquely ("train groups-3-0aa910ac2b25"): its lines name its grids
    grids = [f"instrument__notes__mfcc-{k}" for k in "abc"]
    assert experiment_label(grids) == f"3 probe grids ({', '.join(grids)})"
    many = [f"genre__catalog_{i:03d}__clap-music" for i in range(40)]
    assert experiment_label(many) == "40 probe grids (genre__catalog_000__clap-music and 39 more)"
    assert experiment_label(grids[:1]) == grids[0]
    caplog.clear()
    batch = TrialProgress("groups-3-0aa910ac2b25", 8, [], clock=clock, label=experiment_label(grids))
    batch.setup()
    batch.on_step_begin(0, trials)
    batch.on_trial_complete(0, trials, trials[6])
    clock.now += 60
    batch.on_trial_complete(0, trials, trials[7])
    assert caplog.messages[0].startswith(f"train 3 probe grids ({grids[0]}, "), caplog.messages


def test_trials_that_do_not_end_for_minutes_are_said_once_a_minute(monkeypatch, caplog) -> None:
    """A grid whose trials wait for the cluster (none running) or train for minutes said nothing until one ended."""
    from types import SimpleNamespace

    from repeval.tuning.progress import TrialProgress

    monkeypatch.setattr(summary.sys, "stderr", io.StringIO())
    caplog.set_level(logging.INFO, logger="repeval.pipeline.summary")
    clock = Clock()
    trials = [SimpleNamespace(config={"unit": u}, status="PENDING") for u in range(8)]
    cb = TrialProgress("grid", 8, [], clock=clock)
    cb.setup()
    cb.on_step_begin(0, trials)
    clock.now += 90
    cb.on_step_begin(1, trials)  # none can start
    clock.now += 30
    cb.on_step_begin(2, trials)  # a line a minute at most
    for t in trials[:2]:
        t.status = "RUNNING"
    trials[0].status = "TERMINATED"
    clock.now += 60
    cb.on_trial_complete(3, trials, trials[0])
    clock.now += 200
    cb.on_step_begin(4, trials)
    assert caplog.messages == [
        "train grid: starting, 0 running, 8 pending (waiting for the CPUs or GPUs a trial asks for: other work holds "
        "them, or a node is starting) (1 min)",
        "train grid: no trial ended for 3 min (1 of 8 trials ended), 1 running, 6 pending",
    ], caplog.messages
