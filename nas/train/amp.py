"""Numeric precision of training: fp32, or mixed precision on CUDA (bf16, fp16 + scaler).

``--precision auto`` (the default) trains in bf16 autocast on a CUDA device that supports
it (timm's and ultralytics' practice: about twice the throughput of fp32 on recent GPUs,
no loss scaling needed) and in fp32 on the CPU, where autocast buys nothing on CPUs without
bf16 units. ``fp16`` adds a gradient scaler (fp16's range is too narrow for small
gradients); its state is saved with checkpoints so a resumed run continues exactly.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import UsageError

__all__ = ["PRECISIONS", "Precision"]

#: ``--precision``: auto (bf16 on CUDA, fp32 on CPU), or one of the three.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class Precision:
    """How a training step's forward and backward run.

    Attributes:
        name: fp32, bf16 or fp16 (resolved, never auto).
        device: the training device.
        scaler: fp16's gradient scaler (None otherwise).
    """

    name: str
    device: torch.device
    scaler: Optional[object] = None

    @classmethod
    def resolve(cls, name: str, device: torch.device) -> "Precision":
        """The precision ``--precision NAME`` means on ``device``.

        Raises:
            UsageError: fp16 or bf16 asked for on a device that cannot run it.
        """
        device = torch.device(device)
        cuda = device.type == "cuda"
        if name == "auto":
            name = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
        if name == "fp16" and not cuda:
            raise UsageError("--precision fp16 needs a CUDA device (on the CPU use fp32 or "
                             "bf16)")
        if name == "bf16" and cuda and not torch.cuda.is_bf16_supported():
            raise UsageError("--precision bf16: this CUDA device has no bf16 support; use "
                             "fp16 or fp32")
        scaler = torch.amp.GradScaler("cuda") if name == "fp16" else None
        return cls(name, device, scaler)

    @property
    def dtype(self) -> Optional[torch.dtype]:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    def autocast(self):
        """The context the forward pass runs in."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Gradients back to their true scale (before clipping)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)  # skipped when the gradients overflowed
            self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
