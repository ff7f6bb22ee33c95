"""The one module the experiments in benchmarks/ share.

Scripts here import seqbench's public API (`import seqbench`) and this module, nothing else of
seqbench: the internals they need (building and timing one point outside a sweep, the N-sided A/B
schedule, compare's per-run statistics) are imported here only, so a change inside seqbench is
followed in one place. It also holds the design of the `make bench-ci` experiment, which
aa_collect.py runs and aa_analyze.py scores. Scripts run as `python benchmarks/NAME.py`, which puts
benchmarks/ on the import path.
"""

from __future__ import annotations

from seqbench.analysis import bootstrap, scaling  # noqa: F401
from seqbench.analysis.compare import PointResult, compare_frames, finish, judge_runs, run_statistics  # noqa: F401
from seqbench.kernels import Shape, get_kernel  # noqa: F401
from seqbench.measure.timer import burn_in, measure  # noqa: F401
from seqbench.analysis.ab import resolve_side, run_ab  # noqa: F401
from seqbench.results.reader import read_results  # noqa: F401
from seqbench.sweep.config import Point  # noqa: F401
from seqbench.sweep.matmul_peak import calibration_point  # noqa: F401
from seqbench.sweep.runner import build_workload  # noqa: F401

# --- make bench-ci: the experiment's design (aa_collect.py runs it, aa_analyze.py scores it) ---
KERNEL = "cilab_glr"  # the user's layer that ci_layer.py writes into each side's checkout
CONDITIONS = ("quiet", "load")  # alternate in the main collection
HEAVY = "heavy"  # an extra set (collect --condition heavy): two neighbours, both cores in bursts
P10 = {64: 0.10, 128: 0.10}
SMALL = (0.05, 0.07, 0.15)  # rotated over SEQ_LENS, one rotation per repetition
SEQ_LENS = (32, 64, 128)
SIDES = ("base", "copy", "p10", "small")
