"""seqbench from Python: the same pipeline the CLI runs, as functions for notebooks and scripts.

    import seqbench
    df = seqbench.run(kernels=["rnn_loop", "sdpa"], seq_lens=[64, 256], batch_sizes=[8], out="run.csv")
    df = seqbench.load("run.csv")                       # annotated DataFrame (what report and plot read)
    comp = seqbench.compare("base.csv", "head.csv")     # verdicts per point, comp.exit_code
    ab, comp = seqbench.ab("bench.toml", base="../main-checkout", head=".", out="results/ab")
    seqbench.merge(["a100=a.csv", "h100=b.csv"], "both.csv")   # shards, or machines side by side
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence


def run(config: str | Path | None = None, *, out: str | Path | None = None, force: bool = False,
        resume: bool = False, append: bool = False, rounds: int = 1, shard: str | None = None,
        reference: bool = False, peak: bool = True, machine: str | None = None, on_row: Callable | None = None,
        points: str | None = None, **fields: Any):
    """Run a sweep (a TOML config and/or config fields such as kernels=[...], seq_lens=[...]) into `out`
    (CSV + sidecar) and return its rows as a DataFrame. Plugins: plugins=["mylab.bench_kernels"]."""
    import pandas as pd

    from seqbench.results.schema import COLUMNS
    from seqbench.sweep.plan import plan_run
    from seqbench.orchestration.run import execute

    plan = plan_run(config=Path(config) if config else None, flags=fields, out=Path(out) if out else None, force=force,
                    resume=resume, append=append, rounds=rounds, shard=shard, reference=reference, peak=peak,
                    machine=machine, points=points)
    rows = execute(plan, command=["seqbench.run", *(f"{k}={v!r}" for k, v in fields.items())], on_row=on_row)
    df = pd.DataFrame([r.as_csv() for r in rows], columns=COLUMNS)
    df.attrs["path"] = str(plan.out)
    return df


def load(paths: str | Path | Sequence[str | Path], baselines: Sequence[str] | None = None):
    """Results CSVs (with their sidecars) as one DataFrame, annotated with each kernel's role."""
    from seqbench.analysis import load as load_annotated

    return load_annotated([paths] if isinstance(paths, (str, Path)) else list(paths), baselines)


def merge(inputs: Sequence[str | Path], out: str | Path, *, allow_partial: bool = False, allow_mixed: bool = False,
          force: bool = False):
    """Join shards of one sweep, or runs of several machines ("a100=a.csv"), into out; see `seqbench merge --help`.
    An existing out (or its sidecar) is refused (ResultsError, exit 2) unless force=True, as `seqbench merge` does."""
    from seqbench.results.merge import merge_files
    from seqbench.results.writer import check_output

    check_output(out, force=force)
    return merge_files([str(i) for i in inputs], out, allow_partial=allow_partial, allow_mixed=allow_mixed, force=force)


def compare_options(*, threshold: float | str | None = None, alpha: float = 0.01, statistic: str = "min",
                    fail_on: str | Sequence[str] = "regression,failed", allow_missing: bool = False,
                    allow_mismatch: str | Sequence[str] = ()) -> dict:
    """compare's options checked and parsed, as `seqbench compare` and `seqbench ab` take them: threshold a
    fraction or a percentage ("3%"; None: the metric's default, 5% for time, 1% for counts), fail_on and
    allow_mismatch comma-separated or lists. Bad values are ConfigError / CompareError (one line, exit 2)."""
    from seqbench.sweep.config import parse_list
    from seqbench.units import parse_fraction

    def listed(value, name):
        return parse_list(value, str, name) if isinstance(value, str) else [str(v) for v in value]

    return {"threshold": None if threshold is None else parse_fraction(threshold, "--threshold"), "alpha": alpha,
            "statistic": str(statistic), "fail_on": listed(fail_on, "fail_on"), "allow_missing": allow_missing,
            "allow_mismatch": tuple(listed(allow_mismatch, "allow_mismatch"))}


def compare(baseline: str | Path, candidate: str | Path, *, threshold: float | str | None = None,
            alpha: float = 0.01, normalize: str = "none", statistic: str = "min",
            fail_on: str | Sequence[str] = "regression,failed", allow_missing: bool = False,
            allow_mismatch: str | Sequence[str] = ()):
    """Verdicts per point between two results CSVs (`seqbench compare`, with the same defaults; see its
    --help). The metric (time or instructions) is read from the files. Returns analysis.compare.Comparison
    (its .exit_code is the CLI's)."""
    from seqbench.analysis.verdicts import compare_files

    options = compare_options(threshold=threshold, alpha=alpha, statistic=statistic, fail_on=fail_on,
                              allow_missing=allow_missing, allow_mismatch=allow_mismatch)
    return compare_files(baseline, candidate, normalize=str(normalize), **options)


def calibrate(device: str = "auto", dtype: str = "float32", threads: int = 1, min_time: float = 0.5,
              max_memory: int | str = 0):
    """The `calibration` row: this device's dense matmul GFLOP/s for dtype (the 100% of pct_of_peak).
    Refused (exit 2) if the matmul would not fit in max_memory (default: 80% of the free memory)."""
    import torch

    from seqbench.errors import SeqbenchError
    from seqbench.measure.timer import burn_in
    from seqbench.measure.memory import check_each_fits, estimate_bytes
    from seqbench.sweep.config import resolve_device
    from seqbench.sweep.matmul_peak import calibrate_config
    from seqbench.sweep.plan import bounded_threads
    from seqbench.sweep.runner import measure_calibration, new_run_id
    from seqbench.units import parse_size

    cfg = resolve_device(calibrate_config(device, dtype, threads, min_time))
    bounded_threads(cfg.threads, "flags", "--threads")
    point = cfg.points()[0]
    check_each_fits([(estimate_bytes(point.kernel, point.shape, point.mode, point.dtype), f"the {point.seq_len}x{point.seq_len} {cfg.dtype} matmul")], cfg.device,
                    parse_size(max_memory, "--max-memory"), "calibrate")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    burn_in(cfg.device)
    row = measure_calibration(cfg, new_run_id())
    if row.status != "ok":
        raise SeqbenchError(f"calibration failed on {cfg.device} {cfg.dtype}: {row.error}")
    return row


def gradflow(out: str | Path, *, force: bool = False, command: Sequence[str] = (), max_memory: int | str = 0,
             **settings):
    """Gradient norm vs distance for each layer (measure.gradflow), its fitted decay, CSV + JSON + PNG.
    Refused (exit 2) if it would not fit in max_memory (default: 80% of the free memory).

    Returns (list of DecayFit, written paths)."""
    from seqbench.analysis.fits import decay_fits
    from seqbench.measure.gradflow import run_gradflow
    from seqbench.render.plot import plot_gradflow
    from seqbench.results.writer import atomic_write, check_output, refuse_existing, write_json_atomic
    from seqbench.units import parse_size

    out = Path(out)
    check_output(out, force=force)
    png = out.with_suffix(".png")
    refuse_existing(png, force, kind="a chart")
    norms = run_gradflow(**settings, max_memory=parse_size(max_memory, "--max-memory"))
    decay = decay_fits(norms)
    atomic_write(out, lambda fh: norms.to_csv(fh, index=False), newline="", replace=force)
    write_json_atomic(out.with_suffix(".json"), {
        "command": list(command),
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
        "fits": [f.as_dict() for f in decay],
    })
    plot_gradflow(norms, decay, png)
    return decay, [out, out.with_suffix(".json"), png]


def ab(config: str | Path, base: str, head: str = ".", *, out: str | Path, runs: int | str | None = None, rounds: int = 3,
       append: bool = False, force: bool = False, on_run: Callable | None = None, allow_mismatch: str | Sequence[str] = (),
       metric: str | None = None, max_runs: int | None = None, budget_s: float | None = None, runner=None,
       threshold: float | str | None = None, alpha: float = 0.01, statistic: str = "min",
       fail_on: str | Sequence[str] = "regression,failed", allow_missing: bool = False):
    """Time two versions alternately (`seqbench ab`): runs into out/base.csv and out/head.csv, then compare
    them and write out/compare.md, out/compare.json and out/ab.json (the schedule, wall times, load).

    base, head: a directory (a checkout of your code) or another environment's seqbench executable.
    runs: a number of runs a side (None: 4 for time), or "auto" (time only): add runs a pass at a time until
    every point is decided (analysis.sequential), at most max_runs a side (default 12) and within budget_s.
    metric: time, or instructions (each run counted under Callgrind: runs default to 2 a side, one round each;
    docs/instructions.md); None: the config's `metric` field, else time.
    threshold, alpha, statistic, fail_on, allow_missing, allow_mismatch: as compare() (`seqbench compare`).
    Returns (orchestration.ab.ABResult, analysis.compare.Comparison)."""
    import json

    from seqbench.orchestration.ab import earlier_record, own_folder, resolve_side, run_ab, run_ab_auto
    from seqbench.analysis.autostop import AutoJudge, loaded_runs
    from seqbench.analysis.verdicts import TIME_THRESHOLD, compare_files
    from seqbench.analysis.mismatch import check_comparable
    from seqbench.analysis.sequential import DEFAULT_MAX_RUNS
    from seqbench.errors import ABError
    from seqbench.render.compare_text import to_json_text, to_markdown
    from seqbench.results.reader import read_results
    from seqbench.results.writer import atomic_write
    from seqbench.units import fmt_time

    opts = compare_options(threshold=threshold, alpha=alpha, statistic=statistic, fail_on=fail_on,
                           allow_missing=allow_missing, allow_mismatch=allow_mismatch)
    allow_mismatch = opts.pop("allow_mismatch")
    out = Path(out)
    sides = [resolve_side("base", str(base)), resolve_side("head", str(head))]
    b_csv, h_csv = out / "base.csv", out / "head.csv"
    accepted: list[str] = []

    def check() -> None:  # refuse a mismatched pair after one pass, not after all of them
        accepted[:] = check_comparable(b_csv, h_csv, read_results(b_csv), read_results(h_csv), allow=allow_mismatch)

    if metric is None:
        from seqbench.sweep.config import load_toml

        metric = str(load_toml(config).get("metric", "time"))
    if metric == "instructions":  # a count needs no rounds, and 2 runs a side show its spread
        runs, rounds = (2 if runs is None else runs), 1
    with own_folder(out):  # from the first deletion to the last file: one ab per folder
        earlier = earlier_record(out) if append else {}  # ab.json keeps the runs of every --append
        kw = dict(append=append, force=force, on_run=on_run, after_first_pass=check, runner=runner)
        if runs == "auto":
            if metric == "instructions":
                raise ABError("--runs auto is for time; instruction counts are decided by 2 runs a side (the default)")
            if opts.get("threshold") is None:
                opts["threshold"] = TIME_THRESHOLD
            max_runs = DEFAULT_MAX_RUNS if max_runs is None else max_runs
            judge = AutoJudge(b_csv, h_csv, max_runs=max_runs, **opts)
            result = run_ab_auto(Path(config), sides, out, max_runs=max_runs, rounds=rounds,
                                 decide=judge, budget_s=budget_s, **kw)
            comp = judge.comparison()
            comp.warnings[:0] = accepted
            result.sequential = comp.sequential
        elif max_runs is not None or budget_s is not None:
            raise ABError("--max-runs and --budget go with --runs auto (a fixed --runs N takes N runs a side)")
        else:
            result = run_ab(Path(config), sides, out, runs=4 if runs is None else int(runs), rounds=rounds, metric=metric, **kw)
            if metric != "instructions":  # a count does not depend on the machine's load
                opts["loaded"] = loaded_runs(result, {"base": read_results(b_csv), "head": read_results(h_csv)})
            comp = compare_files(b_csv, h_csv, allow_mismatch=allow_mismatch, **opts)
        comp.warnings += result.notes + load_notes(result)
        atomic_write(out / "compare.md", lambda fh: fh.write(to_markdown(comp, fmt_time)))
        atomic_write(out / "compare.json", lambda fh: fh.write(to_json_text(comp)))
        atomic_write(out / "ab.json", lambda fh: fh.write(json.dumps(result.to_json(earlier), indent=2) + "\n"))
    return result, comp


def load_notes(result) -> list[str]:
    """One line when the sides' runs met different loads: a mismatch, not evidence of a change."""
    per = {s.name: [r for r in result.runs if r.side == s.name] for s in result.sides}
    loaded = {n: sum(bool(r.loaded) for r in rs) for n, rs in per.items()}
    if not any(loaded.values()):
        return []
    text = ", ".join(f"{n} {loaded[n]} of {len(per[n])}" for n in per)
    first = next(r.loaded for r in result.runs if r.loaded)
    return [f"runs measured under load ({text}; e.g. {first}): runs are compared only with runs measured "
            "alike (per point, below)"]
