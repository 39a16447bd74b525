"""SearchSpace: the decisions of one space file, sampling, membership and cost range."""

from __future__ import annotations

import functools
import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..arch import (
    Architecture,
    Block,
    Head,
    InputSpec,
    Stem,
    normalize_split,
    out_size_of,
    size_problem,
)
from ..channels import conv_out_size
from ..errors import UsageError
from ..grammar import FIELD_BY_NAME, SAME, fields_of

__all__ = ["Decision", "RowSpace", "SearchSpace", "CostRange", "sample_band"]


@dataclass(frozen=True)
class RowSpace:
    """A stem, block row or head with its alternatives: ``alternatives[field] = (v, ...)``."""

    kind: str
    alternatives: Mapping[str, Tuple[Any, ...]]
    # (offset, token) of each field in the source string, for error messages only.
    where: Mapping[str, Tuple[int, str]] = field(default_factory=dict, compare=False,
                                                 repr=False)


@dataclass(frozen=True)
class Decision:
    """One choice of the space, e.g. ``s2.b1.k`` (stage 2, row 1, kernel set).

    ``labels`` are the values as grammar tokens (``"3.5.7"``, ``"equal"``), which is
    what a controller such as Optuna stores; ``values`` are the Python values.
    """

    name: str
    field: str
    values: Tuple[Any, ...]

    @functools.cached_property  # a search formats them for every trial
    def labels(self) -> Tuple[str, ...]:
        fmt = FIELD_BY_NAME[self.field].fmt
        return tuple(fmt(v) for v in self.values)


@dataclass(frozen=True)
class CostRange:
    flops_min: int
    flops_max: int
    params_min: int
    params_max: int


def _slot(where: str, key: str) -> str:
    return f"{where}.{key}"


class SearchSpace:
    """A search space: target input, stem, stages of block rows, head, each with alternatives.

    Build one with :func:`nas.load_space`; it is immutable.
    """

    def __init__(self, name: str, description: str, input: InputSpec, stem: RowSpace,
                 stages: Sequence[Sequence[RowSpace]], head: RowSpace, source: str = "",
                 text: str = ""):
        self.name = name
        self.text = text  # the YAML it was parsed from (stored with checkpoints)
        self.description = description
        self.input = input
        self.stem = stem
        self.stages = tuple(tuple(rows) for rows in stages)
        self.head = head
        self.source = source
        self._slots = self._make_slots()
        self.decisions: Tuple[Decision, ...] = tuple(
            Decision(_slot(where, FIELD_BY_NAME[f].key), f, alts)
            for where, row, f, alts in self._slots
            if len(alts) > 1
        )
        self._cost_range: Optional[CostRange] = None

    # ------------------------------------------------------------------ structure
    def _make_slots(self):
        """Every (place, row, field, alternatives) in a fixed order."""
        slots = []
        places = [("stem", self.stem)]
        for s, rows in enumerate(self.stages):
            places += [(f"s{s}.b{r}", row) for r, row in enumerate(rows)]
        places.append(("head", self.head))
        for where, row in places:
            for f in fields_of(row.kind):
                slots.append((where, row, f.name, row.alternatives[f.name]))
        return slots

    @property
    def size(self) -> int:
        """Number of distinct decision combinations."""
        return math.prod(len(d.values) for d in self.decisions)

    @property
    def size_log10(self) -> float:
        return sum(math.log10(len(d.values)) for d in self.decisions)

    @property
    def is_single_point(self) -> bool:
        return not self.decisions

    # ------------------------------------------------------------------ architectures
    def arch_from_choices(self, choices: Mapping[str, Any]) -> Architecture:
        """The architecture for one value per decision (values or their labels).

        Raises:
            KeyError / ValueError: a decision is missing, unknown or out of its choices.
        """
        by_name = {d.name: d for d in self.decisions}
        unknown = set(choices) - set(by_name)
        if unknown:
            raise KeyError(f"unknown decisions for space {self.name}: {sorted(unknown)}")
        picked: Dict[Tuple[str, str], Any] = {}
        for d in self.decisions:
            if d.name not in choices:
                raise KeyError(f"missing decision {d.name}")
            value = choices[d.name]
            if value in d.values:
                picked[(d.name, d.field)] = value
            elif value in d.labels:
                picked[(d.name, d.field)] = d.values[d.labels.index(value)]
            else:
                raise ValueError(f"{d.name}: {value!r} is not one of {', '.join(d.labels)}")
        return self._assemble(lambda where, f, alts: picked.get(
            (_slot(where, FIELD_BY_NAME[f].key), f), alts[0]))

    def sample(self, rng: "random.Random | int | None" = None) -> Architecture:
        """A uniformly random architecture (each decision drawn uniformly)."""
        if not isinstance(rng, random.Random):
            rng = random.Random(rng)
        return self._assemble(lambda where, f, alts: alts[rng.randrange(len(alts))]
                              if len(alts) > 1 else alts[0])

    def choices_of(self, arch: Architecture) -> Dict[str, Any]:
        """Inverse of :meth:`arch_from_choices` (decision name -> value) for a member."""
        if not self.contains(arch):
            raise ValueError(f"architecture {arch.id} is not a point of space {self.name}")
        values = self._values_of(arch)
        choices = {}
        for d in self.decisions:
            value = values[d.name]
            where = d.name[:-len(".x")] if d.field == "split" else d.name.rsplit(".", 1)[0]
            if values.get(f"{where}.r") == 0:  # an absent row: its other choices are moot
                value = d.values[0] if d.field != "repeats" else 0
            elif d.field == "split" and value not in d.values:  # a normalised spelling
                start = values.get(f"{where}.a", ())
                n = max(len(values[f"{where}.k"]), len(start) if isinstance(start, tuple) else 0)
                value = next(v for v in d.values if normalize_split(v, n) == value)
            choices[d.name] = value
        return choices

    def contains(self, arch: Architecture) -> bool:
        """True when ``arch`` is a point of this space."""
        if arch.input != self.input:
            return False
        if len(arch.stages) != len(self.stages) or any(
            len(a) != len(s) for a, s in zip(arch.stages, self.stages)
        ):
            return False
        if any(b.kind != row.kind for a, s in zip(arch.stages, self.stages)
               for b, row in zip(a, s)):
            return False
        values = self._values_of(arch)
        width = arch.stem.out
        absent = False
        for where, _row, f, alts in self._slots:
            value = values[_slot(where, FIELD_BY_NAME[f].key)]
            if f == "repeats":
                absent = value == 0
            elif absent:  # an absent row's other fields are fixed, and it keeps the width
                continue
            if f == "split":
                n = max(len(values[_slot(where, "k")]),
                        len(values[_slot(where, "a")]) if _row.kind == "uir" else 0)
                alts = {normalize_split(a, n) for a in alts
                        if isinstance(a, str) or n <= 1 or len(a) == n}
            if f == "out" and alts == (SAME,):
                if value != width:
                    return False
            elif value not in alts:
                return False
            if f == "out" and where != "head":
                width = value
        return True

    def _values_of(self, arch: Architecture) -> Dict[str, Any]:
        stem, head = arch.stem, arch.head
        out = {"stem.k": (3,) if stem.patch else (stem.kernel,),
               "stem.s": 2 if stem.patch else stem.stride, "stem.p": stem.patch,
               "stem.c": stem.out, "stem.act": stem.act,
               "head.c": head.out, "head.f": head.post, "head.fbn": head.post_bn,
               "head.act": head.act}
        for s, rows in enumerate(arch.stages):
            for r, block in enumerate(rows):
                for name, value in block.values().items():
                    out[_slot(f"s{s}.b{r}", FIELD_BY_NAME[name].key)] = value
        return out

    def _assemble(self, pick) -> Architecture:
        values: Dict[str, Dict[str, Any]] = {}
        width = None
        absent = False
        for where, _row, f, alts in self._slots:
            value = width if alts == (SAME,) else pick(where, f, alts)
            if f == "repeats":
                absent = value == 0
            values.setdefault(where, {})[f] = value
            if f == "out":
                if absent and where != "head":
                    values[where][f] = width  # an absent row passes its input on
                else:
                    width = value
                absent = False
        stem = values["stem"]
        head = values["head"]
        stages = tuple(
            tuple(Block.from_values(row.kind, values[f"s{s}.b{r}"]) for r, row in enumerate(rows))
            for s, rows in enumerate(self.stages)
        )
        return Architecture(
            self.input,
            Stem(kernel=stem["kernels"][0], stride=stem["stride"], out=stem["out"],
                 act=stem["act"], patch=stem["patch"]),
            stages,
            Head(out=head["out"], act=head["act"], post=head["post"], post_bn=head["post_bn"]),
        )

    def extreme_arch(self, largest: bool = True) -> Architecture:
        """The architecture with the most (or fewest) FLOPs, found by coordinate search.

        Used by the sandwich rule. Starts from every decision's last and, again, from every
        decision's first value, and changes one decision at a time while FLOPs improve; the
        better end point wins (decisions interact: a patch stem's size scales every later
        row, so one start can stop short). The tests check that it reaches the exact
        :meth:`cost_range` on every shipped and test space.
        """
        from ..cost import count_cost

        sign = 1 if largest else -1

        def climb(choices):
            best = sign * count_cost(self.arch_from_choices(choices)).flops
            improved = True
            while improved:
                improved = False
                for d in self.decisions:
                    for value in d.values:
                        trial = dict(choices, **{d.name: value})
                        flops = sign * count_cost(self.arch_from_choices(trial)).flops
                        if flops > best:
                            best, choices, improved = flops, trial, True
            return best, choices

        ends = [climb({d.name: d.values[i] for d in self.decisions}) for i in (-1, 0)]
        if not largest:
            ends.reverse()  # the fewest FLOPs: start from the first values first
        best = max(ends, key=lambda end: end[0])  # ties: the first start's
        return self.arch_from_choices(best[1])

    def size_problem(self, resolution: int) -> Optional[Tuple[str, str]]:
        """``(place, why)`` of the first stem or row (``"stem"``, ``"s3.b0"``) that cannot
        run on a ``resolution`` x ``resolution`` input; None when every architecture can.

        Strides are fixed and stride-2 rows cannot be optional, so every architecture of
        the space has the same map sizes but for the patch size; the largest patch gives
        the smallest maps.
        """
        stem = self.stem.alternatives
        patch = max(stem["patch"])
        kernel, stride = (patch, patch) if patch else (stem["kernels"][0][0], stem["stride"][0])
        size = conv_out_size(resolution, kernel, stride, 0 if patch else None)
        if size < 1:
            return "stem", (f"the patch stem's {patch}x{patch} patches do not fit a "
                            f"{resolution}x{resolution} input")
        for s, rows in enumerate(self.stages):
            for r, row in enumerate(rows):
                why = size_problem(row.kind, size)
                if why:
                    return f"s{s}.b{r}", why
                size = out_size_of(row.kind, size, row.alternatives.get("stride", (1,))[0])
        return None

    # ------------------------------------------------------------------ cost range
    def cost_range(self) -> CostRange:
        """Exact minimum and maximum FLOPs and params over the whole space.

        Widths couple consecutive rows, so this is a dynamic programme over each row's
        output width. Within a row, for a fixed input width, output width, repeats and
        expansion, the cost is a sum of terms that each depend on one group of
        decisions (kernels with split; expand groups; project groups; SE ratio; the
        activation costs nothing), so ``cost = cost(ref) + sum(delta of each group)``
        and each group is optimised on its own instead of enumerating their product.
        ``tests/space_tests`` checks this against brute force.
        """
        if self._cost_range is None:
            self._cost_range = self._compute_cost_range()
        return self._cost_range

    def _compute_cost_range(self) -> CostRange:
        from ..cost import head_cost, stem_cost

        # Four independent programmes share one enumeration: min/max FLOPs, min/max params.
        pick = (min, max, min, max)
        state: Dict[Tuple[int, int], List[int]] = {}  # (width, size) -> four totals
        stem = self.stem.alternatives
        for c, patch in itertools.product(stem["out"], stem["patch"]):
            kernel, stride = (patch, patch) if patch else (stem["kernels"][0][0],
                                                           stem["stride"][0])
            f, p, size = stem_cost(self.input, kernel, stride, c, patch)
            _keep(state, (c, size), [f, f, p, p], pick)
        for rows in self.stages:
            for row in rows:
                new_state: Dict[Tuple[int, int], List[int]] = {}
                for (width, size), totals in state.items():
                    for key, row_best in _row_extremes(row, width, size).items():
                        _keep(new_state, key, [t + b for t, b in zip(totals, row_best)], pick)
                state = new_state
        finals = [[] for _ in pick]
        head = self.head.alternatives
        for (width, size), totals in state.items():
            for c, post in itertools.product(head["out"], head["post"]):
                f, p = head_cost(width, size, c, self.input.classes, post, head["post_bn"][0])
                for i, extra in enumerate((f, f, p, p)):
                    finals[i].append(totals[i] + extra)
        return CostRange(*(best(v) for best, v in zip(pick, finals)))


def _keep(state, key, cand, pick) -> None:
    if key in state:
        cand = [best(a, b) for best, a, b in zip(pick, state[key], cand)]
    state[key] = cand


# Decisions whose cost terms do not interact, for a fixed width, repeats and expansion.
_SEPARABLE_GROUPS = (("start", "kernels", "split"), ("exp_groups",), ("proj_groups",), ("se",),
                     ("hse",), ("div",))


def _row_extremes(row: RowSpace, width: int, size: int):
    """``{(out, out_size): [flops_min, flops_max, params_min, params_max]}`` of one row."""
    from ..cost import block_cost

    alts = row.alternatives
    outer = [f for f in ("repeats", "expansion") if f in alts]
    groups = [tuple(f for f in g if f in alts) for g in _SEPARABLE_GROUPS]
    groups = [g for g in groups if g and any(len(alts[f]) > 1 for f in g)]
    result: Dict[Tuple[int, int], List[int]] = {}
    pick = (min, max, min, max)
    for out in ((width,) if alts["out"] == (SAME,) else alts["out"]):
        for combo in itertools.product(*(alts[f] for f in outer)):
            ref = {f: v[0] for f, v in alts.items()}
            ref.update(zip(outer, combo), out=out)
            if ref["repeats"] == 0:  # absent: costs nothing, passes its input on
                _keep(result, (width, size), [0, 0, 0, 0], pick)
                continue
            ref_f, ref_p, out_size = block_cost(Block.from_values(row.kind, ref), width, size)
            lo_f = hi_f = ref_f
            lo_p = hi_p = ref_p
            for group in groups:
                deltas = []
                for values in itertools.product(*(alts[f] for f in group)):
                    block = Block.from_values(row.kind, dict(ref, **dict(zip(group, values))))
                    f, p, _ = block_cost(block, width, size)
                    deltas.append((f - ref_f, p - ref_p))
                lo_f += min(d[0] for d in deltas)
                hi_f += max(d[0] for d in deltas)
                lo_p += min(d[1] for d in deltas)
                hi_p += max(d[1] for d in deltas)
            _keep(result, (out, out_size), [lo_f, hi_f, lo_p, hi_p], pick)
    return result


def sample_band(space: SearchSpace, n: int, low: int, high: int,
                seed: int) -> List[Architecture]:
    """``n`` distinct architectures with FLOPs in ``[low, high]``, by rejection sampling.

    The draw is a stream: asking for more architectures with the same seed returns the
    same ones first, then more.

    Raises:
        UsageError: no architecture of the space lies in the band, or too few were found.
    """
    from ..cost import count_cost

    span = space.cost_range()
    if high < span.flops_min or low > span.flops_max:
        raise UsageError(f"no architecture of {space.name} has FLOPs in [{low:,}, {high:,}]: "
                         f"its range is {span.flops_min:,} to {span.flops_max:,}")
    rng, found, seen = random.Random(seed), [], set()
    for _ in range(50_000 + 1_000 * n):  # a band only rare architectures reach: say so
        arch = space.sample(rng)
        if low <= count_cost(arch).flops <= high and arch.id not in seen:
            seen.add(arch.id)
            found.append(arch)
            if len(found) == n:
                return found
    raise UsageError(f"found only {len(found)} architectures of {space.name} with FLOPs in "
                     f"[{low:,}, {high:,}]; widen the band or ask for fewer")
