"""Package faces whose heavy names are imported on first use (PEP 562).

A face (``nas/latency/__init__.py``, ...) keeps its light names (constants, small functions)
and lists the others with the submodule that defines each:

    __getattr__, __dir__ = lazy_names(__name__, {"MeasuredLatency": "measure", ...})

``from nas.latency import MeasuredLatency`` works as before and imports ``measure`` (and
torch) then; ``from nas.latency import LATENCY_SPEC`` imports nothing more. This is what
lets ``nas report`` and ``nas --help`` start without importing torch, whose import alone
takes 1-2 s, though their settings name latency backends, estimators and datasets.
"""

from __future__ import annotations

import importlib
import sys
from typing import Callable, Dict, List, Tuple

__all__ = ["lazy_names"]


def lazy_names(package: str, names: Dict[str, str]) -> Tuple[Callable, Callable]:
    """The module ``__getattr__`` and ``__dir__`` of ``package``'s face.

    Args:
        package: the face's ``__name__``.
        names: public name -> the submodule of ``package`` that defines it (relative, no dot).

    Returns:
        ``(__getattr__, __dir__)``: ``__getattr__(name)`` imports the submodule, caches the
        value in the face (later lookups are plain attribute reads) and returns it; an
        unlisted name raises AttributeError, as for any module.
    """

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{names[name]}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> List[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
