"""What each kernel is to the analysis, from its registry attributes, never from its name:
`quadratic` (softmax attention, cost O(T^2): what a crossover is measured against), `baseline`
(a textbook reference for speed-ups and crossover T*) and, from those and the family, its
`contender` class: recurrence (recurrent and scan kernels), softmax attention, or linear attention
(O(T) attention: neither the best attention nor a recurrence, a line of its own).

A results sidecar records these attributes for every kernel of its run (KernelSpec.info), so a CSV
written with a plugin reads right without the plugin; otherwise the registry is asked (built-ins,
and plugins loaded with --plugin). A kernel known to neither counts as neither.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from seqbench.choices import Contender, Family
from seqbench.errors import ConfigError


def contender(family: str, quadratic: bool) -> str:
    """The class a kernel competes in for "best of family"; "" for the calibration matmul and unknown families.

    quadratic wins over the family: a plugin registered as O(T^2) competes as attention whatever it is called.
    """
    if family == Family.CALIBRATION:
        return ""
    if quadratic:
        return Contender.ATTENTION
    if family == Family.ATTENTION:
        return Contender.LINEAR_ATTENTION
    if family in (Family.RECURRENT, Family.SCAN):
        return Contender.RECURRENCE
    return ""


def recorded_info(sidecars: Iterable[dict]) -> dict[str, dict]:
    """Kernel attributes recorded in results sidecars (merged files list their inputs' sidecars)."""
    info: dict[str, dict] = {}
    for meta in sidecars:
        for inner in meta.get("merged_from", []) or []:
            info.update(recorded_info([inner.get("metadata") or {}]))
        info.update(meta.get("kernels") or {})
    return info


def kernel_info(names: Iterable[str], sidecars: Sequence[dict] = ()) -> dict[str, dict]:
    """name -> {family, quadratic, baseline, ...}: the sidecars' record first, then the registry."""
    from seqbench.errors import PluginError
    from seqbench.kernels import get_kernel

    recorded = recorded_info(sidecars)
    out = {}
    for name in dict.fromkeys(names):
        if name in recorded:
            out[name] = recorded[name]
            continue
        try:
            out[name] = get_kernel(name).info()
        except PluginError:
            out[name] = {}
    return out


def match_kernels(patterns: Sequence[str], present: Iterable[str], flag: str = "--kernels") -> list[str]:
    """The kernels of `present` that any of the names or globs (fnmatch: hf_*, *mamba*) matches; a pattern
    matching nothing is refused, naming what was measured."""
    import fnmatch

    present = list(dict.fromkeys(present))
    chosen = []
    for pat in patterns:
        hit = [k for k in present if fnmatch.fnmatchcase(k, pat)]
        if not hit:
            raise ConfigError(f"{flag} {pat!r} matches no kernel in the results; measured kernels: "
                              f"{', '.join(sorted(present))}")
        chosen += [k for k in hit if k not in chosen]
    return chosen


def annotate(df, sidecars: Sequence[dict] = (), baselines: Sequence[str] | None = None,
             sides: dict[str, Sequence[str]] | None = None):
    """df with `quadratic` and `baseline` columns (bool per row) and `contender` from the kernels' attributes.

    baselines: the reference kernels chosen by the user (`report --baseline`, config `baselines`);
    None: the sidecar config's `baselines`, else the kernels registered with baseline=True.
    sides: contender class -> kernel names or globs (`report --recurrence 'hf_*' --attention hf_llama_attn`):
    those kernels, and only those, form that side of the best-vs-best comparison.
    """
    info = kernel_info(df["kernel"], sidecars)
    present = set(df["kernel"])
    if baselines is not None:
        missing = [b for b in baselines if b not in present]
        if missing:
            raise ConfigError(f"--baseline {missing[0]!r} is not in the results; measured kernels: "
                              f"{', '.join(sorted(present))}")
    else:
        chosen = [b for meta in sidecars for b in (meta.get("config") or {}).get("baselines") or []]
        baselines = chosen or [k for k, i in info.items() if i.get("baseline")]
    quadratic = [bool(info.get(k, {}).get("quadratic")) for k in df["kernel"]]
    roles = [contender(f, q) for f, q in zip(df["family"], quadratic)]
    claimed: dict[str, str] = {}  # kernel -> the side that named it
    for side, patterns in (sides or {}).items():
        if patterns:
            members = set(match_kernels(patterns, present, f"--{side}"))
            both = sorted(k for k in members if claimed.get(k, side) != side)
            if both:
                raise ConfigError(f"--{claimed[both[0]]} and --{side} both take {', '.join(both)}; a kernel is on "
                                  "one side of the best-vs-best comparison")
            claimed.update(dict.fromkeys(members, side))
            roles = [side if k in members else ("" if r == side else r) for k, r in zip(df["kernel"], roles)]
    out = df.assign(quadratic=quadratic, baseline=[k in set(baselines) for k in df["kernel"]], contender=roles)
    out.attrs.update(df.attrs, baselines=[b for b in baselines if b in present])
    return out


def ensure_annotated(df):
    """Annotate a DataFrame that was read without (tests, one-off use) from the registry alone."""
    return df if {"quadratic", "baseline", "contender"} <= set(df.columns) else annotate(df)


def baseline_kernels(df) -> list[str]:
    """The baseline kernels present, in the order chosen (or registered)."""
    df = ensure_annotated(df)
    order = df.attrs.get("baselines") or list(dict.fromkeys(df.loc[df["baseline"], "kernel"]))
    return [b for b in order if b in set(df["kernel"])]
