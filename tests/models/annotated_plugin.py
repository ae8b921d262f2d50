"""A plugin's model whose constructor's params are annotated (``Literal[...]``, ``list[float]``, an ``Enum`` alone,
beside another kind — text too, a ``Literal`` —, as a list's items (beside another kind or null too), either, or a
mapping's values or keys, one whose values are its members' names, an ``IntEnum``'s; a dataclass, one with an
``InitVar``) or not
(``since``), and a configuration of it: the params tests' and the fingerprint tests'."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

#: a plugin whose constructor's params are annotated ``Literal[...]``, ``list[float]`` and an ``Enum`` (no
#: ``param_choices``), and one it takes as it is (``since``: no annotation, a default of None)
ANNOTATED_PLUGIN = """
import dataclasses
import enum
from typing import Literal, Optional, TypedDict

import numpy as np

from repeval.models import EmbeddingModel, register_model


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):  # OFF is falsy
    OFF = 0
    ON = 1


class Side(enum.Enum):  # each member's value is the other's name; PORT is LEFT (an alias)
    LEFT = "RIGHT"
    RIGHT = "LEFT"
    PORT = "RIGHT"


@dataclasses.dataclass
class Look:  # a mapping param's fields
    color: Color = Color.RED
    size: int = 1


@dataclasses.dataclass
class Frame:  # a dataclass param: a dataclass field without a default, a Literal's, a check of its own
    look: Look
    corner: Literal["tl", "br"] = "tl"
    margin: int = 0

    def __post_init__(self):
        if self.margin < 0:
            raise ValueError(f"margin {self.margin} is below 0")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Grid:  # an InitVar, a field it sets itself, a default_factory's
    color: Color
    steps: list[int] = dataclasses.field(default_factory=list)
    scale: dataclasses.InitVar[int] = 1
    cells: int = dataclasses.field(init=False, default=0)

    def __post_init__(self, scale):
        object.__setattr__(self, "cells", scale * 2)


class Box(TypedDict):  # an Optional[Color] field
    color: Optional[Color]
    count: int


@register_model("annotated-model")
class AnnotatedModel(EmbeddingModel):
    sample_rate_hz = 16000
    embedding_dim = 2

    def __init__(
        self, pooling: Literal["mean", "max"] = "mean", norm: Literal["l2", "none"] | None = None,
        scales: list[float] = [1.0], size: Literal["auto"] | int | None = "auto", modes: list[Literal["a", "b"]] = ["a"],
        mode: Color = Color.RED, tags: list[Literal["x", "y"]] | None = None, shade: Color | int = 0,
        palette: list[Color] = [Color.RED], accent: list[Color] | None = None, tint: Color | None = None, since=None,
        side: Side = Side.LEFT, levels: list[Level] = [], styles: dict[str, Color] | None = None,
        look: Look | None = None, hue: Color | str = "plain", mixed: list[Color | int] | None = None,
        either: Color | list[Color] = Color.RED, holes: list[Color | None] | None = None,
        weights: dict[Color, int] | None = None, pick: Literal["auto", "off"] | Color = "auto", box: Box | None = None,
        frame: Frame | None = None, looks: list[Look] | None = None, grid: Grid | None = None, solid: Look = Look(),
        maybe: Color | None | list[Color] = None, **params,
    ):
        super().__init__(**params)
        if pooling not in ("mean", "max") or not isinstance(mode, Color):
            raise ValueError(pooling, mode)
        self.mode = mode
        self.given = (shade, palette, accent, tint, levels)
        self.held = (styles, look, hue)
        self.mixed = mixed
        self.more = dict(either=either, holes=holes, weights=weights, pick=pick, box=box, frame=frame, looks=looks)
        self.more.update(grid=grid, solid=solid, maybe=maybe)
        self.since = since

    def embed(self, audio):
        return np.zeros((1, 2), np.float32)
"""


def annotated_config(
    tmp_path: Any, params: dict[str, Any], plugin_text: str = ANNOTATED_PLUGIN, model_id: str = "annotated-model"
) -> dict[str, Any]:
    """A configuration (as YAML reads one) of :data:`ANNOTATED_PLUGIN`'s model (or ``model_id`` of the plugin
    ``plugin_text``) with ``params``."""
    plugin = tmp_path / f"annotated_{tmp_path.name}.py"  # (one module name per test: a plugin's is its file's)
    plugin.write_text(plugin_text)
    model = {"id": model_id, "params": params}
    exp = {
        "task": {"name": "t", "type": "multiclass_classification"},
        "datasets": [{"name": "n", "type": "catalog", "manifest": "m.csv", "label_column": "instrument"}],
        "embedding_models": [model],
        "downstream_models": [{}],
    }
    return {"plugins": [str(plugin)], "experiments": [exp]}


def shown(v: Any) -> Any:
    """``v`` (what a model got of a param) with each ``Enum`` member as ``Class.NAME`` and each dataclass as ``(Class,
    its fields)``, a list's and a tuple's items and a mapping's keys and values so too."""
    if isinstance(v, enum.Enum):
        return f"{type(v).__name__}.{v.name}"
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return (type(v).__name__, {f.name: shown(getattr(v, f.name)) for f in dataclasses.fields(v)})
    if isinstance(v, list | tuple):
        return type(v)(shown(x) for x in v)
    return {shown(k): shown(x) for k, x in v.items()} if isinstance(v, dict) else v


def model_got(config: dict[str, Any], attr: str = "more") -> dict[str, Any]:
    """What the model of ``config`` (its only one, checked as ``repeval validate`` checks it) got of each of its
    params — held in its attribute ``attr`` (a mapping of them) —, :func:`shown`."""
    from repeval.config import parse_config
    from repeval.models import build_model

    cfg = parse_config(config).experiments[0].embedding_models[0]
    got = getattr(build_model(cfg), attr)
    return {k: shown(got[k]) for k in cfg.params}
