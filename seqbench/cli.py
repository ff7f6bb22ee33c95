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

from seqbench.choices import Device, DType, ImageFormat, Normalize, Statistic, TextFormat, allowed
from seqbench.errors import SeqbenchError
from seqbench.version import __version__

app = typer.Typer(
    help="Measure how recurrence (sequential over time) and attention (parallel over time) scale "
    "with sequence length and batch size, on CPU or CUDA.\n\n"
    "Example: seqbench run benchmarks/quick.toml",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


_INVOCATION: list[str] = sys.argv[1:]  # the arguments main() was called with, for the JSON sidecar


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
    "--plugin", help="A module (mylab.bench_kernels) or .py file that registers kernels; repeatable.")]
Baselines = Annotated[Optional[list[str]], typer.Option(
    "--baseline", help="Reference kernel for speed-ups and crossover T* (repeatable; default: the run's config, "
    "else the kernels registered as baselines).")]
ImageFormats = Annotated[str, typer.Option("--image-format", "-f", help=f"Comma-separated: {allowed(ImageFormat)}.")]


def _load_plugins(plugins: list[str] | None) -> None:
    from seqbench.kernels import load_plugins

    load_plugins(plugins, origin="flag")


@app.command()
def run(
    config: Annotated[Optional[Path], typer.Argument(help="Sweep config (TOML). Flags below override its fields.")] = None,
    kernels: Annotated[Optional[str], typer.Option(help="Comma-separated kernel names (see `seqbench list`).")] = None,
    seq_lens: Annotated[Optional[str], typer.Option(help="Comma-separated sequence lengths T, e.g. 64,256,1024.")] = None,
    batch_sizes: Annotated[Optional[str], typer.Option(help="Comma-separated batch sizes B, e.g. 1,8,32.")] = None,
    hidden_size: Annotated[Optional[int], typer.Option(help="Model width d.")] = None,
    heads: Annotated[Optional[int], typer.Option(help="Attention heads (must divide d).")] = None,
    mode: Annotated[Optional[str], typer.Option(help="forward, train, or forward,train.")] = None,
    dtype: Annotated[Optional[DType], typer.Option(help="Floating-point type of weights and inputs.")] = None,
    device: Annotated[Optional[Device], typer.Option(help="auto: CUDA if present.")] = None,
    causal: Annotated[Optional[bool], typer.Option("--causal/--no-causal", help="Causal attention mask.")] = None,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads for torch (default 1; 0: torch's default, a thread per core). See the README's \"Threads\" before raising it.")] = None,
    min_time: Annotated[Optional[float], typer.Option(help="Seconds of timed samples per point.")] = None,
    max_memory: Annotated[Optional[str], typer.Option(help="Skip points whose estimated peak memory exceeds this, e.g. 8GiB (0 or unset: 80% of the memory free at the start).")] = None,
    max_time_per_point: Annotated[Optional[float], typer.Option(help="Seconds one call may take; a slower point is recorded as timeout and larger T for its kernel and B are skipped (0: no limit).")] = None,
    plugin: Plugins = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output CSV (JSON sidecar beside it). Default: results/<name>-<device>-<time>.csv")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the interrupted run in --out: keep its rows, measure the missing points. Uses the config (and plugins) recorded in its JSON sidecar; a config file or flag that disagrees with it is refused.")] = False,
    peak: Annotated[bool, typer.Option("--peak/--no-peak", help="Measure the matmul peak first (a `calibration` row, ~1 s) and fill pct_of_peak.")] = True,
    rounds: Annotated[int, typer.Option(help="Take each point's samples in R rounds spread across the sweep "
                                        "(round 1 of every point, then round 2, ...); rows are written when a point's last round ends.")] = 1,
    shard: Annotated[Optional[str], typer.Option(help="Run shard K/N: every N-th point from the K-th (join shards with `seqbench merge`).")] = None,
    append: Annotated[bool, typer.Option("--append", help="Append rows to --out if it exists (same seqbench version), e.g. interleaved A/B rounds.")] = False,
    reference: Annotated[bool, typer.Option("--reference", "--calibrate", help="Time a fixed reference matmul before every point's round "
                                            "(column ref_s), for `seqbench compare --normalize reference`.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Run a sweep and write a tidy CSV + JSON sidecar.

    Examples:\n
      seqbench run benchmarks/quick.toml\n
      seqbench run --kernels rnn_loop,sdpa --seq-lens 64,256,1024 --batch-sizes 8\n
      seqbench run benchmarks/quick.toml --plugin mylab.bench_kernels --kernels my_glr,sdpa\n
      seqbench run benchmarks/full.toml --device cuda --dtype bfloat16 -o results/gpu.csv\n
      seqbench run benchmarks/full.toml --max-memory 8GiB --max-time-per-point 30 -o results/full.csv\n
      seqbench run --resume -o results/full.csv   (after Ctrl-C: continue where it stopped)\n
      seqbench run benchmarks/ci.toml --rounds 5 -o base.csv\n
      seqbench run benchmarks/ci.toml --append -o head.csv   (one more run into head.csv)\n
      seqbench run benchmarks/full.toml --shard 2/4 -o part2.csv
    """
    from seqbench.render import console
    from seqbench.sweep.config import parse_list
    from seqbench.sweep.plan import plan_run
    from seqbench.sweep.runner import execute

    console.set_verbosity(quiet, verbose)
    flags = {
        "kernels": parse_list(kernels, str, "kernels") if kernels is not None else None,
        "seq_lens": parse_list(seq_lens, int, "seq_lens") if seq_lens is not None else None,
        "batch_sizes": parse_list(batch_sizes, int, "batch_sizes") if batch_sizes is not None else None,
        "modes": parse_list(mode, str, "mode") if mode is not None else None,
        "hidden_size": hidden_size, "num_heads": heads, "causal": causal, "threads": threads, "min_time": min_time,
        "dtype": dtype.value if dtype else None, "device": device.value if device else None,
        "max_memory": max_memory, "max_time_per_point": max_time_per_point, "plugins": plugin or None,
    }
    plan = plan_run(config=config, flags=flags, out=out, force=force, resume=resume, append=append, rounds=rounds,
                    shard=shard, reference=reference, peak=peak)
    for note in plan.notes:
        console.info(note)
    if plan.cfg.device != "cpu" or device == Device.AUTO:
        console.info(f"device: {plan.cfg.device}")
    with console.sweep_progress(len(plan.points), f"{plan.cfg.name} ({plan.cfg.device}, {plan.cfg.dtype})") as on_row:
        try:
            rows = execute(plan, command=["seqbench", *_INVOCATION], on_row=on_row)
        except KeyboardInterrupt:
            console.error(f"interrupted; the finished points are in {plan.out}; continue with: "
                          f"seqbench run --resume -o {plan.out}")
            raise typer.Exit(130)
    console.run_summary(rows, plan.out)


@app.command()
def compare(
    baseline: Annotated[Path, typer.Argument(help="Results CSV of the baseline (e.g. the base commit).")],
    candidate: Annotated[Path, typer.Argument(help="Results CSV of the candidate (e.g. the pull request's head).")],
    threshold: Annotated[str, typer.Option(help="Smallest slowdown called a regression: fraction or percentage.")] = "5%",
    alpha: Annotated[float, typer.Option(help="Significance level of the Mann-Whitney U test over rounds (CI level 1-alpha).")] = 0.01,
    normalize: Annotated[Normalize, typer.Option(help="reference: divide each round by the reference matmul timed before it "
                                                 "(both runs made with `seqbench run --reference`).")] = Normalize.NONE,
    slow_cut: Annotated[str, typer.Option(help="Drop rounds slower than (1 + cut) x their side's second-fastest round "
                                          "as disturbed by other load (fraction, percentage, or 'off').")] = "15%",
    statistic: Annotated[Statistic, typer.Option(help="Each round's samples reduced to this before the test "
                                                 "(min resists time-slicing by other processes).")] = Statistic.MIN,
    fmt: Annotated[TextFormat, typer.Option("--format", help="How to print the verdicts.")] = TextFormat.TABLE,
) -> None:
    """Compare two result CSVs point by point; exit 1 if the candidate regressed.

    Points are matched on kernel, mode, device, dtype, batch_size, seq_len, hidden_size, num_heads and
    causal. Each round of samples (see `seqbench run --rounds` and `--append`) is one observation;
    verdicts: regression, improvement, unchanged, inconclusive (too noisy to decide), failed.
    Exit codes: 0 no regression, 1 regression (or a point that fails only in the candidate), 2 bad input.

    Examples:\n
      seqbench compare base.csv head.csv\n
      seqbench compare base.csv head.csv --format markdown >> $GITHUB_STEP_SUMMARY\n
      seqbench compare base.csv head.csv --threshold 3% --format json > verdicts.json
    """
    from seqbench.analysis.compare import compare_files
    from seqbench.render import console
    from seqbench.units import parse_fraction

    cut = None if slow_cut == "off" else parse_fraction(slow_cut, "--slow-cut")
    comp = compare_files(baseline, candidate, threshold=parse_fraction(threshold, "--threshold"), alpha=alpha,
                         normalize=normalize.value, slow_cut=cut, statistic=statistic.value)
    console.comparison(comp, fmt.value)
    raise typer.Exit(comp.exit_code)


@app.command()
def merge(
    inputs: Annotated[list[Path], typer.Argument(help="Result CSVs to join (e.g. the shards of one sweep).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Merged CSV (JSON sidecar beside it).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
) -> None:
    """Join result CSVs into one, refusing mixed schemas and points present in two inputs.

    Examples:\n
      seqbench merge part1.csv part2.csv part3.csv -o all.csv\n
      seqbench merge results/shard-*.csv -o results/full.csv --force
    """
    from seqbench.render import console
    from seqbench.results.merge import merge_files
    from seqbench.results.writer import check_output

    check_output(out, force=force)
    rows = merge_files(inputs, out)
    console.info(f"merged {len(inputs)} files, {rows} rows -> {out}")


@app.command()
def plot(
    results: Annotated[list[Path], typer.Argument(help="One or more results CSVs; several overlay with the file name in the legend.")],
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", "-d", help="Folder for the charts (created if missing). Default: charts/ beside the first CSV.")] = None,
    image_format: ImageFormats = "png",
    batch: Annotated[Optional[str], typer.Option(help="Only these batch sizes in the per-B charts, e.g. 8 or 1,8.")] = None,
    baseline: Baselines = None,
    plugin: Plugins = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite charts already in --out-dir.")] = False,
    quiet: Quiet = False,
) -> None:
    """Draw the scaling charts (latency, throughput, speedup, GFLOP/s, memory vs T and B).

    Files are named CHART-MODE.FORMAT, e.g. latency_vs_T-forward.png.

    Examples:\n
      seqbench plot results/cpu/examples-cpu.csv --out-dir results/cpu/charts --image-format png,svg\n
      seqbench plot cpu.csv cuda.csv --out-dir charts/compare --batch 8\n
      seqbench plot mine.csv --baseline my_glr
    """
    from seqbench.render import console
    from seqbench.render import plot as plot_mod
    from seqbench.sweep.config import parse_list

    console.set_verbosity(quiet)
    _load_plugins(plugin)
    formats = plot_mod.parse_formats(image_format)
    batch_sizes = parse_list(batch, int, "batch") if batch is not None else None
    out_dir = out_dir or results[0].parent / "charts"
    written = plot_mod.plot_files(results, out_dir, formats, batch_sizes=batch_sizes, force=force, baselines=baseline)
    console.info(f"wrote {len(written)} chart files to {out_dir}")
    for p in written:
        console.detail(str(p))


@app.command()
def report(
    results: Annotated[Path, typer.Argument(help="A results CSV (its JSON sidecar, if beside it, gives the environment).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Markdown file. Default: the CSV's name with .md.")] = None,
    charts_dir: Annotated[Optional[Path], typer.Option(help="Where the embedded charts go. Default: charts/ beside the report.")] = None,
    charts: Annotated[bool, typer.Option("--charts/--no-charts", help="Render and embed the charts.")] = True,
    image_format: ImageFormats = "png",
    baseline: Baselines = None,
    plugin: Plugins = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the report and its charts.")] = False,
    quiet: Quiet = False,
) -> None:
    """Write a Markdown report: environment, tables per batch size, scaling exponents, crossover T*, failures, charts.

    Examples:\n
      seqbench report results/cpu/examples-cpu.csv -o results/cpu/report.md\n
      seqbench report run.csv -o run.md --no-charts\n
      seqbench report mine.csv --baseline my_glr --plugin mylab.bench_kernels
    """
    from seqbench.render import console
    from seqbench.render import plot as plot_mod
    from seqbench.render import report as report_mod

    console.set_verbosity(quiet)
    _load_plugins(plugin)
    formats = plot_mod.parse_formats(image_format)
    out = out or results.with_suffix(".md")
    cdir = (charts_dir or out.parent / "charts") if charts else None
    path, written = report_mod.write_report(results, out, charts_dir=cdir, formats=formats, force=force,
                                            baselines=baseline)
    console.info(f"wrote {path}" + (f" and {len(written)} chart files in {cdir}" if written else ""))


@app.command("list")
def list_kernels(
    plugin: Plugins = None,
    fmt: Annotated[TextFormat, typer.Option("--format", help="table or json.")] = TextFormat.TABLE,
) -> None:
    """List the kernels: family, forward FLOP formula, causality, role in the analysis, origin.

    Examples:\n
      seqbench list\n
      seqbench list --plugin mylab.bench_kernels --format json
    """
    from seqbench.kernels import kernels
    from seqbench.render import console

    _load_plugins(plugin)
    console.kernel_table(kernels().values(), fmt.value)


@app.command()
def env(
    device: Annotated[Device, typer.Option(help="Which device's details to include.")] = Device.AUTO,
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

    name = device.value
    if device == Device.AUTO:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    console.mapping_table("environment", env_mod.capture(name), fmt.value)


@app.command()
def calibrate(
    device: Annotated[Device, typer.Option(help="auto: CUDA if present.")] = Device.AUTO,
    dtype: Annotated[DType, typer.Option(help="Floating-point type of the matmul.")] = DType.FLOAT32,
    threads: Annotated[int, typer.Option(help="CPU threads for torch (default 1; 0: torch's default).")] = 1,
    min_time: Annotated[float, typer.Option(help="Seconds of timed samples.")] = 0.5,
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
    console.calibration_result(calibrate(device.value, dtype.value, threads, min_time))


@app.command()
def gradflow(
    seq_len: Annotated[int, typer.Option(help="Sequence length T.")] = 128,
    hidden_size: Annotated[int, typer.Option(help="Model width d.")] = 64,
    heads: Annotated[int, typer.Option(help="Attention heads (must divide d).")] = 4,
    seeds: Annotated[int, typer.Option(help="Random initialisations per layer (geometric mean is fitted).")] = 5,
    layers: Annotated[str, typer.Option(help="Comma-separated kernels to probe.")] = "rnn_loop,lstm_loop,mingru_scan,sdpa",
    spectral_radius: Annotated[str, typer.Option(help="Comma-separated spectral radii for rnn_loop's U (one curve each).")] = "0.5,1,3",
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
                                    hidden_size=hidden_size, num_heads=heads, seeds=seeds, spectral_radii=radii)
    console.gradflow_table(decay)
    console.info(f"wrote {', '.join(map(str, written))}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: maps every user mistake to one line on stderr and exit code 2."""
    from seqbench.render import console

    global _INVOCATION
    _INVOCATION = list(sys.argv[1:] if argv is None else argv)
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="seqbench", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except typer.Exit as exc:
        code = exc.exit_code
    except UsageBase as exc:  # bad flag, missing argument, wrong type
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `seqbench`: show help, as --help would
            print(exc.ctx.get_help())
            code = 0
        else:
            console.error(exc.format_message())
            code = 2
    except SeqbenchError as exc:
        console.error(str(exc))
        code = 2
    except (KeyboardInterrupt, typer.Abort):
        console.error("interrupted")
        code = 130
    if argv is None:
        sys.exit(code)
    return code
