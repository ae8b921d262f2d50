"""``warn_once``: the one way repeval says a warning once per process (not once per probe, trial or validation)."""

from __future__ import annotations

import logging
import threading
import warnings

import pytest

from repeval.warn import reset_warned, warn_once


def test_warn_once_says_each_key_once_per_logger_or_category_from_any_thread(caplog):
    reset_warned()
    log = logging.getLogger("repeval.test_warn")
    barrier = threading.Barrier(8)
    said: list[bool] = []

    def ask() -> None:
        barrier.wait()
        said.append(warn_once(log, ("k", 1), "%s: said once of %d asks", "k", 8))

    with caplog.at_level("WARNING", logger=log.name):
        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(said) == [False] * 7 + [True]
        assert warn_once(log, ("k", 2), "another key") and not warn_once(log, ("k", 2), "another key")
        assert warn_once(logging.getLogger("repeval.other"), ("k", 1), "another logger, the same key")
    assert [r.getMessage() for r in caplog.records if r.name == log.name] == ["k: said once of 8 asks", "another key"]
    assert caplog.records[0].funcName == "ask"  # logged as the caller's line
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            warn_once(RuntimeWarning, ("k", 1), "as a %s", "warning")
            warn_once(UserWarning, ("k", 1), "another category")
    assert [(w.category, str(w.message)) for w in caught] == [
        (RuntimeWarning, "as a warning"),
        (UserWarning, "another category"),
    ]
    assert caught[0].filename == __file__
    reset_warned()
    with pytest.warns(RuntimeWarning, match="as a warning"):
        assert warn_once(RuntimeWarning, ("k", 1), "as a %s", "warning")  # said again after a reset


def test_a_trials_warnings_are_kept_by_member_bounded_and_said_once_each_with_how_many_had_them(caplog):
    """``TrialWarnings`` (what a probe trial warns, for the driver to say): repeval's warnings — its loggers at
    WARNING or above, its categories' or code's Python warnings, the repeats ``warn_once`` does not say again — are
    kept, each with the members that gave it, while they are still said where they were; another library's are not.
    A catch keeps ``KEPT_PER_TRIAL`` distinct ones and counts the rest, and another thread's catch keeps its own.
    ``SaidByTrials`` then says each once (per batch of groups), with how many probes/seeds had it."""
    from repeval.metrics import MetricWarning
    from repeval.warn import KEPT_PER_TRIAL, SaidByTrials, TrialWarnings, member_scope

    reset_warned()
    log = logging.getLogger("repeval.test_warn")
    show = warnings.showwarning
    other: list[TrialWarnings] = []

    def other_trial() -> None:
        with TrialWarnings() as mine:
            log.warning("the other trial's")
        other.append(mine)

    with caplog.at_level("INFO"), warnings.catch_warnings(record=True) as shown, TrialWarnings() as caught:
        warnings.simplefilter("default")  # Python's own: one text once per line
        log.warning("the whole unit's %s", "warning")
        log.info("not a warning")
        logging.getLogger("elsewhere").warning("another library's")
        warnings.warn("another library's", UserWarning, stacklevel=1)
        for i in (0, 2):
            with member_scope(i):
                warnings.warn("a degenerate test set", MetricWarning, stacklevel=1)  # shown for each member, not once
                warn_once(log, "k", "said once, noted for %s", "each member")
        t = threading.Thread(target=other_trial)
        t.start()
        t.join()
        for i in range(KEPT_PER_TRIAL + 4):
            log.error("distinct %d", i)
    assert warnings.showwarning is show and not logging.getLogger("repeval").handlers  # none left behind
    said = [r.getMessage() for r in caplog.records]
    assert said[:3] == ["the whole unit's warning", "not a warning", "another library's"]  # said as ever
    assert said.count("said once, noted for each member") == 1
    assert [str(w.message) for w in shown] == ["another library's"] + ["a degenerate test set"] * 2
    reports: list[dict] = [{}, {}, {}]
    caught.into(reports)
    kept = [(w["kind"], w["source"], w["message"]) for w in reports[0]["warnings"]]
    assert kept[:3] == [
        ("log", "repeval.test_warn", "the whole unit's warning"),
        ("warning", "repeval.metrics.base.MetricWarning", "a degenerate test set"),
        ("log", "repeval.test_warn", "said once, noted for each member"),
    ]
    assert len(kept) == KEPT_PER_TRIAL and kept[-1][2] == f"distinct {KEPT_PER_TRIAL - 4}"
    assert [len(r["warnings"]) for r in reports] == [KEPT_PER_TRIAL, KEPT_PER_TRIAL - 2, KEPT_PER_TRIAL]
    assert {r["warnings_left_out"] for r in reports} == {7}  # distinct 17 to 23
    assert reports[1]["warnings"][0]["message"] == "the whole unit's warning"
    assert other[0].kept == {("log", "repeval.test_warn", logging.WARNING, "the other trial's"): None}

    group = SaidByTrials()
    for probe, seed, rep in [("lin", 0, reports[0]), ("lin", 1, reports[1]), ("mlp", 0, reports[2])]:
        group.add("g", probe, seed, rep)
    group.add("g", "mlp", 1, {})
    group.add_left_out("g", 7)
    caplog.clear()
    with caplog.at_level("INFO"), warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        group.say()
    lines = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert lines[0] == ("repeval.test_warn", "WARNING", "g, 3 of 4 probes/seeds (lin (seeds 0, 1); mlp (seed 0)): "
                                                        "the whole unit's warning")  # fmt: skip
    assert lines[1] == ("repeval.test_warn", "WARNING", "g, 2 of 4 probes/seeds (lin (seed 0); mlp (seed 0)): "
                                                        "said once, noted for each member")  # fmt: skip
    assert lines[2] == ("repeval.test_warn", "ERROR", "g, 3 of 4 probes/seeds (lin (seeds 0, 1); mlp (seed 0)): "
                                                      "distinct 0")  # fmt: skip
    assert "g: its trials gave 7 more warnings than the 20 distinct ones each keeps" in lines[-1][2]
    assert len(lines) == KEPT_PER_TRIAL  # all but the MetricWarning, and the count of the rest
    assert [(w.category, str(w.message)) for w in again] == [
        (MetricWarning, "g, 2 of 4 probes/seeds (lin (seed 0); mlp (seed 0)): a degenerate test set")
    ]


def test_a_warning_of_several_groups_is_said_once_for_the_batch_with_each_groups_share(caplog):
    """A warning that the trials of several groups gave (a GPU their nodes cannot use, a degenerate label) was said
    once per group — 30 lines for 30 groups. It is said once for the batch: how many probes/seeds of how many groups
    had it, the groups every probe/seed of which had it, and the others' own probes/seeds."""
    from repeval.warn import SaidByTrials

    log = logging.getLogger("repeval.test_warn")

    def rep(*texts: str) -> dict:
        return {
            "warnings": [{"kind": "log", "source": log.name, "level": logging.WARNING, "message": t} for t in texts]
        }

    said = SaidByTrials()
    for g in ("g1", "g2", "g3", "g4", "g5"):
        for probe, seed in (("lin", 0), ("lin", 1), ("mlp", 0)):
            partial = (g == "g4" and probe == "lin") or (g == "g5" and seed == 0)
            said.add(g, probe, seed, rep("no GPU", *(["degenerate"] if partial else []), *(["g2 only"] * (g == "g2"))))
    said.add("g6", "lin", 0, {})  # a group whose trials warned nothing (or raised before they could)
    said.add_left_out("g2", 3)
    said.add_left_out("g3", 4)
    with caplog.at_level("WARNING"):
        said.say()
    assert [r.getMessage() for r in caplog.records] == [
        "15 of 16 probes/seeds in 5 of 6 groups (every probe/seed of g1, g2, g3 and 2 more): no GPU",
        "g2, 3 of 3 probes/seeds (lin (seeds 0, 1); mlp (seed 0)): g2 only",
        "4 of 16 probes/seeds in 2 of 6 groups (g4: lin (seeds 0, 1); g5: lin (seed 0), mlp (seed 0)): degenerate",
        "g2, g3: their trials gave 7 more warnings than the 20 distinct ones each keeps; set REPEVAL_WORKER_LOGS=1 "
        "to see them all in the trials' logs",
    ]
    caplog.clear()
    said.say()  # said once: nothing is left to say
    assert not caplog.records


def test_the_command_line_says_repevals_warnings_without_its_source_lines(tmp_path, monkeypatch):
    """`repeval run` printed a probe's metric warnings in Python's form: the path of repeval's grid.py, a line number
    and the code line that re-said them (``g.said.say(g.inp.name)  # its trials' warnings; …``). The command line
    now says repeval's warnings as ``Category: message``; other packages' keep Python's form, and --debug all."""
    from typer.testing import CliRunner

    from repeval.cli import app
    from repeval.metrics.base import MetricWarning
    from repeval.tuning import grid

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # put back after the test
    assert CliRunner().invoke(app, ["schema", "--out", str(tmp_path / "s.json")]).exit_code == 0
    said = [
        warnings.formatwarning("3 of 10 classes have no test example", cat, path, 939, None)
        for cat, path in ((MetricWarning, grid.__file__), (UserWarning, grid.__file__), (UserWarning, pytest.__file__))
    ]
    assert said[:2] == [
        "MetricWarning: 3 of 10 classes have no test example\n",
        "UserWarning: 3 of 10 classes have no test example\n",
    ]
    assert said[2].startswith(f"{pytest.__file__}:939: UserWarning: 3 of 10")
    assert CliRunner().invoke(app, ["--debug", "schema", "--out", str(tmp_path / "s.json")]).exit_code == 0
    assert warnings.formatwarning("x", MetricWarning, grid.__file__, 939, None).startswith(f"{grid.__file__}:939:")


def test_a_test_sets_metric_warnings_name_it_once_for_every_test_set_that_gave_them(caplog):
    """A probe tested on clean and on each deformation scenario's test set said a metric warning about a test set
    once per wording — two lines for one probe, neither saying which test set it was about. Each now names its test
    sets, said once for all the test sets that gave it word for word (here clean and D1 predict the class without
    test example for some track, D2 for none; the bootstrap's resamples, of the same labels, are alike on all
    three), on the driver as it tests (``select: best``) and from the trials, merged across probes and groups."""
    import numpy as np

    from repeval.metrics import MetricWarning
    from repeval.probes import ProbeData
    from repeval.tuning.trial import EvalSettings, test_rows
    from repeval.warn import SaidByTrials, TrialWarnings, member_scope

    y = np.array([0, 1] * 19 + [2, 3])  # c4: no test example; c2, c3: one each (few resamples draw both)
    ids = [f"t{i}" for i in range(len(y))]
    x = np.zeros((len(y), 2), np.float32)
    data = ProbeData("multiclass_classification", [f"c{i}" for i in range(5)], x, y, x, y,
                     {sid: (x, y, ids) for sid in ("clean", "D1", "D2")})  # fmt: skip

    def scores(predicted: np.ndarray) -> np.ndarray:
        return np.eye(5)[predicted] * 0.9 + 0.02

    hit = y.copy()
    hit[0] = 4  # one track predicted as c4
    got = {"clean": scores(hit), "D1": scores(hit), "D2": scores(y)}
    ev = EvalSettings(["roc_auc_macro", "f1_macro"], 200, 0.05, 0, None)
    absent = "1 of 5 classes have no test example (c4): "
    want = [
        (MetricWarning, f"test sets clean, D1: {absent}", "f1_macro counts them with F1 0, as some tracks are"),
        (MetricWarning, f"test set D2: {absent}", "f1_macro leaves them out too, as no track is predicted as one"),
        ("log", "test sets clean, D1, D2: roc_auc_macro: its bootstrap interval rests on 79 of 200 ", ""),
        ("log", "test sets clean, D1: f1_macro: its bootstrap interval rests on 62 of 200 ", ""),
        ("log", "test set D2: f1_macro: its bootstrap interval rests on ", ""),  # said though f1_macro's was
    ]

    def check(lines: list[tuple[object, str]], prefix: str) -> None:
        assert len(lines) == len(want), lines
        for (kind, text), (wkind, start, part) in zip(lines, want, strict=True):
            assert kind == wkind and text.startswith(prefix + start) and part in text, text

    reset_warned()
    caplog.clear()
    with caplog.at_level("WARNING", logger="repeval"), warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        test_rows(data, got, ev)  # as the driver tests a picked probe: said there, once each
    said: list[tuple[object, str]] = [(w.category, str(w.message)) for w in shown]
    check(said + [("log", r.getMessage()) for r in caplog.records if "resamples" in r.getMessage()], "")

    batch = SaidByTrials()
    for group in ("g1", "g2"):  # two groups' trials, of two members each
        reports: list[dict] = [{}, {}]
        with warnings.catch_warnings(record=True), TrialWarnings() as caught:  # said in the trial: not here
            warnings.simplefilter("default")  # as a trial's: a warning's text once per line of code
            for i in range(2):
                with member_scope(i):
                    test_rows(data, got, ev)
        caught.into(reports)
        for seed, rep in enumerate(reports):
            batch.add(group, "lin", seed, rep)
    caplog.clear()
    with caplog.at_level("WARNING", logger="repeval"), warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        batch.say()
    said = [(w.category, str(w.message)) for w in shown]
    check(said + [("log", r.getMessage()) for r in caplog.records], "4 of 4 probes/seeds in 2 of 2 groups (every "
                                                                    "probe/seed of g1, g2): ")  # fmt: skip
