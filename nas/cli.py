"""The ``nas`` command line: argument parsing and printing only."""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from pathlib import Path
from typing import List, Optional

from . import __version__
from dataclasses import fields

from .arch import Architecture, ArchError
from .budget import BudgetError, parse_flops
from .checkpoint import CheckpointError
from .data import DataError
from .cost import count_cost
from .export import ExportError, ExportForm, export_arch
from .space.grammar import FIELD_BY_NAME, SAME, fields_of
from .space.loader import SpaceError, available_spaces, load_space
from .search import SearchConfig, run_search
from .supernet import SupernetMismatch
from .diagnose import DiagnoseConfig
from .retrain import RetrainConfig
from .train import RunError, TrainConfig, quick_report, train_supernet

class UsageError(ValueError):
    """A bad argument combination the parser cannot catch."""


# Errors a user can cause: printed as one line, exit code 2, never a traceback. Anything
# else is a bug in nas and keeps its traceback.
USER_ERRORS = (SpaceError, ArchError, ExportError, DataError, RunError, CheckpointError,
               BudgetError, SupernetMismatch, UsageError)


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

    sn = sub.add_parser("supernet", help="train the weight-sharing supernet")
    sn_sub = sn.add_subparsers(dest="supernet_command", required=True, metavar="SUBCOMMAND")
    train = sn_sub.add_parser(
        "train", help="train a supernet into a run directory (resumable)",
        description="Train a weight-sharing supernet. Settings not given take the defaults "
                    "shown; with --resume the run's saved settings are used.")
    train.add_argument("-o", "--output", required=True, help="run directory")
    train.add_argument("--resume", action="store_true",
                       help="continue RUN/supernet.pt exactly where it stopped")
    d = TrainConfig()
    for flag, kind, text in (
        ("--space", str, "search space (name or .yaml)"),
        ("--data", str, "fashion-mnist, an ImageFolder dir (train/ test/) or a .tar.gz of one"),
        ("--steps", int, "optimisation steps (0: from --epochs)"),
        ("--epochs", float, "epochs over the training split"),
        ("--batch-size", int, "images per step"),
        ("--optimizer", str, "adamw or sgd (Nesterov momentum)"),
        ("--lr", float, "peak learning rate (cosine schedule, linear warm-up)"),
        ("--weight-decay", float, "weight decay (not on BN and biases)"),
        ("--label-smoothing", float, "label smoothing of the hard-label loss"),
        ("--sampler", str, "uniform | sandwich (largest+smallest+random, in-place "
                           "distillation) | budget (archs within --band of --budget)"),
        ("--sandwich-random", int, "random archs per sandwich step"),
        ("--budget", str, "FLOPs budget for --sampler budget, e.g. 300M"),
        ("--band", float, "relative band around the budget"),
        ("--resolution", int, "proxy resolution to resize images to (0: native)"),
        ("--val-fraction", float, "share of training data held out for validation"),
        ("--train-subset", int, "train on only this many images (0: all)"),
        ("--seed", int, "seed of data order, augmentation, sampling and init"),
        ("--checkpoint-every", int, "steps between checkpoints"),
        ("--device", str, "auto | cpu | cuda"),
    ):
        name = flag[2:].replace("-", "_")
        default = getattr(d, name)
        train.add_argument(flag, type=kind, default=None,
                           help=f"{text} (default: {default if default != '' else 'none'})")
    train.add_argument("--no-eval", action="store_true",
                       help="skip the final validation of the largest and smallest subnets")
    train.add_argument("--recalibration-batches", type=int, default=20,
                       help="BN recalibration batches for the final evaluation")

    search = sub.add_parser(
        "search", help="the main job: search a space under a FLOPs budget",
        description="Train a supernet (or reuse one), run an Optuna study over the space under "
                    "a hard FLOPs budget, write RUN/study.db, trials.csv and config.json, and "
                    "print the Pareto front. Rerunning the same command continues the study.")
    search.add_argument("--budget", required=True,
                        help="FLOPs budget at the space's target input, e.g. 300M, 0.3G, 300e6")
    search.add_argument("-o", "--output",
                        help="run directory (default runs/SPACE-BUDGET-OBJECTIVE[-SAMPLER])")
    sd = SearchConfig(budget=1)
    for flag, kind, text in (
        ("--space", str, "search space (name or .yaml)"),
        ("--data", str, "fashion-mnist, an ImageFolder dir or a .tar.gz of one"),
        ("--objective", str, "reward (acc - beta ln FLOPs - gamma ms) or pareto (acc, FLOPs, "
                             "latency)"),
        ("--sampler", str, "auto (TPE for reward, NSGA-II for pareto), tpe, nsga2, or random "
                           "(the baseline)"),
        ("--trials", int, "total trials of the study (a rerun tops up to this)"),
        ("--timeout", float, "stop this invocation after this many seconds (0: no limit)"),
        ("--beta", float, "reward weight of ln(FLOPs)"),
        ("--gamma", float, "reward weight of latency in ms"),
        ("--supernet", str, "reuse a trained RUN/supernet.pt instead of training one"),
        ("--supernet-steps", int, "steps of supernet training when none is given"),
        ("--resolution", int, "proxy resolution (0: the data's own)"),
        ("--recalibration-batches", int, "BN recalibration batches per trial"),
        ("--val-images", int, "validation images scored per trial"),
        ("--seed", int, "seed of the sampler and the supernet training"),
        ("--device", str, "auto | cpu | cuda"),
        ("--storage", str, "postgresql://USER@HOST/DB (any Optuna RDB URL) or journal:FILE; "
                           "shared by all workers of a study (default sqlite:///RUN/study.db)"),
        ("--study", str, "study name in the storage (workers with the same name cooperate)"),
        ("--workers", int, "search processes on this machine (needs a shared --storage)"),
        ("--latency", str, "measure, or lut:PATH to predict from `nas latency build`"),
    ):
        name = flag[2:].replace("-", "_")
        search.add_argument(flag, type=kind, default=None,
                            help=f"{text} (default: {getattr(sd, name)!r})")
    search.add_argument("--latency-budget", help="hard latency limit, e.g. 25ms (batch 1, target "
                                                 "input, this machine)")
    search.add_argument("--json", action="store_true", help="print the result as JSON")

    lat = sub.add_parser("latency", help="latency lookup tables")
    lat_sub = lat.add_subparsers(dest="latency_command", required=True, metavar="SUBCOMMAND")
    build = lat_sub.add_parser("build", help="measure every block shape of a space once")
    build.add_argument("--space", default="mixnet_300m", help="search space (name or .yaml)")
    build.add_argument("-o", "--output", required=True, help="the table (.json)")
    build.add_argument("--archs", type=int, default=40,
                       help="random architectures whose blocks are measured (default 40)")
    build.add_argument("--calibrate", type=int, default=24,
                       help="whole networks measured to fit the table's weights; from 16 on, "
                            "one weight per operation kind (default 24)")
    build.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")

    retrain_p = sub.add_parser(
        "train", help="train one architecture standalone; test accuracy in OUT/metrics.json",
        description="Train the static network of one architecture (an export, or --arch) on "
                    "the training split less the validation carve, then evaluate it on the "
                    "validation and test splits. Checkpoints are atomic; --resume continues.")
    source = retrain_p.add_mutually_exclusive_group()
    source.add_argument("--arch", help="canonical architecture string or an arch.json path")
    source.add_argument("--from", dest="from_dir", help="an export directory (nas export)")
    retrain_p.add_argument("-o", "--output", required=True, help="output directory")
    retrain_p.add_argument("--init", choices=("scratch", "inherited"), default=None,
                           help="start from fresh weights (default) or the export's weights.pt")
    rd = RetrainConfig()
    for flag, kind in (("--data", str), ("--epochs", float), ("--steps", int),
                       ("--batch-size", int), ("--optimizer", str), ("--lr", float),
                       ("--weight-decay", float), ("--resolution", int), ("--seed", int),
                       ("--train-subset", int), ("--checkpoint-every", int), ("--device", str)):
        name = flag[2:].replace("-", "_")
        retrain_p.add_argument(flag, type=kind, default=None,
                               help=f"default: {getattr(rd, name)!r}")
    retrain_p.add_argument("--resume", action="store_true",
                           help="continue the run in -o with its own settings")

    diag = sub.add_parser(
        "diagnose", help="rank correlation of supernet vs standalone accuracy (Kendall tau)",
        description="Sample K architectures in a FLOPs band of a search run's space, score "
                    "each with the supernet as the search does and train each standalone with "
                    "a short fixed recipe (validation accuracy), and report Kendall tau and "
                    "Spearman rho with bootstrap 95%% CIs, plus a scatter plot. Rerunning "
                    "continues a killed diagnosis.")
    diag.add_argument("run", help="run directory written by nas search")
    diag.add_argument("-o", "--output", help="output directory (default RUN/diagnose)")
    dd = DiagnoseConfig()
    for flag, kind, text in (
        ("--archs", int, "architectures K"),
        ("--band-low", float, "band start, fraction of the budget"),
        ("--band-high", float, "band end, fraction of the budget"),
        ("--steps", int, "standalone training steps per architecture"),
        ("--batch-size", int, "standalone batch size"),
        ("--train-subset", int, "train on this many images (0: the whole training split)"),
        ("--lr", float, "standalone learning rate"),
        ("--seed", int, "seed of the sample and the training")):
        name = flag[2:].replace("-", "_")
        diag.add_argument(flag, type=kind, default=None,
                          help=f"{text} (default {getattr(dd, name)!r})")

    report = sub.add_parser(
        "report", help="the Pareto front of a search: table, RUN/report.html, RUN/pareto.png",
        description="Print the Pareto front of a search run (finished trials; works while the "
                    "search still runs) and write RUN/report.html and RUN/pareto.png.")
    report.add_argument("run", help="run directory written by nas search")
    report.add_argument("--json", action="store_true",
                        help="print the front as JSON (nothing else, no files written)")

    export = sub.add_parser(
        "export", help="write a standalone model.py (+ weights.pt from a search run)",
        description="Export a trial of a search run with the weights it inherits from the "
                    "supernet (model.py, weights.pt, arch.json, model.ts, model.onnx when onnx "
                    "is installed), or any architecture without weights (--arch).")
    export.add_argument("run", nargs="?", help="run directory written by nas search")
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", type=int, help="trial number (see nas report RUN)")
    which.add_argument("--best", action="store_true", help="the best trial by --objective")
    which.add_argument("--arch", help="canonical architecture string, or a path to an "
                                      "arch.json (no weights)")
    export.add_argument("--objective", default="reward", choices=("reward", "acc"),
                        help="what --best maximises (default reward)")
    export.add_argument("-o", "--output", required=True, help="output directory")
    export.add_argument("--fused", action="store_true",
                        help="each MixConv as one zero-padded depthwise conv (same outputs)")
    export.add_argument("--channels-last", action="store_true",
                        help="NHWC memory format (often faster on CPU)")
    export.add_argument("--force", action="store_true", help="overwrite an earlier export")
    return p


def _read_arch(text: str) -> Architecture:
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
    arch = space.sample(0) if space.is_single_point else None
    if arch is not None:
        cost = count_cost(arch)
        info.update(flops=cost.flops, params=cost.params)
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
    if arch is not None:
        print(f"arch     {arch}")
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
        raise UsageError(f"-n must be at least 1, got {args.n}")
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


def _supernet_train(args) -> None:
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
             if getattr(args, f.name, None) is not None}
    if "budget" in given:
        given["budget"] = float(parse_flops(given["budget"]))
    if args.resume:
        saved = Path(args.output) / "config.json"
        if saved.exists():
            old = json.loads(saved.read_text())
            clash = {k: v for k, v in given.items() if old.get(k) != v}
            if clash:
                raise RunError(f"{args.output} was trained with "
                               + ", ".join(f"{k}={old.get(k)!r}" for k in clash)
                               + "; --resume continues it with its own settings")
        config = None
    else:
        config = TrainConfig(**given).validate()
    run = train_supernet(config, args.output, resume=args.resume)
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 reports
        return
    print(f"supernet: {run.step} steps, checkpoint {Path(args.output) / 'supernet.pt'}")
    if not args.no_eval:
        acc = quick_report(run, args.recalibration_batches)
        print(f"validation accuracy (BN recalibrated, {args.recalibration_batches} batches): "
              f"largest {acc['largest']:.2%}, smallest {acc['smallest']:.2%}")


def _parse_ms(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(ms|s)?\s*", text or "")
    value = float(m.group(1)) * (1000 if m.group(2) == "s" else 1) if m else 0.0
    if not m or not 0 < value < 1e7:
        raise UsageError(f"bad latency budget {text!r}: expected milliseconds such as 25ms, "
                         "25 or 0.025s")
    return value


def _search(args) -> None:
    budget = parse_flops(args.budget)
    given = {f.name: getattr(args, f.name) for f in fields(SearchConfig)
             if f.name != "budget" and getattr(args, f.name, None) is not None}
    if args.latency_budget is not None:
        given["latency_budget_ms"] = _parse_ms(args.latency_budget)
    config = SearchConfig(budget=budget, **given).validate()
    label = f"{budget / 1e6:g}M"
    sampler = "" if config.sampler == "auto" else f"-{config.sampler}"
    out = Path(args.output or
               f"runs/{Path(config.space).stem}-{label}-{config.objective}{sampler}")
    log = (lambda *a, **k: None) if args.json else (lambda m: print(m, flush=True))
    log(f"nas search: {config.space}, budget {budget:,} FLOPs, {config.trials} trials, "
        f"run directory {out}")
    result = run_search(config, out, progress=not args.json, log=log)
    if args.json:
        print(json.dumps({k: result[k] for k in ("trials", "feasible", "front", "best")}))
        return
    print(f"\n{result['trials']} trials, {result['feasible']} within budget "
          f"({result['seconds'] / 60:.1f} min this run).")
    if not result["front"]:
        print(f"No trial is feasible: none fits {budget:,} FLOPs"
              + (f" and {config.latency_budget_ms:g} ms" if config.latency_budget_ms else "")
              + ". Raise the budget or run more trials.")
        return
    from .report import front_table

    print("Pareto front (accuracy up, FLOPs down, latency down):")
    print(front_table(result["front"]))
    best = result["best"]
    print(f"\nbest reward: trial {best['trial']} ({best['accuracy']:.2%}, "
          f"{best['flops'] / 1e6:.1f}M FLOPs, {best['latency_ms']:.1f} ms)")
    print(f"all trials: {out / 'trials.csv'}   study: {out / 'study.db'}")
    print(f"report:     nas report {out}")
    print(f"export it:  nas export {out} --best -o {out / 'export'}")


def _latency_build(args) -> None:
    from .latency_lut import build_table

    if args.archs < 1 or args.calibrate < 1 or args.threads < 1:
        raise UsageError("--archs, --calibrate and --threads must be at least 1")
    table = build_table(load_space(args.space), args.archs, args.calibrate, args.threads)
    table.save(args.output)
    weights = ", ".join(f"{k} {w:.2f}" for k, w in table.weights.items())
    print(f"{len(table.entries)} operation shapes measured; weights {weights}, "
          f"+{table.per_op:.3f} ms per op: {args.output}")
    print(f"use it: nas search --budget 300M --latency lut:{args.output}")


def _train(args) -> None:
    from .retrain import arch_from_export, retrain

    given = {f.name: getattr(args, f.name) for f in fields(RetrainConfig)
             if f.name not in ("arch", "weights") and getattr(args, f.name, None) is not None}
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
    print(f"trained {m['id']} for {m['epochs']:g} epochs ({m['steps']} steps, init {m['init']}): "
          f"test accuracy {m['test_accuracy']:.2%}, validation {m['val_accuracy']:.2%}; "
          f"{_fmt_count(m['flops'])} FLOPs, {_fmt_count(m['params'])} params, "
          f"{m['latency_ms']:.1f} ms")
    if m["fresh_tensors"]:
        print(f"  not inherited (shapes differ for this data): {', '.join(m['fresh_tensors'])}")
    print(f"  {Path(args.output) / 'metrics.json'}")


def _diagnose(args) -> None:
    from .diagnose import diagnose

    given = {f.name: getattr(args, f.name) for f in fields(DiagnoseConfig)
             if getattr(args, f.name, None) is not None}
    out = Path(args.output or Path(args.run) / "diagnose")
    s = diagnose(args.run, out, DiagnoseConfig(**given), log=lambda m: print(m, flush=True))
    print(f"{s['n']} architectures, FLOPs {s['band'][0] / 1e6:.0f}M-{s['band'][1] / 1e6:.0f}M: "
          f"Kendall tau {s['kendall']:.3f} [{s['kendall_ci'][0]:.2f}, {s['kendall_ci'][1]:.2f}], "
          f"Spearman rho {s['spearman']:.3f} [{s['spearman_ci'][0]:.2f}, "
          f"{s['spearman_ci'][1]:.2f}] (95% bootstrap CIs)")
    print(f"  {out / 'diagnose.csv'}  {out / 'summary.json'}  {out / 'diagnose.png'}")


def _report(args) -> None:
    from .report import front_json, front_table, write_report
    from .search_run import open_run

    run = open_run(args.run)
    if args.json:
        print(front_json(run.front()))
        return
    result = write_report(run)
    front = result["front"]
    print(f"{run.path}: {len(run.rows)} finished trials, {len(run.feasible)} within budget "
          f"({run.config.budget / 1e6:g}M FLOPs)")
    if front:
        print("Pareto front (accuracy up, FLOPs down, latency down):")
        print(front_table(front))
    else:
        print("No trial is feasible yet: the front is empty.")
    print(f"report: {result['html']}")
    print(f"plot:   {result['png']}" if result["png"] else
          'plot:   not drawn (pip install "nas[report]" for matplotlib)')
    if front:
        print(f"export: nas export {run.path} --best -o {run.path / 'export'}")


def _export(args) -> None:
    if args.arch is not None:
        if args.run:
            raise UsageError("give either a run directory (with --trial/--best) or --arch")
        arch = _read_arch(args.arch)
        form = ExportForm(fused=args.fused, channels_last=args.channels_last)
        paths = export_arch(arch, args.output, force=args.force, form=form)
        cost = count_cost(arch)
        print(f"exported {arch.id}: {_fmt_count(cost.flops)} FLOPs, "
              f"{_fmt_count(cost.params)} params (no weights)")
        for path in paths:
            print(f"  {path}")
        return
    if not args.run:
        raise UsageError("--trial and --best need a run directory: nas export RUN --best -o DIR")
    from .export_trial import export_trial

    result = export_trial(args.run, args.output, trial=args.trial, objective=args.objective,
                          fused=args.fused, channels_last=args.channels_last, force=args.force)
    row, deltas = result["row"], result["deltas"]
    print(f"exported trial {row['trial']} ({result['arch'].id}): "
          f"{_fmt_count(row['flops'])} FLOPs, {_fmt_count(row['params'])} params, "
          f"search accuracy {row['accuracy']:.2%}")
    for path in result["paths"]:
        print(f"  {path}")
    print(f"check: max |logits - supernet subnet| = {deltas['model']:.2e} (model.py + "
          f"weights.pt), {deltas['torchscript']:.2e} (model.ts)"
          + (f"; vs supernet(x, arch) {deltas['supernet']:.2e}" if "supernet" in deltas else ""))


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {
        ("space", "list"): _space_list,
        ("space", "show"): _space_show,
        ("space", "sample"): _space_sample,
        ("supernet", "train"): _supernet_train,
        ("search", None): _search,
        ("latency", "build"): _latency_build,
        ("report", None): _report,
        ("train", None): _train,
        ("diagnose", None): _diagnose,
        ("export", None): _export,
    }
    sub = (getattr(args, "space_command", None) or getattr(args, "supernet_command", None)
           or getattr(args, "latency_command", None))
    handler = handlers[(args.command, sub)]
    try:
        handler(args)
    except BrokenPipeError:  # `nas space sample ... | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the exit-time flush cannot fail again
        return 0
    except OSError as e:  # permission denied, not a directory, disk full, ...
        where = f": {e.filename}" if e.filename else ""
        print(f"nas: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except USER_ERRORS as e:
        print(f"nas: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resumable = args.command == "supernet" and (Path(args.output) / "supernet.pt").exists()
        if args.command == "search":
            print("nas: interrupted; rerun the same command to continue the search",
                  file=sys.stderr)
        else:
            print("nas: interrupted; the last checkpoint is kept: rerun with --resume to "
                  "continue" if resumable else "nas: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
