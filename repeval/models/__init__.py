"""Embedding models: the contract, the registry and the registered families.

Importing this package registers every family but loads no framework (torch, tensorflow,
essentia, onnxruntime, transformers are imported when a model is built), so it is safe in any
process, including the isolated ``tf`` and ``essentia`` workers.
"""

from repeval.models import basicpitch as _basicpitch  # noqa: F401  (each import registers families)
from repeval.models import clmr as _clmr  # noqa: F401
from repeval.models import crepe as _crepe  # noqa: F401
from repeval.models import essentia_tf as _essentia_tf  # noqa: F401
from repeval.models import handcrafted as _handcrafted  # noqa: F401
from repeval.models import hf as _hf  # noqa: F401
from repeval.models import mule as _mule  # noqa: F401
from repeval.models import musicnn_tf as _musicnn_tf  # noqa: F401
from repeval.models import neuralfp as _neuralfp  # noqa: F401
from repeval.models import pesto_pitch as _pesto_pitch  # noqa: F401
from repeval.models._common import PROCESS_GROUP_ENV
from repeval.models.base import (
    MODELS,
    EmbeddingModel,
    ModelUnavailable,
    build_model,
    register_model,
    resolve_model,
    unavailable_reason,
)

__all__ = [
    "MODELS",
    "PROCESS_GROUP_ENV",
    "EmbeddingModel",
    "ModelUnavailable",
    "build_model",
    "register_model",
    "resolve_model",
    "unavailable_reason",
]
