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
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from . import __version__
from .errors import NasError, UsageError
from .files import shell_path as _quote

__all__ = ["main"]


# ---------------------------------------------------------------- parsers, per command
def _space_args(p: argparse.ArgumentParser) -> None:
    from .space.show import ListConfig, SampleConfig, ShowConfig

    sub = p.add_subparsers(dest="space_command", required=True, metavar="SUBCOMMAND")
    ls = sub.add_parser("list", help="list registered spaces")
    ListConfig.add_arguments(ls)
    show = sub.add_parser("show", help="decisions, size and FLOPs range of a space")
    show.add_argument("space", help="registered name (see `nas space list`) or path to a .yaml")
    ShowConfig.add_arguments(show)
    sample = sub.add_parser("sample", help="random architectures with their cost")
    sample.add_argument("space", help="registered name or path to a .yaml")
    SampleConfig.add_arguments(sample)


def _supernet_args(p: argparse.ArgumentParser) -> None:
    from .train import QuickReportConfig, TrainConfig

    sub = p.add_subparsers(dest="supernet_command", required=True, metavar="SUBCOMMAND")
    train = sub.add_parser(
        "train", help="train a supernet into a run directory (resumable)",
        description="Train a weight-sharing supernet. Settings not given take the defaults "
                    "shown; with --resume the run's saved settings are used.")
    train.add_argument("-o", "--output", required=True, help="run directory")
    train.add_argument("--resume", action="store_true",
                       help="continue the run's checkpoint exactly where it stopped")
    TrainConfig.add_arguments(train)
    QuickReportConfig.add_arguments(train)


def _data_args(p: argparse.ArgumentParser) -> None:
    from .data.shards import ShardsConfig

    sub = p.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    shards = sub.add_parser(
        "shards", help="write an image folder as tar shards (WebDataset layout, timm's "
                       "_info.json)",
        description="Copy the images of an image folder (or a .tar.gz of one) into tar shards "
                    "in the WebDataset layout, samples in a seeded random order, with timm's "
                    "_info.json: --data DIR reads them, each torchrun rank its own shards.")
    shards.add_argument("source", help="an image folder with train/ and test/, or a .tar.gz")
    shards.add_argument("-o", "--output", required=True, help="the shard folder")
    ShardsConfig.add_arguments(shards)


def _search_args(p: argparse.ArgumentParser) -> None:
    from .search import SearchConfig

    p.add_argument("-o", "--output",
                   help="run directory (default runs/SPACE-BUDGET-OBJECTIVE[-SAMPLER])")
    SearchConfig.add_arguments(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _latency_args(p: argparse.ArgumentParser) -> None:
    from .latency import TableConfig
    from .latency.device import PackConfig, ReadConfig

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
    read.add_argument("-o", "--output", required=True, help="the table (.json)")
    ReadConfig.add_arguments(read)


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
    from .report import ReportConfig

    p.add_argument("run", help="run directory written by nas search")
    ReportConfig.add_arguments(p.add_mutually_exclusive_group(), skip=("baseline",))
    ReportConfig.add_arguments(p, skip=("json", "trial"))


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
def _space_list(args) -> None:
    from .space import available_spaces, load_space
    from .space.show import ListConfig, space_line

    spaces = available_spaces()
    if ListConfig(**ListConfig.given(args)).validate().json:
        print(json.dumps({name: str(path) for name, path in spaces.items()}))
        return
    for name in spaces:
        print(space_line(name, load_space(name)))


def _space_show(args) -> None:
    from .space import load_space
    from .space.show import ShowConfig, summarize_space

    space = load_space(args.space)
    c = ShowConfig(**ShowConfig.given(args)).validate()
    summary = summarize_space(space, c.proxy)
    print(json.dumps(summary.to_dict()) if c.json else "\n".join(summary.lines()))


def _space_sample(args) -> None:
    from .space import load_space
    from .space.show import SampleConfig, sample_line

    c = SampleConfig(**SampleConfig.given(args)).validate()
    space = load_space(args.space)
    rng = random.Random(c.seed)
    for _ in range(c.n):
        print(sample_line(space.sample(rng), c.json))


def _supernet_train(args) -> None:
    from .runs import SupernetDir
    from .train import QuickReportConfig, TrainConfig, quick_report, resume_or_new, train_supernet

    final = QuickReportConfig(**QuickReportConfig.given(args)).validate()
    run = SupernetDir(args.output)
    config = resume_or_new(TrainConfig.given(args), run.path, args.resume)
    result = train_supernet(config, run.path, resume=args.resume)
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 reports
        return
    print(f"supernet: {result.step} steps, checkpoint {run.checkpoint}")
    if final.eval:
        acc = quick_report(result, final.recalibration_batches)
        print(f"validation accuracy (BN recalibrated, {final.recalibration_batches} batches): "
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
    from .report import search_lines

    print("\n".join(search_lines(result, config, out)))


def _latency_build(args) -> None:
    from .latency import TableConfig, build_table_file

    built = build_table_file(TableConfig(**TableConfig.given(args)), args.output)
    print("\n".join(built.lines()))


def _latency_pack(args) -> None:
    from .export.device import pack_space
    from .latency.device import PackConfig
    from .space import load_space

    c = PackConfig(**PackConfig.given(args)).validate()
    space = load_space(c.space)
    r = pack_space(space, c.runtime, args.output, archs=c.archs, calibrate=c.calibrate,
                   seed=c.seed, force=args.force)
    print("\n".join(r.lines(space.name, args.output)))


def _latency_read(args) -> None:
    from .latency.device import ReadConfig, read_timings

    table = read_timings(args.pack, ReadConfig(**ReadConfig.given(args)).validate().timings)
    table.save(args.output)
    d = table.device
    print(f"{len(table.entries)} units timed in {d['runtime_version']} on {d.get('machine')} "
          f"{d.get('system', '')} ({table.threads} thread(s)); "
          f"{table.fit_line('timed whole')}: {args.output}")
    print(f"use it: nas search --budget 300M --latency lut:{_quote(str(args.output))}")


def _train(args) -> None:
    from .runs import TrainDir
    from .train import RetrainConfig, metrics_lines, retrain, retrain_config

    config = retrain_config(RetrainConfig.given(args), args.arch, args.from_dir, args.resume)
    m = retrain(config, args.output, resume=args.resume)
    print("\n".join(metrics_lines(m) + [f"  {TrainDir(args.output).metrics}"]))


def _diagnose(args) -> None:
    from .diagnose import DiagnoseConfig, diagnose
    from .runs import DiagnoseDir, SearchDir

    out = DiagnoseDir(args.output) if args.output else SearchDir(args.run).diagnose
    s = diagnose(args.run, out.path, DiagnoseConfig(**DiagnoseConfig.given(args)),
                 log=lambda m: print(m, flush=True))
    print(s.describe())
    print(f"  {out.rows}  {out.summary}  {out.plot}")


def _reference(args) -> None:
    from .reference import ReferenceConfig, run_reference
    from .runs import ReferenceDir

    config = ReferenceConfig(**ReferenceConfig.given(args)).validate()
    s = run_reference(config, args.output, log=lambda m: print(m, flush=True))
    print(s.describe())
    out = ReferenceDir(args.output)
    print(f"  {out.rows}  {out.summary}")


def _rank(args) -> None:
    from .estimators import RankConfig, make_estimator
    from .reference import estimator_context, rank_estimator

    config = RankConfig(**RankConfig.given(args)).validate()
    context = estimator_context(args.reference, supernets=config.supernet,
                                calib_images=config.calib_images)
    s = rank_estimator(args.reference, make_estimator(config.estimator, context))
    print(s.estimator)
    print(s.describe())
    if args.output:
        from .files import atomic_write_bytes

        atomic_write_bytes(args.output, s.frame.to_csv(index=False).encode())
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
    from .runs import SearchDir
    from .search import RerankConfig
    from .search.rerank import rerank_run

    recipe = RerankConfig(**RerankConfig.given(args)).validate()
    result = rerank_run(args.run, recipe, log=lambda m: print(m, flush=True))
    run = SearchDir(args.run)
    print(f"winner: trial {result.winner}; export it: nas export {_quote(run.path)} --best "
          f"-o {_quote(run.export)}")


def _report(args) -> None:
    from .report import ReportConfig, baseline_run, front_json, write_report, write_trial_picture
    from .search import open_run

    c = ReportConfig(**ReportConfig.given(args)).validate()
    run = open_run(args.run)
    if c.json:
        print(front_json(run.front()))
    elif c.trial is not None:
        print(write_trial_picture(run, c.trial).line())
    else:
        print("\n".join(write_report(run, baseline=baseline_run(run, c.baseline))
                        .lines(run)))


def _export(args) -> None:
    from .export import ExportConfig, export_architecture, export_trial

    settings = ExportConfig.given(args)
    ExportConfig(**settings).validate()
    if args.arch is not None:
        if args.run:
            raise UsageError("give either a run directory (with --trial/--best) or --arch")
        result = export_architecture(args.arch, args.output, **settings)
    elif not args.run:
        raise UsageError("--trial and --best need a run directory: nas export RUN --best -o DIR")
    else:
        result = export_trial(args.run, args.output, trial=args.trial, **settings)
    print("\n".join(result.lines()))


def _data_shards(args) -> None:
    from .data import load_dataset
    from .data.shards import ShardsConfig, write_shards

    c = ShardsConfig(**ShardsConfig.given(args)).validate()
    index = write_shards(load_dataset(args.source, "stream"), Path(args.output), c.shard_size)
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
