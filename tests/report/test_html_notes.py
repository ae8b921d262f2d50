"""The HTML report's confusion matrices and notes (thresholds, presets, intervals, unreadable stores), and a report
that cannot be written."""

from __future__ import annotations

import html
import re

import pandas as pd
import pytest
import yaml

from repeval.report.html import write_report


def test_tables_and_report_say_the_decision_threshold_and_the_masking(tmp_path):
    """Tagging F1 at 0.5 and at 0.3 (``f1_macro@0.3``) are two columns, each table's caption says at which threshold
    a tag counts as predicted; only once the run's splits say which tags each track annotates (``observed``:
    OpenMIC-2018 with ``unannotated: mask``) do the tables and the per-label values say they are over the annotated
    (track, tag) pairs only."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from repeval.report.html import build_report_html
    from repeval.report.results import load_run
    from repeval.report.tables import table_command
    from repeval.testing.results import FakeExperiment, FakeRunSpec, make_run_dir

    exp = FakeExperiment("instruments", "multilabel_classification", "openmic2018", 4, ("f1_macro", "f1_macro@0.3"))
    spec = FakeRunSpec(
        run_id="om", experiments=(exp,), models=("logmel-stats",), probes=("M1",), seeds=(0,), scenarios=("clean",),
        n_test=40, n_resamples=5,
    )  # fmt: skip
    run = make_run_dir(tmp_path, spec)
    threshold = "f1_macro: a tag predicted at score ≥ 0.5; …@t: at ≥ t"
    masking = "over the annotated (track, tag) pairs only (unannotated: mask)"
    table = table_command([run], "all_deform_all_models", "markdown")
    assert "| f1_macro clean | f1_macro@0.3 clean |" in table.replace("<br>", " ")
    assert threshold in table and masking not in table
    splits = pa.table({"track_id": ["a"], "label": [["piano"]], "observed": [["piano", "voice"]]})
    (run / "splits").mkdir()
    pq.write_table(splits, run / "splits" / "instruments__openmic2018.parquet")
    assert masking in " ".join(table_command([run], "model_comparison", "plain").split())  # the terminal wraps it
    text = build_report_html([load_run(run)])
    assert text.count(masking) == 2  # the two tables of a clean-only run
    assert "each tag over the test tracks that annotate it (unannotated: mask)" in text  # the per-label values
    # …which say at which threshold their F1 predicts a tag, as the tables do
    about = re.search(r'<p class="rv-note" id="labels-[^"]*-about">([^<]*)</p>', text)
    assert about and html.unescape(about.group(1)).startswith(
        f"each cell one label's own value, the average over labels it enters in brackets: the mean; {threshold}; each"
    )


def test_confusion_matrices_are_summed_over_the_seeds(run_dir):
    """The report drew seed 0's matrix only (its caption said so); a run with N seeds shows each probe's matrix over
    all of them: the counts summed, equal to the sum of the per-seed files in runs/<id>/confusion/ — each cell's
    count in its tooltip, its fraction of the reference class its text."""
    import json

    import numpy as np

    from repeval.report.html import _confusion_block
    from repeval.report.results import load_run
    from repeval.report.selection import combine_validation

    run = load_run(run_dir)
    task, dataset = "instrument_recognition", "tinysol"
    block = _confusion_block([run], run.results, task, dataset, False, combine_validation([run]))
    assert "counted over all its seeds" in block
    # k folds that share test tracks: a track is counted once per fold that tests it, not "each tested in one"
    shared = run.results.assign(fold=0, fold_overlap=0.25).astype({"fold": "Int64"})
    pooled = _confusion_block([run], shared, task, dataset, False, combine_validation([run]))
    assert "seeds and folds (the folds share test tracks: one tested in several is counted in each)" in pooled
    drawn = re.findall(
        r'<figure class="rv-cm"><table aria-label="confusion matrix: ([^"]*)">(.*?)</table>', block, re.S
    )
    assert drawn and "<img" not in block
    for title, table in drawn:
        model, probe, scenario, over = re.fullmatch(r"(\S+) (\S+), (\S+), (.+)", title).groups()
        assert over == "summed over 2 seeds" and f"<figcaption>confusion matrix: {title}</figcaption>" in block
        files = sorted((run_dir / "confusion").glob(f"{task}__{dataset}__{model}__{probe}__*__{scenario}.json"))
        assert len(files) == 2  # seeds 0 and 1
        records = [json.loads(f.read_text()) for f in files]
        labels = re.findall(r'<th scope="row">([^<]*)</th>', table)
        assert all(r["labels"] == labels for r in records)
        want = sum(np.asarray(r["matrix"]) for r in records)
        shown = np.zeros_like(want)
        for ref, pred, n, total, text in re.findall(r'title="([^ ]+) → ([^:]+): (\d+) of (\d+)">([^<]*)</td>', table):
            i, j = labels.index(ref), labels.index(pred)
            shown[i, j] = int(n)
            assert int(total) == want[i].sum() and text == f"{int(n) / int(total):.2f}".replace("0.00", "&lt;0.01")
        assert np.array_equal(shown, want)


def test_a_confusion_matrix_is_a_shaded_table_blank_where_no_track_fell():
    """Drawn as PNGs, a study's 22 confusion matrices were 2.1 MB of its report and a third of its rendering time;
    each is an HTML table now: a cell shaded by its fraction of the reference class, showing it (blank where no track
    fell, ``<0.01`` for a few), its count in the tooltip, the row's tracks last; past 25 labels, colour only."""
    import numpy as np

    from repeval.report.confusion import MAX_WRITTEN, confusion_html

    out = confusion_html(["a", "b"], np.array([[399, 1], [0, 5]]), "m M1, clean, seed 0")
    rows = re.findall(r'<tr><th scope="row">(\w)</th>(.*?)</tr>', out)
    assert [r[0] for r in rows] == ["a", "b"]
    cells = [re.findall(r"<td[^>]*>([^<]*)</td>", r[1]) for r in rows]
    assert cells == [["1.00", "&lt;0.01", "400"], ["", "1.00", "5"]]
    assert 'title="a → b: 1 of 400"' in out and out.count("title=") == 3  # no tooltip where no track fell
    assert re.search(r'style="background:#08306b;color:#fff" title="b → b: 5 of 5"', out)  # Blues at 1.0, white ink
    assert "<figcaption>confusion matrix: m M1, clean, seed 0</figcaption>" in out
    n = MAX_WRITTEN + 1
    big = confusion_html([f"l{i}" for i in range(n)], np.eye(n, dtype=int) * 3, "big")
    assert big.count('title="') == n and not re.search(r'">1\.00</td>', big)  # colour and tooltip only


def test_summed_confusion_lays_each_seeds_matrix_on_every_label(tmp_path):
    import numpy as np

    from repeval.report.confusion import summed_confusion
    from repeval.report.results import ConfusionKey, Run

    key = ("t", "d", "m", "p")
    run = Run("r", tmp_path, pd.DataFrame())
    run.confusion = {
        ConfusionKey(*key, 1, "clean"): (["a", "c"], np.array([[1, 2], [3, 4]])),
        ConfusionKey(*key, 0, "clean"): (["a", "b"], np.array([[5, 0], [1, 6]])),
        ConfusionKey("t", "d", "m", "other", 0, "clean"): (["a", "b"], np.ones((2, 2), dtype=int)),
    }
    labels, matrix, seeds = summed_confusion(run, *key)["clean"]
    assert labels == ["a", "b", "c"] and seeds == [0, 1]
    assert matrix.tolist() == [[6, 0, 2], [1, 6, 0], [3, 0, 4]]


def test_a_presets_note_says_what_was_trained_after_the_keys_set_next_to_it(tmp_path):
    """The report described the hear preset as "HEAR 2021's 16-point grid" though a learning rate set next to it cut
    the grid to 4 points: its note is what `repeval plan` says of the entry — the keys set here, how many
    configurations were trained and where that departs from the source."""
    from repeval.config.loader import parse_config
    from repeval.plan import make_plan
    from repeval.report.html import build_report_html
    from repeval.report.results import load_run
    from repeval.testing.results import FakeExperiment, FakeRunSpec, make_run_dir

    exp = FakeExperiment("inst", "multiclass_classification", "notes", 4, ("accuracy",))
    spec = FakeRunSpec(run_id="hr", experiments=(exp,), models=("mfcc-stats",), probes=("hear-lr",), seeds=(0,),
                       scenarios=("clean",), n_test=20, n_resamples=5)  # fmt: skip
    run = make_run_dir(tmp_path, spec)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["experiments"][0]["datasets"] = [{"name": "notes", "type": "catalog", "manifest": "m.csv",
                                             "label_column": "x"}]  # fmt: skip
    config["experiments"][0]["downstream_models"] = [{"preset": "hear", "name": "hear-lr", "learning_rate": 1e-3}]
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    text = build_report_html([load_run(run)])
    notes = [html.unescape(n) for n in re.findall(r'<p class="rv-note rv-preset">([^<]*)</p>', text)]
    assert len(notes) == 1 and notes[0].startswith("probe hear-lr, preset hear: HEAR 2021's 16-point grid, ")
    said = "set here: learning_rate=0.001; differs from the source: 4 configurations are trained, not the preset's 16"
    assert said in notes[0] and "all 16 points are trained" not in notes[0]
    # the words `repeval plan` prints for that entry, after its source
    [line] = [
        x
        for x in make_plan(parse_config({"experiments": config["experiments"]})).text().splitlines()
        if x.startswith("  - probe hear-lr")
    ]
    assert said in line and notes[0].endswith(line[line.index(", set here: ") :])


def test_a_report_that_cannot_be_written_whole_leaves_the_last_one_in_place(run_dir, tmp_path, monkeypatch):
    """`repeval report` wrote report.html in place: a disk that filled (or a kill) mid-write left half a report where
    the last whole one was, which a browser shows without a word. Now it is written whole or not at all; the failure
    (here a real one: the file size limit, EFBIG, as a full disk's ENOSPC) leaves no temporary file behind."""
    import resource
    import signal

    from repeval.report import html as report_html

    out = tmp_path / "report.html"
    out.write_text("<!doctype html>the last whole report")
    monkeypatch.setattr(report_html, "build_report_html", lambda runs, **_: "<!doctype html>" + "x" * 200_000)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, limits[1]))
    try:
        with pytest.raises(OSError):
            write_report([run_dir], out)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert out.read_text() == "<!doctype html>the last whole report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    assert write_report([run_dir], out).read_text() == "<!doctype html>" + "x" * 200_000


def test_a_report_it_cannot_write_names_reports_own_out_option(run_dir, tmp_path):
    """`repeval report` into a folder it cannot write (a run directory on read-only storage, another user's) said to
    check run.store and run.runs_dir, which report does not write; it names its own --out now. A real failure: the
    report's folder would be inside a regular file (root ignores chmod)."""
    from typer.testing import CliRunner

    from repeval.cli import app

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    res = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(blocker / "sub" / "report.html")])
    assert res.exit_code == 1, res.output
    assert "--out FILE.html" in res.output and "run.store" not in res.output, res.output
    assert str(blocker) in res.output  # the path it could not make
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
    # a folder that cannot be made at all (ENOENT under /proc) was a bare "[Errno 2] No such file or directory"
    res = CliRunner().invoke(app, ["report", str(run_dir), "--out", "/proc/no-such-folder/report.html"])
    assert res.exit_code == 1, res.output
    assert "/proc/no-such-folder' — the report's folder is not a writable directory" in res.output, res.output
    assert "--out FILE.html" in res.output, res.output


def test_the_interval_tip_says_folds_combined_only_of_rows_with_folds():
    """The interval's account said "folds combined" of every run, one split's too: now only where the rows have
    folds, and "as sharing test tracks" where those folds share them."""
    import types

    import numpy as np

    from repeval.report.cells import has_folds
    from repeval.report.render import ci_tip, table_has_folds

    one_split = pd.DataFrame({"fold": [None, None], "value": [0.5, 0.6]})
    k_fold = pd.DataFrame({"fold": [0, 1], "value": [0.5, 0.6]})
    assert (has_folds(one_split), has_folds(k_fold), has_folds(pd.DataFrame({"value": [0.5]}))) == (False, True, False)
    assert ci_tip("90%", False, has_folds(one_split)) == "90% bootstrap CI of the mean (seeds averaged)"
    assert ci_tip("90%", False, has_folds(k_fold)) == "90% bootstrap CI of the mean (seeds averaged, folds combined)"
    assert ci_tip("95%", True, True).endswith("(seeds averaged, folds combined as sharing test tracks)")
    assert not table_has_folds(types.SimpleNamespace(n_folds=np.array([[1, 1], [0, 1]])))
    assert table_has_folds(types.SimpleNamespace(n_folds=np.array([[1, 3]])))


def test_the_note_of_a_store_it_cannot_read_names_the_store_once(tmp_path, monkeypatch):
    """A run on the default store (``run.store: store``) whose store the report could not read said its error records
    were "not read from the store store": the note names the store once now, and no word twice."""
    from repeval.report.html import _left_out_section
    from repeval.report.results import Run

    monkeypatch.chdir(tmp_path)  # no ./store here: the store cannot be opened
    section = _left_out_section([Run("r", tmp_path, pd.DataFrame(), config_text="run: {store: store}\n")])
    said = html.unescape(re.sub(r"<[^>]+>", " ", section))
    assert "error records not read from the embedding store at store: " in said, said
    assert not re.search(r"(?<!-)\b(\w+) \1\b", said), said  # (``--store store``: an option and its value)


def test_the_report_says_why_r2_has_no_interval_on_a_small_test_set(tmp_path):
    """R² on four test tracks had an interval of [-9700, 0.955] around 0.939, shown in the tooltips as if it meant
    something. Below ten test tracks it has none, and the report says so above the tables: where, and why."""
    from repeval.report.html import build_report_html
    from repeval.report.results import load_run
    from repeval.testing.results import FakeExperiment, FakeRunSpec, make_run_dir

    metrics = ("r2", "mean_absolute_error")
    spec = FakeRunSpec(
        run_id="tiny", n_test=6, n_resamples=50, probes=("M1",), seeds=(0,), models=("mfcc-stats",),
        scenarios=("clean",), experiments=(FakeExperiment("emotion", "regression", "deam", 2, metrics),),
    )  # fmt: skip
    text = build_report_html([load_run(make_run_dir(tmp_path, spec))])
    header = text[: text.index("</header>")]
    assert (
        "r2 has no bootstrap interval where a test set has fewer than 10 tracks: emotion on deam (6 tracks)" in header
    )
    assert "R² divides by that variance" in header and "mean_absolute_error has no" not in header
    # `repeval table` says it too: in the caption, and in the tooltip of each r2 cell (it gave none, silently)
    from repeval.report.tables import table_command

    why = "r2 has no bootstrap interval on a test set of fewer than 10 tracks (6 tracks here)"
    assert why in table_command([tmp_path / "tiny"], fmt="markdown").splitlines()[0]
    tips = re.findall(
        r'<td class="num[^"]*" data-value="[^"]*" title="([^"]*)"', table_command([tmp_path / "tiny"], fmt="html")
    )
    assert len(tips) == 2 and tips[0].endswith(f"; {why}") and "95% bootstrap CI" in tips[1], tips
    # a run that computed no interval at all (bootstrap_resamples: 0): a larger test set would not give one
    config = tmp_path / "tiny" / "config.yaml"
    config.write_text(config.read_text().replace("run:\n", "run:\n  bootstrap_resamples: 0\n", 1))
    text = build_report_html([load_run(tmp_path / "tiny")])
    assert "no bootstrap interval" not in text
    assert "no bootstrap interval" not in table_command([tmp_path / "tiny"], fmt="html")


def test_the_error_records_note_names_each_models_retry_option_and_agrees_with_their_number():
    """The "Error records" section of the records of two models said "(or the model failing on them)"."""
    from repeval.report.html import _retry_note

    assert _retry_note(["d/m/clean", "d/n/clean"]) == (
        "Once their files (or the models failing on them) are fixed, <code>repeval run --retry-errors</code> computes "
        "them again, or <code>--retry-model m</code>, <code>--retry-model n</code> those of one model alone."
    )
    assert _retry_note(["d/m/clean", "d/m/D1"]).startswith("Once their files (or the model failing on them) are")
