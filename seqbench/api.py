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
        **fields: Any):
    """Run a sweep (a TOML config and/or config fields such as kernels=[...], seq_lens=[...]) into `out`
    (CSV + sidecar) and return its rows as a DataFrame. Plugins: plugins=["mylab.bench_kernels"]."""
    import pandas as pd

    from seqbench.results.schema import COLUMNS
    from seqbench.sweep.plan import plan_run
    from seqbench.sweep.runner import execute

    plan = plan_run(config=Path(config) if config else None, flags=fields, out=Path(out) if out else None, force=force,
                    resume=resume, append=append, rounds=rounds, shard=shard, reference=reference, peak=peak,
                    machine=machine)
    rows = execute(plan, command=["seqbench.run", *(f"{k}={v!r}" for k, v in fields.items())], on_row=on_row)
    df = pd.DataFrame([r.as_csv() for r in rows], columns=COLUMNS)
    df.attrs["path"] = str(plan.out)
    return df


def load(paths: str | Path | Sequence[str | Path], baselines: Sequence[str] | None = None):
    """Results CSVs (with their sidecars) as one DataFrame, annotated with each kernel's role."""
    from seqbench.analysis import load as load_annotated

    return load_annotated([paths] if isinstance(paths, (str, Path)) else list(paths), baselines)


def merge(inputs: Sequence[str | Path], out: str | Path, *, allow_partial: bool = False, allow_mixed: bool = False):
    """Join shards of one sweep, or runs of several machines ("a100=a.csv"), into out; see `seqbench merge --help`."""
    from seqbench.results.merge import merge_files

    return merge_files(list(inputs), out, allow_partial=allow_partial, allow_mixed=allow_mixed)


def compare(baseline: str | Path, candidate: str | Path, **options):
    """Verdicts per point between two results CSVs (see `seqbench compare --help` for the options)."""
    from seqbench.analysis.compare import compare_files

    return compare_files(baseline, candidate, **options)


def calibrate(device: str = "auto", dtype: str = "float32", threads: int = 1, min_time: float = 0.5,
              max_memory: int | str = 0):
    """The `calibration` row: this device's dense matmul GFLOP/s for dtype (the 100% of pct_of_peak).
    Refused (exit 2) if the matmul would not fit in max_memory (default: 80% of the free memory)."""
    import torch

    from seqbench.errors import SeqbenchError
    from seqbench.measure.timer import burn_in
    from seqbench.sweep.budget import check_each_fits, estimate_bytes
    from seqbench.sweep.config import resolve_device
    from seqbench.sweep.matmul_peak import calibrate_config
    from seqbench.sweep.runner import measure_calibration, new_run_id
    from seqbench.units import parse_size

    cfg = resolve_device(calibrate_config(device, dtype, threads, min_time))
    point = cfg.points()[0]
    check_each_fits([(estimate_bytes(point), f"the {point.seq_len}x{point.seq_len} {cfg.dtype} matmul")], cfg.device,
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


def ab(config: str | Path, base: str, head: str = ".", *, out: str | Path, runs: int = 4, rounds: int = 3,
       append: bool = False, force: bool = False, on_run: Callable | None = None, allow_mismatch: Sequence[str] = (),
       **compare_options):
    """Time two versions alternately (`seqbench ab`): runs into out/base.csv and out/head.csv, then compare
    them and write out/compare.md, out/compare.json and out/ab.json (the schedule and wall times).

    base, head: a directory (a checkout of your code) or another environment's seqbench executable.
    Returns (analysis.ab.ABResult, analysis.compare.Comparison)."""
    import json

    from seqbench.analysis.ab import earlier_record, resolve_side, run_ab
    from seqbench.analysis.compare import compare_files
    from seqbench.analysis.mismatch import check_comparable
    from seqbench.render.compare_text import to_json_text, to_markdown
    from seqbench.results.reader import read_results
    from seqbench.results.writer import atomic_write
    from seqbench.units import fmt_time

    out = Path(out)
    sides = [resolve_side("base", str(base)), resolve_side("head", str(head))]
    b_csv, h_csv = out / "base.csv", out / "head.csv"

    def check() -> None:  # refuse a mismatched pair after one pass, not after all of them
        check_comparable(b_csv, h_csv, read_results(b_csv), read_results(h_csv), allow=allow_mismatch)

    earlier = earlier_record(out) if append else {}  # ab.json keeps the runs of every --append
    result = run_ab(Path(config), sides, out, runs=runs, rounds=rounds, append=append, force=force, on_run=on_run,
                    after_first_pass=check)
    comp = compare_files(b_csv, h_csv, allow_mismatch=allow_mismatch, **compare_options)
    comp.warnings += result.notes
    atomic_write(out / "compare.md", lambda fh: fh.write(to_markdown(comp, fmt_time)))
    atomic_write(out / "compare.json", lambda fh: fh.write(to_json_text(comp)))
    atomic_write(out / "ab.json", lambda fh: fh.write(json.dumps(result.to_json(earlier), indent=2) + "\n"))
    return result, comp
