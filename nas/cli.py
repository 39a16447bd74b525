"""The ``nas`` command line: argument parsing and printing only."""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import List, Optional

from . import __version__
from .arch import Architecture, ArchError
from .cost import count_cost
from .export import ExportError, export_arch
from .space.grammar import FIELD_BY_NAME, SAME, fields_of
from .space.loader import SpaceError, available_spaces, load_space

# Errors a user can cause: printed as one line, exit code 2, never a traceback.
USER_ERRORS = (SpaceError, ArchError, ExportError, FileNotFoundError, KeyError, ValueError)


def _fmt_count(n: int) -> str:
    return f"{n / 1e6:,.1f}M" if n < 1e9 else f"{n / 1e9:,.2f}G"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nas", description="Neural architecture search for mixed-kernel (MixConv) networks.")
    p.add_argument("--version", action="version", version=f"nas {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    space = sub.add_parser("space", help="inspect search spaces")
    space_sub = space.add_subparsers(dest="space_command", required=True, metavar="SUBCOMMAND")
    ls = space_sub.add_parser("list", help="list registered spaces")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    show = space_sub.add_parser("show", help="decisions, size and FLOPs range of a space")
    show.add_argument("space", help="registered name (see `nas space list`) or path to a .yaml")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    sample = space_sub.add_parser("sample", help="random architectures with their cost")
    sample.add_argument("space", help="registered name or path to a .yaml")
    sample.add_argument("-n", type=int, default=5, help="how many (default 5)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sample.add_argument("--json", action="store_true",
                        help='JSON lines {"arch", "flops", "params"}')

    export = sub.add_parser("export", help="write a standalone model.py + arch.json")
    export.add_argument("--arch", required=True,
                        help="canonical architecture string, or a path to an arch.json")
    export.add_argument("-o", "--output", required=True, help="output directory")
    export.add_argument("--force", action="store_true", help="overwrite an earlier export")
    return p


def _read_arch(text: str) -> Architecture:
    path = Path(text)
    if text.endswith(".json") and path.is_file():
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "arch" in data:
            return Architecture.parse(data["arch"])
        return Architecture.from_dict(data)
    return Architecture.parse(text)


def _space_list(args) -> None:
    spaces = available_spaces()
    if args.json:
        print(json.dumps({name: str(path) for name, path in spaces.items()}))
        return
    for name, path in spaces.items():
        space = load_space(name)
        summary = " ".join(space.description.split())
        summary = summary if len(summary) <= 72 else summary[:69] + "..."
        print(f"{name:14s} {len(space.decisions):3d} decisions  {summary}")


def _space_show(args) -> None:
    space = load_space(args.space)
    cr = space.cost_range()
    info = {
        "name": space.name,
        "decisions": len(space.decisions),
        "size_log10": round(space.size_log10, 3),
        "flops_min": cr.flops_min, "flops_max": cr.flops_max,
        "params_min": cr.params_min, "params_max": cr.params_max,
    }
    if space.is_single_point:
        arch = space.sample(0)
        cost = count_cost(arch)
        info.update(flops=cost.flops, params=cost.params, arch=str(arch))
    if args.json:
        print(json.dumps(info))
        return
    inp = space.input
    print(f"space    {space.name}  ({space.source})")
    if space.description:
        print(f"         {' '.join(space.description.split())}")
    print(f"input    {inp.channels}x{inp.resolution}x{inp.resolution}, {inp.classes} classes")
    print(f"size     {len(space.decisions)} decisions, 10^{space.size_log10:.1f} architectures")
    print(f"FLOPs    {_fmt_count(cr.flops_min)} .. {_fmt_count(cr.flops_max)}"
          f"  ({cr.flops_min:,} .. {cr.flops_max:,})")
    print(f"params   {_fmt_count(cr.params_min)} .. {_fmt_count(cr.params_max)}")
    if space.is_single_point:
        print(f"arch     {info['arch']}")
    print()
    places = [("stem", space.stem)] + [
        (f"s{s}.b{r}", row) for s, rows in enumerate(space.stages) for r, row in enumerate(rows)
    ] + [("head", space.head)]
    for where, row in places:
        parts = []
        for f in fields_of(row.kind):
            alts = row.alternatives[f.name]
            if f.name == "skip":
                parts.append("" if alts[0] else "noskip")
                continue
            if alts == (SAME,):
                parts.append("c=in")
                continue
            text = "|".join(FIELD_BY_NAME[f.name].fmt(v) for v in alts)
            parts.append(f"{f.key}{text}" if len(alts) == 1 else f"{f.key}[{text}]")
        print(f"  {where:7s} {row.kind:4s} {' '.join(p for p in parts if p)}")


def _space_sample(args) -> None:
    if args.n < 1:
        raise ValueError(f"-n must be at least 1, got {args.n}")
    space = load_space(args.space)
    rng = random.Random(args.seed)
    for _ in range(args.n):
        arch = space.sample(rng)
        cost = count_cost(arch)
        if args.json:
            print(json.dumps({"arch": str(arch), "flops": cost.flops, "params": cost.params}))
        else:
            print(f"{_fmt_count(cost.flops):>9s} FLOPs {_fmt_count(cost.params):>7s} params  "
                  f"{arch}")


def _export(args) -> None:
    arch = _read_arch(args.arch)
    paths = export_arch(arch, args.output, force=args.force)
    cost = count_cost(arch)
    print(f"exported {arch.id}: {_fmt_count(cost.flops)} FLOPs, {_fmt_count(cost.params)} params")
    for path in paths:
        print(f"  {path}")


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {
        ("space", "list"): _space_list,
        ("space", "show"): _space_show,
        ("space", "sample"): _space_sample,
        ("export", None): _export,
    }
    handler = handlers[(args.command, getattr(args, "space_command", None))]
    try:
        handler(args)
    except USER_ERRORS as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"nas: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `nas space sample ... | head`
        sys.stderr.close()
        return 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
