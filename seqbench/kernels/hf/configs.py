"""The small configs the Hugging Face blocks are built from, in code (nothing is downloaded): width d
and heads h from the Shape, every other size fixed here and listed in docs/real-blocks.md. Each
builder returns the seqbench adapter (kernels.hf.blocks) around the library's own module, with the
library's own weight initialisation (a one-layer model is built and its block taken, where the
block alone would keep uninitialised parameters).
"""

from __future__ import annotations

import warnings

VOCAB = 16  # the one-layer models' embeddings are thrown away: keep them tiny
MAMBA = {"state_size": 16, "expand": 2, "conv_kernel": 4}  # Mamba-1's defaults; dt_rank = ceil(d / 16)
MAMBA2 = {"state_size": 64, "expand": 2, "conv_kernel": 4, "n_groups": 1, "chunk_size": 64}
GDN = {"conv_kernel": 4}  # Qwen3-Next GatedDeltaNet: h key heads and h value heads of d / h each
XLSTM = {"qk_dim_factor": 0.5, "v_dim_factor": 1.0, "chunk_size": 64}
LLAMA_MLP = 8 / 3  # LlamaDecoderLayer's SwiGLU width, as a multiple of d (rounded up to a multiple of 8)


def _quiet():
    """transformers warns once per process that mamba_ssm / causal_conv1d / fla are not installed (the
    torch paths run instead: that is what is measured here); keep those lines out of seqbench's output."""
    import logging

    logging.getLogger("transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="transformers")


def _attn(config):
    config._attn_implementation = "sdpa"
    return config


def llama_inter(d: int) -> int:
    return -(-int(LLAMA_MLP * d) // 8) * 8


def llama_config(shape):
    from transformers import LlamaConfig

    d, h = shape.hidden_size, shape.num_heads
    return _attn(LlamaConfig(hidden_size=d, num_attention_heads=h, num_key_value_heads=h, head_dim=d // h,
                             intermediate_size=llama_inter(d), num_hidden_layers=1, vocab_size=VOCAB))


def llama_attention(shape):
    from transformers.models.llama.modeling_llama import LlamaAttention

    from seqbench.kernels.hf.blocks import LlamaBlock

    _quiet()
    cfg = llama_config(shape)
    return LlamaBlock(cfg, LlamaAttention(cfg, layer_idx=0), decoder=False)


def llama_decoder(shape):
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    from seqbench.kernels.hf.blocks import LlamaBlock

    _quiet()
    cfg = llama_config(shape)
    return LlamaBlock(cfg, LlamaDecoderLayer(cfg, layer_idx=0), decoder=True)


def mamba_dt_rank(d: int) -> int:
    return -(-d // 16)


def mamba(shape):
    from transformers import MambaConfig
    from transformers.models.mamba.modeling_mamba import MambaMixer

    from seqbench.kernels.hf.blocks import MambaMixerBlock

    _quiet()
    d = shape.hidden_size
    cfg = MambaConfig(hidden_size=d, state_size=MAMBA["state_size"], expand=MAMBA["expand"],
                      conv_kernel=MAMBA["conv_kernel"], time_step_rank=mamba_dt_rank(d), num_hidden_layers=1,
                      vocab_size=VOCAB)
    return MambaMixerBlock(cfg, MambaMixer(cfg, layer_idx=0))


def mamba2(shape):
    from transformers import Mamba2Config
    from transformers.models.mamba2.modeling_mamba2 import Mamba2Mixer

    from seqbench.kernels.hf.blocks import CacheMixer

    _quiet()
    d, h = shape.hidden_size, shape.num_heads
    e = MAMBA2["expand"] * d
    cfg = Mamba2Config(hidden_size=d, expand=MAMBA2["expand"], num_heads=h, head_dim=e // h,
                       state_size=MAMBA2["state_size"], n_groups=MAMBA2["n_groups"], chunk_size=MAMBA2["chunk_size"],
                       conv_kernel=MAMBA2["conv_kernel"], num_hidden_layers=1, vocab_size=VOCAB)
    return CacheMixer(cfg, Mamba2Mixer(cfg, layer_idx=0))


def gated_deltanet(shape):
    from transformers import Qwen3NextConfig
    from transformers.models.qwen3_next.modeling_qwen3_next import Qwen3NextGatedDeltaNet

    from seqbench.kernels.hf.blocks import CacheMixer

    _quiet()
    d, h = shape.hidden_size, shape.num_heads
    cfg = Qwen3NextConfig(hidden_size=d, linear_num_value_heads=h, linear_num_key_heads=h, linear_key_head_dim=d // h,
                          linear_value_head_dim=d // h, linear_conv_kernel_dim=GDN["conv_kernel"], num_hidden_layers=1,
                          layer_types=["linear_attention"], vocab_size=VOCAB)
    return CacheMixer(cfg, Qwen3NextGatedDeltaNet(cfg, layer_idx=0))


def rwkv(shape):
    from transformers import RwkvConfig, RwkvModel

    from seqbench.kernels.hf.blocks import RwkvBlock

    _quiet()
    d = shape.hidden_size
    # two layers: RwkvPreTrainedModel's initialisation divides by num_hidden_layers - 1; block 0 is kept
    cfg = RwkvConfig(hidden_size=d, attention_hidden_size=d, intermediate_size=4 * d, num_hidden_layers=2,
                     vocab_size=VOCAB, context_length=1 << 20)
    return RwkvBlock(cfg, RwkvModel(cfg).blocks[0].attention)


def xlstm(shape):
    from transformers import xLSTMConfig
    from transformers.models.xlstm.modeling_xlstm import xLSTMModel

    from seqbench.kernels.hf.blocks import XlstmBlock

    _quiet()
    d, h = shape.hidden_size, shape.num_heads
    cfg = xLSTMConfig(hidden_size=d, num_heads=h, num_blocks=1, vocab_size=VOCAB, mode="inference",
                      qk_dim_factor=XLSTM["qk_dim_factor"], v_dim_factor=XLSTM["v_dim_factor"],
                      chunk_size=XLSTM["chunk_size"])
    return XlstmBlock(cfg, xLSTMModel(cfg).blocks[0].mlstm_layer)
