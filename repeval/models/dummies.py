"""Stand-in weights so every registered family can be exercised offline (contract tests, ``validate-model --dummy``).

For families whose weights ship in a wheel nothing is needed; for the others this writes
small or randomly initialised weights of the real architecture / file format into a directory
and returns the params that point the family at them:

- transformers encoders: a tiny randomly initialised model of the family's architecture saved
  with ``save_pretrained`` (plus its feature-extractor config);
- CLMR, MULE, NeuralFP: the real architecture, randomly initialised, saved as a state dict;
- Essentia graphs: a frozen TensorFlow graph with the real input/output node names and output
  size, written by **a separate tensorflow process** (essentia aborts beside tensorflow 2.x).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repeval.models._common import PROCESS_GROUP_ENV

#: families that need no stand-in (weights ship in their wheels, or pure numpy)
SHIPPED = {
    "logmel-stats", "mfcc-stats", "chroma-stats", "msd-musicnn", "mtt-musicnn", "msd-vgg", "mtt-vgg",
    "crepe-full", "crepe-tiny", "pesto", "basic-pitch",
}  # fmt: skip


_TINY = {
    "hidden_size": 16, "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 32,
    "conv_dim": (8, 8), "conv_stride": (5, 4), "conv_kernel": (10, 4),
    "num_conv_pos_embeddings": 8, "num_conv_pos_embedding_groups": 2,
}  # fmt: skip


def tiny_hf_model(
    directory: Path,
    arch: str = "wav2vec2",
    sample_rate_hz: int = 16000,
    n_layers: int = 3,
    seed: int = 0,
    tiny: bool = True,
) -> Path:
    """A random ``arch`` (wav2vec2, hubert, data2vec-audio) encoder saved with ``save_pretrained``.

    ``tiny=False`` keeps the architecture's default (base, ~95M parameters) size: the cost of
    MERT-v1-95M / HuBERT-base, for benchmarks.
    """
    import torch
    import transformers as tr
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    classes = {
        "wav2vec2": (tr.Wav2Vec2Config, tr.Wav2Vec2Model),
        "hubert": (tr.HubertConfig, tr.HubertModel),
        "data2vec-audio": (tr.Data2VecAudioConfig, tr.Data2VecAudioModel),
    }
    config_cls, model_cls = classes[arch]
    torch.manual_seed(seed)
    config = config_cls(**{**_TINY, "num_hidden_layers": n_layers}) if tiny else config_cls()
    model_cls(config).eval().save_pretrained(directory)
    tr.Wav2Vec2FeatureExtractor(sampling_rate=sample_rate_hz, do_normalize=True).save_pretrained(directory)
    return directory


def _hf(arch: str, sample_rate_hz: int = 16000, n_layers: int = 3, **extra: Any) -> Callable[[Path], dict[str, Any]]:
    def make(workdir: Path) -> dict[str, Any]:
        directory = workdir / f"tiny-{arch}-{sample_rate_hz}-{n_layers}"
        return {"model": str(tiny_hf_model(directory, arch, sample_rate_hz, n_layers)), **extra}

    return make


def _clmr(workdir: Path) -> dict[str, Any]:
    import torch

    from repeval.models.clmr import build_samplecnn

    torch.manual_seed(0)
    path = workdir / "clmr-random.pt"
    state = {f"encoder.{k}": v for k, v in build_samplecnn().state_dict().items()}  # CLMR's training layout
    torch.save(state, path)
    return {"checkpoint": str(path)}


def _mule(workdir: Path) -> dict[str, Any]:
    import torch

    from repeval.models.mule import build_sfnfnet

    torch.manual_seed(0)
    net = build_sfnfnet()
    with torch.no_grad():  # non-zero skip gains so every residual branch contributes
        for name, p in net.named_parameters():
            if name.endswith("skip_gain"):
                p.fill_(0.5)
    path = workdir / "mule-random.pt"
    torch.save(net.state_dict(), path)
    return {"checkpoint": str(path)}


def _neuralfp(workdir: Path) -> dict[str, Any]:
    import torch

    from repeval.models.neuralfp import build_neuralfp

    torch.manual_seed(0)
    path = workdir / "neuralfp-random.pt"
    torch.save(build_neuralfp().state_dict(), path)
    return {"checkpoint": str(path)}


_GRAPH_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
for spec in json.loads(sys.argv[1]):
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, shape=None, name=spec["input"])
        flat = tf.reshape(x, [tf.shape(x)[0], -1])
        mean, var = tf.nn.moments(flat, axes=[1], keepdims=True)
        top, bottom = tf.reduce_max(flat, 1, keepdims=True), tf.reduce_min(flat, 1, keepdims=True)
        feats = tf.concat([mean, tf.sqrt(var + 1e-6), top, bottom], 1)
        node, _, index = spec["output"].partition(":")
        n_out = int(index or 0) + 1
        w = np.random.RandomState(0).randn(4, spec["dim"] * n_out).astype(np.float32)
        y = tf.tanh(tf.matmul(feats, tf.constant(w)))
        if spec.get("tokens"):
            ramp = np.linspace(0.5, 1.5, spec["tokens"], dtype=np.float32)[None, None, :, None]
            y = tf.tile(y[:, None, None, :], [1, 1, spec["tokens"], 1]) * tf.constant(ramp)
        if n_out > 1:
            tf.split(y, n_out, axis=-1, name=node)
        else:
            tf.identity(y, name=node)
        tf.io.write_graph(g.as_graph_def(), spec["dir"], spec["file"], as_text=False)
"""


def write_dummy_graphs(specs: list[dict[str, Any]], timeout_s: float = 300.0) -> None:
    """Write frozen graphs in a tensorflow subprocess.

    Each spec names ``dir``, ``file``, ``input`` and ``output`` nodes, ``dim`` and ``tokens`` (0: 2-D output).
    """
    env = {**os.environ, **PROCESS_GROUP_ENV["tf"]}
    proc = subprocess.run(
        [sys.executable, "-c", _GRAPH_SCRIPT, json.dumps(specs)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"writing dummy TensorFlow graphs failed (is tensorflow installed?):\n{proc.stderr[-2000:]}")


ESSENTIA_FAMILIES = ("vggish-audioset", "effnet-discogs", "musicnn-essentia", "maest", "openl3")


def _graph_spec(name: str, workdir: Path) -> dict[str, Any]:
    from repeval.models import MODELS

    cls: Any = MODELS.get(name).cls
    tokens = 5 if name == "maest" else 0  # MAEST emits (tokens x 768) per patch
    dim = cls.dim // 3 if tokens else cls.dim
    return {
        "dir": str(workdir),
        "file": f"dummy-{name}.pb",
        "input": cls.input_node,
        "output": cls.output_node,
        "dim": dim,
        "tokens": tokens,
    }


def write_essentia_dummies(workdir: Path, names: tuple[str, ...] = ESSENTIA_FAMILIES) -> None:
    """Write the stand-in graphs of several essentia families in one tensorflow process (skips existing files)."""
    workdir.mkdir(parents=True, exist_ok=True)
    specs = [_graph_spec(n, workdir) for n in names if not (workdir / f"dummy-{n}.pb").is_file()]
    if specs:
        write_dummy_graphs(specs)


def _essentia(name: str) -> Callable[[Path], dict[str, Any]]:
    def make(workdir: Path) -> dict[str, Any]:
        write_essentia_dummies(workdir, (name,))
        return {"graph_path": str(workdir / f"dummy-{name}.pb")}

    return make


DUMMIES: dict[str, Callable[[Path], dict[str, Any]]] = {
    "hf-audio": _hf("wav2vec2", layers=[1, 2]),
    "mert-v1": _hf("wav2vec2", 24000, n_layers=12),  # MERT-95M depth, so every mert-v1-95m-<layers> id resolves
    "hubert-base": _hf("hubert"),
    "wav2vec2-base": _hf("wav2vec2"),
    "data2vec-audio-base": _hf("data2vec-audio"),
    "clmr-v2": _clmr,
    "mule": _mule,
    "neuralfp": _neuralfp,
    **{n: _essentia(n) for n in ESSENTIA_FAMILIES},
}


def _mert_base_cost(workdir: Path) -> dict[str, Any]:
    directory = workdir / "random-hubert-base-24000"
    if not (directory / "config.json").is_file():
        tiny_hf_model(directory, "hubert", 24000, tiny=False)
    return {"model": str(directory)}


#: stand-ins with the real architecture and size (random weights): their cost is the real model's
COST_DUMMIES: dict[str, Callable[[Path], dict[str, Any]]] = {
    "clmr-v2": _clmr,
    "mule": _mule,
    "neuralfp": _neuralfp,
    "mert-v1": _mert_base_cost,  # HuBERT-base layout at 24 kHz: MERT-v1-95M's size and frame rate
}


def dummy_params(name: str, workdir: Path) -> dict[str, Any]:
    """Params that make family ``name`` runnable offline (``{}`` for shipped weights)."""
    if name in SHIPPED:
        return {}
    if name not in DUMMIES:
        raise KeyError(f"no stand-in weights for model family '{name}': add one to repeval/models/dummies.py")
    workdir.mkdir(parents=True, exist_ok=True)
    return DUMMIES[name](workdir)
