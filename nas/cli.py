"""The ``nas`` command line: parsing and printing only.

Each command is one row of :data:`_COMMANDS`: its help, the settings classes its flags come
from (:mod:`nas.config`, imported only when the command runs, so ``nas --help`` and
``nas space ...`` import neither torch nor Optuna), the arguments that say where it reads
and writes (:data:`_ARGS`, each declared once), and the handler that calls the package and
prints the typed result.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import __version__
from .errors import NasError, UsageError

__all__ = ["main"]

_RUN_HELP = "run directory written by nas search"
_ARCH_HELP = "canonical architecture string, or a path to an arch.json (nas export: no weights)"
# Arguments that name what a command reads and writes (not settings of the work it does):
# flags, argparse keywords.
_ARGS: Dict[str, Tuple[Tuple[str, ...], Dict[str, Any]]] = {
    "run": (("run",), dict(help=_RUN_HELP)),
    "run?": (("run",), dict(nargs="?", help=_RUN_HELP)),
    "space": (("space",), dict(help="registered name (see `nas space list`) or path to a "
                                    ".yaml")),
    "source": (("source",), dict(help="an image folder with train/ and test/, or a .tar.gz")),
    "pack": (("pack",), dict(help="the pack's folder (nas latency pack)")),
    "reference": (("reference",), dict(help="a reference directory (nas reference)")),
    "references": (("reference",), dict(nargs="+", help="reference directories (nas reference) "
                                        "of one space, data and recipe; several are pooled")),
    "-o": (("-o", "--output"), dict(required=True, help="output directory")),
    "-o?": (("-o", "--output"), dict(help="output directory (default: see the command)")),
    "--resume": (("--resume",), dict(action="store_true", help="continue the run in -o where "
                                     "its checkpoint stopped, with its own settings")),
    "--force": (("--force",), dict(action="store_true", help="replace an earlier pack")),
    "--json": (("--json",), dict(action="store_true", help="print the result as JSON")),
    "--arch": (("--arch",), dict(help=_ARCH_HELP)),
    "--from": (("--from",), dict(dest="from_dir", help="an export directory (nas export)")),
    "--trial": (("--trial",), dict(type=int, help="trial number (see nas report RUN)")),
    "--best": (("--best",), dict(action="store_true", help="the best trial by --objective")),
}


@dataclass(frozen=True)
class _Command:
    """One command: ``run(args, *settings)`` gets the validated settings of ``settings``
    (``"module:Class"`` under nas; those also in ``typed``: only the values typed, a dict,
    for a run's own saved settings to complete); ``args`` name :data:`_ARGS`, a tuple of
    them a mutually exclusive group (``"!"`` first: one is required)."""

    help: str
    run: Callable[..., None]
    settings: Tuple[str, ...] = ()
    args: Tuple[Any, ...] = ()
    description: str = ""
    output: str = ""  # what -o names, for its help
    typed: Tuple[str, ...] = ()


def _settings_class(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(f"nas.{module}"), name)


def _add_command(p: argparse.ArgumentParser, command: _Command) -> None:
    for arg in command.args:
        if isinstance(arg, tuple):
            group = p.add_mutually_exclusive_group(required=arg[0] == "!")
            for name in arg[arg[0] == "!":]:
                flags, kwargs = _ARGS[name]
                group.add_argument(*flags, **kwargs)
        else:
            flags, kwargs = _ARGS[arg]
            if flags[0] == "-o" and command.output:
                kwargs = {**kwargs, "help": command.output}
            p.add_argument(*flags, **kwargs)
    for path in command.settings:
        _settings_class(path).add_arguments(p)


class _Parser(argparse.ArgumentParser):
    """argparse's parser with its errors in one line, as nas's own are (argparse prints
    the whole usage first: 10-27 lines before the one that says what is wrong)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} --help lists the options)\n")


def _parser(argv: List[str]) -> argparse.ArgumentParser:
    """The parser, with the arguments of the command in ``argv`` only (the others' modules
    unimported)."""
    words = [a for a in argv if not a.startswith("-")][:1]
    p = _Parser(
        prog="nas", description="Neural architecture search for mixed-kernel (MixConv) networks.")
    p.add_argument("--version", action="version", version=f"nas {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: Dict[str, Any] = {}  # group word -> its subparsers
    for key, command in _COMMANDS.items():
        if len(key) == 1:
            sp = sub.add_parser(key[0], help=command.help, description=(
                command.description or command.help).replace("%", "%%"))
        else:
            if key[0] not in groups:
                gp = sub.add_parser(key[0], help=_GROUPS[key[0]], description=_GROUPS[key[0]])
                groups[key[0]] = gp.add_subparsers(dest="sub", required=True,
                                                   metavar="SUBCOMMAND")
            sp = groups[key[0]].add_parser(key[1], help=command.help, description=(
                command.description or command.help).replace("%", "%%"))
        if [key[0]] == words:
            _add_command(sp, command)
    return p


# ---------------------------------------------------------------- handlers
def _log(message: str) -> None:
    print(message, flush=True)


def _space_list(args, c) -> None:
    from .space import available_spaces, load_space
    from .space.show import space_line

    spaces = available_spaces()
    print(json.dumps({name: str(path) for name, path in spaces.items()}) if c.json
          else "\n".join(space_line(name, load_space(name)) for name in spaces))


def _space_show(args, c) -> None:
    from .space import load_space
    from .space.show import summarize_space

    summary = summarize_space(load_space(args.space), c.proxy)
    print(json.dumps(summary.to_dict()) if c.json else "\n".join(summary.lines()))


def _space_sample(args, c) -> None:
    from .space import load_space
    from .space.show import sample_line

    space, rng = load_space(args.space), random.Random(c.seed)
    for _ in range(c.n):
        print(sample_line(space.sample(rng), c.json))


def _supernet_train(args, given, final) -> None:
    from .runs import SupernetDir
    from .train import quick_report, resume_or_new, train_supernet

    run = SupernetDir(args.output)
    config = resume_or_new(given, run.path, args.resume)
    result = train_supernet(config, run.path, resume=args.resume)
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 reports
        return
    print(f"supernet: {result.step} steps, checkpoint {run.checkpoint}")
    if final.eval:
        print(quick_report(result, final.recalibration_batches).line())


def _search(args, config) -> None:
    from .search import run_search

    out = Path(args.output or config.default_run_dir())
    log = (lambda m: None) if args.json else _log
    log(f"nas search: {config.space}, budget {config.budget:,} FLOPs, {config.trials} trials, "
        f"run directory {out}")
    result = run_search(config, out, progress=not args.json, log=log)
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 reports
        return
    if args.json:
        print(result.as_json())
        return
    from .report import search_lines

    print("\n".join(search_lines(result, config, out)))


def _latency_build(args, c) -> None:
    from .latency import build_table_file

    print("\n".join(build_table_file(c, args.output).lines()))


def _latency_pack(args, c) -> None:
    from .export.device import pack_space
    from .space import load_space

    space = load_space(c.space)
    r = pack_space(space, c.runtime, args.output, archs=c.archs, calibrate=c.calibrate,
                   seed=c.seed, force=args.force)
    print("\n".join(r.lines(space.name, args.output)))


def _latency_read(args, c) -> None:
    from .latency.device import read_table_file

    print("\n".join(read_table_file(args.pack, c.timings, args.output).lines()))


def _train(args, given) -> None:
    from .runs import TrainDir
    from .train import metrics_lines, retrain, retrain_config

    config = retrain_config(given, args.arch, args.from_dir, args.resume)
    m = retrain(config, args.output, resume=args.resume)
    print("\n".join(metrics_lines(m) + [f"  {TrainDir(args.output).metrics}"]))


def _diagnose(args, c) -> None:
    from .diagnose import diagnose
    from .runs import DiagnoseDir, SearchDir

    out = DiagnoseDir(args.output) if args.output else SearchDir(args.run).diagnose
    print(diagnose(args.run, out.path, c, log=_log).describe())
    print(f"  {out.rows}  {out.summary}  {out.plot}")


def _reference(args, c) -> None:
    from .reference import run_reference
    from .runs import ReferenceDir

    summary = run_reference(c, args.output, log=_log)
    out = ReferenceDir(args.output)
    if summary is None:
        print(f"{out}: nothing for --shard {c.shard} to train, and no row yet from the "
              "other shards")
        return
    print(summary.describe())
    print(f"  {out.rows}  {out.summary}")


def _rank(args, c) -> None:
    from .estimators import make_estimator
    from .reference import estimator_context, rank_estimator

    context = estimator_context(args.reference, supernets=c.supernet,
                                calib_images=c.calib_images)
    s = rank_estimator(args.reference, make_estimator(c.estimator, context))
    print(s.estimator)
    print(s.describe())
    if args.output:
        s.write_scores(args.output)
        print(f"  {args.output}")


def _predictor_fit(args, c) -> None:
    from .reference import fit_predictor

    print("\n".join(fit_predictor(args.reference, args.output, c).lines()))


def _rerank(args, c) -> None:
    from .search.rerank import rerank_run

    print(rerank_run(args.run, c, log=_log).line(args.run))


def _report(args, c) -> None:
    from .report import baseline_run, front_json, write_report, write_trial_picture
    from .search import open_run

    run = open_run(args.run)
    if c.json:
        print(front_json(run.front()))
    elif c.trial is not None:
        print(write_trial_picture(run, c.trial).line())
    else:
        print("\n".join(write_report(run, baseline=baseline_run(run, c.baseline)).lines(run)))


def _export(args, c) -> None:
    from .export import export_architecture, export_trial

    settings = type(c).given(args)  # those typed: the run's own complete them
    if args.arch is not None:
        if args.run:
            raise UsageError("give either a run directory (with --trial/--best) or --arch")
        result = export_architecture(args.arch, args.output, **settings)
    elif not args.run:
        raise UsageError("--trial and --best need a run directory: nas export RUN --best -o DIR")
    else:
        result = export_trial(args.run, args.output, trial=args.trial, **settings)
    print("\n".join(result.lines()))


def _data_shards(args, c) -> None:
    from .data import load_dataset
    from .data.shards import shards_lines, write_shards

    index = write_shards(load_dataset(args.source, "stream"), args.output, c.shard_size)
    print("\n".join(shards_lines(index, args.output)))


# ---------------------------------------------------------------- the commands
_GROUPS = {
    "space": "inspect search spaces",
    "supernet": "train the weight-sharing supernet",
    "data": "data sets: tar shards for data that outgrows one disk",
    "latency": "latency lookup tables: timed here (build) or on your device (pack, read)",
    "predictor": "accuracy predictors learned from a reference",
}
_COMMANDS: Dict[Tuple[str, ...], _Command] = {
    ("space", "list"): _Command("list registered spaces", _space_list, ("space.show:ListConfig",)),
    ("space", "show"): _Command("decisions, size and FLOPs range of a space", _space_show,
                                ("space.show:ShowConfig",), ("space",)),
    ("space", "sample"): _Command("random architectures with their cost", _space_sample,
                                  ("space.show:SampleConfig",), ("space",)),
    ("supernet", "train"): _Command(
        "train a supernet into a run directory (resumable)", _supernet_train,
        ("train:TrainConfig", "train:QuickReportConfig"), ("-o", "--resume"),
        "Train a weight-sharing supernet. Settings not given take the defaults shown; with "
        "--resume the run's saved settings are used.", output="run directory",
        typed=("train:TrainConfig",)),
    ("data", "shards"): _Command(
        "write an image folder as tar shards (WebDataset layout, timm's _info.json)",
        _data_shards, ("data.shards:ShardsConfig",), ("source", "-o"),
        "Copy the images of an image folder (or a .tar.gz of one) into tar shards in the "
        "WebDataset layout, samples in a seeded random order, with timm's _info.json: --data "
        "DIR reads them, each torchrun rank its own shards.", output="the shard folder"),
    ("search",): _Command(
        "the main job: search a space under a FLOPs budget", _search, ("search:SearchConfig",),
        ("-o?", "--json"),
        "Train a supernet (or reuse one), run an Optuna study over the space under a hard "
        "FLOPs budget, write the run directory (config.json, trials.csv and the study: "
        "study.db unless --storage names another) and print the Pareto front. Rerunning the "
        "same command continues the study.",
        output="run directory (default runs/SPACE-BUDGET-OBJECTIVE[-SAMPLER])"),
    ("latency", "build"): _Command(
        "time every block of a space once, in torch eager or ONNX Runtime (float or int8)",
        _latency_build, ("latency:TableConfig",), ("-o",),
        output="the table (.json); a killed build continues when rerun"),
    ("latency", "pack"): _Command(
        "write a space's blocks as files for a runtime, with a runner to time them on your "
        "device", _latency_pack, ("latency.device:PackConfig",), ("-o", "--force"),
        "Write every block of a space (and a few whole networks) as files for ONNX Runtime "
        "or ncnn, with run_latency.py, a standalone script (standard library and the runtime "
        "only) that times them on the device it is copied to; nas latency read turns its "
        "timings.json into a table.", output="the pack's folder"),
    ("latency", "read"): _Command(
        "a pack's timings (run_latency.py on the device) as a table for --latency lut:FILE",
        _latency_read, ("latency.device:ReadConfig",), ("pack", "-o"),
        output="the table (.json)"),
    ("train",): _Command(
        "train one architecture standalone; test accuracy in OUT/metrics.json", _train,
        ("train:RetrainConfig",), (("--arch", "--from"), "-o", "--resume"),
        "Train the static network of one architecture (an export, or --arch) on the "
        "training split less the validation carve, then evaluate it on the validation and "
        "test splits. Checkpoints are atomic; --resume continues.",
        typed=("train:RetrainConfig",)),
    ("diagnose",): _Command(
        "rank correlation of supernet vs standalone accuracy (Kendall tau)", _diagnose,
        ("diagnose:DiagnoseConfig",), ("run", "-o?"),
        "Sample K architectures in a FLOPs band of a search run's space, score each with the "
        "supernet as the search does and train each standalone with a short fixed recipe "
        "(validation accuracy), and report Kendall tau and Spearman rho with bootstrap 95% "
        "CIs, plus a scatter plot. Rerunning continues a killed diagnosis.",
        output="output directory (default RUN/diagnose)"),
    ("reference",): _Command(
        "a de-noised ranking reference: a FLOPs band, each arch trained with several seeds",
        _reference, ("reference:ReferenceConfig",), ("-o",),
        "Sample architectures of a space in a FLOPs band (once, with a fixed seed), train "
        "each standalone once per seed on the same validation carve, and record every "
        "validation accuracy; report the reference's reliability. Rerunning continues.",
        output="reference directory"),
    ("rank",): _Command(
        "how well an estimator ranks a reference's architectures (Kendall tau, top-5)", _rank,
        ("estimators:RankConfig",), ("reference", "-o?"),
        "Score the architectures of a reference (nas reference) with an estimator and "
        "compare with their seed-mean standalone accuracies: Kendall tau and Spearman rho "
        "with 95% bootstrap CIs, top-5 precision, regret, cost per architecture.",
        output="write the per-architecture scores (.csv)"),
    ("predictor", "fit"): _Command(
        "fit an accuracy predictor on a reference", _predictor_fit,
        ("estimators:PredictorConfig",), ("references", "-o"),
        "Fit a predictor (nas search --estimator predictor:FILE) on a reference's "
        "seed-averaged accuracies.", output="the predictor file (.json)"),
    ("rerank",): _Command(
        "train a search's best few architectures standalone and record the winner", _rerank,
        ("search:RerankConfig",), ("run",),
        "The final re-ranking of nas search --rerank K, for an existing run: train the K "
        "best feasible architectures (the Pareto front first, by reward) standalone with a "
        "short fixed recipe and several seeds; the winner (best reward with its standalone "
        "accuracy) is what nas export RUN --best then exports."),
    ("report",): _Command(
        "the Pareto front of a search: table, RUN/report.html, RUN/pareto.png", _report,
        ("report:ReportConfig",), ("run",),
        "Print the Pareto front of a search run (finished trials; works while the search "
        "still runs) and write RUN/report.html (what to pick with its export commands, the "
        "front, a picture of each front member, the search's history, decision importance, "
        "every trial) and RUN/pareto.png. --trial N draws one architecture alone."),
    ("export",): _Command(
        "write a standalone model.py (+ weights.pt from a search run)", _export,
        ("export:ExportConfig",), ("run?", ("!", "--trial", "--best", "--arch"), "-o"),
        "Export a trial of a search run with the weights it inherits from the supernet "
        "(model.py, weights.pt, arch.json, model.ts, model.onnx when onnx is installed), or "
        "any architecture without weights (--arch)."),
}


class _Notes(logging.Handler):
    """What nas tells about the user's data (logger ``nas``): one ``nas: note:`` line each,
    on the stderr of the moment."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"nas: note: {record.getMessage()}", file=sys.stderr)


def _negative_values(argv: List[str]) -> List[str]:
    """``--budget -5M`` as ``--budget=-5M``: argparse takes a value that starts with '-' and
    is not a plain number for an option and says "expected one argument"; joined, the
    value reaches its setting, whose error names it. Plain negative numbers are left to
    argparse, which takes them (``--seeds -1 2`` stays a list). (No positional of nas is
    negative.)"""
    out: List[str] = []
    for token in argv:
        if (out and re.fullmatch(r"--[\w-]+", out[-1]) and re.match(r"-\.?\d", token)
                and not re.fullmatch(r"-\d+|-\d*\.\d+", token)  # argparse takes those
                and "--" not in out):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    argv = _negative_values(sys.argv[1:] if argv is None else list(argv))
    logger = logging.getLogger("nas")
    if not any(isinstance(h, _Notes) for h in logger.handlers):
        logger.addHandler(_Notes())
        logger.propagate = False
    args, extra = _parser(argv).parse_known_args(argv)
    if extra:  # argparse would blame the top parser ("nas --help"): name the command's
        words = " ".join(w for w in (args.command, getattr(args, "sub", None)) if w)
        print(f"nas {words}: error: unrecognized arguments: {' '.join(extra)} (nas {words} "
              "--help lists the options)", file=sys.stderr)
        return 2
    command = _COMMANDS[(args.command,) + ((args.sub,) if getattr(args, "sub", None) else ())]
    try:
        classes = {path: _settings_class(path) for path in command.settings}
        command.run(args, *(s.given(args) if p in command.typed else s(**s.given(args)).validate()
                            for p, s in classes.items()))
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
    if args.command in ("search", "diagnose", "reference"):
        return "nas: interrupted; rerun the same command to continue" + (
            " the search" if args.command == "search" else "")
    if args.command in ("supernet", "train") and getattr(args, "output", None):
        from .runs import SupernetDir, TrainDir

        run = SupernetDir(args.output) if args.command == "supernet" else TrainDir(args.output)
        if run.checkpoint.exists():
            return ("nas: interrupted; the last checkpoint is kept: rerun with --resume to "
                    "continue")
    return "nas: interrupted"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
