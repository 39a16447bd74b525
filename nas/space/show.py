"""What ``nas space show`` tells about a space: its size, cost range and rows, and what a
proxy resolution cannot see (:mod:`.proxy`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..arch import Architecture
from ..config import Settings, setting
from ..cost import count_cost
from ..errors import UsageError
from ..grammar import FIELD_BY_NAME, SAME, fields_of
from ..units import fmt_count
from .search_space import SearchSpace

__all__ = ["ListConfig", "ShowConfig", "SampleConfig", "SpaceSummary", "summarize_space",
           "row_line", "space_line", "sample_line"]


@dataclass
class ListConfig(Settings):
    """How ``nas space list`` prints the registered spaces."""

    json: bool = setting(False, help="machine-readable output")


@dataclass
class ShowConfig(ListConfig):
    """What ``nas space show`` tells about a space besides its rows."""

    proxy: Optional[int] = setting(None, metavar="N",
                                   help="list the decisions an N x N proxy input cannot see, "
                                        "and the smallest resolution that sees them all")

    def check(self) -> None:
        if self.proxy is not None and not 1 <= self.proxy <= 4096:
            raise UsageError(f"--proxy must be a resolution from 1 to 4096, got {self.proxy}")


@dataclass
class SampleConfig(Settings):
    """How many random architectures ``nas space sample`` draws, and how it prints them."""

    n: int = setting(5, flag="-n", help="how many")
    seed: int = setting(0, help="random seed")
    json: bool = setting(False, help='JSON lines {"arch", "flops", "params"}')

    def check(self) -> None:
        if self.n < 1:
            raise UsageError(f"-n must be at least 1, got {self.n}")


@dataclass
class SpaceSummary:
    """A space, its single architecture when it has one, and (with a proxy resolution)
    the decisions that resolution is blind to (:func:`nas.space.proxy.blind_decisions`)."""

    space: SearchSpace
    arch: Optional[Architecture]
    proxy: Optional[int] = None
    blind: Optional[list] = None
    sighted: Optional[int] = None  # the smallest resolution that sees every decision

    def to_dict(self) -> Dict[str, Any]:
        """What ``--json`` prints."""
        space, cr = self.space, self.space.cost_range()
        info: Dict[str, Any] = {
            "name": space.name, "decisions": len(space.decisions),
            "size_log10": round(space.size_log10, 3),
            "flops_min": cr.flops_min, "flops_max": cr.flops_max,
            "params_min": cr.params_min, "params_max": cr.params_max,
        }
        if self.arch is not None:
            cost = count_cost(self.arch)
            info.update(flops=cost.flops, params=cost.params)
        if self.blind is not None:
            info["proxy"] = {"resolution": self.proxy,
                             "blind": [b.decision for b in self.blind if b.invisible],
                             "partly_blind": [b.decision for b in self.blind if not b.invisible],
                             "sighted_resolution": self.sighted}
        return info

    def lines(self) -> List[str]:
        """What ``nas space show`` prints."""
        space, cr, inp = self.space, self.space.cost_range(), self.space.input
        lines = [f"space    {space.name}  ({space.source})"]
        if space.description:
            lines.append(f"         {' '.join(space.description.split())}")
        lines += [
            f"input    {inp.channels}x{inp.resolution}x{inp.resolution}, {inp.classes} classes",
            f"size     {len(space.decisions)} decisions, 10^{space.size_log10:.1f} "
            "architectures",
            f"FLOPs    {fmt_count(cr.flops_min)} .. {fmt_count(cr.flops_max)}"
            f"  ({cr.flops_min:,} .. {cr.flops_max:,})",
            f"params   {fmt_count(cr.params_min)} .. {fmt_count(cr.params_max)}"]
        if self.arch is not None:
            lines.append(f"arch     {self.arch}")
        lines.append("")
        places = [("stem", space.stem)] + [
            (f"s{s}.b{r}", row) for s, rows in enumerate(space.stages)
            for r, row in enumerate(rows)] + [("head", space.head)]
        lines += [f"  {where:7s} {row.kind:4s} {row_line(row)}" for where, row in places]
        if self.blind is not None:
            blind = [b for b in self.blind if b.invisible]
            lines.append(f"\nat a {self.proxy}x{self.proxy} proxy: {len(blind)} decision(s) "
                         f"cannot change the network, {len(self.blind) - len(blind)} only in "
                         "some architectures")
            lines += [f"  {b}" for b in self.blind]
            seen = self.sighted
            lines.append(f"every decision is seen from {seen}x{seen} (about "
                         f"{(seen / self.proxy) ** 2:.1f}x the compute per image)" if seen
                         else "no resolution up to the target sees all")
        return lines


def row_line(row) -> str:
    """A row's alternatives in the grammar's notation (``k[3|5] e[3|6] c=in``)."""
    parts = []
    patch_stem = row.kind == "stem" and row.alternatives["patch"] != (0,)
    for f in fields_of(row.kind):
        alts = row.alternatives[f.name]
        if f.flag:  # noskip, fbn: shown when set
            parts.append(f.key if alts[0] != f.default_for(row.kind) else "")
            continue
        if row.kind == "stem" and f.name in (("kernels", "stride") if patch_stem
                                             else ("patch",)):
            continue  # a patch stem's kernel and stride are its patch size
        if alts == (SAME,):
            parts.append("c=in")
            continue
        text = "|".join(FIELD_BY_NAME[f.name].fmt(v) for v in alts)
        parts.append(f"{f.key}{text}" if len(alts) == 1 else f"{f.key}[{text}]")
    return " ".join(p for p in parts if p)


def summarize_space(space: SearchSpace, proxy: Optional[int] = None) -> SpaceSummary:
    """``space``'s summary; with ``proxy``, what an N x N proxy input cannot see."""
    arch = space.sample(0) if space.is_single_point else None
    if proxy is None:
        return SpaceSummary(space, arch)
    from .proxy import blind_decisions, sighted_resolution

    return SpaceSummary(space, arch, proxy, blind_decisions(space, proxy),
                        sighted_resolution(space, start=proxy))


def space_line(name: str, space: SearchSpace) -> str:
    """``nas space list``'s line of a space: its name, decisions and description."""
    summary = " ".join(space.description.split())
    summary = summary if len(summary) <= 72 else summary[:69] + "..."
    return f"{name:14s} {len(space.decisions):3d} decisions  {summary}"


def sample_line(arch: Architecture, as_json: bool) -> str:
    """``nas space sample``'s line of an architecture: its cost and string (or JSON)."""
    import json

    cost = count_cost(arch)
    if as_json:
        return json.dumps({"arch": str(arch), "flops": cost.flops, "params": cost.params})
    return f"{fmt_count(cost.flops):>9s} FLOPs {fmt_count(cost.params):>7s} params  {arch}"
