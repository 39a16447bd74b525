"""Evolutionary search on a fast estimator: ``nas search --sampler evolution``.

After the evolution of once-for-all (Cai et al., "Once-for-All: Train One Network and
Specialize it for Efficient Deployment", ICLR 2020; ``EvolutionFinder`` in
mit-han-lab/once-for-all): a population of architectures within the budget; each
generation keeps the best fraction as parents and fills the rest with children, half of
them a parent mutated (:meth:`~nas.space.SearchSpace.mutate`: each decision redrawn with
probability ``mutation_prob``), half two parents crossed
(:meth:`~nas.space.SearchSpace.crossover`). Every child is priced before it is scored:
its FLOPs counted analytically and, with a latency model, its latency predicted; one over
the FLOPs or latency budget is never scored, and is replaced by another attempt (as
OFA's ``mutate_sample`` / ``crossover_sample`` retry until the constraint holds). Each
generation's children are scored as one batch. Two changes from OFA: the parents are the
best *distinct* architectures (a population that converges would otherwise make its
parents copies of one network), and the fitness is the search's reward, not the
accuracy alone.

It scores ~10^5 candidates in under a minute on one core when the estimator is an
architecture-only predictor (``--estimator predictor:FILE``; ``experiments/bench/
evolution.py`` says where the time goes). A predictor that also takes slower scores
(NASWOT: a forward pass each) works in two stages: the evolution runs on the same
predictor refitted on the architecture encoding alone, and the full predictor rescores
the best ``--evolution-rescore`` architectures and the front.

What the study records (:func:`queue_evolution`): ``--trials`` of the candidates, run
through the usual trial loop as queued trials, so that they carry the parameters and
user attributes every other sampler's trials carry and ``nas report`` / ``nas export``
read them unchanged: the best by reward, then members of the Pareto front of everything
scored (accuracy up, FLOPs down, latency down), then the rest by reward. The study's
user attribute ``evolution`` holds what the evolution did (candidates scored, time per
phase, best reward per generation).

A killed search restarts cleanly: the evolution is deterministic for a seed (the same
candidates, scores and picks), so a rerun evolves again (under a minute) and queues the
picks the study does not hold yet; trials a killed process left running are retried as
for every sampler.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..arch import Architecture
from ..cost import count_cost
from ..errors import RunError
from ..space import SearchSpace, available_spaces, load_space
from .config import SearchConfig

__all__ = ["Candidate", "Evolution", "evolve", "pick", "queue_evolution", "MUTATION_SHARE",
           "TRIES"]

#: Share of each generation's children made by mutation (the rest by crossover): OFA's
#: ``mutation_ratio``.
MUTATION_SHARE = 0.5
#: Attempts at a child within the budget before the parent itself is taken again.
TRIES = 100

Score = Callable[[Sequence[Architecture]], Sequence[float]]


@dataclass(frozen=True)
class Candidate:
    """One scored architecture: FLOPs at the target input, latency in ms (0 when the
    search has no latency model), estimated accuracy in [0, 1] and reward."""

    arch: Architecture
    flops: int
    latency_ms: float
    accuracy: float
    reward: float


@dataclass
class Evolution:
    """What :func:`evolve` found, and what it cost.

    Attributes:
        population: the final population, distinct, best reward first.
        front: the non-dominated candidates of everything scored (accuracy up, FLOPs down,
            latency down), by FLOPs.
        pool: the ``keep`` best distinct candidates by reward of everything scored.
        generated: candidates made (sampled, mutated, crossed), over the budget included.
        scored: candidates within the budget, scored (duplicates included).
        distinct: distinct architectures among them.
        over_budget: ``{"flops": n, "latency": n}``: candidates made and not scored.
        generations: generations after the first population.
        seconds: wall time per phase: ``space`` (sample, mutate, crossover), ``cost``
            (count_cost), ``latency`` (the table), ``score`` (the estimator, in batches),
            ``select`` (parents, front, pool), ``total``.
        history: the best reward after each generation (the first population first).
    """

    population: List[Candidate]
    front: List[Candidate]
    pool: List[Candidate]
    generated: int
    scored: int
    distinct: int
    over_budget: Dict[str, int]
    generations: int
    seconds: Dict[str, float]
    history: List[float] = field(default_factory=list)

    def summary(self) -> Dict[str, object]:
        """Plain numbers for the study's user attribute ``evolution``."""
        total = self.seconds["total"]
        return {"generated": self.generated, "scored": self.scored, "distinct": self.distinct,
                "over_budget": dict(self.over_budget), "generations": self.generations,
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "candidates_per_s": round(self.scored / total, 1) if total else None,
                "best_reward_per_generation": [round(r, 6) for r in self.history]}


def _nondominated(acc: np.ndarray, flops: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Mask of the points no other point dominates (accuracy up, FLOPs and latency
    down). Distinct points with equal values all stay."""
    n = len(acc)
    keep = np.ones(n, dtype=bool)
    for start in range(0, n, 256):  # blocks bound the [block, n] comparison matrices
        a, f, t = acc[start:start + 256, None], flops[start:start + 256, None], \
            lat[start:start + 256, None]
        no_worse = (acc[None] >= a) & (flops[None] <= f) & (lat[None] <= t)
        better = (acc[None] > a) | (flops[None] < f) | (lat[None] < t)
        keep[start:start + 256] = ~np.any(no_worse & better, axis=1)
    return keep


def evolve(space: SearchSpace, score: Score, budget: int, *, beta: float = 0.0,
           gamma: float = 0.0, latency: Optional[Callable[[Architecture], float]] = None,
           latency_budget_ms: float = 0.0, population: int = 500,
           candidates: int = 100_000, parents: float = 0.25, mutation_prob: float = 0.1,
           seed: int = 0, start: Sequence[Architecture] = (), keep: int = 0) -> Evolution:
    """Evolve architectures of ``space`` within ``budget`` towards the best reward.

    Args:
        space: the space (its ``sample``, ``mutate`` and ``crossover``).
        score: estimated accuracies in [0, 1] of a list of architectures, one per
            architecture, in order (called once per generation with all its children).
        budget: FLOPs limit at the space's target input; over it, never scored.
        beta, gamma: the reward ``acc - beta ln(FLOPs) - gamma latency_ms``.
        latency: milliseconds of an architecture (a lookup table: it is asked for every
            candidate within the FLOPs budget); None: no latency (0 in the reward).
        latency_budget_ms: latency limit (0: none); over it, never scored.
        population: architectures per generation.
        candidates: architectures to score in all (the first population included); the
            last generation is cut to reach it exactly.
        parents: share of the population kept as parents, in (0, 1).
        mutation_prob: probability that a mutation redraws each decision.
        seed: seeds every random choice: the same seed, the same evolution.
        start: architectures to put in the first population when within the budgets (the
            search's MixNet-S/M), before the random ones.
        keep: how many of the best distinct candidates to return in ``pool``.

    Raises:
        ValueError: a setting out of range.
        RunError: nothing the space holds fits the budgets (a latency budget below its
            smallest architecture's latency).
    """
    if population < 2 or candidates < population or not 0 < parents < 1:
        raise ValueError("need population >= 2, candidates >= population and parents in "
                         f"(0, 1), got {population}, {candidates}, {parents}")
    rng = random.Random(seed)
    spent = dict.fromkeys(("space", "cost", "latency", "score", "select"), 0.0)
    over = {"flops": 0, "latency": 0}
    made = [0]
    began = time.perf_counter()
    clock = time.perf_counter

    def priced(arch: Architecture) -> Optional[Tuple[int, float]]:
        """``(FLOPs, ms)`` of ``arch`` when within the budgets, else None."""
        made[0] += 1
        t0 = clock()
        flops = count_cost(arch).flops
        t1 = clock()
        spent["cost"] += t1 - t0
        if flops > budget:
            over["flops"] += 1
            return None
        ms = 0.0
        if latency is not None:
            ms = latency(arch)
            spent["latency"] += clock() - t1
            if latency_budget_ms and ms > latency_budget_ms:
                over["latency"] += 1
                return None
        return flops, ms

    def child(make: Callable[[], Architecture], parent: Tuple[Architecture, int, float]):
        """``(architecture, FLOPs, ms)`` of a child within the budgets; after
        :data:`TRIES` attempts, ``parent`` again (a population near the edge of the budget
        must not stall)."""
        for _ in range(TRIES):
            t0 = clock()
            arch = make()
            spent["space"] += clock() - t0
            price = priced(arch)
            if price is not None:
                return arch, price[0], price[1]
        return parent

    # ---------------------------------------------------------------- first population
    archs: List[Architecture] = []
    flops: List[int] = []
    lat: List[float] = []
    for arch in start:
        if len(archs) < population and space.contains(arch):
            price = priced(arch)
            if price is not None:
                archs.append(arch), flops.append(price[0]), lat.append(price[1])
    misses = 0
    while len(archs) < population:
        t0 = clock()
        arch = space.sample(rng)
        spent["space"] += clock() - t0
        price = priced(arch)
        if price is not None:
            archs.append(arch), flops.append(price[0]), lat.append(price[1])
            continue
        misses += 1
        if misses >= TRIES * population and archs:
            # a budget that uniform samples rarely meet: fill with mutants of those found
            found = len(archs)
            while len(archs) < population:
                p = rng.randrange(found)
                a, f, t = child(lambda a=archs[p]: space.mutate(a, rng, mutation_prob),
                                (archs[p], flops[p], lat[p]))
                archs.append(a), flops.append(f), lat.append(t)
        elif misses >= TRIES * population:
            # not one uniform sample fits: start from the space's smallest architecture
            smallest = space.extreme_arch(largest=False)
            price = priced(smallest)
            if price is None:
                raise RunError(f"none of {TRIES * population:,} random architectures of "
                               f"{space.name} fits the budgets, nor its smallest one "
                               f"({count_cost(smallest).flops:,} FLOPs"
                               + (f", {latency(smallest):.1f} ms" if latency else "")
                               + "): raise the budgets")
            archs.append(smallest), flops.append(price[0]), lat.append(price[1])

    def scored(batch: List[Architecture]) -> np.ndarray:
        t0 = clock()
        values = np.asarray(score(batch), dtype=float)
        spent["score"] += clock() - t0
        if values.shape != (len(batch),) or not np.all(np.isfinite(values)):
            raise ValueError("the estimator must give one finite score per architecture")
        return values

    def rewards(acc: np.ndarray, f: Sequence[int], t: Sequence[float]) -> np.ndarray:
        return (acc - beta * np.log(np.asarray(f, dtype=float))
                - gamma * np.asarray(t, dtype=float))

    acc = scored(archs)
    reward = rewards(acc, flops, lat)
    n_scored = len(archs)
    seen = set(archs)
    # everything scored, by architecture (insertion order breaks ties: no set order
    # decides anything, so the evolution does not depend on hash seeds)
    table: Dict[Architecture, Candidate] = {}
    front: List[Candidate] = []
    pool: List[Candidate] = []

    def absorb(batch, f, t, a, r) -> None:
        """Add a generation's scored children to the front and the pool."""
        nonlocal front, pool
        t0 = clock()
        new = []
        for i, arch in enumerate(batch):
            if arch not in table:
                table[arch] = Candidate(arch, int(f[i]), float(t[i]), float(a[i]),
                                        float(r[i]))
                new.append(table[arch])
        both = front + new
        if both:
            mask = _nondominated(np.array([c.accuracy for c in both]),
                                 np.array([c.flops for c in both], dtype=float),
                                 np.array([c.latency_ms for c in both]))
            front = [c for c, k in zip(both, mask) if k]
        if keep:
            pool = sorted(pool + new, key=lambda c: -c.reward)[:keep]  # stable: ties by age
        table.clear()  # only this generation's duplicates need it
        table.update((c.arch, c) for c in front + pool)
        spent["select"] += clock() - t0

    absorb(archs, flops, lat, acc, reward)
    history = [float(reward.max())]
    n_parents = max(1, int(round(population * parents)))
    generations = 0
    while n_scored < candidates:
        t0 = clock()
        order = np.argsort(-reward, kind="stable")
        chosen, taken = [], set()
        for i in order:
            if archs[i] not in taken:
                taken.add(archs[i])
                chosen.append(int(i))
                if len(chosen) == n_parents:
                    break
        spent["select"] += clock() - t0
        n_children = min(population - len(chosen), candidates - n_scored)
        n_mutants = int(round(n_children * MUTATION_SHARE))
        elite = [(archs[i], flops[i], lat[i]) for i in chosen]
        kids: List[Tuple[Architecture, int, float]] = []
        for _ in range(n_mutants):
            p = elite[rng.randrange(len(elite))]
            kids.append(child(lambda a=p[0]: space.mutate(a, rng, mutation_prob), p))
        for _ in range(n_children - n_mutants):
            p, q = elite[rng.randrange(len(elite))], elite[rng.randrange(len(elite))]
            kids.append(child(lambda a=p[0], b=q[0]: space.crossover(a, b, rng), p))
        batch = [k[0] for k in kids]
        k_flops = [k[1] for k in kids]
        k_lat = [k[2] for k in kids]
        k_acc = scored(batch)
        k_reward = rewards(k_acc, k_flops, k_lat)
        n_scored += len(batch)
        seen.update(batch)
        absorb(batch, k_flops, k_lat, k_acc, k_reward)
        archs = [e[0] for e in elite] + batch
        flops = [e[1] for e in elite] + k_flops
        lat = [e[2] for e in elite] + k_lat
        acc = np.concatenate([acc[chosen], k_acc])
        reward = np.concatenate([reward[chosen], k_reward])
        generations += 1
        history.append(float(reward.max()))
    final: List[Candidate] = []
    taken = set()
    for i in np.argsort(-reward, kind="stable"):
        if archs[i] not in taken:
            taken.add(archs[i])
            final.append(Candidate(archs[i], int(flops[i]), float(lat[i]), float(acc[i]),
                                   float(reward[i])))
    spent["total"] = time.perf_counter() - began
    return Evolution(final, sorted(front, key=lambda c: (c.flops, -c.accuracy)), pool,
                     made[0], n_scored, len(seen), over, generations, spent, history)


def pick(candidates: Sequence[Candidate], n: int) -> List[Tuple[str, Candidate]]:
    """``n`` of ``candidates`` (distinct) for the study, as ``(role, candidate)``: the best
    by reward (``best``); then members of their Pareto front (``front``), at most half of
    ``n``, spread evenly over the front's FLOPs when it has more; then the rest by reward
    (``population``)."""
    ranked = sorted(candidates, key=lambda c: -c.reward)
    if not ranked or n < 1:
        return []
    mask = _nondominated(np.array([c.accuracy for c in ranked]),
                         np.array([c.flops for c in ranked], dtype=float),
                         np.array([c.latency_ms for c in ranked]))
    front = sorted((c for c, k in zip(ranked[1:], mask[1:]) if k),
                   key=lambda c: (c.flops, -c.accuracy))
    room = min(len(front), n // 2, n - 1)
    if room < len(front):  # evenly spaced along the front, its two ends included
        front = [front[round(i * (len(front) - 1) / max(1, room - 1))] for i in range(room)]
    out = [("best", ranked[0])] + [("front", c) for c in front[:room]]
    chosen = {c.arch for _, c in out}
    out += [("population", c) for c in ranked if c.arch not in chosen][:n - len(out)]
    return out[:n]


def _stages(estimator):
    """``(score of stage 1, score of stage 2 or None)``: an architecture-only predictor
    scores every candidate; one that also takes slower scores (NASWOT) is refitted
    without them for the evolution and rescores its best in a second stage."""
    from ..estimators import PredictorEstimator

    if not isinstance(estimator, PredictorEstimator):
        raise TypeError("the evolution needs a predictor (--estimator predictor:FILE)")
    if not estimator.predictor.extra:
        return estimator.score, None
    fast = PredictorEstimator(estimator.path, architecture_only=True)
    return fast.score, estimator.score


def _presets(space: SearchSpace) -> List[Tuple[str, Architecture]]:
    """MixNet-S/M as ``(name, architecture)`` where they are points of ``space`` (the
    first population gets them when they fit the budgets, as the other samplers' first
    trials)."""
    from .objective import PRESETS

    found = []
    for preset in PRESETS:
        if preset in available_spaces():
            arch = load_space(preset).sample(0)
            if space.contains(arch):
                found.append((preset, arch))
    return found


def queue_evolution(config: SearchConfig, study, space: SearchSpace, estimator, latency,
                    log: Callable[[str], None] = print) -> int:
    """Evolve (unless the study already holds ``config.trials`` trials) and queue the
    picks the study does not hold yet; the trial loop then records them.

    Args:
        config: the search's settings (``--evolution-*``, budgets, reward, seed).
        study: the run's study (the presets may already be queued in it).
        space: the space searched.
        estimator: the search's estimator (a :class:`~nas.estimators.PredictorEstimator`).
        latency: the search's latency model; a table prices every candidate, a measured
            backend only the recorded ones (:meth:`SearchConfig.check` refuses it when the
            reward or a latency budget would need it for every candidate).
        log: where to say what it did.

    Returns:
        The number of complete trials the study should hold: ``config.trials``, or fewer
        when the evolution met fewer distinct architectures.
    """
    from optuna.trial import TrialState

    from .objective import labels_of, reward

    states = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
    trials = study.get_trials(deepcopy=False, states=states)
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    if complete >= config.trials:
        return config.trials
    first, second = _stages(estimator)
    table = latency if getattr(latency, "source", "") == "table" else None
    presets = _presets(space)
    evo = evolve(space, first, config.budget, beta=config.beta, gamma=config.gamma,
                 latency=table.predict if table is not None else None,
                 latency_budget_ms=config.latency_budget_ms,
                 population=config.evolution_population,
                 candidates=config.evolution_candidates, parents=config.evolution_parents,
                 mutation_prob=config.evolution_mutation, seed=config.seed,
                 start=[arch for _, arch in presets],
                 keep=max(config.trials, config.evolution_rescore))
    seconds = evo.seconds
    log(f"evolution: {evo.scored:,} candidates scored ({evo.distinct:,} distinct; "
        f"{evo.over_budget['flops']:,} over the FLOPs budget"
        + (f", {evo.over_budget['latency']:,} over the latency budget"
           if config.latency_budget_ms else "")
        + f", never scored) in {evo.generations} generations, {seconds['total']:.1f} s "
          f"({evo.scored / max(seconds['total'], 1e-9):,.0f}/s; space ops "
          f"{seconds['space']:.1f} s, cost {seconds['cost']:.1f} s, latency "
          f"{seconds['latency']:.1f} s, estimator {seconds['score']:.1f} s)")
    finalists: Dict[Architecture, Candidate] = {}
    for c in evo.pool + evo.front + evo.population:
        finalists.setdefault(c.arch, c)
    chosen = list(finalists.values())
    summary = evo.summary()
    if second is not None:
        # the slower features: the best few hundred by the first stage and its front
        best = {c.arch: c for c in evo.pool[:config.evolution_rescore]}
        best.update((c.arch, c) for c in evo.front)
        chosen = list(best.values())
        started = time.perf_counter()
        acc = second([c.arch for c in chosen])
        chosen = [Candidate(c.arch, c.flops, c.latency_ms, float(a),
                            reward(float(a), c.flops, c.latency_ms, config.beta,
                                   config.gamma)) for c, a in zip(chosen, acc)]
        summary["rescored"] = len(chosen)
        summary["rescore_s"] = round(time.perf_counter() - started, 3)
        log(f"evolution: the full predictor rescored {len(chosen)} of them in "
            f"{summary['rescore_s']:.1f} s")
    if table is None:
        summary["latency"] = "not searched: measured for the recorded trials only"
    study.set_user_attr("evolution", summary)
    # what the study holds or has queued (warm_start queues the presets by name)
    held = {t.user_attrs.get("arch") for t in trials}
    names = {t.user_attrs.get("preset") for t in trials}
    held |= {str(arch) for name, arch in presets if name in names}
    queued = 0
    room = config.trials - len(trials)
    for rank, (role, c) in enumerate(pick(chosen, config.trials)):
        if queued >= room:
            break
        if str(c.arch) in held:
            continue
        study.enqueue_trial(labels_of(space, c.arch), user_attrs={
            "evolution": role, "evolution_rank": rank, "arch": str(c.arch)})
        queued += 1
    if len(trials) + queued < config.trials:
        log(f"evolution: only {len(trials) + queued} distinct candidates to record "
            f"(--trials {config.trials})")
    return len(trials) + queued
