"""Probe architectures: linear or MLP heads with mir_ref's ``infer`` / ``power_infer`` sizes.

A probe is ``[attention pooling] [Dropout(input)] (Linear [Norm] ReLU [Dropout])* Linear``. :class:`Probe` is the
plain ``nn.Module`` (the checkpoint format and what inference uses); training runs on
:class:`repeval.probes.stacked.StackedMLP`, which holds many probes of one shape at once and
exports each one as a :class:`Probe` state dict. Both draw their initial weights with
:func:`init_linear_`, in the same order, so a probe trained alone and one trained in a stack start
from the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

#: second word of every dropout-mask stream's seed (ASCII "mask"): a probe's masks never share a random
#: stream with its initial weights or its data order, which come from ``torch.Generator(seed)``
MASK_STREAM = 0x6D61736B


def _even_up(x: float) -> int:
    n = math.ceil(x)
    return max(2, n + (n % 2))


def resolve_hidden_units(units: Sequence[int | str], input_dim: int, n_outputs: int) -> list[int]:
    """Turn ``infer`` / ``power_infer`` entries into sizes (mir_ref's formulas, ``probes/probe_builder.py``).

    ``infer``: a linear ramp from the input dim d down to the output count c —
    ``h_i = c + (n + 1 − i)(d − c)/(n + 1)`` for the i-th (1-based) of n hidden layers.
    ``power_infer``: mir_ref's "power regression" ``h_i = α·i² + c`` with ``α = (d − c)/(n + 1)`` — one layer
    gets ``(d + c)/2``, as ``infer`` does; with more layers the sizes grow with i, past d from the second of two
    layers on (mir_ref's formula, kept as it is: a mir_ref configuration gets mir_ref's layers).
    Both are rounded up to even (DESIGN.md; mir_ref truncates, then bumps an odd size: it can be 2 smaller).
    """
    n = len(units)
    d, c = float(input_dim), float(max(n_outputs, 1))
    out = []
    for i, u in enumerate(units, start=1):
        if u == "infer":
            out.append(_even_up(c + (n + 1 - i) * (d - c) / (n + 1)))
        elif u == "power_infer":
            out.append(_even_up((d - c) / (n + 1) * i**2 + c))
        else:
            out.append(int(u))
    return out


def init_linear_(
    weight: torch.Tensor, bias: torch.Tensor, init: str, first: bool, generator: torch.Generator | None
) -> None:
    """Initialise one ``(out, in)`` linear layer in place.

    ``default`` is exactly ``nn.Linear.reset_parameters`` (Kaiming-uniform with a=√5, bias
    U(±1/√fan_in)); ``xavier_*`` then redraws the weight with the gain of the preceding
    activation (linear for the first layer, ReLU after), as HEAR's evaluation kit does.
    """
    with torch.no_grad():
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
        bound = 1 / math.sqrt(weight.shape[1]) if weight.shape[1] > 0 else 0.0
        nn.init.uniform_(bias, -bound, bound, generator=generator)
    xavier_(weight, init, first, generator)


def xavier_(weight: torch.Tensor, init: str, first: bool, generator: torch.Generator | None) -> None:
    if init == "default":
        return
    gain = nn.init.calculate_gain("linear" if first else "relu")
    with torch.no_grad():
        if init == "xavier_uniform":
            nn.init.xavier_uniform_(weight, gain=gain, generator=generator)
        elif init == "xavier_normal":
            nn.init.xavier_normal_(weight, gain=gain, generator=generator)
        else:
            raise ValueError(f"unknown init '{init}'; valid: default, xavier_uniform, xavier_normal")


class MaskStream:
    """A probe's dropout bits: a PCG64 bit generator seeded with ``(seed, MASK_STREAM)``.

    A mask of ``n`` elements takes ``n`` bytes of the stream when ``256·p`` is an integer (every rate of
    the Jukemir, MARBLE and mir_ref grids: 0.2 is not, 0.25/0.5/0.75 are) and an element is kept when its
    byte is ``>= 256·p``; otherwise ``2n`` bytes, kept when the 16-bit word read as a signed integer is
    ``>= round(65536·p) − 32768`` (so the keep rate is ``1 − p`` rounded to 1/65536). Either way it is ``nn.Dropout``'s Bernoulli(1 − p)
    distribution, drawn ~4× faster than ``uniform_`` from a ``torch.Generator`` (~0.5 against ~2.8 ns per
    element on this machine kind; mask drawing was the largest single cost of a Jukemir stack). The bytes
    are read little-endian whatever the machine, so masks are the same everywhere."""

    def __init__(self, seed: int) -> None:
        self._bits = np.random.PCG64([int(seed), MASK_STREAM])

    @staticmethod
    def width(p: float) -> int:
        """Random bits per element for rate ``p``: 0 (nothing dropped), 8 or 16."""
        if p <= 0.0:
            return 0
        return 8 if p * 256.0 == round(p * 256.0) else 16

    @staticmethod
    def threshold(p: float) -> int:
        """The word an element's bits are compared with (kept when ``>=``), in the word type of :meth:`words`."""
        # uniform 16-bit words read as int16 are uniform on [−32768, 32767]: P(s >= T − 32768) = 1 − T/65536
        return round(p * 256.0) if MaskStream.width(p) == 8 else round(p * 65536.0) - 32768

    def words(self, n: int, width: int) -> np.ndarray:
        """The next ``n`` words of the stream: uint8 (``width`` 8) or little-endian int16 (16)."""
        raw = self._bits.random_raw(-(-n * width // 64)).astype("<u8", copy=False)
        return raw.view(np.uint8 if width == 8 else "<i2")[:n]

    def keep_(self, out: torch.Tensor, p: float) -> torch.Tensor:
        """Fill ``out`` (a contiguous float CPU tensor) with 1.0 where kept and 0.0 where dropped."""
        width = self.width(p)
        if width == 0:
            return out.fill_(1.0)
        words = torch.from_numpy(self.words(out.numel(), width))
        return torch.ge(words.view(out.shape), self.threshold(p), out=out)


class Dropout(nn.Module):
    """``nn.Dropout``'s distribution with the draw rule of the probe stacks: masks from a
    :class:`MaskStream`, kept elements scaled by ``1 / (1 − p)``. A probe trained alone whose dropout
    layers share ``MaskStream(seed)`` sees exactly the masks its stacked twin draws
    (:class:`repeval.probes.stacked.StackedMLP`). Without a stream, one is seeded from the global torch
    generator at the first training forward (reproducible after ``torch.manual_seed``)."""

    def __init__(self, p: float, stream: MaskStream | None = None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.stream = stream

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":  # the stacks' device rule: uniform draws on the device, kept when u >= p
            keep = (torch.rand_like(x) >= self.p).to(x.dtype)
        else:
            if self.stream is None:
                self.stream = MaskStream(int(torch.randint(0, 2**62, ()).item()))
            keep = self.stream.keep_(torch.empty(x.shape, dtype=x.dtype), self.p)
        return x * keep.mul_(1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


#: ``precision`` values (``ProbeConfig.precision``) → the dtype of the layer products (``None``: float32)
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}


def compute_dtype(precision: str) -> torch.dtype | None:
    """The dtype the layer products of a probe with this ``precision`` run in (``None``: float32)."""
    try:
        return PRECISIONS[precision]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}") from None


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether bfloat16 products run in hardware on ``device`` (AVX512-BF16 or AMX on a CPU)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if dev.type != "cpu":
        return True
    return any(
        bool(getattr(torch.cpu, f, lambda: False)()) for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )


class Linear(nn.Linear):
    """``nn.Linear`` whose product runs in ``compute_dtype`` (when set) and returns float32, as a probe
    stack's layers do (:class:`repeval.probes.stacked.StackedMLP`). Same parameters and state dict."""

    compute_dtype: torch.dtype | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cd = self.compute_dtype
        if cd is None:
            return super().forward(x)
        return nn.functional.linear(x.to(cd), self.weight.to(cd), self.bias.to(cd)).float()


def attention_pool(x: torch.Tensor, mask: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Attention pooling of tracks' frames: ``x`` ``(B, T, d)`` frames (padded), ``mask`` ``(B, T)`` true where a
    frame is real, ``query`` ``(k, d)`` one learned query per probe → ``(k, B, d)``: for probe ``j`` and track
    ``b``, the frames weighted by ``softmax_t(x[b, t] · query[j])`` over the track's real frames. A zero query
    weighs every frame alike: the mean embedding."""
    s = torch.matmul(x, query.T).masked_fill(~mask.unsqueeze(-1), float("-inf"))  # (B, T, k)
    a = torch.softmax(s, 1)
    return torch.bmm(a.transpose(1, 2), x).transpose(0, 1).contiguous()  # (B, k, T) @ (B, T, d) → (k, B, d)


class Probe(nn.Module):
    """``[attention pooling] [Dropout(input)] (Linear [Norm] ReLU [Dropout])* Linear``.

    With ``attention`` (a number of heads), :meth:`forward` takes a track's frames, ``(B, T, input_dim)`` with a
    ``(B, T)`` mask, and pools them with that many learned queries, concatenating the pooled vectors (the layers'
    input is ``attention × input_dim``; ``embedding_aggregation: attention``; the queries start at zero, i.e. at
    mean pooling)."""

    def __init__(
        self,
        input_dim: int,
        hidden: Sequence[int],
        n_outputs: int,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        hidden_norm: str = "none",
        init: str = "default",
        generator: torch.Generator | None = None,
        mask_stream: MaskStream | None = None,
        precision: str = "fp32",
        attention: int = 0,
    ) -> None:
        super().__init__()
        cd = compute_dtype(precision)
        self.query = nn.Parameter(torch.zeros(int(attention), input_dim)) if attention else None
        input_dim *= max(1, int(attention))
        layers: list[nn.Module] = []
        self.linears: list[nn.Linear] = []
        self.norms: list[nn.Module] = []
        if input_dropout > 0:
            layers.append(Dropout(input_dropout, mask_stream))
        prev = input_dim
        for h in [*hidden, n_outputs]:
            lin = Linear(prev, h)  # draws nn.Linear's default init from the global RNG
            lin.compute_dtype = cd
            if generator is not None:  # the canonical sequence, from the probe's own generator
                init_linear_(lin.weight, lin.bias, init, first=not self.linears, generator=generator)
            else:
                xavier_(lin.weight, init, first=not self.linears, generator=None)
            self.linears.append(lin)
            layers.append(lin)
            if len(self.linears) > len(hidden):
                break
            if hidden_norm == "batchnorm":
                self.norms.append(nn.BatchNorm1d(h))
                layers.append(self.norms[-1])
            elif hidden_norm == "layernorm":
                self.norms.append(nn.LayerNorm(h))
                layers.append(self.norms[-1])
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(Dropout(dropout, mask_stream))
            prev = h
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.query is not None:
            if mask is None:
                mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
            pooled = attention_pool(x, mask, self.query)  # (heads, B, d)
            x = pooled.transpose(0, 1).reshape(x.shape[0], -1)  # each track's heads side by side
        return self.net(x)


def build_probe(
    cfg: object,
    input_dim: int,
    n_outputs: int,
    generator: torch.Generator | None = None,
    attention: int = 0,
) -> Probe:
    """The probe ``cfg`` describes on ``input_dim``-wide inputs (with ``attention`` heads: frames of that width)."""
    hidden = resolve_hidden_units(getattr(cfg, "hidden_units", ()), input_dim * max(1, attention), n_outputs)
    in_drop = getattr(cfg, "effective_input_dropout", getattr(cfg, "input_dropout", 0.0))
    return Probe(
        input_dim,
        hidden,
        n_outputs,
        getattr(cfg, "dropout", 0.0),
        in_drop,
        getattr(cfg, "hidden_norm", "none"),
        getattr(cfg, "init", "default"),
        generator,
        precision=getattr(cfg, "precision", "fp32"),
        attention=attention,
    )
