"""What a command attached to a Ray cluster checks, and a ``ray job submit`` job: the cluster's token
(:func:`attach_ray`), where the job's outputs go (:func:`check_job_output_paths`), the setup hook of the job's
workers (:func:`with_worker_setup_hook`), and how a job's run is carried on: by submitting it again
(:func:`job_submission`, :func:`resume_hint`)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping
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
