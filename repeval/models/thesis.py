"""Thesis model ids that repeval declares but does not implement yet.

Every other model of the mir_ref thesis is a real module now (``msd-musicnn`` in
:mod:`~repeval.models.musicnn_tf`, ``vggish-audioset``/``effnet-discogs``/``openl3`` in
:mod:`~repeval.models.essentia_tf`, ``clmr-v2`` in :mod:`~repeval.models.clmr`, ``mule`` in
:mod:`~repeval.models.mule`, ``mert-v1-*`` in :mod:`~repeval.models.hf`). A declared family
reports why it cannot run (``repeval models`` shows the reason) and a run that needs it stops
before any compute with that reason.
"""

from __future__ import annotations

from typing import Any

from repeval.models.base import EmbeddingModel, register_model


def _declare(name: str, reason: str, parse_id: Any = None) -> None:
    cls = type(
        name.replace("-", "_"),
        (EmbeddingModel,),
        {
            "description": f"thesis model {name} (not yet implemented in repeval)",
            "availability": classmethod(lambda cls, params: reason),
            "implemented": False,
        },
    )
    register_model(name, parse_id=parse_id)(cls)


_declare(
    "neuralfp",
    "not implemented yet: NeuralFP (Chang et al. 2021) needs its encoder ported and its TF weights converted "
    "(tracked in issue 5); use another model id meanwhile",
)
