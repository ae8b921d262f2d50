"""A run directory's files the report reads besides its results, read tolerantly: ``config.yaml`` — the one the
results' evaluation recorded when it was rewritten since, or cut short — and Parquet files whose loss leaves part of
the report out (a history, ``failed.parquet``), named in a warning when unreadable."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from repeval.run.files import damaged, parquet_error

log = logging.getLogger("repeval.report.results")  # the warnings of the results it reads beside


def results_config(run_dir: Path) -> str:
    """``run_dir``'s ``config.yaml``, with the experiments its results are of: those their evaluation recorded in
    ``results.parquet`` (:data:`repeval.rundir.CONFIG_KEY`) when a later command that stopped before evaluating, with
    another configuration (refused for a store conflict, say), has rewritten them — said in a warning. Its ``run``
    section stays ``config.yaml``'s: where the store is (edited by hand after moving it, say)."""
    from repeval.rundir import CONFIG_KEY

    config_path = run_dir / "config.yaml"
    denied: PermissionError | None = None
    try:
        text = config_path.read_text(errors="replace") if config_path.is_file() else ""
    except PermissionError as exc:  # another user's file: its content may be whole, its permissions are the fix
        text, denied = "", exc
    try:
        recorded = (pq.read_schema(run_dir / "results.parquet").metadata or {}).get(CONFIG_KEY)
        then = yaml.safe_load(recorded.decode()) if recorded is not None else None
    except (OSError, pa.ArrowInvalid, yaml.YAMLError, UnicodeDecodeError):
        then = None
        if denied is None:
            return text if yaml_reads(text) else ""
    if denied is not None or not yaml_reads(text):  # the configuration the evaluation recorded stands in for it
        why, fix = (
            ("permission denied", damaged(denied, "")) if denied is not None
            else ("cut short or corrupted", "`repeval run` on the run writes it anew")
        )  # fmt: skip
        log.warning(
            "%s is unreadable (%s); the report uses %s; %s", config_path, why,
            "the configuration results.parquet recorded" if isinstance(then, dict) else "no configuration", fix,
        )  # fmt: skip
        return yaml.safe_dump(then, sort_keys=False) if isinstance(then, dict) else ""
    now = yaml.safe_load(text) if text else {}
    if not isinstance(then, dict) or not isinstance(now, dict) or then.get("experiments") == now.get("experiments"):
        return text
    log.warning(
        "%s: config.yaml was rewritten by a later command that did not evaluate (see `repeval runs`); the results are "
        "of the experiments their evaluation recorded, which the report shows",
        run_dir,
    )
    return yaml.safe_dump({**now, "experiments": then.get("experiments")}, sort_keys=False)


def yaml_reads(text: str) -> bool:
    """Whether ``text`` parses as YAML (an empty text does)."""
    try:
        yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return True


def read_parquet_or_warn(path: Path, what: str) -> pd.DataFrame | None:
    """The Parquet file at ``path``; ``None``, with a warning saying ``what`` the report leaves out, when it is
    unreadable (cut short or corrupted)."""
    try:
        return pd.read_parquet(path)
    except (OSError, pa.ArrowInvalid) as exc:
        log.warning("%s is unreadable (%s): %s", path, parquet_error(exc), damaged(exc, what))
        return None
