"""Analysis of results: fits with R² (fits), kernels' roles (roles), scaling and speed-ups (scaling),
verdicts between two runs (compare). Pure functions of DataFrames; nothing here prints or plots."""

from __future__ import annotations


def load(paths, baselines=None, kernels=None, sides=None):
    """Read one or more results CSVs (with their sidecars) into one annotated DataFrame.

    kernels: names or globs; only their rows are kept (and the calibration row, for % of peak).
    sides: contender class -> names or globs forming that side (roles.annotate).

    `source` names the series every analysis keeps apart (fits, peaks, crossovers, chart lines): the
    file, or, when the rows come from several machines, the machine (see by_machine).
    """
    from seqbench.analysis.roles import annotate, match_kernels
    from seqbench.results.reader import read_many, read_metadata

    df = read_many(paths)
    if "metric" in df and (df["metric"] == "instructions").any():  # report and plot draw times
        from seqbench.errors import ResultsError

        counted = df.loc[df["metric"] == "instructions", "source"].iloc[0]
        raise ResultsError(f"{counted} holds instruction counts (--metric instructions), not times: report and plot "
                           "draw times; compare two count files with `seqbench compare`")
    if kernels:
        keep = set(match_kernels(kernels, df["kernel"])) | {"calibration"}
        attrs = dict(df.attrs)
        df = df[df["kernel"].isin(keep)].reset_index(drop=True)
        df.attrs.update(attrs)
    return annotate(by_machine(df), [read_metadata(p) for p in df.attrs["paths"]], baselines, sides)


def by_machine(df):
    """Series by machine when the rows hold several: `source` becomes the machine label (or
    'file · machine' when one machine appears in several files); the file's name stays in `file`."""
    if "machine" not in df or df["machine"].nunique() < 2:
        return df
    files_per_machine = df.groupby("machine")["source"].nunique()
    both = (files_per_machine > 1).any()
    series = df["source"] + " · " + df["machine"] if both else df["machine"]
    out = df.assign(file=df["source"], source=series)
    out.attrs.update(df.attrs, machines=list(dict.fromkeys(df["machine"])))
    return out
