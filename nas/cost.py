"""Analytic FLOPs and parameter counts, from the architecture alone.

FLOPs follow fvcore's convention (DESIGN.md §3): multiply-accumulates of convs and
linears (bias adds not counted), 2 per element for an eval-mode affine BatchNorm,
1 per input element for the head's global average pool; activations, the SE gate
multiply, residual adds, split and concat count 0, and so does the SE squeeze (a
``mean``, which fvcore does not count). ``tests/test_cost.py`` holds this to fvcore
exactly on random architectures of every shipped space.

The arithmetic is plain integer code per block row (repeats after the first are
identical, so they are counted once and multiplied): it runs in a search's inner loop.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Optional, Tuple

from .arch import Architecture, Block, InputSpec
from .channels import conv_out_size, mid_channels, se_channels, split_channels

__all__ = ["Cost", "count_cost", "block_cost", "stem_cost", "head_cost"]


@dataclass(frozen=True)
class Cost:
    """FLOPs (multiply-accumulates, fvcore convention) and parameters."""

    flops: int
    params: int


@lru_cache(maxsize=4096)
def _dw_weights(mid: int, kernels: Tuple[int, ...], split) -> int:
    """Weights of a MixConv (per output pixel, that is also its MACs per pixel)."""
    return sum(c * k * k for c, k in zip(split_channels(mid, len(kernels), split), kernels))


def _layer(kind: str, in_ch: int, out: int, block: Block, size_in: int, size_out: int):
    """FLOPs and params of one block of a row."""
    mid = in_ch if kind == "ds" else mid_channels(in_ch, block.expansion)
    px_in, px_out = size_in * size_in, size_out * size_out
    dw = _dw_weights(mid, block.kernels, block.split)
    project = mid * out // block.proj_groups
    params = dw + project + 2 * mid + 2 * out
    flops = (dw + project + 2 * mid + 2 * out) * px_out
    if kind == "ir":
        expand = in_ch * mid // block.exp_groups
        params += expand + 2 * mid
        flops += (expand + 2 * mid) * px_in
    se = se_channels(in_ch, block.se)
    if se:
        flops += 2 * mid * se
        params += 2 * mid * se + se + mid
    return flops, params


def block_cost(block: Block, in_ch: int, size: int) -> Tuple[int, int, int]:
    """``(flops, params, out_size)`` of a block row fed ``in_ch`` channels at ``size``."""
    out_size = conv_out_size(size, block.kernels[-1], block.stride)
    flops, params = _layer(block.kind, in_ch, block.out, block, size, out_size)
    if block.repeats > 1:
        f, p = _layer(block.kind, block.out, block.out, block, out_size, out_size)
        flops += f * (block.repeats - 1)
        params += p * (block.repeats - 1)
    return flops, params, out_size


def stem_cost(spec: InputSpec, kernel: int, stride: int, out: int) -> Tuple[int, int, int]:
    """``(flops, params, out_size)`` of the stem conv + BN."""
    size = conv_out_size(spec.resolution, kernel, stride)
    weights = out * spec.channels * kernel * kernel
    return (weights + 2 * out) * size * size, weights + 2 * out, size


def head_cost(in_ch: int, size: int, out: int, classes: int) -> Tuple[int, int]:
    """``(flops, params)`` of 1x1 conv + BN + global average pool + linear classifier."""
    px = size * size
    flops = (in_ch * out + 2 * out + out) * px + out * classes
    params = in_ch * out + 2 * out + out * classes + classes
    return flops, params


def count_cost(arch: Architecture, input: Optional[InputSpec] = None) -> Cost:
    """FLOPs and params of ``arch`` at its target input (or at ``input``, e.g. a proxy).

    No model is built and no forward pass is run.
    """
    if input is not None and input != arch.input:
        arch = replace(arch, input=input)
    stem = arch.stem
    flops, params, size = stem_cost(arch.input, stem.kernel, stem.stride, stem.out)
    width = stem.out
    for rows in arch.stages:
        for block in rows:
            f, p, size = block_cost(block, width, size)
            flops += f
            params += p
            width = block.out
    f, p = head_cost(width, size, arch.head.out, arch.input.classes)
    return Cost(flops + f, params + p)
