"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?"): one cell, three ways to run it over T.

The cell (parallel-mode form of the paper, BorealisAI/minRNNs/models/minRNNs.py):
    k_t = x_t W_z + b_z,  u_t = x_t W_h + b_h          (input projection: the only matmuls)
    z_t = sigmoid(k_t),   h~_t = g(u_t),  g(u) = u + 0.5 if u >= 0 else sigmoid(u)   (so h~ > 0)
    h_t = (1 - z_t) * h_{t-1} + z_t * h~_t,  h_0 = 0      i.e.  h_t = a_t * h_{t-1} + b_t
The gates do not depend on h_{t-1}, so every a_t, b_t is computed at once and only a first-order
linear recurrence is left; that is what a scan parallelises.

Kernels (all (B, T, d) -> (B, T, d), same parameters, same outputs up to rounding):
  mingru_loop     the cell stepped one token at a time, projection included per step (like rnn_loop).
  mingru_scan     projections and gates for a whole time block in one go (block sized to stay in
                  cache), then a two-level (chunked) scan in linear space: a sequential pass *within*
                  chunks of C ~ sqrt(block) tokens runs for all chunks at once, a pass over the chunk
                  carries follows, then one fix-up. ~2*sqrt(block) Python steps per block instead of
                  one per token, only multiplies and adds (no division, no exp), so it is as safe
                  numerically as the loop. The fastest honest CPU form we measured (README).
  mingru_logscan  the paper's log-space Heinsen scan: a* = cumsum(log a),
                  h = exp(a* + logcumsumexp(log b - a*)). Kept as the faithful reference form.

Forward FLOPs (multiply-add = 2): two d x d projections, 2 * 2*B*T*d^2 = 4*B*T*d^2. The scan and
gates are O(B*T*d) elementwise and not counted (as for the recurrent kernels).

Decode (kernels/decode.py): the state is h, d numbers per sequence. A step is the cell once, the
same for all three forms (there is nothing left to scan at one token): 4*B*d^2 FLOPs, whatever the
context. Prefill takes the context in with the chunked scan, from the state it is given.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.kernels.registry import Shape, per_token_activations, register_kernel


BLOCK_ELEMS = 1 << 17  # elements per (B, block, d) gate tensor: 512 KiB in float32, stays in L2


def _g(u: torch.Tensor) -> torch.Tensor:
    # = u + 0.5 for u >= 0, sigmoid(u) for u < 0: sigmoid lies below its tangent 0.5 + u/4 for u > 0
    # and above it for u < 0. One max instead of a compare + where: fewer passes over memory.
    return torch.maximum(torch.sigmoid(u), u + 0.5)


def _log_g(u: torch.Tensor) -> torch.Tensor:
    return torch.where(u >= 0, torch.log(F.relu(u) + 0.5), -F.softplus(-u))


class _MinGRU(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.proj = nn.Linear(d, 2 * d)  # [W_z | W_h] in one matrix: one matmul per call
        bound = d ** -0.5  # as the recurrent kernels: Uniform(-1/sqrt(d), 1/sqrt(d))
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-bound, bound)

    def gates(self, x: torch.Tensor):
        k, u = self.proj(x).chunk(2, dim=-1)
        z = torch.sigmoid(k)
        return torch.rsub(z, 1), z * _g(u)  # a, b

    def init_state(self, batch_size: int, max_len: int) -> torch.Tensor:
        return self.proj.weight.new_zeros(batch_size, self.proj.out_features // 2)  # h: (B, d)

    def step(self, x_t: torch.Tensor, h: torch.Tensor):  # x_t: (B, 1, d)
        a, b = self.gates(x_t[:, 0])
        h = a * h + b
        return h.unsqueeze(1), h

    def prefill(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        a, b = self.gates(x)
        return chunked_linear_scan(a, b, h)[:, -1].clone()  # a view would keep the whole (B, T, d) scan alive


class MinGRULoop(_MinGRU):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.new_zeros(x.shape[0], self.proj.out_features // 2)
        outs = []
        for t in range(x.shape[1]):
            a, b = self.gates(x[:, t])
            h = a * h + b
            outs.append(h)
        return torch.stack(outs, dim=1)


def chunked_linear_scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None,
                        chunk: int | None = None) -> torch.Tensor:
    """h_t = a_t * h_{t-1} + b_t over dim 1 (h_0 given or 0), for (B, T, d) tensors; exact, no log space."""
    B, T, d = a.shape
    C = chunk or max(1, round(math.sqrt(T)))
    n = -(-T // C)
    if n * C != T:  # pad with a=1, b=0: leaves h unchanged
        pad = n * C - T
        a = torch.cat([a, a.new_ones(B, pad, d)], dim=1)
        b = torch.cat([b, b.new_zeros(B, pad, d)], dim=1)
    a4, b4 = a.view(B, n, C, d), b.view(B, n, C, d)
    # Pass 1: scan inside every chunk at once (state entering each chunk taken as 0).
    h_loc = [b4[:, :, 0]]
    for i in range(1, C):
        h_loc.append(torch.addcmul(b4[:, :, i], a4[:, :, i], h_loc[-1]))
    h_loc = torch.stack(h_loc, dim=2)  # (B, n, C, d)
    a_cum = torch.cumprod(a4, dim=2)  # product of a since the chunk began; may underflow to 0, harmlessly
    # Pass 2: carry the state across chunks: state entering chunk j.
    carry = [a.new_zeros(B, d) if h0 is None else h0]
    for j in range(n - 1):
        carry.append(torch.addcmul(h_loc[:, j, -1], a_cum[:, j, -1], carry[-1]))
    carry = torch.stack(carry, dim=1).unsqueeze(2)  # (B, n, 1, d)
    # Pass 3: every token gets the carry decayed by the product of a since its chunk began.
    return torch.addcmul(h_loc, a_cum, carry).view(B, n * C, d)[:, :T]


class MinGRUScan(_MinGRU):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Time blocks sized so the block's gate tensors stay in cache: at B=8, d=256 the gates of
        # the whole sequence went through DRAM ~8 times and cost more than the projection (2.4x
        # slower at T=1024 than this blocked form). Each block: projection, gates, scan from the
        # state the previous block left.
        B, T, d = x.shape
        step = min(T, max(16, BLOCK_ELEMS // (B * d)))
        h, outs = None, []
        for s in range(0, T, step):
            a, b = self.gates(x[:, s:s + step])
            y = chunked_linear_scan(a, b, h)
            h = y[:, -1]
            outs.append(y)
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)


class MinGRULogScan(_MinGRU):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, u = self.proj(x).chunk(2, dim=-1)
        log_a = -F.softplus(k)  # log(1 - z)
        log_b = -F.softplus(-k) + _log_g(u)  # log z + log g(u)
        a_star = torch.cumsum(log_a, dim=1)
        return torch.exp(a_star + torch.logcumsumexp(log_b - a_star, dim=1))


def mingru_flops(s: Shape) -> float:
    return 4 * s.batch_size * s.seq_len * s.hidden_size ** 2


for _name, _cls, _fwd, _train, _desc in [
    ("mingru_loop", MinGRULoop, 3, 10, "minGRU cell stepped token by token (projection per step)"),
    ("mingru_scan", MinGRUScan, 8, 16, "minGRU, one projection matmul + chunked linear-space parallel scan"),
    ("mingru_logscan", MinGRULogScan, 8, 16, "minGRU, Heinsen log-space scan (cumsum + logcumsumexp)"),
]:
    register_kernel(
        _name,
        family="scan",
        factory=lambda shape, _cls=_cls: _cls(shape.hidden_size),
        flops=mingru_flops,
        formula="4*B*T*d^2",
        decode_flops="4*B*d^2",  # the projection of one token; the state update is elementwise
        memory=per_token_activations(_fwd, _train),
        description=_desc,
        causal="always",
    )
