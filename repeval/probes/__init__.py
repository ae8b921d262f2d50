"""Probes (downstream models) in PyTorch: architecture, preprocessing and the training loop."""

from repeval.probes.model import Probe, build_probe, resolve_hidden_units
from repeval.probes.stacked import StackedMLP, StackedOptimizer
from repeval.probes.train import Halving, ProbeData, TrainResult, group_key, predict, train_probe, train_probes

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
