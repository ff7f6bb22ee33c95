"""Hugging Face blocks as seqbench kernels: each block built from a small config in code (nothing is
downloaded), its forward as the library runs it, and its decode step on the library's own cache.

Every adapter maps x (B, T, d) to the block's own output (a tensor or a tuple whose first item is
(B, T, d): seqbench's default `output`), and decodes with three methods: init_state (the library's
cache, empty), step (one token through the library's one-token path) and prefill (the chunk through
the library's sequence path, returning (outputs, cache): registered prefill_output=True). Where the
library's path is wrong, the adapter goes around it and says so (the RWKV and Mamba notes below;
docs/real-blocks.md).

transformers is imported when a block is built, never when seqbench.kernels.hf registers them.
"""

from __future__ import annotations

import torch
from torch import nn


def _dynamic_cache(config):
    from transformers.cache_utils import DynamicCache

    return DynamicCache(config=config)


class CacheMixer(nn.Module):
    """A mixer called as mixer(x, cache=...) on a DynamicCache updated in place (Mamba, Mamba2, GatedDeltaNet)."""

    def __init__(self, config, mixer: nn.Module):
        super().__init__()
        self.config, self.mixer = config, mixer

    def forward(self, x):
        return self.mixer(x)

    def init_state(self, batch_size, max_len):
        return _dynamic_cache(self.config)

    def step(self, x_t, cache):
        return self.mixer(x_t, cache=cache), cache

    def prefill(self, x, cache):
        return self.mixer(x, cache=cache), cache


class MambaMixerBlock(CacheMixer):
    """HF's MambaMixer. Its torch sequence path (no mamba_ssm kernels) starts the SSM scan from zero
    whatever the cache holds: a second prefill chunk ignores the state the first left (2.5e-4 off at
    output scale 0.23 here). A prefill after the first chunk therefore goes through the one-token path."""

    def prefill(self, x, cache):
        layers = getattr(cache, "layers", [])
        if not layers or not getattr(layers[0], "is_recurrent_states_initialized", False):
            return self.mixer(x, cache=cache), cache
        outs = []
        for t in range(x.shape[1]):
            outs.append(self.mixer(x[:, t:t + 1], cache=cache))
        return torch.cat(outs, dim=1), cache


class LlamaBlock(nn.Module):
    """LlamaAttention (or LlamaDecoderLayer) with its rotary embedding, the causal mask HF builds for a
    cache (without it HF's SDPA path drops the cached keys of a chunk longer than one token: a second
    prefill chunk 0.69 off), and a DynamicCache that grows by torch.cat."""

    def __init__(self, config, layer: nn.Module, decoder: bool):
        super().__init__()
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

        self.config, self.layer, self.decoder = config, layer, decoder
        self.rotary = LlamaRotaryEmbedding(config)

    def _run(self, x, cache):
        from transformers.masking_utils import create_causal_mask

        start = cache.get_seq_length() if cache is not None else 0
        pos = torch.arange(start, start + x.shape[1], device=x.device).unsqueeze(0)
        mask = create_causal_mask(config=self.config, inputs_embeds=x, attention_mask=None, cache=cache,
                                  position_ids=pos)
        pe = self.rotary(x, pos)
        if self.decoder:
            return self.layer(x, attention_mask=mask, position_ids=pos, cache=cache, position_embeddings=pe)
        return self.layer(x, position_embeddings=pe, attention_mask=mask, cache=cache)

    def forward(self, x):
        return self._run(x, None)

    def init_state(self, batch_size, max_len):
        return _dynamic_cache(self.config)

    def step(self, x_t, cache):
        return self._run(x_t, cache), cache

    def prefill(self, x, cache):
        return self._run(x, cache), cache


class RwkvBlock(nn.Module):
    """RwkvSelfAttention (RWKV-4 time mixing) on the library's state layout: [unused, shift, num, den, max],
    each (B, d, 1) for one layer. Its one-token path (hidden of length 1 with a state) mixes the
    (B, 1, d) token with the (B, d) shift state and broadcasts to (B, B, d) for B > 1; step computes
    that token shift with the batch axis kept and calls the library's own wkv (rwkv_linear_attention)."""

    def __init__(self, config, attention: nn.Module):
        super().__init__()
        self.config, self.att = config, attention

    def forward(self, x):
        return self.att(x)

    def init_state(self, batch_size, max_len):
        w = self.att.key.weight
        d, a = self.att.time_mix_key.shape[-1], self.att.attention_hidden_size
        shift = w.new_zeros(batch_size, d, 1)
        num, den = (torch.zeros(batch_size, a, 1, device=w.device, dtype=torch.float32) for _ in range(2))
        top = torch.full((batch_size, a, 1), -1e38, device=w.device, dtype=torch.float32)
        return [None, shift, num, den, top]

    def step(self, x_t, state):
        from transformers.models.rwkv.modeling_rwkv import rwkv_linear_attention

        att = self.att
        shifted = state[1][:, :, 0].unsqueeze(1)  # (B, 1, d): the library's path drops this axis
        key = att.key(x_t * att.time_mix_key + shifted * (1 - att.time_mix_key))
        value = att.value(x_t * att.time_mix_value + shifted * (1 - att.time_mix_value))
        receptance = torch.sigmoid(att.receptance(x_t * att.time_mix_receptance + shifted * (1 - att.time_mix_receptance)))
        state[1][:, :, 0] = x_t[:, -1]
        wkv, layer_state = rwkv_linear_attention(att.time_decay, att.time_first, key, value,
                                                 state=tuple(s[:, :, 0] for s in state[2:]), return_state=True)
        for i, s in enumerate(layer_state):
            state[2 + i][:, :, 0] = s
        return att.output(receptance * wkv), state

    def prefill(self, x, state):
        y, state = self.att(x, state=state, use_cache=True)
        return y, state


class XlstmBlock(nn.Module):
    """xLSTM's mLSTM layer (xLSTMLayer): state (C, n, m) per head, returned anew by every call (not in place)."""

    def __init__(self, config, layer: nn.Module):
        super().__init__()
        self.config, self.layer = config, layer

    def forward(self, x):
        return self.layer(x)

    def init_state(self, batch_size, max_len):
        cfg, w = self.config, self.layer.out_proj.weight
        h = cfg.num_heads
        dqk, dv = int(cfg.hidden_size * cfg.qk_dim_factor) // h, int(cfg.hidden_size * cfg.v_dim_factor) // h
        f32 = dict(device=w.device, dtype=torch.float32)
        return (torch.zeros(batch_size, h, dqk, dv, **f32), torch.zeros(batch_size, h, dqk, **f32),
                torch.zeros(batch_size, h, 1, **f32))

    def step(self, x_t, state):
        return self.layer(x_t, state)

    def prefill(self, x, state):
        return self.layer(x, state)
