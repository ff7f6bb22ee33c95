"""A throwaway user package with its own sequence layer, written into a temp dir, and ways to run
seqbench against it the way its user would: a fresh `seqbench` process, from another directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

GLR = '''
import torch
from torch import nn


class GLR(nn.Module):
    """A gated linear recurrence: h_t = a_t * h_{t-1} + (1 - a_t) * v_t, a_t = sigmoid(x_t W_a)."""

    def __init__(self, d):
        super().__init__()
        self.gate = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.out = nn.Linear(d, d)

    def forward(self, x):
        a = torch.sigmoid(self.gate(x))
        v = self.value(x)
        h = x.new_zeros(x.shape[0], x.shape[2])
        outs = []
        for t in range(x.shape[1]):
            h = a[:, t] * h + (1 - a[:, t]) * v[:, t]
            outs.append(h)
        return self.out(torch.stack(outs, 1))
'''

BENCH = '''
import seqbench
from {pkg}.glr import GLR


@seqbench.register_kernel("{name}", family="scan", flops="6*B*T*d^2", description="a user's gated linear recurrence")
def {name}(shape: seqbench.Shape):
    return GLR(shape.hidden_size)
'''


def write_package(root: Path, pkg: str = "mylab", kernel: str = "my_glr", version: str = "0.3.1") -> Path:
    """root/pkg/{__init__,glr,bench_kernels}.py: a layer and the module that registers it."""
    d = root / pkg
    d.mkdir(parents=True, exist_ok=True)
    (d / "__init__.py").write_text(f'__version__ = "{version}"\n')
    (d / "glr.py").write_text(textwrap.dedent(GLR))
    (d / "bench_kernels.py").write_text(textwrap.dedent(BENCH.format(pkg=pkg, name=kernel)))
    return root


def write_installed(site: Path, pkg: str = "eplab", kernel: str = "ep_glr", version: str = "1.2.0") -> Path:
    """An installed distribution on `site` (a folder for PYTHONPATH) with a seqbench.kernels entry point."""
    write_package(site, pkg, kernel, version)
    info = site / f"{pkg}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {pkg}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[seqbench.kernels]\n{pkg} = {pkg}.bench_kernels\n")
    (info / "top_level.txt").write_text(f"{pkg}\n")
    (info / "RECORD").write_text("")
    return site


def seqbench_cmd() -> list[str]:
    """The installed `seqbench` script (which, unlike `python -m`, does not import from the current folder)."""
    script = Path(sys.executable).parent / "seqbench"
    return [str(script)] if script.exists() else [sys.executable, "-m", "seqbench"]


def run_seqbench(args, *, cwd: Path, pythonpath: Path | None = None, timeout: float = 120):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([*seqbench_cmd(), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


TINY = ["--seq-lens", "8,16", "--batch-sizes", "2", "--hidden-size", "16", "--heads", "2", "--min-time", "0.005",
        "--no-peak", "-q"]


def have_git() -> bool:
    return shutil.which("git") is not None
