"""How the ``repeval`` commands read the paths given on their command lines — ``--store``, ``--runs-dir``, a run
directory, CONFIG, an output file or folder — as the configuration's paths are read: ``~`` expanded, an environment
variable or a Windows path on Linux or macOS refused with the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def cli_path(value: str | None) -> str | None:
    """A path given on the command line (``--store``, ``--runs-dir``) read as the configuration's paths are
    (:func:`repeval.config.base._folder_path`): a quoted ``'~/x'`` or ``'$HOME/x'`` — which the shell did not expand —
    made a folder named ``~`` or ``$HOME``."""
    from repeval.config.base import _folder_path

    if value is None:
        return None
    try:
        return _folder_path(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def cli_paths(values: list[str] | None) -> list[str] | None:
    """Paths given on the command line as a command's arguments (``repeval table|report RUN...``), each read as
    :func:`cli_path` reads ``--store`` and ``--runs-dir``: a quoted ``'~/runs/r1'`` was the folder ``./~/runs/r1``, a
    Windows path or a URI of a scheme no filesystem reads a missing folder of that name."""
    try:
        return None if values is None else [cli_path(v) or v for v in values]
    except typer.BadParameter as exc:
        exc.param_hint = "RUN"
        raise


def windows_checked(value: Any) -> Any:
    """A path given on the command line that no run reads (``--data-home``, ``--out``, ``data render``'s OUT,
    ``--dummy-weights``, ``--plugin``, ``store rm --tracks-from``): a
    Windows path (``C:\\out``, ``file:///C:/out``) refused on Linux or macOS with the fix, as the configuration's paths
    and ``--store`` are (:func:`repeval.uri_text.windows_unread`) — it was a file or folder of that name in the current
    folder; a local path read as :func:`cli_path` reads one (a quoted ``'~/report.html'`` was ``./~/report.html``)."""
    from repeval.uri_text import windows_fix, windows_unread

    if value is None:
        return value
    if windows_unread(str(value)):
        raise typer.BadParameter(windows_fix(str(value)))
    if "://" in str(value):
        return value
    read = cli_path(str(value)) or str(value)  # ~ expanded; an environment variable refused, with what it stands for
    return Path(read) if isinstance(value, Path) else read


def each_windows_checked(values: list[str] | None) -> list[str] | None:
    """Each path of a repeatable option (``--plugin``) read as :func:`windows_checked` reads one."""
    return None if values is None else [windows_checked(v) for v in values]


def config_path(ctx: typer.Context, value: str | Path) -> Path:
    """A command's CONFIG read as the other paths given on the command line are (:func:`cli_path`): a quoted
    ``'~/exp.yaml'`` was "config file not found: ~/exp.yaml", a Windows path (``C:\\exp.yaml``) on Linux or macOS
    "not found — check the path" without the fix. ``-`` reads standard input; a file named ``-`` given any other way
    (``./-``), which ``Path`` makes ``-``, is that file, by its absolute path (``ConfigArg`` gives the text as typed)."""
    from repeval.config.stdin import STDIN

    text = str(value)
    if str(Path(text)) == STDIN and text != STDIN:
        return Path(text).absolute()
    if "://" in text:
        return _config_uri(text, _subcommand(ctx))
    try:
        return Path(cli_path(text) or text)
    except typer.BadParameter as exc:
        exc.param_hint = "CONFIG"
        raise


def _subcommand(ctx: typer.Context) -> str:
    """The command ``ctx`` runs, below ``repeval`` (``data check``, ``run``)."""
    names: list[str] = []
    at: Any = ctx
    while at.parent is not None:
        names.insert(0, at.info_name or "")
        at = at.parent
    return " ".join(names) or "run"


def _config_uri(text: str, command: str) -> Path:
    """CONFIG given as a URI: a ``file://`` one is its local path; another (``s3://b/exp.yaml``) is refused with the
    fix, ``command``'s line reading standard input — a configuration is read from a local file or standard input (it
    was "s3:/b/exp.yaml: config file not found — check the path", the URI's ``//`` lost)."""
    from urllib.parse import unquote, urlsplit

    from repeval.uri_text import windows_fix, windows_unread

    if windows_unread(text):  # file:///C:/exp.yaml on Linux or macOS
        exc = typer.BadParameter(windows_fix(text))
    else:
        parts = urlsplit(text)
        if parts.scheme.lower() == "file" and parts.netloc in ("", "localhost"):
            return Path(unquote(parts.path))
        exc = typer.BadParameter(
            f"{text} is a URI, and a configuration is read from a local file or standard input: copy it to this "
            f"machine and give its path, or pipe it in (`{_piped(parts)} | repeval {command} -`); the data, "
            "store and runs directory it names may be in a bucket"
        )
    exc.param_hint = "CONFIG"
    raise exc


def _piped(parts: Any) -> str:
    """The command that writes the configuration at a URI (``parts``: its ``urlsplit``) to standard output:
    ``aws s3 cp s3://b/exp.yaml -`` (an S3-compatible server's ``--endpoint-url`` from its ``endpoint_override``),
    ``gcloud storage cat gs://b/exp.yaml``; ``cat exp.yaml`` for another scheme."""
    import shlex
    from urllib.parse import parse_qs

    scheme = parts.scheme.lower()
    where = f"{parts.netloc.rpartition('@')[2]}{parts.path}"  # without the query, nor keys given in it
    if scheme == "s3":
        bare = shlex.quote(f"s3://{where}")
        query = parse_qs(parts.query)
        host = (query.get("endpoint_override") or [""])[0]
        if host and "://" not in host:
            host = f"{(query.get('scheme') or ['https'])[0]}://{host}"
        return f"aws s3 cp {bare} -" + (f" --endpoint-url {shlex.quote(host)}" if host else "")
    if scheme in ("gs", "gcs"):
        return f"gcloud storage cat {shlex.quote(f'gs://{where}')}"
    return "cat exp.yaml"
