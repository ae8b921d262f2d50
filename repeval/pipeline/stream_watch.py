"""What a stream waits for when nothing comes: its embedding actors loading a large model for minutes, a cluster
without the room for them, or a stream where no rows arrive for minutes. The stream's own progress
(:class:`~repeval.pipeline.summary.Progress`) counts rows as they come, so it says nothing while none do: a thread
looks every :data:`WATCH_TICK_S` seconds and, once a minute of nothing has passed (at most one line a minute, progress
lines included), says what the stream waits for — on a terminal and off it::

    embed catalog/musicnn: starting, 1 of 2 embedding actors ready, 1 loading the model (2 min)
    write catalog/musicnn: no rows for 3 min (1,234 of 3,600 rows written), 2 of 2 embedding actors ready

— and, when an actor waits for resources that no node of the cluster has, says so with the fix
(:func:`~repeval.ray_fit.request_misfit`), or, under ``run.resources.use_gpu: always`` on a cluster that may grow
(``RAY_ADDRESS``), that it waits for the autoscaler. An actor whose Ray worker has started but that has not begun
building its model (Ray importing its code) is said to be in worker start-up, not loading the model: the actor marks
in the GCS's key-value store when its model's build begins (:func:`mark_loading`)."""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, cast

from repeval.pipeline.summary import Progress, elapsed
from repeval.words import counted

#: the GCS key-value namespace and key prefix of the marks of embedding actors building their model (:func:`mark_loading`)
LOADING_NAMESPACE, LOADING_PREFIX = "repeval", "embed-loading:"

log = logging.getLogger("repeval.pipeline.summary")  # where the stream's progress lines go

#: how often the watch looks at a stream (seconds): a line is due after a minute of nothing
WATCH_TICK_S = 5.0
#: the class name Ray gives the embedding actors of a stream's pool (Ray Data's ``MapWorker`` of
#: :class:`~repeval.pipeline.embedder.Embed`)
EMBED_ACTOR_CLASS = "MapWorker(MapBatches(Embed))"


class StreamWatch:
    """Watches a stream's progress ``bar`` and its embedding actors from a thread (:meth:`start`, :meth:`stop`).
    ``actor``: what each of its ``n_actors`` embedding actors asks for (none: the model runs inside the decode tasks),
    ``settings`` the configuration key of each resource, which a message of resources no node has names; ``always``:
    the actors take their GPU under ``run.resources.use_gpu: always``, which on a cluster that may grow waits for its
    autoscaler to add a GPU node."""

    def __init__(
        self,
        bar: Progress,
        label: str,
        n_actors: int,
        actor: Mapping[str, float],
        settings: Mapping[str, str],
        always: bool = False,
    ) -> None:
        self.bar, self.label, self.n_actors, self.always = bar, label, n_actors, always
        self.actor, self.settings = {k: float(v) for k, v in actor.items() if float(v) > 0}, settings
        self.stopped = threading.Event()
        #: embedding actors alive before the stream's (an earlier stream's, being released): not counted
        self.before: set[str] = set()
        self.thread = threading.Thread(target=self._run, name="repeval-stream-watch", daemon=True)
        #: the cluster's GCS seen gone while the stream ran (:class:`GcsLiveness`), and how: the stream was stopped
        self.gone: ClusterLost | None = None
        self.gone_how = ""
        self.halt: Callable[[BaseException], bool] | None = None
        self.liveness: GcsLiveness | None = None

    def start(self, halt: Callable[[BaseException], bool] | None = None) -> StreamWatch:
        """Watch from a thread: lines while the bar says them (``wait_lines``); and, given ``halt`` (the stream's
        stop: ``True`` once stopped), whether the cluster's GCS is still there (:class:`GcsLiveness`), stopping the
        stream at once with :class:`ClusterLost` once it is gone — Ray would end the process a minute later, the
        rows not yet written lost and nothing said."""
        self.halt = halt
        self.liveness = GcsLiveness.of_this_ray() if halt is not None else None
        if self.bar.wait_lines or self.liveness is not None:
            if self.n_actors and self.bar.wait_lines:
                try:
                    self.before = set(embed_actors())
                except Exception as exc:  # nothing left out then
                    log.debug("could not list the embedding actors: %s", exc)
            self.thread.start()
        return self

    def stop(self) -> None:
        """Stop watching; and delete the marks of the stream's actors (:func:`forget_marks`): called again after a
        failed stream's teardown, once its actors are killed. Nothing is asked of a GCS seen gone. The thread ends
        within a request of the GCS (each given up after :data:`GCS_TIMEOUT_S`)."""
        self.stopped.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread() and self.gone is None:
            self.thread.join(timeout=10)  # (a GCS gone: not waited for, held in the stream's shutdown, a daemon)
        if self.n_actors and self.gone is None:
            forget_marks()

    def _run(self) -> None:
        while not self.stopped.wait(WATCH_TICK_S):
            if self.gone is not None:  # the stream not stopped yet (its executor not started): again
                if self._halt(self.gone):
                    return
                continue
            how = self.liveness.gone() if self.liveness is not None else None
            if how is not None:
                self.gone_how = how
                self.gone = cluster_lost(how, self.bar, self.label)
                # said at once (the stream's teardown may take seconds), and said again with the rows written
                log.warning("the Ray cluster's GCS is gone (%s): stopping the stream of %s", how, self.label)
                if self._halt(self.gone):
                    return
                continue
            if not self.bar.wait_lines or (self.liveness is not None and self.liveness.refused):
                continue  # (its GCS not asked once its address refused a connection: each look would wait 15 s)
            try:
                self.check()
            except GcsTimeout as exc:  # the GCS does not answer: no line
                log.debug("the GCS did not answer the stream's watch: %s", exc)
            except Exception as exc:  # the stream is what matters: a look that fails says nothing
                log.debug("could not look at the stream's state: %s", exc)

    def lost(self) -> ClusterLost:
        """What the stream raises once stopped for its GCS gone (:attr:`gone`), counting the rows written by then."""
        assert self.gone is not None
        return cluster_lost(self.gone_how, self.bar, self.label)

    def _halt(self, gone: ClusterLost) -> bool:
        """Stop the stream (its loop then ends, and the stream raises ``gone``): ``True`` once stopped."""
        try:
            return self.halt is None or bool(self.halt(gone))
        except Exception as exc:  # tried again at the next tick
            log.debug("could not stop the stream of a cluster whose GCS is gone: %s", exc)
            return False

    def check(self) -> None:
        """Say what the stream waits for, when a line is due (:meth:`Progress.quiet_for`)."""
        now = self.bar.clock()
        quiet = self.bar.quiet_for(now)
        if quiet is None:
            return
        line = self.line(quiet, *self.actors())  # queries of the GCS: rows (and their progress line) may come meanwhile
        if not self.stopped.is_set() and self.bar.quiet_for(self.bar.clock()) is not None:
            self.bar.waiting(now, line)

    def actors(self) -> tuple[int, int, int, int]:
        """The pool's actors: (ready, in worker start-up, loading their model, waiting), as the GCS has them — Ray
        Data's own pool is not in reach while it starts — leaving out those alive before the stream (:meth:`start`:
        an earlier stream's, being released). An actor given a worker process (a ``Pid``) is loading its model once
        that process marked so (:func:`mark_loading`), else in worker start-up (Ray importing its code); one without a worker
        waits for a node with room — or for its worker process to start, which Ray does not tell apart."""
        if not self.n_actors:
            return 0, 0, 0, 0
        mine = {a: info for a, info in embed_actors().items() if a not in self.before}
        ready = sum(1 for info in mine.values() if info.get("State") == "ALIVE")
        started = {a: int(info.get("Pid") or 0) for a, info in mine.items() if info.get("State") != "ALIVE"}
        started = {a: pid for a, pid in started.items() if pid > 0}
        loading = len(set(started.items()) & loading_actors()) if started else 0
        return ready, len(started) - loading, loading, len(mine) - ready - len(started)

    def line(self, quiet: float, ready: int, starting: int, loading: int, waiting: int) -> str:
        """What the stream waits for, ``quiet`` seconds into nothing, its actors as :meth:`actors` counts them."""
        took = elapsed(math.floor(quiet))
        bar = self.bar
        if not self.n_actors:  # the model runs in the decode tasks: built in each before its first tracks
            what = "the decode tasks, which " + (
                "load the model before their first tracks" if bar.rows_at is None else "embed the tracks they decode"
            )
            actors = ""
        else:
            actors = f"{ready} of {counted(self.n_actors, 'embedding actor')} ready"
            actors += f", {starting} in worker start-up" if starting else ""
            actors += f", {loading} loading the model" if loading else ""
            actors += f", {waiting} waiting for {self.room()}" if waiting else ""
            what = ""
        if bar.rows_at is None:
            head = f"embed {self.label}: starting, "
            return head + (f"{actors} ({took})" if actors else f"no rows yet ({took}): waiting for {what}")
        said = f"write {self.label}: no rows for {took} ({bar.done:,} of {counted(bar.total, bar.unit)} written)"
        return f"{said}, {actors}" if actors else f"{said}: waiting for {what}"

    def room(self) -> str:
        """What a waiting actor waits for: a node with its resources free — and, when no node of the cluster has them
        (:func:`~repeval.ray_fit.request_misfit`), why and the fix; under ``use_gpu: always`` on a cluster that may
        grow, the autoscaler (:meth:`autoscaler`)."""
        from repeval.ray_fit import _amounts, asks, may_grow, request_misfit

        free = f"a node with {_amounts(self.actor)} free"
        one = self.n_actors == 1
        what = f"the embedding {'actor' if one else 'actors'} of {self.label}"
        nodes, grow = node_resources(), may_grow()
        misfit = request_misfit(what, self.actor, self.settings, nodes, grow, one)
        if misfit and grow and self.always and self.actor.get("GPU", 0) > 0:
            return f"{free} — {what} {asks(one)} {_amounts(self.actor)}, {self.autoscaler(len(nodes))}"
        if misfit:
            return f"{free} — {misfit}"
        return f"{free} (taken by other work on the cluster, a node starting, or its worker process starting)"

    def autoscaler(self, n_nodes: int) -> str:
        """Why an actor that takes its GPU under ``use_gpu: always`` waits on a cluster that may grow, where no node
        up holds it: not for ever — its autoscaler may be adding one."""
        from repeval.ray_fit import _amounts
        from repeval.ray_fit import they as pronoun

        one = self.n_actors == 1
        they, wait = pronoun(one), "waits" if one else "wait"
        return (
            f"which no node up of this Ray cluster ({counted(n_nodes, 'node')}) has: under run.resources.use_gpu: "
            f"always {they} {wait} for the cluster's autoscaler to add such a node (`ray status` on the cluster lists "
            f"the request under its demands, and a node being launched under pending); if the cluster does not "
            f"autoscale, {they} would wait for ever: set run.resources.use_gpu to auto, or add a node with "
            f"{_amounts(self.actor)}"
        )


class GcsTimeout(RuntimeError):
    """The cluster's GCS did not answer a request within :data:`GCS_TIMEOUT_S`."""


def _gcs_client() -> Any:
    """This driver's client of the GCS, whose requests take a timeout; None for a Ray Client's driver (``ray://``:
    its server asks the GCS)."""
    from ray.experimental import internal_kv

    return getattr(internal_kv, "global_gcs_client", None)


def _timed(request: Any) -> Any:
    """``request()``'s answer; :class:`GcsTimeout` when the GCS did not give it within :data:`GCS_TIMEOUT_S` (Ray's
    ``RpcError``: "Timed out while waiting for GCS to become available")."""
    try:
        return request()
    except Exception as exc:
        if type(exc).__name__ == "RpcError":
            raise GcsTimeout(str(exc)) from exc
        raise


def _awaited(coroutine: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """What ``coroutine()`` returns, run to its end in an event loop of its own — in a thread of its own when this
    one runs a loop already (a notebook's), where ``asyncio.run`` refuses to start another."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # none here: the usual case
        return asyncio.run(coroutine())
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="repeval-gcs-query") as pool:
        return pool.submit(lambda: asyncio.run(coroutine())).result()


def embed_actors() -> dict[str, dict[str, Any]]:
    """This job's embedding actors not dead, by id, as the GCS has them (``State``: ``ALIVE`` once its model is
    built; else ``Pid`` 0 until a node has room for it). One query of the GCS, for this job's actors only: the whole
    table of a shared cluster holds every job's actors, dead ones included (3,000 of another job's: 65 ms of the
    driver's CPU a query, against 0.3 ms) — given up after :data:`GCS_TIMEOUT_S` (:class:`GcsTimeout`): a GCS gone
    under the run held it until Ray ended the process. Private in Ray 2.60 (pinned), as
    :func:`~repeval.pipeline.stream._kill_stray_embed_actors` reads it."""
    import ray
    from ray.core.generated import gcs_pb2

    job = ray.get_runtime_context().get_job_id()
    gcs = _gcs_client()
    if gcs is None:  # a Ray Client's driver
        found = ray._private.state.actors(job_id=ray.JobID.from_hex(job))
    else:

        async def query() -> Any:
            return await gcs.async_get_all_actor_info(job_id=ray.JobID.from_hex(job), timeout=GCS_TIMEOUT_S)

        state = cast(Any, gcs_pb2).ActorTableData.ActorState.Name
        found = {
            actor_id.hex(): {
                "ActorClassName": data.class_name,
                "JobID": data.job_id.hex(),
                "State": state(data.state),
                "Pid": data.pid,
            }
            for actor_id, data in _timed(lambda: _awaited(query)).items()
        }
    return {
        actor_id: info
        for actor_id, info in found.items()
        if info.get("ActorClassName") == EMBED_ACTOR_CLASS and info.get("JobID") == job and info.get("State") != "DEAD"
    }


def node_resources() -> list[dict[str, float]]:
    """Each live node's resources (:func:`~repeval.ray_fit.alive_node_resources`), the request given up after
    :data:`GCS_TIMEOUT_S` (:class:`GcsTimeout`)."""
    from repeval.ray_fit import alive_node_resources

    gcs = _gcs_client()
    if gcs is None:
        return alive_node_resources()
    from ray.core.generated import gcs_pb2

    alive = cast(Any, gcs_pb2).GcsNodeInfo.GcsNodeState.Value("ALIVE")
    nodes = _timed(lambda: gcs.get_all_node_info(timeout=GCS_TIMEOUT_S)).values()
    return [{k: float(v) for k, v in n.resources_total.items()} for n in nodes if n.state == alive]


def mark_loading(loading: bool) -> None:
    """Mark in the GCS's key-value store that this embedding actor builds its model (``loading``), or no longer does:
    what tells its model's loading from its Ray worker's start-up (:meth:`StreamWatch.actors`). The key names the job,
    the actor and its worker process: a worker killed mid-build leaves its mark, which neither the actor Ray restarts
    (same id, another process) nor any later job's actor matches, and which :func:`forget_marks` deletes once the
    stream is over. Best effort: an actor whose mark fails is said to be in worker start-up until it is ready."""
    try:
        import ray
        from ray.experimental import internal_kv

        if not ray.is_initialized():  # built in this process (a test, a benchmark): get_runtime_context() starts Ray
            return
        context = ray.get_runtime_context()
        actor = context.get_actor_id()
        if not actor or not internal_kv._internal_kv_initialized():
            return
        key = f"{LOADING_PREFIX}{context.get_job_id()}:{actor}:{os.getpid()}"
        if loading:
            internal_kv._internal_kv_put(key, b"1", namespace=LOADING_NAMESPACE)
        else:
            internal_kv._internal_kv_del(key, namespace=LOADING_NAMESPACE)
    except Exception as exc:  # the actor's model matters, not its mark
        log.debug("could not mark the embedding actor's model loading: %s", exc)


def _job_prefix() -> str:
    import ray

    return f"{LOADING_PREFIX}{ray.get_runtime_context().get_job_id()}:"


def loading_actors() -> set[tuple[str, int]]:
    """This job's embedding actors that marked that they build their model (:func:`mark_loading`), as (actor id,
    worker process id): one query of the GCS, given up after :data:`GCS_TIMEOUT_S` (:class:`GcsTimeout`)."""
    from ray.experimental import internal_kv

    prefix = _job_prefix()
    gcs = _gcs_client()
    if gcs is None:  # a Ray Client's driver
        keys = internal_kv._internal_kv_list(prefix, namespace=LOADING_NAMESPACE)
    else:
        ask = prefix.encode(), LOADING_NAMESPACE.encode()
        keys = _timed(lambda: gcs.internal_kv_keys(*ask, timeout=GCS_TIMEOUT_S))
    marks = (k.decode()[len(prefix) :].rpartition(":") for k in keys)
    return {(actor, int(pid)) for actor, _, pid in marks if pid.isdigit()}


#: how long a request of the GCS at a stream's end waits (seconds): answered in milliseconds by a live GCS; a cluster
#: whose GCS is gone (Ray died under the run) would hold it for a minute, and then Ray ends the process (exit status 1)
#: before the run says what happened
GCS_TIMEOUT_S = 5.0


def forget_marks() -> None:
    """Delete this job's marks (:func:`mark_loading`) once its stream is over: those of actors killed mid-build (Ray
    Data releasing a pool whose model was still loading, a failed stream's teardown) would stay in the GCS of a
    cluster for as long as it lives. One request of the GCS, given up after :data:`GCS_TIMEOUT_S`. Best effort."""
    try:
        import ray
        from ray.experimental import internal_kv

        if not ray.is_initialized():
            return
        gcs: Any = getattr(internal_kv, "global_gcs_client", None)
        if gcs is not None:
            gcs.internal_kv_del(_job_prefix().encode(), True, LOADING_NAMESPACE.encode(), timeout=GCS_TIMEOUT_S)
        elif internal_kv._internal_kv_initialized():  # a Ray Client's driver (ray://): its server asks the GCS
            internal_kv._internal_kv_del(_job_prefix(), del_by_prefix=True, namespace=LOADING_NAMESPACE)
    except Exception as exc:  # the stream's rows matter, not its marks
        log.debug("could not delete the marks of the embedding actors' model loading: %s", exc)


def gcs_answers() -> bool:
    """Whether the cluster's GCS answers a request within :data:`GCS_TIMEOUT_S`: before a query of it that takes no
    timeout (:func:`embed_actors`, at a failed stream's end). A Ray Client's driver (``ray://``, whose server asks
    the GCS) is taken to have one that does."""
    from ray.experimental import internal_kv

    gcs: Any = getattr(internal_kv, "global_gcs_client", None)
    if gcs is None:
        return True
    try:
        gcs.internal_kv_exists(LOADING_PREFIX.encode(), LOADING_NAMESPACE.encode(), timeout=GCS_TIMEOUT_S)
    except Exception as exc:  # ray.exceptions.RpcError: "Timed out while waiting for GCS to become available."
        log.debug("the GCS does not answer: %s", exc)
        return False
    return True


class ClusterLost(RuntimeError):
    """The cluster's GCS went away while a stream ran (:class:`GcsLiveness`): Ray died under the run. The stream was
    stopped, and what it had written is kept."""


#: whether Ray may bring back a GCS that went away (GCS fault tolerance: its tables kept in Redis — the head's
#: ``RAY_REDIS_ADDRESS``, which a ``ray job submit`` driver inherits —, or, as KubeRay sets on such a cluster's pods,
#: ``RAY_gcs_rpc_server_reconnect_timeout_s`` raised above Ray's 60 s; or in RocksDB on the head's disk, Ray 2.60's
#: ``RAY_gcs_storage=rocksdb``): then a GCS that refuses connections may be restarting, and Ray's own wait decides
GCS_RESTARTS_ENV = ("RAY_REDIS_ADDRESS", "RAY_gcs_rpc_server_reconnect_timeout_s", "RAY_gcs_storage")
#: Ray's default ``gcs_rpc_server_reconnect_timeout_s``: how long a Ray process waits for a GCS gone before it ends
RAY_GCS_RECONNECT_S = 60.0


def gcs_may_restart(environ: Mapping[str, str]) -> bool:
    """Whether the cluster's GCS may come back after it went away (:data:`GCS_RESTARTS_ENV`)."""
    redis, reconnect, storage = (environ.get(k, "") for k in GCS_RESTARTS_ENV)
    try:
        raised = float(reconnect) > RAY_GCS_RECONNECT_S if reconnect else False
    except ValueError:
        raised = False
    return bool(redis) or raised or storage.strip().lower() not in ("", "memory")  # rocksdb: tables on the head's disk


def refuses(address: str) -> bool:
    """Whether nothing listens at ``address`` (``host:port``) — the connection refused at once, which no GCS that is
    merely slow or busy does (its port still takes connections); a timeout or another error is not a refusal."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True
    except (OSError, ValueError):
        return False


class GcsLiveness:
    """Whether the GCS of the running Ray is still there, looked at every tick of a stream's watch, cheaply (no
    request of the GCS). It is gone once

    - the GCS process of the driver's own Ray (``ray.init`` started it: ``process``) has ended — nothing restarts it;
    - a cluster's GCS at ``address`` refuses connections at two looks in a row, and then does not answer a request
      (``answers``): no process listens there. Without
      GCS fault tolerance Ray cannot carry on with a GCS that came back (it knows neither the nodes nor this job), so
      the stream is stopped at once — Ray would end the process a minute later
      (``gcs_rpc_server_reconnect_timeout_s``), losing the rows not yet written and saying only "Failed to connect to
      GCS within 60 seconds". Not with fault tolerance (:func:`gcs_may_restart`): Ray's own wait then lets the driver
      carry on once the GCS is back.

    A GCS that is slow to answer, or a head node out of reach (a connection timing out), is never taken to be gone:
    Ray's own timeouts decide, as they would for a healthy cluster under load. Nor is one whose address refuses new
    connections while it still ``answers`` a request (:func:`gcs_answers`, asked only then) through the driver's
    connection to it: a Kubernetes service whose head pod is marked not ready (its dashboard slow to answer the
    readiness probe), a NAT's port, refuse new connections to a GCS that runs on."""

    def __init__(
        self,
        process: Any = None,
        address: str = "",
        may_restart: bool = False,
        answers: Callable[[], bool] | None = None,
    ) -> None:
        self.process, self.address, self.may_restart = process, address, may_restart
        self.answers = gcs_answers if answers is None else answers
        self.refused = 0

    @classmethod
    def of_this_ray(cls) -> GcsLiveness | None:
        """The liveness of the running Ray's GCS; None when there is none to look at (a Ray Client's driver)."""
        try:
            import ray

            node = getattr(ray._private.worker, "_global_node", None)
            if node is not None and node.head:  # this driver's own Ray (address=local)
                (info, *_) = node.all_processes.get(ray._private.ray_constants.PROCESS_TYPE_GCS_SERVER) or [None]
                if info is not None and info.process is not None:
                    return cls(process=info.process)
            gcs = _gcs_client()
            if gcs is None:
                return None
            return cls(address=str(gcs.address), may_restart=gcs_may_restart(os.environ))
        except Exception as exc:  # the stream runs all the same, as before the look existed
            log.debug("cannot look at the GCS's liveness: %s", exc)
            return None

    def gone(self) -> str | None:
        """How the GCS is gone (said in :class:`ClusterLost`), or None while it may be there."""
        if self.process is not None:
            status = self.process.poll()
            return None if status is None else f"its process (pid {self.process.pid}) ended with exit status {status}"
        if self.may_restart or not self.address:
            return None
        self.refused = self.refused + 1 if refuses(self.address) else 0
        if self.refused < 2 or self.answers():
            return None
        return f"nothing listens at {self.address} any longer, and it does not answer"


def cluster_lost(how: str, bar: Progress, label: str) -> ClusterLost:
    """:class:`ClusterLost` of the GCS gone ``how``, naming the stream ``label`` and what ``bar`` counts as written."""
    written = f"{bar.done:,} of {counted(bar.total, bar.unit)} written" if bar.total else "none to write"
    return ClusterLost(
        f"the Ray cluster's GCS is gone ({how}): Ray died under the run, so the stream of {label} was stopped "
        f"({written}) — everything finished so far is kept in the store; start Ray again (a cluster: its head "
        "node) and run the command again"
    )
