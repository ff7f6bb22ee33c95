"""`seqbench history check`: change points per machine and point over commit order, their sizes with
intervals, what was accepted, slow creeps; the exit code CI reads.

A series is one point on one machine: one value per commit (the median of that commit's runs' medians,
in seconds), in the order the commits were first run. Change points are found over the whole series
(so a level has its history as context); --last / --since only narrow which of them can fail the check.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from seqbench.analysis.changepoints import MIN_SIZE, e_divisive, step_size, trend
from seqbench.errors import ConfigError, ExitCode

TREND_WINDOW = 20  # commits the creep trend is fitted over


@dataclass
class Change:
    machine: str
    point: str
    before: str  # the last commit of the old level
    after: str  # the first commit of the new level: the change lies in before..after
    time: str  # when `after` was run
    size: float  # after / before - 1 (time: > 0 is slower)
    lo: float
    hi: float
    p_value: float
    direction: str  # regression | improvement
    in_window: bool  # after lies among the commits checked (--last / --since)
    beyond: bool  # |size| >= threshold
    accepted: str | None = None  # the note of the `history accept` that covers it

    @property
    def fails(self) -> bool:
        return self.in_window and self.beyond and self.direction == "regression" and self.accepted is None


@dataclass
class Creep:
    machine: str
    point: str
    first: str
    last: str
    commits: int
    per_commit: float
    lo: float
    hi: float
    total: float  # over the window
    beyond: bool  # slower by >= threshold over the window, interval above 0, no step beyond the threshold inside it


@dataclass
class HistoryCheck:
    threshold: float
    window: str  # which commits were checked, in words
    series: int
    commits: dict[str, int]  # machine -> commits stored
    changes: list[Change] = field(default_factory=list)
    creeps: list[Creep] = field(default_factory=list)
    fail_on_creep: bool = False
    method: str = ""

    @property
    def failing(self) -> list[Change]:
        return [c for c in self.changes if c.fails]

    @property
    def exit_code(self) -> int:
        creep = self.fail_on_creep and any(c.beyond for c in self.creeps)
        return ExitCode.REGRESSION if self.failing or creep else ExitCode.OK

    def as_dict(self) -> dict:
        return {"threshold": self.threshold, "window": self.window, "series": self.series, "commits": self.commits,
                "method": self.method, "exit_code": int(self.exit_code),
                "changes": [{**asdict(c), "fails": c.fails} for c in self.changes],
                "creeps": [asdict(c) for c in self.creeps]}


def commit_series(df):
    """Stored measurements -> one row per machine, point and commit (value: the median of that commit's
    runs' medians; time: its first run), ordered by that time."""
    g = df.groupby(["machine", "point", "commit"], sort=False)
    out = g.agg(time=("time", "min"), value=("median_s", "median"), runs=("run", "nunique")).reset_index()
    return out.sort_values(["machine", "point", "time"], kind="stable", ignore_index=True)


def machine_commits(df) -> dict[str, list[tuple[str, str]]]:
    """machine -> [(commit, first time)] in the order they were first run."""
    first = df.groupby(["machine", "commit"])["time"].min().reset_index().sort_values(["machine", "time"], kind="stable")
    return {m: list(zip(g["commit"], g["time"])) for m, g in first.groupby("machine", sort=True)}


def checked_commits(commits: list[tuple[str, str]], last: int | None, since: str | None) -> set[str]:
    """The commits whose changes can fail the check: all, the last N, or those after --since."""
    chosen = commits
    if last is not None:
        if last < 1:
            raise ConfigError(f"--last {last}: must be a number of commits >= 1")
        chosen = chosen[-last:]
    if since:
        when = _as_time(since)
        if when is not None:
            chosen = [(c, t) for c, t in chosen if t > when]
        else:
            hits = [i for i, (c, _) in enumerate(commits) if c.startswith(since)]
            if not hits:
                raise ConfigError(f"--since {since!r}: neither a stored commit (or prefix) nor an ISO date")
            later = {c for c, _ in commits[hits[-1] + 1:]}
            chosen = [(c, t) for c, t in chosen if c in later]
    return {c for c, _ in chosen}


def _as_time(text: str) -> str | None:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).isoformat(timespec="seconds")


def _accepted_by(change: Change, accepted: list[dict]) -> str | None:
    for a in accepted:
        if (change.after.startswith(a["commit_sha"]) and fnmatch.fnmatchcase(change.point, a["point"])
                and fnmatch.fnmatchcase(change.machine, a["machine"])):
            return a["note"] or f"accepted {a['added_at']}"
    return None


def check_history(df, *, threshold: float = 0.05, last: int | None = None, since: str | None = None,
                  accepted: list[dict] = (), machine: str | None = None, point: str | None = None,
                  test: str = "permutation", fail_on_creep: bool = False, trend_window: int = TREND_WINDOW) -> HistoryCheck:
    """Find the change points of every series in df (Store.measurements()); see the module docstring."""
    if machine:
        df = df[df["machine"] == machine]
    if point:
        df = df[[fnmatch.fnmatchcase(p, point) for p in df["point"]]]
    per_machine = machine_commits(df)
    windows = {m: checked_commits(c, last, since) for m, c in per_machine.items()}
    words = (f"the last {last} commits" if last else "") + (" " if last and since else "") + \
            (f"after {since}" if since else "")
    result = HistoryCheck(threshold=threshold, window=words or "every stored commit", series=0,
                          commits={m: len(c) for m, c in per_machine.items()}, fail_on_creep=fail_on_creep,
                          method=f"E-divisive means, {test} test, >= {MIN_SIZE} commits a side")
    for (m, p), s in commit_series(df).groupby(["machine", "point"], sort=True):
        result.series += 1
        commits, times, values = list(s["commit"]), list(s["time"]), s["value"].to_numpy(float)
        cps = e_divisive(values, test=test)
        idx = [0] + [i for i, _ in cps] + [len(values)]
        for k, (i, pv) in enumerate(cps, start=1):
            st = step_size(values[idx[k - 1]:i], values[i:idx[k + 1]])
            ch = Change(machine=m, point=p, before=commits[i - 1], after=commits[i], time=times[i], size=st.size,
                        lo=st.lo, hi=st.hi, p_value=float(pv), direction="regression" if st.size > 0 else "improvement",
                        in_window=commits[i] in windows[m], beyond=abs(st.size) >= threshold)
            ch.accepted = _accepted_by(ch, list(accepted))
            result.changes.append(ch)
        tail = values[-trend_window:]
        tr = trend(tail)
        if tr is not None:
            start = len(values) - len(tail)
            # a creep is what no single step explains: steps inside the window each within the threshold
            inside = any(c.point == p and c.machine == m and c.beyond and commits.index(c.after) > start
                         for c in result.changes)
            result.creeps.append(Creep(machine=m, point=p, first=commits[start], last=commits[-1], commits=tr.commits,
                                       per_commit=tr.per_commit, lo=tr.lo, hi=tr.hi, total=tr.total,
                                       beyond=tr.total >= threshold and tr.lo > 0 and not inside))
    result.changes.sort(key=lambda c: (not c.fails, -abs(c.size)))
    return result


def latest_changes(df, *, limit: int = 20, test: str = "permutation") -> list[dict]:
    """`history show`: per series its values over commits and its latest change point, the series whose
    latest change is largest first (series with none last)."""
    rows = []
    for (m, p), s in commit_series(df).groupby(["machine", "point"], sort=True):
        values = s["value"].to_numpy(float)
        commits = list(s["commit"])
        cps = e_divisive(values, test=test)
        row = {"machine": m, "point": p, "values": values.tolist(), "latest_s": float(values[-1]),
               "size": None, "lo": None, "hi": None, "after": None}
        if cps:
            idx = [0] + [i for i, _ in cps] + [len(values)]
            i = cps[-1][0]
            st = step_size(values[idx[-3]:i], values[i:])
            row.update(size=st.size, lo=st.lo, hi=st.hi, after=commits[i])
        rows.append(row)
    rows.sort(key=lambda r: -abs(r["size"]) if r["size"] is not None else 1.0)
    return rows[:limit]
