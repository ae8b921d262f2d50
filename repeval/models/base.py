"""The embedding-model contract and registry.

A model is a callable class: weights load once in ``__init__``; ``embed(audio)`` maps one mono
float32 waveform at ``sample_rate_hz`` to a ``(n_frames, embedding_dim)`` float32 array. The
pipeline aggregates frames (mean by default). ``embed_batch`` may be overridden for batched
inference; the default loops.

Families register with ``@register_model("name")``. A family may also claim ids by pattern
(``parse_id``), e.g. ``mert-v1-95m-4-5-6-7-8`` → family ``mert-v1-95m`` with ``layers=[4..8]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from repeval.registry import Registry, unknown_name_message


class ModelUnavailable(RuntimeError):
    """The model is known but cannot run here (missing extra or weights); the message names the fix."""


class EmbeddingModel:
    """Base class of every embedding model."""

    #: registered family name
    name: ClassVar[str] = ""
    #: optional-dependency extra that provides it (``None`` for base install)
    extra: ClassVar[str | None] = None
    #: human description for ``repeval models``
    description: ClassVar[str] = ""
    #: which kind of worker it needs: ``default`` or an isolated process group (``tf``, ``essentia``)
    process_group: ClassVar[str] = "default"
    #: whether the model benefits from a GPU when present
    uses_gpu: ClassVar[bool] = False
    #: no weights, cheap to build, single-threaded: by default it runs inside the decode tasks instead of an
    #: actor pool (``run.resources.embed_in_decode``)
    light: ClassVar[bool] = False

    sample_rate_hz: int
    embedding_dim: int

    def __init__(self, **params: Any) -> None:
        self.params = params

    def embed(self, audio: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def embed_batch(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        return [self.embed(a) for a in audios]

    @classmethod
    def availability(cls, params: dict[str, Any]) -> str | None:
        """``None`` when runnable here, else the reason (naming the fix)."""
        return None

    @classmethod
    def declared_sizes(cls, params: dict[str, Any]) -> tuple[int | None, int | None]:
        """``(sample_rate_hz, embedding_dim)`` known without loading weights (``None`` where unknown)."""
        return None, None

    @property
    def version(self) -> str:
        return "1"


@dataclass(frozen=True)
class ModelFamily:
    name: str
    cls: type[EmbeddingModel]
    #: maps a config id to params for this family, or None when the id is not this family's
    parse_id: Callable[[str], dict[str, Any] | None] | None = None
    default_params: dict[str, Any] = field(default_factory=dict)


MODELS: Registry[ModelFamily] = Registry("embedding model")


def register_model(
    name: str,
    parse_id: Callable[[str], dict[str, Any] | None] | None = None,
    **default_params: Any,
) -> Callable[[type[EmbeddingModel]], type[EmbeddingModel]]:
    def deco(cls: type[EmbeddingModel]) -> type[EmbeddingModel]:
        cls.name = name
        MODELS.register(name)(ModelFamily(name, cls, parse_id, default_params))
        return cls

    return deco


def resolve_model(cfg: Any) -> tuple[ModelFamily, dict[str, Any]]:
    """Resolve an :class:`EmbeddingModelConfig` to its family and merged params."""
    type_name = cfg.type or cfg.id
    if type_name in MODELS:
        fam = MODELS.get(type_name)
        return fam, {**fam.default_params, **cfg.params}
    for _, fam in MODELS.items():
        if fam.parse_id is not None:
            parsed = fam.parse_id(type_name)
            if parsed is not None:
                return fam, {**fam.default_params, **parsed, **cfg.params}
    raise ValueError(unknown_name_message("embedding model", type_name, set(MODELS.names())))


def build_model(cfg: Any) -> EmbeddingModel:
    fam, params = resolve_model(cfg)
    reason = fam.cls.availability(params)
    if reason:
        raise ModelUnavailable(f"embedding model '{cfg.id}' cannot run here: {reason}")
    return fam.cls(**params)
