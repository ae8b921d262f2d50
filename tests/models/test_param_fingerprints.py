"""What a partition's fingerprint hashes of a model's params: what the model is built with, one form for each — an
``Enum`` member however it is written, a date apart from its text — while a configuration holding neither keeps the
fingerprint it had."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

#: a plugin's model with an ``Enum`` param and one its constructor takes as it is (no default's kind, no annotation)
SHADED_PLUGIN = """
import enum

import numpy as np

from repeval.models import EmbeddingModel, register_model


class Shade(enum.Enum):
    LIGHT = "light"
    DARK = "dark"


@register_model("shaded-model")
class ShadedModel(EmbeddingModel):
    sample_rate_hz = 16000
    embedding_dim = 2

    def __init__(self, shade: Shade = Shade.LIGHT, since=None, **params):
        super().__init__(**params)
        self.shade, self.since = shade, since

    def embed(self, audio):
        return np.zeros((1, 2), np.float32)
"""

CONFIG = """\
plugins: [{plugin}]
run: {{store: store}}
experiments:
  - task: {{name: t, type: multiclass_classification}}
    datasets: [{{name: n, type: catalog, manifest: m.csv, label_column: instrument}}]
    embedding_models: [{{id: shaded-model, params: {params}}}]
    downstream_models: [{{}}]
"""


def _clean(tmp_path: Path, params: str) -> Any:
    """The clean partition a configuration whose model has ``params`` (YAML, read as a file is) asks for."""
    from repeval.config import load_config
    from repeval.pipeline.partitions import ModelSpec

    plugin = tmp_path / f"shaded_{tmp_path.name}.py"  # (one module name per test: a plugin's is its file's)
    plugin.write_text(SHADED_PLUGIN)
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.format(plugin=plugin, params=params))
    cfg = load_config(path)
    exp = cfg.experiments[0]
    return ModelSpec.of(cfg, exp.embedding_models[0]).partition(cfg, exp, exp.datasets[0], "clean")


def _stamped(tmp_path: Path, name: str, spec: Any, params_hash: str) -> Any:
    """A partition stamped with ``spec``'s fingerprint but its model params' hash, ``params_hash``."""
    from repeval.store import EmbeddingStore

    part = EmbeddingStore(str(tmp_path / "store")).partition(name, "shaded-model", "clean")
    part.stamp({**spec.fingerprint, "model": {**spec.fingerprint["model"], "params": params_hash}}, described={})
    return part


def test_an_enum_member_by_name_or_by_value_is_one_fingerprint_and_a_partition_stamped_under_either_is_reused(
    tmp_path: Path, forget_plugins: None
) -> None:
    """``shade: DARK`` and ``shade: dark`` (its value) build the same model, but the fingerprint hashed the params as
    written: a partition embedded under one conflicted with the other. It hashes the member's name now — a
    configuration writing the name keeps its fingerprint — and a partition stamped under the value's hash, as repeval
    hashed it before, serves either writing under its own fingerprint; another hash still conflicts."""
    from repeval.pipeline.partition_conflicts import accepted_spec
    from repeval.store import StoreConflict

    specs = {written: _clean(tmp_path, f"{{shade: {written}}}") for written in ("DARK", "dark")}
    assert specs["DARK"].fingerprint == specs["dark"].fingerprint
    assert specs["DARK"].fingerprint["model"]["params"] == "2f345ab54930562b"  # the name's, as commit c1eb7f5 hashed it
    for written, spec in specs.items():
        by_value = _stamped(tmp_path, f"value-{written}", spec, "c579a263142d2384")  # the value's, as c1eb7f5 hashed it
        assert accepted_spec(by_value, spec).fingerprint == by_value.stamped()["fingerprint"]
        with pytest.raises(StoreConflict, match=r'model.params: stored "0123456789abcdef", now "2f345ab54930562b"'):
            accepted_spec(_stamped(tmp_path, f"other-{written}", spec, "0123456789abcdef"), spec)


def test_a_date_value_and_its_text_are_two_fingerprints_and_a_partition_hashed_alike_before_says_why(
    tmp_path: Path, forget_plugins: None
) -> None:
    """YAML reads ``since: 2024-01-01`` as a date — the plugin gets a ``datetime.date`` — and ``since: '2024-01-01'``
    as text; the fingerprint hashed both as the text, so a partition embedded with one was taken for the other's (a
    scenario's alike). They differ now, the text keeping its fingerprint; a partition stamped before with the date
    conflicts, saying why."""
    from repeval.config.embed import DeformationScenario, DeformationStep
    from repeval.config.loader import config_hash
    from repeval.pipeline.partition_conflicts import accepted_spec
    from repeval.store import StoreConflict

    dated, text = _clean(tmp_path, "{since: 2024-01-01}"), _clean(tmp_path, "{since: '2024-01-01'}")
    assert isinstance(dated.model.params["since"], datetime.date)
    hashes = [spec.fingerprint["model"]["params"] for spec in (dated, text)]
    assert hashes[0] != hashes[1] == "10bf8ea8cc603f1f"  # the text's (and the date's), as commit c1eb7f5 hashed it

    def scenario(day: Any) -> str:  # a plugin transform's params, as the config holds them once validated
        step = DeformationStep.model_construct(type="Plugin", params={"day": day})
        return config_hash(DeformationScenario.model_construct(name="s", steps=(step,)))

    assert scenario(datetime.date(2024, 1, 1)) != scenario("2024-01-01") == "a0ef497c23361bb0"
    before = _stamped(tmp_path, "before", text, "10bf8ea8cc603f1f")
    assert accepted_spec(before, text).fingerprint == text.fingerprint
    with pytest.raises(StoreConflict) as err:
        accepted_spec(before, dated)
    assert str(err.value).partition("deletes them all")[2] == (
        ". The stored model.params hash is this configuration's as repeval hashed it before it told a date value "
        "(`2024-01-01`) from its text (`'2024-01-01'`), which it hashed alike: the partition was embedded with these "
        "params or with the same dates written as text, which cannot be told apart, so its rows are not reused"
    )
