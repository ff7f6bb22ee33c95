"""`seqbench history ...`: parse, delegate to the store (results), the checks (analysis) and the site
(render), print through console. Registered on the main app by seqbench.cli."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from seqbench.choices import TextFormat

history_app = typer.Typer(
    help="Remember every run (a SQLite file or PostgreSQL), find change points over commits, publish a dashboard.\n\n"
    "Example: seqbench history add results/nightly.csv && seqbench history check --last 10",
    no_args_is_help=True,
)

StoreOpt = Annotated[Optional[str], typer.Option(
    "--store", help="A file path or a database URL (postgresql://user@host/db). Default: $SEQBENCH_STORE, "
    "else .seqbench/history.db.")]


@history_app.command("add")
def add(
    results: Annotated[list[Path], typer.Argument(help="Results CSVs (JSON sidecars beside them), one run each "
                                                  "(or several runs of one commit appended into one file).")],
    commit: Annotated[Optional[str], typer.Option(help="The commit measured. Default: the sidecar's git_commit, else "
                                                  "git HEAD where the CSV lies.")] = None,
    branch: Annotated[Optional[str], typer.Option(help="Branch name to record.")] = None,
    time: Annotated[Optional[str], typer.Option(help="ISO 8601 time that orders the run among the others. Default: "
                                                "the run's start in its sidecar.")] = None,
    machine: Annotated[Optional[str], typer.Option(help="Machine label. Default: the sidecar's.")] = None,
    store: StoreOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")] = False,
) -> None:
    """Add runs to the store: every point's rows and samples, keyed by machine, commit, time and point.

    Adding the same run again changes nothing (exit 0, says so). Each file is added whole or not at all.

    Examples:\n
      seqbench history add results/nightly.csv\n
      seqbench history add run.csv --commit $GITHUB_SHA --branch main --store postgresql://ci@db/bench
    """
    from seqbench.render import console
    from seqbench.results.history_entry import entry_from_file
    from seqbench.results.store import Store

    console.set_verbosity(quiet)
    if len(results) > 1 and (commit or time):
        from seqbench.errors import ConfigError

        raise ConfigError("--commit and --time name one run: give one results file with them")
    st = Store(store)
    try:
        for path in results:
            entry = entry_from_file(path, commit=commit, branch=branch, time=time, machine=machine)
            res = st.add(entry)
            if res.added:
                console.info(f"added {path}: {res.points} points, commit {entry.commit[:12]}, {entry.machine}, "
                             f"{entry.time} -> {st.where}")
            else:
                console.info(f"{path}: {res.note}")
    finally:
        st.close()


@history_app.command("check")
def check(
    last: Annotated[Optional[int], typer.Option(help="Only changes among the last N commits can fail the check.")] = None,
    since: Annotated[Optional[str], typer.Option(help="Only changes after this commit (or prefix) or ISO date.")] = None,
    threshold: Annotated[str, typer.Option(help="Smallest change that fails: fraction or percentage.")] = "5%",
    machine: Annotated[Optional[str], typer.Option(help="Only this machine.")] = None,
    point: Annotated[Optional[str], typer.Option(help="Only points matching this pattern, e.g. 'sdpa forward*'.")] = None,
    fail_on_creep: Annotated[bool, typer.Option("--fail-on-creep", help="Also exit 1 on a slow creep beyond the "
                                                "threshold over the last 20 commits.")] = False,
    fmt: Annotated[TextFormat, typer.Option("--format", help="table, markdown or json.")] = TextFormat.TABLE,
    store: StoreOpt = None,
) -> None:
    """Find change points per machine and point over commit order; exit 1 on an unaccepted regression beyond --threshold.

    Each change point: the commit range it lies in, its size with a 95% interval, regression or
    improvement. A slow creep with no single step is reported with its trend and interval.

    Exit codes: 0 none, 1 an unaccepted regression beyond the threshold among the checked commits, 2 bad input.

    Examples:\n
      seqbench history check\n
      seqbench history check --last 1 --format markdown >> $GITHUB_STEP_SUMMARY\n
      seqbench history check --since 2026-11-01 --threshold 3% --format json
    """
    from seqbench.analysis.history import check_history
    from seqbench.render import console
    from seqbench.render import history_text as ht
    from seqbench.results.store import Store
    from seqbench.units import parse_fraction

    limit = parse_fraction(threshold, "--threshold")
    if limit <= 0:
        from seqbench.errors import ConfigError

        raise ConfigError(f"--threshold {threshold!r}: must be > 0")
    st = Store(store)
    try:
        df, accepted = st.measurements(machine), st.accepted()
    finally:
        st.close()
    chk = check_history(df, threshold=limit, last=last, since=since, accepted=accepted, point=point,
                        fail_on_creep=fail_on_creep)
    if fmt == TextFormat.JSON:
        console.raw(ht.check_json(chk) + "\n")
    elif fmt == TextFormat.MARKDOWN:
        console.raw(ht.check_markdown(chk))
    else:
        console.raw("\n".join(ht.check_lines(chk)) + "\n")
    raise typer.Exit(int(chk.exit_code))


@history_app.command("show")
def show(
    limit: Annotated[int, typer.Option(help="How many series.")] = 20,
    machine: Annotated[Optional[str], typer.Option(help="Only this machine.")] = None,
    store: StoreOpt = None,
) -> None:
    """The series whose latest change point is largest, with sparklines of their values over commits."""
    from seqbench.analysis.history import latest_changes
    from seqbench.render import console
    from seqbench.render.history_text import show_lines
    from seqbench.results.store import Store

    st = Store(store)
    try:
        df = st.measurements(machine)
    finally:
        st.close()
    console.raw("\n".join(show_lines(latest_changes(df, limit=limit))) + "\n")


@history_app.command("accept")
def accept(
    commit: Annotated[str, typer.Argument(help="The first commit of the new level (a prefix will do).")],
    point: Annotated[str, typer.Option(help="Points it covers (pattern).")] = "*",
    machine: Annotated[str, typer.Option(help="Machines it covers (pattern).")] = "*",
    note: Annotated[str, typer.Option(help="Why the change was intended.")] = "",
    store: StoreOpt = None,
) -> None:
    """Record that a change was intended: `check` lists it as accepted and no longer fails on it.

    Example: seqbench history accept 3f2a9c1 --point 'sdpa *' --note "exact softmax, slower by design"
    """
    from seqbench.render import console
    from seqbench.results.store import Store

    if len(commit) < 4:
        from seqbench.errors import ConfigError

        raise ConfigError(f"commit {commit!r}: give at least 4 characters of it")
    console.set_verbosity()  # not left quiet by an earlier in-process command
    st = Store(store)
    try:
        st.accept(commit, point=point, machine=machine, note=note)
    finally:
        st.close()
    console.info(f"accepted changes at {commit} ({point} on {machine}) in {st.where}")


@history_app.command("publish")
def publish(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the site (index.html, runs/, plotly.min.js).")],
    threshold: Annotated[str, typer.Option(help="Threshold the change points are marked against.")] = "5%",
    force: Annotated[bool, typer.Option("--force", help="Replace a site already in --out.")] = False,
    store: StoreOpt = None,
) -> None:
    """Write a static dashboard: per machine every point's trend over commits with change points marked, each run's page, the latest run's scaling charts.

    No server needed: open index.html, or publish the folder (GitHub Pages). plotly.js is bundled.

    Example: seqbench history publish -o site/
    """
    from seqbench.render import console
    from seqbench.render.site import publish as write_site
    from seqbench.results.store import Store
    from seqbench.units import parse_fraction

    console.set_verbosity()
    st = Store(store)
    try:
        written = write_site(st, out, threshold=parse_fraction(threshold, "--threshold"), force=force)
    finally:
        st.close()
    console.info(f"wrote {len(written)} files to {out} (open {out / 'index.html'})")
