"""`seqbench merge`: join result CSVs (shards of one sweep, or runs of one machine) into one.

Every input is read and validated first (read_results); inputs must share exactly the same columns
(one schema), and no point (KEY_COLUMNS) may appear in two inputs: joining shards must give each
point once, so a duplicate means overlapping shards or a file given twice. Data lines are copied
verbatim, so nothing is re-rounded. The output's JSON sidecar lists the inputs and their metadata.
"""

from __future__ import annotations

from pathlib import Path

from seqbench.errors import ResultsError
from seqbench.results.ownership import check_not_input
from seqbench.results.reader import read_header, read_metadata, read_results
from seqbench.results.schema import KEY_COLUMNS, SCHEMA_VERSION, sidecar_path
from seqbench.results.writer import atomic_write, write_json_atomic

def merge_files(inputs: list[str | Path], out: str | Path, *, force: bool = True) -> int:
    """Write the rows of all inputs to out (CSV + sidecar); returns the number of rows written.
    Without force, out must not exist when it is written (not only when the merge starts)."""
    paths = [Path(p) for p in inputs]
    if len(paths) < 2:
        raise ResultsError("merge needs at least two input CSVs")
    out = Path(out)
    check_not_input([out, sidecar_path(out)], [*paths, *map(sidecar_path, paths)], "-o")
    frames = [read_results(p) for p in paths]  # validates each file, raises on the first bad one
    header = read_header(paths[0])
    for p in paths[1:]:
        h = read_header(p)
        if h != header:
            extra = sorted(set(h) ^ set(header))
            why = f"columns {', '.join(extra[:4])} differ" if extra else "columns are in another order"
            raise ResultsError(f"{p} and {paths[0]} have different schemas ({why}); merge only files from the same seqbench version")
    owner: dict[tuple, Path] = {}
    for p, df in zip(paths, frames):
        for key in {tuple(r) for r in df[list(KEY_COLUMNS)].itertuples(index=False)}:
            if key in owner:
                point = ", ".join(f"{c}={v}" for c, v in zip(KEY_COLUMNS, key))
                raise ResultsError(f"point ({point}) is in both {owner[key]} and {p}; shards must not overlap")
            owner[key] = p
    texts = [p.read_text().splitlines(keepends=True) for p in paths]
    bodies = [[ln for ln in lines[1:] if ln.strip()] for lines in texts]

    def write(fh):
        fh.write(texts[0][0])
        for body in bodies:
            fh.writelines(body)

    atomic_write(out, write, newline="", replace=force)
    write_json_atomic(sidecar_path(out), {
        "schema_version": SCHEMA_VERSION,
        "merged_from": [{"path": str(p), "rows": len(df), "metadata": read_metadata(p)} for p, df in zip(paths, frames)],
    })
    return sum(map(len, bodies))
