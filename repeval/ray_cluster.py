"""What a command attached to a Ray cluster checks, and a ``ray job submit`` job: the cluster's token
(:func:`attach_ray`), where the job's outputs go (:func:`check_job_output_paths`), the setup hook of the job's
workers (:func:`with_worker_setup_hook`), and how a job's run is carried on: by submitting it again
(:func:`job_submission`, :func:`resume_hint`)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from repeval.exc_chain import exception_chain


class RayAuthRefused(RuntimeError):
    """The Ray cluster at an address uses token authentication and refused this process' token (or its lack)."""


def attach_ray(address: str, given: str = "RAY_ADDRESS", **kwargs: Any) -> None:
    """``ray.init(address=address, **kwargs)``; a cluster that refuses this process for want of its token raises
    :class:`RayAuthRefused` naming the fix. Ray 2.60 retried for ~20 s, logging a warning a second, then raised
    "Failed to connect to Ray cluster" whose cause's first line was "Last connection error: Traceback (most recent
    call last):" — the one-line error said nothing of the token (its reason is in the text of the chain)."""
    import ray

    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError) as exc:
        if not _auth_refused(exc):
            raise
        mode = os.environ.get("RAY_AUTH_MODE")
        raise RayAuthRefused(
            f"the Ray cluster at {given}={address} uses token authentication and refused this command "
            f"(RAY_AUTH_MODE is {mode or 'unset'}{'' if mode else ', i.e. disabled'}): export RAY_AUTH_MODE=token and "
            "give it the cluster's token — in ~/.ray/auth_token, or the file RAY_AUTH_TOKEN_PATH names, or "
            "RAY_AUTH_TOKEN (docs/cluster.md, Security)"
        ) from None


def _auth_refused(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception of its chain, or the text Ray wraps one in) is a refused authentication."""
    marks = ("InvalidAuthToken", "Authentication token is missing")
    return any(
        type(cur).__name__ == "AuthenticationError" or any(mark in str(cur) for mark in marks)
        for cur in exception_chain(exc)
    )


#: where Ray passes a ``ray job submit`` driver its job's configuration (the runtime env included), as JSON
RAY_JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def job_runtime_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The runtime env of the ``ray job submit`` job this process is the driver of (``--runtime-env``,
    ``--working-dir``, as Ray passes them in :data:`RAY_JOB_CONFIG_ENV`); empty when it is none."""
    raw = (os.environ if env is None else env).get(RAY_JOB_CONFIG_ENV)
    if not raw:
        return {}
    try:
        runtime_env = json.loads(raw).get("runtime_env")
    except (ValueError, AttributeError):
        return {}
    return runtime_env if isinstance(runtime_env, dict) else {}


def job_submission(resume: str, script: str | None = None, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """How to submit again the ``ray job submit`` job this process is the driver of, to carry on its run (``{}``
    outside a job): ``{"id": its submission id, "submit": the command}`` — ``resume`` (``repeval COMMAND CONFIG
    [OPTIONS]``, the run's own command line) as the job's entrypoint, ``python jobs/COMMAND.py CONFIG [OPTIONS]``
    when it runs that script (``script``), after the ``ray job submit`` options of docs/cluster.md that the job shows
    it had: ``--working-dir . --runtime-env cluster/runtime_env.yaml`` for a job that uploaded a working directory,
    and ``RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1`` when the upload holds a folder ``.gitignore`` leaves out (data/); for
    a job whose working directory is a zip in a bucket (KubeRay's RayJob), ``--working-dir`` names that zip. A job
    whose runtime env is not that file's is given ``--runtime-env YOUR_RUNTIME_ENV.yaml``, with ``"runtime_env"``: the
    keys that differ (:func:`resume_hint` names them), or none when it had nothing but its working directory."""
    import shlex

    raw = (os.environ if env is None else env).get(RAY_JOB_CONFIG_ENV)
    if not raw:
        return {}
    try:
        metadata = json.loads(raw).get("metadata") or {}
    except (ValueError, AttributeError):
        metadata = {}
    words = shlex.split(resume)
    if script is not None and len(words) > 1 and script == f"jobs/{words[1]}.py":  # as the job ran it
        words[:2] = ["python", script]
    submit = ["ray", "job", "submit"]
    runtime_env = job_runtime_env(env)
    working_dir = runtime_env.get("working_dir")
    differs = _differs_from_shipped_runtime_env(runtime_env)
    if differs:  # the job's own runtime env file, not the repo's (`py_modules`, credentials in `env_vars`)
        env_file = ["--runtime-env", OWN_RUNTIME_ENV]
    else:  # the repo's file, or nothing (`--working-dir .` alone) to give again
        env_file = [] if differs == [] else ["--runtime-env", "cluster/runtime_env.yaml"]
    if isinstance(working_dir, str) and working_dir and not working_dir.startswith("gcs://"):
        # a zip the job's nodes downloaded (the KubeRay RayJob's s3://…/repeval.zip): that one again, not the checkout
        submit += ["--working-dir", working_dir, *env_file]
    elif working_dir:  # an upload (`--working-dir .`: Ray's gcs://_ray_pkg_<hash>.zip): from the checkout
        submit += ["--working-dir", ".", *env_file]
        if _gitignored_uploaded():
            submit.insert(0, "RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1")
    elif differs:  # no working directory, a runtime env all the same (`--runtime-env-json '{"env_vars": …}'`)
        submit += env_file
    out = {"submit": shlex.join([*submit, "--", *words])}
    if differs:
        out["runtime_env"] = ", ".join(differs)
    if isinstance(metadata, dict) and metadata.get("job_submission_id"):
        out["id"] = str(metadata["job_submission_id"])
    return out


#: what a resubmission names in place of ``cluster/runtime_env.yaml`` for a job that ran another runtime env
OWN_RUNTIME_ENV = "YOUR_RUNTIME_ENV.yaml"
#: the runtime env keys that say nothing of what a job runs with, or that Ray rewrites on upload
_UNCOMPARED = frozenset({"working_dir", "excludes", "_ray_commit"})


def _differs_from_shipped_runtime_env(runtime_env: Mapping[str, Any]) -> list[str] | None:
    """The keys (``env_vars``, ``py_modules``, ``pip``, …) in which this job's runtime env differs from the
    ``cluster/runtime_env.yaml`` it shipped (read in its working directory, normalized as ``ray job submit``
    normalizes the one it sends) — all its keys when its working directory has no such file, or it had none (a
    ``--runtime-env-json`` of ``env_vars`` alone); ``[]`` when it has none but its working directory (``--working-dir
    .`` alone), or none at all; ``None`` when they agree."""
    import yaml
    from ray.runtime_env import RuntimeEnv

    def normal(env: Mapping[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in env.items() if k not in _UNCOMPARED and k != "py_modules"}
        try:
            out = {k: v for k, v in RuntimeEnv(**kept).to_dict().items() if k not in _UNCOMPARED}
        except Exception:  # a key or value Ray does not take: compared as written
            out = dict(kept)
        if "py_modules" in env:  # local paths in the file, gcs:// URIs in the job: compared by presence
            out["py_modules"] = True
        return {k: v for k, v in out.items() if v not in ({}, [], None)}  # `--working-dir .` alone: `env_vars: {}`

    ours = normal(runtime_env)
    if not ours:
        return []
    try:
        shipped = yaml.safe_load(Path("cluster/runtime_env.yaml").read_text()) if runtime_env.get("working_dir") else {}
    except (OSError, yaml.YAMLError):  # a working directory that is not a checkout of repeval: none to compare with
        shipped = {}
    theirs = normal(shipped if isinstance(shipped, dict) else {})
    differ = sorted(k for k in {*ours, *theirs} if ours.get(k) != theirs.get(k))
    return differ or None


def resume_hint(resume: str | None, job: Any = None) -> str:
    """How to carry on a run that stopped: ``resume``, its own command line — after submitting it again for a run
    started by a ``ray job submit`` job (``job``, :func:`job_submission` as its ``status.json`` records it), which
    the command line, run from the checkout, carries on as well."""
    submit = job.get("submit") if isinstance(job, dict) else None
    if isinstance(submit, str) and submit:
        also = f", or run `{resume}` from the checkout" if resume else ""
        own = job.get("runtime_env") if OWN_RUNTIME_ENV in submit else None
        if own:
            also = (
                f" ({OWN_RUNTIME_ENV}: the runtime env file the job was submitted with — its {own} are not "
                f"cluster/runtime_env.yaml's){also}"
            )
        return f"submit the job again to resume it: `{submit}`{also}"
    return f"`{resume}` resumes it" if resume else "rerun its command to resume it"


def job_resubmit(status: Mapping[str, Any], command: str) -> str | None:
    """The ``ray job submit`` command that runs ``command`` on a run started by a job, from its ``status.json``
    (``status``): the job's own (:func:`job_submission`) with ``command`` in place of its entrypoint's — ``python
    jobs/COMMAND.py`` or ``repeval COMMAND`` —, and of the options it resumes with
    (:data:`~repeval.run.status.RESUMED_FLAGS`) those ``command`` takes; ``None`` for a run no job started (or an
    earlier repeval's)."""
    import shlex

    from repeval.run.status import for_command

    job = status.get("job")
    submit = job.get("submit") if isinstance(job, dict) else None
    try:
        words = shlex.split(submit) if isinstance(submit, str) else []
    except ValueError:
        return None
    if "--" not in words:
        return None
    at = words.index("--") + 1
    entry = words[at : at + 2]
    if entry[:1] == ["python"] and len(entry) == 2 and entry[1].startswith("jobs/"):
        words[at + 1] = f"jobs/{command}.py"
    elif entry[:1] == ["repeval"] and len(entry) == 2:
        words[at + 1] = command
    else:
        return None
    words[at + 2 :] = for_command(command, words[at + 2 :])
    return shlex.join(words)


def _gitignored_uploaded() -> bool:
    """Whether this job's working directory (Ray's copy of the upload) holds a root folder ``.gitignore`` names
    (``/data/``): it was submitted with ``RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1``, which a resubmission needs too."""
    try:
        lines = Path(".gitignore").read_text().splitlines()
    except OSError:
        return False
    return any(Path(line.strip("/")).is_dir() for line in lines if line.startswith("/") and line.strip("/"))


def job_working_dir(env: MutableMapping[str, str] | None = None) -> str | None:
    """The directory this process runs in when it is the driver of a ``ray job submit`` job whose runtime env has a
    ``working_dir`` (``--working-dir .``, ``cluster/runtime_env.yaml``): Ray's unpacked copy of the uploaded
    directory, under the head's temp dir (``.../runtime_resources/working_dir_files/_ray_pkg_<hash>``); else None."""
    if not job_runtime_env(env).get("working_dir"):
        return None
    return os.getcwd()


#: the ``runtime_env`` key of a callable that every worker process of a job runs as it starts, before its first
#: task (Ray 2.60: ``default_worker.py`` runs it after connecting, before ``main_loop``)
SETUP_HOOK = "worker_process_setup_hook"


def with_worker_setup_hook(
    address: str, runtime_env: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """``runtime_env`` for the ``ray.init`` of a driver attaching to the cluster at ``address``, with
    :func:`repeval.quiet_exit.quiet_exit_requests_in_callbacks` as the job's setup hook: every worker process of the
    job installs it as it starts — Ray Data's read and decode tasks and its internal actors, the embedding actors,
    Tune's trial actors, the model checks' tasks —, whatever code it runs later, so an exit request that Ray's
    SIGTERM raises in a collection callback of any of them never reaches the job's log as a traceback (see
    :mod:`repeval.quiet_exit`). Ray merges the job's runtime env into each task's and actor's own (their
    ``env_vars`` add to it), so the process-group actors and Tune's trial actors run it too.

    The hook travels by value (the module is a few stdlib lines): a worker runs it without importing repeval, so a
    node where repeval is missing or broken still answers the model check with that failure instead of losing
    every worker process at its start (Ray ends a worker whose setup hook raises). ``runtime_env`` is returned
    unchanged when a setup hook is named already — by it or by the job's runtime env (``ray job submit
    --runtime-env``): Ray refuses two, and the call sites keep repeval's own actors quiet — and for a Ray Client
    address (``ray://``), whose server cannot export a callable."""
    given = dict(runtime_env or {})
    if address.strip().lower().startswith("ray://") or any(_names_setup_hook(e) for e in (given, job_runtime_env(env))):
        return dict(runtime_env) if runtime_env is not None else None
    import ray.cloudpickle

    from repeval import quiet_exit

    ray.cloudpickle.register_pickle_by_value(quiet_exit)
    return {**given, SETUP_HOOK: quiet_exit.quiet_exit_requests_in_callbacks}


def check_job_output_paths(store: str, runs_dir: str, env: MutableMapping[str, str] | None = None) -> None:
    """In a ``ray job submit`` job with a working_dir (:func:`job_working_dir`), raise ``ValueError`` naming the fix
    when the store or the runs directory is a relative local path: it would be written inside Ray's temporary copy
    of the uploaded directory on the head — not where the submitter looks (``repeval runs``, ``repeval report
    runs/…``), started afresh whenever the code changes (a new copy: every embedding computed again), and lost with
    the head or Ray's package cache. A run there used to succeed, printing a results path under ``/tmp/ray``."""
    here = job_working_dir(env)
    if here is None:
        return
    flags = {"run.store": ("--store", store), "run.runs_dir": ("--runs-dir", runs_dir)}
    relative = {key: v for key, v in flags.items() if "://" not in v[1] and not os.path.isabs(v[1])}
    if not relative:
        return
    said = " and ".join(f"{key} {value!r}" for key, (_, value) in relative.items())
    bucket = " ".join(f"{flag} s3://bucket/{Path(value).name}" for flag, value in relative.values())
    local = " ".join(f'{flag} "$PWD/{Path(value).name}"' for flag, value in relative.values())
    raise ValueError(
        f"{said} {'is a relative path' if len(relative) == 1 else 'are relative paths'}, and this job runs in Ray's "
        f"temporary copy of the uploaded working directory ({here}): it would write there, on the head only, lost "
        f"with it and started afresh whenever the code changes — give the job locations every node sees and that "
        f"outlive it: a bucket ({bucket}) or absolute paths on a shared mount (on one machine: {local}, "
        "expanded where you submit), as docs/cluster.md shows"
    )


#: the variable in which Ray 2.60 passes a job's setup hook to its workers (``ray_constants``)
SETUP_HOOK_ENV = "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR"


def _names_setup_hook(runtime_env: Mapping[str, Any]) -> bool:
    env_vars = runtime_env.get("env_vars")
    return SETUP_HOOK in runtime_env or (isinstance(env_vars, Mapping) and SETUP_HOOK_ENV in env_vars)


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
) -> str | None:
    """Why no node of ``nodes`` (each node's resources, as ``ray.nodes()`` reports them) holds ``request`` whole —
    :func:`check_request_fits`'s message — or ``None`` when one does, when nothing is known of the nodes, or when
    none has a CPU on a cluster that ``may_grow`` (one scaled to zero, which only its autoscaler runs anything on)."""
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
            f"{what} each ask for {_amounts(want)}, but {cluster} has that much — the most one has: "
            f"{_amounts({k: most[k] for k in want})} — so they would wait for ever: {lower}{add}"
        )
    # every amount is on some node, but not together (12 CPUs and a GPU asked of the nodes above): what each
    # request could be lowered to on the nodes that hold the rest of it
    rest = {k: _amounts({j: v for j, v in want.items() if j != k}) for k in want}
    said = [f"the nodes with {rest[k]} have at most {_amounts({k: cap[k]})}" for k in want if cap[k] > 0]
    to = " or ".join(f"{settings.get(k, k)} to at most {cap[k]:g}" for k in want if cap[k] > 0)
    return (
        f"{what} each ask for {_amounts(want)}, but {cluster} has all of it at once — "
        f"{'; '.join(said) or 'each node lacks one of them'} — so they would wait for ever: "
        + (f"set {to}, or " if to else "")
        + add
    )


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
    what: str, gpus: float, setting: str, nodes: Sequence[Mapping[str, float]], may_grow: bool
) -> str | None:
    """Why requests of ``gpus`` GPUs each (``what`` names them; ``setting``: the key that asked for them) under ``run.resources.use_gpu: always`` would wait for
    ever: no live node (``nodes``) has a GPU and the Ray cannot grow (``may_grow`` false: the embedded Ray of this
    machine, which no autoscaler adds a GPU node to) — else ``None`` (an attached cluster may add GPU nodes)."""
    if may_grow or gpus <= 0 or not nodes or any(float(n.get("GPU", 0)) > 0 for n in nodes):
        return None
    return (
        f"run.resources.use_gpu is always, so {what} each ask for {_amounts({'GPU': float(gpus)})} ({setting}), "
        "but this machine has no GPU Ray can see (the Ray repeval started here gets no more nodes), so they would "
        "wait for ever: set run.resources.use_gpu to auto (a GPU where Ray sees one, else the CPUs), or run on a "
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
