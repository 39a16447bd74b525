"""NASWOT against its definition, the predictor's fit and file, the ranking metrics."""

import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import nas
from nas.errors import CheckpointError
from nas.estimators import Predictor, PredictorEstimator, naswot_score, save_predictor, top_k

TINY = nas.load_space(str(Path(__file__).parents[1] / "spaces" / "tiny.yaml"))


def test_naswot_matches_the_papers_definition():
    """K[i, j] = N_A - hamming(c_i, c_j) over every activation unit, score = log|det K|."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 3, 3, padding=1), nn.SiLU(), nn.Flatten(), nn.Linear(48, 2))
    x = torch.randn(6, 1, 4, 4)
    codes = []
    net.train()
    with torch.no_grad():
        h = net[1](net[0](x))
        codes.append((h > 0).reshape(6, -1))
        h = net[3](net[2](h))
        codes.append((h > 0).reshape(6, -1))
    c = torch.cat(codes, 1).to(torch.float64)
    n_units = c.shape[1]
    kernel = torch.empty(6, 6, dtype=torch.float64)
    for i, j in itertools.product(range(6), range(6)):
        kernel[i, j] = n_units - (c[i] != c[j]).sum()
    assert naswot_score(net, x) == pytest.approx(torch.linalg.slogdet(kernel)[1].item(),
                                                 rel=1e-9)
    assert net.training  # restored


def test_the_predictor_learns_a_ranking_it_can_see():
    """Targets that are a function of the encoding: held-out architectures ranked right."""
    rng = random.Random(0)
    archs = list({a.id: a for a in (TINY.sample(rng) for _ in range(80))}.values())
    truth = [np.log(nas.count_cost(a).params) + 0.1 * a.stages[1][0].expansion for a in archs]
    model = Predictor("ridge", "summary").fit(archs[:50], truth[:50])
    from scipy import stats

    assert stats.kendalltau(model.predict(archs[50:]), truth[50:]).statistic > 0.9


def test_predictor_file_round_trip_and_refusals(tmp_path):
    rng = random.Random(1)
    archs = [TINY.sample(rng) for _ in range(10)]
    targets = [0.1 * i for i in range(10)]
    save_predictor(tmp_path / "p.json", archs, targets, "ridge", "onehot", 28, {}, TINY)
    est = PredictorEstimator(tmp_path / "p.json")
    again = Predictor("ridge", "onehot", TINY, 28).fit(archs, targets)
    assert est.score(archs[:3]) == pytest.approx(again.predict(archs[:3]))
    data = json.loads((tmp_path / "p.json").read_text())
    data["targets"] = data["targets"][:-1]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="differ in number"):
        PredictorEstimator(tmp_path / "bad.json")
    (tmp_path / "pickle.json").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(CheckpointError, match="not a valid predictor file"):
        PredictorEstimator(tmp_path / "pickle.json")


def test_predictor_flags_architectures_outside_its_flops_range(tmp_path):
    rng = random.Random(2)
    archs = sorted({a.id: a for a in (TINY.sample(rng) for _ in range(40))}.values(),
                   key=lambda a: nas.count_cost(a).flops)
    inside = archs[5:-5]
    save_predictor(tmp_path / "p.json", inside, [0.5] * len(inside), "ridge", "summary", 28, {})
    est = PredictorEstimator(tmp_path / "p.json")
    assert all(est.caveat(a) is None for a in inside)
    below, above = archs[0], archs[-1]
    lo, hi = (nas.count_cost(a).flops for a in (inside[0], inside[-1]))
    assert nas.count_cost(below).flops < lo and nas.count_cost(above).flops > hi
    for arch in (below, above):
        assert "outside" in est.caveat(arch) and "extrapolated" in est.caveat(arch)
    assert f"{len(inside)} training architectures of" in est.describe()


def test_top_k_precision_and_regret():
    truth = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    assert top_k(truth, truth, 2) == {"precision": 1.0, "regret": 0.0}
    picked = [0.0, 1.0, 0.2, 0.9, 0.1, 0.3]  # picks 0.8 first, then 0.6
    assert top_k(picked, truth, 2) == pytest.approx({"precision": 0.5, "regret": 0.1})


def _summary_oracle(arch, resolution=None):
    """The summary encoding derived afresh from ``arch.layers()`` (the definition; what
    ``summary_features`` computed before it remembered each row's terms)."""
    import math
    from dataclasses import replace

    seen = arch
    if resolution and resolution != arch.input.resolution:
        seen = replace(arch, input=nas.InputSpec(arch.input.channels, resolution,
                                                 arch.input.classes))
    stages = {}
    for layer in seen.layers():
        stages.setdefault(layer.stage, []).append(layer)
    out = {}
    for s, layers in sorted(stages.items()):
        kmean = kmax = groups = exp = se = small = grouped = 0.0
        for layer in layers:
            eff = [min(k, 2 * layer.in_size - 1) for k in layer.kernels]
            kmean += sum(c * k for c, k in zip(layer.dw_splits, eff)) / layer.mid_ch
            kmax = max(kmax, max(eff))
            groups += len(set(eff))
            small += sum(c for c, k in zip(layer.dw_splits, eff) if k == eff[0]) / layer.mid_ch
            exp += layer.mid_ch / layer.in_ch
            se += layer.se_ch / layer.in_ch if layer.se_ch else 0.0
            grouped += (layer.exp_groups > 1) + (layer.proj_groups > 1)
        n = len(layers)
        out.update({f"s{s}.depth": n, f"s{s}.width": layers[-1].out_ch,
                    f"s{s}.expansion": exp / n, f"s{s}.se": se / n,
                    f"s{s}.kernel_mean": kmean / n, f"s{s}.kernel_max": kmax,
                    f"s{s}.kernel_groups": groups / n, f"s{s}.smallest_kernel_share": small / n,
                    f"s{s}.grouped_1x1": grouped / n})
    cost = nas.count_cost(arch)
    out.update({"stem.width": arch.stem.out, "head.width": arch.head.out,
                "log_flops": math.log(cost.flops), "log_params": math.log(cost.params)})
    return out


# spaces with blocks the summary encoding does not describe (no depthwise kernels)
_NO_SUMMARY = ("mobilenetv4_conv_small", "mobilenetv4_uib", "operators")


@pytest.mark.parametrize("resolution", [None, 32, 64])
def test_remembered_summary_features_equal_the_definition(space, resolution):
    """Every space (optional rows, every block kind), at the target and proxy sizes: the
    remembered per-row sums give the features the layers give (to the last bits), on the first
    meeting of a row and on later ones (same rows, other widths and sizes)."""
    from nas.errors import ArchError
    from nas.estimators import summary_features

    rng = random.Random(11)
    checked = 0
    for _ in range(30):
        arch = space.sample(rng)
        try:
            want = _summary_oracle(arch, resolution)
        except (ArchError, ValueError) as e:
            # the space cannot take this resolution (ADown at 1x1), or a block without a
            # depthwise conv (uir k0, cn, pc), which the summary encoding does not describe
            with pytest.raises(type(e)):
                summary_features(arch, resolution)
            continue
        for _ in range(2):  # first meeting, then remembered
            assert summary_features(arch, resolution) == pytest.approx(want, rel=1e-12)
        checked += 1
    assert checked or resolution or space.name in _NO_SUMMARY
