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


MAX_THREADS_VAR = "SEQBENCH_MAX_THREADS"  # the explicit override of the bound below
THREADS_CEILING = 1024  # even with the override: thousands of threads crash torch's pool (libgomp, a segfault)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity: taskset, a container's cpuset), else the count."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_threads(threads: int, where: str = "threads") -> str:
    """Refuse (ValueError, one line) more torch threads than the cores this process may use, unless
    SEQBENCH_MAX_THREADS raises the bound; '' or, when the override allows it, a note saying so."""
    cores = usable_cores()
    where = f"{where} {threads}" if where.startswith("--") else f"{where} = {threads}"
    raw = os.environ.get(MAX_THREADS_VAR, "").strip()
    try:
        bound = int(raw) if raw else cores
    except ValueError:
        raise ValueError(f"{MAX_THREADS_VAR}={raw!r}: give a whole number of threads (1 to {THREADS_CEILING})") from None
    if not 1 <= bound <= THREADS_CEILING:
        raise ValueError(f"{MAX_THREADS_VAR}={raw}: allowed 1 to {THREADS_CEILING}")
    if threads <= bound:
        return (f"{where} on {cores} usable core{'s' if cores > 1 else ''}: allowed by {MAX_THREADS_VAR}="
                f"{raw}; threads beyond the cores wait for each other, and the timings show it") if threads > cores else ""
    if raw:
        raise ValueError(f"{where} is above {MAX_THREADS_VAR}={raw}; allowed 0 (torch's default) to {bound}")
    raise ValueError(f"{where} but this process may use {cores} CPU core{'s' if cores > 1 else ''}: "
                     "more threads than cores time the threads waiting for each other (and thousands crash torch's "
                     f"thread pool); allowed 0 (torch's default) to {cores}, or set {MAX_THREADS_VAR}=N to allow "
                     f"up to N (at most {THREADS_CEILING})")


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
