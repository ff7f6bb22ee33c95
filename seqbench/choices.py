"""Every closed set of choices, defined once. CLI help, config validation and the CSV reader all
list the allowed values from here, and a member compares equal to its string ("ok" == Status.OK)."""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    FORWARD = "forward"  # one forward call under torch.inference_mode
    TRAIN = "train"  # zero grads + forward + backward
    DECODE = "decode"  # one token (B, 1, d) after a context of T tokens: the state's or KV cache's step


class Regime(StrEnum):
    """How the timed call is launched (column `regime`)."""

    EAGER = "eager"  # the call as written, one launch per op
    CUDA_GRAPH = "cuda_graph"  # captured once in a CUDA graph, each sample replays it (--cuda-graph)


class Metric(StrEnum):
    """What a run measures per call (`seqbench run --metric`, config field `metric`, column `metric`)."""

    TIME = "time"  # seconds per call (the timer)
    INSTRUCTIONS = "instructions"  # instructions per call, counted by Valgrind's Callgrind (docs/instructions.md)


class PeakMemory(StrEnum):
    """How a sweep has each point's peak memory (sweep.runner.Harness.memory)."""

    PROFILED = "profiled"  # torch's profiler on CPU, the caching allocator's peak on CUDA
    ANALYTIC = "analytic"  # the kernel's estimate from its shape (a run on a scripted clock)


class Device(StrEnum):
    CPU = "cpu"
    CUDA = "cuda"
    AUTO = "auto"  # CUDA if present, else CPU; resolved before a run starts


class DType(StrEnum):
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"


class Status(StrEnum):
    OK = "ok"
    OOM = "oom"
    SKIPPED = "skipped"
    ERROR = "error"
    TIMEOUT = "timeout"


class Family(StrEnum):
    RECURRENT = "recurrent"  # sequential over T
    ATTENTION = "attention"  # parallel over T
    SCAN = "scan"  # a linear recurrence computed by a parallel scan
    CALIBRATION = "calibration"  # the matmul-peak yardstick, not a kernel to compare


class Contender(StrEnum):
    """Which side of the recurrence-vs-attention question a kernel stands on (analysis/roles.py)."""

    RECURRENCE = "recurrence"  # recurrent and scan kernels: O(T), sequential or scanned over time
    ATTENTION = "attention"  # softmax attention (registered quadratic): O(T^2), parallel over time
    LINEAR_ATTENTION = "linear_attention"  # attention without the softmax: O(T), a line of its own


class Verdict(StrEnum):
    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    UNCHANGED = "unchanged"
    INCONCLUSIVE = "inconclusive"
    FAILED = "failed"


class FailOn(StrEnum):
    """What makes `seqbench compare` / `ab` exit 1 (--fail-on)."""

    REGRESSION = "regression"
    FAILED = "failed"  # a point that fails in the candidate, or is missing from it
    INCONCLUSIVE = "inconclusive"  # require a conclusive answer for every point


class Mismatch(StrEnum):
    """What two result files may differ in only when `compare --allow-mismatch` says so."""

    THREADS = "threads"
    DEVICE = "device"  # CPU or GPU model
    TORCH = "torch"
    KERNELS = "kernels"  # seqbench's own kernel definitions (the source that defines them)


class TextFormat(StrEnum):
    TABLE = "table"
    MARKDOWN = "markdown"
    JSON = "json"


class ImageFormat(StrEnum):
    PNG = "png"
    SVG = "svg"
    PDF = "pdf"


class Statistic(StrEnum):
    MIN = "min"
    MEDIAN = "median"


class Normalize(StrEnum):
    NONE = "none"
    REFERENCE = "reference"  # divide each round by the reference matmul timed just before it


class Cluster(StrEnum):
    """Where `seqbench launch` runs its shards (submitit's executors)."""

    AUTO = "auto"  # Slurm when its commands are present, else local
    LOCAL = "local"  # subprocesses on this machine
    SLURM = "slurm"  # a Slurm job array


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(m.value for m in enum)


def allowed(enum: type[StrEnum]) -> str:
    """'a, b, c': for messages that say what is allowed."""
    return ", ".join(values(enum))
