"""What `history add` puts in the store from one results CSV: its machine, commit, branch, time, and per
point the pooled samples of its rows (a file appended to by several runs of one commit pools them)."""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from seqbench.errors import ResultsError
from seqbench.results.schema import KEY_COLUMNS, parse_samples

_SHORT = {"batch_size": "B", "seq_len": "T", "hidden_size": "d", "num_heads": "h"}


def point_key(rec) -> str:
    """A point's readable identity: 'sdpa forward cpu float32 B=4 T=128 d=128 h=4' (+ ' causal')."""
    parts = [str(rec["kernel"]), str(rec["mode"]), str(rec["device"]), str(rec["dtype"])]
    parts += [f"{_SHORT[c]}={int(rec[c])}" for c in ("batch_size", "seq_len", "hidden_size", "num_heads")]
    if _truthy(rec["causal"]):
        parts.append("causal")
    return " ".join(parts)


def _truthy(v) -> bool:
    return v is True or str(v).lower() == "true"


def median_interval(samples: np.ndarray, z: float = 1.96) -> tuple[float, float, float]:
    """Median and its distribution-free 95% interval (order statistics n/2 -+ z*sqrt(n)/2); with under
    6 samples the interval is their range."""
    s = np.sort(samples)
    n = len(s)
    med = float(np.median(s))
    if n < 6:
        return med, float(s[0]), float(s[-1])
    half = z * math.sqrt(n) / 2
    lo, hi = max(int(math.floor(n / 2 - half)), 0), min(int(math.ceil(n / 2 + half)), n - 1)
    return med, float(s[lo]), float(s[hi])


def pack_samples(samples: np.ndarray) -> bytes:
    return zlib.compress(np.asarray(samples, dtype="<f8").tobytes(), 6)


def unpack_samples(blob: bytes | None) -> list[float]:
    return np.frombuffer(zlib.decompress(blob), dtype="<f8").tolist() if blob else []


@dataclass
class PointEntry:
    key: str
    ident: dict
    status: str  # ok if any of its rows is ok
    median_s: float | None
    lo_s: float | None
    hi_s: float | None
    n_samples: int
    samples_blob: bytes | None
    rows_json: str

    def point_columns(self) -> dict:
        return {"key": self.key, **self.ident}


@dataclass
class RunEntry:
    source: str
    machine: str
    commit: str
    branch: str | None
    time: str
    run_ids: list[str]
    sidecar: dict
    points: list[PointEntry] = field(default_factory=list)

    @property
    def run_ids_text(self) -> str:
        return " ".join(self.run_ids)

    @property
    def run_key(self) -> str:
        return hashlib.sha256(f"{self.machine}\0{self.run_ids_text}".encode()).hexdigest()

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for p in sorted(self.points, key=lambda p: p.key):
            h.update(p.key.encode() + b"\0" + p.status.encode() + b"\0" + (p.samples_blob or b""))
        return h.hexdigest()


def entry_from_file(path: str | Path, *, commit: str | None = None, branch: str | None = None,
                    time: str | None = None, machine: str | None = None) -> RunEntry:
    """Read a results CSV and its sidecar into a RunEntry. The commit and time come from the flags, else
    the sidecar (the seqbench checkout's commit, the run's start), else git and the file's mtime."""
    from seqbench.results.reader import check_label, read_metadata, read_results, run_machines

    p = Path(path)
    df = read_results(p)
    if df.empty:
        raise ResultsError(f"{p}: has a header but no rows; the run recorded no points")
    meta = read_metadata(p)
    run_ids = sorted({str(r) for r in df["run_id"]})
    if machine is not None:
        machine = check_label(machine, "--machine")
    else:
        labels = run_machines(meta)
        found = sorted({labels.get(r, "unknown") for r in run_ids})
        if len(found) > 1:
            raise ResultsError(f"{p}: holds runs of {len(found)} machines ({', '.join(found)}); add each machine's "
                               "file, or name one with --machine")
        machine = found[0]
    given = commit
    commit = commit or _sidecar_commit(meta) or _git_head(p)
    if not commit:
        raise ResultsError(f"{p}: no commit in its sidecar and not inside a git checkout; give --commit SHA")
    commit = _check_ref(commit, "--commit" if given else f"{p}: commit", _COMMIT, _COMMIT_IS)  # shown on every page
    branch = _check_ref(branch, "--branch", _BRANCH, _BRANCH_IS) if branch else branch
    time = _parse_time(time, "--time") if time else _sidecar_time(meta) or _mtime(p)
    entry = RunEntry(source=str(p), machine=machine, commit=commit, branch=branch, time=time, run_ids=run_ids,
                     sidecar=meta)
    groups: dict[str, list[dict]] = {}
    for rec in df.to_dict("records"):
        groups.setdefault(point_key(rec), []).append(rec)
    for key, recs in groups.items():
        entry.points.append(_point_entry(key, recs))
    return entry


def _point_entry(key: str, recs: list[dict]) -> PointEntry:
    ident = {c: recs[0][c] for c in KEY_COLUMNS}
    ident = {c: (_truthy(v) if c == "causal" else int(v) if c in _SHORT else str(v)) for c, v in ident.items()}
    ok = [r for r in recs if r["status"] == "ok"]
    rows, pooled = [], []
    for r in recs:
        samples = parse_samples(r.get("samples_s", "")) if r["status"] == "ok" else []
        pooled += samples
        row = {k: _plain(v) for k, v in r.items() if k != "samples_s"}
        row["_n_samples"] = len(samples)
        rows.append(row)
    if ok and pooled:
        arr = np.asarray(pooled, dtype=float)
        med, lo, hi = median_interval(arr)
        return PointEntry(key, ident, "ok", med, lo, hi, len(arr), pack_samples(arr), json.dumps(rows))
    return PointEntry(key, ident, recs[-1]["status"], None, None, None, 0, None, json.dumps(rows))


def _plain(v):
    """A pandas cell -> a JSON value (NA -> None, numpy scalars -> Python)."""
    if v is None:
        return None
    try:
        if v != v:  # NaN, pd.NA raises TypeError on bool()
            return None
    except TypeError:
        return None
    return v.item() if hasattr(v, "item") else v


_COMMIT = r"[0-9A-Za-z][0-9A-Za-z._+~^/-]{0,99}"  # a SHA (with git's -dirty), a tag, HEAD~1
_COMMIT_IS = "a commit (a SHA, a tag or HEAD~1): letters, digits and . _ - / + ~ ^"
_BRANCH = r"[^\s<>\"'`\\~^:?*\[\x00-\x1f\x7f]{1,200}"  # what git allows in a branch name, less <>"'`
_BRANCH_IS = "a git branch name: no spaces, control characters, markup (<>\"'`) or \\~^:?*["


def _check_ref(text: str, what: str, pattern: str, kind: str) -> str:
    """A commit or branch as the store keeps it and every page shows it: one token, no markup."""
    import re

    if not re.fullmatch(pattern, str(text)):
        shown = str(text) if len(str(text)) <= 40 else f"{str(text)[:40]}..."
        raise ResultsError(f"{what} {shown!r} is not {kind}")
    return str(text)


def _sidecar_commit(meta: dict) -> str | None:
    env = meta.get("environment") or {}
    c = env.get("git_commit")
    return str(c) if c else None


def _sidecar_time(meta: dict) -> str | None:
    t = meta.get("started_at")
    if not t:
        return None
    try:
        return _parse_time(str(t), "started_at")
    except ResultsError:
        return None


def _parse_time(text: str, what: str) -> str:
    """ISO 8601 -> UTC 'YYYY-MM-DDTHH:MM:SS+00:00' (a time without a zone is taken as UTC)."""
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ResultsError(f"{what} {text!r} is not an ISO 8601 time (e.g. 2026-12-03T08:00:00Z)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).isoformat(timespec="seconds")


def _mtime(p: Path) -> str:
    return datetime.fromtimestamp(p.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")


def _git_head(p: Path) -> str | None:
    from seqbench.measure.env import git_commit

    return git_commit(p.resolve().parent)
