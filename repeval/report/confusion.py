"""The report's confusion matrices: read from a run's ``confusion/`` (:func:`load_confusion`), each probe's counts over
all its seeds (:func:`summed_confusion`), drawn as HTML tables (:func:`confusion_html`)."""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from repeval.metrics.confusion import read_confusion
from repeval.report.results import ConfusionKey, Run
from repeval.report.run_files import RETRAIN_FIX, listed, say_unread, unread_files

log = logging.getLogger("repeval.report.results")  # the warnings of the run files it reads beside

Grid = tuple[str, str, str, int | None]


def load_confusion(
    run_dir: Path, grids: set[Grid], notes: list[str] | None = None
) -> dict[ConfusionKey, tuple[list[str], np.ndarray]]:
    """The confusion matrices under ``run_dir/confusion`` of the (task, dataset, model, fold) ``grids`` the results
    hold, a k-fold run's pooled over its folds. A file not read — cut short, another user's, or the folder itself
    — is left out, said in ``notes`` (:attr:`Run.unread`) with the fix: one line per folder."""
    confusion: dict[ConfusionKey, tuple[list[str], np.ndarray]] = {}
    failures: list[tuple[Path, BaseException]] = []
    for path in listed(run_dir / "confusion", ".json", "the run's confusion matrices are left out", notes):
        key = ConfusionKey.from_filename(path.name)
        if key is None:
            log.warning("skipping %s: not named <task>__<dataset>__<model>__<probe>__<seed>__<scenario>.json", path)
            continue
        parts = path.stem.split("__")
        fold = int(parts[6][4:]) if len(parts) == 7 else None  # from_filename checked it
        if (key.task, key.dataset, key.model, fold) not in grids:
            continue  # a grid the results do not hold
        try:
            labels, matrix = read_confusion(path)
        except (OSError, json.JSONDecodeError) as exc:  # cut short, another user's
            failures.append((path, exc))
            continue
        except ValueError as exc:  # not a confusion record (it names the file)
            say_unread(notes, f"confusion matrix left out: {exc}")
            continue
        if key in confusion:  # another fold: pool the counts
            have_labels, have = confusion[key]
            if have_labels != labels or have.shape != matrix.shape:
                log.warning("skipping %s: its labels differ from the other folds'", path)
                continue
            matrix = have + matrix
        confusion[key] = (labels, matrix)
    if failures:
        say_unread(notes, unread_files(failures, "left out of the report's confusion matrices", RETRAIN_FIX))
    return confusion


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
