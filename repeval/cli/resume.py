"""The command line that resumes a run (``status.json``'s ``resume``, the "… resumes it" hints): the options that name
the run and where it lives, and those a stage was given that still apply (:data:`~repeval.run.status.RESUMED_FLAGS`);
and what a warning of grids not trained yet names as their fix."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def resume_command(
    command: str,
    config: Path,
    ctx: Any,
    run_id: str | None,
    store: str | None,
    smoke_test: bool,
    runs_dir: str | None,
    flags: Sequence[str] = (),
) -> str:
    """The command line that carries on ``ctx``'s run: ``command`` on the same configuration, with the options that
    name this run and where it lives — ``--run-id`` when it was given, or when the configuration sets no
    ``run.run_id`` (the same command without it would start another, timestamped run), ``--store``,
    ``--runs-dir`` and ``--smoke-test`` as given — and the options of ``flags`` (``--strict``, ``--retry-errors``:
    :data:`~repeval.run.status.RESUMED_FLAGS`) that ``command`` takes. A configuration read from standard input
    (CONFIG ``-``) is named by the copy the run keeps, its ``config.yaml`` — the YAML need not be piped in again —
    unless the run is in a bucket (``repeval run`` reads a local file)."""
    import shlex

    from repeval.config.stdin import STDIN
    from repeval.run.status import for_command

    kept = str(config) == STDIN and ctx.location is not None and not ctx.location.staged
    words = ["repeval", command, str(ctx.run_dir / "config.yaml") if kept else str(config)]
    if smoke_test:
        words.append("--smoke-test")
    if run_id:
        words += ["--run-id", run_id]
    elif not smoke_test and not ctx.cfg.run.run_id:
        words += ["--run-id", ctx.run_id]
    if store:
        words += ["--store", store]
    if runs_dir:
        words += ["--runs-dir", runs_dir]
    words += for_command(command, [f for f in flags if f not in words])
    return " ".join(shlex.quote(w) for w in words)


def given_flags(
    strict: bool = False, retry_errors: bool = False, retry_models: Sequence[str] | None = None
) -> list[str]:
    """The options of a stage's command line that the line resuming it repeats (:func:`~repeval.cli.common._stage`), as it was given
    them (``--retry-model MODEL`` as one word, ``--retry-model=MODEL``)."""
    flags = [flag for flag, given in (("--strict", strict), ("--retry-errors", retry_errors)) if given]
    return flags + [f"--retry-model={m}" for m in dict.fromkeys(retry_models or ())]


def _untrained_fix(before: dict[str, Any], command: str, line: Callable[[str], str]) -> str:
    """What the warning of grids not trained yet (``RunContext.untrained_fix``) names as their fix: the command line
    (``line(command)``) of this run that trains them — its interrupted or failed command (``before``,
    :func:`_unfinished`), which the run stays until it is finished, or else ``repeval run``."""
    if not _unfinished(before, command):
        return f"`{line('run')}` trains them"
    earlier = before.get("command") or "run"
    said = f"this run's `repeval {earlier}` was {before['state']}: the run stays unfinished until `{line(earlier)}` finishes it"
    return said + (" and trains them" if earlier in ("run", "train") else f"; then `{line('train')}` trains them")


def _unfinished(before: dict[str, Any], command: str) -> bool:
    """Whether the state a command found (``before``, :func:`repeval.run.status.read_status`) is another command's
    interruption or failure, which finishing that command ends."""
    return before.get("state") in ("interrupted", "failed") and before.get("command") != command
