"""``build_model(arch)``: the static network of an architecture, with fresh weights."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

from torch import Tensor, nn

from .arch import Architecture, Layer
from .blocks import kind_of
from .ops.static import MixNet

__all__ = ["build_model", "layer_table", "block_args", "block_row", "onnx_program"]


def block_args(layer: Layer) -> Dict[str, object]:
    """The keyword arguments of ``layer``'s static block class (the table of block kinds,
    :mod:`nas.blocks`, says which class and which arguments)."""
    return kind_of(layer.kind).args(layer)


def block_row(layer: Layer) -> Tuple[str, Dict[str, object]]:
    """``(static class name, keyword arguments)`` of ``layer``: one row of
    :class:`nas.ops.static.MixNet`'s table."""
    kind = kind_of(layer.kind)
    return kind.static, kind.args(layer)


def layer_table(arch: Architecture) -> Tuple[tuple, List[tuple], tuple]:
    """``(stem, blocks, head)`` rows as :class:`nas.ops.static.MixNet` takes them.

    Every value is an int, a str, a bool or a tuple of ints, all validated by
    :class:`Architecture`; the exporter writes this table literally into model.py.
    """
    stem = (arch.stem.kernel, arch.stem.stride, arch.stem.out, arch.stem.act, arch.stem.patch)
    blocks = [block_row(layer) for layer in arch.layers()]
    head = arch.head
    return stem, blocks, (head.out, head.act, head.post, head.post_bn)


def build_model(arch: Architecture, num_classes: Optional[int] = None,
                in_chans: Optional[int] = None, features_only: bool = False,
                out_indices: Optional[Sequence[int]] = None) -> MixNet:
    """Static network for ``arch``; classes and input channels default to the space's target.

    With ``features_only`` it is a backbone: ``forward`` returns the feature maps of the
    reduction levels ``out_indices`` (default: strides 8, 16, 32), timm's convention.
    """
    stem, blocks, head = layer_table(arch)
    return MixNet(
        stem, blocks, head,
        num_classes=arch.input.classes if num_classes is None else num_classes,
        in_chans=arch.input.channels if in_chans is None else in_chans,
        features_only=features_only, out_indices=out_indices,
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
