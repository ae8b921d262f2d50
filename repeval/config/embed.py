"""What the embed stage computes for each track: the deformation scenarios applied to it (``deformations:``) and the
embedding models run on it (``embedding_models:``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

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
    def _valid_transform(self, info: ValidationInfo) -> DeformationStep:
        from repeval.deformations import validate_step

        files = not (info.context or {}).get("skip_files")  # `validate --skip-data-check`: files of another machine
        try:
            validate_step(self.type, self.params, files=files)
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
    robustness study's Δ then measures half a deformation. Said once per scenario and step as written, wherever the
    experiments (or datasets) define it; ``repeval validate`` prints them and the embed stage logs them."""
    import inspect

    from repeval.deformations import waveform_transforms

    out: dict[tuple[str, int, str], str] = {}  # (scenario, step, the step as written): alike ones said once
    for ei, exp in enumerate(experiments):
        # the experiment's scenarios where a dataset takes them (one with its own deformations replaces them)
        places = [("deformations", exp.deformations)] if any(ds.deformations is None for ds in exp.datasets) else []
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
                        (sid, i, repr(step)),
                        f"experiments[{ei}].{where}[{k}].steps[{i}]: scenario {sid!r} gives {step.type} no p — "
                        f"audiomentations' default p {default:g} deforms only about {default:.0%} of the tracks, the "
                        f"others scored as they are under {sid!r}: write p: 1 to deform every track (or p: {default:g}"
                        " to keep it so)",
                    )
    return list(out.values())


def unchecked_files_notes(experiments: Any) -> list[str]:
    """What ``repeval validate --skip-data-check`` leaves unchecked of the files deformation steps read
    (``sounds_path``, ``ir_path``): each path once, where it is first given — the run checks that it exists and holds
    audio files, and fingerprints them, where it embeds."""
    from repeval.deformations.files import unchecked_paths

    out: dict[tuple[str, str], str] = {}
    for ei, exp in enumerate(experiments):
        places = [("deformations", exp.deformations)]
        places += [(f"datasets[{j}].deformations", ds.deformations or ()) for j, ds in enumerate(exp.datasets)]
        for where, scenarios in places:
            for k, sc in enumerate(scenarios):
                for i, step in enumerate(sc.steps):
                    for key, path in unchecked_paths(step.params):
                        out.setdefault(
                            (key, path),
                            f"experiments[{ei}].{where}[{k}].steps[{i}]: {step.type}.{key} {path!r} not checked "
                            "(--skip-data-check): it must exist and hold audio files on each machine that deforms "
                            "tracks (the run checks it and records what the files hold)",
                        )
    return list(out.values())


def deform_splits_warnings(cfg: Any) -> list[str]:
    """A warning when ``run.deform_splits`` deforms tracks no probe reads: the validation tracks (probes are chosen on
    clean audio) and the training tracks of the scenarios no experiment's ``augment`` lists (probes train on clean
    audio plus the augmenting scenarios' training tracks) — embedded into the store, at the cost of embedding them,
    and changing no result. k-fold datasets (every track tested in some fold) are left out."""
    splits = set(cfg.run.deform_splits)
    unused_validation, unused_train = False, {}
    for exp in cfg.experiments:
        for ds in exp.datasets:
            if ds.split_type != "single":
                continue
            scenarios = list(exp.scenarios_for(ds))
            unused_validation |= bool(scenarios) and "validation" in splits
            if "train" in splits:
                augmented = set(exp.augment_for(ds))
                unused_train.update(dict.fromkeys(s for s in scenarios if s not in augmented))
    if not unused_validation and not unused_train:
        return []
    what = ["validation tracks"] if unused_validation else []
    if unused_train:
        what.append(f"training tracks under {', '.join(unused_train)}")
    return [
        f"run.deform_splits: {list(cfg.run.deform_splits)} deforms the {' and the '.join(what)} into the store, "
        "where no probe reads them: probes train and are chosen on clean audio, plus the deformed training tracks "
        "of the scenarios an experiment's augment lists — the results are those of [test], for more embedding work; "
        "keep deform_splits: [test] (the default) unless you read those rows yourself"
    ]


# ------------------------------------------------------------------------ models


class EmbeddingModelConfig(Strict):
    """An embedding model: a registered id, or an inline definition with parameters."""

    #: the name results are stored under (defaults to ``type`` when only a type is given)
    id: FileName
    #: registered model family to build (defaults to the id)
    type: str | None = None
    #: the model's constructor parameters (``repeval models``), each of the kind its annotation says: an ``Enum``
    #: member by its name (``mode: GREEN``; a list of them for ``list[Color]``, a mapping's keys for ``dict[Color,
    #: int]``), a ``Literal``'s value, a mapping of its fields for a dataclass (``look: {color: GREEN, size: 2}``)
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
