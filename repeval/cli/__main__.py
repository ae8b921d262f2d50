"""``python -m repeval.cli``: the ``repeval`` command."""

from repeval.cli import entrypoint

entrypoint()
