"""Where a stream's embedding actors go on a cluster of several nodes, so that a decode task can always start.

Ray Data 2.60 creates an actor pool's actors with ``scheduling_strategy="SPREAD"`` unless ``map_batches`` is given
another (``ActorPoolMapOperator._apply_default_remote_args``: ``DataContext.scheduling_strategy``), and starts the
whole pool before the first decode task. :func:`~repeval.ray_fit.pool_misfit` checks that *a* placement keeps a
decode task's CPUs free on some node; Ray may pick another: on two 4-CPU nodes, two 2-CPU actors spread one to a
node leave 2 CPUs on each, and a decode task of 3 CPUs never started (the stream stood still). So:

- when no placement of the pool can take that room from every node (:func:`starvable` is false), Ray places it as
  it likes (spread, as before);
- else, when one node holds the whole pool and a decode task still fits (beside the pool or on another node), the
  actors are asked for on that node (:func:`pack_node`), as one placement group that Ray places again whole when the
  node dies, watched while the stream runs so that a pool that cannot be placed again stops it (:class:`PackedPool`);
- else no request Ray takes can guarantee a placement that leaves the room, and the stream is refused
  (:func:`spread_misfit`), naming the settings that fit.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from repeval.ray_fit import _amounts, _count
from repeval.words import counted

log = logging.getLogger("repeval.pipeline.embed")

_EPS = 1e-9


def starvable(
    actor: Mapping[str, float], n_actors: int, task_cpus: float, nodes: Sequence[Mapping[str, float]]
) -> bool:
    """Whether some placement of ``n_actors`` actors of ``actor`` leaves every node of ``nodes`` fewer than
    ``task_cpus`` CPUs free. A node of ``c`` CPUs drops below them with ``floor((c - task_cpus) / a) + 1`` actors of
    ``a`` CPUs (none when it never had them); the pool can starve every node when each can take that many and they
    add up to at most the pool (the rest go anywhere: more actors only take more room)."""
    a = float(actor.get("CPU", 0.0))
    need = 0
    for node in nodes:
        cpus = float(node.get("CPU", 0.0))
        if cpus + _EPS < task_cpus:
            continue  # never holds a decode task
        if a <= 0:
            return False  # actors without CPUs leave it the room
        take = math.floor((cpus - task_cpus) / a + _EPS) + 1
        if take > _count(node, actor):
            return False  # it cannot take enough of the actors to lose the room
        need += take
    return need <= n_actors


def pack_node(
    actor: Mapping[str, float], n_actors: int, task_cpus: float, nodes: Sequence[Mapping[str, float]]
) -> int | None:
    """The index in ``nodes`` of a node that holds all ``n_actors`` actors with a decode task's CPUs still free on
    it or on another node — the smallest such node, keeping the large ones for the decode tasks — or ``None``."""
    fit = [
        (float(node.get("CPU", 0.0)), j) for j, node in enumerate(nodes) if _holds(actor, n_actors, task_cpus, nodes, j)
    ]
    return min(fit)[1] if fit else None


def spread_misfit(
    model: str,
    actor: Mapping[str, float],
    n_actors: int,
    task_cpus: float,
    nodes: Sequence[Mapping[str, float]],
    fits: Mapping[str, float],
) -> str | None:
    """Why the stream cannot be guaranteed a decode task beside its actors (module doc) — else ``None``. ``fits``: the
    most each ``run.resources`` setting may be, the stream planned again from it, to fit (0: no value does)."""
    actor = {k: float(v) for k, v in actor.items() if float(v) > 0}
    if not starvable(actor, n_actors, task_cpus, nodes) or pack_node(actor, n_actors, task_cpus, nodes) is not None:
        return None
    fixes = [f"set run.resources.{k} to at most {v:g}" for k, v in fits.items() if v > 0]
    whole = {k: v * n_actors for k, v in actor.items()}
    fixes.append(
        f"add a node that holds the whole pool ({_amounts(whole)}; on an autoscaling cluster, raise its node type's "
        "min_workers so one is up when the run starts)"
    )
    return (
        f"the {n_actors} embedding actors of {model} ({_amounts(actor)} each) and its decode tasks "
        f"({_amounts({'CPU': task_cpus})} each, run.resources.decode_num_cpus) fit this Ray cluster "
        f"({counted(len(nodes), 'node')}) only if the actors leave a node that room, but no node holds them all and "
        "Ray may place them so that none keeps it — the stream would then wait for ever (Ray Data starts the actors "
        f"first): {', or '.join(fixes)}"
    )


def safe_room(actor: Mapping[str, float], n_actors: int, nodes: Sequence[Mapping[str, float]]) -> float:
    """The most CPUs (to 0.001, rounded down) a decode task may ask for that some node keeps however Ray places the
    ``n_actors`` actors of ``actor`` (:func:`starvable` is false for it); 0 when none."""
    lo, hi = 0, int(max((float(n.get("CPU", 0.0)) for n in nodes), default=0.0) * 1000 + _EPS)
    if hi == 0 or starvable(actor, n_actors, 0.001, nodes):
        return 0.0
    while lo < hi:  # the largest milli-CPU count that cannot be starved (starvable grows with the task)
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if not starvable(actor, n_actors, mid / 1000, nodes) else (lo, mid - 1)
    return lo / 1000


#: how long a packed pool whose node died may wait for Ray to place it whole on another node (an autoscaler's
#: replacement takes minutes to start) before its stream stops, unless ``run.resources.pool_wait_s`` says
PACK_WAIT_S = 300.0
#: how long a packed pool placed again where no node keeps a decode task's CPUs may go without a batch reaching the
#: driver before its stream stops (the blocks decoded before the node died are embedded and written first), unless
#: ``run.resources.pool_stall_s`` says
PACK_STALL_S = 60.0
#: how often a packed pool's placement is looked at while its stream runs (one query of the GCS)
PACK_POLL_S = 1.0


class PoolNodeLost(RuntimeError):
    """A packed pool's node died and the pool could not be placed again so that a decode task still starts."""


class PackedPool:
    """A packed embedding actor pool's Ray placement group, and a watch on it while its stream runs.

    The pool is one ``STRICT_PACK`` group of a bundle per actor, hinted at the chosen node
    (``_soft_target_node_id``: private in Ray 2.60, pinned, what Ray Serve places its replicas with — "if the target
    node … died, bundles can be placed elsewhere"). When that node dies, Ray places the whole group again on a node
    that holds it and restarts the actors there (Ray Data's pool actors restart without end), so the pool stays on
    one node — where actors asked for with ``NodeAffinitySchedulingStrategy(soft=True)`` came back wherever Ray's
    default scheduling put them, which on nodes of 4, 6 and 6 CPUs with decode tasks of 5 left no node the room and
    the stream stood still. The watch (:meth:`watch`) stops the stream with :class:`PoolNodeLost` when the group,
    once lost, is not placed again within ``wait_s`` (:data:`PACK_WAIT_S`), or is placed where no node keeps a decode
    task's CPUs and no batch came for ``stall_s`` (:data:`PACK_STALL_S`). :meth:`close` removes the group (and any
    actor still in it)."""

    def __init__(
        self,
        model: str,
        actor: Mapping[str, float],
        n_actors: int,
        task_cpus: float,
        node: str,
        wait_s: float | None = None,
        stall_s: float | None = None,
    ) -> None:
        from ray.util.placement_group import placement_group

        from repeval.ray_fit import alive_nodes

        self.model, self.n_actors, self.task_cpus, self.node = model, n_actors, task_cpus, node
        self.wait_s = PACK_WAIT_S if wait_s is None else float(wait_s)  # run.resources.pool_wait_s
        self.stall_s = PACK_STALL_S if stall_s is None else float(stall_s)  # run.resources.pool_stall_s
        self.actor = {k: float(v) for k, v in actor.items() if float(v) > 0}
        self.addresses = {str(n["NodeID"]): str(n.get("NodeManagerAddress", "")) for n in alive_nodes()}
        self.group = placement_group([dict(self.actor)] * n_actors, strategy="STRICT_PACK", _soft_target_node_id=node)
        self.error: PoolNodeLost | None = None
        self.last_batch = time.monotonic()  # the stream's: :meth:`beat`
        self._thread: threading.Thread | None = None
        self._done = threading.Event()

    def strategy(self) -> Any:
        """The ``scheduling_strategy`` of the pool's actors: any bundle of the group."""
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        return PlacementGroupSchedulingStrategy(self.group)

    def beat(self) -> None:
        """A batch of the stream reached the driver."""
        self.last_batch = time.monotonic()

    def watch(self, stop: Callable[[], bool]) -> None:
        """Look at the group every :data:`PACK_POLL_S` in a thread of its own until :meth:`close`; on a lost pool set
        :attr:`error` and call ``stop`` (the stream's: ``True`` once stopped) until it returns ``True``."""

        def run() -> None:
            lost_at: float | None = None
            failing: str | None = None  # what the last round could not do (look, or stop): said once, not every second
            while not self._done.wait(PACK_POLL_S):
                looked = self.error is not None  # once lost, the stream is stopped: what may fail is the stop
                try:
                    if not looked:
                        lost_at = self._look(lost_at)
                    looked = True
                    if self.error is not None and stop():
                        return
                    failing = None
                except Exception as exc:  # a GCS that does not answer for a moment: look again
                    # said (once) at warning level: a watch that cannot look cannot stop a stream its lost pool holds
                    what = "stop the stream of" if looked else "look at the placement group of"
                    log.log(
                        logging.DEBUG if failing == what else logging.WARNING,
                        "could not %s the embedding actors of %s (%s: %s): %s again every %s",
                        what,
                        self.model,
                        type(exc).__name__,
                        exc,
                        "trying" if looked else "looking",
                        _seconds(PACK_POLL_S),
                    )
                    failing = what

        self._thread = threading.Thread(target=run, name="repeval-packed-pool", daemon=True)
        self._thread.start()

    def _look(self, lost_at: float | None) -> float | None:
        """One look (:meth:`watch`): when the group was first seen away from a live node (``None``: it is not)."""
        import ray

        from repeval.ray_fit import alive_nodes

        table = ray.util.placement_group_table(self.group)
        where = {str(n) for n in table.get("bundles_to_node_id", {}).values()}
        alive = {str(n["NodeID"]): n for n in alive_nodes()}
        self.addresses.update({k: str(n.get("NodeManagerAddress", "")) for k, n in alive.items()})
        if table.get("state") == "CREATED" and len(where) == 1 and where <= alive.keys():
            (at,) = where
            if at == self.node:  # never placed again: a decode node lost beside it is waited for, as on any cluster
                return None
            nodes = [dict(n.get("Resources") or {}) for n in alive.values()]
            j = list(alive).index(at)
            quiet = time.monotonic() - self.last_batch
            if quiet >= self.stall_s and not _holds(self.actor, self.n_actors, self.task_cpus, nodes, j):
                self.error = PoolNodeLost(
                    self._message(
                        f"Ray placed {{pool}} again on node {self._name(at)}, which leaves no node a decode task's {{task}} "
                        f"(run.resources.decode_num_cpus): no batch for {_seconds(quiet)} (run.resources.pool_stall_s)"
                    )
                )
            return None
        if self.node in alive and lost_at is None:
            return None  # not placed yet on a live node (the first placement waits like any request)
        now = time.monotonic()
        if lost_at is None:
            log.warning(
                "node %s, where the embedding actors of %s ran, is gone: waiting up to %s "
                "(run.resources.pool_wait_s) for Ray to place them again on one node",
                self._name(self.node),
                self.model,
                _seconds(self.wait_s),
            )
            return now
        if now - lost_at >= self.wait_s:
            self.error = PoolNodeLost(
                self._message(
                    f"no live node took {{pool}} whole within {_seconds(self.wait_s)} (run.resources.pool_wait_s: "
                    "raise it if your nodes take longer to come back)"
                )
            )
        return lost_at

    def _name(self, node: str) -> str:
        address = self.addresses.get(node)
        return f"{address} ({node[:12]})" if address else node[:12]

    def _message(self, what: str) -> str:
        whole = _amounts({k: v * self.n_actors for k, v in self.actor.items()})
        return (
            f"node {self._name(self.node)}, where the {counted(self.n_actors, 'embedding actor')} of {self.model} ran, "
            f"died, and {what.format(pool=f'the pool ({whole})', task=_amounts({'CPU': self.task_cpus}))}: stopped, "
            "everything written so far is kept — run the command again to resume (it places the pool on the nodes "
            "up then)"
        )

    def close(self, remove: bool = True) -> None:
        """Stop the watch and remove the group (its actors with it; not ``remove``: a cluster whose GCS is gone, which
        the request would wait for until Ray ended the process). Best effort: the stream's own error comes first."""
        from ray.util.placement_group import remove_placement_group

        self._done.set()
        if not remove:  # (its watch, a daemon thread, may be waiting for the GCS too)
            return
        if self._thread is not None:
            self._thread.join(timeout=10 * PACK_POLL_S)
        try:
            remove_placement_group(self.group)
        except Exception as exc:
            log.debug("could not remove the embedding pool's placement group: %s", exc)


def _seconds(s: float) -> str:
    """``s`` seconds in words: ``300 seconds``, ``1 second``, ``0.5 seconds`` (a setting's fraction kept, to two
    digits: 1.04 is ``1 second``)."""
    if s == int(s) or s >= 10:
        return counted(int(s), "second")
    said = f"{s:.2g}"
    return f"{said} second{'' if said == '1' else 's'}"


def _holds(
    actor: Mapping[str, float], n_actors: int, task_cpus: float, nodes: Sequence[Mapping[str, float]], j: int
) -> bool:
    """Whether node ``j`` of ``nodes`` holds the ``n_actors`` actors with a decode task's CPUs still free on it or on
    another node (:func:`pack_node`)."""
    if _count(nodes[j], actor) < n_actors:
        return False
    cpus = float(nodes[j].get("CPU", 0.0))
    if cpus - n_actors * float(actor.get("CPU", 0.0)) + _EPS >= task_cpus:
        return True
    return any(float(m.get("CPU", 0.0)) + _EPS >= task_cpus for i, m in enumerate(nodes) if i != j)
