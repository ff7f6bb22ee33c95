"""The Hugging Face blocks (seqbench.kernels.hf, `seqbench[hf]`): each passes seqbench's checks, its FLOP
formula equals what FlopCounterMode counts, and its decode through seqbench (prefill, then steps on the
library's own cache) equals the library's own generation path: the one-layer model run with a cache,
one token at a time, its block's inputs and outputs caught by a hook. transformers is imported once
(module scope); every shape is tiny."""

from __future__ import annotations

import copy

import pytest
import torch

transformers = pytest.importorskip("transformers")

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from seqbench.kernels import get_kernel, load_plugins  # noqa: E402
from seqbench.kernels.check import check_decode, check_kernel, check_shape  # noqa: E402
from seqbench.kernels.registry import Shape, unregister  # noqa: E402

# named here, not imported: importing seqbench.kernels.hf registers them, and other test modules that
# parametrize over every registered kernel are collected after this one
KERNELS = ("hf_llama_attn", "hf_llama_layer", "hf_mamba", "hf_mamba2", "hf_gated_deltanet", "hf_rwkv", "hf_xlstm")
D, H = 32, 2


@pytest.fixture(scope="module", autouse=True)
def hf_kernels():
    load_plugins(["seqbench.kernels.hf"])
    from seqbench.kernels import hf

    assert hf.KERNELS == KERNELS
    yield
    from seqbench.kernels import plugins

    for k in KERNELS:
        unregister(k)
    plugins._LOADED.pop("seqbench.kernels.hf", None)


def build(name, B=2, T=8, d=D):
    torch.manual_seed(0)
    return get_kernel(name).build(Shape(B, T, d, H, True), torch.device("cpu"), torch.float32).eval()


@pytest.mark.parametrize("name", KERNELS)
def test_every_block_passes_the_forward_and_two_chunk_decode_checks(name):
    spec = get_kernel(name)
    assert check_kernel(spec, check_shape(D, H, True), "cpu", "float32") is None
    assert check_decode(spec, check_shape(D, H, True), "cpu", "float32") is None


def test_the_library_paths_the_adapters_go_around_fail_the_checks():
    """HF Mamba's torch scan ignores the cache's SSM state in a second chunk; RWKV's one-token path
    broadcasts (B, 1, d) with (B, d) to (B, B, d) for B > 1."""
    import seqbench
    from seqbench.kernels.hf import blocks

    def plain_mamba(shape):
        m = get_kernel("hf_mamba").factory(shape)
        return blocks.CacheMixer(m.config, m.mixer)

    def library_rwkv(shape):
        m = get_kernel("hf_rwkv").factory(shape)
        m.step = lambda x_t, state: m.att(x_t, state=state, use_cache=True)
        return m

    for name, factory, words in (("plain_mamba", plain_mamba, "prefill chunk 2 (t = 2..3, after chunk 1's state)"),
                                 ("library_rwkv", library_rwkv, "step returned (2, 2, 32)")):
        spec = seqbench.register_kernel(name, family="scan", flops="1", factory=factory, inplace_state=True,
                                        prefill_output=True, replace=True)
        try:
            assert words in check_decode(spec, check_shape(D, H, True), "cpu", "float32")
        finally:
            unregister(name)


def _count(fn) -> float:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("name", ["hf_llama_attn", "hf_llama_layer", "hf_mamba", "hf_rwkv", "hf_mamba2",
                                  "hf_gated_deltanet", "hf_xlstm"])
def test_flop_formulas_equal_flop_counter_mode(name):
    spec = get_kernel(name)
    # counted kernels: at lengths they were not counted at (192), across chunks; formulas: any length
    for B, T in ((1, 64), (2, 192)) if spec.formula.startswith("counted") else ((1, 12), (2, 40)):
        m, x = build(name, B, T), torch.randn(B, T, D)
        counted = _count(lambda: m(x))
        invisible = 2 * B * T * T * D if spec.quadratic else 0  # the CPU SDPA kernel: not seen by the counter
        assert spec.flops(Shape(B, T, D, H, True)) == pytest.approx(counted + invisible, rel=1e-9)
        with torch.inference_mode():
            state = m.prefill(x, m.init_state(B, T + 1))[1]
        x_t = torch.randn(B, 1, D)
        invisible = 4 * B * (T + 1) * D if spec.quadratic else 0
        assert spec.flops(Shape(B, T, D, H, True), "decode") == pytest.approx(
            _count(lambda: m.step(x_t, state)) + invisible, rel=1e-9)


def _model_and_block(name, adapter):
    """The library's one-layer model sharing the adapter's weights, and the block inside it to hook."""
    cfg = copy.deepcopy(adapter.config)
    if name == "hf_gated_deltanet":  # the model's MoE MLP at its default size is 50M parameters
        cfg.num_experts, cfg.num_experts_per_tok, cfg.moe_intermediate_size = 2, 1, 8
        cfg.shared_expert_intermediate_size = cfg.intermediate_size = 8
        # a model of linear-attention layers only cannot generate (Cache.get_seq_length refuses): add one
        cfg.num_hidden_layers, cfg.layer_types = 2, ["linear_attention", "full_attention"]
    models = {"hf_llama_attn": (transformers.LlamaModel, lambda m: m.layers[0].self_attn, "layer"),
              "hf_llama_layer": (transformers.LlamaModel, lambda m: m.layers[0], "layer"),
              "hf_mamba": (transformers.MambaModel, lambda m: m.layers[0].mixer, "mixer"),
              "hf_mamba2": (transformers.Mamba2Model, lambda m: m.layers[0].mixer, "mixer"),
              "hf_gated_deltanet": (transformers.Qwen3NextModel, lambda m: m.layers[0].linear_attn, "mixer"),
              "hf_rwkv": (transformers.RwkvModel, lambda m: m.blocks[0].attention, "att"),
              "hf_xlstm": (transformers.xLSTMModel, lambda m: m.blocks[0].mlstm_layer, "layer")}
    cls, block_of, attr = models[name]
    model = cls(cfg).eval()
    block = block_of(model)
    block.load_state_dict(getattr(adapter, attr).state_dict())
    return model, block


def _library_generation(name, model, block, x, t0):
    """The library's own path: the model over x[:, :t0] with a cache, then one token at a time;
    the (input, output) of each call of `block`."""
    calls = []

    def hook(module, args, kwargs, out):
        calls.append((args[0] if args else kwargs["hidden_states"], out[0] if isinstance(out, tuple) else out))

    handle = block.register_forward_hook(hook, with_kwargs=True)
    try:
        with torch.inference_mode():
            if name == "hf_rwkv":
                out = model(inputs_embeds=x[:, :t0], use_cache=True)
                for t in range(t0, x.shape[1]):
                    out = model(inputs_embeds=x[:, t:t + 1], state=out.state, use_cache=True)
            else:
                out = model(inputs_embeds=x[:, :t0], use_cache=True)
                for t in range(t0, x.shape[1]):
                    out = model(inputs_embeds=x[:, t:t + 1], cache=out.cache, use_cache=True)
    finally:
        handle.remove()
    return calls


def _library_calls(name, model, block, x, t0):
    """RWKV's own one-token path is wrong for B > 1: its library path runs one sequence at a time
    (B = 1, where it is right), and each call's rows are put together."""
    if name != "hf_rwkv":
        return _library_generation(name, model, block, x, t0)
    per_row = [_library_generation(name, model, block, x[j:j + 1], t0) for j in range(x.shape[0])]
    return [(torch.cat([r[k][0] for r in per_row]), torch.cat([r[k][1] for r in per_row]))
            for k in range(len(per_row[0]))]


@pytest.mark.parametrize("name", KERNELS)
def test_decode_through_seqbench_equals_the_librarys_own_generation_path(name):
    """Prefill and steps as seqbench times them (the state put back between repeats of a step) give the
    outputs the library's generation loop gives, at B = 2."""
    from seqbench.kernels.state import Snapshot

    # xLSTM's own cache rounds its head sizes up to multiples of 64 where its layer does not: at d = 32
    # the library's generation path fails (matC_old has wrong shape); at d = 128 both agree
    d = 128 if name == "hf_xlstm" else D
    adapter, spec = build(name, d=d), get_kernel(name)
    model, block = _model_and_block(name, adapter)
    T, t0 = 8, 5
    calls = _library_calls(name, model, block, torch.randn(2, T, d), t0)
    assert len(calls) == 1 + T - t0
    with torch.inference_mode():
        inp, want = calls[0]
        y, state = adapter.prefill(inp, adapter.init_state(2, T + 1))
        torch.testing.assert_close(spec.output_of(y), want, rtol=1e-4, atol=1e-5)
        for x_t, want in calls[1:]:
            snap = Snapshot(state, spec.state_tensors) if spec.inplace_state else None
            first, _ = adapter.step(x_t, state)  # a timed repeat: the state is put back after it
            if snap:
                snap.restore()
            got, state = adapter.step(x_t, state)
            torch.testing.assert_close(spec.output_of(first), spec.output_of(got))
            torch.testing.assert_close(spec.output_of(got), want, rtol=1e-4, atol=1e-5)
