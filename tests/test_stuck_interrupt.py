"""SIGTERM while one long call is in flight (a torch op Python cannot interrupt): the run is recorded
as interrupted within about a second, naming the point in flight, and the process exits 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time

import pytest

from plugin_helpers import seqbench_cmd

SLOW = '''
import os
import torch
from torch import nn
import seqbench


class Slow(nn.Module):
    def __init__(self, d, marker):
        super().__init__()
        self.w, self.marker = nn.Linear(d, d), marker

    def forward(self, x):
        if x.shape[1] >= 16:  # the timed point, not the check at T = 8
            a = torch.randn(6000, 6000)  # before the marker: a signal during randn would be handled between the two
            open(self.marker, "w").close()
            a @ a  # one op of ~10 s on one thread: no Python bytecode runs until it returns
        return self.w(x)


@seqbench.register_kernel("slow_op", family="scan", flops="2*B*T*d^2")
def slow_op(shape):
    return Slow(shape.hidden_size, os.environ["SLOW_MARKER"])
'''


@pytest.mark.slow
def test_sigterm_during_a_long_call_is_recorded_within_a_second(tmp_path):
    (tmp_path / "slow_plugin.py").write_text(textwrap.dedent(SLOW))
    marker, out = tmp_path / "in_flight", tmp_path / "r.csv"
    env = {**os.environ, "SLOW_MARKER": str(marker)}
    proc = subprocess.Popen([*seqbench_cmd(), "run", "--plugin", str(tmp_path / "slow_plugin.py"), "--kernels", "slow_op",
                             "--seq-lens", "16", "--batch-sizes", "1", "--hidden-size", "16", "--heads", "1",
                             "--threads", "1", "--no-peak", "-q", "-o", str(out)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)  # inside the matmul now
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    meta = json.loads(out.with_suffix(".json").read_text())
    assert proc.returncode == 130 and "interrupted by SIGTERM" in err
    assert meta["status"] == "interrupted" and meta["interrupted_by"] == "SIGTERM"
    assert "interrupted_point" in meta, (meta, err)
    assert meta["interrupted_point"]["kernel"] == "slow_op" and meta["interrupted_point"]["seq_len"] == 16
    assert took < 1.5, f"recorded {took:.2f} s after SIGTERM"
