"""Render a :class:`~repeval.report.cells.Table` as terminal text, Markdown, CSV, LaTeX or HTML."""

from __future__ import annotations

import csv
import html
import io
import math
import sys
from collections.abc import Collection
from dataclasses import replace
from typing import Any

from repeval.report.cells import Table, _higher, canonical_format, fewer_replicates
from repeval.report.precision import column_decimals, column_scales, scale_note, table_decimals
from repeval.words import counted


def ci_tip(level: str = "95%", shared: bool = False, folds: bool = False) -> str:
    """What a cell's interval is (:func:`repeval.tuning.results.mean_intervals`); ``level``: the runs' interval level
    (:func:`repeval.report.results.ci_level`); ``folds``: the rows have folds (k-fold datasets), whose intervals are
    combined, said only then; ``shared``: those folds share test tracks (``fold_overlap`` above 0)."""
    if not (folds or shared):
        return f"{level} bootstrap CI of the mean (seeds averaged)"
    combined = "folds combined as sharing test tracks" if shared else "folds combined"
    return f"{level} bootstrap CI of the mean (seeds averaged, {combined})"


def table_has_folds(t: Table) -> bool:
    """Whether a cell of ``t`` is over more than one fold (a k-fold dataset's)."""
    return bool(t.n_folds.size) and int(t.n_folds.max()) > 1


#: the tooltip of a cell without a value ('–'), which said "n=0 replicates (0 seeds)"
NO_SCORE = (
    "no value: not scored for this row — a metric of another task, a scenario its run did not test, or every "
    "replicate failed (failed.parquet says why) — or undefined on its test tracks in every replicate (an R² of a "
    "target constant there, a ROC-AUC of a test set of one class)"
)


#: an HTML cell's ``mean ± std``: a printed table's cell wraps to fit the page, after the mean but never after the ±
#: ("0.939 / ± / 0.047" on three lines)
PM_KEPT = " ±\u00a0"


def replicates_tip(n: int, n_seeds: int, n_folds: int) -> str:
    """What a cell's mean is over, for its tooltip: ``n=6 replicates (3 seeds × 2 folds)``, ``n=2 replicates (2
    seeds)`` — ``n`` the replicates whose value entered the mean, as in a cell's ``(n=…)``."""
    folds = f" × {n_folds} folds" if n_folds > 1 else ""
    return f"n={counted(n, 'replicate')} ({counted(n_seeds, 'seed')}{folds})"


#: a value smaller than this is zero, written ``0.000``: floating-point noise (``0.1 + 0.2 - 0.3``), not a value
NOISE = 1e-12


def fmt_number(x: float, *, scale: float = 1.0, decimals: int | None = None, signed: bool = False) -> str:
    """A value for display with ``decimals`` (None: as a column of it alone would show it, :func:`repeval.report.
    precision.column_decimals`); ``–`` for a missing one; a true minus sign for negatives, and with ``signed`` (a
    difference) a plus sign for positives. Zero (or floating-point noise about it, :data:`NOISE`) is ``0.000``, never
    ``−0.000`` or ``+0.000``; any other value that would read zero at ``decimals`` is said with two significant
    digits, not as zero: ``0.00040`` beside ``0.9``, ``0.20`` beside ``1234``, in scientific notation below 1e-4
    (``1e-5`` beside ``0.9``, a column of values below ``5e-7``: ``1.0e−05``)."""
    if x is None or not math.isfinite(x):
        return "–"
    if decimals is None:
        decimals = column_decimals([x], scale=scale)
    value = x * scale
    text = f"{value:z.{decimals}f}"  # ``z``: a negative value rounded to zero loses its sign
    if float(text) == 0 and abs(value) >= NOISE:  # its first two digits: 0.40 in a column of 1234, 1.0e-05 of 0.9
        text = f"{value:#.2g}"
    if signed and value >= NOISE and not text.startswith("-"):
        text = "+" + text
    return text.replace("-", "−")


def cell_text(t: Table, i: int, j: int, *, scale: float = 1.0, decimals: int = 3, pm: str = " ± ") -> str:
    """``mean ± std`` over the replicates, seeds × folds (just the mean with one), both with ``decimals`` (the
    column's: :func:`repeval.report.precision.table_decimals`)."""
    mean = fmt_number(t.mean[i, j], scale=scale, decimals=decimals, signed=t.delta[j])
    if t.n[i, j] > 1 and math.isfinite(t.std[i, j]):
        mean = f"{mean}{pm}{fmt_number(t.std[i, j], scale=scale, decimals=decimals)}"
    if fewer_replicates(t)[i, j]:  # a failed training: over other test tracks than the other cells
        mean += f" (n={int(t.n[i, j])})"
    return mean


def _headers(t: Table) -> list[str]:
    return [f"{m} {s}".strip() for m, s in t.columns]


def _metric_spans(t: Table) -> list[tuple[str, int]]:
    spans: list[tuple[str, int]] = []
    for m, _ in t.columns:
        if spans and spans[-1][0] == m:
            spans[-1] = (m, spans[-1][1] + 1)
        else:
            spans.append((m, 1))
    return spans


def _with_bold_note(t: Table, caption: str) -> str:
    """``caption`` with what bold means, for the formats that mark the best value of a column in bold."""
    return "; ".join([p for p in (caption, f"bold: {t.best_legend}" if t.best.any() else "") if p])


def render_markdown(t: Table, *, scale: float = 1.0, decimals: int | None = None) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    caption = _with_bold_note(t, t.full_caption)
    lines = [f"**{esc(t.title)}**" + (f" — {esc(caption)}" if caption else ""), ""]
    lines.append("| " + " | ".join(esc(h) for h in t.row_names + _headers(t)) + " |")
    lines.append("|" + "---|" * len(t.row_names) + "---:|" * len(t.columns))
    digits, factors = table_decimals(t, scale=scale, decimals=decimals), column_scales(t, scale)
    for i, row in enumerate(t.rows):
        cells = [cell_text(t, i, j, scale=factors[j], decimals=digits[j]) for j in range(len(t.columns))]
        cells = [f"**{c}**" if t.best[i, j] else c for j, c in enumerate(cells)]
        lines.append("| " + " | ".join([esc(r) for r in row] + cells) + " |")
    return "\n".join(lines) + "\n"


def render_csv(t: Table, *, with_group: bool = False, scale: float = 1.0) -> str:
    """Every cell's statistics at full precision, a score's mean, std and interval multiplied by ``scale`` (``--scale
    100``: percentages, as in the other formats; the counts and an error's values are not scaled: :func:`repeval.
    report.precision.column_scales`)."""
    factors = column_scales(t, scale)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    # the group's task and dataset lead each row, unless the table's rows name them already (the ``tasks`` preset:
    # a row per task): one column per name, or a CSV reader keeps only one of the two
    group = {"task": t.task, "dataset": t.dataset}
    lead = [c for c in group if c not in t.row_names] if with_group else []
    header = list(lead) + list(t.row_names)
    for m, s in t.columns:
        key = f"{m}:{s}" if s else m
        # ``:n`` the replicates the mean is over (seeds × folds); ``:n_seeds`` / ``:n_folds`` of those
        header += [key, f"{key}:std", f"{key}:n", f"{key}:n_seeds", f"{key}:n_folds", f"{key}:ci_low", f"{key}:ci_high"]
    w.writerow(header)
    for i, row in enumerate(t.rows):
        out: list[object] = [*(group[c] for c in lead), *row]
        for j in range(len(t.columns)):
            out += [
                _num(t.mean[i, j] * factors[j]),
                _num(t.std[i, j] * factors[j]),
                int(t.n[i, j]),
                int(t.n_seeds[i, j]),
                int(t.n_folds[i, j]),
                _num(t.ci_low[i, j] * factors[j]),
                _num(t.ci_high[i, j] * factors[j]),
            ]
        w.writerow(out)
    return buf.getvalue()


def _num(x: float) -> str:
    return "" if not math.isfinite(x) else repr(float(x))


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "Δ": r"$\Delta$",
    "±": r"$\pm$",
    "×": r"$\times$",
    "ρ": r"$\rho$",
    "…": r"\ldots{}",
    "—": "---",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def render_latex(t: Table, *, scale: float = 1.0, decimals: int | None = None) -> str:
    digits, factors = table_decimals(t, scale=scale, decimals=decimals), column_scales(t, scale)
    n_rows = len(t.row_names)
    spec = "l" * n_rows + "".join(" " + "r" * k for _, k in _metric_spans(t))
    out = [r"\begin{table}[t]", r"\centering", r"\small"]
    cap = t.title + (f" ({_with_bold_note(t, t.full_caption)})" if t.full_caption or t.best.any() else "")
    out.append(r"\caption{" + latex_escape(cap) + "}")
    out.append(r"\begin{tabular}{" + spec + "}")
    out.append(r"\toprule")
    subs = [s for _, s in t.columns]
    if any(subs):
        head = [""] * n_rows
        rules = []
        col = n_rows + 1
        for m, k in _metric_spans(t):
            head.append(r"\multicolumn{" + str(k) + "}{c}{" + latex_escape(m) + "}")
            rules.append(r"\cmidrule(lr){" + f"{col}-{col + k - 1}" + "}")
            col += k
        out.append(" & ".join(head) + r" \\")
        out.append("".join(rules))
        out.append(" & ".join([latex_escape(r) for r in t.row_names] + [latex_escape(s) for s in subs]) + r" \\")
    else:
        out.append(" & ".join(latex_escape(h) for h in t.row_names + [m for m, _ in t.columns]) + r" \\")
    out.append(r"\midrule")
    prev: tuple[str, ...] | None = None
    for i, row in enumerate(t.rows):
        # thesis style: print a leading key only where it changes
        shown = [
            "" if prev is not None and k < n_rows - 1 and row[: k + 1] == prev[: k + 1] else latex_escape(v)
            for k, v in enumerate(row)
        ]
        cells = []
        for j in range(len(t.columns)):
            c = latex_escape(cell_text(t, i, j, scale=factors[j], decimals=digits[j], pm=" ± "))
            c = c.replace("−", "$-$")  # a minus sign, not the hyphen a bare ``-`` sets in text mode
            cells.append(r"\textbf{" + c + "}" if t.best[i, j] else c)
        out.append(" & ".join(shown + cells) + r" \\")
        prev = row
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


def sort_direction(metric: str) -> str:
    """The attribute that makes the report's first click on a column of ``metric`` sort it best first:
    ``data-better="lower"`` for a metric whose lower values are better (an error, or its change from clean), else
    nothing (numbers sort descending)."""
    return "" if _higher(metric) else ' data-better="lower"'


def render_html(
    t: Table,
    *,
    scale: float = 1.0,
    decimals: int | None = None,
    table_id: str = "",
    ci_level: str = "95%",
    described_by: str = "",
    marked: Collection[tuple[str, ...]] = (),
    mark_title: str = "",
) -> str:
    """A ``<table class="rv-table">`` with ``data-value`` on every cell for the report's sorter; a cell's tooltip
    gives its ``ci_level`` bootstrap interval. ``described_by``: the id of an element outside the table that holds
    its caption's account (the report's, as wide as the page where a ``<caption>`` wraps at the table's width): the
    ``<caption>`` then holds the title alone, and the cells' tooltips ``95% CI [lo, hi]``, the account saying what
    that interval is. ``marked``: rows whose last key cell (the probe) is marked
    ``rv-chosen``, with ``mark_title`` as its tooltip (the report: each model's probe the headline stands with)."""
    e = html.escape
    ident = f' id="{e(table_id)}"' if table_id else ""
    ident += f' aria-describedby="{e(described_by)}"' if described_by else ""
    parts = [f'<table class="rv-table sortable"{ident}>']
    about = t.full_caption if not described_by else ""
    cap = e(t.title) + (f' <span class="rv-caption">{e(about)}</span>' if about else "")
    parts.append(f"<caption>{cap}</caption>")
    parts.append("<thead>")
    subs = [s for _, s in t.columns]
    if any(subs):
        parts.append("<tr>" + "".join('<th class="rv-group"></th>' for _ in t.row_names))
        parts += [f'<th class="rv-group" colspan="{k}">{e(m)}</th>' for m, k in _metric_spans(t)]
        parts.append("</tr>")
        labels = list(t.row_names) + subs
    else:
        labels = list(t.row_names) + [m for m, _ in t.columns]
    parts.append("<tr>")
    for k, lab in enumerate(labels):
        kind = "text" if k < len(t.row_names) else "num"
        better = sort_direction(t.columns[k - len(t.row_names)][0]) if kind == "num" else ""
        tip = "click to sort, best first" if kind == "num" else "click to sort"
        parts.append(f'<th data-col="{k}" data-kind="{kind}"{better} title="{tip}">{e(lab)}</th>')
    parts.append("</tr></thead><tbody>")
    digits, factors = table_decimals(t, scale=scale, decimals=decimals), column_scales(t, scale)
    for i, row in enumerate(t.rows):
        keys = [f'<td data-value="{e(v)}">{e(v)}</td>' for v in row]
        if row in marked:
            keys[-1] = f'<td class="rv-chosen" data-value="{e(row[-1])}" title="{e(mark_title)}">{e(row[-1])}</td>'
        parts.append("<tr>" + "".join(keys))
        for j in range(len(t.columns)):
            mean = t.mean[i, j]
            value = f"{mean:.7g}" if math.isfinite(mean) else ""  # the sort key: 17 digits were a tenth of the bytes
            tip = replicates_tip(int(t.n[i, j]), int(t.n_seeds[i, j]), int(t.n_folds[i, j])) if t.n[i, j] else NO_SCORE
            if math.isfinite(t.ci_low[i, j]) and math.isfinite(t.ci_high[i, j]):
                lo = fmt_number(t.ci_low[i, j], scale=factors[j], decimals=digits[j])
                hi = fmt_number(t.ci_high[i, j], scale=factors[j], decimals=digits[j])
                # described elsewhere (the report's account above the table): the interval's definition is said there
                tip += f"; {ci_level + ' CI' if described_by else ci_tip(ci_level, t.fold_overlap > 0, table_has_folds(t))} [{lo}, {hi}]"
            elif t.n[i, j] and not t.delta[j] and t.columns[j][0] in t.no_interval:  # said why, not silent
                tip += f"; {t.no_interval[t.columns[j][0]]}"
            cls = ' class="num best"' if t.best[i, j] else ' class="num"'
            text = e(cell_text(t, i, j, scale=factors[j], decimals=digits[j], pm=PM_KEPT))
            parts.append(f'<td{cls} data-value="{value}" title="{e(tip)}">{text}</td>')
        parts.append("</tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts) + "\n"


def render_terminal(
    t: Table, *, color: bool | None = None, scale: float = 1.0, decimals: int | None = None, width: int | None = None
) -> str:
    """A box-drawn table via rich; bold best values on a colour terminal, ``*`` otherwise. ``width``: the terminal's
    width in characters, which a wider table is split to fit — its columns in blocks, each leading with the row keys,
    a metric's columns kept together where they fit (None: one table as wide as its columns need)."""
    from rich.console import Console

    if color is None:
        color = sys.stdout.isatty()
    best = "" if not t.best.any() else f"bold green: {t.best_legend}" if color else f"* {t.best_legend}"
    caption = "; ".join([c for c in (t.full_caption, best) if c])
    texts = []
    digits, factors = table_decimals(t, scale=scale, decimals=decimals), column_scales(t, scale)
    for i in range(len(t.rows)):
        row = []
        for j in range(len(t.columns)):
            c = cell_text(t, i, j, scale=factors[j], decimals=digits[j])
            row.append((f"[bold green]{c}[/]" if color else f"{c}*") if t.best[i, j] else c)
        texts.append(row)
    blocks = _column_blocks(t, texts, width) if width else [list(range(len(t.columns)))]
    buf = io.StringIO()
    need = 24 * len(t.row_names) + 22 * len(t.columns) + 10
    console = Console(
        file=buf,
        width=max(80, need) if not width else max(width, max(_block_width(t, texts, b) for b in blocks)),
        force_terminal=color,
        color_system="standard" if color else None,
        highlight=False,
    )
    for k, cols in enumerate(blocks):
        title = t.title if len(blocks) == 1 else f"{t.title} ({k + 1}/{len(blocks)})"
        console.print(_rich_table(t, texts, cols, title, caption if k == len(blocks) - 1 else None))
    return buf.getvalue()


def _rich_table(t: Table, texts: list[list[str]], cols: list[int], title: str, caption: str | None) -> Any:
    """The rich table of the row keys and ``cols`` of ``t`` (``texts``: every cell's marked-up text)."""
    from rich.table import Table as RichTable

    rt = RichTable(title=title, caption=caption)
    for name in t.row_names:
        rt.add_column(name, no_wrap=True)
    for j in cols:
        m, s = t.columns[j]
        rt.add_column(f"{m}\n{s}" if s else m, justify="right", no_wrap=True)
    for i, row in enumerate(t.rows):
        rt.add_row(*[html.escape(r, quote=False).replace("[", r"\[") for r in row], *(texts[i][j] for j in cols))
    return rt


#: what rich's box adds to a column's text: a space either side and the border before it (one more closes the row)
_COLUMN_EDGES = 3


def terminal_width() -> int | None:
    """The width of the terminal standard output is, in characters; None when it is a file or a pipe (their tables
    are as wide as their columns need)."""
    import shutil

    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def _text_width(text: str, markup: bool = False) -> int:
    from rich.cells import cell_len
    from rich.markup import render as render_markup

    return max(cell_len(render_markup(line).plain if markup else line) for line in text.split("\n"))


def _column_width(t: Table, texts: list[list[str]], j: int) -> int:
    m, s = t.columns[j]
    return max([_text_width(m), _text_width(s)] + [_text_width(r[j], markup=True) for r in texts]) + _COLUMN_EDGES


def _key_width(t: Table) -> int:
    return sum(max([len(name)] + [len(r[k]) for r in t.rows]) + _COLUMN_EDGES for k, name in enumerate(t.row_names)) + 1


def _block_width(t: Table, texts: list[list[str]], cols: list[int]) -> int:
    return _key_width(t) + sum(_column_width(t, texts, j) for j in cols)


def _column_blocks(t: Table, texts: list[list[str]], width: int) -> list[list[int]]:
    """``t``'s columns in blocks whose table, with the row keys, fits ``width`` characters: a metric's columns
    together where they fit in one block, a column alone where even that is wider."""
    room = width - _key_width(t)
    widths = [_column_width(t, texts, j) for j in range(len(t.columns))]
    if sum(widths) <= room:
        return [list(range(len(t.columns)))]
    spans: list[list[int]] = []
    for j, (m, _) in enumerate(t.columns):
        if spans and t.columns[spans[-1][0]][0] == m:
            spans[-1].append(j)
        else:
            spans.append([j])
    blocks: list[list[int]] = [[]]
    for span in spans:
        used = sum(widths[j] for j in blocks[-1])
        if used + sum(widths[j] for j in span) <= room:
            blocks[-1] += span
            continue
        if blocks[-1] and sum(widths[j] for j in span) <= room:
            blocks.append(list(span))  # the metric whole in a block of its own
            continue
        for j in span:  # wider than a block: column by column
            if blocks[-1] and sum(widths[c] for c in blocks[-1]) + widths[j] > room:
                blocks.append([])
            blocks[-1].append(j)
    return [b for b in blocks if b]


def render(
    t: Table,
    fmt: str,
    *,
    color: bool | None = None,
    scale: float = 1.0,
    decimals: int | None = None,
    with_group: bool = False,
    ci_level: str = "95%",
    width: int | None = None,
) -> str:
    """Render ``t`` as ``terminal``, ``plain``, ``markdown``, ``csv``, ``latex`` or ``html`` (whose tooltips give
    each cell's ``ci_level`` bootstrap interval); ``width``: a terminal's width the ``terminal`` and ``plain`` formats
    fit (:func:`render_terminal`); ``decimals``: the digits after the point of every column (None: each column's
    from its values, :func:`repeval.report.precision.column_decimals`); ``scale``: what scores are multiplied by, said
    in the caption (:func:`repeval.report.precision.scale_note`)."""
    fmt = canonical_format(fmt)
    if note := scale_note(t, scale):
        t = replace(t, caption=f"{note}; {t.caption}" if t.caption else note)
    if fmt == "terminal":
        return render_terminal(t, color=color, scale=scale, decimals=decimals, width=width)
    if fmt == "plain":
        return render_terminal(t, color=False, scale=scale, decimals=decimals, width=width)
    if fmt == "markdown":
        return render_markdown(t, scale=scale, decimals=decimals)
    if fmt == "csv":
        return render_csv(t, with_group=with_group, scale=scale)
    if fmt == "latex":
        return render_latex(t, scale=scale, decimals=decimals)
    return render_html(t, scale=scale, decimals=decimals, ci_level=ci_level)
