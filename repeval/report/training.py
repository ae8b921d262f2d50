"""How a task's probes were trained, from the runs' ``config.yaml``: the notes under a report section's heading.

:func:`task_notes` (beside the task type in the heading): prediction-level aggregation or attention pooling, and
augmentation. :func:`preset_notes` (a line each under it): the published probe protocols the probes follow, in the
words ``repeval plan`` uses for them (:func:`repeval.tuning.presets.entry_words`) — what was trained after the keys set
next to the preset, its source, and where it departs from the source.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from repeval.report.comparable import set_label
from repeval.report.results import Run
from repeval.tasks import given_task_type
from repeval.tuning.presets import entry_words


def _experiments(run: Run, task: str) -> Iterator[dict[str, Any]]:
    """The experiments of ``run``'s configuration that train ``task`` (read leniently)."""
    for exp in run.config.get("experiments") or []:
        t = exp.get("task") if isinstance(exp, dict) else None
        if isinstance(t, dict) and t.get("name") == task:
            yield exp


def _aggregation(task: dict[str, Any]) -> str:
    """A task's ``embedding_aggregation`` as its config writes it (mir_ref's spelling ``aggregation`` too): ``mean``,
    ``prediction`` or ``attention``."""
    written = task.get("embedding_aggregation") or task.get("aggregation") or "mean"
    return "mean" if written == "embedding_mean" else str(written)


def task_notes(runs: list[Run], task: str) -> list[str]:
    """How ``task``'s probes were trained, from the runs' configs: prediction-level aggregation or attention pooling
    (mir_ref's spelling ``aggregation`` too), and augmentation."""
    notes: list[str] = []
    for run in runs:
        for exp in _experiments(run, task):
            aggregation = _aggregation(exp["task"])
            if aggregation == "prediction":
                notes.append("probes trained on frames, each track scored by its frames' mean prediction")
            elif aggregation == "attention":
                notes.append("probes pool each track's frames with learned attention weights")
            augment = exp.get("augment")
            if augment:
                names = augment if isinstance(augment, str) else ", ".join(map(str, augment))
                notes.append(f"training tracks augmented with their deformed copies ({names})")
    return list(dict.fromkeys(notes))


def preset_notes(runs: list[Run], task: str) -> list[str]:
    """The probe presets ``task``'s probes follow, each as ``repeval plan`` says it (after the keys set next to it:
    :func:`~repeval.tuning.presets.entry_words`); over several runs, each led by the runs that use it so unless all
    do (``r1: probe hear-lr, preset hear: …``)."""
    said: dict[str, list[str]] = {}
    for run in runs:
        settings = run.config.get("run")
        cap = settings.get("max_epochs") if isinstance(settings, dict) else None  # what its probes trained at most
        cap = cap if isinstance(cap, int) else None
        for exp in _experiments(run, task):
            ttype, aggregation = given_task_type(exp["task"]), _aggregation(exp["task"])
            for i, probe in enumerate(exp.get("downstream_models") or exp.get("probes") or []):
                words = entry_words(probe, i, ttype, cap, aggregation) if isinstance(probe, dict) else None
                if words and run.run_id not in said.setdefault(words, []):
                    said[words].append(run.run_id)
    ids = {r.run_id for r in runs}
    return [note if set(used) == ids else f"{set_label(used)}: {note}" for note, used in said.items()]
