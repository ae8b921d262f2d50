"""The HTML report is one self-contained file with tables, figures, config and drill-down."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from repeval.report.html import write_report


@pytest.fixture(scope="module")
def report(report_html):
    return report_html


def test_report_is_self_contained(report):
    assert report.name == "report.html"
    text = report.read_text()
    assert text.startswith("<!doctype html>")
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    # nothing is fetched: every src is a data URI, there are no stylesheet/script links
    srcs = re.findall(r'\ssrc="([^"]*)"', text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"<link\b|<script\s+src|url\(\s*['\"]?http", text)
    assert "https://" not in text and "http://" not in text


def test_report_content(report, run_dir):
    text = report.read_text()
    for heading in ("Model comparison", "All models × probes × scenarios", "Robustness", "Per-label drill-down"):
        assert text.count(heading) == 2  # one per task/dataset pair
    assert 'id="g-instrument-recognition-tinysol"' in text and 'id="g-autotagging-magnatagatune"' in text
    assert (run_dir / "config.yaml").read_text().splitlines()[0].split(":")[0] in text
    assert text.count('class="rv-table sortable"') == 2 * 3  # 3 preset tables per pair
    # per pair its per-label tables: labels by model (a metric each), by scenario (the same), every value (a model each)
    for pair, metrics in (("instrument-recognition-tinysol", 1), ("autotagging-magnatagatune", 2)):
        ids = re.findall(rf'<table class="rv-table sortable rv-\w+" id="(labels-\w+-{pair}[^"]*)"', text)
        assert [i.split("-")[1] for i in ids] == ["bymodel"] * metrics + ["byscenario"] * metrics + ["all"] * 3, ids
    assert "confusion matrix: " in text and "training curves" in text
    assert 'class="rv-select"' in text and 'class="rv-filter"' in text
    assert "std is the sample standard deviation, n − 1" in text  # which std the ± is, stated where it is read
    # each pair leads with who is best on clean audio and who survives its deformations best
    assert text.count("<span>best on clean ") == text.count('<div class="rv-card rv-robust"><span>most robust: ') == 2
    # figures of a task's first two metrics: the third (the instruments' f1_micro) is said to be in the tables alone
    assert text.count("figures of the first two metrics") == 1, re.findall(r"figures of the first[^<]*", text)
    assert "figures of the first two metrics, accuracy and f1_macro; the tables above have f1_micro too" in text


def _table(text: str, tid_start: str) -> str:
    """The HTML table of ``text`` whose id starts with ``tid_start``."""
    (table,) = re.findall(rf'<table class="rv-table[^"]*" id="{tid_start}[^"]*"[^>]*>.*?</table>', text, re.S)
    return table


def test_report_over_two_runs(run_dir, second_run_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="repeval")
    out = write_report([run_dir, second_run_dir], tmp_path / "both.html")
    # `repeval report` prints "report: PATH"; the log's "INFO …: wrote report for 2 run(s) to PATH" repeated it
    assert [
        r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and "wrote report" in r.getMessage()
    ] == []
    text = out.read_text()
    assert out.name == "both.html"
    assert "runs: demo, other" in text
    assert "other/msd-musicnn" in text  # plots keep the runs' models apart
    assert "not ranked across runs" not in text and "test sets differ" not in text  # both scored on 90 test tracks
    assert '<td data-value="other">other</td>' in text  # tables gain a run_id column
    # ... and keep the model's own name beside it (they repeated the run: "other | other/msd-musicnn"), so that the
    # report's tables are `repeval table`'s: same rows, same cells
    from repeval.report.tables import table_command

    for preset in ("model_comparison", "all_deform_all_models", "robustness"):
        tid = f"t-{preset.replace('_', '-')}-instrument-recognition-tinysol"
        block = text[text.index(f'id="{tid}"') : text.index("</table>", text.index(f'id="{tid}"'))]
        rows = re.findall(r'<tr><td data-value="([^"]*)">[^<]*</td><td data-value="([^"]*)">', block)
        assert rows and all("/" not in model for _, model in rows), rows[:3]
        values = [float(v or "nan") for v in re.findall(r'class="num[^"]*" data-value="([^"]*)"', block)]
        csv = pd.read_csv(
            io.StringIO(table_command([run_dir, second_run_dir], preset, "csv", task="instrument_recognition"))
        )
        assert [tuple(r) for r in csv[["run_id", "model"]].itertuples(index=False)] == rows
        means = [c for c in csv.columns[3:] if not re.search(r":(std|n|n_seeds|n_folds|ci_low|ci_high)$", c)]
        assert values == pytest.approx(csv[means].to_numpy().ravel().tolist(), nan_ok=True)


def test_a_task_that_aggregates_predictions_or_augments_says_so_in_its_heading(report, tmp_path):
    from repeval.report.results import Run
    from repeval.report.training import preset_notes
    from repeval.report.training import task_notes as _task_notes

    assert "mean prediction" not in report.read_text()  # the fake run's tasks aggregate embeddings (mean)

    def run(task: dict, **exp) -> Run:
        text = yaml.safe_dump({"experiments": [{"task": task, **exp}]})
        return Run("r", Path(tmp_path), pd.DataFrame(), config_text=text)

    pred = "probes trained on frames, each track scored by its frames' mean prediction"
    assert _task_notes([run({"name": "tags", "embedding_aggregation": "prediction"})], "tags") == [pred]
    assert _task_notes([run({"name": "a", "aggregation": "mean"}), run({"name": "tags", "aggregation": "prediction"}),
                        run({"name": "tags", "aggregation": "prediction"})], "tags") == [pred]  # fmt: skip
    assert _task_notes([run({"name": "tags", "embedding_aggregation": "prediction"})], "other") == []
    assert _task_notes([run({"name": "tags", "aggregation": "attention"})], "tags") == [
        "probes pool each track's frames with learned attention weights"
    ]
    assert _task_notes([run({"name": "tags", "aggregation": "embedding_mean"})], "tags") == []
    assert _task_notes([run({"name": "tags"}, augment=["noise", "mp3"])], "tags") == [
        "training tracks augmented with their deformed copies (noise, mp3)"
    ]
    # the published probe protocol the numbers follow, where it comes from and where it departs from it (a line of
    # its own under the heading, not in it)
    juke = run({"name": "tags"}, downstream_models=[{"preset": "jukemir"}, {"name": "lin"}])
    assert _task_notes([juke], "tags") == []
    [note] = preset_notes([juke], "tags")
    assert note.startswith(
        "probe preset jukemir: Jukemir's 216-config grid, best by validation then one test run [Castellon et al. "
        "2021, Jukemir; p-lambda/jukemir jukemir/probe/__init__.py _PAPER_GRID]; differs from the source: validated "
        "once per epoch, "
    )
    assert "patience 10 validations, at most 100 epochs (Jukemir" in note
    assert "; batches are epoch permutations (Jukemir draws" in note
    # on frames (prediction aggregation) of tracks of unequal lengths, frames are drawn with replacement: said so
    frames = run({"name": "tags", "aggregation": "prediction"}, downstream_models=[{"preset": "jukemir"}])
    [note_frames] = preset_notes([frames], "tags")
    drawn = "epoch permutations of the frames, or, where tracks have unequal numbers of frames, frames drawn with"
    assert f"; batches are {drawn} replacement, each track weighing alike (Jukemir" in note_frames
    # the run's max_epochs caps what the probes trained: the note says the cap, not the preset's 100
    capped = Run("r", Path(tmp_path), pd.DataFrame(), config_text=yaml.safe_dump({**yaml.safe_load(juke.config_text),
                                                                                 "run": {"max_epochs": 4}}))  # fmt: skip
    assert "patience 10 validations, at most 4 epochs (Jukemir" in preset_notes([capped], "tags")[0]
    # over several runs, a preset some of them use is led by those runs; one every run uses alike is not
    lr = run({"name": "tags"}, downstream_models=[{"preset": "hear", "name": "hear-lr", "learning_rate": 1e-3}])
    both = [Run(r, Path(tmp_path), pd.DataFrame(), config_text=x.config_text) for r, x in (("r1", juke), ("r2", lr))]
    notes = preset_notes(both, "tags")
    assert [n.split(": probe ")[0] for n in notes] == ["r1", "r2"] and notes[1].startswith("r2: probe hear-lr, preset")
    assert preset_notes([both[0], Run("r3", Path(tmp_path), pd.DataFrame(), config_text=juke.config_text)], "tags") == [
        note
    ]


def test_a_dataset_two_tasks_share_gets_a_tasks_compared_section(tmp_path, report):
    from repeval.report.html import build_report_html
    from repeval.report.results import load_run
    from repeval.testing.results import FakeExperiment, FakeRunSpec, make_run_dir

    assert "tasks compared" not in report.read_text()  # the fake run's two tasks are on two datasets
    metrics = ("accuracy", "f1_macro")
    spec = FakeRunSpec(
        run_id="pair", n_resamples=20, probes=("M1",), seeds=(0,), models=("mfcc-stats",), scenarios=("clean", "D1"),
        experiments=(FakeExperiment("clean_training", "multiclass_classification", "notes", 4, metrics),
                     FakeExperiment("augmented", "multiclass_classification", "notes", 4, metrics)),
    )  # fmt: skip
    text = build_report_html([load_run(make_run_dir(tmp_path, spec))])
    assert '<a href="#tasks-notes">tasks / notes</a>' in text
    section = text[text.index('<section class="rv-group" id="tasks-notes">') :]
    section = section[: section.index("</section>")]
    assert "notes — tasks compared" in section and "clean_training, augmented" in section
    assert section.count('<td data-value="clean_training">') == section.count('<td data-value="augmented">') == 1


def test_summary_cards_count_the_tracks_each_model_was_scored_on_and_the_groups_own_seeds(run_dir):
    """The "test tracks" card showed the largest ``n_test`` of the clean results as the count "per evaluation":
    a model (or scenario) that lost tracks to error records was scored on fewer, which the card hid. It gives the
    range with the models and scenarios that have fewer. The grid card counted the seeds of every task."""
    from repeval.report.results import load_run
    from repeval.report.summary import summary_cards

    df = load_run(run_dir).results
    cards = summary_cards(df, "instrument_recognition", "tinysol")
    assert "<span>test tracks scored</span><b>90</b><span>per evaluation</span>" in cards
    df.loc[(df["model"] == "msd-musicnn") & (df["scenario"] == "D1"), "n_test"] = 87  # 3 tracks failed to deform
    df.loc[df["model"] == "logmel-stats", "n_test"] = 89  # one track failed to embed: in no scenario's test
    cards = summary_cards(df, "instrument_recognition", "tinysol")
    assert "<b>87–90</b><span>per evaluation; fewer where tracks were left out of evaluation: logmel-stats on " in (
        cards
    )
    assert "logmel-stats on clean 89, msd-musicnn on D1 87, logmel-stats on D1 89, logmel-stats on D2 89" in cards
    one_seed = df[(df["task"] == "instrument_recognition") | (df["seed"] == 0)]  # the other task: seed 0 alone
    # clean and 2 deformations: the most robust card's "over 2 scenarios" and the grid card read alike (not "3")
    assert "<span>1 seed, clean + 2 deformation scenarios</span>" in summary_cards(
        one_seed, "autotagging", "magnatagatune"
    )
    # a catalog's test set, in thousands as every count the report says ("1196 per evaluation" before)
    big = df.assign(n_test=1196)
    big.loc[(big["model"] == "msd-musicnn") & (big["scenario"] == "D1"), "n_test"] = 1194
    assert "<b>1,194–1,196</b><span>per evaluation; fewer where tracks were left out of evaluation: msd-musicnn on " \
        "D1 1,194</span>" in summary_cards(big, "instrument_recognition", "tinysol")  # fmt: skip
    assert "<b>1,196</b><span>per evaluation" in summary_cards(df.assign(n_test=1196), "autotagging", "magnatagatune")
    clean_only = summary_cards(df[df["scenario"] == "clean"], "autotagging", "magnatagatune")
    assert "<span>2 seeds, clean audio only</span>" in clean_only
    # k folds: every track is tested in one fold, so the tracks of all folds (not the largest fold's)
    folds = pd.concat([df.assign(fold=k, n_test=30) for k in range(3)], ignore_index=True).astype({"fold": "Int64"})
    cards = summary_cards(folds, "autotagging", "magnatagatune")
    assert "<b>90</b><span>over the 3 folds (each track tested in one)</span>" in cards
    # folds that share test tracks (a split column fixing some): a track tested in several is counted in each
    cards = summary_cards(folds.assign(fold_overlap=0.2), "autotagging", "magnatagatune")
    assert (
        "<b>90</b><span>over the 3 folds (the folds share test tracks: one tested in several is counted in each)"
        in cards
    )
    # two runs, the report's models named <run>/<model>: a smoke test's smaller test set is its own, not tracks left
    # out (the card listed every smoke model as "fewer where tracks were left out"), and the grid counts each model once
    fresh = load_run(run_dir).results
    smoke = fresh.assign(run_id="smoke", n_test=10)
    both = pd.concat(
        [fresh.assign(model="demo/" + fresh["model"]), smoke.assign(model="smoke/" + smoke["model"])], ignore_index=True
    )
    smoke_lost = both["model"].eq("smoke/logmel-stats") & both["scenario"].eq("D1")
    cards = summary_cards(both.assign(n_test=both["n_test"].mask(smoke_lost, 9)), "instrument_recognition", "tinysol")
    assert (
        "<b>9–90</b><span>per evaluation; the runs&#x27; test sets differ: demo 90, smoke 10; fewer where tracks were "
        "left out of evaluation: smoke/logmel-stats on D1 9</span>"
    ) in cards
    assert "<b>3 models × 3 probes in 2 runs</b>" in cards
    # ... and the smoke run's models are not ranked against the full run's: each run has its best, and a card says why
    assert "<span>not ranked across runs</span><b>2 test sets</b><span>the runs&#x27; test sets differ (demo 90 test " \
        "tracks, smoke 10): each run is ranked with those scored on the same test tracks" in cards  # fmt: skip
    for run in ("demo", "smoke"):
        best = re.search(rf"best on clean accuracy in {run}</span><b>([^<]*)</b>", cards)
        assert best and best[1].startswith(f"{run}/") and "(tied)" not in best[1], cards
    assert "in demo" not in summary_cards(both[both["run_id"] == "demo"], "instrument_recognition", "tinysol")


def test_names_in_any_script_get_distinct_ids_and_names_are_escaped(tmp_path):
    """Two tasks named in a non-Latin script (τέμπο, ρυθμός) on one dataset made the same element ids (``g-ds``, the tables'
    ``t-…-ds``): both nav links led to the first section and the second section's filter and sorter drove the
    first one's table. Every id is distinct now, each link reaches its section, and HTML in names is text."""
    from collections import Counter

    from repeval.report.html import build_report_html
    from repeval.report.results import load_run
    from repeval.testing.results import FakeExperiment, FakeRunSpec, make_run_dir

    metrics = ("accuracy", "f1_macro")
    spec = FakeRunSpec(
        run_id="r<&>", n_resamples=5, probes=("M1",), seeds=(0,), models=("m<script>x</script>",),
        scenarios=("clean", "D&1"),
        experiments=(FakeExperiment("τέμπο", "multiclass_classification", "ds", 4, metrics),
                     FakeExperiment("ρυθμός", "multiclass_classification", "ds", 4, metrics)),
    )  # fmt: skip
    text = build_report_html([load_run(make_run_dir(tmp_path, spec))])
    ids = Counter(re.findall(r'\sid="([^"]*)"', text))
    assert [k for k, n in ids.items() if n > 1] == []
    targets = re.findall(r'data-target="([^"]*)"', text[: text.index("<script>")])  # the page, not the script
    links = re.findall(r'<a href="#([^"]*)">', text)
    assert targets and all(t in ids for t in targets) and all(a in ids for a in links)
    heads = {
        re.search(r'id="(g-[^"]*)"', s).group(1) for s in re.findall(r'<section class="rv-group" id="g-[^>]*>', text)
    }
    assert len(heads) == 2 and len(set(links) & heads) == 2
    assert "<script>x" not in text and "m&lt;script&gt;x&lt;/script&gt;" in text and "D&amp;1" in text


def test_intervals_are_labelled_with_the_runs_level(tmp_path):
    """A run with ``run.ci_alpha: 0.1`` stores 90% intervals; the report's header, its cells' tooltips and an HTML table
    called them 95% whatever the level."""
    from repeval.report.tables import table_command
    from repeval.testing.results import DEFAULT_EXPERIMENTS, FakeRunSpec, make_run_dir

    spec = FakeRunSpec(
        run_id="a90", experiments=DEFAULT_EXPERIMENTS[1:], models=("logmel-stats",), probes=("M1",), seeds=(0,),
        scenarios=("clean",), n_test=40, n_resamples=20,
    )  # fmt: skip
    run = make_run_dir(tmp_path, spec)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["run"]["ci_alpha"] = 0.1
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    text = write_report([run], tmp_path / "r.html").read_text()
    assert "Hover a value for its 90% bootstrap interval" in text
    tips = re.findall(r'title="(n=[^"]*)"', text)
    # the per-label cells say "90% CI", their account above the table what the interval is
    assert tips and all("; 90% bootstrap CI of the mean" in t or "; 90% CI [" in t for t in tips), tips[:3]
    # …the tables' too, what the interval is said once in the account above each (it was in each of a study's cells)
    about = re.search(r'<p class="rv-note" id="t-model-comparison-[^"]*-about">([^<]*)</p>', text).group(1)
    assert about.endswith("hover a cell for n and its 90% interval, the 90% bootstrap CI of the mean (seeds averaged)")
    assert "95%" not in text
    table = table_command([run], "model_comparison", "html")
    assert "90% bootstrap CI of the mean" in table and "95%" not in table
