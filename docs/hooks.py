"""MkDocs hook: the site's home page is the README (one source), and the repository files the pages show
or link (charts under results/, example workflows, configs) are copied into the site as they are."""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
ASSETS = {"results": (".png", ".svg"), "examples": (".yml",), "benchmarks/configs": (".toml",)}


def on_files(files, config):
    readme = (ROOT / "README.md").read_text()
    # README links point into docs/ from the repository root; the site's pages sit at its root
    home = re.sub(r"\]\(docs/", "](", readme)
    files.append(File.generated(config, "index.md", content=home))
    for folder, suffixes in ASSETS.items():
        for p in sorted((ROOT / folder).rglob("*")):
            if p.is_file() and p.suffix in suffixes:
                files.append(File(str(p.relative_to(ROOT)), str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files
