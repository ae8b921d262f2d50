"""The report's per-label drill-down (:mod:`repeval.report.labels`): the label × model tables, the best model's labels
under every scenario and every value folded in a table per model."""

from __future__ import annotations

import html
import re

import pandas as pd
import pytest


@pytest.fixture(scope="module")
def report(report_html):
    return report_html


def _table(text: str, tid_start: str) -> str:
    """The HTML table of ``text`` whose id starts with ``tid_start``."""
    (table,) = re.findall(rf'<table class="rv-table[^"]*" id="{tid_start}[^"]*"[^>]*>.*?</table>', text, re.S)
    return table


def test_per_label_cells_give_n_as_the_other_tables_cells_do(report):
    """The per-label table showed mean ± std with no n (its cells' tooltips held only the interval), while every
    other table's cells say ``n=N replicates (S seeds)``; the label tables' cells do, after their mean ± std."""
    text = report.read_text()
    tables = re.findall(
        r'<table class="rv-table sortable rv-labels" id="(labels-by[^"]*)"[^>]*>(.*?)</table>', text, re.S
    )
    assert len(tables) == 2 * 3  # by model and by scenario, a metric each: 1 + 2
    for tid, table in tables:
        tips = re.findall(r'<td class="num[^"]*" data-value="[^"]+" title="([^"]*)">', table)
        assert tips and all(re.fullmatch(r"0\.\d{3} ± 0\.\d{3}; n=2 replicates \(2 seeds\); 95% CI \[.*\]", t)
                            for t in tips), tips[:3]  # fmt: skip
        # what the values are, said once above the tables (a caption wrapped at the table's width)
        about = re.search(r'aria-describedby="([^"]*)"', text[text.index(f'id="{tid}"') :]).group(1)
        note = re.search(rf'<p class="rv-note" id="{about}">([^<]*)</p>', text)
        assert note and html.unescape(note.group(1)) == (
            "each cell one label's own value, the average over labels it enters in brackets: mean ± std over 2 seeds; "
            "each row a label, the worst first (by its mean over the row, which a click on a header sorts again); "
            "bold: the best model of the label (none where every model ties); hover a cell for its std, n and 95% interval, the 95% bootstrap CI of "
            "the mean (seeds averaged)"
        )


def test_labels_by_model_stand_each_model_with_its_cards_probe_the_worst_labels_first(report, run_dir):
    """A study's per-label table was 14,000 rows (50 tags × 8 models × 5 probes × 7 scenarios) a reader scrolled
    through; it leads with a row per label, a column per model at the probe the summary cards stand it with, on clean
    test, the worst labels first, each label's best model bold."""
    from repeval.report.plots import best_probes
    from repeval.report.results import load_run
    from repeval.report.selection import combine_validation

    run = load_run(run_dir)
    task, dataset = "autotagging", "magnatagatune"
    text = report.read_text()
    table = _table(text, "labels-bymodel-autotagging-magnatagatune-roc-auc-macro")
    probes = best_probes(run.results, task, dataset, None, combine_validation([run]))
    heads = re.findall(r'<th data-col="(\d+)" data-kind="(\w+)"[^>]*title="([^"]*)">([^<]*)</th>', table)
    assert [h[3] for h in heads] == ["mean", *probes]  # the label's header has no title
    assert all(f"{m}, probe {p} (" in heads[k + 1][2] for k, (m, p) in enumerate(probes.items()))
    per = run.results[(run.results["task"] == task) & (run.results["metric"] == "roc_auc_macro")]
    per = per[per["label"].notna() & (per["scenario"] == "clean")]
    chosen = per[[probes[m] == p for m, p in zip(per["model"], per["probe"], strict=True)]]
    means = chosen.groupby(["label", "model"])["value"].mean().unstack("model")[list(probes)]
    rows = re.findall(r"<tr><td>([^<]*)</td><td[^>]*>([^<]*)</td>(.*?)</tr>", table)
    assert [r[0] for r in rows] == list(means.mean(axis=1).sort_values(kind="stable").index)  # worst first
    for label, mean, cells in rows:
        shown = re.findall(r'<td class="num( best)?" data-value="([^"]*)"', cells)
        assert [float(v) for _, v in shown] == pytest.approx(list(means.loc[label]), abs=1e-5)
        assert [m for (b, _), m in zip(shown, probes, strict=True) if b] == [means.loc[label].idxmax()]
        assert float(mean) == pytest.approx(means.loc[label].mean(), abs=5e-4)
    # the best model's labels under every scenario, and every value folded below
    best = means.mean().idxmax()
    scen = _table(text, "labels-byscenario-autotagging-magnatagatune-roc-auc-macro")
    assert re.findall(r'title="[^"]*">([^<]*)</th>', scen)[1:] == ["clean", "D1", "D2"]
    assert f"roc_auc_macro) by scenario, {best} {probes[best]}</summary>" in text


def test_per_label_table_keeps_the_tasks_vocabulary_order(report, run_dir):
    """The per-label table listed labels A→Z (bassoon, clarinet, flute, …); a task's vocabulary order — the order the
    result rows keep — is the meaningful one (an instrument list's, a key's circle). Every value's tables show it in
    that order, a label that a cell left out (undefined there) next to its neighbours, and a click on a header still
    sorts."""
    from repeval.report.html import _per_label_block
    from repeval.report.results import load_run
    from repeval.testing.results import INSTRUMENTS

    vocab = INSTRUMENTS[:6]  # the fake multiclass task's classes, in its order (not alphabetical)
    assert vocab != sorted(vocab)
    df = load_run(run_dir).results
    df = df[df["task"] == "instrument_recognition"]
    model = df["model"].iloc[0]
    table = _table(report.read_text(), f"labels-all-instrument-recognition-tinysol-{model}")
    assert re.findall(r"<tr><td>M1</td><td>([^<]*)</td>", table) == vocab
    assert '<th data-col="1" data-kind="text">label</th>' in table  # sortable by click, as every other column
    # a cell without a row for "oboe" (undefined there) comes first: oboe still follows flute
    cell = (df["model"] == model) & (df["probe"] == "M1") & (df["seed"] == 0) & (df["scenario"] == "clean")
    df = pd.concat([df[cell & (df["label"] != "oboe")], df[~cell]], ignore_index=True)
    table = _table(
        _per_label_block(df, "instrument_recognition", "tinysol"), f"labels-all-instrument-recognition-tinysol-{model}"
    )
    assert re.findall(r"<tr><td>M1</td><td>([^<]*)</td>", table) == vocab
    # a label undefined in every cell of a probe (a class no test track has: NaN) is no row of dashes; a model with
    # no value at all, no table
    undefined = (df["model"] == model) & (df["probe"] == "M1") & (df["label"] == "oboe")
    block = _per_label_block(df.assign(value=df["value"].mask(undefined)), "instrument_recognition", "tinysol")
    table = _table(block, f"labels-all-instrument-recognition-tinysol-{model}")
    assert re.findall(r"<tr><td>M1</td><td>([^<]*)</td>", table) == [v for v in vocab if v != "oboe"]
    models = df["model"].unique()
    none = df.assign(value=df["value"].mask((df["model"] != models[0]) & df["label"].notna()))
    block = _per_label_block(none, "instrument_recognition", "tinysol")
    assert f"labels-all-instrument-recognition-tinysol-{models[1]}" not in block and " over 1 model, " in block


def test_per_label_values_say_what_they_are(report):
    """A class's F1 is stored under f1_macro (the average it enters; the data format keeps that name), and the
    report's per-label chart and table showed just that name: they say F1 per label, naming the average too."""
    text = report.read_text()
    assert "F1 per label (averaged over labels: f1_macro), best model on clean test" in text  # the chart's caption
    assert ">F1 (f1_macro)</th>" in text and ">ROC-AUC (roc_auc_macro)</th>" in text  # the table's columns
    assert "per-label f1_macro" not in text


def test_per_label_rows_are_ordered_without_a_pass_over_the_results_per_row(run_dir, monkeypatch):
    """The per-label table's sort key listed the models and the scenarios of every per-label result row again for
    each of its rows: quadratic, a study's 14,000 rows (50 tags × 8 models × 5 probes × 7 scenarios) took `repeval
    report` over 20 minutes. The orders are taken once per table."""
    import repeval.report.html as report_html
    from repeval.report.results import load_run

    calls = []
    real = report_html.ordered_scenarios
    monkeypatch.setattr(report_html, "ordered_scenarios", lambda s: calls.append(1) or real(s))
    block = report_html._per_label_block(load_run(run_dir).results, "autotagging", "magnatagatune")
    assert block.count("<tr>") > 50  # many rows ordered…
    assert len(calls) <= 2  # …with the scenarios' order taken once (and once for the scenario filter)


def test_per_label_cells_carry_only_their_own_text(report):
    """A 50-tag study's per-label table (14,000 rows a run) was 8.7 MB of a 15.4 MB two-run report. Every value is
    folded now in a table per model — rows probe × label, columns metric × scenario, so a row's keys are said once for
    all its scenarios — and a value cell holds its mean ± std and nothing else (no sort key: the sorter reads its text;
    no tooltip: what they all share is said once above them, the intervals in the tables above and results.parquet)."""
    text = report.read_text()
    table = _table(text, "labels-all-autotagging-magnatagatune-msd-musicnn")
    head, body = table.split("<tbody>")
    assert re.findall(r'<th class="rv-group" colspan="3">([^<]*)</th>', head) == [
        "ROC-AUC (roc_auc_macro)",
        "PR-AUC (pr_auc_macro)",
    ]
    rows = re.findall(r"<tr>(.*?)</tr>", body)
    assert len(rows) == 3 * 8  # probes × tags
    for row in rows:
        cells = re.findall(r"<td>([^<]*)</td>", row)
        assert len(cells) == 2 + 2 * 3 and row == "".join(f"<td>{c}</td>" for c in cells)  # no attribute anywhere
        assert all(re.fullmatch(r"0\.\d{3} ± 0\.\d{3}", c) for c in cells[2:]), cells
    assert len(body.encode()) / (len(rows) * 6) < 32  # bytes a value: ~280 when a row was a value's


def test_every_per_label_value_marks_a_cell_over_fewer_replicates(run_dir):
    """Every value's cells hold their mean ± std only; one over fewer replicates than its table's others (a failed
    training or test) says so after its value, as the preset tables' cells do, and a lone seed's value has no ±."""
    from repeval.report.html import _per_label_block
    from repeval.report.results import load_run

    df = load_run(run_dir).results
    df = df[df["task"] == "instrument_recognition"]
    model = df["model"].iloc[0]
    lost = (df["model"] == model) & (df["probe"] == "M2") & (df["scenario"] == "D1") & (df["seed"] == 1)
    table = _table(_per_label_block(df[~lost], "instrument_recognition", "tinysol"),
                   f"labels-all-instrument-recognition-tinysol-{model}")  # fmt: skip
    rows = [re.findall(r"<td>([^<]*)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1])]
    d1 = 2 + ["clean", "D1", "D2"].index("D1")
    for row in rows:
        if row[0] == "M2":
            assert re.fullmatch(r"0\.\d{3} \(n=1\)", row[d1]), row
        assert all(
            re.fullmatch(r"0\.\d{3} ± 0\.\d{3}", c) for k, c in enumerate(row[2:], 2) if row[0] != "M2" or k != d1
        )


def test_a_label_without_a_value_is_explained_where_it_is_missing(run_dir):
    """A tag whose ROC-AUC is undefined (every test track has it: a real run's warning says so) has no per-label rows
    of that metric: its cells among every value were a bare '–', and the by-model table dropped its row, neither
    saying why. Now the '–' cells' tooltip and the note above them say what a missing value means, and the table
    that leaves the label out names it."""
    from repeval.report.html import _per_label_block
    from repeval.report.labels import NO_VALUE, NO_VALUE_TIP
    from repeval.report.results import load_run
    from repeval.report.selection import combine_validation

    run = load_run(run_dir)
    task, dataset = "autotagging", "magnatagatune"
    df = run.results
    tag = str(df.loc[(df["task"] == task) & df["label"].notna(), "label"].iloc[0])
    gap = (df["task"] == task) & (df["label"] == tag) & (df["metric"] == "roc_auc_macro")
    block = html.unescape(_per_label_block(df[~gap], task, dataset, combine_validation([run])))
    assert f'<td title="{NO_VALUE_TIP}">–</td>' in block
    assert f"; –: {NO_VALUE}</p>" in block
    assert f"label {tag} left out of the tables below where it has no value in any column: the note above" in block
    assert "<td>–</td>" not in block


def test_labels_left_out_are_said_once_a_section_a_few_named_and_the_cells_tooltip_short(run_dir):
    """The "labels … left out" caption named every label, above each label table of the section, and each '–' cell
    carried the whole ~170-byte explanation: a 50-tag report's HTML grew with labels × models × that text (810 KB,
    469 KB now, 40 of 50 tags undefined). Now the caption is said once a section, five labels named and the others
    counted, the explanation once in each note, and a '–' cell's tooltip points to it."""
    from repeval.report.html import _per_label_block
    from repeval.report.labels import NO_VALUE, NO_VALUE_TIP
    from repeval.report.results import load_run
    from repeval.report.selection import combine_validation

    run = load_run(run_dir)
    task, dataset = "autotagging", "magnatagatune"
    df = run.results
    tags = list(dict.fromkeys(df.loc[(df["task"] == task) & df["label"].notna(), "label"]))
    assert len(tags) > 6
    gap = (df["task"] == task) & df["label"].isin(tags[:-1]) & (df["metric"] == "roc_auc_macro")
    block = html.unescape(_per_label_block(df[~gap], task, dataset, combine_validation([run])))
    (caption,) = re.findall(r'<p class="rv-caption">([^<]*left out[^<]*)</p>', block)
    assert re.fullmatch(
        rf"labels [^,]+, [^,]+, [^,]+, [^,]+, [^,]+ and {len(tags) - 6} others left out of the tables below where "
        "they have no value in any column: the note above says why",
        caption,
    ), caption
    assert block.count(NO_VALUE) == 2  # the label tables' note and every value's
    assert block.count(f'title="{NO_VALUE_TIP}">–</td>') == block.count("–</td>") > 0


def test_a_label_every_model_ties_on_has_no_best_model_bold():
    """A label on which every model scores alike (each 1.0: an easy class) had every cell bold, each model "the
    best"; none is bold now, while a row with one best value still marks it."""
    from repeval.report.labels import _matrix

    columns = [(m, m, ("t", "d", m)) for m in ("a", "b", "c")]
    values = {"easy": (1.0, 1.0, 1.0), "hard": (0.5, 0.7, 0.7), "gap": (0.4, float("nan"), 0.4)}
    lookup = {
        ("t", "d", m, label, "accuracy"): {"mean": v, "std": 0.0, "n": 1, "n_seeds": 1, "n_folds": 1, "lo": v, "hi": v}
        for label, vs in values.items()
        for m, v in zip("abc", vs, strict=True)
    }
    table = _matrix("x", "accuracy", vocab=list(values), columns=columns, lookup=lookup, level="95%", about="n",
                    mark_best=True, gone={}, dashed=[False])  # fmt: skip
    rows = dict(re.findall(r"<tr><td>(\w+)</td>(.*?)</tr>", table))
    assert "best" not in rows["easy"] and "best" not in rows["gap"]  # ties: the finite values all alike
    assert rows["hard"].count('class="num best"') == 2  # the two tied best of three
