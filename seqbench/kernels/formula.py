"""FLOP formulas written as text ("8*B*T*d^2 + 4*B*T^2*d"), parsed safely: nothing is evaluated but
numbers, the shape's names and arithmetic. Used by `[[kernel]]` tables in TOML configs and by
`register_kernel(flops="...")`.

Names: B (batch size), T (sequence length), d (model width), h (heads), d_h (d / h), and the names a
kernel declares with their values (`register_kernel(..., params={"d_state": 16, "expand": 2})`).
Operators: + - * / // % ** ^ (^ is a power, as people write it), parentheses, unary minus.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Callable

from seqbench.errors import PluginError

NAMES = ("B", "T", "d", "h", "d_h")
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
MAX_EXPONENT = 8  # B, T and d to the 8th is already far beyond any FLOP count; bigger is a typo


def _check(node: ast.AST, text: str, names: tuple = NAMES) -> None:
    def bad(what: str) -> PluginError:
        return PluginError(f"FLOP formula {text!r}: {what}; allowed: numbers, {', '.join(names)}, "
                           "+ - * / // % ** ^ and parentheses")

    if isinstance(node, ast.Expression):
        return _check(node.body, text, names)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise bad(f"{node.value!r} is not a number")
        return None
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise bad(f"unknown name {node.id!r}" + ("" if names != NAMES else " (a name of the kernel's own: declare "
                                                                      "it with params={...})"))
        return None
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        if type(node.op) is ast.Pow:
            if not (isinstance(node.right, ast.Constant) and isinstance(node.right.value, (int, float))
                    and not isinstance(node.right.value, bool) and abs(node.right.value) <= MAX_EXPONENT):
                raise bad(f"an exponent must be a number up to {MAX_EXPONENT}")
        _check(node.left, text, names)
        return _check(node.right, text, names)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _check(node.operand, text, names)
    raise bad(f"{type(node).__name__} is not allowed")


def _eval(node: ast.AST, env: dict[str, float]) -> float:
    if isinstance(node, ast.Expression):
        return _eval(node.body, env)
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_eval(node.left, env), _eval(node.right, env))
    return _UNARY[type(node.op)](_eval(node.operand, env))


def check_params(params, where: str = "params") -> dict[str, float]:
    """A kernel's own formula names: identifiers other than B, T, d, h, d_h, with numeric values."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise PluginError(f"{where} must be a table of names and numbers such as {{'d_state': 16}}, got {params!r}")
    out = {}
    for k, v in params.items():
        if not isinstance(k, str) or not k.isidentifier() or k in NAMES:
            raise PluginError(f"{where}: {k!r} cannot be a formula name (an identifier other than {', '.join(NAMES)})")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise PluginError(f"{where}: {k} = {v!r} must be a finite number")
        out[k] = float(v)
    return out


def parse_flops(text: str, params: dict | None = None) -> Callable:
    """A function of a Shape giving forward FLOPs, from a formula in B, T, d, h, d_h and the kernel's params."""
    params = check_params(params)
    if not isinstance(text, str) or not text.strip():
        raise PluginError(f"FLOP formula must be a non-empty string such as '4*B*T*d^2', got {text!r}")
    shown = text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"
    try:  # ^ means a power, as people write it, and binds tighter than *: read it as Python's **
        tree = ast.parse(text.strip().replace("^", "**"), mode="eval")
        _check(tree, text, NAMES + tuple(params))
    except SyntaxError as exc:
        raise PluginError(f"FLOP formula {shown!r} is not an expression: {exc.msg}") from None
    except (RecursionError, MemoryError):  # thousands of terms or unary minuses: nested too deep to read
        raise PluginError(f"FLOP formula {shown!r} is nested too deeply to evaluate; write it with fewer terms "
                          "(e.g. 3*B*T*d instead of B*T*d + B*T*d + B*T*d)") from None

    def flops(shape) -> float:
        env = {"B": shape.batch_size, "T": shape.seq_len, "d": shape.hidden_size, "h": shape.num_heads,
               "d_h": shape.hidden_size / shape.num_heads}
        try:
            value = _eval(tree, {**{k: float(v) for k, v in env.items()}, **params})
        except (ZeroDivisionError, OverflowError) as exc:
            raise PluginError(f"FLOP formula {shown!r} fails at B={shape.batch_size} T={shape.seq_len} "
                              f"d={shape.hidden_size} h={shape.num_heads}: {exc}") from None
        if isinstance(value, complex):  # a fractional power of a negative number: (-1)**0.5, (B-T)**0.5 at T > B
            raise PluginError(f"FLOP formula {shown!r} gives a complex number at B={shape.batch_size} "
                              f"T={shape.seq_len} d={shape.hidden_size} h={shape.num_heads} (a fractional power of "
                              "a negative number); FLOPs must be a real number >= 0")
        if not math.isfinite(value) or value < 0:
            raise PluginError(f"FLOP formula {shown!r} gives {value} at B={shape.batch_size} T={shape.seq_len} "
                              f"d={shape.hidden_size} h={shape.num_heads}; FLOPs must be finite and >= 0")
        return value

    flops.formula = text.strip()  # type: ignore[attr-defined]
    return flops


def degree_in_T(flops: Callable, shape_cls) -> float:
    """The power of T a FLOP formula grows with at long T (1 for recurrence, 2 for softmax attention)."""
    try:  # sizes the user never asked for: a formula that fails there is judged at the run's own sizes
        lo, hi = (float(flops(shape_cls(1, t, 64, 1, False))) for t in (2**14, 2**18))
    except Exception:  # noqa: BLE001 - a FLOP function may expect other sizes: say quadratic= instead
        return 0.0
    if lo <= 0 or hi <= 0:
        return 0.0
    return math.log(hi / lo) / math.log(2**4)
