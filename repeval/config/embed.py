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
