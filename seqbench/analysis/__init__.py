"""Analysis of results: fits with R² (fits), kernels' roles (roles), scaling and speed-ups (scaling),
verdicts between two runs (compare). Pure functions of DataFrames; nothing here prints or plots."""

from __future__ import annotations


def load(paths, baselines=None):
    """Read one or more results CSVs (with their sidecars) into one annotated DataFrame."""
    from seqbench.analysis.roles import annotate
    from seqbench.results.reader import read_many, read_metadata

    df = read_many(paths)
    return annotate(df, [read_metadata(p) for p in paths], baselines)
