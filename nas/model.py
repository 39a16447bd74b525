"""``build_model(arch)``: the static network of an architecture, with fresh weights."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .arch import Architecture, Layer
from .blocks import kind_of
from .ops.static import MixNet

__all__ = ["build_model", "layer_table", "block_args", "block_row", "onnx_program", "onnx_axes",
           "fold_state_dict", "fold_batchnorm"]


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


def onnx_axes(example: torch.Tensor, spatial: int = 0) -> Tuple[Dict[int, Any], torch.Tensor]:
    """The dynamic axes of an exported ONNX network's input, and an example that fits them:
    the batch; with ``spatial`` (the deepest output's reduction), height and width from
    ``spatial + 1`` (see ``nas.export.write``), the example enlarged to that when smaller."""
    axes = {0: torch.export.Dim("batch")}
    if spatial:  # a detector feeds its own image sizes
        low = spatial + 1
        axes.update({2: torch.export.Dim("height", min=low, max=4096),
                     3: torch.export.Dim("width", min=low, max=4096)})
        n, c, h, w = example.shape
        if min(h, w) < low:
            example = torch.randn(n, c, max(h, low), max(w, low))
    return axes, example


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


def _conv_parts(conv: nn.Module, name: str) -> List[Tuple[str, int, int]]:
    """``(name of a conv, first, end)``: the convs a (Mix)Conv is made of, and the output
    channels of each (a split MixConv's groups are consecutive channel ranges)."""
    if hasattr(conv, "convs"):  # MixConv, split form
        parts, first = [], 0
        for i, c in enumerate(conv.splits):
            parts.append((f"{name}.convs.{i}", first, first + c))
            first += c
        return parts
    if hasattr(conv, "splits"):  # FusedMixConv
        return [(f"{name}.conv", 0, sum(conv.splits))]
    return [(name, 0, conv.out_channels)]


def fold_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """``model``'s state dict with every BatchNorm that directly follows a conv folded into it:
    the weights of the network built with ``fold_bn=True`` (same form otherwise).

    In eval mode BN computes ``y = (x - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``,
    so a conv ``x = W * z + b`` followed by it is the conv ``W' = W * s`` (per output channel),
    ``b' = (b - mean) * s + beta`` (Ioffe & Szegedy 2015; what
    ``torch.nn.utils.fuse_conv_bn_eval`` and ONNX Runtime do). The pairs are each block
    class's ``FOLDS``. Computed in float64, stored in the weights' dtype; the BN's running
    statistics are used, so fold a network whose statistics are final (after BN
    recalibration).
    """
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        for conv_name, bn_name in getattr(module, "FOLDS", ()):
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            # By name, not isinstance: the model may come from an exported model.py, whose
            # classes are copies of nas.ops.static's; an identity is already folded.
            if conv is None or type(bn).__name__ != "BatchNorm2d":
                continue
            key = prefix + bn_name
            mean, var, gamma, beta = (state.pop(f"{key}.{t}").double() for t in
                                      ("running_mean", "running_var", "weight", "bias"))
            state.pop(f"{key}.num_batches_tracked", None)
            scale = gamma / torch.sqrt(var + bn.eps)
            for part, first, end in _conv_parts(conv, prefix + conv_name):
                weight = state[f"{part}.weight"]
                s = scale[first:end]
                bias = state.get(f"{part}.bias", torch.zeros_like(s)).double()
                state[f"{part}.weight"] = (weight.double() * s.view(-1, 1, 1, 1)).to(weight.dtype)
                state[f"{part}.bias"] = ((bias - mean[first:end]) * s
                                         + beta[first:end]).to(weight.dtype)
    return state


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) with every BatchNorm that directly follows a conv
    folded into it: the modules :func:`fold_state_dict` computes the weights of, each folded
    BatchNorm an identity and its conv given a bias. Same outputs up to float32 rounding.

    Works on any module made of nas's block classes (a network, one block, an exported
    ``model.py``'s network): what an int8 quantiser needs, because a BatchNorm left after a
    MixConv's concat is a separate operation that quantises poorly. A model without such
    pairs comes back as an unchanged copy.
    """
    state = fold_state_dict(model)
    folded = copy.deepcopy(model).eval()
    for name, module in list(folded.named_modules()):  # replaced while walked
        prefix = f"{name}." if name else ""
        for conv_name, bn_name in getattr(module, "FOLDS", ()):
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if conv is None or type(bn).__name__ != "BatchNorm2d":  # as fold_state_dict
                continue
            setattr(module, bn_name, nn.Identity())
            for part, first, end in _conv_parts(conv, prefix + conv_name):
                layer = folded.get_submodule(part)
                if layer.bias is None:
                    layer.bias = nn.Parameter(torch.zeros(end - first,
                                                          dtype=layer.weight.dtype))
    folded.load_state_dict(state)
    return folded
