"""What the ``repeval data check`` tests share: the command invoked in-process."""

from __future__ import annotations

from typer.testing import CliRunner

from repeval.cli import app


def invoke(*args: str):
    return CliRunner().invoke(app, ["data", "check", *map(str, args)])
