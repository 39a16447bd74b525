import json
import random
from dataclasses import replace

import pytest

import nas
from nas import ArchError, Architecture

MIXNET_S_ID = "2f8dfbd1adf4d305"


def test_canonical_string_and_json_round_trip(space):
    rng = random.Random(11)
    for _ in range(25):
        arch = space.sample(rng)
        text = str(arch)
        assert Architecture.parse(text) == arch
        assert str(Architecture.parse(text)) == text
        assert Architecture.from_json(arch.to_json()) == arch
        assert Architecture.from_dict(json.loads(json.dumps(arch.to_dict()))) == arch
        assert " " not in text and "|" not in text


def test_id_is_stable_across_processes(spaces):
    # sha256 of the canonical string: a regression here changes every stored study.
    assert spaces["mixnet_s"].sample(0).id == MIXNET_S_ID


def test_equal_archs_hash_equal(spaces):
    a = spaces["mixnet_s"].sample(0)
    b = Architecture.parse(str(a))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1


def test_abbreviated_spellings_parse_to_the_same_arch(spaces):
    arch = spaces["mixnet_s"].sample(0)
    # defaults written out, tokens reordered, width of the ds row omitted (keeps 16)
    text = str(arch).replace("ds_r1_k3_c16", "ds_c16_k3_r1_xequal_p1_se0_actrelu")
    assert Architecture.parse(text) == arch
    assert Architecture.parse(str(arch).replace("ds_r1_k3_c16", "ds_r1_k3")) == arch


@pytest.mark.parametrize("kernels", ["3", "3.5"])
def test_splits_that_give_the_same_groups_are_one_network(kernels):
    # every channel count is even (widths are multiples of 4), so over 2 kernels exp is equal
    a = Architecture.parse(f"3x32x32-10/stem_c16/ir_r1_k{kernels}_xexp_e6_c16/head_c64")
    b = Architecture.parse(f"3x32x32-10/stem_c16/ir_r1_k{kernels}_e6_c16/head_c64")
    assert a == b and a.id == b.id
    assert list(a.layers())[0].dw_splits == list(b.layers())[0].dw_splits


def test_exp_over_three_kernels_stays_distinct():
    a = Architecture.parse("3x32x32-10/stem_c16/ir_r1_k3.5.7_xexp_e6_c16/head_c64")
    b = Architecture.parse("3x32x32-10/stem_c16/ir_r1_k3.5.7_e6_c16/head_c64")
    assert a != b and list(a.layers())[0].dw_splits == (48, 24, 24)


@pytest.mark.parametrize("text", [
    "3x32x32-10/stem_c16/ds_r100000000_k3_c16/head_c64",
    "3x32x32-10/stem_c16/ds_r1_k3_c100000/head_c64",
    "3x32x32-10/stem_c16/ir_r1_k3_e100_c16/head_c64",
    "3x99999x99999-10/stem_c16/ds_r1_k3_c16/head_c64",
    "3x32x32-99999999/stem_c16/ds_r1_k3_c16/head_c64",
])
def test_sizes_are_bounded(text):
    with pytest.raises(ArchError):
        Architecture.parse(text)


@pytest.mark.parametrize("text, fragment", [
    ("", "INPUT/STEM/STAGE"),
    ("3x224x224-1000/stem_c16/head_c64", "INPUT/STEM/STAGE"),
    ("3x224x192-1000/stem_c16/ds_r1_k3_c16/head_c64", "CxRxR-CLASSES"),
    ("3x32x32-10/stem_c16/ds_r1_k4_c16/head_c64", "column 28: kernel 4"),
    ("3x32x32-10/stem_c16/ds_r1_k3|5_c16/head_c64", "one value per token"),
    ("3x32x32-10/stem_c16/ds_r1_k3_c16/ir_r1_k3_e6_c18/head_c64", "multiple of 4"),
    ("3x32x32-10/stem_c8/ds_r1_k3.5.7.9.11_xexp_c8/head_c64", "leaves a group empty"),
    ("3x32x32-10/stem_k3.5_c16/ds_r1_k3_c16/head_c64", "single kernel"),
    ("3x32x32-10/stem_c16/ds_r1_k3.5_x2:1:1_c16/head_c64", "has 3 parts"),
])
def test_bad_strings_give_clear_errors(text, fragment):
    with pytest.raises(ArchError, match=fragment.replace("|", r"\|")):
        Architecture.parse(text)


@pytest.mark.parametrize("field, value", [
    ("out", "16; import os"), ("out", 16.0), ("out", True), ("act", 'relu"); import os; ("'),
    ("act", "relu\nimport os"), ("kernels", (3, "5")), ("kernels", (4,)), ("expansion", -1),
    ("se", 0.123456), ("split", "__import__('os')"), ("repeats", -1), ("skip", "yes"),
])
def test_hostile_or_wrong_values_are_rejected(spaces, field, value):
    block = spaces["mixnet_s"].sample(0).stages[1][0]
    with pytest.raises(ArchError):
        replace(block, **{field: value})


def test_remembered_values_keep_equal_values_of_other_types_apart(spaces):
    # 1 == 1.0 == True with equal hashes: validation is cached per value *and* type
    block = spaces["mixnet_s"].sample(0).stages[1][0]  # repeats 1, expand groups 2
    assert replace(block, repeats=1).repeats == 1
    for field, value in (("repeats", True), ("exp_groups", True), ("out", 24.0),
                         ("kernels", (3.0,))):
        with pytest.raises(ArchError):
            replace(block, **{field: value})
    assert type(replace(block, se=0).se) is float  # normalised, as before the cache


def test_from_dict_is_strict(spaces):
    d = spaces["mixnet_s"].sample(0).to_dict()
    d["stem"]["extra"] = 1
    with pytest.raises(ArchError, match="unknown keys"):
        Architecture.from_dict(d)
    d = spaces["mixnet_s"].sample(0).to_dict()
    del d["stages"][0][0]["act"]
    with pytest.raises(ArchError, match="missing keys"):
        Architecture.from_dict(d)
    with pytest.raises(ArchError, match="invalid JSON"):
        Architecture.from_json("{")


def test_layers_resolve_widths(spaces):
    layers = list(spaces["mixnet_s"].sample(0).layers())
    assert len(layers) == 16
    first_ir = layers[1]
    assert (first_ir.in_ch, first_ir.mid_ch, first_ir.out_ch, first_ir.stride) == (16, 96, 24, 2)
    mix = layers[3]  # ir_r1_k3.5.7_s2_e6_se0.5_c40: 144 channels over 3 kernels
    assert mix.dw_splits == (48, 48, 48) and mix.se_ch == 12 and mix.out_size == 28
    assert [layer.residual for layer in layers[:3]] == [True, False, True]
    last = layers[-1]
    assert (last.in_ch, last.out_ch, last.out_size, last.residual) == (200, 200, 7, True)


def test_public_api_names():
    for name in ("load_space", "count_cost", "build_model", "Architecture", "SearchSpace"):
        assert name in nas.__all__
