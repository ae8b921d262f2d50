"""What the plugin tests share: the example plugin, a team's model and one with weights, configs that load them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from repeval.config import ConfigError, parse_config

REPO = Path(__file__).resolve().parents[2]


EXAMPLE = REPO / "examples" / "my_model.py"


EXAMPLE_CONFIG = REPO / "examples" / "my_model.yaml"


EXAMPLE_MODEL = "my-spectrum-projection"


#: an installed package's plugin module, registering ``team-model``
TEAM_MODEL = """
from repeval.models import EmbeddingModel, register_model

@register_model("team-model")
class TeamModel(EmbeddingModel):
    sample_rate_hz = 16000
    embedding_dim = 3

    def embed(self, audio):
        return audio[: len(audio) // 3 * 3].reshape(-1, 3)[:1].astype("float32")
"""


def _config(plugins: list[str], model: str = "mfcc-stats") -> dict:
    return {
        "plugins": plugins,
        "experiments": [
            {
                "task": {"name": "t", "type": "multiclass_classification"},
                "datasets": [{"name": "n", "type": "catalog", "manifest": "m.csv", "label_column": "instrument"}],
                "embedding_models": [model],
                "downstream_models": [{}],
            }
        ],
    }


def _plugin(tmp_path: Path, stem: str, body: str) -> str:
    path = tmp_path / f"{stem}.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def _problem(plugins: list[str], model: str = "mfcc-stats") -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(_config(plugins, model))
    assert len(err.value.problems) == 1, err.value.problems
    return err.value.problems[0]


#: a model whose weights file is a parameter, as a team's trained network has it
WEIGHTS_MODEL = """
import numpy as np

from repeval.models import EmbeddingModel, register_model

@register_model("weights-model")
class WeightsModel(EmbeddingModel):
    sample_rate_hz = 16000

    def __init__(self, weights_path: str = "", dim: int = 2):
        super().__init__(weights_path=weights_path, dim=dim)
        self.w = np.load(weights_path).astype(np.float32)[:, :dim]
        self.embedding_dim = self.w.shape[1]

    def embed(self, audio):
        if audio.size == 0:
            raise ValueError("empty audio")
        return (np.abs(audio[: len(audio) // 4 * 4 or 4].reshape(-1, 4)) @ self.w).astype(np.float32)
"""
