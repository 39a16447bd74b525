"""Parsing FLOPs budgets: ``300M``, ``0.3G``, ``300e6``, ``300000000``, ``300MFLOPs``."""

from __future__ import annotations

import re

__all__ = ["parse_flops", "BudgetError", "BUDGET_FORMAT"]

BUDGET_FORMAT = ("a positive FLOPs count such as 300M, 0.3G, 300e6, 300000000 or 300MFLOPs "
                 "(K, M, G = 1e3, 1e6, 1e9)")
_PATTERN = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(?:e([+-]?\d+))?\s*([kmg]?)\s*(?:flops)?",
                      re.IGNORECASE)
_SCALE = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}


class BudgetError(ValueError):
    """A budget that is not a positive FLOPs count."""


def parse_flops(text: str) -> int:
    """FLOPs (multiply-accumulates, fvcore convention) as an int.

    Raises:
        BudgetError: saying what format is expected.
    """
    m = _PATTERN.fullmatch(str(text).strip())
    if not m:
        raise BudgetError(f"bad budget {text!r}: expected {BUDGET_FORMAT}")
    mantissa, exponent, unit = m.groups()
    try:
        value = float(mantissa) * 10.0 ** int(exponent or 0) * _SCALE[unit.lower()]
    except OverflowError:
        value = float("inf")
    if not 1 <= value <= 1e18:
        raise BudgetError(f"bad budget {text!r}: must be between 1 and 1e18 FLOPs; expected {BUDGET_FORMAT}")
    return int(round(value))
