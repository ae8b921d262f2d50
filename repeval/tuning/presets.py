"""Named probe protocols of the field, selectable with ``preset:`` and overridable key by key.

A preset is plain data: ``base`` values shared by every configuration, then either named
``points`` or a ``grid`` (cartesian product, axes in order), and a selection rule — ``all``
(every configuration is a reported probe, mir_ref's M1–M5) or ``best`` (the configuration with
the best validation criterion, averaged over seeds, is tested once and reported under the
preset's name: Jukemir, MARBLE, HEAR, MULE). ``criteria`` gives the validation criterion (early stopping, checkpoint and
configuration selection) per task type where the source's differs from repeval's default for that type; a
``save_criterion`` written next to the preset overrides it, like any other key. ``differs`` says, for
``repeval plan``, the report and the README, where the preset departs from its source; :func:`preset_words` is what
the plan and the report say of an entry that names a preset, after the keys set next to it.

To add a preset: write its values below and register it with :func:`register_preset`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from repeval.registry import Registry
from repeval.tuning.preset_said import SAID, SPACE, TRAINING_KEYS, trained_with
from repeval.words import counted

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preset:
    name: str
    doc: str
    base: dict[str, Any]
    #: named configurations (mir_ref's M1–M5) …
    points: tuple[tuple[str, dict[str, Any]], ...] = ()
    #: … or axes of a cartesian grid (values are plain YAML values)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    select: str = "all"
    #: report points under their own names (M1) rather than ``<preset>-<point>``
    bare_names: bool = False
    #: task type → the source's validation criterion, where it is not repeval's default for that type
    criteria: dict[str, str] = field(default_factory=dict)
    #: the publication and code the values come from
    source: str = ""
    #: where the preset departs from its source (what a reproduction must override, or cannot); ``{trained}`` in it
    #: stands for how many configurations an entry trains (:meth:`departures`): keys set next to the preset change it;
    #: ``{epochs}``, ``{patience}``, ``{early_stopping}``… for what the entry trains with
    #: (:data:`~repeval.tuning.preset_said.SAID`)
    differs: str = ""
    #: task type → where the preset departs from its source for tasks of that type alone (said after :attr:`differs`)
    differs_by_type: dict[str, str] = field(default_factory=dict)
    #: task type → what ``{stopping}`` in :attr:`differs` says for a task of that type (the source's early stopping
    #: and checkpoint differ by task type); ``""``: for a task whose type is not known
    stopping: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        n = max(1, len(self.points))
        for values in self.grid.values():
            n *= len(values)
        return n

    def departures(
        self,
        trained: int,
        why: str | None = None,
        task_type: str | None = None,
        values: Mapping[str, Any] | None = None,
        max_epochs: int | None = None,
        aggregation: str | None = None,
    ) -> str:
        """:attr:`differs` for an entry that trains ``trained`` configurations: ``all N points are trained`` for the
        preset's grid (``why`` None), else how many are and ``why`` they are not the preset's points, and its
        ``{stopping}`` as :attr:`stopping` says it for a task of ``task_type``; then the departures of
        :attr:`differs_by_type` for a task of ``task_type`` (``None``: not known — each said with the task type it is
        of). ``values``: the entry's :data:`~repeval.tuning.preset_said.TRAINING_KEYS` where they are not the
        preset's (a key set next to it, a grid's list of values, :data:`~repeval.tuning.preset_said.SPACE` for a
        search space's key), the epochs capped by ``max_epochs`` (the run's ``run.max_epochs``), so that the text says
        what is trained, not the preset's defaults (:data:`~repeval.tuning.preset_said.SAID`) — nor its ``base``
        where its grid or points train other values (:meth:`trained_grid`); ``aggregation``: the task's
        ``embedding_aggregation`` (``None``: not known), which says whether the rows trained on are frames."""
        said = (
            f"all {self.size} points are trained"
            if why is None
            else f"{counted(trained, 'configuration')} {'is' if trained == 1 else 'are'} trained, not the preset's "
            f"{self.size} points ({why})"
        )
        typed = [
            text if task_type is not None else f"for {kind.replace('_', ' ')} tasks, {text}"
            for kind, text in self.differs_by_type.items()
            if task_type is None or kind == task_type
        ]
        stopping = self.stopping.get(task_type or "", self.stopping.get("", ""))
        text = self.differs.replace("{trained}", said).replace("{stopping}", stopping)
        v = trained_with(self.base, values or {}, max_epochs, self.trained_grid(), aggregation)
        for key, words in SAID.items():
            if "{" + key + "}" in text:
                text = text.replace("{" + key + "}", words(v))
        return "; ".join([text, *typed])

    def trained_grid(self) -> dict[str, list[Any]]:
        """The :data:`~repeval.tuning.preset_said.TRAINING_KEYS` the preset's grid or points train several values of
        (or another value than its ``base``): each one's values, a point without the key at the base's value (else
        the probe's default)."""
        from repeval.config.probe import ProbeConfig

        out = {k: list(g) for k, g in self.grid.items() if k in TRAINING_KEYS}
        for k in TRAINING_KEYS:
            if any(k in point for _, point in self.points):
                default = self.base.get(k, ProbeConfig.model_fields[k].default)
                out[k] = [point.get(k, default) for _, point in self.points]
        return out

    def criterion(self, task_type: str | None) -> str | None:
        """The source's validation criterion for ``task_type`` (``None``: repeval's default for the type)."""
        return self.criteria.get(task_type) if task_type else None


PRESETS: Registry[Preset] = Registry("probe preset")


def register_preset(preset: Preset) -> Preset:
    return PRESETS.register(preset.name)(preset)


def get_preset(name: str) -> Preset:
    return PRESETS.get(name)


def preset_words(
    p: Any,
    trained: int,
    why: str | None = None,
    *,
    doc: bool = False,
    task_type: str | None = None,
    max_epochs: int | None = None,
    aggregation: str | None = None,
) -> str:
    """What ``repeval plan`` and the report say of the preset the probe entry ``p`` (a ``ProbeConfig``) names, empty
    if it names none: the preset (``doc``: with its description), its source, the keys set next to it and where it
    departs from the source — with the ``trained`` configurations the entry trains (:meth:`Preset.departures`;
    ``why``: why they are not the preset's points, found here when the keys set next to it change its grid; those
    that apply to a task of ``task_type`` alone; its epochs and patiences as set next to it, the epochs capped by
    ``max_epochs``, the run's ``run.max_epochs``; how its batches are drawn on the task's ``aggregation``):
    ``preset hear [Turian et al. …], set here: learning_rate=0.001, search grid patience=[5, 20]; differs from the
    source: 4 configurations are trained, not the preset's 16 points (the keys set next to it change its grid); …``
    (the search grid and space set next to it are among the keys set here)."""
    from repeval.tuning.search import SPEC_KEYS

    if not p.preset:
        return ""
    preset = get_preset(p.preset)
    what = f"preset {p.preset}" + (f": {preset.doc}" if doc else "") + f" [{preset.source}]"
    mine = sorted(k for k in p.model_fields_set if k not in SPEC_KEYS)
    search = p.search or {}
    grid, space = search.get("grid") or {}, search.get("space") or {}
    here = [f"{k}={getattr(p, k)!r}" for k in mine] + _search_here(search)
    if here:
        what += ", set here: " + ", ".join(here)
    if preset.differs:
        touched = set(mine) | set(grid) | set(space)
        if why is None and (trained != preset.size or touched & set(preset.grid)):
            why = "the keys set next to it change its grid"
        values: dict[str, Any] = {k: getattr(p, k) for k in TRAINING_KEYS if k in p.model_fields_set}
        values.update({k: list(g) for k, g in grid.items() if k in TRAINING_KEYS})  # a grid trains each value
        values.update({k: SPACE for k in space if k in TRAINING_KEYS})
        said = preset.departures(trained, why, task_type, values, max_epochs, aggregation)
        what += f"; differs from the source: {said}"
    return what


def _search_here(search: Mapping[str, Any]) -> list[str]:
    """The ``search`` set next to a preset, as ``set here`` lists it: its grid and space, and its ``num_samples``,
    ``scheduler`` (its settings that are not ASHA's defaults) and ``select`` where written: ``search num_samples=8``,
    ``search scheduler=asha(grace_period=5)``."""
    from repeval.tuning.search import ASHA_DEFAULTS

    here = [f"search grid {k}={list(values)!r}" for k, values in (search.get("grid") or {}).items()]
    here += [f"search space {k}={s['type']}{list(s['args'])!r}" for k, s in (search.get("space") or {}).items()]
    if search.get("num_samples", 1) != 1:
        here.append(f"search num_samples={search['num_samples']!r}")
    if search.get("scheduler"):  # its settings where not ASHA's defaults
        args = ", ".join(
            f"{k}={v:g}" for k, v in search["scheduler"].items() if v not in (ASHA_DEFAULTS.get(k), "asha")
        )
        here.append(f"search scheduler=asha{f'({args})' if args else ''}")
    if search.get("select"):
        here.append(f"search select={search['select']!r}")
    return here


def entry_words(
    entry: Mapping[str, Any],
    index: int = 0,
    task_type: str | None = None,
    max_epochs: int | None = None,
    aggregation: str | None = None,
) -> str | None:
    """What the report says of probe entry ``index`` of a run's ``downstream_models`` as its ``config.yaml`` writes it
    (the keys set: :func:`repeval.run.context.config_yaml`), ``None`` when it names no preset: ``probe preset hear:
    <its description> [source], set here: …; differs from the source: …`` — :func:`preset_words`, what ``repeval
    plan`` says of it, with the configurations the entry trained (an entry named otherwise than its preset: ``probe
    hear-lr, preset hear: …``) and the departures for a task of ``task_type`` (its epochs capped by the run's
    ``max_epochs``, its batches as drawn on the task's ``aggregation``). An entry this repeval no longer reads (an
    older run's) is said by its preset's description, without what it trained."""
    from pydantic import ValidationError

    from repeval.config.probe import ProbeConfig
    from repeval.tuning.search import expand_probe

    name = entry.get("preset")
    if not name:
        return None
    if str(name) not in PRESETS:
        return f"probe preset {name}"
    try:
        p = ProbeConfig.model_validate(dict(entry))
        size = expand_probe(p, index).size
        said = preset_words(p, size, doc=True, task_type=task_type, max_epochs=max_epochs, aggregation=aggregation)
    except (ValidationError, ValueError) as exc:
        log.debug("probe entry %s read without what it trained: %s", dict(entry), exc)
        preset = get_preset(str(name))
        said = f"preset {name}: {preset.doc} [{preset.source}]"
    own = entry.get("name")
    return f"probe {own}, {said}" if own and own != name else f"probe {said}"


#: Jukemir and MARBLE stop and select on each dataset's primary metric, which differs from repeval's default criterion
#: for two task types: R² for regression (repeval: the loss) and mir_eval's key weighted score (repeval: accuracy)
PRIMARY_METRIC = {"regression": "val_r2", "key_estimation": "val_key_weighted_score_micro"}


# The thesis' five probes (Plachouras 2023, §3.1.5 and Appendix A): Adam 1e-3, L2 1e-5 (mir_ref writes it as
# weight_decay; Keras' l2(1e-5) adds 1e-5·Σw², i.e. a gradient of 2e-5·w, twice PyTorch's weight_decay=1e-5 —
# negligible at this size, kept as written so the preset equals Appendix A), batch 100 (Appendix A prints 277 for the
# [128] probe alone, §2.2.5 and the other four 100), at most 100 epochs, patience 10. One criterion stops *and*
# selects (the task's default, or save_criterion): the thesis stopped on the validation loss (§3.1.5, Keras'
# EarlyStopping default) and kept the best val_categorical_accuracy / val_auc checkpoint (DESIGN.md: on purpose).
# mir_ref trained classification only (its train.py has no regression loss): a regression task's probes stop and
# keep their checkpoint on the validation loss (MSE), repeval's default criterion for the type.
register_preset(
    Preset(
        name="mir_ref_thesis",
        doc="mir_ref thesis probes M1–M5: [], [128], [256,128], [infer], [infer,infer]",
        base={
            "optimizer": "adam",
            "learning_rate": 1e-3,
            "weight_decay": 1e-5,
            "batch_size": 100,
            "epochs": 100,
            "patience": 10,
        },
        points=(
            ("M1", {"hidden_units": []}),
            ("M2", {"hidden_units": [128]}),
            ("M3", {"hidden_units": [256, 128]}),
            ("M4", {"hidden_units": ["infer"]}),
            ("M5", {"hidden_units": ["infer", "infer"]}),
        ),
        select="all",
        bare_names=True,
        source="Plachouras 2023, the mir_ref thesis, §3.1.5 and Appendix A; chrispla/mir_ref mir_ref/train.py",
        differs=(
            "{stopping}; {l2} (Keras' l2(1e-5) is weight_decay 2e-5); infer sizes rounded "
            "up to even (mir_ref truncates, then makes an odd size even: M5 on 512 dimensions and 10 classes is "
            "[346, 178] here, [344, 178] in mir_ref)"
        ),
        stopping={
            "": (
                "early stopping on the selection criterion (the thesis stopped on the validation loss and kept the best "
                "val_categorical_accuracy checkpoint, val_auc for tagging; it trained no regression task)"
            ),
            **dict.fromkeys(
                ("multiclass_classification", "key_estimation"),
                "early stopping on the selection criterion (the thesis stopped on the validation loss and kept the best "
                "val_categorical_accuracy checkpoint)",
            ),
            "multilabel_classification": (
                "early stopping on the selection criterion (the thesis stopped on the validation loss and kept the best "
                "val_auc checkpoint)"
            ),
            "regression": (
                "the thesis trained no regression task (mir_ref's train.py has classification losses only): the "
                "selection criterion stops training and keeps the checkpoint, the validation loss (mean squared "
                "error) unless save_criterion names another"
            ),
        },
        differs_by_type={
            "multilabel_classification": (
                "mir_ref's val_auc is Keras' AUC over the flattened labels (micro), here val_roc_auc_macro"
            )
        },
    )
)

# Jukemir (Castellon et al. 2021; p-lambda/jukemir jukemir/probe/__init__.py, _PAPER_GRID): 216 configurations,
# dropout on the input and after every hidden layer (their ``dropout_input``), Adam with L2 weight_decay, sklearn
# StandardScaler when data_standardization is on; early stopping *and* selection on the dataset's primary metric —
# accuracy (GTZAN), the key weighted score (GiantSteps), ROC-AUC macro (MagnaTagATune), R² (Emomusic) — then the best
# configuration by validation (jukemir/probe/aggregate.py) is tested once. Jukemir validates every 8 steps and stops
# after 256 validations without improvement, with no epoch limit; repeval validates once per epoch with patience 10
# and at most 100 epochs (override ``epochs``/``patience``), and trains ``run.seeds`` seeds (Jukemir: one, seed 0).
register_preset(
    Preset(
        name="jukemir",
        doc="Jukemir's 216-config grid, best by validation then one test run",
        base={"optimizer": "adam", "dropout_input": True, "epochs": 100, "patience": 10},
        grid={
            "standardize": [False, True],
            "hidden_units": [[], [512]],
            "batch_size": [64, 256],
            "learning_rate": [1e-5, 1e-4, 1e-3],
            "dropout": [0.25, 0.5, 0.75],
            "weight_decay": [0.0, 1e-4, 1e-3],
        },
        select="best",
        criteria=PRIMARY_METRIC,
        source="Castellon et al. 2021, Jukemir; p-lambda/jukemir jukemir/probe/__init__.py _PAPER_GRID",
        differs=(
            "{validated}, {patience}, at most {epochs} (Jukemir: every 8 steps, "
            "patience 256 validations = 2,048 steps, no epoch limit); {sampling} (Jukemir draws "
            "each batch at random)"
        ),
    )
)

# MARBLE's constrained track (Yuan et al. 2023; marble-bm.sheffield.ac.uk "Submit": batch 64, learning rate in
# {5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2}, dropout 0.2, a one-layer 512-unit MLP; a43992899/MARBLE-Benchmark
# benchmark/tasks/*/*_base_config.yaml: Adam, l2_weight_decay 0, max_epochs 100, early stopping on the task's monitor —
# valid_acc, valid_aucroc (macro), valid_r2, the key score for GiantSteps — and ReduceLROnPlateau(factor 0.5) on the
# same monitor, benchmark/models/probers.py). The best learning rate by validation is tested once. MARBLE's patiences
# differ by task: early stopping 10 and learning-rate patience 3 on MTT and NSynth (taken here), 20 and 5–6 on GTZAN,
# GS, EMO and VocalSet (override ``patience`` and ``lr_decay_patience``).
register_preset(
    Preset(
        name="marble",
        doc="MARBLE constrained probe: MLP 1×512, dropout 0.2, batch 64, 6 learning rates, best by validation",
        base={
            "hidden_units": [512],
            "dropout": 0.2,
            "optimizer": "adam",
            "weight_decay": 0.0,
            "batch_size": 64,
            "epochs": 100,
            "patience": 10,
            "lr_decay_patience": 3,
            "lr_decay_factor": 0.5,
        },
        grid={"learning_rate": [5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2]},
        select="best",
        criteria=PRIMARY_METRIC,
        source="Yuan et al. 2023, MARBLE constrained track; a43992899/MARBLE-Benchmark benchmark/tasks/*/*_base_config.yaml",
        differs=(
            "{early_stopping} and {lr_decay}, "
            "for every task (MARBLE: 10 and 3 on MTT and NSynth, 20 and 5-6 on GTZAN, GS, EMO, "
            "VocalSet); {precision} (MARBLE: 16-bit mixed precision)"
        ),
    )
)

# HEAR 2021 (hear-eval-kit heareval/predictions/task_predictions.py, the final PARAM_GRID): 1 or 2 hidden layers of
# 1024 with BatchNorm and dropout 0.1, 4 learning rates, 2 Xavier initialisations = 16 points; Adam without weight
# decay, batch 1024, at most 500 epochs, validation every 3 epochs, patience 20 validations; early stopping,
# checkpoint and selection on the task's first score (top1_acc for multiclass, mAP — average precision, macro — for
# multilabel). hear-eval-kit trains 8 of the 16 points by default (runner.py ``--grid-points 8``, shuffled with seed 42)
# and, on k-fold tasks, selects on the first split and retrains that point on the others; repeval trains all 16 and
# selects on each fold.
register_preset(
    Preset(
        name="hear",
        doc="HEAR 2021's 16-point grid, best by validation then one test run",
        base={
            "optimizer": "adam",
            "dropout": 0.1,
            "hidden_norm": "batchnorm",
            "weight_decay": 0.0,
            "batch_size": 1024,
            "epochs": 500,
            "val_every": 3,
            "patience": 20,
        },
        grid={
            "hidden_units": [[1024], [1024, 1024]],
            "learning_rate": [3.2e-3, 1e-3, 3.2e-4, 1e-4],
            "init": ["xavier_uniform", "xavier_normal"],
        },
        select="best",
        criteria={"multilabel_classification": "val_pr_auc_macro"},
        source="Turian et al. 2022, HEAR; hearbenchmark/hear-eval-kit heareval/predictions/task_predictions.py PARAM_GRID",
        differs=(
            "{trained}; hear-eval-kit trains 8 of its 16, drawn at random, by default; with k folds each fold "
            "selects its own point (hear-eval-kit: the first split's, retrained on the others)"
        ),
    )
)

# MULE (McCallum et al. 2022). PandoraMedia/music-audio-representations publishes no probe trainer and no search space,
# only the probe each (task, embedding model) pair selected: supporting_data/configs/models/probes/<task>/<model>.yml
# (52 files; 34 read for this preset, among them every Musicset-ULarge one). What they all share is the base here:
# mule/models/mlp.py's MLP — ReLU hidden layers, dropout after each, Keras L2 on every kernel — and Adam (β 0.9 / 0.999)
# under mule/models/optimizers/schedules/warmup_schedule.py's WarmupSchedule: a linear warm-up from 0
# (cold_learning_rate 0) over 1,000 steps, then ScoochCosineDecay (Keras' CosineDecay, alpha 0) to 0 over decay_steps,
# i.e. a fixed number of steps (warm-up + decay: 10,000 to 40,000; 300,000 and 800,000 for NSynth, warm-up 5,000).
# The grid spans the values the selections take most: hidden layers [] (GTZAN, NSynth, MuMu), [512] (MTT, MTG-Jamendo,
# GiantSteps, Emomusic, MSD50), [1024] (AMM, Emomusic), [1024, 1024] (MTG-Jamendo all, MSD-S); L2 0 … 1e-4 (Keras'
# l2(λ) adds λ·Σw², a gradient 2λ·w: weight_decay 2λ); learning rates 2.5e-5 … 5e-4 (1e-4 in most). Dropout 0.5 and
# 30,000 steps are the commonest choices (the median total of the Musicset-ULarge probes). The configurations compile
# Keras' AUC(curve="PR", multi_label=True) — PR-AUC per tag, averaged: val_pr_auc_macro — for tagging, and
# CategoricalAccuracy (GiantSteps) or the mean squared error (Emomusic, repeval's regression criterion already).
register_preset(
    Preset(
        name="mule",
        doc="MULE's probes: 80-config grid, 1,000-step warm-up then cosine decay, best by validation then one test run",
        base={
            "optimizer": "adam",
            "dropout": 0.5,
            "lr_schedule": "cosine",
            "warmup_steps": 1000,
            "max_steps": 30000,
            "epochs": 1_000_000,
            "patience": 1_000_000,
        },
        grid={
            "hidden_units": [[], [512], [1024], [1024, 1024]],
            "weight_decay": [0.0, 2e-6, 2e-5, 2e-4],
            "learning_rate": [2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4],
        },
        select="best",
        criteria={"multilabel_classification": "val_pr_auc_macro"},
        source=(
            "McCallum et al. 2022, MULE; PandoraMedia/music-audio-representations "
            "supporting_data/configs/models/probes/*/*.yml, mule/models/mlp.py, "
            "mule/models/optimizers/schedules/warmup_schedule.py"
        ),
        differs=(
            "MULE publishes each task's selected probe, not its search space: the grid spans the selections' values "
            "(not tried: [2048, 2048] and [4096]×3 of MSD100/500, dropout 0.75/0.9 of MTG-Jamendo/GiantSteps, L2 5e-6 "
            "and 2e-5, learning rates 8e-5, 2e-4, 3e-4, 4e-4); one length for every task, {length} "
            "(MULE: 10,000-40,000 by task, 300,000-800,000 for NSynth, whose warm-up is 5,000); {dropout} "
            "everywhere; batch size is not published (here {batch_size}); {validated} and the best checkpoint "
            "kept, {early_stopping} (MULE's trainer is not published); {l2_as}, on biases too (Keras: "
            "kernels only); {optimizer}; softmax cross-entropy and accuracy for single-label tasks (some "
            "GTZAN/NSynth selections trained sigmoid outputs and compiled PR-AUC)"
        ),
    )
)
