"""Fault cases of round three (issue 26's suite grown past 100): history's store and dashboard, option and
config refusals across the commands, files that another program saved. The first group broke before
this round (each says what it did then); the rest held, and are kept so that they go on holding.
Registered into fault_cases.CASES (imported at its end); in-process (cli()) throughout."""

from __future__ import annotations

import json
from pathlib import Path

from fault_cases import _all_exit, _expect, case
from fault_lab import Outcome, cli, write_config


def _results(d: Path, name: str = "a", kernels=("sdpa", "rnn_loop")) -> Path:
    """A small results CSV (and its sidecar) with known rows: one run, named after the file."""
    from dataclasses import replace

    from synthetic_results import row, write_csv

    return write_csv(d / f"{name}.csv", [replace(row(k, T, 1), run_id=f"run-{name}") for k in kernels for T in (8, 16)])


def _altered(a: Path, name: str, data: bytes) -> Path:
    """A copy of results file a (its sidecar beside it) whose CSV holds data instead: what another
    program, a cut-off write or an edit leaves."""
    p = a.with_name(f"{name}.csv")
    p.write_bytes(data)
    p.with_suffix(".json").write_bytes(a.with_suffix(".json").read_bytes())
    return p


def _header_only(a: Path, name: str) -> Path:
    return _altered(a, name, a.read_bytes().splitlines(keepends=True)[0])


def _store_runs(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from runs").fetchone()[0]


# --- what broke in round three ----------------------------------------------------------------------------

@case("r3.1", "`ab --runs 0`; `ab --runs auto --max-runs 0`", "exit 2 before any run, one line giving the "
      "allowed range (was: 0 read as 'the default', 4 runs a side measured)", 2)
def ab_zero_runs(d: Path) -> Outcome:
    cfg = write_config(d)
    outs = {"--runs 0": cli("ab", cfg, "--base", d, "--head", d, "--runs", "0", "-o", "o1", cwd=d),
            "--max-runs 0": cli("ab", cfg, "--base", d, "--head", d, "--runs", "auto", "--max-runs", "0", "-o", "o2",
                                cwd=d)}
    out = _all_exit(outs, 2)
    _expect(out, "allowed: 1 to 100" in outs["--runs 0"].err and "allowed: 2 to 100" in outs["--max-runs 0"].err,
            f"stderr: {out.first_line()}")
    _expect(out, not list(d.glob("o*/*.csv")), "a run was measured")
    return out


@case("r3.2", "`history accept` of a commit no run in the store has (a typo); of a prefix two commits share",
      "exit 2, one line: not in the store (the latest commits named) / give more of it; nothing recorded (was: "
      "exit 0, 'accepted changes at nothing-here', silencing nothing)", 2)
def history_accept_unknown_commit(d: Path) -> Outcome:
    a, b = _results(d, "a"), _results(d, "b")
    db = d / "h.db"
    for csv, sha in ((a, "abc1230000"), (b, "abc1239999")):
        added = cli("history", "add", csv, "--store", db, "--commit", sha, cwd=d)
        if added.rc:
            return added
    outs = {"typo": cli("history", "accept", "nothing-here", "--store", db, cwd=d),
            "ambiguous": cli("history", "accept", "abc123", "--store", db, cwd=d)}
    out = _all_exit(outs, 2)
    _expect(out, "not a commit of any run" in outs["typo"].err and "abc1230000" in outs["typo"].err,
            f"typo: {outs['typo'].first_line()}")
    _expect(out, "matches 2 commits" in outs["ambiguous"].err, f"ambiguous: {outs['ambiguous'].first_line()}")
    ok = cli("history", "accept", "abc1230", "--store", db, cwd=d)
    _expect(out, ok.rc == 0, f"a prefix of one commit was refused: {ok.first_line()}")
    return out


@case("r3.3", "`history add --machine` with a newline; with '='; 500 characters",
      "exit 2, one line each giving what a label may be (was: the newline stored and printed)", 2)
def history_add_bad_machine(d: Path) -> Outcome:
    a = _results(d)
    outs = {label[:12]: cli("history", "add", a, "--store", d / "h.db", "--commit", "abc1234", "--machine", label, cwd=d)
            for label in ("a\nb", "a=b", "m" * 500)}
    out = _all_exit(outs, 2)
    _expect(out, all("machine label must be a short printable name" in o.err for o in outs.values()),
            f"stderr: {out.first_line()}")
    _expect(out, not (d / "h.db").exists() or _store_runs(d / "h.db") == 0, "a run was stored")
    return out


@case("r3.4", "`history add --commit '<script>alert(1)</script>'`, `--branch '<img src=x onerror=...>'`, a commit "
      "with a space", "exit 2, one line each saying what a commit or branch may be (was: stored, and shown on the "
      "dashboard's pages)", 2)
def history_add_markup_refs(d: Path) -> Outcome:
    a = _results(d)
    db = d / "h.db"
    outs = {"commit": cli("history", "add", a, "--store", db, "--commit", "<script>alert(1)</script>", cwd=d),
            "branch": cli("history", "add", a, "--store", db, "--commit", "abc1234", "--branch",
                          "<img src=x onerror=alert(2)>", cwd=d),
            "space": cli("history", "add", a, "--store", db, "--commit", "abc 1234", cwd=d)}
    out = _all_exit(outs, 2)
    _expect(out, "is not a commit" in outs["commit"].err and "is not a git branch name" in outs["branch"].err,
            f"stderr: {out.first_line()}")
    ok = cli("history", "add", a, "--store", db, "--commit", "853871c42b82-dirty", "--branch", "feature/x-1", cwd=d)
    _expect(out, ok.rc == 0, f"a real SHA (-dirty) and branch were refused: {ok.first_line()}")
    return out


@case("r3.5", "a results CSV saved again by a spreadsheet (a UTF-8 byte-order mark before the header): compare, "
      "report", "exit 2, one line saying another program saved it (was: 'missing column schema_version')", 2)
def csv_with_bom(d: Path) -> Outcome:
    a = _results(d)
    _altered(a, "bom", b"\xef\xbb\xbf" + a.read_bytes())
    outs = {"compare": cli("compare", "bom.csv", a, cwd=d), "report": cli("report", "bom.csv", "--no-charts", cwd=d)}
    out = _all_exit(outs, 2)
    _expect(out, all("byte-order mark" in o.err for o in outs.values()), f"stderr: {out.first_line()}")
    return out


@case("r3.6", "a config saved by Notepad (a UTF-8 byte-order mark before the first key)",
      "read as the same TOML: exit 0, its points measured (was: 'not valid TOML: Invalid statement (at line 1, "
      "column 1)')", 0)
def config_with_bom(d: Path) -> Outcome:
    from fault_lab import count

    cfg = write_config(d)
    cfg.write_bytes(b"\xef\xbb\xbf" + cfg.read_bytes())
    out = cli("run", cfg, "-o", "r.csv", "--no-peak", "-q", cwd=d)
    return count(out, d / "r.csv", 2)


@case("r3.7", "`report --recurrence sdpa --attention 'sd*'` (one kernel on both sides)", "exit 2, one line naming "
      "the kernel (was: exit 0, a report saying there was no comparison to make)", 2)
def report_kernel_on_both_sides(d: Path) -> Outcome:
    a = _results(d)
    out = cli("report", a, "--recurrence", "sdpa", "--attention", "sd*", "--no-charts", "-o", "r.md", cwd=d)
    _expect(out, "both take sdpa" in out.err, f"stderr: {out.first_line()}")
    _expect(out, not (d / "r.md").exists(), "a report was written")
    return out


# --- held: history ---------------------------------------------------------------------------------------

@case("r3.8", "`history add` of a TOML config, of a truncated CSV, of a header-only CSV",
      "exit 2, one line each naming the file and what is wrong; nothing stored", 2)
def history_add_not_results(d: Path) -> Outcome:
    a = _results(d)
    outs = {f: cli("history", "add", f, "--store", d / "s.db", "--commit", "abc1234", cwd=d)
            for f in (write_config(d), _altered(a, "t", a.read_bytes()[:300]), _header_only(a, "h"))}
    out = _all_exit(outs, 2)
    _expect(out, not (d / "s.db").exists() or _store_runs(d / "s.db") == 0, "something was stored")
    return out


@case("r3.9", "`history add` of the same run twice (and once more under another commit)",
      "exit 0, the second and third say it is already there; the store holds it once", 0)
def history_add_twice(d: Path) -> Outcome:
    a = _results(d)
    db = d / "h.db"
    outs = [cli("history", "add", a, "--store", db, "--commit", c, cwd=d) for c in ("abc1234", "abc1234", "fed9876")]
    out = _all_exit(dict(enumerate(outs)), 0)
    _expect(out, all("already in the store" in o.err for o in outs[1:]), f"stderr: {outs[1].first_line()}")
    _expect(out, _store_runs(db) == 1, f"{_store_runs(db)} runs stored")
    return out


@case("r3.10", "a store that is not a database (a text file); `history check`/`show` of a store that does not exist",
      "exit 2, one line each ('not a SQLite database' / 'no such store'); no file created", 2)
def history_bad_store(d: Path) -> Outcome:
    a = _results(d)
    (d / "bad.db").write_text("not sqlite\n")
    outs = {"text": cli("history", "add", a, "--store", d / "bad.db", "--commit", "abc1234", cwd=d),
            "check": cli("history", "check", "--store", d / "none.db", cwd=d),
            "show": cli("history", "show", "--store", d / "none2.db", cwd=d)}
    out = _all_exit(outs, 2)
    _expect(out, "not a SQLite database" in outs["text"].err and "no such store" in outs["check"].err,
            f"stderr: {out.first_line()}")
    _expect(out, not (d / "none.db").exists() and not (d / "none2.db").exists(), "a store was created by a reader")
    _expect(out, (d / "bad.db").read_text() == "not sqlite\n", "the user's file changed")
    return out


@case("r3.11", "`--store postgresql://` of a server that refuses the connection; `--store mysql://x/y`",
      "exit 2, one line each: the connection's error / the allowed kinds of store", 2)
def history_store_urls(d: Path) -> Outcome:
    a = _results(d)
    outs = {"refused": cli("history", "add", a, "--store", "postgresql://nobody@127.0.0.1:1/x", "--commit", "abc1234",
                           cwd=d),
            "mysql": cli("history", "add", a, "--store", "mysql://x/y", "--commit", "abc1234", cwd=d)}
    out = _all_exit(outs, 2)
    _expect(out, "connection failed" in outs["refused"].err or "pip install" in outs["refused"].err,
            f"refused: {outs['refused'].first_line()}")
    _expect(out, "allowed: a file path" in outs["mysql"].err, f"mysql: {outs['mysql'].first_line()}")
    return out


@case("r3.12", "`history check --last 0`, `--last -3`; `history add --time yesterday`",
      "exit 2, one line each giving what is allowed", 2)
def history_bad_numbers(d: Path) -> Outcome:
    a = _results(d)
    db = d / "h.db"
    added = cli("history", "add", a, "--store", db, "--commit", "abc1234", cwd=d)
    outs = {"last 0": cli("history", "check", "--last", "0", "--store", db, cwd=d),
            "last -3": cli("history", "check", "--last", "-3", "--store", db, cwd=d),
            "time": cli("history", "add", _results(d, "b"), "--store", db, "--commit", "abc1234", "--time", "yesterday",
                        cwd=d)}
    out = _all_exit(outs, 2)
    _expect(out, added.rc == 0, f"the first add failed: {added.first_line()}")
    _expect(out, "ISO 8601" in outs["time"].err, f"time: {outs['time'].first_line()}")
    return out


@case("r3.13", "`history publish -o site` where site/index.html is the user's own page",
      "exit 2, one line (--force replaces the site); the page unchanged", 2)
def history_publish_over_users_page(d: Path) -> Outcome:
    a = _results(d)
    db = d / "h.db"
    cli("history", "add", a, "--store", db, "--commit", "abc1234", cwd=d)
    (d / "site").mkdir()
    (d / "site" / "index.html").write_text("mine\n")
    out = cli("history", "publish", "-o", "site", "--store", db, cwd=d)
    _expect(out, "--force" in out.err, f"stderr: {out.first_line()}")
    _expect(out, (d / "site" / "index.html").read_text() == "mine\n", "the user's page changed")
    return out


# --- held: compare, plot, report, merge -------------------------------------------------------------------

@case("r3.14", "compare with `--threshold -5%`, `--threshold abc`, `--alpha 2`, `--fail-on nonsense`, "
      "`--statistic foo`", "exit 2, one line each giving what is allowed (never 1, CI's regression)", 2)
def compare_bad_options(d: Path) -> Outcome:
    a = _results(d)
    outs = {" ".join(o): cli("compare", a, a, *o, cwd=d) for o in
            (("--threshold", "-5%"), ("--threshold", "abc"), ("--alpha", "2"), ("--fail-on", "nonsense"),
             ("--statistic", "foo"))}
    out = _all_exit(outs, 2)
    _expect(out, all("allowed" in o.err or "not one of" in o.err or "give a fraction" in o.err for o in outs.values()),
            f"stderr: {[o.first_line() for o in outs.values()]}")
    return out


@case("r3.15", "compare of an empty (0-byte) CSV; of a CSV with a header and no rows",
      "exit 2, one line each ('file is empty' / 'no point in common')", 2)
def compare_empty_files(d: Path) -> Outcome:
    a = _results(d)
    (d / "empty.csv").write_text("")
    _header_only(a, "hdr")
    outs = {"empty": cli("compare", "empty.csv", a, cwd=d), "header": cli("compare", "hdr.csv", a, cwd=d)}
    out = _all_exit(outs, 2)
    _expect(out, "file is empty" in outs["empty"].err, f"empty: {outs['empty'].first_line()}")
    return out


@case("r3.16", "`compare --format json --fail-on regression` where the candidate failed a point and ran out of "
      "memory at another", "exit 0, strict JSON on stdout (no NaN or Infinity a JSON parser refuses) counting "
      "the failed points", 0)
def compare_json_strict(d: Path) -> Outcome:
    import contextlib
    import io
    import os

    from synthetic_results import row, write_csv

    from fault_lab import isolated

    write_csv(d / "a.csv", [row("sdpa", 8, 1), row("sdpa", 16, 1), row("rnn_loop", 8, 1)])
    write_csv(d / "b.csv", [row("sdpa", 8, 1), row("sdpa", 16, 1, status="error", error="boom"),
                            row("rnn_loop", 8, 1, status="oom", error="out of memory")])
    from seqbench.cli import main

    here, so, se = Path.cwd(), io.StringIO(), io.StringIO()
    os.chdir(d)
    try:
        with isolated(), contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
            rc = main(["compare", "a.csv", "b.csv", "--format", "json", "--fail-on", "regression"])
    finally:
        os.chdir(here)
    out = Outcome(rc, "\n".join(ln for ln in se.getvalue().splitlines() if ln.startswith("seqbench: error")))

    def refuse(c):
        raise ValueError(c)

    try:
        data = json.loads(so.getvalue(), parse_constant=refuse)
        _expect(out, data.get("counts", {}).get("failed", 0) >= 1, f"counts: {data.get('counts')}")
    except ValueError as exc:
        out.problems.append(f"not strict JSON: {exc}")
    return out


@case("r3.17", "plot/report with `--baseline nope`, `--kernels zzz`, `--batch 999`, `--image-format tiff`",
      "exit 2, one line each naming what the results hold or the allowed formats; no chart written", 2)
def plot_bad_selections(d: Path) -> Outcome:
    a = _results(d)
    outs = {"baseline": cli("plot", a, "--baseline", "nope", "-d", "p1", cwd=d),
            "kernels": cli("plot", a, "--kernels", "zzz", "-d", "p2", cwd=d),
            "batch": cli("plot", a, "--batch", "999", "-d", "p3", cwd=d),
            "format": cli("plot", a, "--image-format", "tiff", "-d", "p4", cwd=d),
            "report baseline": cli("report", a, "--baseline", "nope", "-o", "r.md", cwd=d)}
    out = _all_exit(outs, 2)
    _expect(out, not list(d.rglob("*.png")) and not (d / "r.md").exists(), "a chart or report was written")
    return out


@case("r3.18", "`merge a.csv a.csv` (one file twice); `merge a.csv` (one file)",
      "exit 2, one line each; no output", 2)
def merge_degenerate(d: Path) -> Outcome:
    a = _results(d)
    outs = {"twice": cli("merge", a, a, "-o", "m.csv", cwd=d), "one": cli("merge", a, "-o", "m.csv", cwd=d)}
    out = _all_exit(outs, 2)
    _expect(out, not (d / "m.csv").exists(), "a merged file was written")
    return out


# --- held: run and ab flags, configs -----------------------------------------------------------------------

@case("r3.19", "a config listing a kernel twice; empty `seq_lens`; `seq_lens = [8.5]`; `[true]`; heads that do not "
      "divide d; `dtype = \"float8\"`; a misspelt field (`seq_len`)", "exit 2, one line each naming the field and "
      "what is allowed; nothing written", 2)
def config_values(d: Path) -> Outcome:
    bad = {"twice": dict(kernels=["sdpa", "sdpa"]), "empty": dict(seq_lens=[]), "float": dict(seq_lens=[8.5]),
           "bool": dict(seq_lens=[True]), "heads": dict(num_heads=3), "dtype": dict(dtype="float8"),
           "typo": dict(seq_len=[8])}
    outs = {k: cli("run", write_config(d, k, **v), "-o", f"{k}.csv", "-q", cwd=d) for k, v in bad.items()}
    out = _all_exit(outs, 2)
    _expect(out, "unknown field 'seq_len'" in outs["typo"].err, f"typo: {outs['typo'].first_line()}")
    _expect(out, not list(d.glob("*.csv")), "a CSV was written")
    return out


@case("r3.20", "`run --rounds 0`; `--shard 0/2`, `3/2`, `1/0`; `--seq-lens 99999999999999999999`",
      "exit 2 before anything is timed, one line each (the last: the memory it would need, not an overflow)", 2)
def run_bad_flags(d: Path) -> Outcome:
    cfg = write_config(d)
    outs = {"rounds": cli("run", cfg, "--rounds", "0", "-o", "r.csv", cwd=d)}
    for s in ("0/2", "3/2", "1/0"):
        outs[s] = cli("run", cfg, "--shard", s, "-o", "r.csv", cwd=d)
    outs["huge T"] = cli("run", "--kernels", "rnn_loop", "--seq-lens", "99999999999999999999", "--batch-sizes", "1",
                         "-o", "r.csv", cwd=d)
    out = _all_exit(outs, 2)
    _expect(out, "needs about" in outs["huge T"].err, f"huge T: {outs['huge T'].first_line()}")
    _expect(out, not (d / "r.csv").exists(), "a CSV was written")
    return out


@case("r3.21", "`--metric instructions` with `--device cuda`, with `--threads 2`, with `--reference`; and with no "
      "valgrind on PATH", "exit 2 before anything runs, one line each saying why (the last: how to install "
      "Valgrind)", 2)
def instructions_refusals(d: Path) -> Outcome:
    cfg = write_config(d)
    outs = {"cuda": cli("run", cfg, "--metric", "instructions", "--device", "cuda", "-o", "a.csv", cwd=d),
            "threads": cli("run", cfg, "--metric", "instructions", "--threads", "2", "-o", "b.csv", cwd=d),
            "reference": cli("run", cfg, "--metric", "instructions", "--reference", "-o", "c.csv", cwd=d),
            "no valgrind": cli("run", cfg, "--metric", "instructions", "--no-peak", "-o", "e.csv", cwd=d,
                               PATH=str(d))}
    out = _all_exit(outs, 2)
    _expect(out, "install" in outs["no valgrind"].err.lower(), f"no valgrind: {outs['no valgrind'].first_line()}")
    _expect(out, not list(d.glob("*.csv")), "a CSV was written")
    return out


@case("r3.22", "`ab --runs -1`, `--max-runs 1`, `--budget -5m`, `--budget abc`, `--base /nonexistent`",
      "exit 2 before any run, one line each giving what is allowed", 2)
def ab_bad_flags(d: Path) -> Outcome:
    cfg = write_config(d)
    base = ("ab", cfg, "--head", d, "-o", "o")
    outs = {"runs -1": cli(*base, "--base", d, "--runs", "-1", cwd=d),
            "max-runs 1": cli(*base, "--base", d, "--runs", "auto", "--max-runs", "1", cwd=d),
            "budget -5m": cli(*base, "--base", d, "--runs", "auto", "--budget", "-5m", cwd=d),
            "budget abc": cli(*base, "--base", d, "--runs", "auto", "--budget", "abc", cwd=d),
            "base": cli(*base, "--base", d / "no-such-checkout", cwd=d)}
    out = _all_exit(outs, 2)
    _expect(out, not list(d.glob("o/*.csv")), "a run was measured")
    return out


@case("r3.23", "`run --resume -o missing.csv`; `--resume` with `--append`", "exit 2, one line each (nothing to "
      "resume / the flags that resume takes from the sidecar)", 2)
def resume_misuse(d: Path) -> Outcome:
    cfg = write_config(d)
    outs = {"missing": cli("run", "--resume", "-o", "missing.csv", cwd=d),
            "append": cli("run", cfg, "--resume", "--append", "-o", "x.csv", cwd=d)}
    out = _all_exit(outs, 2)
    _expect(out, "nothing to resume" in outs["missing"].err, f"missing: {outs['missing'].first_line()}")
    return out
