"""What the embed stage computes for each track: the deformation scenarios applied to it (``deformations:``) and the
embedding models run on it (``embedding_models:``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from repeval.config.base import FileName, Strict, raise_at_params
from repeval.registry import ParamProblems

# ------------------------------------------------------------------- deformations


class DeformationStep(Strict):
    """One audiomentations transform: ``type`` is its class name, ``params`` its kwargs."""

    #: the audiomentations transform's class name (e.g. ``Gain``, ``AddGaussianSNR``, ``Mp3Compression``)
    type: str
    #: the transform's keyword arguments (e.g. ``{min_gain_db: -6, max_gain_db: -6, p: 1}``)
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _valid_transform(self) -> DeformationStep:
        from repeval.deformations import validate_step

        try:
            validate_step(self.type, self.params)
        except ParamProblems as exc:
            raise_at_params(exc, type(self).__name__)
        return self


class DeformationScenario(Strict):
    """An ordered list of transforms applied together (mir_ref: a list inside the list)."""

    #: the scenario's id: its store partition and results column (default: D1, D2, … by position;
    #: ``clean`` is reserved)
    name: FileName | None = None
    #: the transforms, applied in order
    steps: tuple[DeformationStep, ...]

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, data: Any) -> Any:
        if isinstance(data, list):
            return {"steps": data}
        if isinstance(data, dict) and "type" in data:
            # a single transform written without the inner list
            return {"steps": [data]}
        return data

    @field_validator("steps")
    @classmethod
    def _non_empty(cls, v: tuple[DeformationStep, ...]) -> tuple[DeformationStep, ...]:
        if not v:
            raise ValueError("a deformation scenario needs at least one transform")
        return v


def scenario_ids(scenarios: tuple[DeformationScenario, ...]) -> list[str]:
    """Each scenario's id: its name, or D1, D2, … by position."""
    return [sc.name or f"D{i + 1}" for i, sc in enumerate(scenarios)]


def default_p_warnings(experiments: Any) -> list[str]:
    """A warning for each deformation step written without ``p``: every audiomentations transform defaults to ``p``
    0.5, so such a scenario deforms about half of the tracks and the others are scored clean under its name — a
    robustness study's Δ then measures half a deformation. Said once per scenario name and step, wherever the
    experiments (or datasets) define it; ``repeval validate`` prints them and the embed stage logs them."""
    import inspect

    from repeval.deformations import waveform_transforms

    out: dict[tuple[str, int], str] = {}
    for ei, exp in enumerate(experiments):
        places = [("deformations", exp.deformations)]
        places += [(f"datasets[{j}].deformations", ds.deformations or ()) for j, ds in enumerate(exp.datasets)]
        for where, scenarios in places:
            for k, (sid, sc) in enumerate(zip(scenario_ids(scenarios), scenarios, strict=True)):
                for i, step in enumerate(sc.steps):
                    cls = waveform_transforms().get(step.type)
                    if "p" in step.params or cls is None:
                        continue
                    default = inspect.signature(cls).parameters["p"].default
                    if not isinstance(default, int | float) or default >= 1:
                        continue
                    out.setdefault(
                        (sid, i),
                        f"experiments[{ei}].{where}[{k}].steps[{i}]: scenario {sid!r} gives {step.type} no p — "
                        f"audiomentations' default p {default:g} deforms only about {default:.0%} of the tracks, the "
                        f"others scored as they are under {sid!r}: write p: 1 to deform every track (or p: {default:g}"
                        " to keep it so)",
                    )
    return list(out.values())


# ------------------------------------------------------------------------ models


class EmbeddingModelConfig(Strict):
    """An embedding model: a registered id, or an inline definition with parameters."""

    #: the name results are stored under (defaults to ``type`` when only a type is given)
    id: FileName
    #: registered model family to build (defaults to the id)
    type: str | None = None
    #: the model's constructor parameters (``repeval models``)
    params: dict[str, Any] = Field(default_factory=dict)
    #: tracks per inference batch (default: the model's)
    batch_size: int | None = Field(default=None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _from_str(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"id": data}
        if isinstance(data, dict) and "id" not in data and "name" in data:
            data = dict(data)
            data["id"] = data.pop("name")
        if isinstance(data, dict) and "id" not in data and "type" in data:
            data = dict(data)
            data["id"] = data["type"]
        return data

    @model_validator(mode="after")
    def _known(self) -> EmbeddingModelConfig:
        from repeval.models.base import check_params

        try:  # unknown model (the closest known), unknown params, values of the wrong kind — each param at its path
            check_params(self)
        except ParamProblems as exc:
            raise_at_params(exc, type(self).__name__)
        return self
