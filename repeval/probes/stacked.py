"""Many probes of one shape trained at once: stacked weights, per-probe dropout, per-probe optimiser.

``K`` probes that share layer sizes (and batch size) are held as tensors with a leading probe
axis: layer ``l`` has weight ``(K, in, out)`` and bias ``(K, 1, out)``; a batch is ``(K, B, in)``
and one ``baddbmm`` runs a layer for every probe. Everything that may differ between probes —
learning rate, weight decay, dropout rates, initial weights, the data order (seed), the
standardisation of the input — is per probe, so each probe follows exactly the trajectory it
would follow alone:

- initial weights come from the probe's own ``torch.Generator`` (seeded with its seed), drawn in
  ``nn.Linear`` order (:func:`repeval.probes.model.init_linear_`);
- dropout masks come from the probe's own :class:`repeval.probes.model.MaskStream` (PCG64 seeded with
  ``(seed, "mask")``), one draw per layer and step (:meth:`StackedMLP._keep_scale`, what
  :class:`repeval.probes.model.Dropout` does with the same stream). This is ``nn.Dropout``'s
  distribution, but ``Tensor.bernoulli_`` — what ``nn.Dropout`` calls on CPU — costs ~11 ns per
  element, ``uniform_`` from a ``torch.Generator`` ~2.8, and 8 or 16 random bits from PCG64 ~0.5:
  mask drawing was the largest single cost of a stack (58% of a linear probe's training with
  ``torch.bernoulli_``). On a GPU the masks are ``uniform_`` draws from per-probe device generators;
- the optimiser is ``torch.optim.Adam`` / ``AdamW`` / ``SGD`` written out with per-probe
  ``lr`` and ``weight_decay`` tensors.

Probes that stop (early stopping, a non-finite loss, their budget) are removed from the stack
(:meth:`StackedMLP.select`), so finished probes cost nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from repeval.probes.model import MaskStream, Probe, attention_pool, compute_dtype, init_linear_

BN_EPS = 1e-5
#: per-probe sizes that are multiples of this are updated a run of probes at a time (see StackedOptimizer.step)
FUSED_BLOCK = 64
BN_MOMENTUM = 0.1
LN_EPS = 1e-5


def _runs(values: Sequence[Any]) -> list[tuple[int, int, Any]]:
    """``(start, end, value)`` of each run of equal consecutive values."""
    out: list[tuple[int, int, Any]] = []
    for i, v in enumerate(values):
        if out and out[-1][2] == v:
            out[-1] = (out[-1][0], i + 1, v)
        else:
            out.append((i, i + 1, v))
    return out


class StackedMLP:
    """``K`` MLP probes ``[Dropout] (Linear [Norm] ReLU [Dropout])* Linear`` with stacked parameters."""

    def __init__(
        self,
        dims: Sequence[int],
        generators: Sequence[torch.Generator],
        *,
        dropout: Sequence[float],
        input_dropout: Sequence[float],
        hidden_norm: str = "none",
        init: Sequence[str] | str = "default",
        device: str = "cpu",
        precision: str = "fp32",
        attention: int = 0,
    ) -> None:
        self.dims = list(dims)
        #: attention heads (0: the inputs are track embeddings); with ``h`` heads ``dims[0]`` is ``h`` × the frames' width
        self.heads = int(attention)
        self.precision = precision
        self.compute_dtype = compute_dtype(precision)
        self.device = torch.device(device)
        self.k = len(generators)
        self.generators = list(generators)
        self.mask_streams = [MaskStream(int(g.initial_seed())) for g in self.generators]
        self.hidden_norm = hidden_norm
        inits = [init] * self.k if isinstance(init, str) else list(init)
        n_layers = len(self.dims) - 1
        self.weights: list[torch.Tensor] = []
        self.biases: list[torch.Tensor] = []
        for i, o in zip(self.dims[:-1], self.dims[1:], strict=True):
            self.weights.append(torch.empty(self.k, i, o))
            self.biases.append(torch.empty(self.k, 1, o))
        for k, g in enumerate(self.generators):  # per probe, layer by layer, as nn.Linear draws them
            for layer in range(n_layers):
                w = torch.empty(self.dims[layer + 1], self.dims[layer])
                b = torch.empty(self.dims[layer + 1])
                init_linear_(w, b, inits[k], first=layer == 0, generator=g)
                self.weights[layer][k] = w.T
                self.biases[layer][k, 0] = b
        self.norm_weight: list[torch.Tensor] = []
        self.norm_bias: list[torch.Tensor] = []
        self.running_mean: list[torch.Tensor] = []
        self.running_var: list[torch.Tensor] = []
        self.batches_tracked = 0
        if hidden_norm != "none":
            for h in self.dims[1:-1]:
                self.norm_weight.append(torch.ones(self.k, 1, h))
                self.norm_bias.append(torch.zeros(self.k, 1, h))
                if hidden_norm == "batchnorm":
                    self.running_mean.append(torch.zeros(self.k, 1, h))
                    self.running_var.append(torch.ones(self.k, 1, h))
        #: attention pooling (``embedding_aggregation: attention``): ``heads`` queries per probe, ``(K, heads, d)``,
        #: starting at zero (mean pooling); no random draws, so the layers' initial weights are those of a probe
        #: without them
        self.queries: list[torch.Tensor] = (
            [torch.zeros(self.k, self.heads, self.dims[0] // self.heads)] if self.heads else []
        )
        if self.device.type != "cpu":  # weights are drawn on the CPU (same values everywhere), masks on the device
            self.queries = [t.to(self.device) for t in self.queries]
            self.weights = [t.to(self.device) for t in self.weights]
            self.biases = [t.to(self.device) for t in self.biases]
            self.norm_weight = [t.to(self.device) for t in self.norm_weight]
            self.norm_bias = [t.to(self.device) for t in self.norm_bias]
            self.running_mean = [t.to(self.device) for t in self.running_mean]
            self.running_var = [t.to(self.device) for t in self.running_var]
            self.generators = [
                torch.Generator(device=self.device).manual_seed(int(g.initial_seed())) for g in self.generators
            ]
        for p in self.parameters():
            p.requires_grad_(True)
        self.p_hidden = torch.tensor([float(p) for p in dropout], device=self.device)
        self.p_input = torch.tensor([float(p) for p in input_dropout], device=self.device)
        self._any_drop()

    # ----------------------------------------------------------------- parameters

    def parameters(self) -> list[torch.Tensor]:
        return [*self.weights, *self.biases, *self.norm_weight, *self.norm_bias, *self.queries]

    def buffers(self) -> list[torch.Tensor]:
        return [*self.running_mean, *self.running_var]

    def select(self, keep: torch.Tensor) -> None:
        """Keep only the probes at positions ``keep`` (a LongTensor of indices into the stack)."""
        idx = keep.tolist()

        def take(ts: list[torch.Tensor], grad: bool) -> list[torch.Tensor]:
            return [t.detach()[keep].clone().requires_grad_(grad) for t in ts]

        self.weights, self.biases = take(self.weights, True), take(self.biases, True)
        self.norm_weight, self.norm_bias = take(self.norm_weight, True), take(self.norm_bias, True)
        self.queries = take(self.queries, True)
        self.running_mean, self.running_var = take(self.running_mean, False), take(self.running_var, False)
        self.generators = [self.generators[i] for i in idx]
        self.mask_streams = [self.mask_streams[i] for i in idx]
        self.p_hidden, self.p_input = self.p_hidden[keep], self.p_input[keep]
        self._any_drop()
        self.k = len(idx)

    def _any_drop(self) -> None:
        """Whether some probe of the stack drops hidden units, and inputs (read at every step, set when the rates
        change: on building the stack and on :meth:`select`)."""
        self.drops_hidden = bool((self.p_hidden > 0).any())
        self.drops_input = bool((self.p_input > 0).any())

    def snapshot(self, rows: torch.Tensor) -> list[torch.Tensor]:
        """Copies of the parameters and buffers of probes ``rows`` (for best-checkpoint keeping)."""
        return [t.detach()[rows].clone() for t in (*self.parameters(), *self.buffers())]

    def load_snapshot(self, tensors: Sequence[torch.Tensor]) -> None:
        """Replace the whole stack's parameters and buffers (tensors in :meth:`snapshot` order)."""
        n_w, n_n = len(self.weights), len(self.norm_weight)
        it = iter(tensors)
        self.weights = [next(it).clone().requires_grad_(True) for _ in range(n_w)]
        self.biases = [next(it).clone().requires_grad_(True) for _ in range(n_w)]
        self.norm_weight = [next(it).clone().requires_grad_(True) for _ in range(n_n)]
        self.norm_bias = [next(it).clone().requires_grad_(True) for _ in range(n_n)]
        self.queries = [next(it).clone().requires_grad_(True) for _ in self.queries]
        n_r = len(self.running_mean)
        self.running_mean = [next(it).clone() for _ in range(n_r)]
        self.running_var = [next(it).clone() for _ in range(n_r)]
        self.k = self.weights[0].shape[0]

    # -------------------------------------------------------------------- forward

    def _keep_scale(self, shape: tuple[int, ...], p: torch.Tensor) -> torch.Tensor | None:
        """Per-probe dropout factors ``(K, …)``: 0 where dropped, ``1 / (1 - p_k)`` where kept; ``None`` if no
        probe drops anything. Probe k's draws come from its own stream (:class:`MaskStream` on the CPU, its
        device generator's ``uniform_`` elsewhere), so its masks do not depend on which other probes share
        the stack."""
        ps = p.tolist()
        if not any(v > 0 for v in ps):
            return None
        keep = torch.empty(shape, device=self.device)
        pv = p.view(-1, *([1] * (len(shape) - 1)))
        if self.device.type == "cpu":
            return self._draw_keep(keep, ps).mul_(1.0 / (1.0 - pv))
        for k, g in enumerate(self.generators):
            if ps[k] > 0:
                keep[k].uniform_(generator=g)
            else:
                keep[k].fill_(1.0)  # always >= p = 0: kept, scale 1
        return keep.ge_(pv).mul_(1.0 / (1.0 - pv))  # in place: two passes, no temporaries

    def _draw_keep(self, keep: torch.Tensor, ps: list[float]) -> torch.Tensor:
        """Fill ``keep`` ``(K, …)`` with probe k's next mask from its :class:`MaskStream` — exactly
        ``MaskStream.keep_(keep[k], p_k)`` — comparing the words of all probes of one word width at once."""
        n = keep[0].numel()
        widths = [MaskStream.width(p) for p in ps]
        for width in sorted(set(widths)):
            idx = [k for k, w in enumerate(widths) if w == width]
            if width == 0:
                keep[idx] = 1.0
                continue
            words = np.stack([self.mask_streams[k].words(n, width) for k in idx])
            thresholds = np.array([MaskStream.threshold(ps[k]) for k in idx], dtype=words.dtype)
            w = torch.from_numpy(words).view(len(idx), *keep.shape[1:])
            thr = torch.from_numpy(thresholds).view(-1, *([1] * (keep.dim() - 1)))
            if len(idx) == len(ps):
                torch.ge(w, thr, out=keep)
            else:
                keep[idx] = torch.ge(w, thr).to(keep.dtype)
        return keep

    def _input(self, x: torch.Tensor, shared: torch.Tensor | None, train: bool) -> torch.Tensor:
        """The first layer's input ``(K, B, in)``. With ``shared`` (the stack-position → variant index), ``x`` is
        ``(V, B, in)``: one batch per preprocessing variant, shared by every probe with the same data order
        (one seed), expanded here instead of gathered K times."""
        if train:
            scale = self._keep_scale((self.k, *x.shape[1:]), self.p_input) if self.drops_input else None
            if scale is not None and x.requires_grad:  # pooled frames (attention): the product keeps its graph
                return scale * x
            if scale is not None:
                if shared is not None and x.shape[0] != 1:  # each run of probes on one variant: a broadcast
                    for start, end, v in _runs(shared.tolist()):  # product, not a gathered copy of the batch
                        scale[start:end].mul_(x[v])
                    return scale
                return scale.mul_(x)  # x never requires grad: the factors' buffer takes the product
        if shared is None:
            return x
        return x.expand(self.k, -1, -1) if x.shape[0] == 1 else x.index_select(0, shared)

    def _norm(self, h: torch.Tensor, i: int, train: bool) -> torch.Tensor:
        if self.hidden_norm == "layernorm":
            mean = h.mean(-1, keepdim=True)
            var = h.var(-1, unbiased=False, keepdim=True)
        elif train:  # batchnorm over the batch axis, per probe
            mean = h.mean(1, keepdim=True)
            var = h.var(1, unbiased=False, keepdim=True)
            n = h.shape[1]
            if n > 1:  # (a single-row batch has no variance to track)
                with torch.no_grad():
                    self.running_mean[i].mul_(1 - BN_MOMENTUM).add_(mean.detach() * BN_MOMENTUM)
                    self.running_var[i].mul_(1 - BN_MOMENTUM).add_(var.detach() * (n / (n - 1)) * BN_MOMENTUM)
        else:
            mean, var = self.running_mean[i], self.running_var[i]
        eps = LN_EPS if self.hidden_norm == "layernorm" else BN_EPS
        return (h - mean) / torch.sqrt(var + eps) * self.norm_weight[i] + self.norm_bias[i]

    def pool(self, parts: Sequence[tuple[list[int], torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """Attention pooling for the whole stack: ``parts`` ``[(stack positions, frames (B, T, in), mask (B, T))]``
        — the probes at those positions pool these tracks (one part per data order and preprocessing variant;
        together they cover every position once) → ``(K, B, in)``, the first layer's input."""
        q = self.queries[0]
        outs, order = [], []
        for pos, x, mask in parts:
            sel = q[pos[0] : pos[-1] + 1] if pos == list(range(pos[0], pos[-1] + 1)) else q[pos]
            k, h, d = sel.shape
            pooled = attention_pool(x, mask, sel.reshape(k * h, d))  # (k·h, B, d)
            outs.append(pooled.view(k, h, -1, d).transpose(1, 2).reshape(k, -1, h * d))  # heads side by side
            order.extend(pos)
        out = outs[0] if len(outs) == 1 else torch.cat(outs)
        if order != list(range(len(order))):
            out = out[torch.tensor(np.argsort(order), device=out.device)]
        return out

    def forward(self, x: torch.Tensor, train: bool, shared: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``(K, B, in)`` (or ``(V, B, in)`` with ``shared``, see :meth:`_input`) → logits ``(K, B, out)``."""
        x = self._input(x, shared, train)
        last = len(self.weights) - 1
        cd = self.compute_dtype
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if cd is None:
                x = torch.baddbmm(b, x, w)
            else:  # the product in ``cd``, everything around it in float32 (the casts pass gradients back)
                x = torch.baddbmm(b.to(cd), x.to(cd), w.to(cd)).float()
            if i == last:
                break
            if self.hidden_norm != "none":
                x = self._norm(x, i, train)
            x = torch.relu(x)
            if train and self.drops_hidden:
                scale = self._keep_scale(tuple(x.shape), self.p_hidden)
                if scale is not None:
                    x = x * scale
        if train and self.hidden_norm == "batchnorm":
            self.batches_tracked += 1
        return x

    # --------------------------------------------------------------------- export

    def export(self, k: int, tensors: Sequence[torch.Tensor] | None = None, **probe_kwargs: object) -> dict:
        """Probe ``k`` as a :class:`Probe` ``state_dict`` (from ``tensors``, a :meth:`snapshot` row, if given)."""
        if tensors is None:
            tensors = [t[k : k + 1] for t in self.snapshot(torch.arange(self.k, device=self.device))]
        n_w, n_n, n_r = len(self.weights), len(self.norm_weight), len(self.running_mean)
        it = iter(tensors)
        tensors = [t.cpu() for t in tensors]
        it = iter(tensors)
        ws = [next(it)[0] for _ in range(n_w)]
        bs = [next(it)[0, 0] for _ in range(n_w)]
        nw = [next(it)[0, 0] for _ in range(n_n)]
        nb = [next(it)[0, 0] for _ in range(n_n)]
        qs = [next(it)[0] for _ in self.queries]
        rm = [next(it)[0, 0] for _ in range(n_r)]
        rv = [next(it)[0, 0] for _ in range(n_r)]
        with torch.random.fork_rng(devices=[]):  # building the module must not move the global RNG
            probe = Probe(
                self.dims[0] // max(1, self.heads),
                self.dims[1:-1],
                self.dims[-1],
                hidden_norm=self.hidden_norm,
                precision=self.precision,
                attention=self.heads,
                **probe_kwargs,  # type: ignore[arg-type]
            )
        with torch.no_grad():
            if probe.query is not None:
                probe.query.copy_(qs[0])
            for lin, w, b in zip(probe.linears, ws, bs, strict=True):
                lin.weight.copy_(w.T)
                lin.bias.copy_(b)
            for i, norm in enumerate(probe.norms):
                state = {"weight": nw[i], "bias": nb[i]}
                if isinstance(norm, torch.nn.BatchNorm1d):
                    state |= {"running_mean": rm[i], "running_var": rv[i]}
                    state["num_batches_tracked"] = torch.tensor(self.batches_tracked)
                norm.load_state_dict(state)
        return {k: v.clone() for k, v in probe.state_dict().items()}


class StackedOptimizer:
    """``torch.optim.Adam`` / ``AdamW`` / ``SGD`` (no momentum) with per-probe lr and weight decay.

    Adam and AdamW run PyTorch's fused kernels (``torch.optim.Adam(fused=True)``) on slices of the
    stacked tensors, one call per run of consecutive probes sharing (lr, weight decay): a single
    pass over memory instead of a dozen, and no per-probe views (a stack's members are ordered by
    learning rate and weight decay, so a grid's stack has one run per distinct pair). A probe in a
    stack and a probe trained with ``torch.optim.Adam(fused=True)`` compute bit-identical updates.
    SGD is written out (L2 added to the gradient, as ``torch.optim.SGD`` does).
    """

    def __init__(
        self,
        kind: str,
        params: list[torch.Tensor],
        lr: Sequence[float],
        weight_decay: Sequence[float],
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if kind not in ("adam", "adamw", "sgd"):
            raise ValueError(f"unknown optimizer '{kind}'; valid: adam, adamw, sgd")
        self.kind = kind
        device = params[0].device if params else torch.device("cpu")
        self.lr = torch.tensor([float(v) for v in lr], dtype=torch.float64)
        self.wd = torch.tensor([float(v) for v in weight_decay], dtype=torch.float64)
        self.device = device
        self.betas, self.eps = betas, eps
        self.step_t = torch.zeros((), dtype=torch.float32, device=device)
        self.exp_avg = [torch.zeros_like(p) for p in params] if kind != "sgd" else []
        self.exp_avg_sq = [torch.zeros_like(p) for p in params] if kind != "sgd" else []

    def select(self, keep: torch.Tensor) -> None:
        keep = keep.cpu()
        self.lr, self.wd = self.lr[keep], self.wd[keep]
        kd = keep.to(self.device)
        self.exp_avg = [t[kd].clone() for t in self.exp_avg]
        self.exp_avg_sq = [t[kd].clone() for t in self.exp_avg_sq]

    def _runs(self) -> list[tuple[int, int, tuple[float, float]]]:
        """``(start, end, (lr, weight decay))`` of each run of consecutive probes that share both: each is one
        slice of every stacked tensor (probes of a stack are ordered by them, see ``train_probes``)."""
        return _runs(list(zip(self.lr.tolist(), self.wd.tolist(), strict=True)))

    @torch.no_grad()
    def step(self, params: list[torch.Tensor]) -> None:
        grads: list[torch.Tensor | None] = []
        for p in params:
            grads.append(p.grad)
            p.grad = None
        if self.kind == "sgd":
            lr_t = self.lr.to(self.device, torch.float32)
            wd_t = self.wd.to(self.device, torch.float32)
            has_wd = bool((self.wd != 0).any())
            for p, g in zip(params, grads, strict=True):
                if g is None:
                    continue
                shape = (-1,) + (1,) * (p.dim() - 1)
                if has_wd:
                    g = g + wd_t.view(shape) * p
                p.sub_(lr_t.view(shape) * g)
            return
        self.step_t += 1
        fused = torch._fused_adamw_ if self.kind == "adamw" else torch._fused_adam_
        b1, b2 = self.betas
        live = [(j, g) for j, g in enumerate(grads) if g is not None]
        runs = self._runs()
        whole = len(runs) == 1
        # A run is a contiguous slice along the probe axis. The CPU kernel runs vector instructions over
        # a tensor and plain ones over its last numel % (vector width) elements, which round differently:
        # a tensor whose per-probe size is not a multiple of FUSED_BLOCK is updated probe by probe, so
        # that each probe's elements take the path they take when it trains alone. A stack of one probe is that
        # probe alone: its tensors are updated whole (the same elements, in the same order).
        single = len(self.lr) == 1
        blocked = [single or params[j].numel() // len(self.lr) % FUSED_BLOCK == 0 for j, _ in live]

        def parts(t: torch.Tensor, i: int, a: int, b: int) -> list[torch.Tensor]:
            if blocked[i]:
                return [t if whole else t[a:b]]
            return [t[k] for k in range(a, b)]

        for a, b, (lr, wd) in runs:
            ps = [x for i, (j, _) in enumerate(live) for x in parts(params[j], i, a, b)]
            fused(  # type: ignore[call-overload]
                ps,
                [x for i, (_, g) in enumerate(live) for x in parts(g, i, a, b)],
                [x for i, (j, _) in enumerate(live) for x in parts(self.exp_avg[j], i, a, b)],
                [x for i, (j, _) in enumerate(live) for x in parts(self.exp_avg_sq[j], i, a, b)],
                [],
                [self.step_t] * len(ps),
                amsgrad=False,
                lr=lr,
                beta1=b1,
                beta2=b2,
                weight_decay=wd,
                eps=self.eps,
                maximize=False,
            )
