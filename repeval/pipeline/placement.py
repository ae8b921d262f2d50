"""Where a stream's embedding actors go on a cluster of several nodes, so that a decode task can always start.

Ray Data 2.60 creates an actor pool's actors with ``scheduling_strategy="SPREAD"`` unless ``map_batches`` is given
another (``ActorPoolMapOperator._apply_default_remote_args``: ``DataContext.scheduling_strategy``), and starts the
whole pool before the first decode task. :func:`~repeval.ray_cluster.pool_misfit` checks that *a* placement keeps a
decode task's CPUs free on some node; Ray may pick another: on two 4-CPU nodes, two 2-CPU actors spread one to a
node leave 2 CPUs on each, and a decode task of 3 CPUs never started (the stream stood still). So:

- when no placement of the pool can take that room from every node (:func:`starvable` is false), Ray places it as
  it likes (spread, as before);
- else, when one node holds the whole pool and a decode task still fits (beside the pool or on another node), the
  actors are asked for on that node (:func:`pack_node`: ``NodeAffinitySchedulingStrategy(soft=True)``, which waits
  for that node while it lives and goes elsewhere once it is gone, so a crashed node's actors still restart — where
  Ray's default scheduling puts them, which may leave no node the room again: docs/cluster.md);
- else no request Ray takes can guarantee a placement that leaves the room, and the stream is refused
  (:func:`spread_misfit`), naming the settings that fit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from repeval.ray_cluster import _amounts, _count
from repeval.words import counted

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
    a = float(actor.get("CPU", 0.0))
    fit = []
    for j, node in enumerate(nodes):
        if _count(node, actor) < n_actors:
            continue
        cpus = float(node.get("CPU", 0.0))
        beside = cpus - n_actors * a + _EPS >= task_cpus
        if beside or any(float(m.get("CPU", 0.0)) + _EPS >= task_cpus for i, m in enumerate(nodes) if i != j):
            fit.append((cpus, j))
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
