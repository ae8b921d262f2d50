"""Probe architectures: linear or MLP heads with mir_ref's ``infer`` / ``power_infer`` sizes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def _even_up(x: float) -> int:
    n = math.ceil(x)
    return max(2, n + (n % 2))


def resolve_hidden_units(units: Sequence[int | str], input_dim: int, n_outputs: int) -> list[int]:
    """Turn ``infer`` / ``power_infer`` entries into sizes.

    ``infer``: a linear ramp from the input dim d down to the output count c —
    ``h_i = c + (n + 1 − i)(d − c)/(n + 1)`` for the i-th (1-based) of n hidden layers, rounded up to even.
    ``power_infer``: the same ramp on a log scale (a geometric interpolation,
    ``h_i = c · (d/c)^((n − i + 1)/(n + 1))``), which keeps wide inputs from producing huge layers.
    """
    n = len(units)
    d, c = float(input_dim), float(max(n_outputs, 1))
    out = []
    for i, u in enumerate(units, start=1):
        if u == "infer":
            out.append(_even_up(c + (n + 1 - i) * (d - c) / (n + 1)))
        elif u == "power_infer":
            out.append(_even_up(c * (d / c) ** ((n - i + 1) / (n + 1))) if d > c else _even_up(c))
        else:
            out.append(int(u))
    return out


class Probe(nn.Module):
    def __init__(self, input_dim: int, hidden: Sequence[int], n_outputs: int, dropout: float = 0.0, input_dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if input_dropout > 0:
            layers.append(nn.Dropout(input_dropout))
        prev = input_dim
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            prev = h
        layers.append(nn.Linear(prev, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_probe(cfg: object, input_dim: int, n_outputs: int) -> Probe:
    hidden = resolve_hidden_units(getattr(cfg, "hidden_units", ()), input_dim, n_outputs)
    return Probe(input_dim, hidden, n_outputs, getattr(cfg, "dropout", 0.0), getattr(cfg, "input_dropout", 0.0))
