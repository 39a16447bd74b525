"""The supernet's score: validation accuracy of the subnet after BatchNorm recalibration,
optionally averaged over several supernets (other seeds, other checkpoints).

A subnet's BatchNorm statistics in the supernet are shared with every other subnet and fit
none of them; they are re-estimated on ``calib_images`` training images (OFA recalibrates on
2,000) before the subnet is scored on ``val_images`` validation images. Two supernets
trained with different seeds rank the same architectures differently (reference/RANKING.md:
tau -0.28 between two 800-step supernets); averaging their scores attacks that error term.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

from ..arch import Architecture
from ..evaluate import calibration_batches, evaluate
from .base import Estimator

__all__ = ["SupernetEstimator"]


def _keep(loader, batches: int) -> dict:
    """``keep=batches`` for a streamed loader (the in-memory one holds everything anyway)."""
    return {"keep": batches} if hasattr(loader, "keep") else {}


class SupernetEstimator(Estimator):
    """Mean over ``runs`` of the recalibrated subnet's validation accuracy.

    Args:
        runs: loaded supernets (:class:`nas.train.SupernetRun`) of the same space and data.
        calib_images: training images the BatchNorm statistics are re-estimated on (rounded
            up to whole batches of the supernet's training batch size; 0 keeps the supernet's).
        val_images: validation images scored (the first of the seeded validation carve).
        resolution: proxy resolution to score at (None: what the supernet trained at).

    Cost: per architecture and supernet, one extraction, ``calib_images`` forward passes in
    training mode and ``val_images`` in evaluation mode.
    """

    name = "supernet"
    is_accuracy = True

    def __init__(self, runs: Sequence, calib_images: int = 2048, val_images: int = 1000,
                 resolution: Optional[int] = None):
        import torch

        if not runs:
            raise ValueError("a supernet estimator needs at least one supernet")
        self.runs = list(runs)
        self.calib_images, self.val_images = calib_images, val_images
        self.loaders = []
        for run in self.runs:
            calib, valid = run.loaders()
            recipe = run.recipe.with_resolution(resolution or run.recipe.resolution)
            calib = calib.derive(recipe=recipe)
            # what recalibration really averages over: fewer batches on a small dataset
            batches = calibration_batches(
                calib, math.ceil(calib_images / calib.batch_size) if calib_images else 0)
            n = min(val_images, len(valid.data))
            # Every trial sees these same images: streamed ones are decoded once and kept
            # (bounded by --val-images and the calibration batches, not the data set).
            valid = valid.derive(data=valid.data.subset(torch.arange(n)), recipe=recipe,
                                 **_keep(valid, -(-n // valid.batch_size)))
            calib = calib.derive(**_keep(calib, batches))
            self.loaders.append((calib, valid, batches))

    def score(self, archs: Sequence[Architecture]) -> List[float]:
        out = []
        for arch in archs:
            accs = [evaluate(run.supernet, arch, valid, calib, batches)
                    for run, (calib, valid, batches) in zip(self.runs, self.loaders)]
            out.append(sum(accs) / len(accs))
        return out

    def used(self) -> Dict[str, int]:
        """``bn_batches`` and ``val_images`` of the first supernet (what an export
        recalibrates with), and its ``classes`` (what an accuracy is read against)."""
        calib, valid, batches = self.loaders[0]
        return {"bn_batches": batches, "val_images": len(valid.data),
                "classes": self.runs[0].supernet.num_classes}

    def describe(self) -> str:
        calib, valid, batches = self.loaders[0]
        return (f"supernet accuracy, mean of {len(self.runs)} supernet(s), BN recalibrated on "
                f"{batches} batch(es) of {calib.batch_size} images, {len(valid.data)} "
                "validation images")
