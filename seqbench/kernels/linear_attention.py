"""Linear attention (Katharopoulos et al. 2020): softmax(q k^T) replaced by phi(q) phi(k)^T, phi = elu + 1.

    y_t = phi(q_t)^T S_t / phi(q_t)^T z_t,   S_t = sum_{s<=t} phi(k_s) v_s^T,   z_t = sum_{s<=t} phi(k_s)
(causal; non-causal sums over all s). Same parameters and projections as the softmax kernels
(in_proj (3d, d) + out_proj (d, d)), `num_heads` splits d into heads of d_h = d / h.

  linear_attention       parallel over T. Causal: chunkwise cumulative sum, chunks of C = 64 tokens.
                         Inside a chunk, the masked C x C product (phi(Q) phi(K)^T * mask) V; across
                         chunks, an exclusive cumsum of the per-chunk states phi(K_c)^T V_c. All
                         matmuls; memory O(T*C + (T/C)*d_h^2) per head, never the O(T*d_h^2) of a
                         per-token cumsum. Non-causal: S = phi(K)^T V once, y = phi(Q) S.
  linear_attention_loop  the recurrent form: S and z updated token by token (an RNN whose state is a
                         d_h x d_h matrix per head). Non-causal: the same sequential pass accumulates
                         S over all T, then one readout phi(Q) S (a recurrence cannot read the future
                         any other way).
The normaliser z is carried as an extra column of ones on V, so S is d_h x (d_h + 1).

Forward FLOPs (multiply-add = 2), the recurrent form's count, used for both kernels:
    projections 8*B*T*d^2  +  state update phi(k) v^T and readout phi(q)^T S: 2 * 2*B*h*T*d_h^2
    = 8*B*T*d^2 + 4*B*T*d*d_h    (causal or not; normaliser O(B*T*d) not counted)
The chunked form does extra intra-chunk work (~4*B*T*C*d more), so its GFLOP/s counts useful work.

Decode (kernels/decode.py), both kernels: the state is S, h x d_h x (d_h + 1) numbers per sequence
whatever the context (an RNN with a matrix state). One step: projections 8*B*d^2, S += phi(k) [v, 1]^T
and the readout phi(q)^T S, 4*B*d*d_h as in the forward count.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seqbench.kernels.attention import _Attention
from seqbench.kernels.registry import Shape, register_kernel

CHUNK = 64


def _phi(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x) + 1


def _with_ones(v: torch.Tensor) -> torch.Tensor:
    return torch.cat([v, v.new_ones(*v.shape[:-1], 1)], dim=-1)


def _normalise(o: torch.Tensor) -> torch.Tensor:
    return o[..., :-1] / o[..., -1:]


class _LinearState:
    """Decode for both forms: the state S (B, h, d_h, d_h + 1), the running sum of phi(k) [v, 1]^T."""

    def init_state(self, batch_size: int, max_len: int) -> torch.Tensor:
        w = self.in_proj.weight
        dh = w.shape[-1] // self.heads
        return w.new_zeros(batch_size, self.heads, dh, dh + 1)

    def _phi_qkv(self, x: torch.Tensor):
        q, k, v = self.split_heads(x)
        return _phi(q), _phi(k), _with_ones(v)

    def prefill(self, x: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
        _, k, v = self._phi_qkv(x)
        return S + k.transpose(-2, -1) @ v

    def step(self, x_t: torch.Tensor, S: torch.Tensor):  # x_t: (B, 1, d)
        q, k, v = self._phi_qkv(x_t)  # (B, h, 1, d_h), v: (B, h, 1, d_h + 1)
        S = S + k.transpose(-2, -1) @ v  # a new tensor: the state given is left as it was
        return self.merge_heads(_normalise(q @ S)), S


class LinearAttention(_LinearState, _Attention):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split_heads(x)  # (B, h, T, d_h)
        q, k, v = _phi(q), _phi(k), _with_ones(v)
        if not self.causal:
            return self.merge_heads(_normalise(q @ (k.transpose(-2, -1) @ v)))
        B, h, T, dh = q.shape
        C = min(CHUNK, T)
        n = -(-T // C)
        pad = n * C - T  # padded keys sit after every real query: causality hides them
        if pad:
            q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        qc, kc, vc = (t.reshape(B, h, n, C, t.shape[-1]) for t in (q, k, v))
        mask = torch.ones(C, C, dtype=torch.bool, device=x.device).tril()
        intra = ((qc @ kc.transpose(-2, -1)) * mask) @ vc  # (B, h, n, C, d_h + 1)
        states = kc.transpose(-2, -1) @ vc  # (B, h, n, d_h, d_h + 1): one per chunk
        before = torch.cumsum(states, dim=2) - states  # state entering each chunk
        o = intra + qc @ before
        return self.merge_heads(_normalise(o.reshape(B, h, n * C, dh + 1)[:, :, :T]))


class LinearAttentionLoop(_LinearState, _Attention):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split_heads(x)
        q, k, v = _phi(q), _phi(k), _with_ones(v)
        B, h, T, dh = q.shape
        S = q.new_zeros(B, h, dh, dh + 1)
        if not self.causal:
            for t in range(T):
                S = S + k[:, :, t, :, None] * v[:, :, t, None, :]
            return self.merge_heads(_normalise(q @ S))
        outs = []
        for t in range(T):  # sequential: S_t needs S_{t-1}
            S = S + k[:, :, t, :, None] * v[:, :, t, None, :]
            outs.append((q[:, :, t, None, :] @ S).squeeze(-2))
        return self.merge_heads(_normalise(torch.stack(outs, dim=2)))


def linear_attention_flops(s: Shape) -> float:
    d, dh = s.hidden_size, s.hidden_size // s.num_heads
    return 8 * s.batch_size * s.seq_len * d ** 2 + 4 * s.batch_size * s.seq_len * d * dh


def _activation_bytes(chunked: bool):
    def estimate(s: Shape, elem: int, train: bool) -> float:
        btd = s.batch_size * s.seq_len * s.hidden_size
        scores = s.batch_size * s.num_heads * s.seq_len * min(CHUNK, s.seq_len) if (chunked and s.causal) else 0
        return float(((12 if train else 6) * btd + (2 if train else 1) * scores) * elem)

    return estimate


for _name, _cls, _chunked, _desc in [
    ("linear_attention", LinearAttention, True, "linear attention (elu+1), parallel: chunkwise cumsum (causal) or one global sum"),
    ("linear_attention_loop", LinearAttentionLoop, False, "linear attention, recurrent form: d_h x d_h state per head"),
]:
    register_kernel(
        _name,
        family="attention",
        factory=lambda shape, _cls=_cls: _cls(shape.hidden_size, shape.num_heads, shape.causal),
        flops=linear_attention_flops,
        formula="8*B*T*d^2 + 4*B*T*d*d_h (d_h = d/heads)",
        decode_flops="8*B*d^2 + 4*B*d*d_h",
        memory=_activation_bytes(_chunked),
        description=_desc,
        causal="optional",
        quadratic=False,  # O(T): linear attention is a recurrence in disguise
    )
