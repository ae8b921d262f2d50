"""Named probe protocols of the field, selectable with ``preset:`` and overridable key by key.

A preset is plain data: ``base`` values shared by every configuration, then either named
``points`` or a ``grid`` (cartesian product, axes in order), and a selection rule — ``all``
(every configuration is a reported probe, mir_ref's M1–M5) or ``best`` (the configuration with
the best validation criterion, averaged over seeds, is tested once and reported under the
preset's name: Jukemir, HEAR).

To add a preset: write its values below and register it with :func:`register_preset`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from repeval.registry import Registry


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

    @property
    def size(self) -> int:
        n = max(1, len(self.points))
        for values in self.grid.values():
            n *= len(values)
        return n


PRESETS: Registry[Preset] = Registry("probe preset")


def register_preset(preset: Preset) -> Preset:
    return PRESETS.register(preset.name)(preset)


def get_preset(name: str) -> Preset:
    return PRESETS.get(name)


# The thesis' five probes (Plachouras 2023, §3.1): Adam 1e-3, L2 1e-5 (mir_ref writes it as
# weight_decay; Keras' l2(1e-5) adds 1e-5·Σw², i.e. a gradient of 2e-5·w, twice PyTorch's
# weight_decay=1e-5 — negligible at this size, kept as written so the preset equals Appendix A),
# batch 100, at most 100 epochs, patience 10. One criterion stops *and* selects (the task's
# default, or save_criterion).
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
    )
)

# Jukemir (Castellon et al. 2021): 216 configurations, dropout on the input and after every
# hidden layer (their ``dropout_input``), the best by validation is tested once. Jukemir
# validates every 8 steps and stops after 256 validations without improvement; repeval
# validates once per epoch with patience 10 and at most 100 epochs (override as needed).
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
    )
)

# MARBLE's probe: one hidden layer of 512, dropout 0.2, early stopping with patience 10.
register_preset(
    Preset(
        name="marble",
        doc="MARBLE probe: MLP 1×512, dropout 0.2, patience 10",
        base={
            "hidden_units": [512],
            "dropout": 0.2,
            "optimizer": "adam",
            "learning_rate": 1e-3,
            "weight_decay": 0.0,
            "batch_size": 64,
            "epochs": 100,
            "patience": 10,
        },
        points=(("marble", {}),),
        select="all",
        bare_names=True,
    )
)

# HEAR 2021 (hear-eval-kit's final PARAM_GRID): 1 or 2 hidden layers of 1024 with BatchNorm
# and dropout 0.1, 4 learning rates, 2 Xavier initialisations = 16 points; batch 1024, at most
# 500 epochs, validation every 3 epochs, patience 20 validations; best by validation.
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
    )
)
