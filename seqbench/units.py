"""Numbers for people: times, counts, bytes and percentages in, and sizes and fractions out of, text.

Pure functions with no dependencies, shared by the core (messages) and render (tables, reports)."""

from __future__ import annotations

import math
import re
from typing import Any

from seqbench.errors import ConfigError


def _sig3(v: float) -> str:
    """Three significant figures, never in exponent notation (1000 and up: a whole number)."""
    return f"{v:.0f}" if abs(v) >= 999.5 else f"{v:.3g}"


def _unit(x: float, units) -> tuple[str, float]:
    """The largest (unit, scale) in which x reads at least 1 once rounded to 3 figures: 0.9996 ms is
    "1 ms", not "1e+03 µs"."""
    for unit, scale in units:
        if float(f"{x / scale:.3g}") >= 1:
            return unit, scale
    return units[-1]


_TIME_UNITS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9))


def fmt_time(seconds) -> str:
    if seconds is None or seconds != seconds:
        return "-"
    unit, scale = _unit(seconds, _TIME_UNITS)
    return f"{_sig3(seconds / scale)} {unit}"


def fmt_spread(median, iqr) -> str:
    """A median and its IQR in the median's unit and precision: "2.1 ms ± 1.0 ms", "933 µs ± 2170 µs"."""
    if median is None or median != median:
        return "-"
    if iqr is None or iqr != iqr:
        return fmt_time(median)
    unit, scale = _unit(median, _TIME_UNITS)
    text = _sig3(median / scale)
    decimals = len(text.partition(".")[2])
    return f"{text} {unit} ± {iqr / scale:.{decimals}f} {unit}"


def fmt_faster(ratio, left: str, right: str) -> str:
    """A time ratio said as who is faster and by how much. ratio = time(left) / time(right):
    0.128 -> "LEFT 7.81× faster", 6.89 -> "RIGHT 6.89× faster"."""
    if ratio is None or ratio != ratio or ratio <= 0:
        return "-"
    if ratio == 1:
        return "equal"
    who, factor = (right, ratio) if ratio > 1 else (left, 1 / ratio)
    return f"{who} {_sig3(factor)}× faster"


def fmt_num(x, unit: str = "") -> str:
    if x is None or x != x:
        return "-"
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}{unit}"
    return f"{x:.3g}{unit}"


def fmt_count(n) -> str:
    """Instructions per call: '6.24 M instr' (3 significant digits; '-' for none)."""
    if n is None or n != n:
        return "-"
    for div, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g} {prefix} instr"
    return f"{n:.3g} instr"


def fmt_pct(x) -> str:
    if x is None or x != x:
        return "-"
    return f"{x:.0f}%" if x >= 10 else f"{x:.2g}%"


def fmt_bytes(n) -> str:
    if n is None or n != n:
        return "-"
    if n < 1000:  # 1000-1023 bytes read as "0.98 KiB" rather than "1e+03 B"
        return f"{int(n)} B"
    unit, scale = _unit(n, (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)))
    return f"{_sig3(n / scale)} {unit}"


_SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
               "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(value: Any, name: str = "max_memory") -> int:
    """Bytes from an integer or a string such as '512MiB', '8GB', '1.5g' (0 means automatic)."""
    want = "a size in bytes such as 8GiB, 512MB or 1000000 (0: automatic)"
    if isinstance(value, bool):
        raise ConfigError(f"field {name!r} must be {want}, got {value!r}")
    if isinstance(value, int):
        number, unit = value, ""
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", value)
        if not m or m.group(2).lower() not in _SIZE_UNITS:
            raise ConfigError(f"field {name!r} must be {want}, got {value!r}")
        number, unit = float(m.group(1)), m.group(2).lower()
    else:
        raise ConfigError(f"field {name!r} must be {want}, got {value!r}")
    if number < 0:
        raise ConfigError(f"field {name!r} must be {want}, got {value!r}")
    if _SIZE_UNITS[unit] == 1 and number != int(number):  # '0.5' would silently become 0 = automatic
        raise ConfigError(f"field {name!r} is {value!r} bytes, not a whole number; give a unit (e.g. {value}GiB) "
                          "or whole bytes (0: automatic)")
    return int(number * _SIZE_UNITS[unit])


def parse_fraction(text: str, flag: str) -> float:
    """'5%' or '0.05' -> 0.05."""
    try:
        value = float(text[:-1]) / 100 if str(text).endswith("%") else float(text)
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not a number; give a fraction (0.05) or a percentage (5%)") from None
    if not math.isfinite(value):
        raise ConfigError(f"{flag} {text!r} is not a finite number")
    return value


_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str, flag: str) -> float:
    """'5m', '90s', '1.5h' or '300' (seconds) -> seconds, positive."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*", str(text).lower())
    if not m or m.group(2) not in _DURATION_UNITS or float(m.group(1)) <= 0:
        raise ConfigError(f"{flag} {text!r} is not a duration; give a positive number of seconds (300), "
                          "minutes (5m) or hours (1h)")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
