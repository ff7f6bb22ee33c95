"""Recurrent kernels: the seed's sequential tanh loop, the same loop as cuDNN schedules it, its LSTM/GRU
relatives, and PyTorch's fused layers.

Every kernel includes the input projection (x W) so that it does comparable work per token to an
attention layer that includes its Q/K/V/output projections. Weights use PyTorch's layouts
(weight_ih: (G*d, d), weight_hh: (G*d, d)) so a loop and its fused twin can share parameters.

Forward FLOPs (multiply-add = 2), G gates per step (Elman 1, GRU 3, LSTM 4):
    2*B*T*d*(G*d)  for x W_ih   +   2*B*T*d*(G*d)  for h W_hh   =   4*G*B*T*d^2
Elementwise work (bias, tanh, gates) is O(B*T*d) and not counted.

Decode (kernels/decode.py): the state is h (and the LSTM's c), d numbers per sequence whatever the
context; one step costs 4*G*B*d^2, independent of T.
"""

from __future__ import annotations

import torch
from torch import nn

from seqbench.kernels.registry import per_token_activations, register_kernel

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def _init(module: nn.Module, d: int) -> nn.Module:
    # Uniform(-1/sqrt(d), 1/sqrt(d)) as nn.RNN does: keeps tanh out of saturation at any d.
    bound = d ** -0.5
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-bound, bound)
    return module


class RNNLoop(nn.Module):
    """The seed's loop: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), one step at a time."""

    def __init__(self, d: int):
        super().__init__()
        self.weight_ih = nn.Parameter(torch.empty(d, d))
        self.weight_hh = nn.Parameter(torch.empty(d, d))
        self.bias_ih = nn.Parameter(torch.empty(d))
        self.bias_hh = nn.Parameter(torch.empty(d))
        _init(self, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, d)
        h = x.new_zeros(x.shape[0], self.weight_hh.shape[0])  # (B, d)
        outs = []
        for t in range(x.shape[1]):  # sequential: step t needs h from step t-1
            h = torch.tanh(x[:, t] @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh)
            outs.append(h)
        return torch.stack(outs, dim=1)  # (B, T, d)

    # Decode: the loop body above, one token at a time; the state is h.
    def init_state(self, batch_size: int, max_len: int) -> torch.Tensor:
        return self.weight_hh.new_zeros(batch_size, self.weight_hh.shape[0])  # (B, d)

    def step(self, x_t: torch.Tensor, h: torch.Tensor):  # x_t: (B, 1, d)
        h = torch.tanh(x_t[:, 0] @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh)
        return h.unsqueeze(1), h


class RNNLoopHoisted(RNNLoop):
    """The seed's recurrence as every real implementation schedules it (cuDNN, oneDNN): the input
    projection x W_ih^T + b_ih + b_hh does not depend on h, so it runs for all T in one GEMM before
    the loop; each step is then one fused multiply-add, h_{t-1} W_hh^T + (that step's slice), and a tanh.

    Same parameters and outputs as RNNLoop. What is left inside the loop is what the sequential
    dependency costs (T small GEMMs of B rows) plus Python's per-step dispatch; the seed's loop also
    pays, every step, two weight transposes, two more matmul calls and two bias additions.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, d)
        B, T, d = x.shape
        # Time-major, so each step reads one contiguous (B, d) slice: 10-25% faster than strided
        # slices of a (B, T, d) projection at T >= 256 on this CPU.
        xw = torch.addmm(self.bias_ih + self.bias_hh, x.transpose(0, 1).reshape(T * B, d), self.weight_ih.t())
        xw = xw.view(T, B, -1)  # (T, B, d)
        w_hh = self.weight_hh.t()  # a view, taken once
        h = x.new_zeros(B, w_hh.shape[1])
        outs = []
        for t in range(T):  # sequential: step t needs h from step t-1
            h = torch.addmm(xw[t], h, w_hh).tanh_()  # in place on addmm's fresh output, which autograd does not keep
            outs.append(h)
        return torch.stack(outs, dim=1)  # (B, T, d)


class CellLoop(nn.Module):
    """Steps an nn.LSTMCell / nn.GRUCell over T in Python."""

    def __init__(self, cell: nn.Module):
        super().__init__()
        self.cell = cell
        self.is_lstm = isinstance(cell, nn.LSTMCell)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, d)
        B, T, _ = x.shape
        h = x.new_zeros(B, self.cell.hidden_size)
        c = x.new_zeros(B, self.cell.hidden_size) if self.is_lstm else None
        outs = []
        for t in range(T):
            if self.is_lstm:
                h, c = self.cell(x[:, t], (h, c))
            else:
                h = self.cell(x[:, t], h)
            outs.append(h)
        return torch.stack(outs, dim=1)

    # Decode: the cell once; the state is h, or (h, c) for the LSTM.
    def init_state(self, batch_size: int, max_len: int):
        h = self.cell.weight_hh.new_zeros(batch_size, self.cell.hidden_size)
        return (h, torch.zeros_like(h)) if self.is_lstm else h

    def step(self, x_t: torch.Tensor, state):
        state = self.cell(x_t[:, 0], state)
        return (state[0] if self.is_lstm else state).unsqueeze(1), state


def is_flat(rnn: nn.RNNBase) -> bool:
    """Whether the layer's weights are views of one buffer, the layout cuDNN needs (else it copies them every call)."""
    return len({w.untyped_storage().data_ptr() for w in rnn._flat_weights}) == 1


def _cudnn_refuses_to_flatten(rnn: nn.RNNBase) -> bool:
    # nn.RNNBase.flatten_parameters stops at torch.backends.cudnn.is_acceptable, whose dtypes are
    # half, float and double (torch 2.11-2.13), while aten runs bfloat16 RNNs through cuDNN since cuDNN
    # 9.13 (pytorch/pytorch#164411). bfloat16 weights then stay scattered, and cuDNN warns "weights are
    # not part of single contiguous chunk of memory" and compacts them on every call: 6.5x slower
    # than float32 on an H200.
    w = rnn._flat_weights[0]
    return (isinstance(w, torch.Tensor) and w.is_cuda and w.dtype == torch.bfloat16
            and torch.backends.cudnn.is_available() and torch.backends.cudnn.enabled
            and (torch.backends.cudnn.version() or 0) >= 91300 and torch._use_cudnn_rnn_flatten_weight())


def flatten_rnn(rnn: nn.RNNBase) -> None:
    """Put the layer's weights in cuDNN's single buffer, as flatten_parameters() does, bfloat16 included.

    A no-op where cuDNN is not used (CPU) or the weights are flat already.
    """
    rnn.flatten_parameters()
    if is_flat(rnn) or not _cudnn_refuses_to_flatten(rnn):
        return
    import torch.backends.cudnn.rnn as cudnn_rnn

    # flatten_parameters' own call, without its dtype check
    with torch.cuda.device_of(rnn._flat_weights[0]), torch.no_grad():
        torch._cudnn_rnn_flatten_weight(
            rnn._flat_weights, (4 if rnn.bias else 2) + (1 if rnn.proj_size > 0 else 0), rnn.input_size,
            cudnn_rnn.get_cudnn_mode(rnn.mode), rnn.hidden_size, rnn.proj_size, rnn.num_layers, rnn.batch_first,
            bool(rnn.bidirectional))


class Fused(nn.Module):
    """nn.RNN / nn.LSTM / nn.GRU over the whole sequence (oneDNN on CPU where available, cuDNN on CUDA)."""

    def __init__(self, rnn: nn.Module):
        super().__init__()
        self.rnn = rnn

    def _apply(self, fn, recurse=True):
        # Every .to(device, dtype) ends here: re-flatten after it, so no dtype leaves cuDNN copying
        # scattered weights on every call (see flatten_rnn).
        out = super()._apply(fn, recurse)
        flatten_rnn(self.rnn)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]

    # Decode: the fused layer on one token with its hidden state, (1, B, d) (LSTM: a (h, c) pair).
    def init_state(self, batch_size: int, max_len: int):
        h = self.rnn.weight_hh_l0.new_zeros(1, batch_size, self.rnn.hidden_size)
        return (h, torch.zeros_like(h)) if isinstance(self.rnn, nn.LSTM) else h

    def step(self, x_t: torch.Tensor, state):
        return self.rnn(x_t, state)

    def prefill(self, x: torch.Tensor, state):
        return self.rnn(x, state)[1]  # one fused call over the whole context


def _flops(gates: int):
    return lambda s: 4 * gates * s.batch_size * s.seq_len * s.hidden_size ** 2


# cuDNN's tanh RNN keeps far more than the gate count suggests: the CUDA allocator measured 10
# (forward) and 22 (train) d-vectors per token on an H200 at B*T >= 16k, against 3 and 9 from the
# rule below; LSTM and GRU stayed within 0.7-1.35x of the rule.
_MEASURED_PER_TOKEN = {"rnn_fused": (10, 22)}


def _activation_bytes(gates: int, measured: tuple[int, int] | None = None):
    # Forward keeps the output (B,T,d), its stacked copy and, for fused layers, the precomputed
    # input projection (B,T,G*d). Training also saves each step's gate pre-activations and states.
    forward, train = gates + 2, (gates + 2) + (3 * gates + 3)
    if measured:
        forward, train = max(forward, measured[0]), max(train, measured[1])
    return per_token_activations(forward, train)


_FACTORIES = {
    "rnn_loop": lambda d: RNNLoop(d),
    "rnn_loop_hoisted": lambda d: RNNLoopHoisted(d),
    "lstm_loop": lambda d: CellLoop(nn.LSTMCell(d, d)),
    "gru_loop": lambda d: CellLoop(nn.GRUCell(d, d)),
    "rnn_fused": lambda d: Fused(nn.RNN(d, d, batch_first=True)),
    "lstm_fused": lambda d: Fused(nn.LSTM(d, d, batch_first=True)),
    "gru_fused": lambda d: Fused(nn.GRU(d, d, batch_first=True)),
}
_DESCRIPTIONS = {
    "rnn_loop": "the seed's Python loop h_t = tanh(x_t W + h_{t-1} U)",
    "rnn_loop_hoisted": "the same loop as cuDNN schedules it: x W for all T in one GEMM, then addmm + tanh per step",
    "lstm_loop": "Python loop over nn.LSTMCell",
    "gru_loop": "Python loop over nn.GRUCell",
    "rnn_fused": "nn.RNN (tanh), one call for the whole sequence",
    "lstm_fused": "nn.LSTM (oneDNN on CPU, cuDNN on CUDA)",
    "gru_fused": "nn.GRU (cuDNN on CUDA)",
}

# The seed's loop: the report's textbook reference. The fair fight (best recurrence against best
# attention) needs no baseline: it is chosen per point from every recurrent and scan kernel.
BASELINES = ("rnn_loop",)

for _name, _make in _FACTORIES.items():
    _g = GATES[_name.split("_")[0]]
    register_kernel(
        _name,
        family="recurrent",
        factory=lambda shape, _make=_make: _init(_make(shape.hidden_size), shape.hidden_size),
        flops=_flops(_g),
        formula=f"{4 * _g}*B*T*d^2" if _g > 1 else "4*B*T*d^2",
        decode_flops=f"{4 * _g}*B*d^2",  # one step: x W_ih and h W_hh, whatever the context
        memory=_activation_bytes(_g, _MEASURED_PER_TOKEN.get(_name)),
        description=_DESCRIPTIONS[_name],
        causal="always",
        baseline=_name in BASELINES,
    )
