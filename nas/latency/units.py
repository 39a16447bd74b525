"""The units a latency table times: a network's stem, each of its blocks, and its tail.

A unit is what the static network (:class:`nas.ops.static.MixNet`) runs between two block
boundaries: the stem; one block whole, so its 1x1 convs, MixConv (split, depthwise convs,
concat), SE and residual add run together, as a runtime's fusions and layout changes
inside a block would have them; or the tail (head conv, pool, classifier). Its key names
everything its latency depends on: widths, kernels, channel split, groups, SE, activation,
residual, and the input size.

A space's units are finite even where its architectures are not (``mixnet_300m``: 10^25
architectures, 4,114 distinct blocks, 2 stems and 6 tails), so a table can hold every one
and never measure while it predicts.
"""

from __future__ import annotations

import itertools
from typing import Callable, Dict, List, Tuple

import torch
from torch import nn

from ..arch import Architecture, Block, Layer, block_layers, memo_table
from ..channels import check_groups, conv_out_size
from ..errors import ArchError
from ..grammar import SAME
from ..model import block_args, block_row
from ..ops.static import MixNet
from ..space import SearchSpace

__all__ = ["Unit", "unit_keys", "network_units", "arch_units", "space_units"]

#: ``(input shape at batch 1, builder of the module)`` of one unit.
Unit = Tuple[Tuple[int, ...], Callable[[], nn.Module]]


def _join(values) -> str:
    return ".".join(map(str, values))


def _stem_key(channels: int, stem: tuple, size: int) -> str:
    kernel, stride, out, act, patch = stem
    shape = f"p{patch}" if patch else f"{kernel}|{stride}"
    return f"stem|{channels}|{shape}|{out}|{act}|{size}"


def _value(v) -> str:
    if isinstance(v, (tuple, list)):
        return _join(v)
    return str(int(v)) if isinstance(v, bool) else str(v)


def _block_key(b: Layer) -> str:
    # Every argument of the block's class, by name, in the class's order: what its
    # latency can depend on, for every kind (ds, ir, uir, cm, cn, pc, adown, ...).
    args = "|".join(f"{name}={_value(v)}" for name, v in block_args(b).items())
    return f"{b.kind}|{args}|{b.in_size}"


def _tail_key(width: int, head: tuple, classes: int, size: int) -> str:
    out, act, post, post_bn = head
    extra = f"|f{post}{'bn' if post_bn else ''}" if post else ""
    return f"head|{width}|{out}|{act}|{classes}|{size}{extra}"


def _stem_of(arch: Architecture) -> tuple:
    s = arch.stem
    return (s.kernel, s.stride, s.out, s.act, s.patch)


def _head_of(arch: Architecture) -> tuple:
    h = arch.head
    return (h.out, h.act, h.post, h.post_bn)


def unit_keys(arch: Architecture) -> List[str]:
    """The keys of ``arch``'s units in network order: stem, blocks, tail.

    A row's keys are remembered with the row per input width and size
    (:func:`nas.arch.memo_table`), so a table prices an architecture whose rows it met
    before in a few microseconds: an evolutionary search prices ~10^5 candidates.
    """
    inp = arch.input
    size, width = arch.stem_size(), arch.stem.out  # where arch.layers() starts
    keys = [_stem_key(inp.channels, _stem_of(arch), inp.resolution)]
    for rows in arch.stages:
        for block in rows:
            table = memo_table(block, "_unit_keys")
            found = table.get((width, size))
            if found is None:
                layers = block_layers(block, width, size)
                found = table[(width, size)] = (tuple(_block_key(b) for b in layers),
                                                layers[-1].out_size if layers else size)
            if found[0]:  # an absent row (r0) has no blocks and passes its input on
                keys += found[0]
                size, width = found[1], block.out
    keys.append(_tail_key(arch.last_width, _head_of(arch), inp.classes, size))
    return keys


def _stem_size(resolution: int, stem: tuple) -> int:
    kernel, stride, _, _, patch = stem
    return resolution // patch if patch else conv_out_size(resolution, kernel, stride)


class _Tail(nn.Module):
    """A network's head conv, global average pool and classifier (``MixNet.forward`` after
    ``self.blocks``), sharing its modules."""

    def __init__(self, net: MixNet):
        super().__init__()
        self.head, self.pool, self.head_post = net.head, net.pool, net.head_post
        self.classifier = net.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.head_post(self.pool(self.head(x))), 1))


def network_units(net: MixNet) -> List[nn.Module]:
    """``net``'s units in order (its own modules): chained, they compute ``net(x)``."""
    return [net.stem, *net.blocks, _Tail(net)]


# The table builds each unit alone, with the network's own builder, so a unit is exactly
# the module the network runs: a MixNet around it with a 1x1 stem and a tiny head that are
# then left out.
_NO_HEAD = (8, "relu", 0, False)


def _stem_unit(channels: int, stem: tuple):
    return lambda: MixNet(stem, [], _NO_HEAD, 1, channels).stem


def _block_unit(layer: Layer):
    return lambda: MixNet((1, 1, layer.in_ch, "", 0), [block_row(layer)],
                          _NO_HEAD, 1, layer.in_ch).blocks[0]


def _tail_unit(width: int, head: tuple, classes: int):
    return lambda: _Tail(MixNet((1, 1, width, "", 0), [], head, classes, width))


def arch_units(arch: Architecture) -> Dict[str, Unit]:
    """The units of ``arch``: ``{key: (input shape, builder)}``, in network order."""
    inp, stem = arch.input, _stem_of(arch)
    units = {unit_keys(arch)[0]: ((1, inp.channels, inp.resolution, inp.resolution),
                                  _stem_unit(inp.channels, stem))}
    size = _stem_size(inp.resolution, stem)
    for layer in arch.layers():
        units[_block_key(layer)] = ((1, layer.in_ch, layer.in_size, layer.in_size),
                                    _block_unit(layer))
        size = layer.out_size
    units[_tail_key(arch.last_width, _head_of(arch), inp.classes, size)] = (
        (1, arch.last_width, size, size),
        _tail_unit(arch.last_width, _head_of(arch), inp.classes))
    return units


def space_units(space: SearchSpace) -> Dict[str, Unit]:
    """Every unit any architecture of ``space`` can have: ``{key: (input shape, builder)}``.

    Walks the rows in order with the set of (width, size) each can be fed: for each and
    each combination of the row's alternatives, its first block and (where the row can
    repeat) the blocks after it, which all have the same shape. A block no architecture
    can have (a channel split that leaves a kernel group empty, split ratios that do not
    fit the kernel set) is left out.
    """
    inp = space.input
    units: Dict[str, Unit] = {}
    stem = space.stem.alternatives
    states = set()  # (width, size) a row can be fed: a patch stem's choices change the size
    for kernels, stride, out, act, patch in itertools.product(
            stem["kernels"], stem["stride"], stem["out"], stem["act"], stem["patch"]):
        args = (patch or kernels[0], patch or stride, out, act, patch)
        units[_stem_key(inp.channels, args, inp.resolution)] = (
            (1, inp.channels, inp.resolution, inp.resolution), _stem_unit(inp.channels, args))
        states.add((out, _stem_size(inp.resolution, args)))
    for rows in space.stages:
        for row in rows:
            fields = [f for f in row.alternatives if f != "repeats"]
            repeats = min(2, max(row.alternatives["repeats"]))
            # an optional row (depth 0 allowed) passes its input on (stride 1: the loader's rule)
            after = set(states) if 0 in row.alternatives["repeats"] else set()
            for width, size in sorted(states):
                for combo in itertools.product(*(row.alternatives[f] for f in fields)):
                    values = dict(zip(fields, combo), repeats=repeats)
                    if values["out"] is SAME:
                        values["out"] = width
                    try:
                        block = Block.from_values(row.kind, values)
                    except ArchError:  # e.g. split ratios that do not fit the kernel set
                        continue
                    layers = block_layers(block, width, size)
                    for layer in layers:
                        if check_groups(layer.dw_splits):
                            units.setdefault(_block_key(layer), (
                                (1, layer.in_ch, layer.in_size, layer.in_size),
                                _block_unit(layer)))
                    after.add((values["out"], layers[-1].out_size))
            states = after
    alts = space.head.alternatives
    for (width, size), *head in itertools.product(sorted(states), alts["out"], alts["act"],
                                                  alts["post"], alts["post_bn"]):
        units[_tail_key(width, tuple(head), inp.classes, size)] = (
            (1, width, size, size), _tail_unit(width, tuple(head), inp.classes))
    return units
