"""Hugging Face blocks, registered as seqbench kernels (`pip install 'seqbench[hf]'`, then
`--plugin seqbench.kernels.hf` or `plugins = ["seqbench.kernels.hf"]`).

Registering needs no transformers import (it takes seconds): each factory imports it when a block is
built. Configs: kernels/hf/configs.py and docs/real-blocks.md; adapters: kernels/hf/blocks.py.
FLOPs count what FlopCounterMode counts (matrix products and convolutions; a multiply-add is 2), by
formula where the block's algorithm is plain, counted (flops="count") where it is chunked; the
formulas are checked against the counter in tests/test_hf_blocks.py. Attention's T^2 term is the
causal half, as for seqbench's own attention kernels (the CPU SDPA kernel is invisible to the counter).
"""

from __future__ import annotations

import importlib.util

from seqbench.errors import PluginError
from seqbench.kernels.hf import configs
from seqbench.kernels.registry import register_kernel

TESTED = ">=5.24,<5.25"  # the transformers versions these adapters were run against (pyproject's hf extra)

if importlib.util.find_spec("transformers") is None:
    raise PluginError("seqbench.kernels.hf needs transformers: pip install 'seqbench[hf]' "
                      f"(transformers{TESTED})")

_DECODE = dict(inplace_state=True, prefill_output=True)  # the library's caches are updated in place
INTER = "(((8*d//3) + 7)//8*8)"  # LlamaDecoderLayer's SwiGLU width (configs.llama_inter)
E, R = "(expand*d)", "((d + 15)//16)"  # Mamba's inner width and dt_rank
MAMBA_TOKEN = (f"4*d*{E} + 2*{R}*{E} + 2*{E}*({R} + 2*d_state) + 2*{E}*d + 2*{E}*d_state")
MAMBA_PARAMS = {"expand": configs.MAMBA["expand"], "d_state": configs.MAMBA["state_size"],
                "conv": configs.MAMBA["conv_kernel"]}

register_kernel("hf_llama_attn", family="attention", causal="always", factory=configs.llama_attention,
                flops="8*B*T*d^2 + 2*B*T^2*d", decode_flops="8*B*d^2 + 4*B*(T+1)*d", **_DECODE,
                description="transformers LlamaAttention (rotary, SDPA, DynamicCache), h heads of d/h")
register_kernel("hf_llama_layer", family="attention", causal="always", factory=configs.llama_decoder,
                flops=f"8*B*T*d^2 + 2*B*T^2*d + 6*B*T*d*{INTER}",
                decode_flops=f"8*B*d^2 + 4*B*(T+1)*d + 6*B*d*{INTER}", **_DECODE,
                description="transformers LlamaDecoderLayer: RMSNorm, attention, RMSNorm, SwiGLU MLP of 8d/3")
register_kernel("hf_mamba", family="scan", factory=configs.mamba, params=MAMBA_PARAMS,
                flops=f"B*T*({MAMBA_TOKEN}) + 2*B*{E}*conv*(T + conv - 1)",
                decode_flops=f"B*({MAMBA_TOKEN} + 4*{E}*conv)", **_DECODE,
                description="transformers MambaMixer (torch path), d_state 16, expand 2, conv 4")
register_kernel("hf_mamba2", family="scan", factory=configs.mamba2, flops="count", decode_flops="count",
                quadratic=False, **_DECODE,
                description="transformers Mamba2Mixer (torch SSD path), h heads, d_state 64, chunk 64")
register_kernel("hf_gated_deltanet", family="scan", factory=configs.gated_deltanet, flops="count",
                decode_flops="count", quadratic=False, **_DECODE,
                description="transformers Qwen3NextGatedDeltaNet (torch chunked delta rule), h heads of d/h")
register_kernel("hf_rwkv", family="recurrent", factory=configs.rwkv, flops="8*B*T*d^2", decode_flops="8*B*d^2",
                **_DECODE, description="transformers RwkvSelfAttention (RWKV-4 time mixing, CPU wkv loop)")
register_kernel("hf_xlstm", family="scan", factory=configs.xlstm, flops="count", decode_flops="count",
                quadratic=False, prefill_output=True,
                description="transformers xLSTM mLSTM layer (chunkwise, native kernels), h heads")

KERNELS = ("hf_llama_attn", "hf_llama_layer", "hf_mamba", "hf_mamba2", "hf_gated_deltanet", "hf_rwkv", "hf_xlstm")
