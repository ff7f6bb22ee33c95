"""The package's layers: every import (function-level ones included) runs down the pipeline.

The order is declared once, in seqbench/__init__.py's docstring and LAYERS below: a module may import
its own package and the packages of lower layers, never a higher one; the two bottom packages
(kernels and measure) may use each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "seqbench"

# lowest first; one tuple is one layer
LAYERS = (
    ("errors", "version", "choices"),
    ("units",),
    ("kernels", "measure"),
    ("results",),
    ("sweep",),
    ("analysis",),
    ("orchestration",),
    ("render",),
    ("api",),
    ("cli_history",),  # the `history` commands, which cli.py mounts
    ("cli",),
    ("__init__", "__main__"),
)
PEERS_ALLOWED = {"kernels", "measure"}  # the bottom layer: a kernel's provenance uses measure.env, measure builds kernels
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _part(module: str) -> str:
    """seqbench.sweep.config -> sweep; seqbench -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    here = ".".join(("seqbench",) + path.relative_to(PACKAGE).with_suffix("").parts)
    pkg = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "seqbench"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] == "seqbench":
                out |= {f"{base}.{a.name}" if base == "seqbench" else base for a in node.names}
    return out


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py"))


def test_every_package_has_a_layer():
    parts = {_part(".".join(("seqbench",) + p.relative_to(PACKAGE).with_suffix("").parts)) for p in _modules()}
    assert parts - set(LEVEL) == set(), "a new package or top-level module: give it a layer in LAYERS"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_down_the_pipeline(path):
    mine = _part(".".join(("seqbench",) + path.relative_to(PACKAGE).with_suffix("").parts))
    upward = []
    for target in sorted(_imports(path)):
        theirs = _part(target)
        if theirs not in LEVEL or theirs == mine:
            continue
        if LEVEL[theirs] > LEVEL[mine] or (LEVEL[theirs] == LEVEL[mine] and mine not in PEERS_ALLOWED):
            upward.append(target)
    assert not upward, f"{path.relative_to(PACKAGE)} imports up (or across) the pipeline: {upward}"
