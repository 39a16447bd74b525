"""``build_model(arch)``: the static network of an architecture, with fresh weights."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Any, Optional, Sequence, Tuple

from torch import Tensor, nn

from .arch import Architecture, Layer
from .ops.static import MixNet

__all__ = ["build_model", "layer_table", "layer_row", "onnx_program"]


def layer_row(b: Layer) -> tuple:
    """One block's row as :class:`nas.ops.static.MixNet` takes it (see :func:`layer_table`)."""
    return (b.kind, b.in_ch, b.mid_ch, b.out_ch, b.kernels, b.dw_splits, b.stride, b.se_ch,
            b.exp_groups, b.proj_groups, b.act, b.residual)


def layer_table(arch: Architecture) -> Tuple[tuple, list, tuple]:
    """``(stem, blocks, head)`` rows as :class:`nas.ops.static.MixNet` takes them.

    Every value is an int, a str, a bool or a tuple of ints, all validated by
    :class:`Architecture`; the exporter writes this table literally into model.py.
    """
    stem = (arch.stem.kernel, arch.stem.stride, arch.stem.out, arch.stem.act)
    blocks = [layer_row(b) for b in arch.layers()]
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


def onnx_program(model: nn.Module, inputs: Sequence[Tensor], input_names: Sequence[str],
                 output_names: Sequence[str], dynamic_shapes: Any = None):
    """``model`` exported to ONNX in memory by ``torch.onnx.export(dynamo=True)``, the
    exporter's progress chatter silenced: what ``nas export`` writes as ``model.onnx`` and
    what the ONNX Runtime latency backend times. Returns torch's ``ONNXProgram``
    (``.save(path)``, ``.model_proto``).

    Raises:
        Exception: whatever the exporter raises (its coverage varies between versions).
    """
    import torch

    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)  # e.g. "torchvision is not installed" warnings
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return torch.onnx.export(model, tuple(inputs), input_names=list(input_names),
                                     output_names=list(output_names), dynamo=True,
                                     dynamic_shapes=dynamic_shapes)
    finally:
        onnx_log.setLevel(level)
