"""What ``repeval plan`` says of each probe entry (``downstream_models``): :func:`probe_lines`."""

from __future__ import annotations

from typing import Any

from repeval.words import counted


def _names(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 6 else f"{names[0]} … {names[-1]} ({len(names)})"


def probe_lines(exp: Any, specs: list[Any], full: Any = None, max_epochs: int | None = None) -> list[str]:
    """One line per ``downstream_models`` entry: what it trains, how its checkpoints and configuration are chosen,
    and — for a preset — its source, the keys set next to it, and where it departs from the source. ``full``: for a
    smoke test's experiment, the experiment it is the smoke test of — its one probe is the first configuration of
    ``full``'s first entry, a plain probe (:func:`~repeval.run.context.smoke_test_config`), so the line says which
    configuration of that entry it is, the entry's preset, source and departures as the full plan does, and the
    entries the smoke test leaves out. ``max_epochs``: the run's ``run.max_epochs``, which may leave an ASHA scheduler
    nothing to stop (:func:`~repeval.tuning.space_checks.asha_idle`)."""
    from repeval.tasks import resolve_criterion
    from repeval.tuning.presets import preset_words
    from repeval.tuning.search import expand_probe
    from repeval.tuning.space_checks import asha_idle

    ttype = exp.task.effective_type
    thesis_set = _thesis_set((full or exp).downstream_models)
    out = []
    for p, s in zip(exp.downstream_models, specs, strict=True):
        crit = ", ".join(dict.fromkeys(resolve_criterion(pt.config.save_criterion, ttype)[0] for pt in s.points))
        n = counted(s.size, "configuration")
        entry, of = p, ""
        if full is not None:  # a smoke test: its probe is the first configuration of the full run's first entry
            entry = full.downstream_models[0]
            first = expand_probe(entry, 0, ttype)
            if first.size > 1:
                of = f" ({first.points[0].name}, the first of the entry's {first.size}: a smoke test trains one)"
        if s.select == "best":
            what = f"probe {s.name}: {n}{of}, the best by {crit} (mean over seeds) tested once"
        else:
            tested = "each tested" if s.size != 1 else "tested"
            stops = "early stopping and checkpoint" if _stops_early(s.points, max_epochs) else "checkpoint"
            what = f"probe {_names(_with_layers(s.points))}: {n}{of}, {tested}, {stops} by {crit}"
            if stops != "checkpoint" and crit != "val_loss" and _thesis_probe(entry) and thesis_set:
                what += " (the thesis stopped early on the validation loss)"  # mir_ref: Keras EarlyStopping's default
        idle = asha_idle(s, max_epochs)
        if idle is not None:  # the run makes no scheduler then (validate refused the rest of these)
            what += f", but its ASHA scheduler stops none: {idle[0]} — {idle[1]}"
        elif s.scheduler is not None:
            what += ", the weaker ones stopped early by ASHA"
        smoke, cap = None, max_epochs
        if full is not None:  # the smoke test's few epochs, not the full entry's
            smoke, cap = "a smoke test trains one", min(p.epochs, max_epochs or p.epochs)
        words = preset_words(entry, s.size, smoke, task_type=ttype, max_epochs=cap, aggregation=exp.task.aggregation)
        what += f"; {words}" if words else ""
        if full is not None and len(full.downstream_models) > 1:
            left = [expand_probe(e, i, ttype).name for i, e in enumerate(full.downstream_models) if i]
            what += f"; the smoke test leaves out the other downstream_models entries ({_names(left)})"
        out.append("  - " + what)
    return out


def _stops_early(points: list[Any], max_epochs: int | None) -> bool:
    """Whether early stopping can stop a point before its last epoch: its ``patience`` validations without the
    criterion improving fit after the first validation (the first always improves) within its epochs, capped by the
    run's ``max_epochs`` (a smoke test's few epochs, a patience as long as the training: it trains them all)."""
    for pt in points:
        c = pt.config
        epochs = min(c.epochs, max_epochs or c.epochs)
        if c.patience + 1 < -(-epochs // c.val_every):  # validations: every val_every epochs and at the last
            return True
    return False


def _with_layers(points: list[Any]) -> list[str]:
    """The points' names, each with its hidden layers where those tell them apart (or there is one point): a probe's
    name says little of its size — Appendix A lists M1-M5 in another order than the thesis names them, so the plan
    shows which is which (``M2 (hidden [128])``)."""
    units = [[u for u in pt.config.hidden_units] for pt in points]
    if len(points) > 6 or (len(points) > 1 and all(u == units[0] for u in units)):
        return [pt.name for pt in points]
    return [f"{pt.name} (hidden {u})".replace("'", "") for pt, u in zip(points, units, strict=True)]


def criteria_note(exp: Any, specs: list[Any]) -> str | None:
    """A note when ``exp``'s tested probes are chosen on different validation criteria (a preset selecting a
    regression on ``val_r2`` beside a probe kept on ``val_loss``): the tables and the report cannot compare their
    validation values, so they choose each model's probe on clean test (:func:`repeval.report.selection.choose_probes`)
    — a test-set choice, which one ``save_criterion`` on every entry avoids. ``None``: one criterion for all."""
    from repeval.tasks import resolve_criterion

    ttype = exp.task.effective_type
    by: dict[str, list[str]] = {}
    for s in specs:
        tested = s.points if s.select != "best" else s.points[:1]  # select: best tests one, chosen on its criterion
        for pt in tested:
            crit = resolve_criterion(pt.config.save_criterion, ttype)[0]
            names = by.setdefault(crit, [])
            if s.name not in names:
                names.append(s.name)
    if len(by) < 2:
        return None
    keep = max(by, key=lambda c: len(by[c]))  # the criterion most entries use (the first of a tie)
    change = [n for c, names in by.items() if c != keep for n in names]
    said = "; ".join(f"{c}: {_names(names)}" for c, names in by.items())
    return (
        f"{exp.task.name}'s probes are chosen on different validation criteria ({said}): `repeval table`, the run's "
        f"summary and the report cannot compare them on validation and choose each model's probe on clean test, a "
        f"test-set choice — set `save_criterion: {keep}` on {_names(change)} (one criterion for every "
        f"downstream_models entry)"
    )


#: the thesis' names of its five probes (Plachouras 2023, §3.1.5), which its Tables 4-9 use
THESIS_NAMES = {(): "M1", (128,): "M2", (256, 128): "M3", ("infer",): "M4", ("infer", "infer"): "M5"}


def _thesis_probe(p: Any) -> str | None:
    """The thesis' name of the plain probe entry ``p`` with one of its probes' layers (``None``: other layers, a preset
    or a search)."""
    return THESIS_NAMES.get(tuple(p.hidden_units)) if p.preset is None and not p.search else None


def _thesis_set(entries: list[Any]) -> bool:
    """Whether ``entries`` hold the thesis' probes written out (Appendix A's, some named, the others pasted): three
    or more with their layers — a probe or two alone is not its set."""
    return sum(_thesis_probe(p) is not None for p in entries) >= 3


def thesis_names_note(exp: Any) -> str | None:
    """A note when unnamed probe entries with the thesis' layers are named by position (M1, M2, …) otherwise than the
    thesis names them: Appendix A lists them as [], [infer], [infer, infer], [128], [256, 128], so pasted as printed
    its [infer] probe is reported as M2, where the thesis' tables call [128] M2. ``None``: nothing to rename, or
    fewer than three entries with the thesis' layers, named or not (not the thesis' set)."""
    if not _thesis_set(exp.downstream_models):
        return None
    wrong: list[tuple[str, str, str]] = []
    for i, p in enumerate(exp.downstream_models):
        thesis = _thesis_probe(p)
        if thesis and p.name is None and thesis != f"M{i + 1}":
            wrong.append((f"M{i + 1}", f"[{', '.join(map(str, p.hidden_units))}]", thesis))
    if not wrong:
        return None
    said = "; ".join(f"{at} (hidden {layers}) is the thesis' {thesis}" for at, layers, thesis in wrong)
    _, layers, thesis = wrong[0]
    return (
        f"{exp.task.name}'s unnamed probes are named by position, not as the mir_ref thesis' tables name them "
        f"(§3.1.5): {said} — to compare with its tables, name each (`name: {thesis}` on the {layers} probe, …) or "
        f"use `preset: mir_ref_thesis`"
    )
