"""What a run reads of a plugin model's ``model_code`` (repeval/models/provenance.py): the training stage checks each
partition its groups train and test on once, however many folds and tasks share it — each check a request on object
storage."""

from __future__ import annotations

import logging
import textwrap
from types import SimpleNamespace

import pyarrow.fs as pafs

from repeval.config.embed import EmbeddingModelConfig
from repeval.models import plugins as plugins_mod
from repeval.models import resolve_model
from repeval.models.provenance import plugin_code
from repeval.store import EmbeddingStore
from repeval.testing.fs import Counting
from repeval.warn import reset_warned

PLUGIN = """
from repeval.models import EmbeddingModel, register_model

@register_model("provenance-model")
class ProvenanceModel(EmbeddingModel):
    sample_rate_hz = 16000
    embedding_dim = 2

    def embed(self, audio):
        return audio[:2].reshape(1, 2).astype("float32")
"""


def test_the_training_stage_reads_each_partitions_model_code_once(tmp_path, caplog, forget_plugins):
    """Three folds of two tasks on one dataset train on the same clean and deformed partitions of a plugin model whose
    code has not changed: each partition's record is read once (it was read once per fold and task), and no change is
    said; a changed plugin is still said, naming the partition."""
    from repeval.run.train import _say_changed_code

    plugin = tmp_path / "provenance_plugin.py"
    plugin.write_text(textwrap.dedent(PLUGIN))
    plugins_mod.load_plugins([str(plugin)])
    mcfg = EmbeddingModelConfig(id="mine", type="provenance-model")
    code = plugin_code(*resolve_model(mcfg))
    assert code is not None
    handler = Counting()
    store = EmbeddingStore(str(tmp_path / "store"), filesystem=pafs.PyFileSystem(handler))
    for sid in ("clean", "noise"):
        store.partition("ds", "mine", sid).stamp({"f": sid}, {"model_code": code})
    exps = [SimpleNamespace(embedding_models=[mcfg]) for _ in range(2)]  # two tasks on the dataset
    pending = [
        SimpleNamespace(exp=exp, dataset="ds", model="mine", scenarios=["noise"], fold=fold)
        for exp in exps
        for fold in range(3)
    ]
    ctx = SimpleNamespace(store=store)
    handler.clear()
    _say_changed_code(ctx, pending)  # type: ignore[arg-type]
    read = {"/".join(path.split("/")[-2:]): n for path, n in handler.opened.items()}
    assert read == {
        "clean/_manifest.json": 1,
        "clean/_stamp.json": 1,
        "noise/_manifest.json": 1,
        "noise/_stamp.json": 1,
    }, handler.opened

    store.partition("ds", "mine", "noise").record("model_code", {**code, "sha256": "0" * 64})  # an earlier plugin's
    reset_warned()
    with caplog.at_level(logging.WARNING, logger="repeval.run.train"):
        _say_changed_code(ctx, pending)  # type: ignore[arg-type]
    (said,) = [r.getMessage() for r in caplog.records if "has changed since" in r.getMessage()]
    assert said.startswith(f"mine: its plugin {plugin} has changed since store partition ds/mine/noise")
