"""A short real supernet training run, then the largest and smallest subnets on validation.

    .venv/bin/python experiments/studies/supernet_short/run.py [--steps 300] [--sampler sandwich]

Trains the default space (mixnet_300m) on Fashion-MNIST at its native 28x28 with the
sandwich rule (largest + smallest + 2 random archs per step, in-place distillation),
then reports the validation accuracy (the split carved from training data, 6,000
images) of the largest and the smallest subnet after BN recalibration (20 batches).
Chance is 10%. Writes supernet_short.json next to this script.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from nas import count_cost
from nas.train import TrainConfig, quick_report, train_supernet


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--sampler", default="sandwich")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(Path(__file__).parent / "supernet_short.json"))
    args = p.parse_args()
    torch.set_num_threads(2)
    config = TrainConfig(steps=args.steps, sampler=args.sampler, batch_size=args.batch_size,
                         lr=args.lr, seed=args.seed, checkpoint_every=max(1, args.steps // 4))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        run = train_supernet(config, run_dir)
        train_s = time.perf_counter() - start
        acc = quick_report(run, batches=20)
    space = run.supernet.space
    result = {
        "command": f"experiments/studies/supernet_short/run.py --steps {args.steps} "
                   f"--sampler {args.sampler} "
                   f"--batch-size {args.batch_size} --lr {args.lr} --seed {args.seed}",
        "space": space.name, "data": config.data, "steps": args.steps,
        "train_seconds": round(train_s, 1),
        "val_acc_largest": round(acc.largest, 4), "val_acc_smallest": round(acc.smallest, 4),
        "flops_largest": count_cost(space.extreme_arch(True)).flops,
        "flops_smallest": count_cost(space.extreme_arch(False)).flops,
        "torch_threads": torch.get_num_threads(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.steps} {args.sampler} steps in {train_s / 60:.1f} min; validation accuracy "
          f"(chance 10%): largest {acc.largest:.2%} "
          f"({result['flops_largest'] / 1e6:.0f}M FLOPs), smallest {acc.smallest:.2%} "
          f"({result['flops_smallest'] / 1e6:.0f}M FLOPs)")


if __name__ == "__main__":
    main()
