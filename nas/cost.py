"""Analytic FLOPs and parameter counts, from the architecture alone.

FLOPs follow fvcore's convention (DESIGN.md §3): multiply-accumulates of convs and
linears (bias adds not counted), 2 per element for an eval-mode affine BatchNorm,
1 per input element for the head's global average pool; activations, the SE gate
multiply, residual adds, split and concat count 0, and so do the SE squeeze (a
``mean``) and ADown's average and max pools, which fvcore does not count.
``tests/test_cost.py`` holds this to fvcore exactly on random architectures of every
shipped space.

The arithmetic is plain integer code per block row (repeats after the first are
identical, so they are counted once and multiplied): it runs in a search's inner loop,
where the same rows recur, so each row's cost is remembered per (block, width, size)
and an architecture's cost is a sum of a dozen remembered terms.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Optional, Tuple

from .arch import Architecture, Block, InputSpec, memo_table, out_size_of
from .blocks import dw_weights, kind_of
from .channels import conv_out_size, hard_se_channels, se_channels

__all__ = ["Cost", "count_cost", "block_cost", "stem_cost", "head_cost", "cache_clear"]



@dataclass(frozen=True)
class Cost:
    """FLOPs (multiply-accumulates, fvcore convention) and parameters."""

    flops: int
    params: int


def _layer(kind: str, in_ch: int, out: int, block: Block, size_in: int, size_out: int,
           stride: int):
    """FLOPs and params of one block of a row: the kind's own terms (the table of block
    kinds, :mod:`nas.blocks`) plus its SE, alike for every kind."""
    k = kind_of(kind)
    mid = k.mid_width(in_ch, out, block.expansion)
    flops, params = k.cost(in_ch, out, mid, block, size_in * size_in, size_out * size_out,
                           stride)
    if block.hse:
        se = hard_se_channels(mid, block.hse)
    else:
        se = se_channels(in_ch, block.se)
    if se:
        flops += 2 * mid * se
        params += 2 * mid * se + se + mid
    return flops, params


_NONE: dict = {}  # read-only: what a block has remembered before its first cost


def block_cost(block: Block, in_ch: int, size: int) -> Tuple[int, int, int]:
    """``(flops, params, out_size)`` of a block row fed ``in_ch`` channels at ``size``
    (remembered with the block)."""
    costs = memo_table(block, "_costs")
    found = costs.get((in_ch, size))
    if found is None:
        found = costs[(in_ch, size)] = _block_cost(block, in_ch, size)
    return found


def _block_cost(block: Block, in_ch: int, size: int) -> Tuple[int, int, int]:
    if block.repeats == 0:
        return 0, 0, size
    kind = block.kind
    stride = kind_of(kind).stride_of(block, 0)
    out_size = out_size_of(kind, size, stride)
    flops, params = _layer(kind, in_ch, block.out, block, size, out_size, stride)
    if block.repeats > 1:
        f, p = _layer(kind, block.out, block.out, block, out_size, out_size,
                      kind_of(kind).stride_of(block, 1))
        flops += f * (block.repeats - 1)
        params += p * (block.repeats - 1)
    return flops, params, out_size


@lru_cache(maxsize=256)
def stem_cost(spec: InputSpec, kernel: int, stride: int, out: int,
              patch: int = 0) -> Tuple[int, int, int]:
    """``(flops, params, out_size)`` of the stem conv + BN (a patch stem's conv has a bias)."""
    size = conv_out_size(spec.resolution, kernel, stride, 0 if patch else None)
    weights = out * spec.channels * kernel * kernel
    return (weights + 2 * out) * size * size, weights + (3 if patch else 2) * out, size


@lru_cache(maxsize=1024)
def head_cost(in_ch: int, size: int, out: int, classes: int, post: int = 0,
              post_bn: bool = False) -> Tuple[int, int]:
    """``(flops, params)`` of the head: [1x1 conv + BN] -> global average pool (1 FLOP per
    input element, as fvcore counts it) -> [1x1 conv + bias or BN] -> linear classifier."""
    px = size * size
    flops = params = 0
    width = in_ch
    if out:
        params = in_ch * out + 2 * out
        flops = params * px
        width = out
    flops += width * px
    if post:
        flops += width * post + (2 * post if post_bn else 0)
        params += width * post + (2 * post if post_bn else post)
        width = post
    return flops + width * classes, params + width * classes + classes


def count_cost(arch: Architecture, input: Optional[InputSpec] = None) -> Cost:
    """FLOPs and params of ``arch`` at its target input (or at ``input``, e.g. a proxy).

    No model is built and no forward pass is run.
    """
    if input is not None and input != arch.input:
        arch = replace(arch, input=input)
    stem = arch.stem
    flops, params, size = stem_cost(arch.input, stem.kernel, stem.stride, stem.out, stem.patch)
    width = stem.out
    for rows in arch.stages:
        for block in rows:
            found = block._memo.get("_costs", _NONE).get((width, size))
            f, p, size = found if found is not None else block_cost(block, width, size)
            flops += f
            params += p
            width = block.out
    head = arch.head
    f, p = head_cost(width, size, head.out, arch.input.classes, head.post, head.post_bn)
    return Cost(flops + f, params + p)


def cache_clear() -> None:
    """Forget the remembered costs of stems, heads and MixConvs (benchmarks time cold
    passes with it; a row's cost lives with its Block, so fresh Blocks are cold too)."""
    for cached in (dw_weights, stem_cost, head_cost):
        cached.cache_clear()
