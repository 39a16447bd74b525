"""Data-parallel supernet training across processes (``torchrun --nproc_per_node=N``).

Every rank draws the same global batch (same seed) and the same architectures (same
sampler seed), runs its contiguous shard of the batch through them, and after the step's
backward passes the gradients are averaged over ranks in one flattened all-reduce
(gloo on CPU, NCCL on GPU). That is what DistributedDataParallel computes, done once per
step on purpose: the sandwich rule runs several forward/backward passes over different
subnets per step, and DDP's reducer syncs per backward and treats parameters unused by
the last subnet specially, where one explicit reduction after the last backward is
exact and cheaper. BatchNorm uses each rank's shard statistics, as under DDP without
SyncBatchNorm; running statistics are averaged over ranks before each checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist

__all__ = ["Dist", "setup"]


@dataclass(frozen=True)
class Dist:
    """This process's place in the job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous share of a global batch."""
        if self.world == 1:
            return x
        return x.chunk(self.world)[self.rank]

    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        if self.world == 1:
            return
        params = list(params)
        # A parameter no subnet of this step used has no gradient; the same on every rank
        # (same architectures), so zeros keep the flat buffers aligned.
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                          for p in params])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p in params:
            n = p.numel()
            if p.grad is not None:
                p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n

    def average_buffers(self, module: torch.nn.Module) -> None:
        """Average floating-point buffers (BN running statistics) over ranks."""
        if self.world == 1:
            return
        for buf in module.buffers():
            if buf.is_floating_point():
                dist.all_reduce(buf)
                buf /= self.world

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: torch.device) -> Dist:
    """Join the process group torchrun describes in the environment (if any)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return Dist(rank, world, local)
