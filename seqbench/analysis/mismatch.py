"""Were the two sides measured alike? Threads, device model, torch version, seqbench's kernel code.

A comparison across any of these measures that difference as well as the change under test: a
2-thread run against a 1-thread run, an A100 against an H100, torch 2.13 against 2.14, or a
seqbench whose `sdpa` kernel changed. `seqbench compare` refuses such a pair (exit 2) unless
--allow-mismatch names the difference, and then says so in every output. Threads come from the
rows; the rest from the JSON sidecars, including the runs appended before (`previous_runs`).
"""

from __future__ import annotations

from pathlib import Path

from seqbench.choices import Mismatch, allowed, values
from seqbench.errors import CompareError


def _environments(meta: dict) -> list[dict]:
    """The environment of every run recorded in a sidecar (appended runs keep theirs)."""
    runs = [*meta.get("previous_runs", []), meta]
    return [r.get("environment") or {} for r in runs]


def _kernel_defs(meta: dict) -> dict[str, set]:
    """Built-in kernel -> the definition hashes its runs recorded (None: not recorded)."""
    out: dict[str, set] = {}
    for run in [*meta.get("previous_runs", []), meta]:
        for name, info in (run.get("kernels") or {}).items():
            if str(info.get("source", "")).startswith("seqbench."):
                out.setdefault(name, set()).add(info.get("definition"))
                for resumed in run.get("resumed") or []:  # a resume after the kernel's file changed
                    was = ((resumed.get("kernels_changed") or {}).get(name) or {}).get("was")
                    if was:
                        out[name].add(was)
    return out


def _kernel_sources(meta: dict) -> dict[str, set]:
    """Kernel -> the modules (or config tables) that defined it in the runs of a sidecar."""
    out: dict[str, set] = {}
    for run in [*meta.get("previous_runs", []), meta]:
        for name, info in (run.get("kernels") or {}).items():
            if isinstance(info, dict) and info.get("source"):
                out.setdefault(name, set()).add(str(info["source"]))
    return out


def _fmt(values_: set) -> str:
    return ", ".join(sorted(str(v) for v in values_)) or "?"


def differences(base_rows, head_rows, base_meta: dict, head_meta: dict) -> dict[str, str]:
    """Mismatch kind -> what differs, in words."""
    out: dict[str, str] = {}
    kernels = set(base_rows["kernel"]) & set(head_rows["kernel"])
    tb = set(base_rows.loc[base_rows["kernel"].isin(kernels), "threads"])
    th = set(head_rows.loc[head_rows["kernel"].isin(kernels), "threads"])
    if tb != th:
        out[Mismatch.THREADS] = f"threads: baseline {_fmt(tb)}, candidate {_fmt(th)}"
    if base_meta and head_meta:
        eb, eh = _environments(base_meta), _environments(head_meta)
        for kind, keys in ((Mismatch.DEVICE, ("cpu", "gpu")), (Mismatch.TORCH, ("torch",))):
            for key in keys:
                vb = {e.get(key) for e in eb} - {None}
                vh = {e.get(key) for e in eh} - {None}
                if vb and vh and vb != vh:
                    out[kind] = f"{key}: baseline {_fmt(vb)}, candidate {_fmt(vh)}"
        db, dh = _kernel_defs(base_meta), _kernel_defs(head_meta)
        changed = sorted(k for k in kernels if k in db and k in dh and db[k] != dh[k] and None not in db[k] | dh[k])
        unknown = [k for k in kernels if k in db and k in dh and None in db[k] | dh[k]]
        sb, sh = {e.get("seqbench") for e in eb} - {None}, {e.get("seqbench") for e in eh} - {None}
        srcb, srch = _kernel_sources(base_meta), _kernel_sources(head_meta)
        moved = sorted(k for k in kernels if k in srcb and k in srch and srcb[k] != srch[k])
        if moved:  # one name, two definitions (a plugin re-registering a built-in with replace=True)
            k = moved[0]
            out[Mismatch.KERNELS] = (f"kernel {k} is defined by {_fmt(srcb[k])} in the baseline and by {_fmt(srch[k])} "
                                     "in the candidate" + (f" (and {len(moved) - 1} more)" if len(moved) > 1 else ""))
        elif changed:
            out[Mismatch.KERNELS] = f"seqbench's code of kernel{'s' if len(changed) > 1 else ''} {', '.join(changed)} differs"
        elif unknown and sb != sh:
            out[Mismatch.KERNELS] = (f"seqbench {_fmt(sb)} vs {_fmt(sh)}, without a record of its kernels' code: "
                                     f"{', '.join(sorted(unknown)[:3])} may differ")
    return out


def check_comparable(base_path, head_path, base_rows, head_rows, *, allow=()) -> list[str]:
    """Raise CompareError (exit 2) for a difference not in `allow`; return warnings for the rest."""
    from seqbench.results.reader import read_metadata

    allow = {str(a).strip() for a in allow}
    bad = sorted(allow - set(values(Mismatch)))
    if bad:
        raise CompareError(f"--allow-mismatch {bad[0]!r} unknown; allowed: a comma-separated list of {allowed(Mismatch)}")
    base_meta, head_meta = read_metadata(base_path), read_metadata(head_path)
    found = differences(base_rows, head_rows, base_meta, head_meta)
    refused = {k: v for k, v in found.items() if k not in allow}
    if refused:
        raise CompareError(f"{base_path} and {head_path} were not measured alike: {'; '.join(refused.values())}. "
                           f"Compare like with like, or pass --allow-mismatch {','.join(refused)} to compare anyway")
    warnings = [f"measured differently (accepted by --allow-mismatch): {v}" for v in found.values()]
    for path, meta in ((base_path, base_meta), (head_path, head_meta)):
        if not meta:
            warnings.append(f"no sidecar beside {path} ({Path(path).with_suffix('.json').name}): device model, "
                            "torch version and kernel code were not checked")
    return warnings
