"""Whether what a run asks Ray for fits the cluster's live nodes: an embedding model's actors (one each, or a pool
packed on one node), the probe trials, and a GPU under ``run.resources.use_gpu: always`` on a Ray that gets no more
nodes — each misfit said with the fix (the amounts asked for, what the largest node has)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any


def _amounts(request: Mapping[str, float]) -> str:
    """``{"CPU": 2, "GPU": 1, "embed": 1}`` → "2 CPUs, 1 GPU, embed 1"."""
    from repeval.words import counted

    said = []
    for k, v in request.items():
        n: float = int(v) if float(v).is_integer() else float(v)
        said.append(counted(n, k) if k in ("CPU", "GPU") else f"{k} {n:g}")  # type: ignore[arg-type]
    return ", ".join(said)


def alive_nodes() -> list[dict[str, Any]]:
    """The live nodes of the running Ray, as ``ray.nodes()`` reports them (``NodeID``, ``NodeManagerAddress``,
    ``Resources``, …): one query of the GCS."""
    import ray

    return [n for n in ray.nodes() if n.get("Alive")]


def alive_node_resources() -> list[dict[str, float]]:
    """Each live node's resources (``{"CPU": 8.0, "GPU": 1.0, "memory": …}``) of the running Ray: one query, which a
    check passes to every test it makes (:func:`request_misfit`, :func:`pool_misfit`)."""
    return [dict(n.get("Resources") or {}) for n in alive_nodes()]


def may_grow() -> bool:
    """Whether the running Ray may get more nodes: attached to a cluster (``RAY_ADDRESS``), which may autoscale —
    not the embedded Ray of this machine."""
    return bool(os.environ.get("RAY_ADDRESS"))


def check_request_fits(
    what: str,
    request: Mapping[str, float],
    settings: Mapping[str, str],
    nodes: Sequence[Mapping[str, float]] | None = None,
) -> None:
    """Raise ``ValueError`` naming the fix when no live node of the running Ray offers ``request`` whole (each
    resource's amount, on one node): the tasks, actors or trials ``what`` names would wait for ever on a cluster that
    will not add such a node — Ray's autoscaler only repeats "No available node types can fulfill resource request"
    in the job's log — and for a node the autoscaler adds, the pool sizes were fixed when the stage started from the
    nodes then up (docs/cluster.md, GPUs). ``settings``: the configuration key that asked for each resource;
    ``nodes``: the live nodes' resources when the caller has them (:func:`alive_node_resources`), else read here.
    GPU requests under ``run.resources.use_gpu: always`` are checked by the callers only on a Ray that cannot grow
    (:func:`no_gpu_misfit`): on an attached cluster that mode waits for the autoscaler to add GPU nodes."""
    nodes = alive_node_resources() if nodes is None else nodes
    problem = request_misfit(what, request, settings, nodes, may_grow=may_grow())
    if problem:
        raise ValueError(problem)


def _holds(node: Mapping[str, float], want: Mapping[str, float]) -> bool:
    return all(float(node.get(k, 0)) + 1e-9 >= v for k, v in want.items())


def request_misfit(
    what: str,
    request: Mapping[str, float],
    settings: Mapping[str, str],
    nodes: Sequence[Mapping[str, float]],
    may_grow: bool = True,
    one: bool = False,
) -> str | None:
    """Why no node of ``nodes`` (each node's resources, as ``ray.nodes()`` reports them) holds ``request`` whole —
    :func:`check_request_fits`'s message — or ``None`` when one does, when nothing is known of the nodes, or when
    none has a CPU on a cluster that ``may_grow`` (one scaled to zero, which only its autoscaler runs anything on).
    ``one``: ``what`` names one actor or task ("the embedding actor of …": "asks for", not "each ask for")."""
    from repeval.words import counted

    want = {k: float(v) for k, v in request.items() if float(v) > 0}
    if not want or not nodes or any(_holds(n, want) for n in nodes):
        return None
    if may_grow and not any(float(n.get("CPU", 0)) > 0 for n in nodes):
        # a cluster scaled to zero (a head of num-cpus 0, every worker group idled away, as cluster/kuberay's CPU group
        # may be): only its autoscaler runs anything, adding the nodes the requests ask for — as runs did before
        return None
    add = (
        f"add a node with {_amounts(want)} (on an autoscaling cluster, raise its node type's min_workers so one is up "
        "when the run starts)"
    )
    cluster = f"no node of this Ray cluster ({counted(len(nodes), 'node')})"
    most = {k: max(float(n.get(k, 0)) for n in nodes) for k in want}
    # the most of each resource on a node that holds the rest of the request: what lowering that one setting to makes
    # fit (16-CPU nodes and 8-CPU GPU nodes, 20 CPUs and a GPU asked: 8, not 16)
    cap = {
        k: max((float(n.get(k, 0)) for n in nodes if _holds(n, {j: v for j, v in want.items() if j != k})), default=0.0)
        for k in want
    }
    short = [k for k, v in want.items() if most[k] + 1e-9 < v]
    if short:
        to = " or ".join(f"{settings.get(k, k)} to at most {cap[k] or most[k]:g}" for k in short if most[k] > 0)
        lower = f"set {to}, or " if to else ""
        return (
            f"{what} {asks(one)} {_amounts(want)}, but {cluster} has that much — the most one has: "
            f"{_amounts({k: most[k] for k in want})} — so {they(one)} would wait for ever: {lower}{add}"
        )
    # every amount is on some node, but not together (12 CPUs and a GPU asked of the nodes above): what each
    # request could be lowered to on the nodes that hold the rest of it
    rest = {k: _amounts({j: v for j, v in want.items() if j != k}) for k in want}
    said = [f"the nodes with {rest[k]} have at most {_amounts({k: cap[k]})}" for k in want if cap[k] > 0]
    to = " or ".join(f"{settings.get(k, k)} to at most {cap[k]:g}" for k in want if cap[k] > 0)
    return (
        f"{what} {asks(one)} {_amounts(want)}, but {cluster} has all of it at once — "
        f"{'; '.join(said) or 'each node lacks one of them'} — so {they(one)} would wait for ever: "
        + (f"set {to}, or " if to else "")
        + add
    )


def asks(one: bool) -> str:
    """The verb of a request's message: "asks for" of one actor or task, "each ask for" of several."""
    return "asks for" if one else "each ask for"


def they(one: bool) -> str:
    """The pronoun of a request's message: "it" of one actor or task, "they" of several."""
    return "it" if one else "they"


def _count(node: Mapping[str, float], want: Mapping[str, float]) -> int:
    """How many requests of ``want`` ``node`` holds at once."""
    return min((int(float(node.get(k, 0)) / v + 1e-9) for k, v in want.items() if v > 0), default=1 << 30)


def _less(node: Mapping[str, float], want: Mapping[str, float]) -> dict[str, float]:
    return {k: float(node.get(k, 0)) - float(want.get(k, 0)) for k in {*node, *want}}


def _others(nodes: Sequence[Mapping[str, float]], j: int, actor: Mapping[str, float]) -> int:
    """The actors of ``actor`` the nodes other than the ``j``-th hold together."""
    return sum(_count(n, actor) for i, n in enumerate(nodes) if i != j)


def pool_room(actor: Mapping[str, float], n_actors: int, nodes: Sequence[Mapping[str, float]]) -> float:
    """The most CPUs (to 0.001, rounded down) a node keeps beside the actors of ``actor`` it must take — those the
    other nodes cannot — of a pool of ``n_actors``: the largest decode task the pool leaves room for."""
    actor = {k: float(v) for k, v in actor.items() if float(v) > 0}
    rooms = []
    for j, n in enumerate(nodes):
        own = max(0, n_actors - _others(nodes, j, actor))
        if own <= _count(n, actor):
            rooms.append(float(n.get("CPU", 0)) - own * actor.get("CPU", 0.0))
    return int(max(rooms, default=0.0) * 1000 + 1e-6) / 1000


def pool_misfit(
    model: str,
    actor: Mapping[str, float],
    n_actors: int,
    task: Mapping[str, float],
    nodes: Sequence[Mapping[str, float]],
    may_grow: bool = True,
    fits: Mapping[str, float] | None = None,
) -> str | None:
    """Why the live nodes (``nodes``) cannot hold a stream's ``n_actors`` embedding actors (``actor`` each) and one
    of its decode tasks (``task``, CPUs only) at once — :func:`check_request_fits`'s kind of message — else ``None``.
    Each may fit a node alone (what :func:`request_misfit` checks) and still wait for ever together: Ray Data starts
    the whole actor pool first, and on 2 CPUs a 1-CPU actor leaves no room for a decode task of 2 CPUs
    (``run.resources.decode_num_cpus: 2``); the stream showed "Active & requested resources: 3/2 CPU" and stood still.
    Exact for such a pool: some node holds the task beside as many actors as the other nodes cannot take.
    A cluster scaled to zero is left to its autoscaler, as :func:`request_misfit` leaves it. ``fits``: the most
    ``run.resources.decode_num_cpus`` and ``embed_actors`` may each be for the stream, sized again from it, to fit
    (:func:`repeval.pipeline.resources.stream_misfit` finds them; 0: no value does) — else what these requests leave."""
    from repeval.words import counted

    actor = {k: float(v) for k, v in actor.items() if float(v) > 0}
    task = {k: float(v) for k, v in task.items() if float(v) > 0}
    if not nodes or not actor or not task or n_actors < 1:
        return None
    if may_grow and not any(float(n.get("CPU", 0)) > 0 for n in nodes):
        return None
    beside = [  # (node, actors it holds beside the task) of each node that holds the task
        _others(nodes, j, actor) + _count(_less(n, task), actor) for j, n in enumerate(nodes) if _holds(n, task)
    ]
    if any(k >= n_actors for k in beside):
        return None
    room = pool_room(actor, n_actors, nodes)
    if fits is None:
        fits = {"decode_num_cpus": room, "embed_actors": float(max(beside, default=0))}
    fixes = [f"set run.resources.{k} to at most {v:g}" for k, v in fits.items() if v > 0]
    if 0 < fits.get("decode_num_cpus", room) < room:  # not the room said above: say why
        fixes[0] += " (the actors are sized from it: they grow as it shrinks)"
    fixes.append(
        f"add a node with {_amounts(task)} (on an autoscaling cluster, raise its node type's min_workers so one is up "
        "when the run starts)"
    )
    pool = (
        f"the {n_actors} embedding actors of {model} ({_amounts(actor)} each)"
        if n_actors > 1
        else f"the embedding actor of {model} ({_amounts(actor)})"
    )
    them = "the actors" if n_actors > 1 else "the actor"
    return (
        f"{pool} and its decode tasks ({_amounts(task)} each, run.resources.decode_num_cpus) each fit a node of this "
        f"Ray cluster ({counted(len(nodes), 'node')}), but not together: beside {them} a node keeps at most "
        f"{_amounts({'CPU': max(room, 0.0)})} for a decode task, so the stream would wait for ever (Ray Data starts "
        f"{them} first, and no decode task could start beside {'them' if n_actors > 1 else 'it'}): "
        f"{', or '.join(fixes)}"
    )


def no_gpu_misfit(
    what: str, gpus: float, setting: str, nodes: Sequence[Mapping[str, float]], may_grow: bool, one: bool = False
) -> str | None:
    """Why requests of ``gpus`` GPUs each (``what`` names them; ``setting``: the key that asked for them) under ``run.resources.use_gpu: always`` would wait for
    ever: no live node (``nodes``) has a GPU and the Ray cannot grow (``may_grow`` false: the embedded Ray of this
    machine, which no autoscaler adds a GPU node to) — else ``None`` (an attached cluster may add GPU nodes)."""
    if may_grow or gpus <= 0 or not nodes or any(float(n.get("GPU", 0)) > 0 for n in nodes):
        return None
    return (
        f"run.resources.use_gpu is always, so {what} {asks(one)} {_amounts({'GPU': float(gpus)})} ({setting}), "
        f"but this machine has no GPU Ray can see (the Ray repeval started here gets no more nodes), so {they(one)} "
        "would wait for ever: set run.resources.use_gpu to auto (a GPU where Ray sees one, else the CPUs), or run on a "
        "cluster with a GPU node (RAY_ADDRESS)"
    )


def trials_misfit(res: Any, use_gpu: bool, nodes: Sequence[Mapping[str, float]], may_grow: bool = True) -> str | None:
    """Why no live node (``nodes``) holds a probe trial (``run.resources.trial_num_cpus``/``trial_num_gpus``, as
    :mod:`repeval.tuning.grid` requests them; ``use_gpu``: whether they take their GPUs) — ``None`` when one does, or
    when the trials take a GPU under ``use_gpu: always`` on a cluster that ``may_grow``: they can only go to a GPU
    node, which may not be up yet, so the live nodes' CPUs say nothing about them either. On one that cannot grow
    (the embedded Ray) they are checked whole, GPU and all (:func:`no_gpu_misfit` when no node has a GPU)."""
    always = res.use_gpu == "always" and res.trial_num_gpus > 0
    if always and may_grow:
        return None  # trials that take a GPU go to the GPU nodes the autoscaler adds, whatever their CPUs
    if always:
        problem = no_gpu_misfit("the probe trials", res.trial_num_gpus, "run.resources.trial_num_gpus", nodes, may_grow)
        if problem:
            return problem
    gpu = res.trial_num_gpus if use_gpu or always else 0
    keys = {"CPU": "run.resources.trial_num_cpus", "GPU": "run.resources.trial_num_gpus"}
    return request_misfit("the probe trials", {"CPU": res.trial_num_cpus, "GPU": gpu}, keys, nodes, may_grow)


def check_trials_fit(res: Any, use_gpu: bool | None = None) -> None:
    """Refuse probe trials that no live node can hold (:func:`trials_misfit`, as :func:`check_request_fits` words it)
    — before anything is embedded when the run trains next. ``use_gpu``: whether the trials take their GPUs, when the
    caller has decided it (else decided here, as the trials' caller does)."""
    from repeval.ray_utils import cluster_gpus, wants_gpu

    if use_gpu is None and not (res.use_gpu == "always" and res.trial_num_gpus > 0):
        use_gpu = wants_gpu(res.use_gpu, res.trial_num_gpus, cluster_gpus())
    problem = trials_misfit(res, bool(use_gpu), alive_node_resources(), may_grow())
    if problem:
        raise ValueError(problem)
