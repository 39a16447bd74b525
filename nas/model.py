"""``build_model(arch)``: the static network of an architecture, with fresh weights."""

from __future__ import annotations

from typing import Optional, Tuple

from .arch import Architecture
from .ops.static import MixNet

__all__ = ["build_model", "layer_table"]


def layer_table(arch: Architecture) -> Tuple[tuple, list, tuple]:
    """``(stem, blocks, head)`` rows as :class:`nas.ops.static.MixNet` takes them.

    Every value is an int, a str, a bool or a tuple of ints, all validated by
    :class:`Architecture`; the exporter writes this table literally into model.py.
    """
    stem = (arch.stem.kernel, arch.stem.stride, arch.stem.out, arch.stem.act)
    blocks = [
        (b.kind, b.in_ch, b.mid_ch, b.out_ch, b.kernels, b.dw_splits, b.stride, b.se_ch,
         b.exp_groups, b.proj_groups, b.act, b.residual)
        for b in arch.layers()
    ]
    return stem, blocks, (arch.head.out, arch.head.act)


def build_model(arch: Architecture, num_classes: Optional[int] = None,
                in_chans: Optional[int] = None) -> MixNet:
    """Static network for ``arch``; classes and input channels default to the space's target."""
    stem, blocks, head = layer_table(arch)
    return MixNet(
        stem, blocks, head,
        num_classes=arch.input.classes if num_classes is None else num_classes,
        in_chans=arch.input.channels if in_chans is None else in_chans,
    )
