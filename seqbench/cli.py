"""The seqbench command line. Commands parse their flags and delegate to the core; every rule about
what may be combined lives in the core (sweep.plan), every message in render.console."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

try:  # typer >= 0.20 vendors click; its usage errors derive from TyperException
    from typer.exceptions import TyperException as UsageBase
except ImportError:  # older typer raises click's own exceptions
    from click import ClickException as UsageBase

from seqbench.choices import Cluster, Device, DType, ImageFormat, Metric, Normalize, Statistic, TextFormat, allowed
from seqbench.errors import ExitCode, SeqbenchError
from seqbench.version import __version__

app = typer.Typer(
    help="Measure how recurrence (sequential over time) and attention (parallel over time) scale "
    "with sequence length and batch size, on CPU or CUDA.\n\n"
    "Example: seqbench run benchmarks/configs/quick.toml",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    rich_markup_mode=None,  # click's own help: wraps at the terminal's width, never cuts an option's name
    pretty_exceptions_enable=False,
)


_INVOCATION: list[str] = sys.argv[1:]  # the arguments main() was called with, for the JSON sidecar
_INTERRUPT_HINT: list[str] = []  # what to do after an interrupt (`run` says how to resume), for main's one line
_CHILD_REPORTED: list[bool] = []  # the exit code is a child seqbench's, which printed its own line


def _version(value: bool) -> None:
    if value:
        print(f"seqbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    pass


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors and the output path.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Print every point as it finishes.")]
Plugins = Annotated[Optional[list[str]], typer.Option(
    "--plugin", metavar="<module|file.py>", help="A module (mylab.bench_kernels) or .py file that registers kernels; repeatable.")]
Baselines = Annotated[Optional[list[str]], typer.Option(
    "--baseline", help="Reference kernel for speed-ups and crossover T* (repeatable; default: the run's config, "
    "else the kernels registered as baselines).")]
KernelPicks = Annotated[Optional[str], typer.Option(
    "--kernels", help="Only these kernels: names or globs, comma-separated (hf_*,sdpa).")]
RecurrenceSide = Annotated[Optional[str], typer.Option(
    "--recurrence", help="The kernels that form the 'best recurrence' side (names or globs, comma-separated); "
    "default: every recurrent and scan kernel.")]
AttentionSide = Annotated[Optional[str], typer.Option(
    "--attention", help="The kernels that form the 'best attention' side (names or globs, comma-separated); "
    "default: every kernel registered quadratic.")]
ImageFormats = Annotated[str, typer.Option("--image-format", "-f", help=f"Comma-separated: {allowed(ImageFormat)}.")]


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(str(arg))


def _load_plugins(plugins: list[str] | None) -> None:
    from seqbench.kernels import load_plugins

    load_plugins(plugins, origin="flag")


@app.command()
def run(
    config: Annotated[Optional[Path], typer.Argument(help="Sweep config (TOML). Flags below override its fields.")] = None,
    kernels: Annotated[Optional[str], typer.Option(help="Comma-separated kernel names or globs (rnn_*,sdpa; see `seqbench list`).")] = None,
    seq_lens: Annotated[Optional[str], typer.Option(help="Comma-separated sequence lengths T, e.g. 64,256,1024.")] = None,
    batch_sizes: Annotated[Optional[str], typer.Option(help="Comma-separated batch sizes B, e.g. 1,8,32.")] = None,
    hidden_size: Annotated[Optional[int], typer.Option(help="Model width d.")] = None,
    heads: Annotated[Optional[int], typer.Option(help="Attention heads (must divide d).")] = None,
    mode: Annotated[Optional[str], typer.Option(help="forward, train, decode, or several comma-separated (decode: one "
                                                "token after a context of T tokens).")] = None,
    dtype: Annotated[Optional[DType], typer.Option(help="Floating-point type of weights and inputs.")] = None,
    device: Annotated[Optional[Device], typer.Option(help="auto: CUDA if present.")] = None,
    causal: Annotated[Optional[bool], typer.Option("--causal/--no-causal", help="Causal attention mask.")] = None,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads for torch (default 1; 0: torch's default, a thread per core; at most the cores this process may use, SEQBENCH_MAX_THREADS=N allows more). See the README's \"Threads\" before raising it.")] = None,
    min_time: Annotated[Optional[float], typer.Option(help="Seconds of timed samples per point.")] = None,
    max_memory: Annotated[Optional[str], typer.Option(help="Skip points whose estimated peak memory exceeds this, e.g. 8GiB (0 or unset: 80% of the memory free at the start).")] = None,
    max_time_per_point: Annotated[Optional[float], typer.Option(help="Seconds one call may take; a slower point is recorded as timeout and larger T for its kernel and B are skipped (0: no limit).")] = None,
    cuda_graph: Annotated[Optional[bool], typer.Option("--cuda-graph/--no-cuda-graph", help="CUDA only: capture each timed call "
                                                       "(forward, decode step) in a CUDA graph and time its replays; capture cost in capture_s.")] = None,
    capacity: Annotated[Optional[bool], typer.Option("--capacity/--no-capacity", help="Decode: also find the largest batch whose "
                                                     "weights + state + one step fit the memory budget (--max-memory) at each T, and its tokens/s.")] = None,
    plugin: Plugins = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output CSV (JSON sidecar beside it). Default: results/<name>-<device>-<time>.csv")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the interrupted run in --out: keep its rows, measure the missing points. Uses the config (and plugins) recorded in its JSON sidecar; a config file or flag that disagrees with it is refused.")] = False,
    peak: Annotated[bool, typer.Option("--peak/--no-peak", help="Measure the matmul peak first (a `calibration` row, ~1 s) and fill pct_of_peak.")] = True,
    rounds: Annotated[int, typer.Option(help="Take each point's samples in R rounds spread across the sweep "
                                        "(round 1 of every point, then round 2, ...); rows are written when a point's last round ends.")] = 1,
    shard: Annotated[Optional[str], typer.Option(help="Run shard K/N: whole curves (kernel, mode, B over T) balanced by estimated cost; join shards with `seqbench merge`.")] = None,
    points: Annotated[Optional[str], typer.Option("--points", help="Measure only these points of the sweep: KERNEL:T[:B[:MODE]], comma-separated (a field left out matches every value), e.g. sdpa:128,rnn_loop:64:4. `ab --runs auto` re-measures only its open points this way.")] = None,
    machine: Annotated[Optional[str], typer.Option(help="Label of this machine in the sidecar, for merges and reports of several machines (default: the GPU's or CPU's name).")] = None,
    metric: Annotated[Optional[Metric], typer.Option(help="time: seconds per call. instructions: instructions per "
                                                     "call, counted by Valgrind's Callgrind (Linux x86-64, CPU, one thread; "
                                                     "the whole sweep in one Valgrind process): deterministic enough for a CI "
                                                     "gate on a shared runner, but blind to memory-bound effects, caches, "
                                                     "threads and CUDA (docs/instructions.md).")] = None,
    append: Annotated[bool, typer.Option("--append", help="Append rows to --out if it exists (same seqbench version), e.g. interleaved A/B rounds.")] = False,
    reference: Annotated[bool, typer.Option("--reference", help="Time a fixed reference matmul before every point's round "
                                            "(column ref_s), for `seqbench compare --normalize reference`.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Run a sweep and write a tidy CSV + JSON sidecar.

    Examples:\n
      seqbench run benchmarks/configs/quick.toml\n
      seqbench run --kernels rnn_loop,sdpa --seq-lens 64,256,1024 --batch-sizes 8\n
      seqbench run benchmarks/configs/quick.toml --plugin mylab.bench_kernels --kernels my_glr,sdpa\n
      seqbench run benchmarks/configs/full.toml --device cuda --dtype bfloat16 -o results/gpu.csv\n
      seqbench run benchmarks/configs/decode.toml   (decode: one token after contexts of 64..16384 tokens)\n
      seqbench run --mode decode --kernels rnn_fused,sdpa --seq-lens 64,1024,16384 --batch-sizes 1,16 --capacity --max-memory 1GiB\n
      seqbench run benchmarks/configs/decode.toml --device cuda --max-memory 0 --cuda-graph\n
      seqbench run benchmarks/configs/full.toml --max-memory 8GiB --max-time-per-point 30 -o results/full.csv\n
      seqbench run --resume -o results/full.csv   (after Ctrl-C: continue where it stopped)\n
      seqbench run benchmarks/configs/ci.toml --rounds 5 -o base.csv\n
      seqbench run benchmarks/configs/ci.toml --append -o head.csv   (one more run into head.csv)\n
      seqbench run benchmarks/configs/full.toml --shard 2/4 -o part2.csv

      seqbench run benchmarks/configs/ci.toml --metric instructions -o counts.csv   (needs Valgrind; docs/instructions.md)
    """
    from seqbench.render import console
    from seqbench.sweep.config import parse_list
    from seqbench.sweep.plan import plan_run
    from seqbench.orchestration.run import execute
    from seqbench.orchestration.signals import ignore_interrupts
    from seqbench.sweep.shards import estimate_seconds
    from seqbench.orchestration import valgrind

    console.set_verbosity(quiet, verbose)
    flags = {
        "kernels": parse_list(kernels, str, "kernels") if kernels is not None else None,
        "seq_lens": parse_list(seq_lens, int, "seq_lens") if seq_lens is not None else None,
        "batch_sizes": parse_list(batch_sizes, int, "batch_sizes") if batch_sizes is not None else None,
        "modes": parse_list(mode, str, "mode") if mode is not None else None,
        "hidden_size": hidden_size, "num_heads": heads, "causal": causal, "threads": threads, "min_time": min_time,
        "dtype": dtype.value if dtype else None, "device": device.value if device else None,
        "max_memory": max_memory, "max_time_per_point": max_time_per_point, "plugins": plugin or None,
        "cuda_graph": cuda_graph, "capacity": capacity, "metric": metric.value if metric else None,
    }
    plan = plan_run(config=config, flags=flags, out=out, force=force, resume=resume, append=append, rounds=rounds,
                    shard=shard, reference=reference, peak=peak, machine=machine, points=points)
    for note in plan.notes:
        console.info(note)
    if plan.cfg.metric == Metric.INSTRUCTIONS and not valgrind.inside():
        if plan.resume is not None:
            plan.resume.output.release()  # the run under Valgrind resumes it
        console.info("counting instructions under Valgrind (one process for the sweep; ~20 s to start)")
        _CHILD_REPORTED[:] = [True]  # it prints its own messages, an interrupt's included
        raise typer.Exit(valgrind.run_under_valgrind(_INVOCATION))
    if plan.cfg.device != "cpu" or device == Device.AUTO:
        console.info(f"device: {plan.cfg.device}")
    with console.sweep_progress(len(plan.points), f"{plan.cfg.name} ({plan.cfg.device}, {plan.cfg.dtype})") as on_row:
        try:
            estimate = estimate_seconds(plan.points, plan.cfg.min_time, plan.rounds)
            rows = execute(plan, command=["seqbench", *_INVOCATION], on_row=on_row,
                           on_start=lambda: console.run_estimate(len(plan.points), plan.rounds, estimate))
        except KeyboardInterrupt:
            ignore_interrupts()  # cleanup from here on: a second Ctrl-C must not cut it short
            _INTERRUPT_HINT[:] = [f"the finished points are in {plan.out}; continue with: "
                                  f"seqbench run --resume -o {plan.out}"]
            raise
    from seqbench.results.reader import read_metadata

    console.run_summary(rows, plan.out, read_metadata(plan.out))


Threshold = Annotated[Optional[str], typer.Option(help="Smallest change called a regression or improvement: fraction or "
                                                  "percentage (default: 5% for time, 1% for instruction counts).")]
Alpha = Annotated[float, typer.Option(help="False-discovery rate across the points (Benjamini-Hochberg over t-tests "
                                      "between runs); CIs at level 1-alpha.")]
Stat = Annotated[Statistic, typer.Option(help="Each round's samples reduced to this (min resists time-slicing by "
                                         "other processes); each run is then its fastest round.")]
FailOnOpt = Annotated[str, typer.Option("--fail-on", help="Exit 1 on these, comma-separated: regression, failed "
                                        "(also points missing from the candidate), inconclusive.")]
AllowMissing = Annotated[bool, typer.Option("--allow-missing", help="Points only in the baseline are listed, "
                                            "not counted as failed.")]
AllowMismatch = Annotated[str, typer.Option("--allow-mismatch", help="Compare anyway when the sides differ in these "
                                            "(comma-separated): threads, device, torch, kernels (seqbench's own kernel code).")]
Fmt = Annotated[TextFormat, typer.Option("--format", help="How to print the verdicts.")]


@app.command()
def compare(
    baseline: Annotated[Path, typer.Argument(help="Results CSV of the baseline (e.g. the base commit).")],
    candidate: Annotated[Path, typer.Argument(help="Results CSV of the candidate (e.g. the pull request's head).")],
    threshold: Threshold = None,
    alpha: Alpha = 0.01,
    normalize: Annotated[Normalize, typer.Option(help="reference: divide each round by the reference matmul timed "
                                                 "before it (both sides run with `seqbench run --reference`); "
                                                 "measured no better than none, the default.")] = Normalize.NONE,
    statistic: Stat = Statistic.MIN,
    fail_on: FailOnOpt = "regression,failed",
    allow_missing: AllowMissing = False,
    allow_mismatch: AllowMismatch = "",
    fmt: Fmt = TextFormat.TABLE,
) -> None:
    """Compare two result CSVs point by point; exit 1 on what --fail-on names (default: a regression or a failure).

    The evidence is the run (process): give each file several runs (`seqbench ab`, or `seqbench run --append`).

    Each run counts as its fastest round; the runs are compared by a t-test; Benjamini-Hochberg keeps false alarms rare across points.

    Verdicts: regression, improvement, unchanged, inconclusive (with the smallest change it could have caught), failed.

    Files measured with other threads, device, torch or kernel code are refused unless --allow-mismatch names it.

    Instruction counts (`run --metric instructions`): a change of at least --threshold (default 1%) whose whole range over the runs lies beyond it; counts do not see memory-bound effects, caches, threads or CUDA (docs/instructions.md).

    Exit codes: 0 nothing --fail-on names, 1 something it names, 2 bad input.

    Examples:\n
      seqbench compare base.csv head.csv\n
      seqbench compare base.csv head.csv --format markdown >> $GITHUB_STEP_SUMMARY\n
      seqbench compare base.csv head.csv --threshold 3% --fail-on regression,failed,inconclusive\n
      seqbench compare old-torch.csv new-torch.csv --allow-mismatch torch --format json > verdicts.json
    """
    from seqbench import api
    from seqbench.render import console

    comp = api.compare(baseline, candidate, threshold=threshold, alpha=alpha, normalize=normalize.value,
                       statistic=statistic.value, fail_on=fail_on, allow_missing=allow_missing,
                       allow_mismatch=allow_mismatch)
    console.comparison(comp, fmt.value)
    raise typer.Exit(comp.exit_code)


@app.command()
def ab(
    config: Annotated[Path, typer.Argument(help="Sweep config (TOML) both sides run; its plugins load from each side.")],
    base: Annotated[str, typer.Option(help="The baseline: a directory (checkout of your code) or the seqbench "
                                      "executable of another environment.")],
    head: Annotated[str, typer.Option(help="The candidate, likewise.")] = ".",
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for base.csv, head.csv (+ sidecars), compare.md, "
                                      "compare.json and ab.json.")] = Path("results/ab"),
    runs: Annotated[Optional[str], typer.Option(metavar="N|auto", help="Runs (processes) per side, alternated ABBA (a verdict needs >= 2; default 4 for time, 2 for instructions), or "
                                       "auto: add a run a side at a time until every point is decided (docs/ci.md).")] = None,
    max_runs: Annotated[Optional[int], typer.Option(metavar="N", help="--runs auto: at most this many runs a side (default 12).")] = None,
    budget: Annotated[Optional[str], typer.Option(metavar="DURATION", help="--runs auto: stop adding runs before this wall time, e.g. 5m "
                                                  "or 300s; open points are then inconclusive.")] = None,
    rounds: Annotated[int, typer.Option(help="Rounds per run (`seqbench run --rounds`; time only).")] = 3,
    metric: Annotated[Optional[Metric], typer.Option(help="time, or instructions: each run counts instructions per call "
                                                     "under Valgrind (`seqbench run --metric instructions`): the gate for "
                                                     "a shared runner, blind to memory-bound effects, caches, threads and "
                                                     "CUDA (docs/instructions.md). Default: the config's `metric`, else time.")] = None,
    append: Annotated[bool, typer.Option("--append", help="Add runs to the files already in --out, then compare them all.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace the files already in --out.")] = False,
    threshold: Threshold = None,
    alpha: Alpha = 0.01,
    statistic: Stat = Statistic.MIN,
    fail_on: FailOnOpt = "regression,failed",
    allow_missing: AllowMissing = False,
    allow_mismatch: AllowMismatch = "",
    fmt: Fmt = TextFormat.TABLE,
    quiet: Quiet = False,
) -> None:
    """Time a baseline and a candidate alternately on this machine, then compare them (exit as compare).

    Each side runs `seqbench run CONFIG --rounds R --append` RUNS times, each run its own process, ABBA order.

    A directory side (a checkout) is first on its runs' import path, so the config's plugins load from it.

    An executable side (another environment's seqbench) tests a torch or seqbench upgrade.

    OUT gets base.csv, head.csv (+ sidecars), compare.md, compare.json and ab.json (schedule, wall times).

    Examples:\n
      seqbench ab bench.toml --base ../main-checkout --head . -o results/ab\n
      seqbench ab benchmarks/configs/ci.toml --base ../base/.venv/bin/seqbench --head .venv/bin/seqbench --allow-mismatch kernels\n
      seqbench ab bench.toml --base ../main-checkout -o results/ab --append --runs 4   (4 more runs a side)\n
      seqbench ab bench.toml --base ../main-checkout --fail-on regression,failed,inconclusive --format markdown\n
      seqbench ab bench.toml --base ../main-checkout --runs auto --max-runs 12 --budget 5m   (until decided)
      seqbench ab benchmarks/configs/ci.toml --base ../main-checkout --metric instructions   (Valgrind; 2 runs a side)
    """
    from seqbench.api import ab as run_ab
    from seqbench.render import console

    console.set_verbosity(quiet)
    from seqbench.errors import ABError
    from seqbench.units import parse_duration

    if runs is None:
        runs_n: int | str | None = None
    elif runs.strip().lower() == "auto":
        runs_n = "auto"
    elif runs.strip().isdigit():
        runs_n = int(runs)
    else:
        raise ABError(f"--runs {runs!r}: allowed a number of runs a side (1 to 100) or auto")
    budget_s = parse_duration(budget, "--budget") if budget is not None else None
    again = [a for a in _INVOCATION if a not in ("--force", "--append")]
    _INTERRUPT_HINT[:] = [f"the runs that finished are in {out}; add runs to them with: seqbench "
                          f"{' '.join(map(_quote, again))} --append"]
    _, comp = run_ab(config, base, head, out=out, runs=runs_n, rounds=rounds, append=append, force=force,
                     on_run=console.ab_progress, metric=metric.value if metric else None, max_runs=max_runs,
                     budget_s=budget_s, threshold=threshold, alpha=alpha, statistic=statistic.value, fail_on=fail_on,
                     allow_missing=allow_missing, allow_mismatch=allow_mismatch)
    _INTERRUPT_HINT.clear()
    console.comparison(comp, fmt.value)
    console.info(f"wrote {out}/base.csv, head.csv, compare.md, compare.json, ab.json")
    raise typer.Exit(comp.exit_code)


@app.command()
def merge(
    inputs: Annotated[list[str], typer.Argument(help="Result CSVs to join: the shards of one sweep, or runs of several "
                                                "machines; LABEL=PATH names the machine of a file's rows.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Merged CSV (JSON sidecar beside it).")],
    allow_partial: Annotated[bool, typer.Option("--allow-partial", help="Merge fewer than all N shards (or unfinished ones); the sidecar records which are missing.")] = False,
    allow_mixed: Annotated[bool, typer.Option("--allow-mixed", help="Merge shards measured on different machines, or with different seqbench commits or kernel code; each row keeps its machine's label.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
) -> None:
    """Join result CSVs into one: the shards of one sweep, or runs of several machines.

    Shards must be all N of one sweep (same config, seqbench version, schema) from one kind of
    machine; each keeps its own calibration row and pct_of_peak. Runs of different machines keep
    their machine labels: report and plot show them side by side.

    Examples:\n
      seqbench merge results/big.shards/shard-*-of-4.csv -o results/big.csv\n
      seqbench merge sh1.csv sh2.csv -o partial.csv --allow-partial\n
      seqbench merge a100=runs/a100.csv h100=runs/h100.csv -o runs/both.csv\n
      seqbench report runs/both.csv -o runs/both.md
    """
    from seqbench import api
    from seqbench.render import console

    console.set_verbosity()  # not left quiet by an earlier in-process command (`run -q`)
    summary = api.merge(inputs, out, allow_partial=allow_partial, allow_mixed=allow_mixed, force=force)
    console.merge_summary(summary, out)


@app.command()
def launch(
    config: Annotated[Path, typer.Argument(help="Sweep config (TOML).")],
    shards: Annotated[int, typer.Option("--shards", "-n", help="Number of shards (jobs).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Merged CSV (JSON sidecar beside it).")],
    folder: Annotated[Optional[Path], typer.Option("--dir", help="Folder for the shards, job logs and launch.json. Default: OUT with .shards instead of .csv.")] = None,
    cluster: Annotated[Cluster, typer.Option(help="submitit executor: slurm (a job array), local (subprocesses here), auto (slurm if present).")] = Cluster.AUTO,
    parallel: Annotated[Optional[int], typer.Option(help="Shards at once (default: 1 on local, where shards would share the cores; all on slurm).")] = None,
    timeout_min: Annotated[Optional[float], typer.Option(help="Minutes a shard's job may run (default: no limit on local, 240 on slurm).")] = None,
    partition: Annotated[Optional[str], typer.Option(help="Slurm partition.")] = None,
    gpus_per_node: Annotated[Optional[int], typer.Option(help="Slurm: GPUs per job.")] = None,
    cpus_per_task: Annotated[Optional[int], typer.Option(help="Slurm: CPUs per job.")] = None,
    machine: Annotated[Optional[str], typer.Option(help="Label of the machines in the sidecars (default: the GPU's or CPU's name).")] = None,
    peak: Annotated[bool, typer.Option("--peak/--no-peak", help="Each shard measures its machine's matmul peak first.")] = True,
    rounds: Annotated[int, typer.Option(help="Rounds per shard (see `seqbench run --rounds`).")] = 1,
    plugin: Plugins = None,
    allow_partial: Annotated[bool, typer.Option("--allow-partial", help="Merge the shards that finished even if some failed.")] = False,
    allow_mixed: Annotated[bool, typer.Option("--allow-mixed", help="Merge shards that ran on different kinds of machine.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out; clear a --dir that holds another sweep's launch.")] = False,
    quiet: Quiet = False,
) -> None:
    """Run a sweep as N shards through submitit (Slurm job array or local subprocesses), wait, merge.

    Launching again with the same config and N keeps the finished shards, resumes or reruns the
    others (so a failed shard is rerun alone), then merges. Needs submitit (seqbench's `launch` extra).
    Exit codes: 0 merged, 2 bad input, 4 some shards failed (listed with their logs).

    Examples:\n
      seqbench launch benchmarks/configs/full.toml --shards 8 --cluster slurm --partition gpu --gpus-per-node 1 -o results/full.csv\n
      seqbench launch benchmarks/configs/quick.toml --shards 2 --cluster local -o results/quick.csv\n
      seqbench launch benchmarks/configs/quick.toml --shards 2 --cluster local -o results/quick.csv   (again: reruns failed shards only)
    """
    from seqbench.render import console
    from seqbench.orchestration.launch import LaunchSpec, ShardsFailed, launch as launch_sweep

    console.set_verbosity(quiet)
    spec = LaunchSpec(config, shards, out, folder=folder, cluster=cluster.value, flags={"plugins": plugin or None},
                      peak=peak, rounds=rounds, machine=machine, parallel=parallel, timeout_min=timeout_min,
                      slurm={"partition": partition, "gpus_per_node": gpus_per_node, "cpus_per_task": cpus_per_task},
                      force=force, allow_partial=allow_partial, allow_mixed=allow_mixed)
    _INTERRUPT_HINT[:] = ["finished shards are kept; run the same command again to resume or rerun the others: "
                          f"seqbench {' '.join(map(_quote, _INVOCATION))}"]
    result = launch_sweep(spec, on_event=console.launch_event)
    _INTERRUPT_HINT.clear()
    console.launch_summary(result, ["seqbench", *_INVOCATION])
    if result.failed:
        raise ShardsFailed(f"{len(result.failed)} of {shards} shards failed; launch the same command again to rerun "
                           "only them")


def _picks(kernels: str | None, recurrence: str | None, attention: str | None) -> dict:
    """report/plot's --kernels, --recurrence and --attention as analysis.load takes them."""
    def split(text):
        return [p.strip() for p in text.split(",") if p.strip()] if text else None

    return {"kernels": split(kernels), "sides": {"recurrence": split(recurrence), "attention": split(attention)}}


@app.command()
def plot(
    results: Annotated[list[str], typer.Argument(help="One or more results CSVs; several overlay with the file name (or, "
                                                 "for several machines, the machine) in the legend. LABEL=PATH names a file's machine.")],
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", "-d", help="Folder for the charts (created if missing). Default: NAME-charts/ beside the first CSV (NAME.csv).")] = None,
    image_format: ImageFormats = "png",
    batch: Annotated[Optional[str], typer.Option(help="Only these batch sizes in the per-B charts, e.g. 8 or 1,8.")] = None,
    baseline: Baselines = None,
    kernels: KernelPicks = None,
    recurrence: RecurrenceSide = None,
    attention: AttentionSide = None,
    plugin: Plugins = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite charts already in --out-dir.")] = False,
    quiet: Quiet = False,
) -> None:
    """Draw the scaling charts (latency, throughput, speedup, GFLOP/s, memory vs T and B).

    Files are named CHART-MODE.FORMAT, e.g. latency_vs_T-forward.png, in a folder of this input's own
    (a report's charts are in another: neither changes what the other shows).

    Examples:\n
      seqbench plot results/cpu/examples-cpu.csv --out-dir results/cpu/charts --image-format png,svg\n
      seqbench plot cpu.csv cuda.csv --out-dir charts/compare --batch 8\n
      seqbench plot mine.csv --baseline my_glr\n
      seqbench plot a100=runs/a100.csv h100=runs/h100.csv --out-dir runs/charts
    """
    from seqbench.render import console
    from seqbench.render import plot as plot_mod
    from seqbench.results.reader import split_label
    from seqbench.sweep.config import parse_list

    console.set_verbosity(quiet)
    _load_plugins(plugin)
    formats = plot_mod.parse_formats(image_format)
    batch_sizes = parse_list(batch, int, "batch") if batch is not None else None
    out_dir = out_dir or plot_mod.default_plot_dir(split_label(results[0])[1])
    written = plot_mod.plot_files(results, out_dir, formats, batch_sizes=batch_sizes, force=force, baselines=baseline,
                                  **_picks(kernels, recurrence, attention))
    console.info(f"wrote {len(written)} chart files to {out_dir}")
    for p in written:
        console.detail(str(p))


@app.command()
def report(
    results: Annotated[list[str], typer.Argument(help="One or more results CSVs (their JSON sidecars give the environment); "
                                                 "several machines are reported side by side. LABEL=PATH names a file's machine.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Markdown file. Default: the (first) CSV's name with .md.")] = None,
    charts_dir: Annotated[Optional[Path], typer.Option(help="Where the embedded charts go (a folder of this report's own). Default: NAME-report-charts/ beside the report (NAME.md).")] = None,
    charts: Annotated[bool, typer.Option("--charts/--no-charts", help="Render and embed the charts.")] = True,
    image_format: ImageFormats = "png",
    baseline: Baselines = None,
    kernels: KernelPicks = None,
    recurrence: RecurrenceSide = None,
    attention: AttentionSide = None,
    plugin: Plugins = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the report and its charts.")] = False,
    as_html: Annotated[bool, typer.Option("--html", help="One self-contained HTML page instead, its scaling charts "
                                          "interactive (kernels toggled in the legend). Default -o: the CSV's name with .html.")] = False,
    quiet: Quiet = False,
) -> None:
    """Write a Markdown report (or, with --html, an HTML page): environment, tables per batch size, scaling exponents, crossover T*, failures, charts.

    Examples:\n
      seqbench report results/cpu/examples-cpu.csv -o results/cpu/report.md\n
      seqbench report run.csv -o run.md --no-charts\n
      seqbench report run.csv --html -o run.html   (interactive charts, one file)\n
      seqbench report mine.csv --baseline my_glr --plugin mylab.bench_kernels\n
      seqbench report a100=runs/a100.csv h100=runs/h100.csv -o runs/machines.md
    """
    from seqbench.render import console
    from seqbench.render import plot as plot_mod
    from seqbench.render import report as report_mod
    from seqbench.results.reader import split_label

    console.set_verbosity(quiet)
    _load_plugins(plugin)
    if as_html:
        from seqbench.render.report_html import write_html_report

        path = write_html_report(results, out or split_label(results[0])[1].with_suffix(".html"), force=force,
                                 baselines=baseline)
        console.info(f"wrote {path}")
        return
    formats = plot_mod.parse_formats(image_format)
    out = out or split_label(results[0])[1].with_suffix(".md")
    cdir = (charts_dir or plot_mod.default_report_charts_dir(out)) if charts else None
    path, written = report_mod.write_report(results, out, charts_dir=cdir, formats=formats, force=force,
                                            baselines=baseline, **_picks(kernels, recurrence, attention))
    console.info(f"wrote {path}" + (f" and {len(written)} chart files in {cdir}" if written else ""))


@app.command("list")
def list_kernels(
    plugin: Plugins = None,
    fmt: Annotated[TextFormat, typer.Option("--format", help="table (in a pipe: one whole line per kernel), markdown "
                                            "or json.")] = TextFormat.TABLE,
) -> None:
    """List the kernels: family, forward FLOP formula, causality, role in the analysis, origin.

    Examples:\n
      seqbench list\n
      seqbench list --plugin mylab.bench_kernels --format json\n
      seqbench list --format markdown >> docs/kernels.md
    """
    from seqbench.kernels import kernels
    from seqbench.render import console

    _load_plugins(plugin)
    console.kernel_table(kernels().values(), fmt.value)


@app.command()
def env(
    device: Annotated[Device, typer.Option(help="Which device's details to include.")] = Device.AUTO,
    threads: Annotated[int, typer.Option(help="torch threads to show, as `run --threads` sets them (default 1, "
                                         "what runs use; 0: torch's default, a thread per core).")] = 1,
    fmt: Annotated[TextFormat, typer.Option("--format", help="table or json.")] = TextFormat.TABLE,
) -> None:
    """Print the environment recorded in every run's JSON sidecar.

    Examples:\n
      seqbench env --device cpu\n
      seqbench env --format json > env.json
    """
    import torch

    from seqbench.measure import env as env_mod
    from seqbench.render import console

    if threads < 0:
        raise SeqbenchError(f"--threads must be 0 (torch's default) or a positive count, got {threads}")
    if threads:
        torch.set_num_threads(threads)  # as a run does (sweep.runner.apply_threads): env shows what runs use
    name = device.value
    if device == Device.AUTO:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    console.mapping_table("environment", env_mod.capture(name), fmt.value)


@app.command()
def calibrate(
    device: Annotated[Device, typer.Option(help="auto: CUDA if present.")] = Device.AUTO,
    dtype: Annotated[DType, typer.Option(help="Floating-point type of the matmul.")] = DType.FLOAT32,
    threads: Annotated[int, typer.Option(help="CPU threads for torch (default 1; 0: torch's default; at most the cores this process may use).")] = 1,
    min_time: Annotated[float, typer.Option(help="Seconds of timed samples.")] = 0.5,
    max_memory: Annotated[str, typer.Option(help="Refuse to run if the matmul needs more than this, e.g. 8GiB (0: 80% of the free memory).")] = "0",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the GFLOP/s figure.")] = False,
) -> None:
    """Measure the device's dense matmul GFLOP/s for a dtype (the `calibration` kernel: N = 1024 on CPU, 8192 on CUDA).

    This is the "peak" that `pct_of_peak` in every run refers to (`seqbench run` measures it again
    at the start of each run, so each CSV carries its own).

    Examples:\n
      seqbench calibrate\n
      seqbench calibrate --device cpu --dtype float64 --threads 1
    """
    from seqbench.api import calibrate
    from seqbench.render import console

    console.set_verbosity(quiet)
    console.calibration_result(calibrate(device.value, dtype.value, threads, min_time, max_memory))


@app.command()
def gradflow(
    seq_len: Annotated[int, typer.Option(help="Sequence length T.")] = 128,
    hidden_size: Annotated[int, typer.Option(help="Model width d.")] = 64,
    heads: Annotated[int, typer.Option(help="Attention heads (must divide d).")] = 4,
    seeds: Annotated[int, typer.Option(help="Random initialisations per layer (geometric mean is fitted).")] = 5,
    layers: Annotated[str, typer.Option(help="Comma-separated kernels to probe.")] = "rnn_loop,lstm_loop,mingru_scan,sdpa",
    spectral_radius: Annotated[str, typer.Option(help="Comma-separated spectral radii for rnn_loop's U (one curve each).")] = "0.5,1,3",
    max_memory: Annotated[str, typer.Option(help="Refuse to run if a layer's forward + backward needs more than this, e.g. 8GiB (0: 80% of the free memory).")] = "0",
    plugin: Plugins = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output CSV; the chart (.png) and fitted rates (.json) go beside it.")] = Path("results/gradflow.csv"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")] = False,
) -> None:
    """Gradient norm ||dy_T/dx_t|| against distance T-t for random-initialised layers.

    Shows the path-length argument: the tanh RNN's gradient decays (measured for rho <= 1.5) or
    grows (rho >= 2) exponentially with distance; attention's stays within a constant factor. Prints the fitted
    decay rate per layer (||grad|| ~ exp(-rate * distance)).

    Examples:\n
      seqbench gradflow\n
      seqbench gradflow --spectral-radius 0.9,1.2,2 --seq-len 256 -o results/gradflow-long.csv --force
    """
    from seqbench.api import gradflow as write_gradflow
    from seqbench.render import console
    from seqbench.sweep.config import parse_list

    _load_plugins(plugin)
    try:
        radii = [float(r) for r in parse_list(spectral_radius, str, "spectral_radius")]
    except ValueError:
        raise SeqbenchError(f"--spectral-radius must be comma-separated numbers, got {spectral_radius!r}") from None
    decay, written = write_gradflow(out, force=force, command=["seqbench", *_INVOCATION],
                                    layers=parse_list(layers, str, "layers"), seq_len=seq_len,
                                    hidden_size=hidden_size, num_heads=heads, seeds=seeds, spectral_radii=radii,
                                    max_memory=max_memory)
    console.gradflow_table(decay)
    console.info(f"wrote {', '.join(map(str, written))}")


from seqbench.cli_history import history_app  # noqa: E402  (after the app's own commands: `history` lists last)

app.add_typer(history_app, name="history")


def _dispatch(argv: list[str] | None) -> int:
    """Run the command; usage errors (a bad flag, a missing argument) are one line and exit code 2."""
    from seqbench.render import console

    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="seqbench", standalone_mode=False)
        return rv if isinstance(rv, int) else ExitCode.OK
    except typer.Exit as exc:
        return exc.exit_code
    except SystemExit as exc:  # typer exits 1 on a broken stdout pipe: 1 is CI's "regression"
        if isinstance(exc.__context__, BrokenPipeError):
            raise exc.__context__ from None
        # nothing of seqbench's calls sys.exit inside a command: a user's plugin or kernel did, and its
        # code (0: "success" with no rows; 1: CI's "regression") must not become seqbench's
        raise SeqbenchError(f"a plugin or kernel called sys.exit({exc.code!r}) (SystemExit raised by user code); "
                            "seqbench stopped; remove the call") from None
    except UsageBase as exc:  # bad flag, missing argument, wrong type
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `seqbench`: show help, as --help would
            print(exc.ctx.get_help())
            return ExitCode.OK
        console.error(exc.format_message())
        return ExitCode.BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    """Entry point: every outcome is an exit code (errors.ExitCode) and at most one line on stderr."""
    import os

    from seqbench.orchestration import signals

    global _INVOCATION
    _INVOCATION = list(sys.argv[1:] if argv is None else argv)
    _INTERRUPT_HINT.clear()
    _CHILD_REPORTED.clear()
    signals.last_interrupt(forget=True)
    # SIGTERM = Ctrl-C from here on (the entry point did it earlier): the command line exits at once
    # outside a run; called in-process (argv given: tests, scripts) it raises instead
    restore = signals.install_handlers(exit_at_once=argv is None)
    try:
        code = _dispatch(argv)  # typer turns an interrupt inside a command into a silent Exit(130)
    except (KeyboardInterrupt, typer.Abort):
        code = ExitCode.INTERRUPTED
    except SeqbenchError as exc:
        code = _fail(ExitCode(getattr(exc, "exit_code", ExitCode.BAD_INPUT)), str(exc))
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes it
        code = ExitCode.BROKEN_PIPE
    except OSError as exc:  # the environment: a file or device that cannot be used
        from seqbench.errors import resource_error

        if (short := resource_error(exc)) is not None:  # out of threads/processes/files: its own code
            code = _fail(ExitCode.RESOURCES, str(short))
        else:
            code = _fail(ExitCode.BAD_INPUT, f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}")
    except MemoryError:
        code = _fail(ExitCode.BAD_INPUT, "out of memory; try smaller sizes or a lower --max-memory")
    except Exception as exc:  # noqa: BLE001 - a bug: its own exit code, never 1 (a regression to CI)
        from seqbench.errors import resource_error

        show = bool(os.environ.get("SEQBENCH_TRACEBACK")) or bool({"-v", "--verbose"} & set(_INVOCATION))
        if (short := resource_error(exc)) is not None:  # RuntimeError("can't start new thread")
            code = _fail(ExitCode.RESOURCES, str(short))
        else:
            code = _fail(ExitCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc} (a bug in seqbench; please "
                         "report it" + ("" if show else "; SEQBENCH_TRACEBACK=1 shows the traceback") + ")",
                         exc if show else None)
    if code == ExitCode.INTERRUPTED and not _CHILD_REPORTED:
        by = " by SIGTERM" if signals.last_interrupt(forget=True) == "SIGTERM" else ""
        _fail(code, "; ".join([f"interrupted{by}", *_INTERRUPT_HINT]))
    if argv is None:
        signals.ignore_interrupts()  # the interpreter's shutdown is next: nothing left to interrupt
        sys.exit(int(code))
    restore()
    return int(code)


def _fail(code: ExitCode, message: str, exc: BaseException | None = None) -> ExitCode:
    from seqbench.render import console
    from seqbench.orchestration.signals import ignore_interrupts

    ignore_interrupts()  # only this line and the exit are left: nothing for a late Ctrl-C to cut short
    if exc is not None:
        console.traceback(exc)
    console.error(message)
    return code
