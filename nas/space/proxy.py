"""Which kernel decisions a proxy input is too small to see.

A depthwise conv with 'same' padding on an ``s x s`` map reaches at most ``s - 1`` pixels
in each direction, so a ``k x k`` kernel there computes what its centre
``min(k, 2s - 1)`` crop computes. With MixNet's weight sharing (a smaller kernel is the
centre crop of the largest), the supernet's output is then identical for kernel sets that
differ only beyond that size, and a standalone network trained at that size cannot use
the difference either. At 28x28 or 32x32 the last stages of a MixNet-style space run on
2x2 and 1x1 maps, where every kernel from 3 up acts as the same 3x3 (or 1x1): the accuracy
estimate cannot tell such choices apart while the cost model, counted at the target
input, still charges for them.

:func:`blind_decisions` says, for a space and a proxy resolution, which alternatives of
each kernel-set and channel-split decision give the same network (exactly, by this
arithmetic; ``tests/space_tests`` checks it against the supernet's outputs), and
:func:`sighted_resolution` the smallest proxy resolution at which every alternative of
every decision changes the network.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from ..arch import normalize_split, out_size_of
from ..blocks import kind_of
from ..channels import conv_out_size, split_channels
from ..grammar import SAME
from .search_space import SearchSpace

__all__ = ["Blindness", "blind_decisions", "sighted_resolution", "effective_kernels"]


@dataclass(frozen=True)
class Blindness:
    """A decision some of whose alternatives the proxy cannot tell apart.

    Attributes:
        decision: its name, e.g. ``s4.b1.k``.
        groups: its alternatives (grammar labels) grouped by the network they give in
            every architecture; an alternative alone in its group is seen.
        partly: pairs of alternatives that give the same network in some architectures
            (e.g. with one channel split but not another).
        map_size: the largest feature map the decision's convolutions run on.
    """

    decision: str
    groups: Tuple[Tuple[str, ...], ...]
    partly: Tuple[Tuple[str, str], ...]
    map_size: int

    @property
    def invisible(self) -> bool:
        """No alternative changes the network at all."""
        return len(self.groups) == 1

    def __str__(self) -> str:
        same = [" = ".join(g) for g in self.groups if len(g) > 1]
        some = [f"{a} = {b} in some architectures" for a, b in self.partly]
        return (f"{self.decision} ({self.map_size}x{self.map_size} maps): "
                + "; ".join(same + some))




def effective_kernels(channels: int, kernels: Sequence[int], split, size: int):
    """Per channel, the kernel a MixConv acts with on ``size x size`` maps, as runs
    ``((channels, kernel), ...)`` in channel order."""
    reach = 2 * size - 1
    runs: List[List[int]] = []
    for c, k in zip(split_channels(channels, len(kernels), split), kernels):
        k = min(k, reach)
        if runs and runs[-1][1] == k:
            runs[-1][0] += c
        else:
            runs.append([c, k])
    return tuple((c, k) for c, k in runs)


def _row_contexts(space: SearchSpace, resolution: int):
    """Per block row: ``(where, row, in_widths, out_widths, first_size, later_size)``.

    A patch stem is taken at its smallest patch (the largest maps: what is blind there is
    blind at every patch size); an optional row passes its input widths on.
    """
    stem = space.stem.alternatives
    patch = min(stem.get("patch", (0,)))
    size = (resolution // patch if patch else
            conv_out_size(resolution, stem["kernels"][0][0], stem["stride"][0]))
    widths = set(stem["out"])
    for s, rows in enumerate(space.stages):
        for r, row in enumerate(rows):
            alts = row.alternatives
            outs = widths if alts["out"] == (SAME,) else set(alts["out"])
            if 0 in alts["repeats"]:
                outs = outs | widths
            later = out_size_of(row.kind, size, alts.get("stride", (1,))[0])
            yield f"s{s}.b{r}", row, widths, outs, size, later
            size, widths = later, outs


def _signature(row, kernels, split, in_widths, out_widths, first: int, later: int,
               expansions: Optional[Sequence[float]] = None):
    """What the row's MixConvs compute, for every width and expansion it can take."""
    alts = row.alternatives
    split = normalize_split(split, len(kernels))
    expansions = alts.get("expansion", (1.0,)) if expansions is None else expansions
    kind = kind_of(row.kind)
    sig = []
    for width, e in sorted(itertools.product(in_widths, expansions)):
        mid = kind.mid_width(width, width, e)
        sig.append(("first", mid, effective_kernels(mid, kernels, split, first)))
    if max(alts["repeats"]) > 1 and out_widths:
        for width, e in sorted(itertools.product(out_widths, expansions)):
            mid = kind.mid_width(width, width, e)
            sig.append(("later", mid, effective_kernels(mid, kernels, split, later)))
    return tuple(sig)


def _fits(split, kernels) -> bool:
    return isinstance(split, str) or len(split) == len(kernels)


def _collisions(space: SearchSpace, resolution: int):
    """Per kernel-set and split decision: ``(decision, labels, always, sometimes, size)``,
    the pairs of alternatives that give the same network in every architecture, and the
    pairs that do in some context (a one-repeat row at one input width and expansion, with
    the other decision of the row fixed)."""
    by_name = {d.name: d for d in space.decisions}
    for where, row, ins, outs, first, later in _row_contexts(space, resolution):
        if not kind_of(row.kind).proxy_mixconv:
            continue  # analysed: the one MixConv of ds, dsa and ir rows (not uir, cm, ...)
        alts = row.alternatives
        for key, field in (("k", "kernels"), ("x", "split")):
            decision = by_name.get(f"{where}.{key}")
            if decision is None:
                continue

            def combos(value, alts=alts, field=field):
                return ([(value, x) for x in alts["split"] if _fits(x, value)]
                        if field == "kernels" else
                        [(k, value) for k in alts["kernels"] if _fits(value, k)])

            full, contexts = {}, {}
            for value, label in zip(decision.values, decision.labels):
                full[label] = tuple(_signature(row, k, x, ins, outs, first, later)
                                    for k, x in combos(value))
                contexts[label] = {
                    (str(x if field == "kernels" else k), w, e):
                        _signature(row, k, x, (w,), (), first, later, (e,))
                    for k, x in combos(value) for w in sorted(ins)
                    for e in alts.get("expansion", (1.0,))}
            pairs = list(itertools.combinations(decision.labels, 2))
            always = {(a, b) for a, b in pairs if full[a] == full[b]}
            sometimes = {(a, b, c) for a, b in pairs
                         for c in contexts[a].keys() & contexts[b].keys()
                         if contexts[a][c] == contexts[b][c]}
            yield decision, always, sometimes, first


def blind_decisions(space: SearchSpace, resolution: int) -> List[Blindness]:
    """The kernel-set and split decisions with alternatives that differ at the space's
    target input but give the same network at a ``resolution`` proxy, in every
    architecture or in some (e.g. with one channel split but not another). Every other
    kind of decision changes the network at any resolution."""
    target = {d.name: (always, sometimes)
              for d, always, sometimes, _ in _collisions(space, space.input.resolution)}
    found = []
    for decision, always, sometimes, size in _collisions(space, resolution):
        base_always, base_sometimes = target[decision.name]
        blind = always - base_always
        partly = {(a, b) for a, b, c in sometimes - base_sometimes} - blind - base_always
        if not blind and not partly:
            continue
        groups: List[List[str]] = []  # alternatives merged by the proxy's blind pairs
        for label in decision.labels:
            home = next((g for g in groups if (g[0], label) in blind), None)
            home.append(label) if home is not None else groups.append([label])
        found.append(Blindness(decision.name, tuple(map(tuple, groups)),
                               tuple(sorted(partly)), size))
    return found


def sighted_resolution(space: SearchSpace, start: int = 8,
                       limit: Optional[int] = None) -> Optional[int]:
    """The smallest proxy resolution from ``start`` at which no decision is blind (None if
    there is none up to ``limit``, by default the space's target resolution)."""
    limit = limit or space.input.resolution
    for resolution in range(start, limit + 1):
        if not blind_decisions(space, resolution):
            return resolution
    return None
