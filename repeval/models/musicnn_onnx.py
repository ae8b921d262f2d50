"""The musicnn wheel's checkpoints as ONNX models, for :mod:`repeval.models.musicnn_tf`'s ``onnx`` backend.

:func:`onnx_model` gives the cached ``.onnx`` of one checkpoint's inference graph cut at one layer, converting it
first when the cache lacks it (or holds a file onnxruntime cannot load). The conversion reads the TF1 checkpoint,
so it needs TensorFlow: it runs in a child process (``python -m repeval.models.musicnn_onnx CHECKPOINT LAYER``,
with ``TF_USE_LEGACY_KERAS=1``), and the process that embeds never imports TensorFlow. ``scripts/setup.sh`` runs
``python -m repeval.models.musicnn_onnx --all`` when tensorflow and onnx are installed, so runs find them cached.

The ONNX graph is musicnn's own (``musicnn/models.py``: ``build_musicnn`` and ``vgg``) in inference mode, op for op
(batch normalisations on their moving statistics with TensorFlow's epsilon 0.001, no dropout), in NCHW: a TF
feature map ``(N, time, features)`` is ``(N, features, time, 1)`` here, so musicnn's convolutions over
``[7, features]`` become ``[7, 1]`` convolutions over ``features`` channels — the same sums. Its outputs agree with
the TF graph to float32 rounding (tests/models/test_families.py). Cache: ``models_dir()/musicnn-onnx``, one file
per checkpoint, layer and checkpoint content (the name carries a digest of the checkpoint's ``.index``, which
holds every tensor's checksum) and :data:`CONVERTER` version; written to a temporary file and renamed, so two
processes converting at once each leave a whole file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from repeval.models._common import PROCESS_GROUP_ENV, models_dir, package_dir

log = logging.getLogger(__name__)

#: raise when the graph written below changes: its files are cached under a name carrying it
CONVERTER = "1"
CHECKPOINTS = ("MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg")
LAYERS = {"musicnn": ("dense", "penultimate", "mean_pool", "max_pool"), "vgg": ("pool5",)}
EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default epsilon
PATCH_FRAMES, N_MELS = 187, 96


def checkpoint_prefix(checkpoint: str) -> Path:
    """The wheel's TF1 checkpoint prefix (its files are ``<dir>/.index`` and ``<dir>/.data-00000-of-00001``)."""
    return package_dir("musicnn") / checkpoint


def cache_path(checkpoint: str, layer: str) -> Path:
    """Where the ONNX model of ``checkpoint`` cut at ``layer`` is cached (found without TensorFlow)."""
    digest = hashlib.sha256((checkpoint_prefix(checkpoint) / ".index").read_bytes()).hexdigest()[:12]
    return models_dir() / "musicnn-onnx" / f"{checkpoint}-{layer}-{digest}-c{CONVERTER}.onnx"


def onnx_model(checkpoint: str, layer: str, session: Any) -> Any:
    """An onnxruntime session of ``checkpoint`` cut at ``layer``, built by ``session(path)``; the model is converted
    (in a child process) when the cache lacks it or holds a file onnxruntime cannot load."""
    path = cache_path(checkpoint, layer)
    if path.is_file():
        try:
            return session(path)
        except Exception as exc:  # a truncated or corrupt file (a killed copy, a full disk): convert again
            log.warning("cached ONNX model %s does not load (%s): converting %s again", path, exc, checkpoint)
    convert_in_child(checkpoint, layer)
    return session(path)


def convert_in_child(checkpoint: str, layer: str) -> None:
    """Convert in a fresh process (TensorFlow with legacy Keras: never imported by the caller)."""
    log.info("converting musicnn checkpoint %s (%s layer) to ONNX (TensorFlow, once)", checkpoint, layer)
    root = str(Path(__file__).resolve().parents[2])  # this repeval, whatever the caller's sys.path came from
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, **PROCESS_GROUP_ENV["tf"], "PYTHONPATH": path}
    proc = subprocess.run(
        [sys.executable, "-m", "repeval.models.musicnn_onnx", checkpoint, layer],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise RuntimeError(
            f"converting musicnn {checkpoint} ({layer}) to ONNX failed (it needs tensorflow, tf-keras and onnx: "
            f"pip install 'repeval[tf,onnx]'; or use params.backend: tf): {tail}"
        )


def convert(checkpoint: str, layer: str) -> Path:
    """Write the ONNX model of ``checkpoint`` cut at ``layer`` to its cache path (atomically); needs TensorFlow."""
    import onnx
    import tensorflow as tf

    reader = tf.compat.v1.train.NewCheckpointReader(str(checkpoint_prefix(checkpoint)) + os.sep)
    build = _vgg if "vgg" in checkpoint else _musicnn
    graph = _Graph(reader)
    out = build(graph, layer)
    model = graph.model(out, f"{checkpoint}-{layer}")
    onnx.checker.check_model(model)
    path = cache_path(checkpoint, layer)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(model.SerializeToString())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class _Graph:
    """Nodes and initializers of one ONNX graph, weights read from a TF1 checkpoint."""

    def __init__(self, reader: Any) -> None:
        import onnx

        self.onnx = onnx
        self.reader = reader
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.n = 0

    def const(self, value: np.ndarray, name: str | None = None) -> str:
        self.n += 1
        name = name or f"c{self.n}"
        self.inits.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def var(self, name: str) -> np.ndarray:
        return np.asarray(self.reader.get_tensor(name), dtype=np.float32)

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        self.n += 1
        out = f"{op_type.lower()}{self.n}"
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def bn(self, x: str, scope: str) -> str:
        """``tf.compat.v1.layers.batch_normalization`` at inference (moving statistics) over channel axis 1."""
        params = [self.const(self.var(f"{scope}/{k}")) for k in ("gamma", "beta", "moving_mean", "moving_variance")]
        return self.op("BatchNormalization", x, *params, epsilon=EPS)

    def conv(self, x: str, scope: str, pads: list[int], relu: bool = True, kernel: np.ndarray | None = None) -> str:
        """A TF ``conv2d`` (kernel HWIO) as ONNX Conv (OIHW); ``pads``: top, left, bottom, right."""
        k = self.var(f"{scope}/kernel") if kernel is None else kernel
        w = self.const(k.transpose(3, 2, 0, 1))
        y = self.op("Conv", x, w, self.const(self.var(f"{scope}/bias")), pads=pads, kernel_shape=list(k.shape[:2]))
        return self.op("Relu", y) if relu else y

    def model(self, out: str, name: str) -> Any:
        helper, tp = self.onnx.helper, self.onnx.TensorProto
        x = helper.make_tensor_value_info("x", tp.FLOAT, ["N", PATCH_FRAMES, N_MELS])
        y = helper.make_tensor_value_info(out, tp.FLOAT, ["N", None])
        graph = helper.make_graph(self.nodes, name, [x], [y], self.inits)
        # IR 10 (onnx 1.16's): onnxruntime 1.31 loads up to 13, onnx 1.23 would write 14
        return helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="repeval", ir_version=10
        )


def _same(k: int) -> list[int]:
    """TensorFlow's ``same`` padding of a stride-1 kernel of ``k`` along time (the extra row after)."""
    return [(k - 1) // 2, 0, k - 1 - (k - 1) // 2, 0]


def _musicnn(g: _Graph, layer: str) -> str:
    """``build_musicnn`` (front-end 7774timbraltemporal, dense mid-end, globalpool_dense back-end), NCHW."""
    x = g.op("Unsqueeze", "x", g.const(np.array([1], np.int64)))  # (N, 1, 187, 96)
    x = g.bn(x, "batch_normalization")
    pooled = []  # each front-end block: conv, ReLU, batch norm, max over frequency -> (N, C, 187, 1)
    for i, (conv, pads) in enumerate([("conv2d", [3, 0, 3, 0]), ("conv2d_1", [3, 0, 3, 0])]):
        y = g.bn(g.conv(x, conv, pads), f"batch_normalization_{i + 1}")
        pooled.append(g.op("ReduceMax", y, g.const(np.array([3], np.int64)), keepdims=1))
    for i, k in enumerate((128, 64, 32)):
        y = g.bn(g.conv(x, f"conv2d_{i + 2}", _same(k)), f"batch_normalization_{i + 3}")
        pooled.append(g.op("ReduceMax", y, g.const(np.array([3], np.int64)), keepdims=1))
    front = g.op("Concat", *pooled, axis=1)  # (N, 561, 187, 1)
    feats = [front]
    prev = front
    for i in range(3):  # [7, C] convolutions over the stacked features: [7, 1] over C channels
        kernel = g.var(f"conv2d_{i + 5}/kernel")  # (7, C, 1, 64)
        y = g.conv(prev, f"conv2d_{i + 5}", [3, 0, 3, 0], kernel=kernel.transpose(0, 2, 1, 3))
        y = g.bn(y, f"batch_normalization_{i + 6}")
        prev = y if i == 0 else g.op("Add", y, prev)
        feats.append(prev)
    mid = g.op("Concat", *feats, axis=1)  # (N, 753, 187, 1)
    axes = g.const(np.array([2, 3], np.int64))
    max_pool = g.op("ReduceMax", mid, axes, keepdims=0)
    mean_pool = g.op("ReduceMean", mid, axes, keepdims=0)
    if layer in ("max_pool", "mean_pool"):
        return max_pool if layer == "max_pool" else mean_pool
    last = g.const(np.array([2], np.int64))
    both = g.op("Concat", g.op("Unsqueeze", max_pool, last), g.op("Unsqueeze", mean_pool, last), axis=2)
    flat = g.op("Reshape", both, g.const(np.array([0, -1], np.int64)))  # max, mean per feature: TF's flatten
    flat = g.bn(flat, "batch_normalization_9")
    dense = g.op("Gemm", flat, g.const(g.var("dense/kernel")), g.const(g.var("dense/bias")))
    if layer == "dense":
        return dense
    return g.bn(g.op("Relu", dense), "batch_normalization_10")


def _vgg(g: _Graph, layer: str) -> str:
    """``vgg``'s pool5, flattened in TF's (time, frequency, channel) order."""
    x = g.op("Unsqueeze", "x", g.const(np.array([1], np.int64)))
    x = g.bn(x, "batch_normalization")
    pools = [([4, 1], [2, 2]), ([2, 2], [2, 2]), ([2, 2], [2, 2]), ([2, 2], [2, 2]), ([4, 4], [4, 4])]
    for i, (size, strides) in enumerate(pools):
        y = g.bn(g.conv(x, f"{i + 1}CNN", [1, 1, 1, 1]), f"batch_normalization_{i + 1}")
        x = g.op("MaxPool", y, kernel_shape=size, strides=strides)
    x = g.op("Transpose", x, perm=[0, 2, 3, 1])
    return g.op("Reshape", x, g.const(np.array([0, -1], np.int64)))


def main(argv: list[str]) -> int:
    if argv == ["--all"]:
        jobs = [(c, layer) for c in CHECKPOINTS for layer in LAYERS["vgg" if "vgg" in c else "musicnn"]]
    elif len(argv) == 2:
        jobs = [(argv[0], argv[1])]
    else:
        print("usage: python -m repeval.models.musicnn_onnx (CHECKPOINT LAYER | --all)", file=sys.stderr)
        return 2
    for checkpoint, layer in jobs:
        print(convert(checkpoint, layer))
    return 0


if __name__ == "__main__":
    for _key, _value in PROCESS_GROUP_ENV["tf"].items():
        os.environ.setdefault(_key, _value)
    sys.exit(main(sys.argv[1:]))
