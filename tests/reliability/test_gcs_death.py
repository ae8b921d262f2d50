"""Ray dying under a run: the GCS of a ``repeval embed``'s own Ray killed while its stream writes. Ray ends a driver
whose GCS is gone only after a minute ("Failed to connect to GCS within 60 seconds … The program will terminate",
exit status 1), losing the rows the stream had not written yet and saying nothing of the run; the stream's watch
sees the GCS's process gone within a tick, stops the stream and the command says what happened and what was kept.

The model is a plug-in that cannot finish the stream by itself: it waits at the catalog's last track — so the stream
is still running when the GCS is killed, whatever the machine's speed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from reliability_helpers import (
    Proc,
    check_store,
    complete,
    expected_ids,
    experiment,
    live_processes,
    make_catalog,
    wait_for,
    write_config,
)

from repeval.testing.ahead import ahead_fixture
from repeval.testing.badaudio import write_good
from repeval.testing.processes import RAY_START_TIMED_OUT

#: what the command says of a stream stopped when its GCS went away: the rows it counted as written
STOPPED = re.compile(
    r"the Ray cluster's GCS is gone \(its process \(pid \d+\) ended .*?\(([\d,]+) of [\d,]+ rows written\)"
)

#: a model that waits at a clip longer than ``longer_s`` (the catalog's last track's), touching ``stalled``: its stream
#: cannot end (for two minutes: Ray ended a driver whose GCS is gone after one; nothing lingers)
STALLING_MODEL = """
import time
from pathlib import Path

import numpy as np

from repeval.models import EmbeddingModel, register_model


@register_model("stalls-at-long-clip")
class StallsAtLongClip(EmbeddingModel):
    sample_rate_hz, embedding_dim = 8000, 2

    def __init__(self, longer_s: float = 1.2, stalled: str = ""):
        super().__init__(longer_s=longer_s, stalled=stalled)
        self.deadline = time.monotonic() + 120

    def embed(self, audio):
        if audio.shape[-1] > self.params["longer_s"] * self.sample_rate_hz:
            Path(self.params["stalled"]).touch()
            while time.monotonic() < self.deadline:
                time.sleep(0.05)
        return np.array([[audio.mean(), audio.std()]], np.float32)
"""


@dataclass
class GcsKilled:
    """A ``repeval embed`` whose Ray's GCS was killed once its stream had written rows and then stalled: its exit
    status, stderr, store and what the store held when the GCS died."""

    status: int
    err: str
    store: Path
    expected: dict[str, set[str]]
    at_kill: int


def embed_then_kill_gcs(environ: dict[str, str]) -> Iterator[GcsKilled]:
    """The stalling model's stream over 12 one-second tracks and a last longer one, its Ray's GCS killed (SIGKILL)
    once a part file of rows is in the store and the model waits at the last track; started as soon as the tests are
    collected (``ahead_fixture``)."""
    root = Path(tempfile.mkdtemp(prefix="rvgcs-"))
    try:
        last = {"track_id": "zz-last", "audio_path": "audio/zz-last.wav", "label": "low", "split": "train"}
        manifest = make_catalog(root / "catalog", per_class=6, seconds=1.0, extra=[last])
        write_good(root / "catalog" / last["audio_path"], 1.5, 440.0, seed=0)  # the one the model waits at
        plugin, stalled = root / "stalling_model.py", root / "stalled"
        plugin.write_text(textwrap.dedent(STALLING_MODEL))
        model = {"id": "stalls", "type": "stalls-at-long-clip", "params": {"stalled": str(stalled)}}
        model["batch_size"] = 1  # each clip its own call: the tail blocks, the last track's alone, one clip each
        resources = {"embed_in_decode": "never", "embed_actors": 1}  # an actor pool, whose actors' marks are in the GCS
        exp = {**experiment(manifest, [model]), "deformations": []}
        cfg = write_config(root / "config.yaml", root, [exp], resources=resources)
        cfg.write_text(f"plugins: [{plugin}]\n" + cfg.read_text())
        expected = expected_ids(manifest, [model["id"]], scenarios=())
        for again in (False, True):  # once more if its Ray did not start in time (the tests meanwhile start theirs)
            p = Proc(["embed", str(cfg)], root, environ=environ)
            try:
                wait_for(lambda: stalled.exists() and list((root / "store").rglob("part-*")), p, timeout=600)
                break
            except BaseException:
                p.wait(timeout=0)
                if again or RAY_START_TIMED_OUT not in "".join(p.err):
                    raise
            shutil.rmtree(root / "store", ignore_errors=True)
            shutil.rmtree(root / "runs", ignore_errors=True)
        session = live_processes(lambda stat: stat[3] == p.pid)  # the command's Ray: its GCS is ray/core/…/gcs_server
        (gcs,) = [pid for pid, cmd in session if cmd.split(" ", 1)[0].endswith("/gcs_server")]
        os.kill(gcs, signal.SIGKILL)
        at_kill, killed_at = sum(check_store(root / "store", expected).values()), time.monotonic()
        status = p.wait(timeout=300)
        print(f"GCS killed: the command ended {time.monotonic() - killed_at:.1f} s later")  # (said, not asserted)
        yield GcsKilled(status, "".join(p.err), root / "store", expected, at_kill)
    finally:
        shutil.rmtree(root, ignore_errors=True)


gcs_killed = ahead_fixture("gcs_killed", embed_then_kill_gcs)


def test_a_run_whose_gcs_dies_mid_stream_stops_keeping_its_rows_and_says_so(gcs_killed) -> None:
    r = gcs_killed
    assert r.status == 1, r.err[-3000:]
    stopped = STOPPED.search(r.err)
    assert stopped, r.err[-3000:]
    assert "resumes it" in r.err[stopped.end() :] and "Traceback" not in r.err, r.err[-3000:]
    assert "Failed to connect to GCS within" not in r.err  # not ended by Ray
    in_store = sum(check_store(r.store, r.expected).values())  # consistent, whatever the stop
    assert in_store == int(stopped.group(1).replace(",", "")) >= max(r.at_kill, 1)  # every row counted is in the store
    assert in_store < sum(len(v) for v in r.expected.values()) and not complete(r.store)  # stopped mid-way
