"""BatchNorm recalibration and accuracy of subnets.

A subnet's BN statistics in the supernet are shared with every other subnet, so they
fit none of them exactly. :func:`recalibrate` extracts the subnet and re-estimates
its BN statistics on a few training batches (a cumulative average, not a running
one); every evaluation of a subnet goes through it. The supernet is not modified.
"""

from __future__ import annotations

import torch
from torch import nn

from .arch import Architecture
from .ops.static import MixNet

__all__ = ["recalibrate", "accuracy", "evaluate", "calibration_batches"]


def calibration_batches(loader, batches: int) -> int:
    """How many batches :func:`recalibrate` really averages over: ``batches``, or all the
    loader has when it has fewer (what a trial or an export should state)."""
    return min(batches, len(loader))


@torch.no_grad()
def recalibrate(supernet, arch: Architecture, loader, batches: int = 20,
                epoch: int = 0) -> MixNet:
    """The static subnet of ``arch`` with BN statistics re-estimated on ``batches`` batches.

    Args:
        supernet: a :class:`nas.Supernet`.
        arch: the architecture.
        loader: a :class:`nas.data.Loader` over training data.
        batches: how many batches to average over (0 keeps the supernet's statistics).
        epoch: which shuffle of ``loader`` to draw from (fixed: every arch sees the same images).

    Returns:
        The subnet in eval mode.
    """
    model = supernet.extract(arch)
    if batches > 0:
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative moving average over the calibration batches
        model.train()
        for i, (x, _) in enumerate(loader.epoch(epoch)):
            if i >= batches:
                break
            model(x)
        for bn in bns:
            bn.momentum = 0.1
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, loader) -> float:
    """Top-1 accuracy of ``model`` on every batch of ``loader`` (in [0, 1])."""
    model.eval()
    correct = total = 0
    for x, y in loader.epoch(0):
        correct += (model(x).argmax(1) == y).sum().item()
        total += len(y)
    return correct / max(total, 1)


def evaluate(supernet, arch: Architecture, val_loader, calib_loader, batches: int = 20) -> float:
    """Validation accuracy of ``arch`` from the supernet, after BN recalibration."""
    return accuracy(recalibrate(supernet, arch, calib_loader, batches), val_loader)
