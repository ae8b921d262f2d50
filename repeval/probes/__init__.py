"""Probes (downstream models) in PyTorch: architecture, preprocessing and the training loop.

``model`` (a probe's layers), ``stacked`` (many probes of one shape trained as one), ``data`` (what probes train on),
``inputs`` (preprocessing and batches), ``losses`` (losses and the validation criterion), ``schedule`` (learning
rates, successive halving), ``train`` (the training loop) and ``inference`` (a checkpoint's scores).
"""

from repeval.cpu import imports_frozen_in_workers

# a trial actor imports torch here first (through repeval.tuning.trial): without the collector's rescans of it
with imports_frozen_in_workers():
    from repeval.probes.data import ProbeData
    from repeval.probes.inference import predict
    from repeval.probes.model import Probe, build_probe, resolve_hidden_units
    from repeval.probes.schedule import Halving
    from repeval.probes.stacked import StackedMLP, StackedOptimizer
    from repeval.probes.train import TrainResult, group_key, train_probe, train_probes

__all__ = [
    "Halving",
    "Probe",
    "ProbeData",
    "StackedMLP",
    "StackedOptimizer",
    "TrainResult",
    "build_probe",
    "group_key",
    "predict",
    "resolve_hidden_units",
    "train_probe",
    "train_probes",
]
