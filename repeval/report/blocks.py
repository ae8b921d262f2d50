"""HTML pieces the report's sections share: element ids, inline figures, a table's filter controls."""

from __future__ import annotations

import html
import logging
import re
import zlib
from collections.abc import Callable, Sequence

import pandas as pd
from matplotlib.figure import Figure

from repeval.report import plots
from repeval.report.selection import ProbeChoice

log = logging.getLogger(__name__)
e = html.escape


def slug(*parts: str) -> str:
    """An element id from names: readable, and distinct for distinct names — a name with anything but lower-case
    ASCII letters, digits and ``_`` (``τέμπο`` and ``ρυθμός`` both read ``""``; ``a-b`` and ``a_b`` both ``a-b``) adds a
    hash of the names, or two sections share an id (a link, filter or sorter would reach the first one only)."""
    text = re.sub(r"[^a-zA-Z0-9]+", "-", "-".join(parts)).strip("-").lower()
    if any(re.search(r"[^a-z0-9_]", p) for p in parts):
        text += f"-{zlib.crc32(chr(31).join(parts).encode()):08x}"
    return text


def figure(make: Callable[[], Figure], caption: str) -> str:
    """Render a figure inline; a failing plot becomes a note, never a failed report."""
    try:
        fig = make()
    except ValueError as exc:
        log.info("figure skipped (%s): %s", caption, exc)
        return f'<p class="rv-note">{e(caption)}: not available ({e(str(exc))})</p>'
    uri = plots.figure_data_uri(fig, "png")
    return f'<figure><img src="{uri}" alt="{e(caption)}"><figcaption>{e(caption)}</figcaption></figure>'


def controls(table_id: str, selects: Sequence[tuple[str, int, Sequence[str]]] = ()) -> str:
    """A table's filter box, a drop-down per ``(name, column, options)`` of ``selects`` and its row count."""
    parts = [f'<div class="rv-controls"><input type="search" class="rv-filter" data-target="{table_id}" '
             f'placeholder="filter rows…" aria-label="filter rows">']  # fmt: skip
    for name, col, options in selects:
        opts = "".join(f'<option value="{e(o)}">{e(o)}</option>' for o in options)
        parts.append(
            f'<select class="rv-select" data-target="{table_id}" data-col="{col}" aria-label="{e(name)}">'
            f'<option value="">all {e(name)}s</option>{opts}</select>'
        )
    parts.append(f'<span class="rv-count" data-target="{table_id}"></span></div>')
    return "".join(parts)


def probe_choice(
    df: pd.DataFrame, task: str, dataset: str, metric: str | None, validation: pd.DataFrame | None
) -> ProbeChoice | None:
    """The figures' probe per model (:func:`~repeval.report.plots.probe_choice`), made once for a figure and its
    caption; ``None`` where there is none to make (no aggregate results of ``metric``: the figure says why)."""
    try:
        return plots.probe_choice(df, task, dataset, metric, validation)
    except ValueError:
        return None


def chosen_probes(choice: ProbeChoice | None) -> dict[str, str] | None:
    """Per model, the probe of ``choice`` (as :func:`~repeval.report.plots.best_probes` gives it); ``None``: none."""
    return choice.per_model if choice is not None else None
