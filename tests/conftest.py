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
