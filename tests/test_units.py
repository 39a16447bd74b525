import pytest

from nas.errors import BudgetError
from nas.units import parse_flops, parse_ms


@pytest.mark.parametrize("text", ["300M", "0.3G", "300e6", "300000000", "300MFLOPs", "300m",
                                  " 300M ", "3e8", "300 M", ".3G", "300000K"])
def test_accepted_spellings(text):
    assert parse_flops(text) == 300_000_000


@pytest.mark.parametrize("text", ["3OOM", "-1", "0", "", "M", "300MB", "nan", "inf", "1e400",
                                  "300 MM", "three hundred", "0.0000001", "2e18", "1e-400"])
def test_rejected_with_the_expected_format(text):
    with pytest.raises(BudgetError, match="300M, 0.3G, 300e6"):
        parse_flops(text)


@pytest.mark.parametrize("text, ms", [("25ms", 25.0), ("25", 25.0), ("0.025s", 25.0),
                                      ("0", 0.0), ("0ms", 0.0)])
def test_latency_budgets_and_none(text, ms):
    """0 is no budget, as --latency-budget's help says."""
    assert parse_ms(text) == ms


@pytest.mark.parametrize("text", ["-3ms", "", "ms", "25us", "nan", "1e9", "99999999"])
def test_bad_latency_budgets_are_refused(text):
    with pytest.raises(BudgetError, match="such as 25ms"):
        parse_ms(text)
