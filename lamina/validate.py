"""Checks of numeric arguments, shared by the Python functions (the command line checks the same ranges when
it parses its options, see `cli/common.py` and `cli/checks.py`; the table is docs/OPTIONS.md). Messages name the
argument, as a Python caller wrote it.

One meaning of 0 everywhere: for a *limit* (max_tokens, max_docs, max_per_group) 0 and None both mean
"no limit"; a *size* (batch_size, context, stride, k, steps, ...) must be at least 1.
"""
from __future__ import annotations

import math
import numbers

from lamina.errors import InputError


def integer(name: str, value, low: int = 1, high: int | None = None) -> int:
    """`value` as an int in [low, high]; bool and non-integers are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be an integer, not {value!r}")
    if value < low or (high is not None and value > high):
        span = f"at least {low}" if high is None else f"between {low} and {high}"
        raise InputError(f"{name} must be {span}, not {value}")
    return int(value)


def limit(name: str, value) -> int | None:
    """A limit: None or 0 -> None (no limit), a positive integer -> itself, anything else refused."""
    if value is None:
        return None
    return integer(name, value, low=0) or None


def fraction(name: str, value) -> float:
    """A number strictly between 0 and 1 (a significance level, a proportion)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < float(value) < 1:
        raise InputError(f"{name} must be a number strictly between 0 and 1, not {value!r}")
    return float(value)


def positive(name: str, value, allow_zero: bool = False) -> float:
    """A finite number > 0 (or >= 0 with `allow_zero`)."""
    ok = (not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(float(value))
          and (float(value) >= 0 if allow_zero else float(value) > 0))
    if not ok:
        raise InputError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, not {value!r}")
    return float(value)
