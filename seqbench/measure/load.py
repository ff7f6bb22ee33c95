"""The machine's load, read cheaply from /proc: was anything else competing for the cores we time on?

One `sample()` reads /proc/loadavg, the cores this process may use (affinity, cgroup quota), the CPU
frequency where readable, and how much CPU the *other* processes used over a short window (two scans
of /proc/<pid>/stat, `window` seconds apart; a few ms of work plus the wait). Every figure is None
where the system does not expose it (no /proc: macOS, Windows), never a guess.

`busy_cores` (CPU the other processes used over the window, in cores) is what decides whether a
measurement was disturbed: the load average counts our own threads and lags by minutes, so it is
recorded but not judged on.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

PROC = Path("/proc")
# A process counts as busy when it used at least this share of one core over the window.
BUSY_SHARE = 0.5


@dataclass(frozen=True)
class Load:
    at: str                                # UTC time of the sample (end of the window)
    cores: int                             # cores this process may use (affinity, then cgroup quota)
    loadavg_1m: float | None = None
    loadavg_5m: float | None = None
    loadavg_15m: float | None = None
    busy_cores: float | None = None        # CPU used by other processes over the window, in cores
    busy_processes: int | None = None      # other processes that used >= BUSY_SHARE of a core
    busiest: list[str] = field(default_factory=list)  # "name (pid) 0.98 cores": top 3 using >= 0.1 core
    window_s: float | None = None
    cpu_mhz: float | None = None           # mean current frequency over the cores, where readable
    cpu_max_mhz: float | None = None

    @property
    def free_cores(self) -> float | None:
        """Cores left for us: the cores we may use minus what the others used (None if unknown)."""
        return None if self.busy_cores is None else max(0.0, self.cores - self.busy_cores)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["free_cores"] = None if self.free_cores is None else round(self.free_cores, 2)
        return d


def loaded(load: dict | Load | None, threads: int) -> str | None:
    """Why a run on `threads` threads was competing with other work at this sample (None if not, or unknown).

    Disturbed when the other processes used more cores than the run left free (cores - threads): then
    some of the run's threads had to share a core.
    """
    if load is None:
        return None
    d = load.as_dict() if isinstance(load, Load) else load
    busy, cores = d.get("busy_cores"), d.get("cores")
    if busy is None or not cores or (d.get("seconds") or 1.0) < 0.5:  # too short a stretch to judge
        return None
    free = cores - max(1, int(threads or 1))
    if busy > free + 0.25:  # a quarter core of slack: shells, the kernel's own threads
        return (f"other processes used {busy:.1f} of {cores} cores while the run needed {threads} "
                f"({_names(d)})")
    return None


def _names(d: dict) -> str:
    busiest = d.get("busiest") or []
    return "busiest: " + ", ".join(busiest) if busiest else f"{d.get('busy_processes') or 0} busy processes"


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup CPU quota (containers, CI)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, int(quota + 0.5)))
    return max(1, cores)


def _cgroup_quota() -> float | None:
    """The CPU quota in cores (cgroup v2 cpu.max or v1 cfs_quota_us/cfs_period_us), None if unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def _loadavg(proc: Path) -> tuple[float | None, float | None, float | None]:
    try:
        a, b, c = (float(x) for x in (proc / "loadavg").read_text().split()[:3])
        return a, b, c
    except (OSError, ValueError):
        pass
    try:  # macOS and the BSDs have no /proc but do have getloadavg
        a, b, c = os.getloadavg()
        return round(a, 2), round(b, 2), round(c, 2)
    except (AttributeError, OSError):
        return None, None, None


def _cpu_mhz() -> tuple[float | None, float | None]:
    """(mean current MHz, max MHz) from cpufreq, else /proc/cpuinfo's "cpu MHz" (no max there)."""
    cur, top = [], []
    for d in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq"):
        try:
            cur.append(int((d / "scaling_cur_freq").read_text()) / 1000)
            top.append(int((d / "cpuinfo_max_freq").read_text()) / 1000)
        except (OSError, ValueError):
            continue
    if cur:
        return round(sum(cur) / len(cur), 1), round(max(top), 1) if top else None
    try:
        mhz = [float(line.split(":", 1)[1]) for line in (PROC / "cpuinfo").read_text().splitlines()
               if line.startswith("cpu MHz")]
    except (OSError, ValueError):
        mhz = []
    return (round(sum(mhz) / len(mhz), 1) if mhz else None), None


def _cpu_ticks(proc: Path, skip: set[int]) -> dict[int, tuple[str, int]]:
    """{pid: (name, utime+stime in clock ticks)} of every process but those in `skip`."""
    out = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:  # gone between the listing and the read
            continue
        # "pid (comm) state ppid ..." where comm may hold spaces and parentheses: split at the last ')'
        head, _, rest = text.rpartition(")")
        fields = rest.split()
        try:
            out[int(entry.name)] = (head.partition("(")[2], int(fields[11]) + int(fields[12]))
        except (IndexError, ValueError):
            continue
    return out


def usage(before: dict, after: dict, window_ticks: float, busy_share: float = BUSY_SHARE):
    """(busy cores, busy processes, busiest three) from two _cpu_ticks scans `window_ticks` apart."""
    used = {pid: (name, (ticks - before[pid][1]) / window_ticks)
            for pid, (name, ticks) in after.items() if pid in before}
    busy_cores = round(sum(u for _, u in used.values()), 2)
    ranked = sorted(((u, name, pid) for pid, (name, u) in used.items() if u >= 0.1), reverse=True)
    busiest = [f"{name} ({pid}) {u:.2f} cores" for u, name, pid in ranked[:3]]
    return busy_cores, sum(1 for u, _, _ in ranked if u >= busy_share), busiest


def window_from_env(default: float = 0.1) -> float | None:
    """The sampling window in seconds: SEQBENCH_LOAD_WINDOW if set, else `default`; None when it is
    "off" (no load is sampled or recorded: the test suite's setting, so that the other work on a shared
    machine cannot add warnings to the output the tests check)."""
    value = os.environ.get("SEQBENCH_LOAD_WINDOW", "").strip().lower()
    if value == "off":
        return None
    try:
        return max(0.0, float(value)) if value else default
    except ValueError:
        return default


def sample(window: float = 0.2, *, exclude: tuple[int, ...] = (), proc: Path | None = None,
           busy_share: float = BUSY_SHARE) -> Load:
    """The machine's load now. window: seconds over which other processes' CPU use is measured (0
    skips that part); exclude: pids not counted as "other" besides this process (e.g. a child run);
    busy_share: the share of one core from which a process counts in busy_processes."""
    return _sample(window, exclude, proc, busy_share)[0]


def _sample(window, exclude, proc, busy_share):
    """(Load, the last scan of /proc or None, its perf_counter time)."""
    proc = PROC if proc is None else proc
    skip = {os.getpid(), *exclude}
    l1, l5, l15 = _loadavg(proc)
    busy_cores = busy_processes = None
    busiest: list[str] = []
    last, t_last = None, time.perf_counter()
    if proc.is_dir():
        try:
            tick = os.sysconf("SC_CLK_TCK")
        except (AttributeError, ValueError, OSError):
            tick = 100
        t0 = time.perf_counter()
        last = _cpu_ticks(proc, skip)
        t_last = time.perf_counter()
        if window > 0:
            time.sleep(window)
            before, last = last, _cpu_ticks(proc, skip)
            t_last = time.perf_counter()
            busy_cores, busy_processes, busiest = usage(before, last, (t_last - t0) * tick, busy_share)
    mhz, max_mhz = _cpu_mhz()
    return (Load(at=datetime.now(timezone.utc).isoformat(timespec="seconds"), cores=available_cores(),
                 loadavg_1m=l1, loadavg_5m=l5, loadavg_15m=l15, busy_cores=busy_cores,
                 busy_processes=busy_processes, busiest=busiest, window_s=window if busy_cores is not None else None,
                 cpu_mhz=mhz, cpu_max_mhz=max_mhz), last, t_last)


class Watch:
    """The load at the start and end of a stretch of work, and what other processes used in between.

        watch = Watch()
        watch.start()            # a Load sample (window seconds)
        ...                      # the measured work
        watch.stop()             # another sample, and `during`: other processes' CPU over the whole stretch
        meta["load"] = watch.as_dict()

    `during` covers processes alive at both ends (one that ran and exited in between is missed: the
    start/end samples and the per-point IQR are the other witnesses).
    """

    def __init__(self, window: float | None = None, *, exclude: tuple[int, ...] = (), proc: Path | None = None):
        self.window = window_from_env() if window is None else window
        self.enabled = self.window is not None
        self.exclude, self.proc = exclude, proc
        self.at_start = self.at_end = None
        self.during: dict | None = None
        self._scan = None
        self._t = 0.0

    def start(self) -> Load | None:
        if not self.enabled:
            return None
        self.at_start, self._scan, self._t = _sample(self.window, self.exclude, self.proc, BUSY_SHARE)
        return self.at_start

    def stop(self) -> Load | None:
        if not self.enabled:
            return None
        proc = PROC if self.proc is None else self.proc
        if self._scan is not None and proc.is_dir():
            try:
                tick = os.sysconf("SC_CLK_TCK")
            except (AttributeError, ValueError, OSError):
                tick = 100
            now = _cpu_ticks(proc, {os.getpid(), *self.exclude})
            seconds = time.perf_counter() - self._t
            if seconds > 0:
                cores, busy, busiest = usage(self._scan, now, seconds * tick)
                self.during = {"seconds": round(seconds, 3), "busy_cores": cores, "busy_processes": busy,
                               "busiest": busiest, "cores": self.at_start.cores}
        self.at_end = _sample(self.window, self.exclude, self.proc, BUSY_SHARE)[0]
        return self.at_end

    def as_dict(self) -> dict | None:
        if not self.enabled:
            return None
        return {"start": self.at_start and self.at_start.as_dict(), "during": self.during,
                "end": self.at_end and self.at_end.as_dict()}


def disturbances(record: dict | None, threads: int) -> list[str]:
    """Why a run's load record (Watch.as_dict(), the sidecar's "load") says the run shared its cores:
    one line per moment (start, during, end) whose load left the run fewer cores than it needed."""
    out = []
    for moment in ("start", "during", "end"):
        why = loaded((record or {}).get(moment), threads)
        if why:
            out.append(f"{'during the run' if moment == 'during' else 'at the ' + moment}: {why}")
    return out
