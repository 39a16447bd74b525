"""Architectures as feature vectors for a learned accuracy predictor.

Two encodings (White et al., "How Powerful are Performance Predictors in NAS?", NeurIPS 2021,
compare such families; reference/RANKING.md has the numbers for a MobileNet-style space):

* ``summary``: per stage, the depth, output width, mean expansion, mean SE ratio, the
  channel-weighted mean and the largest kernel (each as the proxy sees it: a k x k kernel on
  an s x s map acts as min(k, 2s - 1), see :mod:`nas.space.proxy`), the mean number of
  distinct kernel groups, the share of channels at the smallest kernel, and of grouped 1x1
  convs; then the stem and head widths and log FLOPs and log params at the target input.
  Works for any architecture of any space with the same number of stages.
* ``onehot``: one indicator per value of each decision of a space (the encoding ridge
  regression was measured with in the reference notes); needs the space.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace
from typing import Dict, Optional, Sequence, Tuple

from ..arch import Architecture, Block, InputSpec, block_layers, memo_table
from ..cost import count_cost

__all__ = ["summary_features", "onehot_features", "ENCODINGS"]

ENCODINGS = ("summary", "onehot")


def summary_features(arch: Architecture, resolution: Optional[int] = None) -> Dict[str, float]:
    """Per-stage summaries (see the module docstring); ``resolution`` is the proxy's.

    Each row's sums over its layers are remembered with the row, per input width and size
    (:func:`nas.arch.memo_table`, as :mod:`nas.cost` keeps its cost), so an architecture
    whose rows were met before costs a few additions: an evolutionary search scores ~10^5
    candidates on a predictor (``experiments/bench/evolution.py``). Adding a stage's rows'
    sums instead of its layers' terms one by one may change the last bit of a mean.
    """
    seen = arch  # the network at the proxy's input: its feature-map sizes
    if resolution and resolution != arch.input.resolution:
        seen = replace(arch, input=InputSpec(arch.input.channels, resolution, arch.input.classes))
    features: Dict[str, float] = {}
    size, width = seen.stem_size(), seen.stem.out
    for s, rows in enumerate(seen.stages):
        n = out = 0
        kmean = kmax = groups = exp = se = small = grouped = 0.0
        for block in rows:
            table = memo_table(block, "_summary")
            row = table.get((width, size))
            if row is None:
                row = table[(width, size)] = _row_sums(block, width, size)
            if row[0]:  # an absent row (r0) has no layers and passes its input on
                n += row[0]
                kmean += row[1]
                kmax = max(kmax, row[2])
                groups += row[3]
                small += row[4]
                exp += row[5]
                se += row[6]
                grouped += row[7]
                size = row[8]
                width = out = block.out
        if n:  # a stage of absent rows has no layers, hence no features
            features.update(zip(_stage_names(s), (
                n, out, exp / n, se / n, kmean / n, kmax, groups / n, small / n,
                grouped / n)))
    cost = count_cost(arch)
    features.update({"stem.width": arch.stem.out, "head.width": arch.head.out,
                     "log_flops": math.log(cost.flops), "log_params": math.log(cost.params)})
    return features


@functools.lru_cache(maxsize=None)
def _stage_names(s: int) -> Tuple[str, ...]:
    return tuple(f"s{s}.{name}" for name in (
        "depth", "width", "expansion", "se", "kernel_mean", "kernel_max", "kernel_groups",
        "smallest_kernel_share", "grouped_1x1"))


def _row_sums(block: Block, width: int, size: int) -> Tuple[float, ...]:
    """``(layers, then the sums of kernel_mean, the max kernel, the sums of kernel groups,
    smallest-kernel share, expansion, SE, grouped 1x1 terms over them, output size)`` of
    a row fed ``width`` channels at ``size``."""
    n = 0
    kmean = kmax = groups = exp = se = small = grouped = 0.0
    for layer in block_layers(block, width, size):
        reach = 2 * layer.in_size - 1  # the widest kernel a map of this size lets act
        eff = [min(k, reach) for k in layer.kernels]
        # dw_splits are the layer's channel groups, in kernel order
        kmean += sum(c * k for c, k in zip(layer.dw_splits, eff)) / layer.mid_ch
        kmax = max(kmax, max(eff))
        groups += len(set(eff))
        small += sum(c for c, k in zip(layer.dw_splits, eff) if k == eff[0]) / layer.mid_ch
        exp += layer.mid_ch / layer.in_ch
        se += layer.se_ch / layer.in_ch if layer.se_ch else 0.0
        grouped += (layer.exp_groups > 1) + (layer.proj_groups > 1)
        n += 1
        size = layer.out_size
    return (n, kmean, kmax, groups, small, exp, se, grouped, size)


def onehot_features(arch: Architecture, space) -> Dict[str, float]:
    """One indicator per (decision, value) of ``space``, plus log FLOPs and log params."""
    choices = space.choices_of(arch)
    features = {f"{d.name}={label}": float(choices[d.name] == value)
                for d in space.decisions for value, label in zip(d.values, d.labels)}
    cost = count_cost(arch)
    features.update({"log_flops": math.log(cost.flops), "log_params": math.log(cost.params)})
    return features


def feature_table(archs: Sequence[Architecture], encoding: str, space=None,
                  resolution: Optional[int] = None):
    """``(names, rows)``: the same feature names, in the same order, for every arch."""
    if encoding == "summary":
        dicts = [summary_features(a, resolution) for a in archs]
    elif encoding == "onehot":
        dicts = [onehot_features(a, space) for a in archs]
    else:
        raise ValueError(f"unknown encoding {encoding!r}: expected one of {ENCODINGS}")
    names = sorted(set().union(*dicts)) if dicts else []
    return names, [[d.get(n, 0.0) for n in names] for d in dicts]
