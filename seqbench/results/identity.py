"""A point's identity, declared once: the fields of `Point`. Everything that names a point derives from
it: the key columns of the CSV (results.schema.KEY_COLUMNS), `Point.key()` (what compare, resume and
merge match on), the typed key of a row read back (`key_of`), bootstrap's per-point seeds. As
torch.utils.benchmark derives its _TASKSPEC_FIELDS from its frozen TaskSpec.
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Point:
    """One measured point: the identity of a row (what compare matches on, plus the kernel)."""

    kernel: str
    mode: str
    device: str
    dtype: str
    batch_size: int
    seq_len: int
    hidden_size: int
    num_heads: int
    causal: bool

    def key(self) -> tuple:
        return _KEY(self)

    @property
    def shape(self):
        from seqbench.kernels.registry import Shape

        return Shape(self.batch_size, self.seq_len, self.hidden_size, self.num_heads, self.causal)


KEY_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Point))
KEY_TYPES: dict[str, type] = {f.name: {"str": str, "int": int, "bool": bool}[f.type] for f in dataclasses.fields(Point)}
_KEY = operator.attrgetter(*KEY_COLUMNS)  # a tuple of the fields; dataclasses.astuple deep-copies (50 us a point)


def key_of(row: Any) -> tuple:
    """Point.key() of a row read back (a pandas row tuple, or anything with the key columns as attributes):
    pandas types -> plain Python ones."""
    return tuple(KEY_TYPES[c](getattr(row, c)) for c in KEY_COLUMNS)
