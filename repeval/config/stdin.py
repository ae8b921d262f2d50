"""CONFIG ``-``: a command reads its configuration's YAML from standard input (``cat exp.yaml | repeval run -``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: CONFIG ``-``: the configuration's YAML read from standard input (its relative paths: from the current directory,
#: as a file's are)
STDIN = "-"


def config_name(path: str | Path) -> str:
    """What to call the configuration at ``path`` in messages: ``stdin`` for ``-`` (:data:`STDIN`), else its path."""
    return "stdin" if str(path) == STDIN else str(path)


def stdin_text() -> str:
    """The configuration's YAML from standard input; a :class:`~repeval.config.loader.ConfigError` naming the fix
    when there is none to read (a terminal: the command would wait for typing; a ``ray job submit`` job: its standard
    input is not the submitter's; nothing piped in: was "stdin: the file must be a mapping with an 'experiments:'
    list")."""
    from repeval.config.loader import ConfigError
    from repeval.ray_cluster import RAY_JOB_CONFIG_ENV

    pipe = "pipe the YAML in (`cat exp.yaml | repeval run -`) or give the file's path"
    if os.environ.get(RAY_JOB_CONFIG_ENV):
        why = "a `ray job submit` job has no standard input of its own to read it from"
        fix = "put the configuration in a file under the job's --working-dir and give its path"
    elif sys.stdin is None or sys.stdin.isatty():
        why, fix = "standard input is a terminal, not a configuration", pipe
    else:
        text = sys.stdin.read()
        if text.strip():
            return text
        why, fix = "nothing came in (a command before the pipe failed, or `< FILE` named an empty file)", pipe
    raise ConfigError([f"CONFIG - reads the configuration from standard input, but {why}: {fix}"])
