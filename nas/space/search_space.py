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
    memo_table,
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
        rows = [("stem", self.stem)]
        for s, stage in enumerate(self.stages):
            rows += [(f"s{s}.b{r}", row) for r, row in enumerate(stage)]
        rows.append(("head", self.head))
        self._places: Tuple[_Place, ...] = tuple(_places(rows))
        self.decisions: Tuple[Decision, ...] = tuple(
            d for place in self._places for d in place.decisions)
        self._decision_values = tuple(d.values for d in self.decisions)
        self._draws = tuple((v, len(v), len(v).bit_length()) for v in self._decision_values)
        self._plan = tuple((p, p.first, p.last, p.fed, p.made) for p in self._places)
        bounds = list(itertools.accumulate([1] + [len(rows) for rows in self.stages]))
        self._stage_bounds = tuple(zip(bounds, bounds[1:]))
        self._cost_range: Optional[CostRange] = None

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
    # An architecture of the space is made from its *genome*: one value per decision, in
    # the order of ``decisions``. Each place (stem, row, head) turns its slice of the
    # genome, and the width it is fed, into a validated Stem, Block or Head once and
    # remembers it, so the same rows are shared by every architecture that has them.

    def arch_from_choices(self, choices: Mapping[str, Any]) -> Architecture:
        """The architecture for one value per decision (values or their labels).

        Raises:
            KeyError / ValueError: a decision is missing, unknown or out of its choices.
        """
        unknown = set(choices) - {d.name for d in self.decisions}
        if unknown:
            raise KeyError(f"unknown decisions for space {self.name}: {sorted(unknown)}")
        genome = []
        for d in self.decisions:
            if d.name not in choices:
                raise KeyError(f"missing decision {d.name}")
            value = choices[d.name]
            if value in d.values:
                genome.append(value)
            elif value in d.labels:
                genome.append(d.values[d.labels.index(value)])
            else:
                raise ValueError(f"{d.name}: {value!r} is not one of {', '.join(d.labels)}")
        return self._build(genome)

    def sample(self, rng: "random.Random | int | None" = None) -> Architecture:
        """A uniformly random architecture (each decision drawn uniformly, in the order of
        ``decisions``: the same generator state gives the same architecture)."""
        if not isinstance(rng, random.Random):
            rng = random.Random(rng)
        # rng.choice(values) for every decision, inlined: rejection sampling on
        # getrandbits(n.bit_length()), as CPython's Random.choice does, so the stream and
        # the architectures are the ones choice (and randrange before it) gave; it is
        # uniform for any generator. ~40% of the time went to choice's two Python frames.
        getrandbits = rng.getrandbits
        genome = []
        for values, n, k in self._draws:
            r = getrandbits(k)
            while r >= n:
                r = getrandbits(k)
            genome.append(values[r])
        return self._build(genome)

    def mutate(self, arch: Architecture, rng: random.Random, p: float) -> Architecture:
        """A copy of ``arch`` with each decision, independently with probability ``p``,
        drawn again uniformly from its values (it may draw the value it had), as in
        OFA's evolutionary search (Cai et al., *Once-for-All*, ICLR 2020,
        ``EvolutionFinder.mutate_sample``).

        A decision ``arch`` does not show (the other decisions of an absent row; the
        split of a single-kernel row) is first drawn uniformly among the values that
        give ``arch``: mutating a uniform sample gives a uniform sample.

        Raises:
            ValueError: ``p`` is not in [0, 1], or ``arch`` is not a point of the space.
        """
        if not 0 <= p <= 1:
            raise ValueError(f"mutation probability must be in [0, 1], got {p!r}")
        random_, choice = rng.random, rng.choice
        genome = []
        for values, seen in zip(self._decision_values, self._genome_options(arch)):
            if random_() < p:
                genome.append(choice(values))
            else:
                genome.append(seen[0] if len(seen) == 1 else choice(seen))
        return self._build(genome)

    def crossover(self, a: Architecture, b: Architecture, rng: random.Random) -> Architecture:
        """A child of ``a`` and ``b`` taking each decision from either parent with
        probability 1/2 (uniform crossover, as OFA's ``EvolutionFinder.crossover_sample``).
        Decisions a parent does not show are drawn as in :meth:`mutate`.

        Raises:
            ValueError: ``a`` or ``b`` is not a point of the space.
        """
        choice = rng.choice
        bits = rng.getrandbits(len(self.decisions))  # one fair coin per decision
        genome = []
        for seen_a, seen_b in zip(self._genome_options(a), self._genome_options(b)):
            seen = seen_b if bits & 1 else seen_a
            bits >>= 1
            genome.append(seen[0] if len(seen) == 1 else choice(seen))
        return self._build(genome)

    def choices_of(self, arch: Architecture) -> Dict[str, Any]:
        """Inverse of :meth:`arch_from_choices` (decision name -> value) for a member.

        A decision ``arch`` does not show takes its first value (a row's repeats, 0 when
        it is absent).
        """
        return {d.name: seen[0]
                for d, seen in zip(self.decisions, self._genome_options(arch))}

    def contains(self, arch: Architecture) -> bool:
        """True when ``arch`` is a point of this space."""
        return self._options(arch) is not None

    def _genome_options(self, arch: Architecture) -> List[Tuple[Any, ...]]:
        options = self._options(arch)
        if options is None:
            raise ValueError(f"architecture {arch.id} is not a point of space {self.name}")
        return options

    def _options(self, arch: Architecture) -> Optional[List[Tuple[Any, ...]]]:
        """Per decision, the values that give ``arch`` (one when the decision shows in
        it); None when ``arch`` is not a point of the space."""
        if arch.input != self.input or len(arch.stages) != len(self.stages) or any(
                len(a) != len(s) for a, s in zip(arch.stages, self.stages)):
            return None
        parts = [arch.stem, *itertools.chain.from_iterable(arch.stages), arch.head]
        options: List[Tuple[Any, ...]] = []
        width = None
        for place, part in zip(self._places, parts):
            # remembered with the part, per place (hashed by identity) and width
            key = (place, width if place.fed else None)
            seen = part._memo.get("_options", _NONE).get(key, False)
            if seen is False:
                seen = memo_table(part, "_options")[key] = place.options(part, width)
            if seen is None:
                return None
            options += seen
            width = part.out
        return options

    def _build(self, genome: Sequence[Any]) -> Architecture:
        parts = []
        width = None
        for place, first, last, fed, made in self._plan:
            key = (tuple(genome[first:last]), width) if fed else tuple(genome[first:last])
            part = made.get(key)
            if part is None:
                part = place.make(key, width)
            parts.append(part)
            width = part.out
        return Architecture(self.input, parts[0],
                            tuple([tuple(parts[i:j]) for i, j in self._stage_bounds]), parts[-1])

    def extreme_arch(self, largest: bool = True) -> Architecture:
        """The architecture with the most (or fewest) FLOPs, found by coordinate search.

        Used by the sandwich rule. Starts from every decision's last and, again, from every
        decision's first value, and changes one decision at a time, or a row's kernel sets
        and split together (their costs interact: 3.5.7 split equally can cost more than 5
        alone, while 3.5.7 split ``exp`` costs less), while FLOPs improve; the better end
        point wins (decisions interact: a patch stem's size scales every later row, so one
        start can stop short). The tests check that it reaches the exact
        :meth:`cost_range` on every shipped and test space.
        """
        from ..cost import count_cost

        sign = 1 if largest else -1
        by_name = {d.name: d for d in self.decisions}
        moves = [(d.name,) for d in self.decisions]
        for place in self._places:
            mixed = tuple(d.name for d in place.decisions
                          if d.field in ("start", "kernels", "split"))
            if len(mixed) > 1:
                moves.append(mixed)

        def climb(choices):
            best = sign * count_cost(self.arch_from_choices(choices)).flops
            improved = True
            while improved:
                improved = False
                for names in moves:
                    for values in itertools.product(*(by_name[n].values for n in names)):
                        trial = dict(choices, **dict(zip(names, values)))
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


_NONE: Dict[Any, Any] = {}  # read-only: what a part has remembered before its first lookup

# A place remembers at most this many of its parts (per width); a stream of distinct
# rows from a huge space then costs validation again, not memory.
_PARTS = 4096


class _Place:
    """One stem, block row or head of a space: its fields in grammar order, the ones that
    are decisions, and the parts (Stem, Block, Head) made from its genome slices."""

    def __init__(self, where: str, row: RowSpace, first: int):
        self.where, self.kind = where, row.kind
        self.fields = tuple((f.name, row.alternatives[f.name]) for f in fields_of(row.kind))
        self.decisions = tuple(Decision(_slot(where, FIELD_BY_NAME[name].key), name, alts)
                               for name, alts in self.fields if len(alts) > 1)
        self.first, self.last = first, first + len(self.decisions)
        # What this place makes depends on the width it is fed only when it keeps that
        # width (no c) or may be absent (r0), which passes the width on.
        alts = row.alternatives
        self.fed = alts.get("out") == (SAME,) or 0 in alts.get("repeats", ())
        # this place's slice of the genome (with the width it is fed, when ``fed``) ->
        # the part it makes
        self.made: Dict[Any, Any] = {}

    def make(self, key, width: Optional[int]):
        """Make and remember the Stem, Block or Head of ``key`` (see ``made``)."""
        part = self._make(iter(key[0] if self.fed else key), width)
        if len(self.made) >= _PARTS:
            self.made.clear()
        self.made[key] = part
        return part

    def _make(self, picks, width):
        values: Dict[str, Any] = {}
        for name, alts in self.fields:
            values[name] = width if alts == (SAME,) else next(picks) if len(alts) > 1 \
                else alts[0]
        if values.get("repeats") == 0:
            values["out"] = width  # an absent row passes its input on
        if self.kind == "stem":
            return Stem(kernel=values["kernels"][0], stride=values["stride"],
                        out=values["out"], act=values["act"], patch=values["patch"])
        if self.kind == "head":
            return Head(out=values["out"], act=values["act"], post=values["post"],
                        post_bn=values["post_bn"])
        return Block.from_values(self.kind, values)

    def options(self, part, width: Optional[int]):
        """Per decision of this place, the values that give ``part`` fed ``width``; None
        when no choice does."""
        if getattr(part, "kind", self.kind) != self.kind or \
                type(part) is not {"stem": Stem, "head": Head}.get(self.kind, Block):
            return None
        values = _part_values(part)
        absent = values.get("repeats") == 0
        found = []
        for name, alts in self.fields:
            value = values[name]
            if absent and name != "repeats":  # fixed by absence; any choice gives it
                seen = alts
            elif name == "split":
                n = max(len(values["kernels"]), len(values.get("start", ())))
                seen = tuple(a for a in alts if (isinstance(a, str) or n <= 1 or len(a) == n)
                             and normalize_split(a, n) == value)
            elif name == "out" and alts == (SAME,):
                seen = (value,) if value == width else ()
            else:
                seen = (value,) if value in alts else ()
            if not seen:
                return None
            if len(alts) > 1:
                found.append(seen)
        return tuple(found)


def _part_values(part) -> Dict[str, Any]:
    """A part's values by grammar field name, as its place's alternatives hold them."""
    if isinstance(part, Stem):
        return {"kernels": (3,) if part.patch else (part.kernel,),
                "stride": 2 if part.patch else part.stride, "patch": part.patch,
                "out": part.out, "act": part.act}
    if isinstance(part, Head):
        return {"out": part.out, "post": part.post, "post_bn": part.post_bn, "act": part.act}
    return part.values()


def _places(rows) -> List[_Place]:
    places, first = [], 0
    for where, row in rows:
        place = _Place(where, row, first)
        places.append(place)
        first = place.last
    return places


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
                     f"[{low:,}, {high:,}] in {50_000 + 1_000 * n:,} random draws (its range "
                     f"is {span.flops_min:,} to {span.flops_max:,}: a band near either end "
                     "is rarely reached); move or widen the band (nas search: --budget) or "
                     "ask for fewer")
