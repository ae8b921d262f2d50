"""The embedding stage's checks before any stream starts: every deformation scenario tried at the rate of each
model that hears it (before the store is touched), every store partition of the run checked against what it holds
(all conflicts named at once), and every embedding model checked on each live node its actors (or decode tasks) may
go to — ``repeval validate`` runs the latter too."""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from repeval.config import Config, ExperimentConfig
from repeval.deformations import scenario_steps, validate_steps_at
from repeval.exc_chain import exception_chain
from repeval.json_keys import sorted_json
from repeval.models import ModelUnavailable, resolve_model, unavailable_reason
from repeval.models.plugins import Plugin, PluginError, first_line, load_plugins, plugins_of
from repeval.pipeline.embedder import model_config_for_build
from repeval.pipeline.partition_conflicts import accepted_spec
from repeval.pipeline.partitions import ModelSpec
from repeval.pipeline.resources import stream_resources
from repeval.pipeline.stages import CLEAN
from repeval.store import EmbeddingStore, StoreConflict
from repeval.words import named

#: the embedding stage's log lines keep one name, whichever of its modules says them (the CLI prints it)
log = logging.getLogger("repeval.pipeline.embed")


def built_models(cfg: Config) -> list[Any]:
    """The embedding model configurations a run of ``cfg`` builds, for the checks that they can run (``repeval
    validate``, ``plan``): one per stream (:meth:`~repeval.pipeline.partitions.ModelSpec.stream_name`), the first
    experiment's — experiments listing a model id alike but for the params its family leaves out of the store's
    fingerprint (musicnn's ``backend``) share its stream, which runs with the first's (the last's was checked)."""
    first: dict[tuple[str, str, str], Any] = {}
    for m in (m for exp in cfg.experiments for m in exp.embedding_models):
        fam, params = resolve_model(m)
        exempt = set(getattr(fam.cls, "fingerprint_exempt", ()))
        first.setdefault((m.id, fam.name, sorted_json({k: v for k, v in params.items() if k not in exempt})), m)
    return list(first.values())


def check_scenarios_at_model_rates(cfg: Config, experiments: Sequence[ExperimentConfig]) -> None:
    """Every deformation scenario tried at the rate of each model that hears it, before the store is touched: the
    configuration was validated at 44.1 kHz, and a filter frequency above a 16 kHz model's Nyquist frequency (or a
    step that makes NaN at that rate) would leave the deformation undone or make every deformed track an error."""
    checked: set[tuple[str, int]] = set()
    for exp in experiments:
        for ds in exp.datasets:
            scenarios = exp.scenarios_for(ds)
            if not scenarios:
                continue
            for mcfg in exp.embedding_models:
                rate = ModelSpec.of(cfg, mcfg).sample_rate_hz
                for sid, sc in scenarios.items():
                    steps = scenario_steps(sc)
                    seen = (sorted_json([sid, steps]), rate)  # keys of any kind a transform's params hold
                    if seen in checked:
                        continue
                    checked.add(seen)
                    try:
                        validate_steps_at(sid, steps, rate)
                    except ValueError as exc:
                        raise ValueError(f"{exc} (embedding model {mcfg.id} hears audio at {rate} Hz)") from None


#: how long the check of the models on each node may take (a node busy starting workers): past it, its actors check
PREFLIGHT_TIMEOUT_S = 120.0


def check_store_partitions(
    cfg: Config, experiments: Sequence[ExperimentConfig], store: EmbeddingStore, deformed_only: bool = False
) -> None:
    """Every store partition the run would embed into, checked against what it holds (the check the planning does,
    :func:`~repeval.pipeline.partition_conflicts.accepted_spec`) before any is planned, reopened or embedded into: one
    conflict raises its own :class:`~repeval.store.StoreConflict`; several raise one that names them all — as
    ``repeval plan`` lists them — and the one ``repeval store rm`` that deletes them, not one per run of the stage."""
    found: dict[str, StoreConflict] = {}  # partition name → its conflict
    for exp in experiments:
        for ds in exp.datasets:
            sids = ([] if deformed_only else [CLEAN]) + list(exp.scenarios_for(ds))
            for mcfg in exp.embedding_models:
                spec = ModelSpec.of(cfg, mcfg)
                for sid in sids:
                    part = store.partition(ds.name, mcfg.id, sid)
                    if part.name in found:
                        continue
                    try:
                        accepted_spec(part, spec.partition(cfg, exp, ds, sid))
                    except StoreConflict as exc:
                        found[part.name] = exc
    if len(found) == 1:
        raise next(iter(found.values()))
    if found:
        names = " ".join(shlex.quote(name) for name in found)
        raise StoreConflict(  # its first line says it all (status.json keeps that one): which, and the fix
            f"{len(found)} store partitions were computed with a different configuration ({', '.join(found)}) — "
            f"nothing was embedded; `repeval store rm {shlex.quote(store.uri)} {names} --yes` deletes them to "
            "recompute them (or give the models or scenarios new ids, or point run.store elsewhere). Each:\n"
            + "\n".join(f"  - {exc}" for exc in found.values())
        )


def unavailable_here(mcfgs: list[Any], plugins: tuple[Plugin, ...] = ()) -> dict[str, str]:
    """Model id -> why this process cannot build it (what :func:`repeval.models.build_model` refuses), for those;
    the configuration's ``plugins`` imported first (a plugin this process cannot import: the reason of each model)."""
    try:
        load_plugins(plugins)
    except PluginError as exc:
        return {mcfg.id: str(exc) for mcfg in mcfgs}
    out = {}
    for mcfg in mcfgs:
        try:
            fam, params = resolve_model(model_config_for_build(mcfg))
            reason = unavailable_reason(fam.cls, params)
        except Exception as exc:  # a broken install (a package that imports but fails): a reason, not a crash
            reason = f"checking it failed with {first_line(exc)} — {REINSTALL_FIX}"
        if reason:
            out[mcfg.id] = reason
    return out


#: what to do when checking a model fails on a node (a broken or missing install rather than a missing extra)
REINSTALL_FIX = (
    "install the same repeval version, with the extras its models need, on every node (`pip install "
    "'repeval[models]'`; on a cluster, in the image or runtime_env its workers use)"
)


@dataclass
class NodeCheck:
    """What :func:`models_on_nodes` found: ``problems`` maps ``(model id, reason)`` to the addresses of the nodes
    that cannot run it; ``checked`` the addresses of the nodes that answered; ``single`` whether the cluster has
    one live node (the machine the driver runs on); ``unplaced`` the models no live node has the resources for
    (they are checked on the nodes the autoscaler adds, at their actors' start)."""

    problems: dict[tuple[str, str], list[str]]
    checked: list[str]
    single: bool
    unplaced: list[str]


def unavailable_lines(problems: dict[tuple[str, str], list[str]], here: bool) -> list[str]:
    """``embedding model '<id>' cannot run here|on node <address>|on nodes <addresses>: <reason>``, one per problem (as
    :class:`NodeCheck` holds them), sorted; ``here``: the problems of the machine this process runs on."""
    return [
        f"embedding model '{model_id}' cannot run "
        + ("here" if here else f"on {named('node', sorted(ips))}")
        + f": {reason}"
        for (model_id, reason), ips in sorted(problems.items())
    ]


def models_on_nodes(cfg: Config, mcfgs: list[Any]) -> NodeCheck:
    """Check every model in ``mcfgs`` on every live node its embedding actors (or decode tasks) may go to — by a
    task on each node, since a cluster's nodes need not have the driver's packages or weights; the driver's node
    answers in this process. A node that went away or is too busy to answer is left out (logged): its actors
    check at their start, as do those of the nodes the autoscaler adds later."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from repeval.ray_fit import alive_nodes

    nodes = alive_nodes()
    have_all = [dict(n.get("Resources") or {}) for n in nodes]
    wanted: dict[str, list[Any]] = {}
    unplaced = []
    for mcfg in mcfgs:
        res = stream_resources(mcfg, cfg.run.resources, have_all)
        needs = {"CPU": 1e-9, **({"GPU": 1e-9} if res.num_gpus else {}), **res.resources}
        placed = False
        for node in nodes:
            have = node.get("Resources", {})
            if all(have.get(k, 0.0) >= v for k, v in needs.items()):
                wanted.setdefault(node["NodeID"], []).append(mcfg)
                placed = True
        if not placed:
            unplaced.append(mcfg.id)
    # the driver's node answers in this process (its workers run this Python): a single machine starts no task for it
    here = ray.get_runtime_context().get_node_id()
    plugins = plugins_of(cfg.plugins)
    check = ray.remote(num_cpus=0)(unavailable_here)
    refs = {
        nid: check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(nid, soft=False)).remote(models, plugins)
        for nid, models in wanted.items()
        if nid != here
    }
    where = {n["NodeID"]: n.get("NodeManagerAddress", n["NodeID"]) for n in nodes}
    problems: dict[tuple[str, str], list[str]] = {}
    checked = []
    if here in wanted:
        checked.append(where[here])
        for model_id, reason in unavailable_here(wanted[here], plugins).items():
            problems.setdefault((model_id, reason), []).append(where[here])
    for nid, ref in refs.items():
        found = node_answer(ref, [m.id for m in wanted[nid]], where[nid])
        if found is None:
            continue
        checked.append(where[nid])
        for model_id, reason in found.items():
            problems.setdefault((model_id, reason), []).append(where[nid])
    return NodeCheck(problems, checked, len(nodes) == 1, unplaced)


def node_answer(ref: Any, model_ids: list[str], node: str) -> dict[str, str] | None:
    """What the check task ``ref`` on ``node`` found (model id -> reason, as :func:`unavailable_here`); when the
    task itself failed there — repeval or a package it imports missing or broken on that node — that failure as the
    reason of each of ``model_ids``; ``None`` (logged) when the node went away or was too busy to answer (its
    actors check at their start)."""
    import ray

    try:
        found: dict[str, str] = ray.get(ref, timeout=PREFLIGHT_TIMEOUT_S)
    except ray.exceptions.RayTaskError as exc:
        reason = f"checking its models failed there with {first_line(exc)} — {REINSTALL_FIX}"
        return dict.fromkeys(model_ids, reason)
    except ray.exceptions.RayError as exc:
        log.warning("could not check the embedding models on node %s (%s)", node, exc)
        return None
    return found


def check_models_on_nodes(cfg: Config, mcfgs: list[Any]) -> None:
    """Raise :class:`~repeval.models.ModelUnavailable` (the reason names the fix) unless every model in ``mcfgs``
    can run on every live node its embedding actors (or decode tasks) may go to (:func:`models_on_nodes`); before
    any stream has embedded a track. Nodes the autoscaler adds later check at their actors' start."""
    found = models_on_nodes(cfg, mcfgs)
    if found.problems:
        raise ModelUnavailable("; ".join(unavailable_lines(found.problems, here=found.single)))


#: how a model's unavailability reads in the text of the Ray error that carried it from a worker (its traceback)
_UNAVAILABLE_LINE = re.compile(r"^(?:repeval\.models\.base\.)?ModelUnavailable: (embedding model .+)$", re.MULTILINE)


def unavailable_in_stream(exc: BaseException) -> ModelUnavailable | None:
    """The :class:`~repeval.models.ModelUnavailable` an embedding stream failed with (``exc``, what Ray Data raised
    from it), said for a cluster, or None: a model that cannot run on a node that was not up when the run checked
    the models (:func:`check_models_on_nodes`: a node the autoscaler added, a replacement) is found by its actors
    or decode tasks there at their first batch (:class:`repeval.pipeline.embedder.Embed`), and reaches the driver
    inside Ray's errors, as text."""
    found = next((str(c) for c in exception_chain(exc, task_causes=True) if isinstance(c, ModelUnavailable)), None)
    if found is None:
        lines = _UNAVAILABLE_LINE.findall(str(exc))
        if not lines:
            return None
        found = lines[-1].strip()
    from repeval.models.plugins import BUILD_FAILED

    if f"' {BUILD_FAILED} " in found:  # a plugin's __init__ that raised: on every node alike
        return ModelUnavailable(found)
    return ModelUnavailable(
        f"{found} — the run checks its models on the nodes up when it starts; a node that joins later (one the "
        "autoscaler adds, a replacement) is checked when its actors start: give every node type the cluster may add "
        "what the model needs (its setup commands or image, docs/cluster.md), then run it again (what was embedded "
        "is kept)"
    )
