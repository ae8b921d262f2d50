"""Probes (downstream models) in PyTorch: architecture, preprocessing and the training loop."""

from repeval.probes.model import build_probe, resolve_hidden_units
from repeval.probes.train import ProbeData, TrainResult, train_probe

__all__ = ["ProbeData", "TrainResult", "build_probe", "resolve_hidden_units", "train_probe"]
