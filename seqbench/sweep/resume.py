"""`seqbench run --resume`: continuing an interrupted run in place.

A resumed run is the *same* run continued: same run_id, same config (checked against the JSON
sidecar; any difference is refused), new rows appended to the same CSV, points that already have a
row of this run skipped. (Adding a different run to an existing CSV is another matter.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from seqbench.errors import ConfigError, ResultsError
from seqbench.results.ownership import Output, own
from seqbench.results.reader import read_header, read_metadata, read_results
from seqbench.results.identity import key_of
from seqbench.results.schema import COLUMNS, KEY_COLUMNS, sidecar_path
from seqbench.sweep.config import SweepConfig


@dataclass
class ResumeState:
    meta: dict  # the sidecar of the run being continued
    done: frozenset  # Point.key() of every point that already has a row of this run
    rows: list  # those rows (kernel, mode, ..., seq_len, status), for budget.Preflight.observe
    note: str = ""  # what was repaired, for the user
    output: Output | None = None  # the CSV, owned (locked) by this process from load() on
    changed: dict = None  # kernel -> {"was": hash, "now": hash}: its defining file changed since the run began

    def __post_init__(self):
        self.changed = self.changed or {}


def recorded_config(out: str | Path) -> dict:
    """The config recorded in the sidecar of `out`, for `--resume` given no config and no flags."""
    return dict(_sidecar(Path(out))["config"])


def restore_plugins(out: str | Path) -> list[str]:
    """Make the plugins the run loaded importable again (see plugins.make_importable); notes for the user."""
    from seqbench.kernels.plugins import make_importable

    return make_importable(_sidecar(Path(out)).get("plugins") or [])


def _sidecar(p: Path) -> dict:
    if not p.is_file():
        raise ResultsError(f"{p}: nothing to resume (no such file); drop --resume to start a new run")
    meta = read_metadata(p)
    if not meta:
        raise ResultsError(f"{sidecar_path(p)}: missing; --resume needs the JSON sidecar written by the interrupted run")
    for key, kind in (("run_id", str), ("config", dict)):
        if key not in meta:
            raise ResultsError(f"{sidecar_path(p)}: has no {key!r}; it was not written by `seqbench run`")
        if not isinstance(meta[key], kind):
            raise ResultsError(f"{sidecar_path(p)}: {key!r} is {json.dumps(meta[key])[:40]}, not a JSON "
                               f"{'string' if kind is str else 'object'}; it was not written by `seqbench run`")
    _check_runs(p, meta)
    return meta


def _check_runs(p: Path, meta: dict) -> None:
    """Before its config is used: the sidecar is this CSV's (a copy of another run's would resume that
    run into this file). Complete lines only: a half last line is the resume's to drop."""
    import csv
    import io

    from seqbench.results.reader import check_run_ids

    try:
        text = p.read_bytes().decode("utf-8", "replace")
    except OSError:
        return
    try:
        runs = [r.get("run_id") for r in csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1], newline=""))]
    except csv.Error:
        return  # read_results says what is wrong, later
    check_run_ids(p, [r for r in runs if r], meta)


LIMITS = ("max_time_per_point",)  # a limit may change on resume: it decides what is tried, not what a row means


def check_same_config(meta: dict, cfg: SweepConfig, where: Path) -> list[str]:
    """Refuse a config that differs from the run's, except for a limit (LIMITS): that is accepted, said
    (the returned notes) and recorded in the sidecar (meta["config"] and meta["limit_changes"])."""
    old = meta["config"]
    new = json.loads(json.dumps(cfg.to_dict()))  # tuples -> lists, as in the sidecar
    notes = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            if key in LIMITS:
                notes.append(f"--resume: {key} changed from {old.get(key)!r} to {new.get(key)!r}; the points already "
                             "done were measured under the old limit, the rest under the new one")
                meta.setdefault("limit_changes", []).append({"field": key, "from": old.get(key), "to": new.get(key)})
                old[key] = new.get(key)
                continue
            raise ConfigError(
                f"--resume refused: {key} is {new.get(key)!r} but the run in {where} used {old.get(key)!r}; "
                "resume with the same config (a limit such as max_time_per_point may change), or start a new run "
                "with another --out"
            )
    return notes


def _drop_partial_line(p: Path) -> str:
    """A run killed mid-write can leave half a row: cut it so the point is measured again."""
    data = p.read_bytes()
    if not data or data.endswith(b"\n"):
        return ""
    keep = data.rfind(b"\n") + 1
    with p.open("r+b") as fh:
        fh.truncate(keep)
    return f"dropped an unfinished last line ({len(data) - keep} bytes) from {p}"


def load(out: str | Path, cfg: SweepConfig) -> ResumeState:
    """Check that `out` holds an unfinished run of cfg, take ownership of it and find which of its
    points are done. A run still being written (its writer alive, wherever its process id lives)
    holds the lock: refused. A dead writer's lock died with it: resumable."""
    p = Path(out)
    check_same_config(_sidecar(p), cfg, p)
    output = own(p, "resume")
    try:
        meta = _sidecar(p)  # again, now that it is ours: the last writer may have finished it meanwhile
        limits = check_same_config(meta, cfg, p)
        note = "\n".join([*limits, _drop_partial_line(p)]).strip()
        if p.stat().st_size == 0:  # killed before the header reached the disk
            return ResumeState(meta, frozenset(), [], note, output)
        header = read_header(p)
        if tuple(header) != COLUMNS:
            raise ResultsError(f"{p}: line 1: columns differ from this seqbench's ({len(header)} vs {len(COLUMNS)}); cannot append to it")
        df = read_results(p)
    except BaseException:
        output.release()
        raise
    mine = df[df["run_id"] == meta["run_id"]]
    rows = [SimpleNamespace(**rec) for rec in mine.to_dict("records")]
    done = frozenset(_key(r) for r in rows)
    return ResumeState(meta, done, rows, note, output, changed_kernels(meta, cfg))


def changed_kernels(meta: dict, cfg: SweepConfig) -> dict[str, dict]:
    """Kernels of the run whose definition (the hash of the file that defines them) differs from the
    one the run recorded: a plugin edited between the interruption and the resume."""
    from seqbench.kernels import get_kernel

    recorded = meta.get("kernels") if isinstance(meta.get("kernels"), dict) else {}
    out = {}
    for name in cfg.kernels:
        was = (recorded.get(name) or {}).get("definition") if isinstance(recorded.get(name), dict) else None
        now = get_kernel(name).definition()
        if was and now and was != now:
            out[name] = {"was": was, "now": now}
    return out


def _key(r) -> tuple:
    """Point.key() of a row read back from the CSV (pandas types -> plain Python)."""
    return key_of(r)
