"""What each kernel is to the analysis, from its registry attributes, never from its name:
`quadratic` (softmax attention, cost O(T^2): what a crossover is measured against) and `baseline`
(a reference for speed-ups and crossover T*).

A results sidecar records these attributes for every kernel of its run (KernelSpec.info), so a CSV
written with a plugin reads right without the plugin; otherwise the registry is asked (built-ins,
and plugins loaded with --plugin). A kernel known to neither counts as neither.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from seqbench.errors import ConfigError


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


def annotate(df, sidecars: Sequence[dict] = (), baselines: Sequence[str] | None = None):
    """df with `quadratic` and `baseline` columns (bool per row) from the kernels' attributes.

    baselines: the reference kernels chosen by the user (`report --baseline`, config `baselines`);
    None: the sidecar config's `baselines`, else the kernels registered with baseline=True.
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
    out = df.assign(quadratic=[bool(info.get(k, {}).get("quadratic")) for k in df["kernel"]],
                    baseline=[k in set(baselines) for k in df["kernel"]])
    out.attrs.update(df.attrs, baselines=[b for b in baselines if b in present])
    return out


def ensure_annotated(df):
    """Annotate a DataFrame that was read without (tests, one-off use) from the registry alone."""
    return df if "quadratic" in df and "baseline" in df else annotate(df)


def baseline_kernels(df) -> list[str]:
    """The baseline kernels present, in the order chosen (or registered)."""
    df = ensure_annotated(df)
    order = df.attrs.get("baselines") or list(dict.fromkeys(df.loc[df["baseline"], "kernel"]))
    return [b for b in order if b in set(df["kernel"])]
