"""history publish without a browser: the files, no network in the pages, the data each chart holds,
and refusals (an existing site without --force, a folder that is not a site, an empty store)."""

from __future__ import annotations

import json
import re

from history_helpers import write_run
from seqbench.cli import main


def _figures(page: str) -> list[dict]:
    return json.loads(re.search(r"const FIGURES = (.*?);\n", page, re.S).group(1).replace("<\\/", "</"))


def test_publish_writes_a_self_contained_site(tmp_path, capsys):
    store = str(tmp_path / "h.db")
    paths = [write_run(tmp_path, i, scale={"sdpa": 1.2} if i >= 10 else None) for i in range(16)]
    paths.append(write_run(tmp_path, 3, machine="m2"))  # a second machine with one run
    assert main(["history", "add", *map(str, paths), "--store", store, "-q"]) == 0
    site = tmp_path / "site"
    assert main(["history", "publish", "-o", str(site), "--store", store]) == 0
    assert sorted(p.name for p in (site / "runs").iterdir()) == sorted(f"{i}.html" for i in range(1, 18))
    index = (site / "index.html").read_text()
    assert '<script src="plotly.min.js"></script>' in index
    assert "Plotly" in (site / "plotly.min.js").read_text()[:5000]
    assert not re.search(r"<script[^>]+src=\"https?:", index)  # nothing from a CDN
    assert "Machine: m1" in index and "Machine: m2" in index
    figs = {f["layout"]["title"]["text"]: f for f in _figures(index) if f["id"].startswith("trend-0")}
    sdpa = figs["sdpa, forward"]
    assert sdpa["layout"]["xaxis"]["categoryarray"] == [f"c{i:04d}" for i in range(16)]
    marks = [t for t in sdpa["data"] if t["name"] == "change points"][0]
    assert marks["x"] == ["c0010", "c0010"] and "regression +20" in marks["text"][0]
    trace = sdpa["data"][0]
    assert trace["customdata"][0][-1] == "runs/1.html" and trace["customdata"][0][0] == "c0000"
    assert all(lo <= v for lo, v in zip(trace["error_y"]["arrayminus"], trace["y"]))
    assert "regression" in index and "c0009..c0010" in index
    run = (site / "runs" / "11.html").read_text()
    assert "c0010" in run and "../plotly.min.js" in run
    capsys.readouterr()
    assert main(["history", "publish", "-o", str(site), "--store", store]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["history", "publish", "-o", str(site), "--store", store, "--force"]) == 0
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert main(["history", "publish", "-o", str(tmp_path / "other"), "--store", store]) == 2
    assert main(["history", "publish", "-o", str(tmp_path / "s2"), "--store", str(tmp_path / "none.db")]) == 2
