"""Optimiser and schedule factories with named parameters (timm's ``create_optimizer_v2``).

The training loop calls these; no configuration object is passed around.
"""

from __future__ import annotations

import math

import torch

__all__ = ["create_optimizer", "create_schedule"]


def create_optimizer(model: torch.nn.Module, opt: str = "adamw", lr: float = 2e-3,
                     weight_decay: float = 0.05) -> torch.optim.Optimizer:
    """AdamW, or SGD with Nesterov momentum 0.9; no weight decay on BatchNorm affine
    parameters and biases (the 1-D tensors)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": rest, "weight_decay": 0.0}]
    if opt == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    if opt == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise ValueError(f"unknown optimizer {opt!r}")


def create_schedule(optimizer: torch.optim.Optimizer, total_steps: int,
                    warmup: float = 0.05) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup`` of the steps, then a cosine decay to 0 at the end."""
    warm = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
