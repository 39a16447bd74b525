"""StaticSpaceTPESampler against its oracle, Optuna's multivariate TPESampler."""

import optuna
import pytest

import nas
from nas.search import suggest_arch
from nas.static_tpe import StaticSpaceTPESampler

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _distributions(space):
    return {d.name: optuna.distributions.CategoricalDistribution(list(d.labels))
            for d in space.decisions}


def _suggestions(sampler, space, n, objective=None):
    study = optuna.create_study(sampler=sampler)
    out = []
    for i in range(n):
        trial = study.ask()
        arch = suggest_arch(trial, space)
        out.append(trial.params)
        if i == 3:  # a failed trial and a pruned one in the history too
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        elif i == 5:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, (objective or nas.count_cost)(arch).flops / 1e9)
    return out


def test_same_suggestions_as_optuna_tpe():
    space = nas.load_space("mixnet_300m")
    kwargs = dict(seed=3, n_startup_trials=4)
    want = _suggestions(optuna.samplers.TPESampler(multivariate=True, **kwargs), space, 16)
    got = _suggestions(StaticSpaceTPESampler(_distributions(space), **kwargs), space, 16)
    assert got == want
    assert len({tuple(p.values()) for p in got}) == 16  # it did explore


def test_falls_back_when_trials_suggest_other_parameters():
    space = nas.load_space("mixnet_300m")
    extra = {"other": optuna.distributions.FloatDistribution(0, 1)}

    def run(sampler):
        study = optuna.create_study(sampler=sampler)
        seen = []
        for i in range(8):
            trial = study.ask()
            suggest_arch(trial, space)
            x = trial.suggest_float("other", 0, 1) if i % 2 else 0.5
            seen.append(dict(trial.params))
            study.tell(trial, x)
        return seen

    kwargs = dict(seed=1, n_startup_trials=2)
    assert run(StaticSpaceTPESampler({**_distributions(space), **extra}, **kwargs)) == run(
        optuna.samplers.TPESampler(multivariate=True, **kwargs))


@pytest.mark.parametrize("n_startup", [1, 10])
def test_startup_is_random_like_optuna(n_startup):
    space = nas.load_space("mixnet_300m")
    a = _suggestions(optuna.samplers.TPESampler(multivariate=True, seed=0,
                                                n_startup_trials=n_startup), space, 3)
    b = _suggestions(StaticSpaceTPESampler(_distributions(space), seed=0,
                                           n_startup_trials=n_startup), space, 3)
    assert a == b
