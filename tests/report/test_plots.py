"""Figures: written as PNG and SVG, and showing the numbers they claim to."""

from __future__ import annotations

import itertools

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from repeval.report import plots
from repeval.report.results import load_run

TASK, DATASET = "instrument_recognition", "tinysol"


@pytest.fixture(scope="module")
def run(run_dir):
    return load_run(run_dir)


def _check_written(fig, tmp_path, name):
    paths = plots.save_figure(fig, tmp_path / name)
    assert [p.suffix for p in paths] == [".png", ".svg"]
    img = mpimg.imread(paths[0])
    assert img.shape[0] > 100 and img.shape[1] > 100 and img[..., :3].std() > 0.01  # not blank
    assert paths[1].read_text().lstrip().startswith("<?xml") and "<svg" in paths[1].read_text()


def test_robustness_heatmap_shows_deltas(run, tmp_path):
    df = run.results
    probes = plots.best_probes(df, TASK, DATASET, "accuracy")
    fig = plots.robustness_heatmap(df, TASK, DATASET, "accuracy")
    data = fig.axes[0].images[0].get_array()
    model = next(iter(probes))
    sel = df[df["label"].isna() & (df["task"] == TASK) & (df["metric"] == "accuracy") & (df["model"] == model)
             & (df["probe"] == probes[model])].pivot_table(index="seed", columns="scenario", values="value")  # fmt: skip
    assert data[0, 0] == pytest.approx((sel["D1"] - sel["clean"]).mean())
    assert data.shape == (3, 2)
    _check_written(fig, tmp_path, "heat")


def test_robustness_heatmap_draws_the_paired_delta_and_stars_one_that_left_tracks_out(run):
    df = run.results.copy()
    model = next(iter(plots.best_probes(df, TASK, DATASET, "accuracy")))
    lost = (df["model"] == model) & (df["scenario"] == "D1")
    df.loc[lost, "delta"], df.loc[lost, "n_delta"] = -0.5, 88  # two tracks failed to deform
    fig = plots.robustness_heatmap(df, TASK, DATASET, "accuracy")
    assert fig.axes[0].images[0].get_array()[0, 0] == pytest.approx(-0.5)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts[0] == "−0.500*" and sum(t.endswith("*") for t in texts) == 1
    assert fig.axes[0].get_xlabel() == "* tracks left out of Δ: see the robustness table"


def test_the_reports_heat_map_is_a_table_of_the_figures_numbers_with_its_stars(run):
    """The report inlined the heat map as a full-colour PNG (~100 KB each, 1.2 MB of a two-run study's report); it
    shows the same grid as an HTML table: each model's Δ per scenario, shaded and signed, a starred cell where tracks
    were left out, the legend saying so; a grid that cannot be made is a note."""
    import re
    from functools import partial

    from repeval.report.heat import robustness_html
    from repeval.report.render import fmt_number

    df = run.results.copy()
    probes = plots.best_probes(df, TASK, DATASET, "accuracy")
    model = next(iter(probes))
    lost = (df["model"] == model) & (df["scenario"] == "D1")
    df.loc[lost, "delta"], df.loc[lost, "n_delta"] = -0.5, 88  # two tracks failed to deform
    grid = plots.robustness_grid(df, TASK, DATASET, "accuracy")
    assert grid.probes == probes and grid.scenarios == ["D1", "D2"] and grid.starred == {(model, "D1")}
    out = robustness_html(partial(plots.robustness_grid, df, TASK, DATASET, "accuracy"), "robustness: accuracy")
    rows = re.findall(r'<tr><th scope="row">([^<]*)</th>(.*?)</tr>', out)
    assert [r[0] for r in rows] == [f"{m} ({p})" for m, p in probes.items()]
    texts = [re.findall(r"<td[^>]*>([^<]*)</td>", r[1]) for r in rows]
    assert texts[0][0] == "−0.500*" and sum(t.endswith("*") for row in texts for t in row) == 1
    assert texts[1:] == [[fmt_number(v, signed=True) for v in row] for row in grid.values[1:].tolist()]
    assert "* tracks left out of Δ: see the robustness table" in out and "<img" not in out
    clean_only = df[df["scenario"] == "clean"]
    note = robustness_html(partial(plots.robustness_grid, clean_only, TASK, DATASET), "robustness: accuracy")
    assert note.startswith('<p class="rv-note">robustness: accuracy: not available (') and "deformed" in note


def test_other_figures(run, tmp_path):
    df = run.results
    fig = plots.probe_capacity_curves(df, TASK, DATASET, "f1_macro")
    assert len(fig.axes[0].get_xticklabels()) == 3
    # M1-M5 do not grow in that order (M4 [infer] on 200 dimensions and 50 tags is [126], smaller than M2's [128])
    assert fig.axes[0].get_xlabel() == "probe"
    _check_written(fig, tmp_path, "capacity")
    renamed = df.assign(probe=df["probe"].map({"M1": "linear", "M2": "mlp", "M5": "jukemir"}))
    fig = plots.probe_capacity_curves(renamed, TASK, DATASET, "f1_macro")
    assert fig.axes[0].get_xlabel() == "probe"  # names that do not say their size: no claim about the order
    fig = plots.per_label_bars(df, "autotagging", "magnatagatune")
    assert len(fig.axes[0].patches) == 8  # one bar per tag
    _check_written(fig, tmp_path, "labels")
    labels, matrix = next(iter(run.confusion.values()))
    _check_written(plots.confusion_matrix_figure(labels, matrix, title="cm"), tmp_path, "cm")
    _check_written(plots.training_curves(run.history, TASK, DATASET), tmp_path, "train")
    # a preset's grid trains configurations that were not tested (juke-000, …): only the tested probes are drawn
    hist = run.history[(run.history["task"] == TASK) & (run.history["dataset"] == DATASET)]
    grid = pd.concat([hist.assign(probe=f"juke-{i:03d}") for i in range(40)], ignore_index=True)
    fig = plots.training_curves(pd.concat([hist, grid], ignore_index=True), TASK, DATASET, tested=df)
    drawn = {line.get_label() for ax in fig.axes for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert drawn == set(df[(df["task"] == TASK) & (df["dataset"] == DATASET)]["probe"]) and drawn
    uri = plots.figure_data_uri(plots.confusion_matrix_figure(labels, np.zeros_like(matrix)))
    assert uri.startswith("data:image/png;base64,")


def test_confusion_matrix_writes_a_value_only_where_tracks_fell():
    """Every cell was written, a grid of 0.00 around the few that matter: an empty cell is left blank now, a cell
    with tracks keeps its fraction (a small one too: 1 of 300 reads <0.01, not 0.00)."""
    matrix = np.array([[299, 1, 0], [0, 3, 1], [0, 0, 0]])
    fig = plots.confusion_matrix_figure(["a", "b", "c"], matrix)
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in fig.axes[0].texts}
    assert texts == {(0, 0): "1.00", (0, 1): "<0.01", (1, 1): "0.75", (1, 2): "0.25"}
    counts = plots.confusion_matrix_figure(["a", "b", "c"], matrix, normalize=False)
    assert sorted(t.get_text() for t in counts.axes[0].texts) == ["1", "1", "299", "3"]


def test_plot_errors_are_explicit(run):
    with pytest.raises(ValueError, match="metric 'r2' is not in these results"):
        plots.probe_capacity_curves(run.results, TASK, DATASET, "r2")
    clean_only = run.results[run.results["scenario"] == "clean"]
    with pytest.raises(ValueError, match="needs deformed scenarios"):
        plots.robustness_heatmap(clean_only, TASK, DATASET)


def _drawn(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    return renderer


def test_robustness_heatmap_fits_long_row_names_and_scenario_names(run):
    """In a report over several runs the rows are ``run/model (probe)``: the figure kept its width, the heat map
    shrank, the scenario names (``mp3_32kbps``, ``noise_10db``) ran into each other and the title was cut at the
    figure's edge. The width now follows the names: no tick label overlaps another, every text is inside the figure."""
    names = {"D1": "mp3_32kbps", "D2": "noise_10db"}
    df = run.results.assign(
        model="quickstart_s3/" + run.results["model"], scenario=run.results["scenario"].replace(names)
    )
    fig = plots.robustness_heatmap(df, TASK, DATASET, "accuracy")
    renderer = _drawn(fig)
    ax = fig.axes[0]
    ticks = sorted((t.get_window_extent(renderer) for t in ax.get_xticklabels()), key=lambda b: b.x0)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["mp3_32kbps", "noise_10db"]
    assert all(a.x1 <= b.x0 for a, b in itertools.pairwise(ticks)), [(b.x0, b.x1) for b in ticks]
    page = fig.bbox
    texts = [ax.title, *ax.get_xticklabels(), *ax.get_yticklabels()]
    for t in texts:
        box = t.get_window_extent(renderer)
        assert box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1, (t.get_text(), box.x0, box.x1, page.x1)


def test_probe_capacity_says_what_its_error_bars_are(run):
    """The probe capacity figure's error bars (the sample std over seeds, as the tables' ±) were unlabelled, next to
    per-label bars whose whiskers are bootstrap intervals. The y axis says so where there are bars, not with one seed."""
    df = run.results
    fig = plots.probe_capacity_curves(df, TASK, DATASET, "f1_macro")
    assert fig.axes[0].get_ylabel() == "f1_macro (mean ± std over seeds)"
    (bars,) = fig.axes[0].containers[0].lines[2]
    assert max(abs(s[1][1] - s[0][1]) for s in bars.get_segments()) > 0  # there are bars to explain
    one_seed = plots.probe_capacity_curves(df[df["seed"] == df["seed"].min()], TASK, DATASET, "f1_macro")
    assert one_seed.axes[0].get_ylabel() == "f1_macro"


def test_a_per_label_chart_names_the_value_not_only_its_average(run):
    from repeval.report.cells import per_label_value

    fig = plots.per_label_bars(run.results, TASK, DATASET, "f1_macro")
    assert fig.axes[0].get_xlabel().startswith("F1 per label (averaged over labels: f1_macro)")
    expect = {"balanced_accuracy": "recall", "pr_auc_macro": "PR-AUC", "f1_macro@0.3": "F1 at ≥ 0.3", "r2": "R²"}
    assert {m: per_label_value(m) for m in expect} == expect


def test_probe_capacity_tells_sixteen_models_apart_and_keeps_its_legend_off_the_lines(run):
    """Two runs of 8 models: the 16 lines cycled 10 colours (two models drawn alike) under a legend laid over them.
    Now no two lines look alike — a colour per model, a style per run — and the legend sits beside the axes."""
    df = run.results
    df = df[(df["task"] == TASK) & (df["model"] == df["model"].iloc[0])]
    names = [f"model-{i}" for i in range(8)]
    both = pd.concat(
        [df.assign(model=f"{r}/{n}", value=df["value"] - 0.01 * i) for r in ("r1", "r2") for i, n in enumerate(names)]
    )
    fig = plots.probe_capacity_curves(both, TASK, DATASET, "f1_macro", run_prefixed=True)
    ax = fig.axes[0]
    lines = [c.lines[0] for c in ax.containers]
    looks = {(ln.get_color(), str(ln.get_linestyle()), ln.get_marker()) for ln in lines}
    assert len(lines) == len(looks) == 16
    by_label = {c.get_label(): c.lines[0] for c in ax.containers}
    # a model's two runs share a colour, the runs differ in style
    assert by_label["r1/model-3"].get_color() == by_label["r2/model-3"].get_color()
    assert by_label["r1/model-3"].get_linestyle() != by_label["r2/model-3"].get_linestyle()
    renderer = _drawn(fig)
    legend, axes_box = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
    assert legend.x0 >= axes_box.x1  # beside the plot, not over its lines
    assert legend.x1 <= fig.bbox.x1 + 1 and legend.y0 >= fig.bbox.y0 - 1  # and on the figure
    # one run's 11+ models: the colours come round again with another style
    many = pd.concat([df.assign(model=f"m{i}") for i in range(12)])
    lines = [c.lines[0] for c in plots.probe_capacity_curves(many, TASK, DATASET, "f1_macro").axes[0].containers]
    assert len({(ln.get_color(), str(ln.get_linestyle()), ln.get_marker()) for ln in lines}) == 12


def test_probe_capacity_groups_a_models_runs_when_a_run_is_shown_with_a_slash(run):
    """Two runs of one id are shown as ``demo`` and ``demo@laptop/runs``: the lines cut ``<run>/<model>`` at its first
    '/', so ``demo@laptop/runs/a`` was model ``runs/a`` of run ``demo@laptop`` — a model's two runs in two colours,
    read as two models. Now a model's runs share a colour (the run ids come with the rows), a model id's own '/' too."""
    df = run.results
    df = df[(df["task"] == TASK) & (df["model"] == df["model"].iloc[0])]
    both = pd.concat(
        [df.assign(run_id=r, model=f"{r}/{m}") for r in ("demo", "demo@laptop/runs") for m in ("a", "m-a-p/MERT")]
    )
    ax = plots.probe_capacity_curves(both, TASK, DATASET, "f1_macro", run_prefixed=True).axes[0]
    by_label = {c.get_label(): c.lines[0] for c in ax.containers}
    for m in ("a", "m-a-p/MERT"):
        assert by_label[f"demo/{m}"].get_color() == by_label[f"demo@laptop/runs/{m}"].get_color(), m
        assert by_label[f"demo/{m}"].get_linestyle() != by_label[f"demo@laptop/runs/{m}"].get_linestyle(), m
    assert by_label["demo/a"].get_color() != by_label["demo/m-a-p/MERT"].get_color()


def test_inlined_line_figures_are_palette_pngs_that_look_the_same_and_colour_maps_keep_full_colour(run):
    """The report's figures were full-colour PNGs, 6 MB of a two-run study's report, most of it line and bar charts
    whose few colours a 256-colour palette holds: those are inlined as palette PNGs (each a fraction of the bytes,
    the pixels the same to the eye); a figure with a colour map (heat map, confusion matrix) keeps full colour — its
    colour bar would show bands."""
    import base64
    import io

    from PIL import Image

    def decoded(uri):
        return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))

    fig = plots.training_curves(run.history, TASK, DATASET)
    full = io.BytesIO()
    fig.savefig(full, format="png")
    small = decoded(plots.figure_data_uri(fig))
    truth = Image.open(io.BytesIO(full.getvalue()))
    assert small.mode == "P" and truth.mode == "RGBA"
    assert len(base64.b64decode(plots.figure_data_uri(fig).split(",", 1)[1])) < len(full.getvalue()) / 2
    a = np.asarray(small.convert("RGB"), dtype=float) / 255
    b = np.asarray(truth.convert("RGB"), dtype=float) / 255
    assert a.shape == b.shape and np.abs(a - b).mean() < 0.01  # the same picture
    heat = decoded(plots.figure_data_uri(plots.robustness_heatmap(run.results, TASK, DATASET, "accuracy")))
    assert heat.mode == "RGBA"


def test_training_curves_keep_their_legend_off_every_panel(run):
    """The probes' legend sat in the first panel, over that model's curves; it is beside the panels now."""
    fig = plots.training_curves(run.history, TASK, DATASET)
    renderer = _drawn(fig)
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert [t.get_text() for t in legend.get_texts()] == ["M1", "M2", "M5"]
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes if ax.get_visible())
    assert box.x1 <= fig.bbox.x1 + 1


def test_inlined_figures_follow_the_savefig_settings_of_a_matplotlibrc(run):
    """A matplotlibrc's ``savefig.dpi`` (a HiDPI report) or ``savefig.facecolor`` applied to every inlined figure,
    as ``savefig`` wrote them; drawing a figure once on its canvas (not through ``savefig``) dropped them from the
    line and bar charts while the confusion matrices kept them."""
    import base64
    import io

    import matplotlib as mpl
    from PIL import Image

    with mpl.rc_context({"savefig.dpi": 150, "savefig.facecolor": "yellow"}):
        fig = plots.training_curves(run.history, TASK, DATASET)
        full = io.BytesIO()
        fig.savefig(full, format="png")
        uri = plots.figure_data_uri(fig)
    small = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    truth = Image.open(io.BytesIO(full.getvalue()))
    assert small.mode == "P" and small.size == truth.size
    a = np.asarray(small.convert("RGB"), dtype=float) / 255
    b = np.asarray(truth.convert("RGB"), dtype=float) / 255
    assert np.abs(a - b).mean() < 0.01  # the same picture, yellow margins and all


def test_inlined_figures_keep_the_transparency_of_savefig_transparent(run):
    """``savefig.transparent: true`` in a matplotlibrc gave opaque line and bar charts, white where the page should
    show through: their 256-colour palette was made of the RGB channels only. Now the palette carries each colour's
    alpha (PNG's tRNS), the background see-through and the lines opaque as ``savefig`` wrote them."""
    import base64
    import io

    import matplotlib as mpl
    from PIL import Image

    with mpl.rc_context({"savefig.transparent": True}):
        fig = plots.training_curves(run.history, TASK, DATASET)
        fig.savefig(io.BytesIO(), format="png")  # a first draw lays it out a little differently from the next
        full = io.BytesIO()
        fig.savefig(full, format="png")
        uri = plots.figure_data_uri(fig)
    small = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGBA"), dtype=float)
    truth = np.asarray(Image.open(io.BytesIO(full.getvalue())).convert("RGBA"), dtype=float)
    assert (truth[..., 3] == 0).mean() > 0.5  # mostly background, see-through as savefig wrote it
    assert small.shape == truth.shape and np.abs(small[..., 3] - truth[..., 3]).mean() / 255 < 0.01
    assert np.abs(small - truth).mean() / 255 < 0.01  # the same picture, alpha and all
    # opaque stays opaque: the palette averaged a line's opaque middle with its see-through edges (alpha 253)
    opaque = truth[..., 3] == 255
    assert opaque.sum() > 1000 and (small[..., 3][opaque] == 255).all(), np.unique(small[..., 3][opaque])
    assert (small[..., 3][truth[..., 3] == 0] == 0).all()


def test_a_see_through_figures_translucent_fills_keep_their_detail_in_the_palette(tmp_path):
    """Keeping a see-through figure's opaque pixels opaque gave them half of the 256-colour palette however few they
    were: a figure of translucent bands (``fill_between(alpha=0.2)``, half its pixels) came out coarser than
    quantised in one palette. Now each part gets a share by its pixels: the bands as faithful as before, opaque opaque."""
    import base64
    import io

    import matplotlib as mpl
    from matplotlib.figure import Figure
    from PIL import Image

    fig = Figure(figsize=(4, 3), dpi=plots.FIG_DPI, layout="constrained")
    ax = fig.add_subplot()
    x = np.linspace(0, 10, 200)
    for i in range(6):
        ax.plot(x, np.sin(x + i) + 0.3 * i, label=f"m{i}")
        ax.fill_between(x, np.sin(x + i) + 0.3 * i - 0.4, np.sin(x + i) + 0.3 * i + 0.4, alpha=0.2)
    ax.legend()
    with mpl.rc_context({"savefig.transparent": True}):
        fig.savefig(io.BytesIO(), format="png")  # laid out as figure_data_uri draws it
        full = io.BytesIO()
        fig.savefig(full, format="png")
        uri = plots.figure_data_uri(fig)
    truth = Image.open(io.BytesIO(full.getvalue())).convert("RGBA")
    joint = truth.quantize(256, method=Image.Quantize.FASTOCTREE).convert("RGBA")  # one palette: opaque → 253

    def on_white(image):
        px = np.asarray(image, dtype=float)
        return px[..., :3] * px[..., 3:] / 255 + 255 * (1 - px[..., 3:] / 255)

    small = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGBA")
    assert (np.asarray(small)[..., 3][np.asarray(truth)[..., 3] == 255] == 255).all()
    err, err_joint = (np.abs(on_white(i) - on_white(truth)).mean() for i in (small, joint))
    assert err <= 1.05 * err_joint, (err, err_joint)


def test_probe_capacity_shifts_points_only_to_keep_error_bars_apart_and_a_little(run):
    """The points of each model were shifted sideways to keep error bars apart — with one seed too, where there are
    none, and by ±0.2 of a probe's step for two models: the quickstart's second model's last point sat past the last
    probe's tick, as if at another probe. Without error bars each point is at its probe; with them, two models' are
    0.1 of a step apart, and never spread over more than 0.4 of one."""
    df = run.results
    one_seed = plots.probe_capacity_curves(df[df["seed"] == df["seed"].min()], TASK, DATASET, "f1_macro")
    for c in one_seed.axes[0].containers:
        np.testing.assert_allclose(c.lines[0].get_xdata(), np.arange(len(c.lines[0].get_xdata())))
    two = df[df["model"].isin(list(dict.fromkeys(df["model"]))[:2])]
    xs = [
        c.lines[0].get_xdata() for c in plots.probe_capacity_curves(two, TASK, DATASET, "f1_macro").axes[0].containers
    ]
    np.testing.assert_allclose(xs[1] - xs[0], 0.1)
    np.testing.assert_allclose((xs[0] + xs[1]) / 2, np.arange(len(xs[0])))  # about each probe's tick
    every = [
        c.lines[0].get_xdata()[0] for c in plots.probe_capacity_curves(df, TASK, DATASET, "f1_macro").axes[0].containers
    ]
    assert max(every) - min(every) <= 0.4 + 1e-9
