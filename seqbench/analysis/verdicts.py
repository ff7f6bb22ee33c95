"""compare, whatever the metric: time (analysis/compare.py) or instruction counts (analysis/instructions.py)."""

from __future__ import annotations

from pathlib import Path

from seqbench.analysis import compare
from seqbench.analysis.instructions import DEFAULT_THRESHOLD, compare_count_frames, frames_metric
from seqbench.choices import Metric

TIME_THRESHOLD = 0.05


def default_threshold(metric: str) -> float:
    """5% for time, 1% for instruction counts (they resolve far smaller changes)."""
    return DEFAULT_THRESHOLD if metric == Metric.INSTRUCTIONS else TIME_THRESHOLD


def compare_frames(base, head, *, threshold: float | None = None, base_name: str = "baseline",
                   head_name: str = "candidate", **kw):
    """Verdicts per point on the metric both tables hold; threshold None: that metric's default."""
    metric = frames_metric(base, head, (base_name, head_name))
    judge = compare_count_frames if metric == Metric.INSTRUCTIONS else compare.compare_frames  # looked up now: patchable
    threshold = default_threshold(metric) if threshold is None else threshold
    return judge(base, head, threshold=threshold, base_name=base_name, head_name=head_name, **kw)


def compare_files(base_path: str | Path, head_path: str | Path, *, allow_mismatch=(), **kw):
    """compare_frames on two results CSVs, after checking that they were measured alike (mismatch)."""
    from seqbench.analysis.mismatch import check_comparable
    from seqbench.results.reader import read_results

    base, head = read_results(base_path), read_results(head_path)
    accepted = check_comparable(base_path, head_path, base, head, allow=allow_mismatch)
    comp = compare_frames(base, head, base_name=str(base_path), head_name=str(head_path), **kw)
    comp.warnings[:0] = accepted
    return comp
