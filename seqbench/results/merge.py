"""`seqbench merge`: join result CSVs into one: the shards of one sweep, or runs of several machines.

An input is a path, or `LABEL=PATH` to name the machine of every row in it (otherwise each run's
`machine` from its sidecar: the label given to `run --machine`, else the device's name). Every
input is read and validated first; then, each refusal one line (exit 2):
- one schema: the same columns in the same order (data lines are copied verbatim, never re-rounded);
- each run (run_id) in one input only: a file given twice, or a merged file beside one of its parts;
- each point once per machine: two runs of one machine measuring a point is an overlap, two machines
  measuring it are machines side by side. Calibration rows are exempt: every run keeps its own
  matmul peak, and its rows' pct_of_peak were computed against it on its own machine;
- shards (inputs whose sidecar records `--shard K/N`) all of one sweep: the same config, N,
  seqbench version and schema version; each of 1..N present once and finished; `allow_partial`
  accepts fewer (or unfinished) shards and the sidecar records which are missing;
- shards measured on one kind of machine: device model, CPU count, torch/CUDA/Python version and
  machine label must agree (timings of different machines are not one sweep); `allow_mixed` accepts
  them, records the differences, and every row keeps its own machine's label.
The output's sidecar lists the inputs (path, machine, runs, shard, job ids, status, their sidecars),
the run -> machine map the reader uses, and whether the merge is partial or mixed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from seqbench.errors import ResultsError
from seqbench.results.ownership import check_not_input
from seqbench.results.reader import read_header, read_metadata, read_results, run_machines, split_label
from seqbench.results.schema import KEY_COLUMNS, SCHEMA_VERSION, sidecar_path
from seqbench.results.writer import atomic_write, write_json_atomic

# Environment fields that make two shards' timings incomparable, per device.
ENV_FIELDS = {"cpu": ("device", "cpu", "cpu_count", "torch", "python"),
              "cuda": ("device", "gpu", "cuda", "torch", "python")}


@dataclass
class Part:
    """One input file: its rows, sidecar, and what the merge needs to know of it."""

    path: Path
    label: str | None  # LABEL= given on the command line
    df: object
    meta: dict
    machines: dict[str, str] = field(default_factory=dict)  # run_id -> machine label

    @property
    def shard(self) -> tuple[int, int] | None:
        s = (self.meta.get("schedule") or {}).get("shard")
        return (int(s[0]), int(s[1])) if s else None

    def machine_of(self, run_id: str) -> str:
        return self.label or self.machines.get(run_id, "unknown")


@dataclass
class MergeSummary:
    rows: int
    files: int
    shards: int | None = None  # N, when the inputs were shards of one sweep
    missing: list[int] = field(default_factory=list)
    incomplete: list[int] = field(default_factory=list)
    mixed: dict = field(default_factory=dict)  # environment field -> {machine or file: value}
    machines: list[str] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        return bool(self.missing or self.incomplete)


def _read(arg) -> Part:
    label, path = split_label(arg)
    df = read_results(path)  # validates the file, raises on the first bad line
    meta = read_metadata(path)
    part = Part(path, label, df, meta, run_machines(meta))
    _check_rows(part)
    return part


def _check_rows(p: Part) -> None:
    """Every row of an input belongs to it: a run its sidecar records (not another run's rows pasted
    in, which would be labelled `unknown`), a point once per run, and for a shard a point of its
    sweep (its config's kernels, modes, sizes)."""
    if p.meta.get("run_id"):
        strangers = [r for r in dict.fromkeys(p.df["run_id"]) if r not in p.machines]
        if strangers:
            raise ResultsError(f"{p.path}: rows of run {strangers[0]} are not of any run its sidecar "
                               f"{sidecar_path(p.path)} records ({', '.join(p.machines) or 'none'}); "
                               "rows pasted from another run cannot be merged")
    rows = p.df[p.df["family"] != "calibration"]
    keys = rows[["run_id", *KEY_COLUMNS]] if not p.shard else rows[list(KEY_COLUMNS)]
    twice = keys.duplicated()
    if twice.any():
        r = rows[twice].iloc[0]
        where = "" if p.shard else f" of run {r['run_id']}"
        raise ResultsError(f"{p.path}: point {r['kernel']} {r['mode']} B={r['batch_size']} T={r['seq_len']}{where} "
                           "is in it twice; a shard (or a run) measures each point once")
    cfg = p.meta.get("config") if p.shard else None
    if isinstance(cfg, dict):
        allowed = {"kernel": cfg.get("kernels"), "mode": cfg.get("modes"), "seq_len": cfg.get("seq_lens"),
                   "batch_size": cfg.get("batch_sizes"), "hidden_size": [cfg.get("hidden_size")],
                   "num_heads": [cfg.get("num_heads")], "dtype": [cfg.get("dtype")]}
        for col, ok in allowed.items():
            if not isinstance(ok, (list, tuple)) or None in ok:
                continue
            outside = rows[~rows[col].isin(list(ok))]
            if not outside.empty:
                raise ResultsError(f"{p.path}: a row has {col} {outside.iloc[0][col]!r}, outside the sweep its sidecar "
                                   f"records ({col}: {', '.join(map(str, ok))}); a shard holds only its sweep's points")


def _check_schema(parts: list[Part]) -> None:
    header = read_header(parts[0].path)
    for p in parts[1:]:
        h = read_header(p.path)
        if h != header:
            extra = sorted(set(h) ^ set(header))
            why = f"columns {', '.join(extra[:4])} differ" if extra else "columns are in another order"
            raise ResultsError(f"{p.path} and {parts[0].path} have different schemas ({why}); "
                               "merge only files from the same seqbench version")


def _check_overlap(parts: list[Part]) -> None:
    run_owner: dict[str, Path] = {}
    point_owner: dict[tuple, Path] = {}
    for p in parts:
        for run in dict.fromkeys(p.df["run_id"]):
            if run in run_owner:
                raise ResultsError(f"run {run} is in both {run_owner[run]} and {p.path}: the same file twice, or a "
                                   "merged file beside one of its parts")
            run_owner[run] = p.path
        rows = p.df[p.df["family"] != "calibration"]
        for run, key in zip(rows["run_id"], rows[list(KEY_COLUMNS)].itertuples(index=False)):
            mkey = (p.machine_of(run), *key)
            if mkey in point_owner and point_owner[mkey] != p.path:
                point = ", ".join(f"{c}={v}" for c, v in zip(KEY_COLUMNS, key))
                raise ResultsError(
                    f"point ({point}) is in both {point_owner[mkey]} and {p.path}, both of machine {mkey[0]!r}; "
                    "shards must not overlap, and runs of different machines need their own labels "
                    "(seqbench merge a100=a.csv h100=b.csv)")
            point_owner[mkey] = p.path


def _first_difference(a: dict, b: dict) -> str | None:
    for key in sorted(set(a) | set(b)):
        if json.dumps(a.get(key), sort_keys=True) != json.dumps(b.get(key), sort_keys=True):
            return key
    return None


def _code_of(p: Part) -> tuple[str | None, dict[str, str]]:
    """The seqbench commit a shard ran and each kernel's definition hash (sidecar's `kernels`)."""
    env = p.meta.get("environment") or {}
    kernels = p.meta.get("kernels") if isinstance(p.meta.get("kernels"), dict) else {}
    return env.get("git_commit"), {k: v.get("definition") for k, v in kernels.items() if isinstance(v, dict)}


def _check_same_code(p: Part, first: Part) -> None:
    """Shards of one sweep ran one code: another commit or another kernel definition is another sweep."""
    (c1, k1), (c2, k2) = _code_of(first), _code_of(p)
    if c1 and c2 and c1 != c2:
        raise ResultsError(f"{p.path} ran seqbench commit {c2} and {first.path} commit {c1}: shards of one sweep "
                           "run one code; rerun the shards from one checkout, or pass --allow-mixed to merge anyway")
    changed = sorted(k for k in set(k1) & set(k2) if k1[k] and k2[k] and k1[k] != k2[k])
    if changed:
        k = changed[0]
        raise ResultsError(f"kernel {k} ran other code in {p.path} (definition {k2[k]}) than in {first.path} "
                           f"({k1[k]}): shards of one sweep time one definition; rerun them with one version of "
                           "the kernel, or pass --allow-mixed to merge anyway")


def _check_sweep(shards: list[Part], allow_partial: bool, allow_mixed: bool = False) -> tuple[int, list[int], list[int]]:
    """All shards of one sweep: returns (N, missing shard numbers, unfinished shard numbers)."""
    first = shards[0]
    n = first.shard[1]
    version = lambda p: (p.meta.get("environment") or {}).get("seqbench")  # noqa: E731
    seen: dict[int, Path] = {}
    for p in shards:
        k, pn = p.shard
        if pn != n:
            raise ResultsError(f"{p.path} is shard {k}/{pn} but {first.path} is shard {first.shard[0]}/{n}: "
                               "shards of one sweep have the same N")
        diff = _first_difference(p.meta.get("config") or {}, first.meta.get("config") or {})
        if diff:
            raise ResultsError(f"{p.path} is a shard of another sweep: config {diff} is "
                               f"{(p.meta.get('config') or {}).get(diff)!r} there and "
                               f"{(first.meta.get('config') or {}).get(diff)!r} in {first.path}; merge the shards "
                               "of one sweep at a time")
        if version(p) != version(first) or p.meta.get("schema_version") != first.meta.get("schema_version"):
            raise ResultsError(f"{p.path} was written by seqbench {version(p)} (schema "
                               f"{p.meta.get('schema_version')}) and {first.path} by {version(first)} (schema "
                               f"{first.meta.get('schema_version')}): rerun the shards with one version")
        if not allow_mixed:
            _check_same_code(p, first)
        if k in seen:
            raise ResultsError(f"shard {k}/{n} is given twice: {seen[k]} and {p.path}")
        seen[k] = p.path
    missing = [k for k in range(1, n + 1) if k not in seen]
    unfinished = [p for p in shards if p.meta.get("status") != "complete"]
    if missing and not allow_partial:
        raise ResultsError(f"shard{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} of {n} "
                           f"missing (given: {', '.join(map(str, sorted(seen)))}); add "
                           f"{'them' if len(missing) > 1 else 'it'}, or pass --allow-partial to merge fewer")
    if unfinished and not allow_partial:
        p = unfinished[0]
        raise ResultsError(f"{p.path}: shard {p.shard[0]}/{n} did not finish (status "
                           f"{p.meta.get('status', 'unknown')}); continue it with `seqbench run --resume -o "
                           f"{p.path}`, or pass --allow-partial")
    return n, missing, sorted(p.shard[0] for p in unfinished)


def _environment_differences(parts: list[Part]) -> dict:
    """Field -> {machine (or file): value} for every field in which the parts' environments differ."""
    by_part = {}
    for p in parts:
        env = p.meta.get("environment") or {}
        fields = ENV_FIELDS.get(env.get("device"), ENV_FIELDS["cpu"])
        values = {f: env.get(f) for f in fields}
        values["machine"] = p.label or p.meta.get("machine") or "unknown"
        by_part[str(p.path)] = values
    diffs = {}
    for f in dict.fromkeys(f for v in by_part.values() for f in v):
        seen = {name: v.get(f) for name, v in by_part.items()}
        if len({json.dumps(x) for x in seen.values()}) > 1:
            diffs[f] = seen
    return diffs


def plan_merge(inputs, *, allow_partial: bool = False, allow_mixed: bool = False) -> tuple[list[Part], MergeSummary]:
    """Read and check the inputs; raise a one-line ResultsError for anything that must not be merged."""
    parts = [_read(a) for a in inputs]
    if len(parts) < 2 and not (parts and parts[0].shard):  # one shard alone: the sweep checks say what is missing
        raise ResultsError("merge needs at least two input CSVs (or the shards of one sweep)")
    _check_schema(parts)
    _check_overlap(parts)
    summary = MergeSummary(rows=0, files=len(parts))
    shards = [p for p in parts if p.shard]
    bare = [p for p in parts if not p.meta]
    if shards and bare:  # its shard number is in the sidecar: without it the file is not "shard k of N"
        raise ResultsError(f"{bare[0].path} has no sidecar ({sidecar_path(bare[0].path).name} is missing), so its shard "
                           "and run are unknown; put the sidecar written with it back beside it")
    if shards:
        summary.shards, summary.missing, summary.incomplete = _check_sweep(shards, allow_partial, allow_mixed)
        diffs = _environment_differences(shards)
        if diffs and not allow_mixed:
            name, seen = next(iter(diffs.items()))
            (a, va), *others = seen.items()
            b, vb = next((k, v) for k, v in others if json.dumps(v) != json.dumps(va))
            raise ResultsError(f"shards measured on different machines: {name} is {va!r} in {a} and {vb!r} in {b}; "
                               "their timings are not one sweep's. Rerun on one kind of machine, or pass "
                               "--allow-mixed to merge them with each row labelled by its machine")
        summary.mixed = diffs
    summary.machines = list(dict.fromkeys(p.machine_of(r) for p in parts for r in dict.fromkeys(p.df["run_id"])))
    return parts, summary


def merge_files(inputs, out: str | Path, *, allow_partial: bool = False, allow_mixed: bool = False,
                extra: dict | None = None, force: bool = False) -> MergeSummary:
    """Write the rows of all inputs to out (CSV + sidecar); returns what was merged.
    Without force, out must not exist when it is written (not only when the merge starts)."""
    out = Path(out)
    paths = [split_label(a)[1] for a in inputs]
    check_not_input([out, sidecar_path(out)], [*paths, *map(sidecar_path, paths)], "-o")
    parts, summary = plan_merge(inputs, allow_partial=allow_partial, allow_mixed=allow_mixed)
    texts = [p.path.read_text().splitlines(keepends=True) for p in parts]
    bodies = [[ln for ln in lines[1:] if ln.strip()] for lines in texts]

    def write(fh):
        fh.write(texts[0][0])
        for body in bodies:
            fh.writelines(body)

    atomic_write(out, write, newline="", replace=force)
    summary.rows = sum(map(len, bodies))
    write_json_atomic(sidecar_path(out), _sidecar(parts, summary, extra or {}))
    return summary


def _sidecar(parts: list[Part], summary: MergeSummary, extra: dict) -> dict:
    meta: dict = {"schema_version": SCHEMA_VERSION,
                  "merged_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "machines": {r: p.machine_of(r) for p in parts for r in dict.fromkeys(p.df["run_id"])}}
    configs = [p.meta.get("config") for p in parts]
    if configs[0] and all(c == configs[0] for c in configs):  # one sweep: the report shows its config
        meta["config"] = configs[0]
        meta["environment"] = parts[0].meta.get("environment") or {}
    if summary.shards:
        meta["shards"] = {"count": summary.shards, "missing": summary.missing, "unfinished": summary.incomplete}
        meta["partial"] = summary.partial
    if summary.mixed:
        meta["mixed_environment"] = summary.mixed
    meta.update(extra)
    meta["merged_from"] = [
        {"path": str(p.path), "rows": len(p.df), "machine": sorted({p.machine_of(r) for r in p.df["run_id"]}),
         "runs": list(dict.fromkeys(p.df["run_id"])), "shard": list(p.shard) if p.shard else None,
         "status": p.meta.get("status"), "host": p.meta.get("host"), "job": p.meta.get("job") or {},
         "metadata": p.meta}
        for p in parts]
    return meta
