"""Attention kernels: explicit softmax(QK^T/sqrt(d_h))V, PyTorch's SDPA, and nn.MultiheadAttention.

All three hold the same parameters as nn.MultiheadAttention (in_proj (3d, d) + out_proj (d, d)), so
outputs can be compared given the same weights. `num_heads` splits d into heads of d_h = d / h.

Forward FLOPs (multiply-add = 2):
    projections  Q, K, V, out: 4 * 2*B*T*d*d         = 8*B*T*d^2
    scores QK^T and weights AV: 2 * 2*B*h*T*T*d_h    = 4*B*T^2*d   (causal: half, 2*B*T^2*d)
Softmax and scaling are O(B*h*T^2) and not counted.

Decode (kernels/decode.py): a KV cache preallocated for the context, (B, h, T + 1, d_h) each for K and
V, i.e. 2*(T + 1)*d numbers per sequence. One step projects the new token (8*B*d^2), writes its key
and value into the cache and attends over the T + 1 cached positions (QK^T and AV: 4*B*(T + 1)*d).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.kernels.registry import Shape, register_kernel


class _Attention(nn.Module):
    def __init__(self, d: int, heads: int, causal: bool):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.in_proj = nn.Linear(d, 3 * d)
        self.out_proj = nn.Linear(d, d)

    def split_heads(self, x: torch.Tensor):  # (B, T, d) -> 3 x (B, h, T, d_h)
        B, T, d = x.shape
        qkv = self.in_proj(x).view(B, T, 3, self.heads, d // self.heads)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)

    def merge_heads(self, o: torch.Tensor) -> torch.Tensor:  # (B, h, T, d_h) -> (B, T, d)
        B, h, T, dh = o.shape
        return self.out_proj(o.transpose(1, 2).reshape(B, T, h * dh))


class _KVCache:
    """Decode with a KV cache preallocated for max_len tokens, never grown (no torch.cat per step).

    The state is (K, V, n): caches of shape (B, h, max_len, d_h) and the number of tokens they hold.
    A step writes the new key and value into slot n, in place, and returns n + 1 in a new tuple: the
    old state still says n, so seqbench's timed repeats all rewrite slot n and attend over n + 1.
    Needs split_heads, merge_heads and attend_cached(q, K, V) from the class it is mixed into.
    """

    def init_state(self, batch_size: int, max_len: int):
        w = next(self.parameters())
        d = w.shape[-1]
        K = w.new_zeros(batch_size, self.heads, max_len, d // self.heads)
        return (K, torch.zeros_like(K), 0)

    def prefill(self, x: torch.Tensor, state):
        K, V, n = state
        _, k, v = self.split_heads(x)  # (B, h, t, d_h); the queries of a context are not needed
        t = x.shape[1]
        K[:, :, n:n + t] = k
        V[:, :, n:n + t] = v
        return (K, V, n + t)

    def step(self, x_t: torch.Tensor, state):  # x_t: (B, 1, d)
        K, V, n = state
        q, k, v = self.split_heads(x_t)  # (B, h, 1, d_h)
        K[:, :, n:n + 1] = k
        V[:, :, n:n + 1] = v
        o = self.attend_cached(q, K[:, :, :n + 1], V[:, :, :n + 1])  # one query sees all n + 1: causal
        return self.merge_heads(o), (K, V, n + 1)


class NaiveAttention(_KVCache, _Attention):
    """Materialises the (B, h, T, T) score matrix: the textbook formula, O(T^2) memory."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split_heads(x)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # (B, h, T, T)
        if self.causal:
            T = x.shape[1]
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(mask, float("-inf"))
        return self.merge_heads(torch.softmax(scores, dim=-1) @ v)

    def attend_cached(self, q, K, V):  # q (B, h, 1, d_h), K/V (B, h, n, d_h): a (B, h, 1, n) score row
        return torch.softmax((q @ K.transpose(-2, -1)) / math.sqrt(q.shape[-1]), dim=-1) @ V


class SDPAttention(_KVCache, _Attention):
    """torch.nn.functional.scaled_dot_product_attention: flash / memory-efficient / math backend."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split_heads(x)
        return self.merge_heads(F.scaled_dot_product_attention(q, k, v, is_causal=self.causal))

    def attend_cached(self, q, K, V):
        return F.scaled_dot_product_attention(q, K, V)


class MHA(_KVCache, nn.Module):
    """nn.MultiheadAttention, self-attention, need_weights=False (so it may use SDPA's fast paths).

    nn.MultiheadAttention has no KV cache: its decode step uses the layer's own weights with the
    cache above and SDPA (what its fast path calls), so it does what sdpa's step does.
    """

    def __init__(self, d: int, heads: int, causal: bool):
        super().__init__()
        self.causal, self.heads = causal, heads
        self.mha = nn.MultiheadAttention(d, heads, batch_first=True)

    def split_heads(self, x: torch.Tensor):  # (B, T, d) -> 3 x (B, h, T, d_h), with the layer's in_proj
        B, T, d = x.shape
        qkv = F.linear(x, self.mha.in_proj_weight, self.mha.in_proj_bias).view(B, T, 3, self.heads, d // self.heads)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)

    def merge_heads(self, o: torch.Tensor) -> torch.Tensor:
        B, h, T, dh = o.shape
        return self.mha.out_proj(o.transpose(1, 2).reshape(B, T, h * dh))

    attend_cached = SDPAttention.attend_cached

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = None
        if self.causal:
            T = x.shape[1]
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        return self.mha(x, x, x, need_weights=False, attn_mask=mask, is_causal=self.causal)[0]


def attention_flops(s: Shape) -> float:
    core = 4 * s.batch_size * s.seq_len ** 2 * s.hidden_size
    return 8 * s.batch_size * s.seq_len * s.hidden_size ** 2 + (core / 2 if s.causal else core)


def _activation_bytes(score_copies_fwd: int, score_copies_train: int):
    # Projections: q,k,v + attention output + output projection ~ 5*B*T*d in forward; training saves
    # roughly twice that. The naive kernel also holds score matrices of B*h*T^2 each: two at once in
    # forward (scores -> scaled -> masked -> softmax, each step freeing its input); in train mode the
    # backward holds four (saved softmax, its gradient, the scores' gradient and a temporary): the
    # CUDA allocator measured 4.0 copies at T=4096 on an H200, the CPU profiler 2 (it sees one op at a
    # time). The budget takes the larger. Causal adds only the (T, T) bool mask.
    def estimate(s: Shape, elem: int, train: bool) -> float:
        btd = s.batch_size * s.seq_len * s.hidden_size
        scores = s.batch_size * s.num_heads * s.seq_len ** 2
        copies = score_copies_train if train else score_copies_fwd
        mask = s.seq_len ** 2 if (s.causal and copies) else 0
        return float(((10 if train else 5) * btd + copies * scores) * elem + mask)

    return estimate


def _factory(cls):
    def make(shape: Shape) -> nn.Module:
        return cls(shape.hidden_size, shape.num_heads, shape.causal)

    return make


for _name, _cls, _fwd, _train, _desc in [
    ("attention_naive", NaiveAttention, 2, 4, "explicit softmax(QK^T/sqrt(d_h))V, materialises T x T scores"),
    ("sdpa", SDPAttention, 0, 0, "F.scaled_dot_product_attention with Q/K/V/out projections"),
    ("mha", MHA, 0, 0, "nn.MultiheadAttention (self-attention, need_weights=False)"),
]:
    register_kernel(
        _name,
        family="attention",
        factory=_factory(_cls),
        flops=attention_flops,
        formula="8*B*T*d^2 + 4*B*T^2*d (causal: 2*B*T^2*d)",
        decode_flops="8*B*d^2 + 4*B*(T+1)*d",  # 4 projections of the new token + QK^T, AV over T + 1 keys
        memory=_activation_bytes(_fwd, _train),
        description=_desc,
        causal="optional",
        quadratic=True,
    )
