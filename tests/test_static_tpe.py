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


SMALL = {f"d{i}": optuna.distributions.CategoricalDistribution([0, 1, 2]) for i in range(4)}


def _run_small(sampler, prefill, n=6, study=None):
    study = study or optuna.create_study(sampler=sampler)
    for t in prefill:
        study.add_trial(t)
    out = []
    for i in range(n):
        trial = study.ask()
        for name, d in SMALL.items():
            trial.suggest_categorical(name, d.choices)
        out.append(dict(trial.params))
        study.tell(trial, sum(trial.params.values()) + 0.1 * i)
    return out


def _done(value, distributions):
    return optuna.trial.create_trial(params={k: value for k in SMALL}, value=4.0 * value,
                                     distributions=distributions)


def test_same_as_optuna_when_an_added_trial_has_other_choices():
    """add_trial does not check distributions: Optuna then drops that parameter."""
    other = {**SMALL, "d3": optuna.distributions.CategoricalDistribution([2, 1, 0])}
    prefill = [_done(i % 3, SMALL) for i in range(3)] + [_done(i % 3, other) for i in range(3)]
    kwargs = dict(seed=0, n_startup_trials=2)
    assert _run_small(StaticSpaceTPESampler(SMALL, **kwargs), prefill) == _run_small(
        optuna.samplers.TPESampler(multivariate=True, **kwargs), prefill)


def test_same_as_optuna_when_reused_on_a_second_study():
    def twice(sampler):
        _run_small(sampler, [_done(0, SMALL) for _ in range(4)])
        return _run_small(sampler, [_done(2, SMALL) for _ in range(4)])

    kwargs = dict(seed=0, n_startup_trials=2)
    assert twice(StaticSpaceTPESampler(SMALL, **kwargs)) == twice(
        optuna.samplers.TPESampler(multivariate=True, **kwargs))


@pytest.mark.parametrize("option", ["group", "multivariate"])
def test_refuses_options_it_does_not_implement(option):
    with pytest.raises(TypeError, match=option):
        StaticSpaceTPESampler(SMALL, **{option: True})
