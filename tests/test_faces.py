"""Every package face's public names resolve, the lazily imported ones (nas/lazy.py)
included: a name listed with the wrong submodule fails here, not in a user's command.
~2 s in a fresh interpreter (it imports torch); less inside the suite."""

import importlib
import pkgutil

import pytest

import nas

FACES = ["nas"] + [f"nas.{m.name}" for m in pkgutil.iter_modules(nas.__path__) if m.ispkg]


@pytest.mark.parametrize("face", FACES)
def test_every_public_name_of_a_face_resolves(face):
    module = importlib.import_module(face)
    for name in vars(module).get("__all__", ()):  # nas.ops has no face
        assert getattr(module, name) is not None, f"{face}.{name}"
        assert name in dir(module), f"{face}.{name}"
    with pytest.raises(AttributeError):
        _ = module.no_such_name

