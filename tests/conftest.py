"""Shared fixtures: the space registry that drives the parametrized tests."""

from pathlib import Path

import pytest

import nas

TESTS = Path(__file__).parent
# Every shipped space plus test-only spaces that exercise the rest of the grammar.
SPACE_PATHS = {**nas.available_spaces(),
               **{p.stem: p for p in sorted((TESTS / "spaces").glob("*.yaml"))}}
SPACE_NAMES = sorted(SPACE_PATHS)


@pytest.fixture(scope="session")
def spaces():
    return {name: nas.load_space(path) for name, path in SPACE_PATHS.items()}


@pytest.fixture(params=SPACE_NAMES)
def space(request, spaces):
    return spaces[request.param]


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server for the session (skipped without Debian's package)."""
    from servers import INITDB, start_postgres

    if not INITDB:
        pytest.skip("Debian postgresql is not installed")
    url, stop = start_postgres()
    yield url
    stop()


@pytest.fixture(scope="session")
def tiny_supernet(tmp_path_factory):
    """A briefly trained supernet of tests/spaces/tiny.yaml (its checkpoint path)."""
    from nas.train import TrainConfig, train_supernet

    path = tmp_path_factory.mktemp("tiny-sn")
    train_supernet(TrainConfig(space=str(TESTS / "spaces" / "tiny.yaml"), steps=8,
                               checkpoint_every=10**6), path, progress=False)
    return str(path / "supernet.pt")


@pytest.fixture(scope="session")
def search_run_dir(tmp_path_factory):
    """A finished tiny search (Fashion-MNIST) whose trials used the supernet's own BN
    statistics, for the report, export and diagnose tests. 40 supernet steps: at 8 its
    accuracies were all but constant (7.5% for nearly every architecture), so whether
    `nas diagnose` found a rank correlation to report hung on one image."""
    from nas.search import SearchConfig, run_search

    path = tmp_path_factory.mktemp("search") / "run"
    config = SearchConfig(budget=8_000_000, space=str(TESTS / "spaces" / "tiny.yaml"), trials=6,
                          supernet_steps=40, val_images=200, recalibration_batches=0,
                          latency_repeats=1)
    run_search(config, path, progress=False, log=lambda m: None)
    return path


@pytest.fixture(scope="session")
def synthetic_run_dir(tmp_path_factory):
    """A 60-trial synthetic run of mixnet_300m (tests/synthetic.py) whose accuracy is driven
    by decision s2.b0.k, beside its random-search sibling RUN-random (40 trials)."""
    from synthetic import synthetic_run

    base = tmp_path_factory.mktemp("synthetic")
    synthetic_run(base / "run-random", 40, budget=400_000_000, sampler="random", seed=1)
    return synthetic_run(base / "run", 60, budget=400_000_000, planted="s2.b0.k")
