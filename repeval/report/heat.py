"""The report's robustness heat map as an HTML table (:func:`robustness_html`).

Drawn with matplotlib it was a full-colour PNG of ~100 KB (a colour map cannot go to a 256-colour palette without its
colour bar banding): 1.2 MB of a two-run study's report for what is a small table of numbers. As HTML it is a few
kilobytes, its numbers text a reader can select and a test can read; the figure stays in
:func:`~repeval.report.plots.robustness_heatmap` for ``save_figure``.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable

import numpy as np

from repeval.report.cells import _higher
from repeval.report.plots import RobustnessGrid
from repeval.report.precision import column_decimals
from repeval.report.render import fmt_number

log = logging.getLogger(__name__)
e = html.escape


def robustness_html(make: Callable[[], RobustnessGrid], caption: str) -> str:
    """The grid ``make`` returns as a shaded table (blue: above clean, red: below — the other way round for an error
    metric —, as deep as the Δ is large next to the largest), captioned ``caption``; a grid that cannot be made (no
    deformed scenario) a note, as a figure that cannot be drawn is."""
    from matplotlib import colormaps, colors

    try:
        grid = make()
    except ValueError as exc:
        log.info("heat map skipped (%s): %s", caption, exc)
        return f'<p class="rv-note">{e(caption)}: not available ({e(str(exc))})</p>'
    cmap = colormaps["RdBu" if _higher(grid.metric) else "RdBu_r"]
    vmax = grid.vmax or 1.0
    digits = column_decimals(grid.values)  # the grid's Δs at one precision, as a table's column
    head = "".join(f'<th scope="col">{e(s)}</th>' for s in grid.scenarios)
    rows = []
    for i, (model, probe) in enumerate(grid.probes.items()):
        cells = []
        for j, scenario in enumerate(grid.scenarios):
            v = grid.values[i, j]
            if not np.isfinite(v):
                cells.append("<td>–</td>")
                continue
            star = "*" if (model, scenario) in grid.starred else ""
            ink = ";color:#fff" if abs(v) > 0.6 * vmax else ""
            shade = colors.to_hex(cmap(0.5 + v / (2 * vmax)))
            tip = f"{model} ({probe}), {scenario}: Δ {grid.metric} {fmt_number(v, signed=True, decimals=digits + 1)}"
            cells.append(
                f'<td style="background:{shade}{ink}" title="{e(tip)}">{fmt_number(v, signed=True, decimals=digits)}{star}</td>'
            )
        rows.append(f'<tr><th scope="row">{e(model)} ({e(probe)})</th>{"".join(cells)}</tr>')
    better, worse = ("blue", "red") if _higher(grid.metric) else ("red", "blue")
    legend = (
        f"Δ {grid.metric} (deformed − clean, mean over replicates); {better}: above clean, {worse}: below, the deeper "
        f"the closer |Δ| is to the largest, {fmt_number(grid.vmax, decimals=digits)}"
        + ("; * tracks left out of Δ: see the robustness table" if grid.starred else "")
    )
    return (
        f'<figure class="rv-heat"><table aria-label="{e(caption)}"><thead><tr><th></th>{head}</tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table><p class="rv-note">{e(legend)}</p>'
        f"<figcaption>{e(caption)}</figcaption></figure>"
    )
