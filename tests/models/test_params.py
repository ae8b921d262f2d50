"""Model parameters read without building the model: the configuration check and the constructors' defaults."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from repeval.config.embed import EmbeddingModelConfig
from repeval.models.base import EmbeddingModel, check_params, resolve_model


@pytest.mark.parametrize(
    ("model_id", "key", "bad", "said"),
    [
        ("mert-v1-95m", "frames", "nativ", "expected 'window' or 'native', got 'nativ' — did you mean 'native'?"),
        ("hf-audio", "frames", "mean", "expected 'window' or 'native', got 'mean'"),
        ("maest", "token_pooling", "max", "expected 'concat', 'cls' or 'mean', got 'max'"),
        (
            "pesto",
            "output",
            "feature",
            "expected 'activations' or 'features', got 'feature' — did you mean 'features'?",
        ),
    ],
)
def test_a_param_of_a_few_values_is_refused_by_the_config_check_naming_them(
    model_id: str, key: str, bad: str, said: str
) -> None:
    """hf encoders' ``frames`` (``window`` or ``native``), maest's ``token_pooling`` and pesto's ``output`` were
    checked only by the constructor: a config with another value passed ``repeval check`` and failed when the model
    was built, in the embedding actor. Now the configuration check refuses it at its key, naming the valid values (and
    the close one); the valid values pass."""
    with pytest.raises(ValueError, match=f"params.{key}") as refused:
        EmbeddingModelConfig(id=model_id, params={key: bad})
    assert said in str(refused.value)
    family, _ = resolve_model(EmbeddingModelConfig(id=model_id))
    for good in family.cls.param_choices[key]:
        check_params(EmbeddingModelConfig(id=model_id, params={key: good}))


def _with_default(cls: type[EmbeddingModel], key: str, value: Any) -> type[EmbeddingModel]:
    """A subclass of ``cls`` whose constructor's ``key`` defaults to ``value`` (a plugin's own default)."""

    def __init__(self: Any, **params: Any) -> None:
        params.setdefault(key, value)
        cls.__init__(self, **params)

    kinds = inspect.Parameter
    __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            kinds("self", kinds.POSITIONAL_OR_KEYWORD),
            kinds(key, kinds.KEYWORD_ONLY, default=value),
            kinds("params", kinds.VAR_KEYWORD),
        ]
    )
    return type(f"Own{cls.__name__}", (cls,), {"__init__": __init__})


def _families() -> list[tuple[str, str, Any]]:
    return [
        ("repeval.models.musicnn_tf:MSDMusiCNN", "hop_s", 1.5),
        ("repeval.models.crepe:CrepeTiny", "hop_s", 0.05),
        ("repeval.models.neuralfp:NeuralFPModel", "hop_s", 0.25),
        ("repeval.models.pesto_pitch:Pesto", "hop_s", 0.02),
        ("repeval.models.pesto_pitch:Pesto", "output", "features"),
        ("repeval.models.mule:MULE", "hop_frames", 100),
        ("repeval.models.handcrafted:LogMelStats", "hop_s", 0.25),
        ("repeval.models.handcrafted:LogMelStats", "hop_length", 256),
        ("repeval.models.handcrafted:LogMelStats", "window_s", 2.0),
        ("repeval.models.handcrafted:LogMelStats", "n_fft", 1024),
        ("repeval.models.handcrafted:LogMelStats", "sample_rate_hz", 16000),
        ("repeval.models.handcrafted:LogMelStats", "n_mels", 32),
        ("repeval.models.handcrafted:MFCCStats", "n_mfcc", 13),
        ("repeval.models.essentia_tf:MAEST", "token_pooling", "cls"),
    ]


@pytest.mark.parametrize(("where", "key", "value"), _families())
def test_frames_and_sizes_stated_without_the_model_follow_the_constructors_default(
    where: str, key: str, value: Any
) -> None:
    """The frame geometry (where a window's frames lie: the pipeline's seams), sizes and hop ``repeval plan`` states
    are read without building the model: musicnn's frame geometry read ``hop_s`` with a hard-coded 3.0, and crepe's,
    neuralfp's, pesto's, mule's, the handcrafted statistics' and maest's theirs — a subclass (a plugin) with another
    default was given the frames of the default it does not run with. Now each reads the constructor's default,
    as it reads ``params``."""
    import importlib

    module, name = where.split(":")
    cls = getattr(importlib.import_module(module), name)
    own = _with_default(cls, key, value)
    stated = [cls.frame_geometry({key: value}), cls.declared_sizes({key: value}), cls.declared_hop_s({key: value})]
    assert stated != [cls.frame_geometry({}), cls.declared_sizes({}), cls.declared_hop_s({})]
    assert [own.frame_geometry({}), own.declared_sizes({}), own.declared_hop_s({})] == stated
