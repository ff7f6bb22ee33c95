"""`seqbench ab --runs auto`: after every pass, decide the points that can be decided (analysis.sequential)
and name the ones still open, so the next runs measure only those; at the end, a Comparison.

The run values are compare's own (compare.run_statistics, run_value, drop_slow_runs, split_by_load):
the sequential test differs from `seqbench compare` only in how it turns them into a verdict.
"""

from __future__ import annotations

import math

from seqbench.analysis import sequential as seq
from seqbench.analysis.compare import (DEFAULT_FAIL_ON, STATISTIC, Comparison, PointResult, _groups, _key_dict,
                                       check_options, drop_slow_runs, loaded_in_sidecar, run_statistics, run_value,
                                       split_by_load)
from seqbench.choices import Verdict


class AutoJudge:
    """decide(result) for orchestration.ab.run_ab_auto; comparison() once it has stopped."""

    def __init__(self, base_csv, head_csv, *, threshold: float = 0.05, alpha: float = 0.01, beta: float = seq.BETA,
                 max_runs: int = seq.DEFAULT_MAX_RUNS, statistic: str = STATISTIC, normalize: str = "none",
                 fail_on=DEFAULT_FAIL_ON, allow_missing: bool = False, read=None) -> None:
        self.fail = check_options(threshold=threshold, alpha=alpha, statistic=statistic, normalize=normalize,
                                  fail_on=fail_on)
        self.paths = (base_csv, head_csv)
        self.threshold, self.alpha, self.beta, self.max_runs = threshold, alpha, beta, max_runs
        self.statistic, self.normalize, self.allow_missing = statistic, normalize, allow_missing
        self.design: seq.Design | None = None
        self.final: dict[tuple, PointResult] = {}  # decided points: their verdict at the look that decided them
        self.history: dict[tuple, list[dict]] = {}
        self.latest: dict[tuple, PointResult] = {}
        self.only: tuple[list, list] = ([], [])
        self.components: dict[tuple, dict] = {}
        self._read = read

    def read(self):
        if self._read:
            return self._read(*self.paths)
        from seqbench.results.reader import read_results

        return read_results(self.paths[0]), read_results(self.paths[1])

    def __call__(self, result) -> dict | None:
        base, head = self.read()
        gb, gh = _groups(base), _groups(head)
        common = [k for k in gb if k in gh]
        self.only = ([_key_dict(k) for k in gb if k not in gh], [_key_dict(k) for k in gh if k not in gb])
        if self.design is None:  # fixed at the first look: every point of the sweep counts in alpha's share
            self.design = seq.Design(self.threshold, self.alpha, self.beta, self.max_runs, points=len(common))
        loaded = loaded_runs(result, {"base": base, "head": head})
        if self._read is None:  # and what each run's own sidecar record says (earlier --append runs too)
            loaded |= loaded_in_sidecar(self.paths[0]) | loaded_in_sidecar(self.paths[1])
        for key in common:
            if key not in self.final:
                self._look(key, gb[key], gh[key], loaded)
        open_keys = [k for k in common if k not in self.final]
        if not open_keys:
            return None
        return open_points([_key_dict(k) for k in open_keys], [_key_dict(k) for k in common])

    def _look(self, key, b_rows, h_rows, loaded) -> None:
        res = PointResult(key=_key_dict(key), verdict=Verdict.INCONCLUSIVE)
        self.latest[key] = res
        # the point's rows as plain dicts (compare._groups)
        b_ok, h_ok = [r for r in b_rows if r["status"] == "ok"], [r for r in h_rows if r["status"] == "ok"]
        if len(h_rows) > len(h_ok) and len(b_rows) == len(b_ok) or not h_ok and b_ok:
            res.verdict, res.note = Verdict.FAILED, "fails in the candidate"
            self.final[key] = res
            return
        if not b_ok:
            res.note = "fails in the baseline"
            self.final[key] = res
            return
        where = res.name()
        runs_b = run_statistics(b_ok, normalize=self.normalize, statistic=self.statistic, where=f"base: {where}")
        runs_h = run_statistics(h_ok, normalize=self.normalize, statistic=self.statistic, where=f"head: {where}")
        comp = seq.components(list(runs_b.values()) + list(runs_h.values()))
        if comp:
            self.components[key] = comp.to_json()
        lk = judge_point(res, runs_b, runs_h, loaded, self.design)
        notes = [res.note] if res.note else []
        self.history.setdefault(key, []).append(
            {"runs": [lk.n_base, lk.n_head], "ratio": round(lk.ratio, 5), "verdict": lk.verdict,
             "ci": None if lk.ci_low is None else [_finite(lk.ci_low), _finite(lk.ci_high)],
             "eq": None if lk.eq_low is None else [_finite(lk.eq_low), _finite(lk.eq_high)]})
        if lk.verdict:
            res.verdict = lk.verdict
            notes.append(f"decided after {min(lk.n_base, lk.n_head)} runs a side")
            self.final[key] = res
        elif seq.hopeless(lk, self.design):
            notes.append(f"given up after {min(lk.n_base, lk.n_head)} runs a side: at this change and spread it "
                         f"would need over {2 * self.max_runs} runs a side")
            self.final[key] = res
        elif lk.se and math.isfinite(lk.se):
            sd = lk.se / math.sqrt(1 / lk.n_base + 1 / lk.n_head)
            need = seq.runs_needed(math.log(lk.ratio), sd, self.design)
            res.mde = None
            notes.append(f"open after {min(lk.n_base, lk.n_head)} runs a side"
                         + (f"; needs ~{need} runs a side at this change and spread" if need else ""))
        res.note = "; ".join(notes)

    def comparison(self) -> Comparison:
        keys = list(self.latest)
        points = [self.final.get(k, self.latest[k]) for k in keys]
        comp = Comparison(points, self.only[0], self.only[1], self.threshold, self.alpha, self.normalize,
                          self.statistic, self.fail, self.allow_missing)
        if self.design:
            comp.method_lines = method_lines(comp, self.design)
            comp.sequential = {"design": self.design.describe(), "alpha_look": self.design.alpha_look,
                               "beta": self.beta, "max_runs": self.max_runs,
                               "looks": {points[i].name(): self.history.get(k, []) for i, k in enumerate(keys)},
                               "components": {points[i].name(): self.components.get(k) for i, k in enumerate(keys)}}
        return comp


def open_points(open_keys: list[dict], all_keys: list[dict]) -> dict:
    """The next runs' limits: the kernels, T and B of the open points (`run --kernels/--seq-lens/--batch-sizes`)
    and, when those select more of the sweep's points than are open, the open points themselves (`run
    --points`), so a run does not measure again what is decided (its new rows would be ignored: only time)."""
    limits = {"kernels": sorted({k["kernel"] for k in open_keys}), "seq_lens": sorted({k["seq_len"] for k in open_keys}),
              "batch_sizes": sorted({k["batch_size"] for k in open_keys})}
    selected = [k for k in all_keys if k["kernel"] in limits["kernels"] and k["seq_len"] in limits["seq_lens"]
                and k["batch_size"] in limits["batch_sizes"]]
    if len(selected) > len(open_keys):
        limits["points"] = sorted({f"{k['kernel']}:{k['seq_len']}:{k['batch_size']}:{k['mode']}" for k in open_keys})
    return limits


def _finite(x: float) -> float | None:
    """JSON has no infinity: an unbounded end of an interval (2 runs a side) is null."""
    return round(x, 5) if math.isfinite(x) else None


def judge_point(res: PointResult, runs_b: dict, runs_h: dict, loaded, design: seq.Design) -> seq.Look:
    """One point at one look, from {run_id: [round statistics]} of each side: the runs measured alike
    (split_by_load), disturbed runs left out (drop_slow_runs), then the sequential test. Fills res."""
    res.base_rounds, res.head_rounds = sum(map(len, runs_b.values())), sum(map(len, runs_h.values()))
    block = {rid: i // seq.BLOCK for runs in (runs_b, runs_h) for i, rid in enumerate(runs)}  # k-th run: pass k
    taken = min(len(runs_b), len(runs_h))  # the look: runs a side so far, before any is left out
    runs_b, runs_h, can_call, why = split_by_load(runs_b, runs_h, loaded)
    res.load_mismatch = not can_call
    (vb, res.base_dropped), (vh, res.head_dropped) = _drop_slow(runs_b, block), _drop_slow(runs_h, block)
    res.base_runs, res.head_runs = len(runs_b), len(runs_h)
    res.base_value = math.exp(sum(math.log(x) for _, x in vb) / len(vb))
    res.head_value = math.exp(sum(math.log(x) for _, x in vh) / len(vh))
    lk = seq.look(vb, vh, design, can_call=can_call, at=taken)
    res.ratio, res.ci_low, res.ci_high = lk.ratio, lk.ci_low, lk.ci_high
    if lk.verdict == "unchanged":  # show the interval that decided it
        res.ci_low, res.ci_high = lk.eq_low, lk.eq_high
    notes = [why] if why else []
    if res.base_dropped or res.head_dropped:
        notes.append(f"left out {res.base_dropped + res.head_dropped} disturbed run(s) (over 10% slower than "
                     "their side's median run)")
    res.note = "; ".join(notes)
    return lk


def _drop_slow(runs: dict, block: dict) -> tuple[list[tuple[int, float]], int]:
    """(block, run value) of the runs drop_slow_runs keeps (compare's rule), and how many it left out."""
    values = [run_value(r) for r in runs.values()]
    kept, dropped = drop_slow_runs(values)
    if not dropped:
        return [(block[rid], v) for rid, v in zip(runs, values)], 0
    cut = max(kept)
    return [(block[rid], v) for rid, v in zip(runs, values) if v <= cut], dropped


def method_lines(comp: Comparison, design: seq.Design) -> list[str]:
    return [
        f"base/head {comp.statistic}: each run's fastest round, geometric mean over runs; runs added a pass at a "
        f"time (--runs auto) until every point was decided or --max-runs {design.max_runs} / --budget; each ABBA "
        "block of 4 runs is a block of the test (log run value = block + side), so drift between blocks cancels.",
        f"change = head/base ± half the interval that decided it: a change when its {1 - design.alpha_look:.3%} "
        f"interval excludes 0 (alpha {design.alpha:g} shared by {design.points} points x {design.calling_looks} looks: "
        f"at most alpha false alarms in all, whenever it stops), unchanged when its {1 - 2 * design.beta:.0%} "
        f"interval lies within ±{design.threshold:.0%}; open points show the former.",
    ]


def loaded_runs(result, frames: dict) -> set[str]:
    """run_ids of the runs ab measured under load: a side's k-th new run_id (CSV order) is its k-th run
    of this ab invocation; runs appended by an earlier invocation have no load record here."""
    out: set[str] = set()
    for side, df in frames.items():
        ids = list(dict.fromkeys(str(r) for r in df["run_id"]))
        recs = [r for r in result.runs if r.side == side]
        first = len(ids) - len(recs)
        for rid, rec in zip(ids[max(0, first):], recs[max(0, -first):]):
            if rec.loaded:
                out.add(rid)
    return out
