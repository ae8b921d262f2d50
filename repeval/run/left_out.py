"""The embedding models a run left out — one whose stream stopped in the embedding stage (it failed to build, cannot
run on a node, or failed on each of its first tracks: :class:`~repeval.pipeline.failing.ModelFailing`), or one the
training stage found no embedded track of (each an error record) — while its other models were trained, tested and
reported: ``models_left_out.json`` in the run directory (stage → model id → why, the fix named), which the training
stage, the evaluation's warnings, the report and the CLI's exit status (:class:`ModelsLeftOut`, 3) read."""

from __future__ import annotations

import json
from pathlib import Path

from repeval.words import counted

#: the run directory's record of the models left out: ``{"embed": {model: why}, "train": {model: why}}`` (and
#: ``"deform"``: those ``repeval deform``, which embeds the deformed partitions only, left out since)
LEFT_OUT = "models_left_out.json"

#: the stages that record models left out, the embedding stage's first (its reason is the one said)
STAGES = ("embed", "deform", "train")

#: the exit status of a command that left an embedding model out (as ``--strict``'s: not everything was evaluated)
LEFT_OUT_EXIT_STATUS = 3


class ModelsLeftOut(RuntimeError):
    """A command finished with the run's other models, but left one or more embedding models out (exit status 3)."""


def read_left_out(run_dir: Path) -> dict[str, dict[str, str]]:
    """``models_left_out.json`` of ``run_dir``: stage → model id → why (``{}`` without the file, or cut short). One
    this user may not read (another user's, in a shared run directory) raises a ``PermissionError`` naming it and its
    permissions: read as none, ``repeval evaluate`` ended 0 with models left out unsaid, and the next stage's record
    replaced the file, losing the embedding stage's."""
    path = Path(run_dir) / LEFT_OUT
    try:
        body = json.loads(path.read_text())
    except PermissionError as exc:
        from repeval.run.files import may_not_read

        said = PermissionError(
            f"{path} is unreadable (permission denied): the embedding models the run left out are not known — "
            f"{may_not_read()}"
        )
        said.errno = exc.errno
        raise said from None
    except (OSError, ValueError):
        return {}
    return _stages(body)


def _stages(body: object) -> dict[str, dict[str, str]]:
    if not isinstance(body, dict):
        return {}
    return {str(k): {str(m): str(w) for m, w in v.items()} for k, v in body.items() if isinstance(v, dict)}


def left_out_models(run_dir: Path) -> dict[str, str]:
    """Every model the run left out, and why (the embedding stage's reason first)."""
    return left_out_of(read_left_out(run_dir))


def left_out_of(body: object) -> dict[str, str]:
    """Every model a ``models_left_out.json`` (its body, as read) names, and why (the embedding stage's first)."""
    out: dict[str, str] = {}
    stages = _stages(body)
    for stage in STAGES:
        for model, why in stages.get(stage, {}).items():
            out.setdefault(model, why)
    return out


def record_left_out(run_dir: Path, stage: str, models: dict[str, str]) -> None:
    """Record the models ``stage`` left out this time (replacing what it recorded before; none: the file goes when
    no stage has any). The embedding stage of every partition (``embed``) replaces what ``repeval deform`` recorded
    too; ``deform`` keeps what the embedding stage recorded (a model it left out, whose clean tracks ``repeval deform``
    does not embed, is still left out)."""
    from repeval.run.files import _write_text_atomic

    body = read_left_out(run_dir)
    if models:
        body[stage] = dict(models)
    else:
        body.pop(stage, None)
    if stage == "embed":
        body.pop("deform", None)
    path = Path(run_dir) / LEFT_OUT
    if body:
        _write_text_atomic(path, json.dumps(body, indent=1))
    else:
        path.unlink(missing_ok=True)


def left_out_error(models: dict[str, str], done: str) -> ModelsLeftOut:
    """The error a command ends with when it left ``models`` out (model id → why): its first line names them (what
    ``status.json`` keeps), then each reason with its fix; ``done``: what the command did with the others."""
    names = ", ".join(f"'{m}'" for m in models)
    head = f"{counted(len(models), 'embedding model')} left out ({names}), {done}; the run is incomplete:"
    return ModelsLeftOut("\n".join([head, *(f"  {why}" for why in models.values())]))
