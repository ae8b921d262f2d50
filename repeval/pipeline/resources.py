"""Resource requests for the decode tasks and the embedding actor pool.

Rules (all decided on the driver from what Ray reports, so they are unit-testable; :func:`stream_resources` asks
the running Ray):

- **GPU**: when the cluster has GPUs (or ``resources.use_gpu`` is ``always``; ``never`` keeps to
  CPUs) and the model says it benefits (``uses_gpu``), each actor requests
  ``resources.embed_num_gpus`` (a fraction shares one device) and the pool has as many actors as
  the GPUs allow (one, or ``resources.embed_actors``, while no GPU is up yet).
- **CPU**: a share of the CPUs (at least ``resources.decode_num_cpus``, at least 1/8 of the
  cluster) stays free for decode tasks — an actor pool that takes every CPU starves them. The
  rest is split between actors of about ``resources.embed_num_cpus`` each; on 2 CPUs that is two
  actors of 0.75 CPU and decode tasks of 0.25 CPU. The model's math threads (BLAS/OpenMP via
  threadpoolctl, torch intra-op) are set to the actor's CPUs, rounded, at least 1.
- **Decode tasks at once**: on a single node, as many as the CPUs the actors leave free, rounded
  up (at least one). Ray would otherwise run as many as the decode requests fit in — four
  0.25-CPU tasks beside a 1-CPU actor on 2 CPUs — and each task beyond the free CPUs is one more
  worker process importing the audio stack (about 2 core-seconds) while the actors start, for no
  more decoding: measured, it delayed a TensorFlow actor's start by ~5 s. On a multi-node
  cluster, whose CPUs the autoscaler may add to after the stage starts, Ray Data sizes the decode
  pool itself. ``resources.decode_max_tasks`` sets the number in both cases.
- **Isolation**: a model whose ``process_group`` is not ``default`` (TensorFlow 2 vs legacy Keras
  vs essentia's bundled TensorFlow cannot share a process) gets a ``runtime_env`` of its own;
  Ray keys worker processes by runtime environment, so those actors never run in a process that
  served another group, nor does any later task reuse theirs.
- **Placement**: on several nodes, a pool that Ray Data's spreading could leave with no node keeping a decode task's
  CPUs is asked for on one node that holds it whole, or refused when none does (:mod:`repeval.pipeline.placement`).
- **No fusion** of an actor pool: decode and embed requests always differ, so Ray Data keeps them as
  two stages.
- **Light models in the decode tasks** (``resources.embed_in_decode``): a model that declares itself
  ``light`` (handcrafted features: no weights, built in microseconds, single-threaded numpy) runs
  inside the decode tasks instead — one stage of ``embed_num_cpus``-CPU tasks, as many at once as
  fit on a single node. Decoding costs about as much as such a model, so an actor pool would only
  add a hop through the object store for every chunk of audio and leave the decode share and the
  actors each waiting on the other (2,000 clips, mfcc-stats, 2 CPUs: see docs/benchmarks.md).
  ``auto`` keeps the actor pool when the model takes a GPU or ``embed_actors``/``embed_resources``
  is set (those name an actor pool); ``always`` puts any model in the tasks (built once per worker
  process, CPU only); ``never`` always uses an actor pool.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from repeval.cpu import model_process_env
from repeval.models import resolve_model

#: environment variables for the isolated process groups (a model may add ``worker_env``);
#: one table shared with the models' own subprocess validation
from repeval.models._common import PROCESS_GROUP_ENV
from repeval.words import counted

if TYPE_CHECKING:
    from repeval.pipeline.placement import PackedPool

#: the share of the cluster's CPUs kept for decode tasks (at least ``decode_num_cpus``)
DECODE_SHARE = 1 / 8


@dataclass(frozen=True)
class EmbedResources:
    n_actors: int
    num_cpus: float
    num_gpus: float
    threads: int
    decode_num_cpus: float
    process_group: str = "default"
    env_vars: dict[str, str] = field(default_factory=dict)
    #: custom Ray resources per actor (``run.resources.embed_resources``, issue 8)
    resources: dict[str, float] = field(default_factory=dict)
    #: decode tasks running at once (``None``: as many as Ray can place)
    decode_tasks: int | None = None
    #: the model runs inside the decode tasks (no actor pool; ``n_actors`` is 0)
    fused: bool = False
    #: the ID of the node the whole actor pool is asked for on (:mod:`repeval.pipeline.placement`), else ``None``
    pack_node: str | None = None

    @property
    def runtime_env(self) -> dict[str, Any] | None:
        if self.process_group == "default":
            return None
        return {"env_vars": {"REPEVAL_PROCESS_GROUP": self.process_group, **self.env_vars}}

    def actor_kwargs(self, batch_size: int, pool: PackedPool | None = None) -> dict[str, Any]:
        """``map_batches`` keyword arguments of the embedding stage (besides the UDF and its args); ``pool``: the
        placement group of a packed pool (``pack_node``: :meth:`packed_pool`), which its actors are asked for in."""
        import ray.data

        kw: dict[str, Any] = {
            "batch_size": batch_size,
            "compute": ray.data.ActorPoolStrategy(size=self.n_actors),
            "num_cpus": self.num_cpus,
        }
        if self.num_gpus > 0:
            kw["num_gpus"] = self.num_gpus
        if self.resources:
            kw["resources"] = dict(self.resources)
        if self.runtime_env is not None:
            kw["runtime_env"] = self.runtime_env
        if self.pack_node is not None:  # Ray Data would SPREAD them (repeval.pipeline.placement)
            if pool is None:
                raise ValueError(
                    "a packed embedding actor pool is asked for in its placement group: pass packed_pool()"
                )
            kw["scheduling_strategy"] = pool.strategy()
        return kw

    def packed_pool(self, model: str, wait_s: float | None = None, stall_s: float | None = None) -> PackedPool | None:
        """A packed pool's placement group (:class:`~repeval.pipeline.placement.PackedPool`: the caller closes it once
        the stream ends), else ``None``; ``wait_s``, ``stall_s``: ``run.resources.pool_wait_s``, ``pool_stall_s``."""
        if self.pack_node is None:
            return None
        from repeval.pipeline.placement import PackedPool

        return PackedPool(model, _actor(self), self.n_actors, self.decode_num_cpus, self.pack_node, wait_s, stall_s)

    def decode_kwargs(self, n_blocks: int | None = None) -> dict[str, Any]:
        """``map_batches`` keyword arguments of the decode stage (a stateless task pool). ``n_blocks``, the stream's
        block count, caps the pool: a stream of fewer blocks than pool slots cannot run more tasks, and Ray Data
        warns about every such stream (a one-file ``--retry-errors`` rerun, a small dataset on a large node)."""
        import ray.data

        kw: dict[str, Any] = {"num_cpus": self.decode_num_cpus}
        if self.decode_tasks:
            size = min(self.decode_tasks, n_blocks) if n_blocks else self.decode_tasks
            kw["compute"] = ray.data.TaskPoolStrategy(size=size)
        if self.fused and self.runtime_env is not None:  # the tasks host the model: its process group
            kw["runtime_env"] = self.runtime_env
        return kw

    def describe(self) -> str:
        grp = f", process group {self.process_group}" if self.process_group != "default" else ""
        if self.fused:
            at_once = f", {self.decode_tasks} at once" if self.decode_tasks else ""
            return (
                f"model inside the decode tasks (no actor pool{grp}): tasks × {self.decode_num_cpus:g} CPU"
                f"{at_once} ({counted(self.threads, 'thread')} each)"
            )
        dev = f", {self.num_gpus:g} GPU" if self.num_gpus else ""
        dev += "".join(f", {k}={v:g}" for k, v in self.resources.items())
        grp += ", all on one node" if self.pack_node is not None else ""
        return (
            f"{counted(self.n_actors, 'embedding actor')} × {self.num_cpus:g} CPU{dev} "
            f"({counted(self.threads, 'thread')} each){grp}; "
            f"decode tasks × {self.decode_num_cpus:g} CPU"
            + (f", {self.decode_tasks} at once" if self.decode_tasks else "")
        )


def _whole(d: dict[str, float]) -> dict[str, float | int]:
    return {k: int(v) if float(v).is_integer() else v for k, v in d.items()}


def _nodes(cluster_resources: Mapping[str, float] | None) -> int:
    """Nodes in ``ray.cluster_resources()`` (1 when not known): each node has 1 of its ``node:<address>`` resource,
    summed over the nodes that share an address — the nodes of one machine (``ray.cluster_utils.Cluster``, several
    ``ray start`` on one host) made one ``node:192.0.2.2: 3.0``, counted as a single node before."""
    found = [v for k, v in (cluster_resources or {}).items() if k.startswith("node:") and k != "node:__internal_head__"]
    return max(1, round(sum(float(v) for v in found)))


def _round(x: float) -> float:
    return math.floor(x * 1000) / 1000


def plan_resources(
    model_cls: type,
    res: Any,
    cluster_cpus: float,
    cluster_gpus: float,
    cluster_resources: Mapping[str, float] | None = None,
) -> EmbedResources:
    """Resources for one model's embedding stage on a cluster with these totals.

    ``cluster_resources`` (``ray.cluster_resources()``) caps the pool at what the cluster offers of
    the custom resources in ``res.embed_resources``.
    """
    explicit: set[str] = set(getattr(res, "model_fields_set", set()))
    cpus = max(float(cluster_cpus), 0.1)
    from repeval.ray_utils import wants_gpu

    mode = str(getattr(res, "use_gpu", "auto"))
    use_gpu = bool(getattr(model_cls, "uses_gpu", False)) and wants_gpu(mode, res.embed_num_gpus, cluster_gpus)
    group = str(getattr(model_cls, "process_group", "default") or "default")
    # an isolated process group's environment (the default group runs in Ray's plain workers)
    env = (
        {
            **model_process_env(),  # glibc keeps what the model frees (read when the group's processes start)
            **PROCESS_GROUP_ENV.get(group, {}),
            **dict(getattr(model_cls, "worker_env", {}) or {}),
        }
        if group != "default"
        else {}
    )
    if runs_in_decode_tasks(model_cls, res, use_gpu):
        return _fused(res, cpus, cluster_resources, group, env)
    reserve = min(max(res.decode_num_cpus, cpus * DECODE_SHARE), cpus / 2)
    if use_gpu:
        # with use_gpu: always and no GPU up yet, one actor (or embed_actors) waits for the autoscaler
        num_gpus = float(res.embed_num_gpus) if cluster_gpus <= 0 else min(float(res.embed_num_gpus), cluster_gpus)
        n_actors = res.embed_actors or max(1, int(cluster_gpus / num_gpus + 1e-9))
        per_actor = float(res.embed_num_cpus)
    else:
        num_gpus = 0.0
        per_actor = float(res.embed_num_cpus)
        n_actors = res.embed_actors or max(1, math.ceil((cpus - reserve) / per_actor - 1e-9))
    # --- custom resources (issue 8): run.resources.embed_resources pins actors to the nodes that offer them
    custom = {str(k): float(v) for k, v in (getattr(res, "embed_resources", None) or {}).items()}
    if custom and cluster_resources is not None:
        fits = min(int(float(cluster_resources.get(k, 0.0)) / v + 1e-9) for k, v in custom.items())
        if fits < 1:
            have = {k: float(cluster_resources.get(k, 0.0)) for k in custom}
            raise ValueError(
                f"run.resources.embed_resources asks each embedding actor for {custom}, but the cluster offers {have}: "
                f"start the embedding nodes with `ray start --resources='{json.dumps(_whole(custom))}'` (or more), "
                f"or remove embed_resources"
            )
        n_actors = min(n_actors, fits) if not res.embed_actors else n_actors
    # --- end custom resources
    if "embed_num_cpus" not in explicit or n_actors * per_actor > cpus - reserve:
        # shrink the actors so the pool leaves the decode share free
        per_actor = min(per_actor, (cpus - reserve) / n_actors)
    per_actor = max(_round(per_actor), 0.01)
    decode = (
        min(float(res.decode_num_cpus), max(reserve / 2, 0.05))
        if "decode_num_cpus" not in explicit
        else float(res.decode_num_cpus)
    )
    decode = _round(decode)
    if math.isclose(decode, per_actor):
        # identical requests would let Ray Data fuse decode into the actors
        decode = _round(decode * 0.9)
    # on one node, one decode task per CPU the pool leaves free: a task beyond that only adds a worker process to
    # start; a multi-node cluster may grow (autoscaler), so Ray Data sizes its decode pool there
    decode_tasks: int | None = getattr(res, "decode_max_tasks", None)
    if not decode_tasks and _nodes(cluster_resources) <= 1:
        decode_tasks = max(1, math.ceil(cpus - n_actors * per_actor - 1e-6))
    return EmbedResources(
        n_actors=int(n_actors),
        num_cpus=per_actor,
        num_gpus=num_gpus,
        threads=max(1, round(per_actor)),
        decode_num_cpus=decode,
        process_group=group,
        env_vars=env,
        resources=custom,
        decode_tasks=decode_tasks,
    )


def runs_in_decode_tasks(model_cls: type, res: Any, use_gpu: bool = False) -> bool:
    """Whether ``run.resources.embed_in_decode`` puts the model inside the decode tasks: ``always``; or ``auto``
    for a ``light`` model that takes no GPU while neither ``embed_actors`` nor ``embed_resources`` asks for a
    pool."""
    placement = str(getattr(res, "embed_in_decode", "auto"))
    return placement == "always" or (
        placement == "auto"
        and bool(getattr(model_cls, "light", False))
        and not use_gpu
        and not res.embed_actors
        and not (getattr(res, "embed_resources", None) or {})
    )


def _fused(
    res: Any, cpus: float, cluster_resources: Mapping[str, float] | None, group: str, env: dict[str, str]
) -> EmbedResources:
    """Resources when the model runs inside the decode tasks: tasks of ``embed_num_cpus`` CPUs (at most the
    cluster's), on one node as many at once as fit (``decode_max_tasks`` sets it)."""
    per_task = _round(min(float(res.embed_num_cpus), cpus))
    tasks: int | None = getattr(res, "decode_max_tasks", None)
    if not tasks and _nodes(cluster_resources) <= 1:
        tasks = max(1, int(cpus / per_task + 1e-6))
    return EmbedResources(
        n_actors=0,
        num_cpus=0.0,
        num_gpus=0.0,
        threads=max(1, round(per_task)),
        decode_num_cpus=per_task,
        process_group=group,
        env_vars=env,
        decode_tasks=tasks,
        fused=True,
    )


def stream_resources(mcfg: Any, resources: Any, nodes: Sequence[Mapping[str, float]] | None = None) -> EmbedResources:
    """What a stream of model ``mcfg`` requests from the running Ray under ``run.resources`` — refused when the live
    nodes cannot hold it (:func:`check_stream_fits`; ``nodes``: their resources when the caller has read them)."""
    import ray  # issue 8: custom resources (run.resources.embed_resources) cap the pool

    fam, _ = resolve_model(mcfg)
    cluster = ray.cluster_resources()
    cpus, gpus = float(cluster.get("CPU", 1.0)), float(cluster.get("GPU", 0.0))
    res = plan_resources(fam.cls, resources, cpus, gpus, cluster)
    replan = replanner(fam.cls, resources, cpus, gpus, cluster)
    if nodes is None:
        from repeval.ray_fit import alive_node_resources

        nodes = alive_node_resources()
    use_gpu = str(getattr(resources, "use_gpu", "auto"))
    check_stream_fits(mcfg.id, res, use_gpu, nodes, replan)
    return packed(res, use_gpu, nodes)


def packed(res: EmbedResources, use_gpu: str, nodes: Sequence[Mapping[str, float]]) -> EmbedResources:
    """``res`` with its actor pool asked for on one node (``pack_node``) when Ray could otherwise place it so that no
    node keeps a decode task's CPUs (:mod:`repeval.pipeline.placement`); ``res`` itself when it need not be."""
    from dataclasses import replace

    from repeval.ray_fit import alive_nodes

    at = pack_index(res, use_gpu, nodes)
    if at is None:
        return res
    # the live node with those resources (the list may be the caller's, read earlier: matched, not indexed)
    want = dict(nodes[at])
    node_id = next((n["NodeID"] for n in alive_nodes() if dict(n.get("Resources") or {}) == want), None)
    return res if node_id is None else replace(res, pack_node=str(node_id))


#: the stream planned again with some of its ``run.resources`` settings changed (``{"decode_num_cpus": 0.5}``)
Replan = Callable[[dict[str, Any]], EmbedResources]


def replanner(
    model_cls: type, resources: Any, cpus: float, gpus: float, cluster: Mapping[str, float] | None
) -> Replan | None:
    """:func:`plan_resources` of ``model_cls`` on these totals with settings of ``resources`` changed (``None`` when
    ``resources`` is not a configuration that can be copied so)."""
    if not hasattr(resources, "model_copy"):
        return None
    return _Replanner(model_cls, resources, cpus, gpus, cluster)


@dataclass(frozen=True)
class _Replanner:
    """:func:`replanner`'s: also says which settings the configuration gave (``given``)."""

    model_cls: type
    resources: Any
    cpus: float
    gpus: float
    cluster: Mapping[str, float] | None

    @property
    def given(self) -> set[str]:
        return set(getattr(self.resources, "model_fields_set", set()))

    def __call__(self, update: dict[str, Any]) -> EmbedResources:
        return plan_resources(
            self.model_cls, self.resources.model_copy(update=update), self.cpus, self.gpus, self.cluster
        )


def pack_index(res: EmbedResources, use_gpu: str, nodes: Sequence[Mapping[str, float]]) -> int | None:
    """The index in ``nodes`` of the node :func:`packed` asks the actor pool of ``res`` for on, else ``None``."""
    from repeval.pipeline.placement import pack_node, starvable

    actor = _actor(res)
    if not res.n_actors or use_gpu == "always" or not starvable(actor, res.n_actors, res.decode_num_cpus, nodes):
        return None
    return pack_node(actor, res.n_actors, res.decode_num_cpus, nodes)


def check_stream_fits(
    model: str,
    res: EmbedResources,
    use_gpu: str,
    nodes: Sequence[Mapping[str, float]] | None = None,
    replan: Replan | None = None,
) -> None:
    """Refuse a stream the live nodes cannot hold (:func:`stream_misfit`), read once (``nodes``, else here)."""
    from repeval.ray_fit import alive_node_resources, may_grow

    nodes = alive_node_resources() if nodes is None else nodes
    problem = stream_misfit(model, res, use_gpu, nodes, may_grow(), replan)
    if problem:
        raise ValueError(problem)


def stream_misfit(
    model: str,
    res: EmbedResources,
    use_gpu: str,
    nodes: Sequence[Mapping[str, float]],
    may_grow: bool = True,
    replan: Replan | None = None,
) -> str | None:
    """Why the live nodes (``nodes``, each one's resources) cannot hold a stream's decode tasks or embedding actors
    (:func:`~repeval.ray_fit.request_misfit`): an ``embed_num_cpus`` above every node's CPUs (the requests are
    sized from the cluster's total), the GPUs of ``embed_num_gpus`` on nodes of fewer; or the actor pool and a
    decode task together (:func:`~repeval.ray_fit.pool_misfit`) — except an actor pool under ``use_gpu:
    always``, which waits for the autoscaler's GPU nodes on a cluster that ``may_grow`` (on one that cannot, the
    embedded Ray, its actors are checked alone: :func:`~repeval.ray_fit.no_gpu_misfit` when no node has a GPU); or a pool that Ray could place so that no node keeps a
    decode task's CPUs and that no node holds whole (:func:`~repeval.pipeline.placement.spread_misfit`; one that a
    node holds whole is asked for there: :func:`packed`). ``None`` when they fit. ``replan``: the stream planned
    again (:func:`replanner`), by which the pool's message names the settings that fit (:func:`_settings_that_fit`)."""
    from repeval.pipeline.placement import spread_misfit
    from repeval.ray_fit import no_gpu_misfit, pool_misfit, request_misfit

    keys = {"CPU": "run.resources.embed_num_cpus", "GPU": "run.resources.embed_num_gpus"}
    decode = {"CPU": res.decode_num_cpus}
    if not res.n_actors:
        return request_misfit(f"the decode tasks that run {model}", decode, keys, nodes, may_grow)
    problem = request_misfit(
        f"the decode tasks of {model}", decode, {"CPU": "run.resources.decode_num_cpus"}, nodes, may_grow
    )
    if problem or (use_gpu == "always" and may_grow):
        return problem
    custom = {k: f"run.resources.embed_resources.{k}" for k in res.resources}
    actor = _actor(res)
    one = res.n_actors == 1
    what = f"the embedding {'actor' if one else 'actors'} of {model}"
    problem = no_gpu_misfit(what, res.num_gpus, keys["GPU"], nodes, may_grow, one) if use_gpu == "always" else None
    problem = problem or request_misfit(what, actor, {**keys, **custom}, nodes, may_grow, one)
    if problem or use_gpu == "always":
        return problem  # the pool under use_gpu: always is not packed (pack_index): its actors are checked alone
    if pool_misfit(model, actor, res.n_actors, decode, nodes, may_grow) is not None:
        fits = _settings_that_fit(model, res, use_gpu, nodes, may_grow, replan) if replan else None
        return pool_misfit(model, actor, res.n_actors, decode, nodes, may_grow, fits)
    if not nodes or not any(float(n.get("CPU", 0)) > 0 for n in nodes):
        return None  # a cluster scaled to zero: its autoscaler's, as pool_misfit leaves it
    if spread_misfit(model, actor, res.n_actors, res.decode_num_cpus, nodes, {}) is None:
        return None
    fits = _settings_that_fit(model, res, use_gpu, nodes, may_grow, replan) if replan else {}
    return spread_misfit(model, actor, res.n_actors, res.decode_num_cpus, nodes, fits)


def _actor(res: EmbedResources) -> dict[str, float]:
    """What each embedding actor of ``res`` requests."""
    return {"CPU": res.num_cpus, "GPU": res.num_gpus, **res.resources}


def _settings_that_fit(
    model: str, res: EmbedResources, use_gpu: str, nodes: Sequence[Mapping[str, float]], may_grow: bool, replan: Replan
) -> dict[str, float]:
    """The most ``run.resources.decode_num_cpus`` and ``embed_actors`` — and ``embed_num_cpus`` when the configuration
    sets it — may each be (the other settings kept) for the stream of ``res``, planned again, to fit ``nodes`` — 0 when
    no value does. Not what these requests leave beside
    the pool: :func:`plan_resources` sizes the actors from both (a smaller decode share leaves the pool more CPUs, and
    fewer actors get more each): on nodes of 2 and 1 CPUs, the 0.334 CPUs three actors left free beside
    ``decode_num_cpus: 0.5`` became 0.25 once it was lowered to 0.334."""
    from repeval.pipeline.placement import pack_node, safe_room
    from repeval.ray_fit import pool_room

    def planned(update: dict[str, Any]) -> EmbedResources | None:
        try:
            return replan(update)
        except ValueError:  # a request the settings cannot make (run.resources.embed_resources): not a fix
            return None

    def fits(new: EmbedResources | None) -> bool:
        return new is not None and stream_misfit(model, new, use_gpu, nodes, may_grow) is None

    # from the room the pool leaves, lowered to the room each smaller decode share leaves, until one fits
    decode, now = res.decode_num_cpus, res
    for _ in range(64):
        room = pool_room(_actor(now), now.n_actors, nodes)
        if pack_node(_actor(now), now.n_actors, room, nodes) is None:  # and however Ray places the actors
            room = min(room, safe_room(_actor(now), now.n_actors, nodes))
        decode = min(room, _round(decode - 0.001))
        new = planned({"decode_num_cpus": decode}) if decode > 0 else None
        if new is None or fits(new):
            break
        now = new
    else:
        new = None
    decode = decode if new is not None else 0.0
    # a rounder value as near, when it fits too (1, not the 1.001 that the steps down from 1.25 end at)
    rounder = (math.floor(decode * 10**k) / 10**k for k in (0, 1, 2))
    decode = next((c for c in rounder if 0.99 * decode <= c < decode and fits(planned({"decode_num_cpus": c}))), decode)
    actors = next((n for n in range(res.n_actors - 1, 0, -1) if fits(planned({"embed_actors": n}))), 0)
    out = {"decode_num_cpus": decode, "embed_actors": float(actors)}
    # a run.resources.embed_num_cpus given (the pool is sized from it): the most that fits
    if "embed_num_cpus" in getattr(replan, "given", ()):
        out["embed_num_cpus"] = next((c for c in _cpus_to_try(res, nodes) if fits(planned({"embed_num_cpus": c}))), 0.0)
    return out


def _cpus_to_try(res: EmbedResources, nodes: Sequence[Mapping[str, float]]) -> list[float]:
    """The ``run.resources.embed_num_cpus`` values below the actors' that :func:`_settings_that_fit` tries, largest
    first: what a node's CPUs, or those it keeps beside a decode task, give each of 1–16 actors on it (rounded down
    to a hundredth, then to whole CPUs where that is as near)."""
    spans = {float(n.get("CPU", 0.0)) - d for n in nodes for d in (0.0, res.decode_num_cpus)}
    cpus = {math.floor(s / k * 100) / 100 for s in spans for k in range(1, 17) if s > 0}
    return sorted((c for c in cpus if 0 < c < res.num_cpus), reverse=True)
