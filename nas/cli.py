"""The ``nas`` command line: parsing and printing only.

Each command's flags come from its settings class (:mod:`nas.config`), and only the
command being run has its parser built and its modules imported: ``nas --help`` and
``nas space ...`` import neither torch nor Optuna.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shlex
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from . import __version__
from .errors import ArchError, NasError, RunError, UsageError
from .units import fmt_count

__all__ = ["main"]


def _quote(path) -> str:
    """A path as it must be typed into a shell (and not be taken for an option)."""
    text = str(path)
    return shlex.quote("./" + text if text.startswith("-") else text)


# ---------------------------------------------------------------- parsers, per command
def _space_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="space_command", required=True, metavar="SUBCOMMAND")
    ls = sub.add_parser("list", help="list registered spaces")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    show = sub.add_parser("show", help="decisions, size and FLOPs range of a space")
    show.add_argument("space", help="registered name (see `nas space list`) or path to a .yaml")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.add_argument("--proxy", type=int, metavar="N",
                      help="list the decisions an N x N proxy input cannot see, and the "
                           "smallest resolution that sees them all")
    sample = sub.add_parser("sample", help="random architectures with their cost")
    sample.add_argument("space", help="registered name or path to a .yaml")
    sample.add_argument("-n", type=int, default=5, help="how many (default 5)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sample.add_argument("--json", action="store_true",
                        help='JSON lines {"arch", "flops", "params"}')


def _supernet_args(p: argparse.ArgumentParser) -> None:
    from .train import TrainConfig

    sub = p.add_subparsers(dest="supernet_command", required=True, metavar="SUBCOMMAND")
    train = sub.add_parser(
        "train", help="train a supernet into a run directory (resumable)",
        description="Train a weight-sharing supernet. Settings not given take the defaults "
                    "shown; with --resume the run's saved settings are used.")
    train.add_argument("-o", "--output", required=True, help="run directory")
    train.add_argument("--resume", action="store_true",
                       help="continue the run's checkpoint exactly where it stopped")
    TrainConfig.add_arguments(train)
    train.add_argument("--no-eval", action="store_true",
                       help="skip the final validation of the largest and smallest subnets")
    train.add_argument("--recalibration-batches", type=int, default=20,
                       help="BN recalibration batches for the final evaluation (default 20)")


def _data_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    shards = sub.add_parser(
        "shards", help="write an image folder as tar shards (WebDataset layout, timm's "
                       "_info.json)",
        description="Copy the images of an image folder (or a .tar.gz of one) into tar shards "
                    "in the WebDataset layout, samples in a seeded random order, with timm's "
                    "_info.json: --data DIR reads them, each torchrun rank its own shards.")
    shards.add_argument("source", help="an image folder with train/ and test/, or a .tar.gz")
    shards.add_argument("-o", "--output", required=True, help="the shard folder")
    shards.add_argument("--shard-size", type=int, default=1000,
                        help="images per shard (default 1000)")


def _search_args(p: argparse.ArgumentParser) -> None:
    from .search import SearchConfig

    p.add_argument("-o", "--output",
                   help="run directory (default runs/SPACE-BUDGET-OBJECTIVE[-SAMPLER])")
    SearchConfig.add_arguments(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _latency_args(p: argparse.ArgumentParser) -> None:
    from .latency import TableConfig
    from .latency.device import PackConfig

    sub = p.add_subparsers(dest="latency_command", required=True, metavar="SUBCOMMAND")
    build = sub.add_parser("build", help="time every block of a space once, in torch eager "
                                         "or ONNX Runtime (float or int8)")
    build.add_argument("-o", "--output", required=True,
                       help="the table (.json); a killed build continues when rerun")
    TableConfig.add_arguments(build)
    pack = sub.add_parser(
        "pack", help="write a space's blocks as files for a runtime, with a runner to time "
                     "them on your device",
        description="Write every block of a space (and a few whole networks) as files for "
                    "ONNX Runtime or ncnn, with run_latency.py, a standalone script (standard "
                    "library and the runtime only) that times them on the device it is "
                    "copied to; nas latency read turns its timings.json into a table.")
    pack.add_argument("-o", "--output", required=True, help="the pack's folder")
    pack.add_argument("--force", action="store_true", help="replace an earlier pack")
    PackConfig.add_arguments(pack)
    read = sub.add_parser("read", help="a pack's timings (run_latency.py on the device) as a "
                                       "table for --latency lut:FILE")
    read.add_argument("pack", help="the pack's folder (nas latency pack)")
    read.add_argument("--timings", help="the runner's timings.json (default PACK/timings.json)")
    read.add_argument("-o", "--output", required=True, help="the table (.json)")


def _train_args(p: argparse.ArgumentParser) -> None:
    from .train import RetrainConfig

    source = p.add_mutually_exclusive_group()
    source.add_argument("--arch", help="canonical architecture string or an arch.json path")
    source.add_argument("--from", dest="from_dir", help="an export directory (nas export)")
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in -o with its own settings")
    RetrainConfig.add_arguments(p)


def _diagnose_args(p: argparse.ArgumentParser) -> None:
    from .diagnose import DiagnoseConfig

    p.add_argument("run", help="run directory written by nas search")
    p.add_argument("-o", "--output", help="output directory (default RUN/diagnose)")
    DiagnoseConfig.add_arguments(p)


def _rank_args(p: argparse.ArgumentParser) -> None:
    from .estimators import RankConfig

    p.add_argument("reference", help="a reference directory (nas reference)")
    RankConfig.add_arguments(p)
    p.add_argument("-o", "--output", help="write the per-architecture scores (.csv)")


def _predictor_args(p: argparse.ArgumentParser) -> None:
    from .estimators import PredictorConfig

    sub = p.add_subparsers(dest="predictor_command", required=True, metavar="SUBCOMMAND")
    fit = sub.add_parser("fit", help="fit an accuracy predictor on a reference",
                         description="Fit a predictor (nas search --estimator predictor:FILE) "
                                     "on a reference's seed-averaged accuracies.")
    fit.add_argument("reference", nargs="+",
                     help="reference directories (nas reference) of one space, data and "
                          "recipe; several are pooled")
    fit.add_argument("-o", "--output", required=True, help="the predictor file (.json)")
    PredictorConfig.add_arguments(fit)


def _rerank_args(p: argparse.ArgumentParser) -> None:
    from .search import RerankConfig

    p.add_argument("run", help="run directory written by nas search")
    RerankConfig.add_arguments(p)


def _reference_args(p: argparse.ArgumentParser) -> None:
    from .reference import ReferenceConfig

    p.add_argument("-o", "--output", required=True, help="reference directory")
    ReferenceConfig.add_arguments(p)


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run directory written by nas search")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--json", action="store_true",
                       help="print the front as JSON (nothing else, no files written)")
    which.add_argument("--trial", type=int, metavar="N",
                       help="draw trial N's architecture alone: RUN/trial-N.svg (and .png)")
    p.add_argument("--baseline", metavar="RUN",
                   help="a random-search run to compare the history with (default: RUN-random "
                        "when it exists)")


def _export_args(p: argparse.ArgumentParser) -> None:
    from .export import ExportConfig

    p.add_argument("run", nargs="?", help="run directory written by nas search")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", type=int, help="trial number (see nas report RUN)")
    which.add_argument("--best", action="store_true", help="the best trial by --objective")
    which.add_argument("--arch", help="canonical architecture string, or a path to an "
                                      "arch.json (no weights)")
    p.add_argument("-o", "--output", required=True, help="output directory")
    ExportConfig.add_arguments(p)


def _print_deploy(result_paths, converted, yolo: bool, fresh: bool) -> None:
    for c in converted.values():
        check = (f"max |Δ| vs torch {c.delta:.2e} in {c.runtime}" if c.delta is not None
                 else "converted only (Core ML predicts on macOS only)")
        print(f"{c.format}: converted in {c.seconds:.1f} s, {check}"
              + (" (fresh weights, seed 0: for timing and checking, not predictions)"
                 if fresh else ""))
    if yolo:
        plugin = next(p for p in result_paths if p.name.startswith("nas_yolo_"))
        print(f"YOLO: train it with: cd {_quote(plugin.parent)} && python {plugin.name} "
              "train data=coco8.yaml epochs=100 imgsz=640")


# name: (help, description, adds the command's arguments)
_COMMANDS: Dict[str, Tuple[str, str, Callable[[argparse.ArgumentParser], None]]] = {
    "space": ("inspect search spaces", "", _space_args),
    "supernet": ("train the weight-sharing supernet", "", _supernet_args),
    "data": ("data sets: tar shards for data that outgrows one disk", "", _data_args),
    "search": ("the main job: search a space under a FLOPs budget",
               "Train a supernet (or reuse one), run an Optuna study over the space under a "
               "hard FLOPs budget, write the run directory (config.json, trials.csv and the "
               "study: study.db unless --storage names another) and print the Pareto front. "
               "Rerunning the same command continues the study.", _search_args),
    "latency": ("latency lookup tables: timed here (build) or on your device (pack, read)", "",
                _latency_args),
    "train": ("train one architecture standalone; test accuracy in OUT/metrics.json",
              "Train the static network of one architecture (an export, or --arch) on the "
              "training split less the validation carve, then evaluate it on the validation "
              "and test splits. Checkpoints are atomic; --resume continues.", _train_args),
    "diagnose": ("rank correlation of supernet vs standalone accuracy (Kendall tau)",
                 "Sample K architectures in a FLOPs band of a search run's space, score each "
                 "with the supernet as the search does and train each standalone with a short "
                 "fixed recipe (validation accuracy), and report Kendall tau and Spearman rho "
                 "with bootstrap 95% CIs, plus a scatter plot. Rerunning continues a killed "
                 "diagnosis.", _diagnose_args),
    "reference": ("a de-noised ranking reference: a FLOPs band, each arch trained with "
                  "several seeds",
                  "Sample architectures of a space in a FLOPs band (once, with a fixed seed), "
                  "train each standalone once per seed on the same validation carve, and "
                  "record every validation accuracy; report the reference's reliability. "
                  "Rerunning continues.", _reference_args),
    "rank": ("how well an estimator ranks a reference's architectures (Kendall tau, top-5)",
             "Score the architectures of a reference (nas reference) with an estimator and "
             "compare with their seed-mean standalone accuracies: Kendall tau and Spearman "
             "rho with 95% bootstrap CIs, top-5 precision, regret, cost per architecture.",
             _rank_args),
    "predictor": ("accuracy predictors learned from a reference", "", _predictor_args),
    "rerank": ("train a search's best few architectures standalone and record the winner",
               "The final re-ranking of nas search --rerank K, for an existing run: train the "
               "K best feasible architectures (the Pareto front first, by reward) standalone "
               "with a short fixed recipe and several seeds; the winner (best reward with its "
               "standalone accuracy) is what nas export RUN --best then exports.", _rerank_args),
    "report": ("the Pareto front of a search: table, RUN/report.html, RUN/pareto.png",
               "Print the Pareto front of a search run (finished trials; works while the "
               "search still runs) and write RUN/report.html (what to pick with its export "
               "commands, the front, a picture of each front member, the search's history, "
               "decision importance, every trial) and RUN/pareto.png. --trial N draws one "
               "architecture alone.",
               _report_args),
    "export": ("write a standalone model.py (+ weights.pt from a search run)",
               "Export a trial of a search run with the weights it inherits from the "
               "supernet (model.py, weights.pt, arch.json, model.ts, model.onnx when onnx is "
               "installed), or any architecture without weights (--arch).", _export_args),
}


def _parser(command: Optional[str]) -> argparse.ArgumentParser:
    """The parser, with the arguments of ``command`` only (the others' modules unimported)."""
    p = argparse.ArgumentParser(
        prog="nas", description="Neural architecture search for mixed-kernel (MixConv) networks.")
    p.add_argument("--version", action="version", version=f"nas {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, description, add) in _COMMANDS.items():
        sp = sub.add_parser(name, help=help_text,
                            description=(description or help_text).replace("%", "%%"))
        if name == command:
            add(sp)
    return p


# ---------------------------------------------------------------- handlers
def _read_arch(text: str):
    from .arch import Architecture

    path = Path(text)
    if text.endswith(".json") and path.is_file():
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ArchError(f"{path}: not valid JSON ({e})") from None
        if isinstance(data, dict) and "arch" in data:
            return Architecture.parse(data["arch"])
        return Architecture.from_dict(data)
    return Architecture.parse(text)


def _space_list(args) -> None:
    from .space import available_spaces, load_space

    spaces = available_spaces()
    if args.json:
        print(json.dumps({name: str(path) for name, path in spaces.items()}))
        return
    for name in spaces:
        space = load_space(name)
        summary = " ".join(space.description.split())
        summary = summary if len(summary) <= 72 else summary[:69] + "..."
        print(f"{name:14s} {len(space.decisions):3d} decisions  {summary}")


def _space_show(args) -> None:
    from .cost import count_cost
    from .grammar import FIELD_BY_NAME, SAME, fields_of
    from .space import load_space

    space = load_space(args.space)
    cr = space.cost_range()
    info = {
        "name": space.name,
        "decisions": len(space.decisions),
        "size_log10": round(space.size_log10, 3),
        "flops_min": cr.flops_min, "flops_max": cr.flops_max,
        "params_min": cr.params_min, "params_max": cr.params_max,
    }
    arch = space.sample(0) if space.is_single_point else None
    if arch is not None:
        cost = count_cost(arch)
        info.update(flops=cost.flops, params=cost.params)
    blind = None
    if args.proxy is not None:
        from .space.proxy import blind_decisions, sighted_resolution

        if not 1 <= args.proxy <= 4096:
            raise UsageError(f"--proxy must be a resolution from 1 to 4096, got {args.proxy}")
        blind = blind_decisions(space, args.proxy)
        info["proxy"] = {"resolution": args.proxy,
                         "blind": [b.decision for b in blind if b.invisible],
                         "partly_blind": [b.decision for b in blind if not b.invisible],
                         "sighted_resolution": sighted_resolution(space, start=args.proxy)}
    if args.json:
        print(json.dumps(info))
        return
    inp = space.input
    print(f"space    {space.name}  ({space.source})")
    if space.description:
        print(f"         {' '.join(space.description.split())}")
    print(f"input    {inp.channels}x{inp.resolution}x{inp.resolution}, {inp.classes} classes")
    print(f"size     {len(space.decisions)} decisions, 10^{space.size_log10:.1f} architectures")
    print(f"FLOPs    {fmt_count(cr.flops_min)} .. {fmt_count(cr.flops_max)}"
          f"  ({cr.flops_min:,} .. {cr.flops_max:,})")
    print(f"params   {fmt_count(cr.params_min)} .. {fmt_count(cr.params_max)}")
    if arch is not None:
        print(f"arch     {arch}")
    print()
    places = [("stem", space.stem)] + [
        (f"s{s}.b{r}", row) for s, rows in enumerate(space.stages) for r, row in enumerate(rows)
    ] + [("head", space.head)]
    for where, row in places:
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
        print(f"  {where:7s} {row.kind:4s} {' '.join(p for p in parts if p)}")
    if blind is not None:
        p = info["proxy"]
        print(f"\nat a {args.proxy}x{args.proxy} proxy: {len(p['blind'])} decision(s) cannot "
              f"change the network, {len(p['partly_blind'])} only in some architectures")
        for b in blind:
            print(f"  {b}")
        seen = p["sighted_resolution"]
        print(f"every decision is seen from {seen}x{seen} (about {(seen / args.proxy) ** 2:.1f}x "
              "the compute per image)" if seen else "no resolution up to the target sees all")


def _space_sample(args) -> None:
    from .cost import count_cost
    from .space import load_space

    if args.n < 1:
        raise UsageError(f"-n must be at least 1, got {args.n}")
    space = load_space(args.space)
    rng = random.Random(args.seed)
    for _ in range(args.n):
        arch = space.sample(rng)
        cost = count_cost(arch)
        if args.json:
            print(json.dumps({"arch": str(arch), "flops": cost.flops, "params": cost.params}))
        else:
            print(f"{fmt_count(cost.flops):>9s} FLOPs {fmt_count(cost.params):>7s} params  "
                  f"{arch}")


def _continue_or_new(cls, given: dict, saved_path: Path, resume: bool, what: str):
    """The settings of a new run, or None to continue one (given flags must agree)."""
    from .files import read_json

    if not resume:
        return cls(**given).validate()
    if saved_path.exists():
        old = cls.from_dict(read_json(saved_path, what), str(saved_path),
                            base=saved_path.parent)
        typed = cls(**{**old.to_dict(), **given}).resolved()  # paths as the run keeps them
        clash = {k: v for k, v in given.items() if getattr(old, k) != getattr(typed, k)}
        if clash:
            raise RunError(f"{saved_path.parent} was trained with "
                           + ", ".join(f"{k}={getattr(old, k)!r}" for k in clash)
                           + "; --resume continues it with its own settings")
    return None


def _supernet_train(args) -> None:
    from .runs import SupernetDir
    from .train import TrainConfig, quick_report, train_supernet

    run = SupernetDir(args.output)
    config = _continue_or_new(TrainConfig, TrainConfig.given(args), run.config, args.resume,
                              "training configuration")
    result = train_supernet(config, run.path, resume=args.resume)
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 reports
        return
    print(f"supernet: {result.step} steps, checkpoint {run.checkpoint}")
    if not args.no_eval:
        acc = quick_report(result, args.recalibration_batches)
        print(f"validation accuracy (BN recalibrated, {args.recalibration_batches} batches): "
              f"largest {acc['largest']:.2%}, smallest {acc['smallest']:.2%}")


def _search(args) -> None:
    from .search import SearchConfig, run_search

    config = SearchConfig(**SearchConfig.given(args)).validate()
    sampler = "" if config.sampler == "auto" else f"-{config.sampler}"
    out = Path(args.output or f"runs/{Path(config.space).stem}-{config.budget / 1e6:g}M-"
                              f"{config.objective}{sampler}")
    log = (lambda *a, **k: None) if args.json else (lambda m: print(m, flush=True))
    log(f"nas search: {config.space}, budget {config.budget:,} FLOPs, {config.trials} trials, "
        f"run directory {out}")
    result = run_search(config, out, progress=not args.json, log=log)
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 reports
        return
    if args.json:
        print(json.dumps({"trials": result.trials, "feasible": result.feasible,
                          "study": result.study, "front": result.front, "best": result.best}))
        return
    rejected = ", ".join(f"{n} over the {'FLOPs' if why == 'flops' else why} budget"
                         for why, n in sorted(result.rejected.items()))
    print(f"\n{result.trials} trials, {result.feasible} within budget"
          + (f" ({rejected})" if rejected else "")
          + f" ({result.seconds / 60:.1f} min this run).")
    if not result.front:
        print(f"No trial is feasible: none fits {config.budget:,} FLOPs"
              + (f" and {config.latency_budget_ms:g} ms" if config.latency_budget_ms else "")
              + ". Raise the budget or run more trials.")
        return
    from .report import front_table, latency_note
    from .runs import SearchDir

    print("Pareto front (accuracy up, FLOPs down, latency down):")
    print(front_table(result.front))
    print(latency_note(result.front))
    best = result.best
    run = SearchDir(out)
    if "standalone_accuracy" in best:
        print(f"\nre-ranking winner: trial {best['trial']} ({best['standalone_accuracy']:.2%} "
              f"standalone, estimate {best['accuracy']:.2%}, {best['flops'] / 1e6:.1f}M FLOPs, "
              f"{best['latency_ms']:.1f} ms)")
    else:
        print(f"\nbest reward: trial {best['trial']} ({best['accuracy']:.2%}, "
              f"{best['flops'] / 1e6:.1f}M FLOPs, {best['latency_ms']:.1f} ms)")
    if best.get("caveat"):
        print(f"caveat:     {best['caveat']}")
    print(f"all trials: {run.trials_csv}   study: {result.study}")
    print(f"report:     nas report {_quote(out)}")
    print(f"export it:  nas export {_quote(out)} --best -o {_quote(run.export)}")
    if result.feasible > 1 and not run.rerank_json.exists():
        # measured: the supernet ranks a budget band at Kendall tau ~0.2 against standalone
        # training (experiments/README.md), so the pick is worth checking before retraining
        print(f"check it:   nas rerank {_quote(out)} --top 3")
        print("            (the estimate ranks roughly: this trains the 3 best standalone, 2 "
              "seeds each, and --best then means the winner)")


def _latency_build(args) -> None:
    import time

    from .latency import TableConfig, build_table
    from .space import load_space

    c = TableConfig(**TableConfig.given(args)).validate()
    space = load_space(c.space)
    out = Path(args.output)
    progress = out.with_name(out.name + ".partial")  # the units timed so far
    started = time.perf_counter()
    table = build_table(space, c.runtime, c.archs, c.calibrate, c.threads, c.repeats,
                        checkpoint=progress)
    table.save(out)
    progress.unlink(missing_ok=True)
    cal = table.calibration
    errors = [abs(table.scale * s - m) / m for s, m in zip(cal["unit_sums"], cal["measured"])]
    print(f"{len(table.entries)} units of {space.name} timed in {table.backend} "
          f"({table.threads} thread(s)) in {(time.perf_counter() - started) / 60:.1f} min; "
          f"latency = {table.scale:.3f} x sum of its units, {100 * sum(errors) / len(errors):.1f}% "
          f"mean error on the {len(errors)} networks measured to fit it: {out}")
    print(f"use it: nas search --budget 300M --latency lut:{_quote(str(out))}")


def _latency_pack(args) -> None:
    from .export.device import pack_space
    from .latency.device import PackConfig
    from .space import load_space

    c = PackConfig(**PackConfig.given(args)).validate()
    space = load_space(c.space)
    r = pack_space(space, c.runtime, args.output, archs=c.archs, calibrate=c.calibrate,
                   seed=c.seed, force=args.force)
    print(f"{r['units']} units and {r['networks']} networks of {space.name} packed for "
          f"{c.runtime} in {r['seconds'] / 60:.1f} min: {args.output}")
    print(f"on the device: python {RUNNER_HINT} (needs Python 3.8+ and "
          f"{c.runtime} only), then bring back timings.json and run:")
    print(f"  nas latency read {_quote(args.output)} -o lut-{c.runtime}-device.json")


RUNNER_HINT = "run_latency.py [--threads N]"


def _latency_read(args) -> None:
    from .latency.device import read_timings

    table = read_timings(args.pack, args.timings)
    table.save(args.output)
    cal = table.calibration
    errors = [abs(table.scale * s - m) / m for s, m in zip(cal["unit_sums"], cal["measured"])]
    d = table.device
    print(f"{len(table.entries)} units timed in {d['runtime_version']} on {d.get('machine')} "
          f"{d.get('system', '')} ({table.threads} thread(s)); latency = {table.scale:.3f} x "
          f"sum of its units, {100 * sum(errors) / len(errors):.1f}% mean error on the "
          f"{len(errors)} networks timed whole: {args.output}")
    print(f"use it: nas search --budget 300M --latency lut:{_quote(str(args.output))}")


def _train(args) -> None:
    from .runs import TrainDir
    from .train import RetrainConfig, arch_from_export, retrain

    given = RetrainConfig.given(args)
    if args.resume:
        if args.arch or args.from_dir or given:
            raise UsageError("--resume continues with the run's own settings; give only -o")
        config = None
    else:
        if args.from_dir:
            arch, weights = arch_from_export(args.from_dir)
        elif args.arch:
            arch, weights = str(_read_arch(args.arch)), ""
        else:
            raise UsageError("give --arch ARCH or --from EXPORT_DIR (or -o RUN --resume)")
        if given.get("init") == "inherited" and not weights:
            raise UsageError("--init inherited needs --from an export that has weights.pt")
        config = RetrainConfig(arch=arch, weights=weights, **given).validate()
    m = retrain(config, args.output, resume=args.resume)
    inp, target = m["input"], m["target"]
    print(f"trained {m['id']} for {m['epochs']:g} epochs ({m['steps']} steps, init {m['init']}): "
          f"test accuracy {m['test_accuracy']:.2%}, validation {m['val_accuracy']:.2%}; "
          f"{fmt_count(m['flops'])} FLOPs, {fmt_count(m['params'])} params, "
          f"{m['latency_ms']:.1f} ms at {inp['channels']}x{inp['resolution']}x"
          f"{inp['resolution']}, {inp['classes']} classes (at the space's target input: "
          f"{fmt_count(target['flops'])} FLOPs, {fmt_count(target['params'])} params)")
    if m["fresh_tensors"]:
        print(f"  not inherited (shapes differ for this data): {', '.join(m['fresh_tensors'])}")
    print(f"  {TrainDir(args.output).metrics}")


def _diagnose(args) -> None:
    from .diagnose import DiagnoseConfig, diagnose
    from .runs import DiagnoseDir, SearchDir

    out = DiagnoseDir(args.output) if args.output else SearchDir(args.run).diagnose
    s = diagnose(args.run, out.path, DiagnoseConfig(**DiagnoseConfig.given(args)),
                 log=lambda m: print(m, flush=True))
    print(f"{s['n']} architectures, FLOPs {s['band'][0] / 1e6:.0f}M-{s['band'][1] / 1e6:.0f}M: "
          f"Kendall tau {s['kendall']:.3f} [{s['kendall_ci'][0]:.2f}, {s['kendall_ci'][1]:.2f}], "
          f"Spearman rho {s['spearman']:.3f} [{s['spearman_ci'][0]:.2f}, "
          f"{s['spearman_ci'][1]:.2f}] (95% bootstrap CIs)")
    print(f"  {out.rows}  {out.summary}  {out.plot}")


def _reference(args) -> None:
    from .reference import ReferenceConfig, run_reference
    from .runs import ReferenceDir

    config = ReferenceConfig(**ReferenceConfig.given(args)).validate()
    s = run_reference(config, args.output, log=lambda m: print(m, flush=True))
    print(f"{s['rows']} trainings of {s.get('archs', 0)} architectures x {s.get('seeds', 0)} "
          "seeds" + (f": one seed ranks like another at Kendall tau {s['pairwise_tau']:.2f}; "
                     f"the {s['seeds']}-seed mean caps any ranker at tau "
                     f"{s['ceiling_tau']:.2f}" if "pairwise_tau" in s else ""))
    out = ReferenceDir(args.output)
    print(f"  {out.rows}  {out.summary}")


def _rank(args) -> None:
    from .estimators import RankConfig, make_estimator
    from .reference import estimator_context, rank_estimator

    config = RankConfig(**RankConfig.given(args)).validate()
    context = estimator_context(args.reference, supernets=config.supernet,
                                calib_images=config.calib_images)
    s = rank_estimator(args.reference, make_estimator(config.estimator, context))
    print(f"{s['estimator']}")
    print(f"{s['n']} architectures: Kendall tau {s['kendall']:.3f} [{s['kendall_ci'][0]:.2f}, "
          f"{s['kendall_ci'][1]:.2f}], Spearman rho {s['spearman']:.3f} "
          f"[{s['spearman_ci'][0]:.2f}, {s['spearman_ci'][1]:.2f}] (95% bootstrap CIs); "
          f"top-5 precision {s['top5_precision']:.2f}, regret "
          f"{100 * s['top5_regret']:.2f} points; {s['seconds_per_arch']:.2f} s per architecture")
    if args.output:
        from .files import atomic_write_bytes

        atomic_write_bytes(args.output, s["frame"].to_csv(index=False).encode())
        print(f"  {args.output}")


def _predictor_fit(args) -> None:
    from .estimators import PredictorConfig
    from .reference import fit_predictor

    fit = PredictorConfig(**PredictorConfig.given(args)).validate()
    done = fit_predictor(args.reference, args.output, fit)
    print(f"{fit.model} on {fit.encoding}{' + naswot' if done.naswot else ''}, fitted on "
          f"{done.archs} architectures of {' + '.join(args.reference)}: {args.output}")
    print(f"use it: nas search --budget 300M --data {_quote(done.config.data)} "
          f"--estimator predictor:{_quote(args.output)}")


def _rerank(args) -> None:
    from dataclasses import replace

    from .search import RerankConfig, open_run, open_storage
    from .search.rerank import rerank
    from .search.results import study_url

    recipe = RerankConfig(**RerankConfig.given(args)).validate()
    run = open_run(args.run)
    config = replace(run.config, rerank=recipe.top, rerank_steps=recipe.steps,
                     rerank_seeds=recipe.seeds).validate()
    import optuna

    study = optuna.load_study(study_name=config.study,
                              storage=open_storage(study_url(config, run.dir)))
    result = rerank(config, run.dir, study, log=lambda m: print(m, flush=True))
    print(f"winner: trial {result['winner']}; export it: nas export {_quote(run.path)} --best "
          f"-o {_quote(run.dir.export)}")


def _report(args) -> None:
    from .report import (
        baseline_run,
        dashboard_command,
        front_json,
        front_table,
        latency_note,
        write_report,
        write_trial_picture,
    )
    from .search import open_run

    run = open_run(args.run)
    if args.json:
        print(front_json(run.front()))
        return
    if args.trial is not None:
        pictures = write_trial_picture(run, args.trial)
        print(f"trial {args.trial}: {pictures['svg']}"
              + (f"  {pictures['png']}" if pictures["png"] else
                 '  (no PNG: pip install "nas[report]" for matplotlib)'))
        return
    baseline = baseline_run(run, args.baseline)
    result = write_report(run, baseline=baseline)
    front = result["front"]
    latency = (f" and {run.config.latency_budget_ms:g} ms" if run.config.latency_budget_ms
               else "")
    print(f"{run.path}: {len(run.rows)} finished trials, {len(run.feasible)} within budget "
          f"({run.config.budget / 1e6:g}M FLOPs{latency})")
    if front:
        print("Pareto front (accuracy up, FLOPs down, latency down):")
        print(front_table(front))
        print(latency_note(run.feasible))
    else:
        print("No trial is feasible yet: the front is empty.")
    print(f"report: {result['html']} ({result['seconds']:.1f} s)"
          + (f", compared with random search in {result['baseline'].path}"
             if result["baseline"] else ""))
    print(f"plot:   {result['png']}" if result["png"] else
          'plot:   not drawn (pip install "nas[report]" for matplotlib)')
    if front:
        print(f"export: nas export {_quote(run.path)} --best -o {_quote(run.dir.export)}")
    print(f"study:  {dashboard_command(run)}")


def _int8_lines(report, backbone: bool) -> List[str]:
    """What ``nas export --int8`` prints about ``model.int8.onnx``."""
    c, h, w = report["input"]
    what = "features" if backbone else "logits"
    agreement = (f" (top-1 class agrees on {report['agreement']:.1%})"
                 if report["agreement"] is not None else "")
    return [
        f"int8: {report['path']}: {report['bytes'] / 1e6:.2f} MB, "
        f"{report['bytes'] / report['fp32_bytes']:.2f}x the float file's "
        f"{report['fp32_bytes'] / 1e6:.2f} MB",
        f"      latency {report['int8_ms']:.2f} ms int8 vs {report['fp32_ms']:.2f} ms float "
        f"({report['baseline']}): {report['int8_ms'] / report['fp32_ms']:.2f}x (ONNX Runtime, "
        f"batch 1, {c}x{h}x{w}, 1 thread, this machine)",
        f"      max |{what} - float network's| = {report['max_diff']:.3g} "
        f"({report['max_diff'] / max(report['largest'], 1e-12):.1%} of the largest |{what}| "
        f"{report['largest']:.3g}) on {report['heldout']} validation images{agreement}",
        f"      calibrated on {report['calibration']} training images in "
        f"{report['quantise_s']:.1f} s: {report['settings']}"]


def _export(args) -> None:
    from .cost import count_cost
    from .export import ExportConfig, check_deploy, export_arch, write_deploy

    settings = ExportConfig.given(args)
    config = ExportConfig(**settings).validate()
    form, deploy = config.form(), config.deploy()
    if args.arch is not None:
        if args.run:
            raise UsageError("give either a run directory (with --trial/--best) or --arch")
        if config.int8 and not config.calib:
            raise UsageError("--arch --int8 needs --calib DATA: the images to calibrate on "
                             "(there is no run whose data to use)")
        arch = _read_arch(args.arch)
        from .export.trial import target_inputs
        from .files import all_or_nothing
        from .runs import ExportDir

        check_deploy(arch, form, deploy)
        int8 = None
        if config.int8:  # read the data before anything is written
            from .export import int8_inputs

            inputs = int8_inputs(config.calib, arch.input.resolution, arch.input.channels)
        with all_or_nothing(ExportDir(args.output).files(arch.id)):  # no half export
            if config.int8:
                from .export import export_untrained

                paths, int8 = export_untrained(arch, args.output, inputs, force=config.force,
                                               form=form)
            else:
                paths = export_arch(arch, args.output, force=config.force, form=form)
            more, converted = write_deploy(args.output, arch, form, target_inputs(arch),
                                           deploy)
        cost = count_cost(arch)
        print(f"exported {arch.id}: {fmt_count(cost.flops)} FLOPs, "
              f"{fmt_count(cost.params)} params (no weights"
              + ("; model.onnx and model.int8.onnx hold fresh weights, for size and latency"
                 if int8 else "") + ")")
        for path in paths + more:
            print(f"  {path}")
        _print_deploy(more, converted, deploy.yolo, fresh=True)
        if int8:
            print("\n".join(_int8_lines(int8, form.backbone)))
        return
    if not args.run:
        raise UsageError("--trial and --best need a run directory: nas export RUN --best -o DIR")
    from .export import export_trial

    result = export_trial(args.run, args.output, trial=args.trial, **settings)
    row, deltas, net = result["row"], result["deltas"], result["produced"]
    cost, inp = count_cost(net), net.input
    estimate = (f"search accuracy {row['accuracy']:.2%}"
                if row.get("estimator", "supernet") != "naswot" else
                f"NASWOT score {row['accuracy']:.2f}")
    print(f"exported trial {row['trial']} ({net.id}): {fmt_count(cost.flops)} FLOPs, "
          f"{fmt_count(cost.params)} params at {inp.channels}x{inp.resolution}x{inp.resolution}, "
          f"{inp.classes} classes, {estimate} (at the space's "
          f"target input: {fmt_count(row['flops'])} FLOPs, {fmt_count(row['params'])} params)")
    for path in result["paths"]:
        print(f"  {path}")
    _print_deploy(result["paths"], result["converted"], deploy.yolo, fresh=not deltas)
    if "model" not in deltas:
        print("no weights: the search scored without a supernet and did not re-rank "
              "(nas rerank RUN trains the best few); retrain it with nas train --from DIR"
              + ("; model.onnx and model.int8.onnx hold fresh weights, for size and latency"
                 if "int8" in deltas else ""))
    else:
        what = "features" if form.backbone else "logits"
        print(f"check: max |{what} - exported network's "
              f"source| = {deltas['model']:.2e} (model.py + "
              f"weights.pt), {deltas['torchscript']:.2e} (model.ts)"
              + (f"; vs supernet(x, arch) {deltas['supernet']:.2e}" if "supernet" in deltas
                 else ""))
    if "int8" in deltas:
        print("\n".join(_int8_lines(deltas["int8"], form.backbone)))


def _data_shards(args) -> None:
    from .data import load_dataset
    from .data.shards import write_shards

    if args.shard_size < 1:
        raise UsageError("--shard-size must be at least 1")
    index = write_shards(load_dataset(args.source, "stream"), Path(args.output),
                         args.shard_size)
    for name, split in index["splits"].items():
        print(f"{name}: {split['num_samples']:,} images in {len(split['filenames'])} shards")
    print(f"use it: nas search --budget 300M --data {_quote(args.output)}")


_HANDLERS = {
    ("data", "shards"): _data_shards,
    ("space", "list"): _space_list,
    ("space", "show"): _space_show,
    ("space", "sample"): _space_sample,
    ("supernet", "train"): _supernet_train,
    ("search", None): _search,
    ("latency", "build"): _latency_build,
    ("latency", "pack"): _latency_pack,
    ("latency", "read"): _latency_read,
    ("report", None): _report,
    ("train", None): _train,
    ("diagnose", None): _diagnose,
    ("reference", None): _reference,
    ("rank", None): _rank,
    ("predictor", "fit"): _predictor_fit,
    ("rerank", None): _rerank,
    ("export", None): _export,
}


def _command(argv: List[str]) -> Optional[str]:
    """The command word of ``argv`` (the first argument that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


class _Notes(logging.Handler):
    """What nas tells about the user's data (logger ``nas``): one ``nas: note:`` line each,
    on the stderr of the moment."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"nas: note: {record.getMessage()}", file=sys.stderr)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    logger = logging.getLogger("nas")
    if not any(isinstance(h, _Notes) for h in logger.handlers):
        logger.addHandler(_Notes())
        logger.propagate = False
    args = _parser(_command(argv)).parse_args(argv)
    sub = (getattr(args, "space_command", None) or getattr(args, "supernet_command", None)
           or getattr(args, "data_command", None)
           or getattr(args, "latency_command", None) or getattr(args, "predictor_command", None))
    handler = _HANDLERS[(args.command, sub)]
    try:
        handler(args)
    except BrokenPipeError:  # `nas space sample ... | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the exit-time flush cannot fail again
        return 0
    except OSError as e:  # permission denied, not a directory, disk full, ...
        where = f"{e.filename}: " if e.filename else ""
        print(f"nas: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except NasError as e:
        print(f"nas: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(_interrupted(args), file=sys.stderr)
        return 130
    return 0


def _interrupted(args) -> str:
    if args.command == "search":
        return "nas: interrupted; rerun the same command to continue the search"
    if args.command in ("supernet", "train") and getattr(args, "output", None):
        from .runs import SupernetDir, TrainDir

        run = SupernetDir(args.output) if args.command == "supernet" else TrainDir(args.output)
        if run.checkpoint.exists():
            return ("nas: interrupted; the last checkpoint is kept: rerun with --resume to "
                    "continue")
    if args.command in ("diagnose", "reference"):
        return "nas: interrupted; rerun the same command to continue"
    return "nas: interrupted"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
