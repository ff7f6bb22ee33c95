"""Was a run disturbed? Noise said out loud, from the rows and the machine's load in the sidecar.

Three witnesses, each a line of warning (the run summary and the report print them):
- the calibration: a kernel faster than the run's measured matmul peak (% of peak over 100) means the
  peak was measured while the machine was busy, so every % of peak of that run is off;
- the points: an IQR wider than the median means a point's samples were spread by something else;
- the load: other processes used more cores than the run left free (measure.load), at its start,
  over its whole length, or at its end.
Pure functions of a results DataFrame and a sidecar dict; nothing here prints.
"""

from __future__ import annotations

from seqbench.measure.load import disturbances
from seqbench.units import fmt_spread

ROUNDS_ADVICE = 3  # `--rounds 3`: each point's samples in three rounds spread across the run


def rounds_of(df) -> int:
    """How many rounds the run took per point (the largest round index in `sample_rounds`; 1 if none)."""
    if "sample_rounds" not in df:
        return 1
    most = 1
    for text in df["sample_rounds"].dropna().astype(str):
        for r in text.split():
            if r.isdigit():
                most = max(most, int(r))
    return most


def rerun_advice(df) -> str:
    """What to do about a noisy or not-key figure: more rounds if the run had few, a quieter machine."""
    if rounds_of(df) < ROUNDS_ADVICE:
        return f"rerun with --rounds {ROUNDS_ADVICE} (on a quieter machine if you can)"
    return "rerun on a quieter machine"


def _label(r) -> str:
    return f"{r['kernel']} {r['mode']} B={int(r['batch_size'])} T={int(r['seq_len'])}"  # r.mode: a Series method


def warnings(df, meta: dict | None = None) -> list[str]:
    """One line per sign of a disturbed run (none: an empty list); the last line says what to do."""
    ok = df[df["status"] == "ok"] if "status" in df else df
    if ok.empty:
        return []
    out = []
    kernels = ok[ok["kernel"] != "calibration"]
    calib = ok[ok["kernel"] == "calibration"]
    if "pct_of_peak" in kernels:
        over = kernels[kernels["pct_of_peak"].astype(float) > 100]
        if len(over):
            peak = ", ".join(f"{g:.3g}" for g in calib["gflops_per_s"].dropna()) if len(calib) else "?"
            worst = over.loc[over["pct_of_peak"].astype(float).idxmax()]
            out.append(f"calibration disturbed: {len(over)} point(s) ran faster than the measured matmul peak "
                       f"({peak} GFLOP/s; up to {float(worst['pct_of_peak']):.0f}% of peak, {_label(worst)}): the peak was "
                       "measured while the machine was busy, so this run's % of peak is too high")
    if len(calib) and (calib["iqr_s"] > calib["median_s"]).any():
        out.append("calibration disturbed: its IQR is wider than its median, so % of peak is uncertain")
    spread = kernels[kernels["iqr_s"].astype(float) > kernels["median_s"].astype(float)]
    if len(spread):
        worst = spread.loc[(spread["iqr_s"] / spread["median_s"]).astype(float).idxmax()]
        out.append(f"{len(spread)} of {len(kernels)} points have an IQR wider than their median (worst: "
                   f"{_label(worst)}, {fmt_spread(worst['median_s'], worst['iqr_s'])}): their timings were disturbed")
    threads = int(ok["threads"].dropna().max()) if "threads" in ok and ok["threads"].notna().any() else 1
    for why in disturbances((meta or {}).get("load"), threads):
        out.append(f"machine busy {why}")
    if out:
        out.append(f"the figures above may be off: {rerun_advice(df)}")
    return out
