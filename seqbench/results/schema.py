"""The results schema, defined once: Row, its columns, and how raw samples are written in a cell.

schema_version history:
  1  first release.
  2  the per-round reference time `calib_s` renamed `ref_s` ("calibration" is the matmul peak only);
     files of version 1 are still read (the column is renamed on reading).
  3  instruction counts (`seqbench run --metric instructions`, docs/instructions.md): columns `metric`
     (time | instructions), `instructions` (per call, the median over blocks) and
     `instructions_samples` (per call, one per block). An instructions row has no times: median_s,
     samples_s and every column derived from time are empty (Valgrind-slowed times are not times).
     Files of versions 1 and 2 are still read: their rows are metric time.
  4  decode states of layers written by others: `state_bytes` is the bytes the state owns (its
     tensors' own bytes, a view counted as a view), and the new `state_retained_bytes` what it keeps
     alive (whole storages). Versions 1-3 measured storages in `state_bytes`: on reading, their
     `state_retained_bytes` is filled from it (equal for every built-in kernel).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from seqbench.choices import Metric, Status, values
from seqbench.results.identity import KEY_COLUMNS  # noqa: F401 - the identity, declared once

SCHEMA_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)

# The sidecar (the JSON beside each CSV) carries the schema_version of the rows it describes; its own
# history, and the migration that reads each older sidecar as the current one (filling what it lacks;
# its schema_version stays what the file says, so merge still sees which version wrote it):
#   1  command, config, environment, host, pid, run_id, rows, started_at, finished_at, status (with
#      interrupted_by when a signal ended it), wall_s, memory_budget_*.
#   2  kernels (each kernel's source and code hash), plugins, schedule (rounds, reference, peak),
#      previous_runs (only when --append or --resume added runs).
#   3  config.metric (time | instructions).
#   4  no change to the sidecar (state_retained_bytes is a CSV column).
# A sidecar newer than SCHEMA_VERSION is refused: an older seqbench cannot know what its fields mean.
def _sidecar_1_to_2(meta: dict) -> dict:
    meta.setdefault("kernels", {})
    meta.setdefault("plugins", [])
    meta.setdefault("schedule", {})
    return meta


def _sidecar_2_to_3(meta: dict) -> dict:
    if isinstance(meta.get("config"), dict):
        meta["config"].setdefault("metric", Metric.TIME.value)
    return meta


SIDECAR_MIGRATIONS = {1: _sidecar_1_to_2, 2: _sidecar_2_to_3, 3: lambda meta: meta}  # from version k to k + 1


def upgrade_sidecar(meta: dict, where: str) -> dict:
    """A run's sidecar read as this version's (SIDECAR_MIGRATIONS); ResultsError (exit 2) for a version this
    seqbench cannot read. A sidecar with no schema_version (gradflow's, ab's records) is returned as it is."""
    from seqbench.errors import ResultsError

    version = meta.get("schema_version")
    if version is None:
        return meta
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultsError(f"{where}: schema_version {version!r} is not an integer")
    if version > SCHEMA_VERSION:
        raise ResultsError(f"{where}: written by a newer seqbench (schema_version {version}); this seqbench reads "
                           f"versions {READABLE_VERSIONS[0]} to {SCHEMA_VERSION}: upgrade seqbench to read it")
    if version not in READABLE_VERSIONS:
        raise ResultsError(f"{where}: schema_version {version} is not supported (this seqbench reads "
                           f"{', '.join(map(str, READABLE_VERSIONS))})")
    for step in range(version, SCHEMA_VERSION):
        meta = SIDECAR_MIGRATIONS[step](meta)
    return meta
RENAMED = {1: {"calib_s": "ref_s"}}  # old name -> new name, per version
STATUSES = values(Status)


@dataclass
class Row:
    # --- required columns, in the order of the design notes ---
    schema_version: int
    run_id: str
    kernel: str
    family: str
    mode: str
    device: str
    dtype: str
    batch_size: int
    seq_len: int
    hidden_size: int
    num_heads: int
    causal: bool
    threads: int
    status: str
    repeats: int | None = None
    median_s: float | None = None
    iqr_s: float | None = None
    min_s: float | None = None
    mean_s: float | None = None
    tokens_per_s: float | None = None
    gflop: float | None = None
    gflops_per_s: float | None = None
    peak_mem_bytes: int | None = None
    samples_s: str = ""
    error: str = ""
    # --- extra columns ---
    peak_mem_method: str = ""  # cuda_allocator | cpu_profiler | analytic
    number: int | None = None  # calls per sample (block)
    warmup_s: float | None = None
    warmup_settled: bool | None = None
    sdpa_backend: str = ""  # flash | efficient | cudnn | math | native_mha, as seen by the profiler
    pct_of_peak: float | None = None  # 100 * gflops_per_s / this run's `calibration` row (seqbench/sweep/matmul_peak.py)
    sample_rounds: str = ""  # round index (1..R) of each entry of samples_s, space-separated
    ref_s: str = ""  # per round: seconds per call of the reference matmul timed just before the point (--reference)
    # --- how the call was launched (every mode) ---
    regime: str = ""  # eager | cuda_graph (--cuda-graph: the timed call captured in a CUDA graph, samples are replays)
    capture_s: float | None = None  # cuda_graph: wall seconds the capture took, never part of a sample
    # --- decode mode (seq_len = context length T; see tokens_per_call) ---
    state_bytes: int | None = None  # bytes per sequence the state owns after the context: KV cache or recurrent state
    state_retained_bytes: int | None = None  # bytes per sequence the state keeps alive (a view retains its buffer)
    capacity_batch: int | None = None  # --capacity: largest B whose weights + state + one step fit the budget (0: none)
    capacity_step_s: float | None = None  # median time of one step at capacity_batch
    capacity_tokens_per_s: float | None = None  # capacity_batch / capacity_step_s
    capacity_peak_bytes: int | None = None  # measured bytes at capacity_batch (weights + state + token + step)
    capacity_budget_bytes: int | None = None  # the memory budget searched against (--max-memory, or 80% of free)
    # --- what was measured: time (the columns above) or instructions (these; the time columns stay empty) ---
    metric: str = "time"  # time | instructions (empty in files before version 3: time)
    instructions: float | None = None  # instructions per call under Callgrind, median over blocks
    instructions_samples: str = ""  # instructions per call, one per block of `number` calls, space-separated

    def as_csv(self) -> dict[str, str]:
        return {k: _fmt(v) for k, v in dataclasses.asdict(self).items()}


COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Row))
REQUIRED_COLUMNS: tuple[str, ...] = COLUMNS[: COLUMNS.index("error") + 1]
INT_COLUMNS = ("schema_version", "batch_size", "seq_len", "hidden_size", "num_heads", "threads", "repeats", "peak_mem_bytes", "number",
               "state_bytes", "state_retained_bytes", "capacity_batch", "capacity_peak_bytes", "capacity_budget_bytes")
FLOAT_COLUMNS = ("instructions", "median_s", "iqr_s", "min_s", "mean_s", "tokens_per_s", "gflop", "gflops_per_s", "warmup_s", "pct_of_peak",
                 "capture_s", "capacity_step_s", "capacity_tokens_per_s")
BOOL_COLUMNS = ("causal", "warmup_settled")
POSITIVE_COLUMNS = ("batch_size", "seq_len", "hidden_size", "num_heads", "median_s", "instructions")  # sizes, and a time of 0 is no measurement


def tokens_per_call(mode: str, batch_size: int, seq_len: int) -> int:
    """Tokens one timed call processes: B*T for a forward or train call over T tokens, B for a decode
    step (one new token per sequence after a context of T). tokens_per_s = this / median_s."""
    return batch_size if mode == "decode" else batch_size * seq_len


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.9g}"
    # one record per line for every reader (line-based tools too): no line breaks inside a cell
    return " ".join(str(v).splitlines()) if isinstance(v, str) else str(v)


def row_metric(value) -> str:
    """A row's metric from its `metric` cell: empty (files before version 3) is time."""
    return value if isinstance(value, str) and value else Metric.TIME.value


def format_samples(samples: Iterable[float]) -> str:
    return " ".join(f"{s:.9g}" for s in samples)


def parse_samples(text: str) -> list[float]:
    return [float(s) for s in str(text).split()] if isinstance(text, str) and text.strip() else []


def sidecar_path(csv_path: str | Path) -> Path:
    """Beside results/NAME.csv sits results/NAME.json: command line, config, environment, plugins."""
    return Path(csv_path).with_suffix(".json")
