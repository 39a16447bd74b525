import pytest

from nas.grammar import GrammarError, format_block, parse_block, single_values


def test_parses_alternatives_and_defaults():
    b = parse_block("ir_r1|2_k3|3.5.7_xequal|2:1:1_e3|6_se0|0.25_c40_actswish|hswish")
    assert b.kind == "ir"
    assert b.values["repeats"] == (1, 2)
    assert b.values["kernels"] == ((3,), (3, 5, 7))
    assert b.values["split"] == ("equal", (2, 1, 1))
    assert b.values["expansion"] == (3.0, 6.0)
    assert b.values["act"] == ("swish", "hswish")
    # defaults are filled in
    assert b.values["exp_groups"] == (1,) and b.values["stride"] == (1,)
    assert b.values["skip"] == (True,)


def test_canonical_form_orders_tokens_and_drops_defaults():
    b = parse_block("ir_c40_e6_k3.5_actrelu_se0_r1_a1_p2_s2")
    assert format_block("ir", single_values(b, "")) == "ir_r1_k3.5_p2_s2_e6_c40"


@pytest.mark.parametrize("ratio, canonical", [("2:2:2", "equal"), ("4:2:2", (2, 1, 1))])
def test_split_ratios_are_normalised(ratio, canonical):
    assert parse_block(f"ir_k3.5.7_x{ratio}_e6_c16").values["split"] == (canonical,)


@pytest.mark.parametrize("text, offset, fragment", [
    ("ir_r1_k3_k5_e6_c24", 9, "repeated token 'k5'"),
    ("ir_r1_k4_e6_c24", 7, "kernel 4 is not allowed"),
    ("ir_r1_k3|4_e6_c24", 9, "kernel 4 is not allowed"),
    ("ir_r1_k3_z9_e6_c24", 9, "unknown token 'z9'"),
    ("ir_r1_k3_s1|2_e6_c24", 9, "stride is fixed"),
    ("ds_r1_k3_a2_c24", 9, "does not apply to a ds block"),
    ("ir_r1__k3_e6_c24", 6, "empty token"),
    ("ir_r1_k3_e6_c24_", 16, "empty token"),
    ("conv_k3", 0, "unknown block kind 'conv'"),
    ("ir_r1_k3_e6_c24_noskip|noskip", 16, "residual is fixed"),
    ("ir_r1_k3_e1.23456_c24", 10, "at most 4 decimals"),
    ("ir_r0_k3_e6_c24", 4, "between 1 and 32"),
    ("ir_r33_k3_e6_c24", 4, "between 1 and 32"),
    ("ir_r1_k3_e64_c24", 10, "at most 32"),
    ("ir_r1_k3_e6_c8200", 13, "up to 8192"),
])
def test_errors_point_at_the_token(text, offset, fragment):
    with pytest.raises(GrammarError) as info:
        parse_block(text)
    assert fragment in info.value.message
    assert info.value.offset == offset


def test_single_values_rejects_alternatives():
    b = parse_block("ir_k3|5_e6_c16")
    with pytest.raises(GrammarError, match="one value per token"):
        single_values(b, "ir_k3|5_e6_c16")
