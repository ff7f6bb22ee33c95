"""The documentation: the site builds with --strict (a broken link or a page missing from the nav fails),
the README stays a five-minute page, and the code blocks users paste are checked: `seqbench` commands
name real subcommands and options, TOML blocks are valid TOML, Python blocks compile."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.M | re.S)


def blocks(lang: str):
    for page in PAGES:
        for m in FENCE.finditer(page.read_text()):
            if m.group(1) == lang:
                yield page.relative_to(ROOT), m.group(2)


def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1",
                                                                         "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file() and (tmp_path / "site" / "sweeps" / "index.html").is_file()


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = [p.name for p in PAGES[1:] if p.name not in nav]
    assert not missing, f"pages not in mkdocs.yml's nav: {missing}"


def test_the_readme_is_a_five_minute_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 120, len(lines)
    for cmd in ("make run", "make test"):
        assert any(ln.startswith(cmd) for ln in lines), cmd


def _commands():
    for page, body in blocks("bash"):
        for line in body.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith(("seqbench ", ".venv/bin/seqbench ")):
                yield page, line


def test_seqbench_commands_in_the_docs_name_real_subcommands_and_options():
    from typer.main import get_command

    from seqbench.cli import app

    root = get_command(app)
    checked, bad = 0, []
    for page, line in _commands():
        try:
            words = shlex.split(line)
        except ValueError:
            continue  # a line continued on the next one
        cmd, rest = root, words[1:]
        while rest and hasattr(cmd, "commands") and rest[0] in cmd.commands:
            cmd, rest = cmd.commands[rest[0]], rest[1:]
        if cmd is root:
            if rest and not rest[0].startswith("-"):
                bad.append(f"{page}: {line}: no subcommand {rest[0]!r}")
            continue
        known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
        for w in rest:
            flag = w.split("=")[0]
            if flag.startswith("--") and flag not in known:
                bad.append(f"{page}: {line}: {cmd.name} has no option {flag}")
        checked += 1
    assert checked >= 20 and not bad, "\n".join(bad)


def test_toml_blocks_are_valid_toml():
    found = list(blocks("toml"))
    assert found
    for page, body in found:
        try:
            tomllib.loads(body)
        except tomllib.TOMLDecodeError as exc:
            pytest.fail(f"{page}: a TOML block does not parse: {exc}\n{body}")


def test_python_blocks_compile():
    found = list(blocks("python"))
    assert found
    for page, body in found:
        try:
            compile(body, str(page), "exec")
        except SyntaxError as exc:
            pytest.fail(f"{page}: a Python block does not compile: {exc}\n{body}")
