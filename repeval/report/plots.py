"""Report figures (matplotlib, object API on the Agg canvas: no pyplot state, no display).

Every function returns a :class:`matplotlib.figure.Figure`; :func:`save_figure` writes PNG and
SVG, :func:`figure_data_uri` inlines one in HTML.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.figure import Figure

from repeval.report.cells import _higher, per_label_title
from repeval.report.deltas import left_out, paired_deltas
from repeval.report.precision import column_decimals
from repeval.report.render import fmt_number
from repeval.report.results import CLEAN, natural_key, ordered_scenarios
from repeval.report.selection import ProbeChoice, choose_probes, split_run
from repeval.tuning.results import mean_intervals

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)

FIG_DPI = 100
#: the width of a character of the 10-pt tick labels and titles, in inches (DejaVu Sans averages ~0.6 em), to size
#: a figure by its labels
_TEXT_IN_PER_CHAR = 0.075


def _group(results: pd.DataFrame, task: str, dataset: str, *, per_label: bool = False) -> pd.DataFrame:
    df = results[(results["task"] == task) & (results["dataset"] == dataset)]
    df = df[df["label"].notna()] if per_label else df[df["label"].isna()]
    if df.empty:
        kind = "per-label" if per_label else "aggregate"
        raise ValueError(f"no {kind} results for task '{task}' on dataset '{dataset}'")
    return df


def _metric(df: pd.DataFrame, metric: str | None) -> str:
    present = list(df["metric"].unique())  # in order of appearance
    if metric is None:
        return present[0]
    if metric not in present:
        raise ValueError(f"metric '{metric}' is not in these results; they hold {', '.join(present)}")
    return metric


def probe_choice(
    results: pd.DataFrame, task: str, dataset: str, metric: str | None = None, validation: pd.DataFrame | None = None
) -> ProbeChoice:
    """Per model, the probe with the best mean validation criterion where ``validation`` (the runs'
    :func:`repeval.report.selection.combine_validation`) tells it, else the best clean mean of ``metric``."""
    df = _group(results, task, dataset)
    metric = _metric(df, metric)
    sel = df[(df["scenario"] == CLEAN) & (df["metric"] == metric)]
    if sel.empty:
        sel = df[df["metric"] == metric]
    return choose_probes(sel, ["model"], metric, _higher(metric), validation)


def best_probes(
    results: pd.DataFrame, task: str, dataset: str, metric: str | None = None, validation: pd.DataFrame | None = None
) -> dict[str, str]:
    """Per model, its chosen probe (:func:`probe_choice`; first listed when tied)."""
    return probe_choice(results, task, dataset, metric, validation).per_model


@dataclass(frozen=True)
class RobustnessGrid:
    """The robustness heat map's numbers (:func:`robustness_grid`): each model's mean Δ per deformation scenario."""

    metric: str
    #: the models in order, each with its chosen probe
    probes: dict[str, str]
    scenarios: list[str]
    #: models × scenarios, the mean Δ (deformed − clean) over replicates; NaN where there is none
    values: np.ndarray
    #: the (model, scenario) cells whose Δ left tracks out (the robustness table's caption says how many)
    starred: set[tuple[str, str]]

    @property
    def vmax(self) -> float:
        """The largest |Δ|, which the colours are scaled to (1 without one)."""
        finite = np.isfinite(self.values)
        return float(np.abs(self.values[finite]).max()) if finite.any() else 1.0


def robustness_grid(
    results: pd.DataFrame,
    task: str,
    dataset: str,
    metric: str | None = None,
    probes: dict[str, str] | None = None,
    validation: pd.DataFrame | None = None,
) -> RobustnessGrid:
    """Model × deformation scenario mean change from clean (each model's chosen probe): the heat map's numbers."""
    df = _group(results, task, dataset)
    metric = _metric(df, metric)
    probes = probes or best_probes(results, task, dataset, metric, validation)
    df = df[df["metric"] == metric]
    df = df[[probes.get(m) == p for m, p in zip(df["model"], df["probe"], strict=True)]]
    scen = [s for s in ordered_scenarios(df["scenario"].unique()) if s != CLEAN]
    if not scen:
        raise ValueError("the robustness heat map needs deformed scenarios; these results hold only clean audio")
    deltas = paired_deltas(df, ["model"])  # each replicate's Δ, on the tracks scored clean and deformed
    delta = deltas.groupby(["model", "scenario"])["value"].mean().unstack("scenario")
    delta = delta.reindex(index=list(probes), columns=scen)
    left = left_out(deltas, ["model"])
    starred = set(zip(left["model"], left["scenario"], strict=True))
    return RobustnessGrid(metric, dict(probes), scen, delta.to_numpy(dtype=float), starred)


def robustness_heatmap(
    results: pd.DataFrame,
    task: str,
    dataset: str,
    metric: str | None = None,
    probes: dict[str, str] | None = None,
    validation: pd.DataFrame | None = None,
) -> Figure:
    """Model × deformation scenario heat map of the mean change from clean (each model's chosen probe;
    :func:`robustness_grid`)."""
    grid = robustness_grid(results, task, dataset, metric, probes, validation)
    metric, probes, scen, values, starred = grid.metric, grid.probes, grid.scenarios, grid.values, grid.starred
    models = list(probes)
    vmax = grid.vmax
    rows = [f"{m} ({probes[m]})" for m in models]
    title = f"{task} / {dataset}: robustness"
    # wide enough for the row names (``run/model (probe)`` over several runs), a column per scenario as wide as its
    # name, the colour bar, and the title: the heat map keeps its size instead of shrinking under its labels
    column_in = max(1.0, _TEXT_IN_PER_CHAR * max(map(len, scen)) + 0.3)
    width_in = max(
        5.0,
        _TEXT_IN_PER_CHAR * max(map(len, rows)) + column_in * len(scen) + 1.6,
        _TEXT_IN_PER_CHAR * len(title) + 0.4,
    )
    fig = Figure(figsize=(width_in, 1.4 + 0.5 * len(models)), dpi=FIG_DPI, layout="constrained")
    ax = fig.add_subplot()
    cmap = "RdBu" if _higher(metric) else "RdBu_r"
    im = ax.imshow(values, cmap=cmap, vmin=-vmax or -1, vmax=vmax or 1, aspect="auto")
    ax.set_xticks(range(len(scen)), scen)
    ax.set_yticks(range(len(models)), rows)
    digits = column_decimals(values)  # the grid's Δs at one precision, as a table's column
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if np.isfinite(values[i, j]):
                strong = abs(values[i, j]) > 0.6 * vmax
                star = "*" if (models[i], scen[j]) in starred else ""
                ax.text(j, i, fmt_number(values[i, j], signed=True, decimals=digits) + star, ha="center", va="center", fontsize=8,
                        color="white" if strong else "black")  # fmt: skip
    fig.colorbar(im, ax=ax, label=f"Δ {metric} (deformed − clean)")
    if starred:
        ax.set_xlabel("* tracks left out of Δ: see the robustness table", fontsize=8)
    ax.set_title(title, fontsize=10)
    return fig


#: line styles and markers that tell apart lines of one colour: the runs of a model, or models past the 10th colour
_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 1, 1, 1)), "v"), ((0, (1, 3)), "P"))


def line_styles(
    models: Sequence[str], run_prefixed: bool = False, run_ids: Iterable[str] = ()
) -> dict[str, dict[str, object]]:
    """Per model, the ``color``, ``linestyle`` and ``marker`` of its line, no two models alike: with ``run_prefixed``
    (models named ``<run>/<model>``, several runs; ``run_ids`` the runs, which may hold a '/': ``demo@laptop/runs``)
    a colour per model and a style per run, so a model's runs read as one family; else a colour per model, the 10
    colours again with another style from the 11th model on."""
    models = list(dict.fromkeys(models))
    if run_prefixed and all("/" in m for m in models):
        run_ids = list(run_ids)
        parts = {m: split_run(m, run_ids) for m in models}
        runs = list(dict.fromkeys(run for run, _ in parts.values()))
        names = list(dict.fromkeys(name for _, name in parts.values()))
        keys = {m: (names.index(name), runs.index(run)) for m, (run, name) in parts.items()}
    else:
        keys = {m: (i, 0) for i, m in enumerate(models)}
    out: dict[str, dict[str, object]] = {}
    for m, (colour, style) in keys.items():
        ls, marker = _STYLES[(style + colour // 10) % len(_STYLES)]
        out[m] = {"color": f"C{colour % 10}", "linestyle": ls, "marker": marker}
    return out


def probe_capacity_curves(
    results: pd.DataFrame,
    task: str,
    dataset: str,
    metric: str | None = None,
    scenario: str = CLEAN,
    run_prefixed: bool = False,
) -> Figure:
    """One line per model across probes (M1 → M5), mean ± std over seeds (× folds), as the tables have them; each model
    its own colour and style (:func:`line_styles`; ``run_prefixed``: models named ``<run>/<model>``), its points
    shifted a little sideways where there are error bars so that those of models at one probe do not hide each other
    (each point at its probe without them), the legend beside the plot, not over its lines."""
    df = _group(results, task, dataset)
    metric = _metric(df, metric)
    df = df[(df["metric"] == metric) & (df["scenario"] == scenario)]
    if df.empty:
        raise ValueError(f"no '{metric}' results for scenario '{scenario}'")
    probes = sorted(df["probe"].unique(), key=natural_key)
    models = list(dict.fromkeys(df["model"]))
    styles = line_styles(models, run_prefixed, df["run_id"].unique() if "run_id" in df.columns else ())
    legend_in = _TEXT_IN_PER_CHAR * 0.8 * max(map(len, models)) + 0.6  # the legend's 8-pt names, and its marker
    fig = Figure(figsize=(6.4 + legend_in, max(3.8, 1.2 + 0.2 * len(models))), dpi=FIG_DPI, layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(probes))
    per_model = {}
    for model in models:
        mine = df[df["model"] == model]
        fold = mine["fold"].fillna(-1) if "fold" in mine.columns else -1
        replicates = mine.assign(_fold=fold).groupby(["probe", "seed", "_fold"])["value"].mean()
        per_model[model] = replicates.groupby(level="probe").agg(["mean", "std"]).reindex(probes)
    spread = any(bool(stats["std"].notna().any()) for stats in per_model.values())
    # error bars: the models' points 0.1 of a probe's step apart about its tick (0.4 at most in all); none: at it
    step = min(0.1, 0.4 / (len(models) - 1)) if spread and len(models) > 1 else 0.0
    dodge = (np.arange(len(models)) - (len(models) - 1) / 2) * step
    for (model, stats), shift in zip(per_model.items(), dodge, strict=True):
        ax.errorbar(x + shift, stats["mean"], yerr=stats["std"].fillna(0), capsize=2, markersize=4, label=model,
                    **styles[model])  # type: ignore[arg-type]  # fmt: skip
    ax.set_xticks(x, probes)
    # no claim on their order: even the thesis' M1-M5 do not grow in it — M4 [infer] is (in + out) / 2 units, fewer
    # than M2's 128 on MusiCNN's 200 dimensions and 50 tags, fewer parameters than M3's [256, 128] on 512 and 10
    ax.set_xlabel("probe")
    # the bars are the tables' spread, not the per-label figure's bootstrap interval: say which
    folds = "fold" in df.columns and df["fold"].notna().any()
    ax.set_ylabel(f"{metric} (mean ± std over seeds{' × folds' if folds else ''})" if spread else metric)
    ax.set_title(f"{task} / {dataset}: probe capacity ({scenario})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig


def per_label_bars(
    results: pd.DataFrame,
    task: str,
    dataset: str,
    metric: str | None = None,
    model: str | None = None,
    probe: str | None = None,
    scenario: str = CLEAN,
    validation: pd.DataFrame | None = None,
    ci_level: str = "95%",
    probes: dict[str, str] | None = None,
) -> Figure:
    """Horizontal bars of one model/probe's per-label values with their ``ci_level`` bootstrap intervals (by default
    the best model on clean test with its chosen probe, :func:`probe_choice`; ``probes``: each model's, when chosen
    already); the axis names the value (``F1 per label``) and the average over labels ``metric`` names
    (:func:`~repeval.report.cells.per_label_title`)."""
    df = _group(results, task, dataset, per_label=True)
    metric = _metric(df, metric)
    df = df[(df["metric"] == metric) & (df["scenario"] == scenario)]
    if model is None or probe is None:
        agg_probes = probes or best_probes(results, task, dataset, metric, validation)
        agg = _group(results, task, dataset)
        agg = agg[(agg["metric"] == metric) & (agg["scenario"] == CLEAN)]
        means = {m: agg[(agg["model"] == m) & (agg["probe"] == p)]["value"].mean() for m, p in agg_probes.items()}
        model = model or max(means, key=lambda m: means[m] if _higher(metric) else -means[m])
        probe = probe or agg_probes[model]
    sel = df[(df["model"] == model) & (df["probe"] == probe)]
    if sel.empty:
        raise ValueError(f"no per-label '{metric}' values for {model}/{probe} on {scenario}")
    intervals = mean_intervals(sel, ["label"]).rename(columns={"ci_low": "lo", "ci_high": "hi"})
    stats = sel.groupby("label", sort=False).agg(mean=("value", "mean")).join(intervals).sort_values("mean")
    # a bar per label: a 50-tag task's chart was 15 inches tall at a 10-label one's spacing (its names still fit at 0.2)
    fig = Figure(
        figsize=(6.4, 1.0 + (0.28 if len(stats) <= 20 else 0.2) * len(stats)), dpi=FIG_DPI, layout="constrained"
    )
    ax = fig.add_subplot()
    y = np.arange(len(stats))
    err = None
    if stats["lo"].notna().all() and stats["hi"].notna().all():
        err = np.vstack([(stats["mean"] - stats["lo"]).clip(lower=0), (stats["hi"] - stats["mean"]).clip(lower=0)])
    ax.barh(y, stats["mean"], xerr=err, color="#4c72b0", capsize=2)
    ax.set_yticks(y, list(stats.index))
    ax.set_xlabel(per_label_title(metric) + (f"\n({ci_level} bootstrap CI)" if err is not None else ""))
    ax.set_title(f"{task} / {dataset}\n{model} {probe}, per label ({scenario})", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


def confusion_matrix_figure(
    labels: Sequence[str], matrix: np.ndarray, *, normalize: bool = True, title: str = ""
) -> Figure:
    """Confusion matrix (rows: reference, columns: prediction), row-normalised by default; a cell no track fell in is
    left blank (a grid of ``0.00`` buried the few that matter), one with under 0.5% of its row reads ``<0.01``."""
    matrix = np.asarray(matrix, dtype=float)
    shown = matrix
    if normalize:
        sums = matrix.sum(axis=1, keepdims=True)
        shown = np.divide(matrix, sums, out=np.zeros_like(matrix), where=sums > 0)
    n = len(labels)
    size = 2.5 + 0.45 * n
    fig = Figure(figsize=(size + 1, size), dpi=FIG_DPI, layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    if n <= 25:
        top = 1.0 if normalize else (shown.max() if shown.size else 1.0)
        for i in range(n):
            for j in range(n):
                if matrix[i, j] == 0:
                    continue
                text = f"{shown[i, j]:.2f}" if normalize else f"{int(matrix[i, j])}"
                text = "<0.01" if text == "0.00" else text  # a few tracks, not none
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > 0.6 * top else "black")  # fmt: skip
    fig.colorbar(im, ax=ax, label="fraction of reference" if normalize else "tracks")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def training_curves(
    history: pd.DataFrame,
    task: str,
    dataset: str,
    models: Sequence[str] | None = None,
    tested: pd.DataFrame | None = None,
) -> Figure:
    """Train (solid) and validation (dashed) loss per epoch, one panel per model, one colour per probe; ``tested``
    (results rows, their ``model`` and ``probe``): only the probes tested — a preset's grid trains hundreds of
    configurations (``juke-000``…), whose curves would bury the tested ones and the legend."""
    df = history[(history["task"] == task) & (history["dataset"] == dataset)]
    if tested is not None:
        pairs = tested[(tested["task"] == task) & (tested["dataset"] == dataset)][["model", "probe"]].drop_duplicates()
        df = df.merge(pairs, on=["model", "probe"])
    if df.empty:
        raise ValueError(f"no training history for task '{task}' on dataset '{dataset}'")
    models = list(models or dict.fromkeys(df["model"]))
    probes = sorted(df["probe"].unique(), key=natural_key)
    cols = min(3, len(models))
    rows = -(-len(models) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows), dpi=FIG_DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    colors = [f"C{i % 10}" for i in range(len(probes))]
    # every line's mean per epoch in one pass (a study's grid: a filter and a group-by per model × probe took longer
    # than drawing them)
    means = df.groupby(["model", "probe", "epoch"], observed=True)[["train_loss", "val_loss"]].mean()
    curves = {(str(m), str(p)): c.droplevel([0, 1]) for (m, p), c in means.groupby(level=[0, 1], observed=True)}
    for k, model in enumerate(models):
        ax = axes[k // cols][k % cols]
        for probe, color in zip(probes, colors, strict=True):
            curve = curves.get((str(model), str(probe)))
            if curve is None:  # no history of this probe for this model
                continue
            ax.plot(curve.index, curve["train_loss"], color=color, lw=1.2, label=f"{probe}")
            ax.plot(curve.index, curve["val_loss"], color=color, lw=1.2, ls="--")
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for k in range(len(models), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    axes[0][0].set_ylabel("loss (— train, -- val)")
    # one legend for every panel, beside them (in the first panel it hid that model's curves), of every probe drawn
    handles: dict[str, Artist] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    shown = [p for p in probes if p in handles]
    fig.legend([handles[p] for p in shown], shown, loc="outside right upper", fontsize=7, title="probe",
               title_fontsize=7)  # fmt: skip
    fig.suptitle(f"{task} / {dataset}: training curves (mean over seeds)", fontsize=11)
    return fig


def save_figure(fig: Figure, stem: Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Write ``stem.png`` / ``stem.svg`` (creating folders); returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in formats:
        if fmt not in ("png", "svg", "pdf"):
            raise ValueError(f"figure format must be png, svg or pdf, got '{fmt}'")
        path = stem.with_suffix(f".{fmt}")
        fig.savefig(path, format=fmt)
        out.append(path)
    return out


def figure_data_uri(fig: Figure, fmt: str = "png") -> str:
    """The figure as a ``data:`` URI for self-contained HTML; a PNG of lines, bars and text only in 256 colours
    (:func:`_palette_png`)."""
    palette = fmt == "png" and not any(ax.images for ax in fig.axes)
    if palette and _saved_as_drawn(fig):
        data = _palette_png(*_drawn_png(fig))
    else:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt)
        data = buf.getvalue()
        if palette:
            data = _palette_png(data)
    mime = "image/svg+xml" if fmt == "svg" else f"image/{fmt}"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _saved_as_drawn(fig: Figure) -> bool:
    """Whether ``savefig`` writes ``fig`` as :func:`_drawn_png` does: matplotlib's default ``savefig.*`` settings. A
    matplotlibrc's ``savefig.dpi`` (a HiDPI report), ``savefig.bbox``, ``savefig.transparent`` or colours apply to
    every figure of the report, as they do to its confusion matrices (saved with ``savefig``)."""
    import matplotlib as mpl

    rc = mpl.rcParams
    return (
        rc["savefig.dpi"] in ("figure", fig.dpi)
        and rc["savefig.bbox"] in (None, "standard")
        and not rc["savefig.transparent"]
        and rc["savefig.facecolor"] == "auto"
        and rc["savefig.edgecolor"] == "auto"
    )


def _drawn_png(fig: Figure) -> tuple[bytes, np.ndarray]:
    """``fig`` as the PNG ``savefig`` writes, and its RGBA pixels: drawn once — ``savefig`` draws a figure with a
    layout engine twice (once to lay it out, once to render it), then :func:`_palette_png` decoded its PNG again."""
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # lays the figure out (its layout engine) and renders it
    rgba = np.asarray(canvas.buffer_rgba())
    buf = io.BytesIO()
    mpl.image.imsave(buf, rgba, format="png", origin="upper", dpi=fig.dpi)  # as savefig's print_png
    return buf.getvalue(), rgba


def _palette_png(png: bytes, rgba: np.ndarray | None = None) -> bytes:
    """``png`` as a 256-colour palette PNG, whichever is smaller: a figure of lines, bars and text looks the same in a
    quarter of the bytes (a study's report held 6 MB of such figures). Not for colour maps — a heat map's colour bar
    would show bands — so :func:`figure_data_uri` keeps figures with images in full colour. ``rgba``: its pixels, when
    at hand (not decoded again). A figure with see-through pixels (a matplotlibrc's ``savefig.transparent``) keeps
    them: its palette carries their alpha (PNG's ``tRNS``), where an opaque one's is RGB only."""
    from PIL import Image

    image = Image.fromarray(rgba) if rgba is not None else Image.open(io.BytesIO(png))
    see_through = image.mode in ("RGBA", "LA", "PA") and np.asarray(image.getchannel("A")).min() < 255
    out = io.BytesIO()
    if see_through:
        _opaque_apart(np.asarray(image.convert("RGBA"))).save(out, format="png", optimize=True)
    else:
        image.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE).save(out, format="png", optimize=True)
    return out.getvalue() if out.tell() < len(png) else png


def _opaque_apart(rgba: np.ndarray) -> Image:
    """The RGBA pixels ``rgba`` in a 256-colour palette whose opaque pixels stay opaque (alpha 255): the opaque ones
    and the others quantised apart, each to a share of the palette as large as its share of the visible pixels
    (32 to 224 colours; all the opaque ones need when the others need few). Quantised together, the palette's colours
    averaged the alpha of a line's opaque middle with its see-through edges: opaque pixels at alpha 253; half the
    palette for the opaque pixels left a figure's see-through fills (``fill_between(alpha=0.2)``) coarser than that."""
    from PIL import Image as pil

    flat = rgba.reshape(-1, 4)
    opaque = flat[:, 3] == 255
    distinct = [len(np.unique(flat[m][:, :c], axis=0)) for m, c in ((opaque, 3), (~opaque, 4))]
    by_pixels = int(np.clip(round(256 * opaque.sum() / max(1, int((flat[:, 3] > 0).sum()))), 32, 224))
    share = [min(distinct[0], max(by_pixels, 256 - distinct[1]))]
    share.append(256 - share[0])
    index = np.zeros(len(flat), dtype=np.uint8)
    palette: list[np.ndarray] = []
    for mask, mode, k in ((opaque, "RGB", share[0]), (~opaque, "RGBA", share[1])):
        if not mask.any():
            continue
        pixels = np.ascontiguousarray(flat[mask][:, : len(mode)]).reshape(1, -1, len(mode))
        part = pil.fromarray(pixels, mode).quantize(k, method=pil.Quantize.FASTOCTREE)
        colours = np.asarray(part.getpalette(rawmode=mode), dtype=np.uint8).reshape(-1, len(mode))[:k]  # 256 listed
        if mode == "RGB":
            colours = np.column_stack([colours, np.full(len(colours), 255, dtype=np.uint8)])
        index[mask] = np.asarray(part).reshape(-1) + sum(len(c) for c in palette)
        palette.append(colours)
    out = pil.fromarray(index.reshape(rgba.shape[:2]), "P")
    out.putpalette(np.concatenate(palette).tobytes(), rawmode="RGBA")
    return out
