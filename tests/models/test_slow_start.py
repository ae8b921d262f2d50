"""A stream says what it waits for when nothing comes (a line a minute; here a fraction of a second): its embedding
actor loading a large model, an actor that no node has the room for, or no rows for minutes. Nothing was said from the
stream's first line to its first progress line, or for as long as no rows came."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import yaml

from repeval.testing.ahead import ahead_fixture

REPO = Path(__file__).resolve().parents[2]

#: a model whose constructor waits for ``release``: a large model loading for minutes
SLOW_MODEL = """
import time
from pathlib import Path

import numpy as np

from repeval.models import EmbeddingModel, register_model

@register_model("slow-start")
class SlowStart(EmbeddingModel):
    sample_rate_hz, embedding_dim = 16000, 2

    def __init__(self, release: str = ""):
        super().__init__(release=release)
        deadline = time.monotonic() + 30  # no line for 30 s: the stream said nothing while the model loaded
        while not Path(release).exists():
            if time.monotonic() > deadline:
                raise RuntimeError("nothing said while the model loaded")
            time.sleep(0.05)

    def embed(self, audio):
        return np.array([[audio.mean(), audio.std()]], np.float32)
"""


def test_a_stream_says_while_its_model_loads(
    ray_session, rendered_notes, tmp_path, monkeypatch, forget_plugins
) -> None:
    """The plugin's model waits in its constructor for the driver's line (a file the log handler writes): the test
    holds whatever the machine's speed; without the line, the model gives up and the stream fails."""
    from repeval import runner
    from repeval.config import load_config
    from repeval.pipeline import stream_watch, summary
    from repeval.testing.configs import notes_dataset, notes_manifest

    monkeypatch.setattr(summary, "PROGRESS_EVERY_S", 0.5)  # a line a minute, here every half second
    monkeypatch.setattr(stream_watch, "WATCH_TICK_S", 0.05)
    rows = list(csv.DictReader(rendered_notes.open()))[:4]
    manifest = notes_manifest(rendered_notes, tmp_path / "manifest.csv", rows, [])
    plugin = tmp_path / "slow_model.py"
    plugin.write_text(textwrap.dedent(SLOW_MODEL))
    release = tmp_path / "release"
    cfg = {
        "plugins": [str(plugin)],
        "run": {
            "run_id": "t", "store": str(tmp_path / "store"), "runs_dir": str(tmp_path / "runs"),
            "resources": {"embed_in_decode": "never", "embed_actors": 1},
        },
        "experiments": [{
            "task": {"name": "instrument", "type": "multiclass_classification"},
            "datasets": [notes_dataset(manifest)],
            "embedding_models": [{"id": "slow", "type": "slow-start", "params": {"release": str(release)}}],
            "downstream_models": [{"name": "linear", "hidden_units": []}],
        }],
    }  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    said: list[str] = []

    def emit(record: logging.LogRecord) -> None:  # in the stream's watch thread
        said.append(record.getMessage())
        if "loading the model" in said[-1]:
            release.touch()

    handler = logging.Handler(logging.INFO)
    handler.emit = emit  # type: ignore[method-assign]
    logger = logging.getLogger("repeval.pipeline.summary")
    monkeypatch.setattr(logger, "level", logging.INFO)
    logger.addHandler(handler)
    try:
        result = runner.stage_embed(runner.make_context(load_config(path)), progress=None)
    finally:
        logger.removeHandler(handler)
    assert result.errors == 0 and result.computed == 4 and not result.models_failed, result.text()
    loading = [s for s in said if "loading the model" in s]
    assert loading and loading[0].startswith(
        "embed notes/slow: starting, 0 of 1 embedding actor ready, 1 loading the model ("
    ), said


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_stream_says_when_no_rows_come_and_when_no_node_has_room_for_its_actors(
    ray_session, monkeypatch, caplog
) -> None:
    """A stream of a model in its decode tasks (no actors) that wrote rows then none for minutes; an actor asking for
    a GPU of a cluster without one: its line says so, with the fix. One line a minute, progress lines included."""
    from repeval.pipeline import summary
    from repeval.pipeline.stream_watch import StreamWatch

    monkeypatch.setattr(summary.sys, "stderr", io.StringIO())  # no terminal
    caplog.set_level(logging.INFO, logger="repeval.pipeline.summary")
    clock = Clock()
    bar = summary.Progress(3600, "write catalog/msd-musicnn", clock=clock)
    watch = StreamWatch(bar, "catalog/msd-musicnn", 0, {}, {})
    clock.now += 30
    watch.check()  # half a minute of start-up: nothing yet
    clock.now += 45
    watch.check()
    clock.now += 10
    watch.check()  # a line a minute at most
    bar.update(600)  # the first rows: the rate counts from here
    clock.now += 65
    bar.update(600)
    clock.now += 50
    watch.check()  # 50 s without rows: nothing
    clock.now += 130
    watch.check()
    assert caplog.messages == [
        "embed catalog/msd-musicnn: starting, no rows yet (1 min): waiting for the decode tasks, which load the model "
        "before their first tracks",
        "write catalog/msd-musicnn: 1,200 of 3,600 rows (33%), 9.2 rows/s, about 5 min left",
        "write catalog/msd-musicnn: no rows for 3 min (1,200 of 3,600 rows written): waiting for the decode tasks, "
        "which embed the tracks they decode",
    ], caplog.messages
    gpu = StreamWatch(bar, "catalog/musicnn", 2, {"CPU": 1, "GPU": 1}, {"GPU": "run.resources.embed_num_gpus"})
    line = gpu.line(150, 0, 0, 0, 2)
    assert line.startswith(
        "write catalog/musicnn: no rows for 2 min (1,200 of 3,600 rows written), 0 of 2 embedding actors ready, "
        "2 waiting for a node with 1 CPU, 1 GPU free — the embedding actors of catalog/musicnn each ask for 1 CPU, 1 GPU, "
        "but no node of this Ray cluster (1 node) has that much"
    ), line
    assert "set run.resources.embed_num_gpus" not in line and "add a node with 1 CPU, 1 GPU" in line, line

    class RowsWhileItLooks(StreamWatch):  # the first rows come while the watch asks the GCS for the pool's actors
        def actors(self) -> tuple[int, int, int]:
            self.bar.update(600)
            return super().actors()

    caplog.clear()
    late = summary.Progress(3600, "write catalog/clap", clock=clock)
    clock.now += 90
    RowsWhileItLooks(late, "catalog/clap", 1, {"CPU": 1}, {}).check()
    assert not caplog.messages, caplog.messages  # said "starting" after the stream's first rows


def test_a_gpu_pool_under_use_gpu_always_waits_for_the_autoscaler_of_a_cluster_that_may_grow(
    ray_session, monkeypatch
) -> None:
    """Under ``use_gpu: always`` on a cluster reached through ``RAY_ADDRESS`` (which may autoscale), actors asking for
    a GPU no node up has wait for its autoscaler: the line said they "would wait for ever: add a node" while one may
    be on its way. On the embedded Ray it still says so; a single actor's line reads "asks for", not "each ask for"."""
    from repeval.pipeline import summary
    from repeval.pipeline.stream_watch import StreamWatch

    clock = Clock()
    bar = summary.Progress(3600, "write catalog/musicnn", clock=clock)
    ask, keys = {"CPU": 1, "GPU": 1}, {"GPU": "run.resources.embed_num_gpus"}
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    one = StreamWatch(bar, "catalog/musicnn", 1, ask, keys, always=True).line(150, 0, 0, 0, 1)
    assert one.startswith(
        "embed catalog/musicnn: starting, 0 of 1 embedding actor ready, 1 waiting for a node with 1 CPU, 1 GPU free — "
        "the embedding actor of catalog/musicnn asks for 1 CPU, 1 GPU, but no node of this Ray cluster (1 node) has "
        "that much — the most one has: "
    ), one
    assert "so it would wait for ever: add a node with 1 CPU, 1 GPU" in one, one
    monkeypatch.setenv("RAY_ADDRESS", ray_session.get_runtime_context().gcs_address)  # as if attached: may grow
    grows = StreamWatch(bar, "catalog/musicnn", 2, ask, keys, always=True).line(150, 0, 0, 0, 2)
    assert grows == (
        "embed catalog/musicnn: starting, 0 of 2 embedding actors ready, 2 waiting for a node with 1 CPU, 1 GPU free — "
        "the embedding actors of catalog/musicnn each ask for 1 CPU, 1 GPU, which no node up of this Ray cluster "
        "(1 node) has: under run.resources.use_gpu: always they wait for the cluster's autoscaler to add such a node "
        "(`ray status` on the cluster lists the request under its demands, and a node being launched under pending); "
        "if the cluster does not autoscale, they would wait for ever: set run.resources.use_gpu to auto, or add a "
        "node with 1 CPU, 1 GPU (2 min)"
    ), grows
    auto = StreamWatch(bar, "catalog/musicnn", 2, ask, keys).line(150, 0, 0, 0, 2)  # use_gpu: auto saw a GPU node
    assert "so they would wait for ever" in auto and "autoscaler to add" not in auto, auto


def test_an_actor_whose_worker_starts_is_not_said_to_load_its_model(ray_session, tmp_path, monkeypatch, caplog) -> None:
    """An embedding actor given a worker process that has not begun building its model (Ray importing its code: here,
    a constructor held before it marks anything) is in worker start-up; it was said to be loading the model. The
    model's own loading (its mark) is what test_a_stream_says_while_its_model_loads sees."""
    from repeval.pipeline import summary
    from repeval.pipeline.stream_watch import EMBED_ACTOR_CLASS, StreamWatch, embed_actors

    release = tmp_path / "release"

    class Starting:
        def __init__(self, release: str) -> None:
            deadline = time.monotonic() + 60
            while not os.path.exists(release) and time.monotonic() < deadline:
                time.sleep(0.05)

        def ping(self) -> int:
            return 1

    Starting.__name__ = Starting.__qualname__ = EMBED_ACTOR_CLASS  # as Ray Data names a stream's embedding actors
    monkeypatch.setattr(summary.sys, "stderr", io.StringIO())  # no terminal
    caplog.set_level(logging.INFO, logger="repeval.pipeline.summary")
    clock = Clock()
    watch = StreamWatch(summary.Progress(8, "write notes/slow", clock=clock), "notes/slow", 1, {"CPU": 0.01}, {})
    watch.before = set(embed_actors())
    actor = ray_session.remote(num_cpus=0.01)(Starting).remote(str(release))
    try:
        deadline = time.monotonic() + 60
        while watch.actors() != (0, 1, 0, 0) and time.monotonic() < deadline:
            time.sleep(0.1)
        clock.now += 65
        watch.check()
    finally:
        release.touch()
        ray_session.get(actor.ping.remote())
        ray_session.kill(actor)
    assert caplog.messages == [
        "embed notes/slow: starting, 0 of 1 embedding actor ready, 1 in worker start-up (1 min)"
    ], caplog.messages


def test_an_actor_killed_mid_build_leaves_no_mark_that_says_loading(ray_session, tmp_path) -> None:
    """An embedding actor's worker that dies while its model builds (killed for memory, a crash) left its "loading"
    mark in the GCS: the actor Ray restarts (the same id, another worker process) was said to load its model while
    its new worker started, and the mark stayed in the cluster's GCS for good. The mark is its worker's, and the
    watch deletes the job's marks once the stream is over."""
    from repeval.pipeline import summary
    from repeval.pipeline.stream_watch import EMBED_ACTOR_CLASS, StreamWatch, embed_actors, loading_actors

    crash, restarted, release = tmp_path / "crash", tmp_path / "restarted", tmp_path / "release"

    def wait_for(path: os.PathLike[str]) -> None:
        deadline = time.monotonic() + 60
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)

    class CrashesMidBuild:
        def __init__(self) -> None:
            from repeval.pipeline.stream_watch import mark_loading

            if os.path.exists(crash):  # restarted: its worker starts (held here, before any mark)
                open(restarted, "w").close()
                wait_for(release)
                return
            mark_loading(True)  # its model builds…
            open(crash, "w").close()
            time.sleep(0.5)
            os._exit(1)  # …and its worker dies: no mark_loading(False)

        def ping(self) -> int:
            return 1

    CrashesMidBuild.__name__ = CrashesMidBuild.__qualname__ = EMBED_ACTOR_CLASS
    watch = StreamWatch(summary.Progress(8, "write notes/crash", clock=Clock()), "notes/crash", 1, {"CPU": 0.01}, {})
    watch.before = set(embed_actors())
    # a task sent while the actor restarts fails (ActorUnavailableError) unless it may be retried
    actor = ray_session.remote(num_cpus=0.01, max_restarts=1, max_task_retries=-1)(CrashesMidBuild).remote()
    try:
        wait_for(restarted)
        deadline = time.monotonic() + 60
        while watch.actors() != (0, 1, 0, 0) and time.monotonic() < deadline:
            time.sleep(0.1)
        counted = watch.actors()  # (ready, in worker start-up, loading, waiting)
        left = loading_actors()
    finally:
        release.touch()
        ray_session.get(actor.ping.remote())
        ray_session.kill(actor)
    assert counted == (0, 1, 0, 0), counted
    assert len(left) == 1, left  # the dead worker's mark, which no longer counts
    watch.stop()
    assert loading_actors() == set()


#: a driver whose cluster's GCS dies before its stream's end deletes its marks (:func:`forget_marks`) and, a stream
#: that failed, kills its stray embedding actors (:func:`_kill_stray_embed_actors`): it says each done
GCS_GONE = r"""
import os
import sys
import time

import ray

from repeval.pipeline import stream, stream_watch, summary

stream_watch.GCS_TIMEOUT_S = 1.0  # (5 s in a run)
# its own cluster, in a temp folder of its own
ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, _temp_dir=sys.argv[1])
node = ray._private.worker._global_node
(gcs,) = node.all_processes["gcs_server"]
gcs.process.kill()  # Ray died under the run
gcs.process.wait()
stream_watch.forget_marks()
print("forgotten", flush=True)
stream._kill_stray_embed_actors()
print("strays killed", flush=True)
summary.PROGRESS_EVERY_S, stream_watch.WATCH_TICK_S = 0.0, 0.05  # a line due at each look
watch = stream_watch.StreamWatch(summary.Progress(4, "write t", None), "t", 1, {"CPU": 1.0}, {}).start()
time.sleep(0.5)  # the watch asks the GCS for the pool's actors
watch.stop()
print("watch stopped" if not watch.thread.is_alive() else "watch left waiting", flush=True)
for infos in node.all_processes.values():  # what is left of the cluster: this test's own, not the session's
    for info in infos:
        info.process.kill()
os._exit(0)
"""


def gcs_gone_runs(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The ``GCS_GONE`` driver (~20 s, most of it its Ray's start), started as soon as the tests are collected
    (``ahead_fixture``) — once more, in a fresh temp folder, if its Ray did not start in time."""
    from repeval.testing.processes import again_if_ray_timed_out

    env = {k: v for k, v in environ.items() if not k.startswith("RAY_")}  # never the session's cluster
    env.update({"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)})

    def run() -> subprocess.CompletedProcess[str]:
        tmp = tempfile.mkdtemp(prefix="rv-gcs-", dir="/tmp")  # Ray's temp dir (short unix socket paths)
        try:
            args = [sys.executable, "-c", GCS_GONE, tmp]
            return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    return again_if_ray_timed_out(run)


gcs_gone = ahead_fixture("gcs_gone", gcs_gone_runs)


def test_a_stream_whose_cluster_died_ends_without_waiting_for_its_gcs(gcs_gone) -> None:
    """A stream's end deletes its actors' marks in the GCS (:func:`forget_marks`), and a failed stream's kills its
    stray actors, which it finds by a query of the GCS. With the GCS gone (Ray died under the run) each request
    waited for it for a minute, and then Ray ended the process (exit status 1) before the run could say what
    happened. Each gives up soon (the query of the actors is not made), and the driver goes on. So do the stream
    watch's queries of the pool's actors, which held its thread past the stream's end."""
    r = gcs_gone
    said = "forgotten\nstrays killed\nwatch stopped\n"
    assert r.returncode == 0 and r.stdout == said, (r.returncode, r.stdout, r.stderr[-2000:])


def test_the_jobs_embedding_actors_are_read_where_an_event_loop_runs(ray_session) -> None:
    """The stream's query of its actors runs an event loop of its own (the GCS client's request takes a timeout only
    so): where one runs already — a notebook's thread —, as anywhere else, and not refused by ``asyncio.run`` (the
    failed stream's stray actors were then never killed)."""
    from repeval.pipeline.stream_watch import embed_actors

    async def in_a_loop() -> dict:
        return embed_actors()

    assert asyncio.run(in_a_loop()) == embed_actors()
