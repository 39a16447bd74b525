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
    ("ir_r33_k3_e6_c24", 4, "between 0 and 32"),
    ("ir_r1_k3_e6_c24_pwact", 16, "unknown token 'pwact'"),
    ("ir_r1_k3_e6_c24_sex", 16, "unknown token 'sex'"),
    ("ir_r1_k3_e6_c24_noskipx", 16, "unknown token 'noskipx'"),
    ("ir_r1_k3_e6_c24_actrelu7", 19, "activation must be one of"),
    ("cn_r1_k2_c32", 7, "dense conv's kernel is 1, 3"),
    ("cn_r1_k3.5_c32", 7, "whole number"),
    ("ir_r1_k1_e6_c24", 7, "kernel 1 is not allowed"),
    ("uir_r1_k3_p2_e4_c24", 10, "does not apply to a uir block"),
    ("uir_r1_a3_k3_c24", 0, "needs a 'e' token"),
    ("head_c1280_fbn|fbn", 11, "is fixed"),
    ("stem_p64_c16", 6, "between 1 and 32"),
    ("pc_d0_c16", 4, "between 1 and 16"),
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


def test_timm_tokens_of_the_new_kinds():
    b = parse_block("uir_r1_a5_k5_s2_e3_c96")  # MobileNetV4-Conv-S's ExtraDW row, as in timm
    assert b.values["start"] == ((5,),) and b.values["kernels"] == ((5,),)
    assert parse_block("uir_r4_a0_k3_s1_e2_c96").values["start"] == ((),)
    assert parse_block("uir_a3.5_k0_e4_c96").values["kernels"] == ((),)
    assert parse_block("ir_r1_k3_a2_e6_c24").values["exp_groups"] == (2,)  # a: ir's groups
    assert parse_block("cn_r1_k1_s1_c960").values["kernels"] == ((1,),)
    assert parse_block("dsa_r6_k3_s2_c512_actrelu6").values["act"] == ("relu6",)
    assert parse_block("stem_p7_c768_actgelu").values["patch"] == (7,)
    head = parse_block("head_f1280_fbn")
    assert head.values["out"] == (0,) and head.values["post"] == (1280,)
    assert head.values["post_bn"] == (True,)


def test_absent_rows_need_no_other_token():
    b = parse_block("ir_r0")
    assert b.values["repeats"] == (0,)
    assert format_block("ir", single_values(b, "ir_r0")) == "ir_r0"
    with pytest.raises(GrammarError, match="needs a 'k' token"):
        parse_block("ir_r0|1")
