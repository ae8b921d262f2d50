"""A run's state: ``status.json`` in its run directory, which each CLI command writes as it starts, finishes, fails or
is interrupted (:func:`write_status`), and what ``repeval runs`` and the CLI read from it — the state a command
found, put back when it had nothing to do (:func:`restore_status`), the run's own command lines
(:func:`command_line`), and whether the process of a started command is gone (:func:`gone_process`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: the last command's state: ``{"command", "state": started|finished|failed|interrupted, "reason", "updated",
#: "resume", "job"}`` (:func:`write_status`)
STATUS = "status.json"

#: the options of a stage's command line that the line resuming it keeps (:func:`repeval.cli.resume.resume_command`),
#: each with the commands that take it: a line of another command on the run (:func:`command_line`) keeps those that
#: command takes. A line written once the embedding stage finished leaves ``--retry-errors`` and ``--retry-model`` out:
#: their error records were deleted and their tracks computed again, which a rerun would only repeat. An option with a
#: value is kept as one word, ``--retry-model=MODEL``
RESUMED_FLAGS: dict[str, frozenset[str]] = {
    "--strict": frozenset({"run", "embed"}),
    "--retry-errors": frozenset({"run", "embed", "deform"}),
    "--retry-model": frozenset({"run", "embed", "deform"}),
}

#: ``--retry-model``, which a resuming line keeps as ``--retry-model=MODEL``
RETRY_MODEL = "--retry-model"


def _flag(word: str) -> str:
    """The option a word of a command line gives (``--retry-model=x``: ``--retry-model``)."""
    return word.split("=", 1)[0] if word.startswith("--") else word


def for_command(command: str, words: Iterable[str]) -> list[str]:
    """``words`` (of a command line, after its command) without the :data:`RESUMED_FLAGS` ``command`` does not take."""
    return [w for w in words if _flag(w) not in RESUMED_FLAGS or command in RESUMED_FLAGS[_flag(w)]]


def recorded_flags(status: dict[str, Any]) -> list[str]:
    """The :data:`RESUMED_FLAGS` of the command line a run's ``status.json`` (``status``) records as resuming it."""
    import shlex

    resume = status.get("resume")
    try:
        words = shlex.split(resume) if isinstance(resume, str) else []
    except ValueError:
        return []
    return [w for w in words if _flag(w) in RESUMED_FLAGS]


def read_status(run_dir: Path) -> dict[str, Any]:
    """``run_dir/status.json`` (:func:`write_status`), ``{}`` when it is missing or unreadable."""
    import json

    try:
        body = json.loads((run_dir / STATUS).read_text())
    except (OSError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def restore_status(run_dir: Path, before: dict[str, Any]) -> None:
    """Put back the state :func:`read_status` read before a command (``before``); when none was recorded, remove the
    command's own ``status.json``. Never raises, like :func:`write_status`."""
    if before.get("state"):
        # the process that started it, not this one
        process: dict[str, Any] = {k: before[k] for k in ("host", "pid") if k in before}
        write_status(
            run_dir, before.get("command") or "?", before["state"], before.get("reason"), before.get("resume"), process,
            before.get("job"),
        )  # fmt: skip
        return
    try:
        (run_dir / STATUS).unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not record the run's state in %s: %s", run_dir / STATUS, exc)


def write_status(
    run_dir: Path,
    command: str,
    state: str,
    reason: str | None = None,
    resume: str | None = None,
    process: dict[str, Any] | None = None,
    job: Any = None,
) -> None:
    """Record in ``run_dir/status.json`` that ``command`` started, finished or failed (``reason``: one line).

    Written whole under a temporary name and renamed; a driver killed hard records nothing, so its run shows
    the state of what it left (``repeval runs``). A command that starts records where it runs — ``host`` and
    ``pid``, this process' unless ``process`` gives them — so ``repeval runs`` on that host tells a driver killed hard
    from one still running (:func:`gone_process`); in every state ``resume`` is the command line that carries it on,
    which names the run's configuration and options (:func:`command_line`), and ``job`` how to submit it again when
    a ``ray job submit`` job runs it (:func:`repeval.ray_cluster.job_submission`). Never raises: the command's own
    outcome is what matters."""
    import json
    import socket
    import time

    body: dict[str, Any] = {"command": command, "state": state, "reason": reason, "updated": time.time()}
    if state == "started":
        body.update({"host": socket.gethostname(), "pid": os.getpid()} if process is None else process)
    if resume:
        body["resume"] = resume
    if job and isinstance(job, dict):
        body["job"] = job
    tmp = run_dir / f".{STATUS}.tmp"
    try:
        tmp.write_text(json.dumps(body))
        tmp.replace(run_dir / STATUS)
    except OSError as exc:
        log.warning("could not record the run's state in %s: %s", run_dir / STATUS, exc)


def command_line(status: dict[str, Any], command: str) -> str | None:
    """The command line of ``command`` on a run, from its ``status.json`` (``status``, :func:`read_status`): its last
    command's ``resume`` — the configuration it was given and the options that name the run (``--run-id``,
    ``--store``, ``--runs-dir``, ``--smoke-test``) and of its :data:`RESUMED_FLAGS` those ``command`` takes — with
    ``command`` in place of that command; ``None`` when none is recorded (a run whose last command finished under a
    repeval that kept it only while a command ran)."""
    import shlex

    resume = status.get("resume")
    try:
        words = shlex.split(resume) if isinstance(resume, str) else []
    except ValueError:
        return None
    if len(words) < 3 or words[0] != "repeval":
        return None
    return shlex.join(["repeval", command, *for_command(command, words[2:])])


def gone_process(status: dict[str, Any]) -> str | None:
    """Why a run whose last command is recorded as started (``status``, :func:`read_status`) is not running: its
    process, on this host, is gone (killed hard, or its machine restarted) — with the command line that resumes it;
    ``None`` when it is running, or may be: started elsewhere (another host cannot be asked), or recorded without
    its process (an earlier repeval)."""
    import socket

    from repeval.store.lock import alive_here

    pid = status.get("pid")
    if status.get("state") != "started" or not isinstance(pid, int) or status.get("host") != socket.gethostname():
        return None
    if alive_here(status):  # another user's process counts as alive
        return None
    from repeval.ray_cluster import resume_hint

    how = resume_hint(status.get("resume"), status.get("job"))
    # a command that failed on a full disk could not record it either: said, so that the disk is checked too
    return (
        f"its process {pid} is gone (killed, the machine restarted, or it failed on a full disk, which kept it from "
        f"recording why) — {how} (finished work is kept)"
    )
