"""Units on the command line: FLOPs budgets (``300M``) and durations (``25ms``)."""

from __future__ import annotations

import re

from .errors import BudgetError

__all__ = ["parse_flops", "parse_ms", "fmt_count", "BUDGET_FORMAT"]

BUDGET_FORMAT = ("a positive FLOPs count such as 300M, 0.3G, 300e6, 300000000 or 300MFLOPs "
                 "(K, M, G = 1e3, 1e6, 1e9)")
_PATTERN = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(?:e([+-]?\d+))?\s*([kmg]?)\s*(?:flops)?",
                      re.IGNORECASE)
_SCALE = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}


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
        raise BudgetError(f"bad budget {text!r}: must be between 1 and 1e18 FLOPs; "
                          f"expected {BUDGET_FORMAT}")
    return int(round(value))


def parse_ms(text: str) -> float:
    """Milliseconds from ``25ms``, ``25`` or ``0.025s``; ``0`` is no budget (what
    ``--latency-budget`` stores when none is given).

    Raises:
        BudgetError: not a duration, or one of 10^7 ms or more.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(ms|s)?\s*", str(text or ""))
    value = float(m.group(1)) * (1000 if m.group(2) == "s" else 1) if m else -1.0
    if not 0 <= value < 1e7:
        raise BudgetError(f"bad latency budget {text!r}: expected milliseconds such as 25ms, "
                          "25 or 0.025s (0: none)")
    return value


def fmt_count(n: int) -> str:
    """``251.7M`` / ``1.23G``: a FLOPs or parameter count for people."""
    return f"{n / 1e6:,.1f}M" if n < 1e9 else f"{n / 1e9:,.2f}G"
