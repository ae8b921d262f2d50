"""The report's confusion matrices: each probe's counts over all its seeds (:func:`summed_confusion`), drawn as HTML
tables (:func:`confusion_html`)."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

from repeval.report.results import Run


def summed_confusion(
    run: Run, task: str, dataset: str, model: str, probe: str
) -> dict[str, tuple[list[str], np.ndarray, list[int]]]:
    """Per scenario, ``model``'s ``probe`` confusion matrix summed over its seeds (each seed's predictions on the same
    test tracks; a k-fold run's already pooled over folds): its labels, the summed counts and the seeds summed, in
    seed order. A label one seed's matrix lacks counts zero there."""
    out: dict[str, tuple[list[str], np.ndarray, list[int]]] = {}
    mine = [k for k in run.confusion if (k.task, k.dataset, k.model, k.probe) == (task, dataset, model, probe)]
    for key in sorted(mine, key=lambda k: k.seed):
        labels, matrix = run.confusion[key]
        if key.scenario not in out:
            out[key.scenario] = (list(labels), np.asarray(matrix).copy(), [key.seed])
            continue
        have_labels, have, seeds = out[key.scenario]
        union = list(dict.fromkeys([*have_labels, *labels]))
        out[key.scenario] = (union, _on(have, have_labels, union) + _on(matrix, labels, union), [*seeds, key.seed])
    return out


def _on(matrix: np.ndarray, labels: Sequence[str], union: list[str]) -> np.ndarray:
    """``matrix`` (rows and columns ``labels``) laid on the rows and columns ``union``, zeros where it has none."""
    if list(labels) == union:
        return np.asarray(matrix)
    where = [union.index(lab) for lab in labels]
    out = np.zeros((len(union), len(union)), dtype=np.asarray(matrix).dtype)
    out[np.ix_(where, where)] = matrix
    return out


#: the largest matrix whose cells print their fraction (a larger one is colour only, each count in its tooltip)
MAX_WRITTEN = 25


def confusion_html(labels: Sequence[str], matrix: np.ndarray, title: str) -> str:
    """A confusion matrix (rows: reference, columns: prediction) as an HTML table, row-normalised: each cell shaded
    by its fraction of the reference class (matplotlib's ``Blues``, as the figure has it) and, up to
    :data:`MAX_WRITTEN` labels, showing it — blank where no track fell, ``<0.01`` under half a percent —, its count in
    the tooltip, each row's tracks in a last column; captioned ``confusion matrix: <title>``. A few kilobytes where a
    PNG of it took ~95 (22 of them were 2.1 MB of a two-run study's report, and a third of its rendering time)."""
    from matplotlib import colormaps, colors

    e = html.escape
    counts = np.asarray(matrix)
    sums = counts.sum(axis=1)
    shown = np.divide(counts, sums[:, None], out=np.zeros(counts.shape), where=sums[:, None] > 0)
    blues = colormaps["Blues"]
    written = len(labels) <= MAX_WRITTEN
    head = "".join(f'<th scope="col"><span>{e(lab)}</span></th>' for lab in labels)
    rows = []
    for i, ref in enumerate(labels):
        cells = []
        for j, pred in enumerate(labels):
            if counts[i, j] == 0:
                cells.append("<td></td>")
                continue
            text = f"{shown[i, j]:.2f}" if written else ""
            text = "&lt;0.01" if text == "0.00" else text  # a few tracks, not none
            ink = ";color:#fff" if shown[i, j] > 0.6 else ""
            tip = f"{ref} → {pred}: {int(counts[i, j])} of {int(sums[i])}"
            cells.append(
                f'<td style="background:{colors.to_hex(blues(shown[i, j]))}{ink}" title="{e(tip)}">{text}</td>'
            )
        rows.append(f'<tr><th scope="row">{e(ref)}</th>{"".join(cells)}<td class="rv-cm-n">{int(sums[i])}</td></tr>')
    return (
        f'<figure class="rv-cm"><table aria-label="{e("confusion matrix: " + title)}"><thead><tr>'
        f'<th class="rv-cm-axis">reference ↓ predicted →</th>{head}<th class="rv-cm-n" scope="col"><span>tracks</span>'
        f"</th></tr></thead><tbody>{''.join(rows)}</tbody></table><figcaption>{e('confusion matrix: ' + title)}"
        "</figcaption></figure>"
    )
