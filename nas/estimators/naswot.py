"""NASWOT: a zero-cost score computed at initialisation, with no labels.

Mellor, Turner, Storkey and Crowley, "Neural Architecture Search without Training",
ICML 2021. Each image of one minibatch gets a binary code: which units of the network's
activations are on (input > 0) for it. Two images whose codes differ in few units are
hard for the network to tell apart. The score is ``log |det K|`` of the kernel
``K[i, j] = N_A - hamming(c_i, c_j)``, summed over the activation layers; a network that
separates the images of the batch at initialisation tends to train to a higher accuracy.
The paper uses ReLU units; here every activation of the network counts (ReLU, Swish,
h-swish) by the sign of its input, which is where they switch from flat to linear.
Written from the paper; nothing is trained and no label is read.
"""

from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn

from ..arch import Architecture
from ..model import build_model
from .base import Estimator

__all__ = ["NaswotEstimator", "naswot_score"]

_ACTIVATIONS = (nn.ReLU, nn.SiLU, nn.Hardswish, nn.ReLU6)


@torch.no_grad()
def naswot_score(model: nn.Module, images: torch.Tensor) -> float:
    """``log |det K|`` of ``model`` (at its current weights) on the batch ``images``.

    Args:
        model: the network; run in training mode (BatchNorm on batch statistics, as the
            paper's networks at initialisation), restored afterwards.
        images: ``[N, C, H, W]`` normalised inputs; N of 64 to 256 (the paper: 128).
    """
    n = images.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64)

    def hook(_module, inputs, _output):
        on = (inputs[0] > 0).reshape(n, -1).to(torch.float64)
        kernel.add_(on @ on.T).add_((1 - on) @ (1 - on).T)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, _ACTIVATIONS)]
    was_training = model.training
    try:
        model.train()
        model(images)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else float("-inf")


class NaswotEstimator(Estimator):
    """NASWOT score of each architecture's static network at a seeded initialisation.

    Args:
        images: one minibatch ``[N, C, H, W]`` of the task's training images, normalised
            (the same batch for every architecture).
        num_classes: the task's classes (the classifier's width; it has no activation after
            it and does not change the score, but the network is built as it will be trained).
        seed: the initialisation seed; ``repeats`` seeds from it are averaged.
        repeats: initialisations averaged (the score varies a little with the seed).

    Cost: one forward pass of N images per architecture and repeat.
    """

    name = "naswot"
    is_accuracy = False

    def __init__(self, images: torch.Tensor, num_classes: int, seed: int = 0, repeats: int = 1):
        self.images = images.contiguous()
        self.num_classes, self.seed, self.repeats = num_classes, seed, repeats

    def score(self, archs: Sequence[Architecture]) -> List[float]:
        out = []
        for arch in archs:
            total = 0.0
            for r in range(self.repeats):
                with torch.random.fork_rng():
                    torch.manual_seed(self.seed + r)
                    model = build_model(arch, num_classes=self.num_classes,
                                        in_chans=self.images.shape[1])
                total += naswot_score(model, self.images)
            out.append(total / self.repeats)
        return out

    def describe(self) -> str:
        n, c, h, w = self.images.shape
        return (f"NASWOT (Mellor et al. 2021) at initialisation, {n} images of {c}x{h}x{w}, "
                f"{self.repeats} seed(s) from {self.seed}")
