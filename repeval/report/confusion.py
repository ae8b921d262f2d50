"""The report's confusion matrices: each probe's counts over all its seeds (:func:`summed_confusion`)."""

from __future__ import annotations

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
