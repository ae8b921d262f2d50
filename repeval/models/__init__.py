"""Embedding models: the contract, the registry and the registered families."""

from repeval.models import handcrafted as _handcrafted  # noqa: F401  (registers families)
from repeval.models import thesis as _thesis  # noqa: F401
from repeval.models.base import (
    MODELS,
    EmbeddingModel,
    ModelUnavailable,
    build_model,
    register_model,
    resolve_model,
)

__all__ = ["MODELS", "EmbeddingModel", "ModelUnavailable", "build_model", "register_model", "resolve_model"]
