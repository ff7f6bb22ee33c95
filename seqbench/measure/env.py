"""Environment capture: everything needed to judge whether two results are comparable."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

from seqbench.version import __version__


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(folder: str | Path) -> str | None:
    """Commit of the git checkout holding `folder` (with -dirty if tracked files changed), or None."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("-dirty" if dirty else "")


def _seqbench_commit() -> str | None:
    """Commit of the seqbench checkout (if installed from one), else of the current directory."""
    for folder in (Path(__file__).resolve().parent, Path.cwd()):
        commit = git_commit(folder)
        if commit:
            return commit
    return None


def capture(device: str = "cpu") -> dict:
    import torch

    info = {
        "seqbench": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "mkldnn_enabled": bool(torch.backends.mkldnn.enabled),
        "cuda_available": torch.cuda.is_available(),
        "git_commit": _seqbench_commit(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        info.update(
            gpu=props.name,
            gpu_memory_bytes=props.total_memory,
            gpu_capability=f"{props.major}.{props.minor}",
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
        )
    info["device"] = device
    return info


# Scheduler and CI variables that identify the job a run belongs to (see `seqbench launch`): Slurm
# (and submitit on Slurm), submitit's local executor, GitHub Actions.
JOB_VARIABLES = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_NODELIST",
                 "SUBMITIT_EXECUTOR", "SUBMITIT_LOCAL_JOB_ID", "GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT",
                 "GITHUB_JOB", "RUNNER_NAME")


def job_ids(environ=None) -> dict:
    """The job/array ids of the scheduler or CI running this process ({} when run by hand)."""
    environ = os.environ if environ is None else environ
    return {k: environ[k] for k in JOB_VARIABLES if environ.get(k)}


def machine_label(info: dict) -> str:
    """A short name of the device a run measured, from capture()'s dict: the GPU's name on CUDA, else
    the CPU model without trademarks and clock ("Intel Xeon Platinum 8481C"). The default `machine`."""
    import re

    if info.get("device") == "cuda" and info.get("gpu"):
        return str(info["gpu"])
    cpu = str(info.get("cpu") or info.get("platform") or "unknown")
    cpu = re.sub(r"\((R|TM|tm|r)\)|\bCPU\b|\bProcessor\b|@.*$|\b\d+-Core\b", " ", cpu)
    return " ".join(cpu.split()) or "unknown"
