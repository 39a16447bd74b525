"""What a search depends on: :class:`SearchConfig`, saved as ``RUN/config.json``; and how
``nas rerank`` retrains its best few (:class:`RerankConfig`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..config import Settings, a_path, setting, setting_of
from ..data import DATA_MODES, data_location
from ..errors import UsageError
from ..estimators import ESTIMATOR_SPEC
from ..latency import LATENCY_SPEC
from ..reference import ReferenceConfig
from ..space import space_location
from ..units import parse_flops, parse_ms
from .storage import storage_location

__all__ = ["SearchConfig", "RerankConfig", "SEARCH_OBJECTIVES", "SEARCH_SAMPLERS", "STUDY_NAME",
           "DEFAULT_BETA", "DEFAULT_GAMMA", "REFERENCE_ARCHS", "BUILT_RERANK"]

# Doubling FLOPs costs beta * ln 2 = 1.39 accuracy points; +1 ms of latency costs 0.1.
DEFAULT_BETA = 0.02
DEFAULT_GAMMA = 0.001
STUDY_NAME = "nas-search"
# --objective: what the search optimises (one reward, or a front of accuracy and cost), and
# --sampler: what proposes each trial
SEARCH_OBJECTIVES = ("reward", "pareto")
SEARCH_SAMPLERS = ("auto", "tpe", "nsga2", "random", "evolution")
# --reference-archs: the measured learning curve (ridge predictor, Kendall tau against the
# 3-seed CIFAR-10 reference of the 240-300M band, experiments/README.md) is 0.43 at 30
# architectures, 0.60 at 60, 0.65 at 120 and 0.66 at 223 (0.63 at 292): flat past ~120,
# while each doubling costs as much training as everything before it; at 60 the predictor
# already ranks far better than the supernet (0.21) or NASWOT (0.18) do.
REFERENCE_ARCHS = 60
# --rerank -1 with --estimator predictor: the best this many are trained standalone
BUILT_RERANK = 3


@dataclass
class RerankConfig(Settings):
    """How ``nas rerank RUN`` retrains a search's best few architectures standalone
    (:mod:`nas.search.rerank`); ``nas search --rerank K`` shares its recipe (``--rerank-steps``,
    ``--rerank-seeds``). Declared here, beside :class:`SearchConfig`, which takes those two
    from it, and not in ``rerank.py``, which imports this module."""

    top: int = setting(3, at_least=1, help="architectures to retrain")
    steps: int = setting(300, at_least=1,
                         help="steps of the re-ranking's standalone training (batch 128)")
    seeds: int = setting(2, at_least=1, help="seeds per re-ranked architecture")


@dataclass
class SearchConfig(Settings):
    """Everything a search depends on. Settings marked ``rerun`` may change when the same
    run is continued; the others define the study, and a rerun must repeat them."""

    budget: int = setting(help="FLOPs budget at the space's target input, e.g. 300M, 0.3G, "
                               "300e6", parse=parse_flops, at_least=1, metavar="FLOPS")
    space: str = setting("mixnet_300m", help="search space (name or .yaml)",
                         path=space_location)
    data: str = setting("fashion-mnist", path=data_location,
                        help="fashion-mnist, an ImageFolder dir or a .tar.gz of one")
    data_mode: str = setting("auto", choices=DATA_MODES,
                             help="auto: small images that fit min(2 GB, 10% of RAM) in "
                                  "memory, everything else streamed from the files; or force "
                                  "memory | stream")
    loader_workers: int = setting(-1, at_least=-1, rerun=True,
                                  help="DataLoader worker processes decoding streamed images "
                                       "(-1: one per core, 0: in the search process; not "
                                       "--workers, which are search processes)")
    objective: str = setting("reward", choices=SEARCH_OBJECTIVES,
                             help="reward (acc - beta ln FLOPs - gamma ms) or pareto (acc, "
                                  "FLOPs, latency)")
    sampler: str = setting("auto", choices=SEARCH_SAMPLERS,
                           help="auto (TPE for reward, NSGA-II for pareto), tpe, nsga2, "
                                "random (the baseline), or evolution (OFA-style, ~10^5 "
                                "candidates on --estimator predictor:FILE; --evolution-*)")
    trials: int = setting(50, at_least=1, rerun=True,
                          help="total trials of the study (a rerun tops up to this); with "
                               "--sampler evolution, how many of its candidates the study "
                               "records: the best, the front, the best of the rest")
    timeout: float = setting(0.0, at_least=0, rerun=True,
                             help="stop this invocation after this many seconds (0: no limit)")
    beta: float = setting(DEFAULT_BETA, at_least=0, help="reward weight of ln(FLOPs)")
    gamma: float = setting(DEFAULT_GAMMA, at_least=0, help="reward weight of latency in ms")
    latency_budget_ms: float = setting(0.0, at_least=0, parse=parse_ms, flag="--latency-budget",
                                       metavar="MS", help="hard latency limit, e.g. 25ms (batch "
                                                          "1, target input, this machine; 0: none)")
    estimator: str = setting("supernet", pattern=rf"{ESTIMATOR_SPEC}|predictor",
                             metavar="{supernet,naswot,predictor,predictor:PATH}",
                             expected="supernet, naswot, predictor or predictor:PATH",
                             help="what estimates accuracy: the weight-sharing supernet, the "
                                  "NASWOT score at initialisation (no training; ranks, so "
                                  "--objective pareto), a predictor file (nas predictor fit), "
                                  "or predictor: the run trains a reference of this task "
                                  "(--reference-*), fits RUN/predictor.json on it, searches "
                                  "on it and re-ranks the best; its plan prints each stage's "
                                  "cost first")
    rerank: int = setting(-1, at_least=-1, rerun=True,
                          help="train the K best feasible architectures standalone (--rerank-"
                               "steps, --rerank-seeds) and record the winner, which nas export "
                               f"--best then means (0: no reranking; -1: {BUILT_RERANK} with "
                               "--estimator predictor, else 0)")
    rerank_steps: int = setting_of(RerankConfig, "steps", rerun=True)
    rerank_seeds: int = setting_of(RerankConfig, "seeds", rerun=True)
    reference_archs: int = setting(REFERENCE_ARCHS, at_least=5,
                                   help="--estimator predictor: architectures of the reference "
                                        "it trains (at least 5), one seed each, in the FLOPs "
                                        "band 0.8-1.0 x --budget (ridge tau against a 3-seed "
                                        "CIFAR-10 reference: 0.43 at 30, 0.60 at 60, 0.65 at "
                                        "120, 0.66 at 223, 0.63 at 292; at 60 it ranks far "
                                        "better than the supernet, 0.21, and each doubling "
                                        "costs as much training again)")
    reference_epochs: float = setting_of(ReferenceConfig, "epochs",
                                         help="--estimator predictor: epochs of each "
                                              "reference architecture's standalone training")
    reference: str = setting("", path=a_path, metavar="DIR",
                             help="--estimator predictor: fit on this reference (nas "
                                  "reference -o DIR) of the search's space and data, as it "
                                  "is (nothing is trained into it); default: train one in the "
                                  "cache RUN/../references/SPACE-DATA-HASH/ (keyed by space, "
                                  "data and recipe), reused by every run and budget")
    supernet: str = setting("", path=a_path,
                            help="reuse a trained supernet (its .pt, its directory, or a "
                                 "search run that trained it) instead of training one")
    supernet_steps: int = setting(200, at_least=1,
                                  help="steps of supernet training when none is given")
    resolution: int = setting(0, at_least=0, help="proxy resolution (0: the data's own)")
    recalibration_batches: int = setting(4, at_least=0,
                                         help="BN recalibration batches per trial")
    val_images: int = setting(1000, at_least=1, help="validation images scored per trial")
    latency_repeats: int = setting(3, at_least=1, help="timed runs per measured latency "
                                                       "(the fastest is kept)")
    latency: str = setting("torch", pattern=LATENCY_SPEC,
                           metavar="{torch,onnxruntime,onnxruntime-int8,lut:PATH}",
                           path=lambda v: ("lut:", v[4:]) if v.startswith("lut:") else None,
                           expected="torch, onnxruntime, onnxruntime-int8 or lut:PATH",
                           help="measure each trial in torch eager, ONNX Runtime, or ONNX "
                                "Runtime on the network quantised to int8 (static, calibrated "
                                "on training images), or lut:PATH to predict from `nas "
                                "latency build`")
    latency_threads: int = setting(1, at_least=1, help="threads of a measured latency (a "
                                                       "table keeps those it was built with)")
    evolution_population: int = setting(500, at_least=2,
                                        help="--sampler evolution: architectures per "
                                             "generation")
    evolution_candidates: int = setting(100_000, at_least=2,
                                        help="--sampler evolution: architectures scored in "
                                             "all, first population included (generations "
                                             "= the rest / children per generation)")
    evolution_parents: float = setting(0.25, above=0, below=1,
                                       help="--sampler evolution: share of each generation "
                                            "kept as parents (the best distinct ones)")
    evolution_mutation: float = setting(0.1, at_least=0, at_most=1,
                                        help="--sampler evolution: probability that a "
                                             "mutation redraws each decision")
    evolution_rescore: int = setting(300, at_least=1,
                                     help="--sampler evolution with a predictor that takes "
                                          "NASWOT: the best this many (and the front) are "
                                          "rescored with it; the evolution runs without it")
    seed: int = setting(0, help="seed of the sampler and the supernet training")
    device: str = setting("auto", pattern=r"auto|cpu|cuda(:\d+)?", metavar="{auto,cpu,cuda}",
                          expected="auto, cpu, cuda or cuda:N",
                          help="auto (CUDA when present), cpu, cuda or cuda:N")
    storage: str = setting("", path=storage_location,
                           help="postgresql://USER@HOST/DB (any Optuna RDB URL) or "
                                "journal:FILE, shared by all workers of a study (default "
                                "sqlite:///RUN/study.db)")
    study: str = setting(STUDY_NAME, pattern=r".{1,200}", expected="a name of 1 to 200 characters",
                         help="study name in the storage (workers with the same name "
                              "cooperate)")
    workers: int = setting(1, at_least=1, rerun=True,
                           help="search processes on this machine (needs a shared --storage)")

    def default_run_dir(self) -> str:
        """Where a search writes without ``-o``: ``runs/SPACE-BUDGET-OBJECTIVE[-SAMPLER]``."""
        sampler = "" if self.sampler == "auto" else f"-{self.sampler}"
        space = os.path.splitext(os.path.basename(self.space))[0]
        return f"runs/{space}-{self.budget / 1e6:g}M-{self.objective}{sampler}"

    def check(self) -> None:
        if self.latency == "measure":  # its name before ONNX Runtime: old runs continue
            self.latency = "torch"
        if self.objective == "reward" and self.estimator == "naswot":
            raise UsageError("--estimator naswot gives scores that rank architectures but are "
                             "not accuracies, so they cannot enter the reward: use "
                             "--objective pareto, or a predictor that takes NASWOT as a feature")
        if self.reference and self.estimator != "predictor":
            raise UsageError("--reference is what --estimator predictor fits on; with a "
                             "predictor file of your own, nas predictor fit REFERENCE made it")
        if self.sampler_kind == "evolution":
            self._check_evolution()
        if (self.search_workers > 1
                and (not self.storage or self.storage.startswith("sqlite"))):
            raise UsageError("--workers needs a storage that several processes can share: "
                             "SQLite (the default RUN/study.db) is not safe for that. Use "
                             "--storage postgresql://USER@HOST/DB or --storage journal:FILE")

    def _check_evolution(self) -> None:
        """What ``--sampler evolution`` cannot do: it prices and scores ~10^5 candidates
        in one process and maximises the reward."""
        if not self.estimator.startswith("predictor"):
            raise UsageError("--sampler evolution scores ~10^5 candidates and needs a fast "
                             "estimator: --estimator predictor (or predictor:FILE); "
                             f"--estimator {self.estimator} takes ~0.3-1 s per architecture")
        if self.objective != "reward":
            raise UsageError("--sampler evolution maximises the reward: use --objective "
                             "reward (it records the Pareto front of what it scored too)")
        if not self.latency.startswith("lut:") and (self.gamma or self.latency_budget_ms):
            raise UsageError("--sampler evolution prices every candidate (~10^5) and cannot "
                             f"measure each one's latency (--latency {self.latency}): pass "
                             "--latency lut:FILE (nas latency build), or --gamma 0 without "
                             "--latency-budget to leave latency out of the search (the "
                             "recorded trials are then measured)")
        if self.workers > 1 and self.estimator != "predictor":
            raise UsageError("--sampler evolution runs in one process (10^5 candidates in "
                             "about a minute): leave out --workers")
        if self.evolution_candidates < self.evolution_population:
            raise UsageError("--evolution-candidates must be at least --evolution-population "
                             f"({self.evolution_population}), got {self.evolution_candidates}")

    @property
    def sampler_kind(self) -> str:
        """The sampler ``auto`` stands for: NSGA-II for the front; for the reward, evolution
        on the predictor ``--estimator predictor`` fits when every candidate's reward can be
        priced (latency from a ``lut:`` table, or left out: ``--gamma 0`` and no latency
        budget), else TPE."""
        if self.sampler != "auto":
            return self.sampler
        if self.objective == "pareto":
            return "nsga2"
        return "evolution" if self.estimator == "predictor" and self.prices_latency else "tpe"

    @property
    def prices_latency(self) -> bool:
        """Whether every candidate's reward can be priced without measuring it."""
        return self.latency.startswith("lut:") or not (self.gamma or self.latency_budget_ms)

    @property
    def search_workers(self) -> int:
        """Processes of the search itself: with ``--estimator predictor`` and the
        evolution, ``--workers`` shard the reference and the search runs in one."""
        return 1 if self.sampler_kind == "evolution" else self.workers

    @property
    def rerank_top(self) -> int:
        """How many the final re-ranking trains (``--rerank -1``: by the estimator)."""
        if self.rerank >= 0:
            return self.rerank
        return BUILT_RERANK if self.estimator == "predictor" else 0
