"""Benchmark: supernet training cost vs the static networks it contains, same run.

    .venv/bin/python experiments/bench/supernet.py [--archs 12] [--steps 12] [--resolution 32]

1. Train-step throughput (forward + backward + SGD step, batch 64, 2 threads, proxy
   resolution, channels-last as training runs) of ``supernet(x, arch)`` vs
   ``supernet.extract(arch)`` for the same random archs of mixnet_300m, taking turns step
   by step; per arch the median of the step ratios, and the figure is the median over
   archs (goal <= 1.10, must be <= 1.15).
2. img/s of real supernet training on Fashion-MNIST (``train_supernet``), uniform and
   sandwich rules.
3. Peak RSS of supernet training (sandwich) vs training the largest static subnet alone,
   each in a fresh process (goal <= 1.5x).

``--phases N`` instead times forward, backward and optimizer step separately (the two
nets taking turns step by step), summing each phase's per-arch median over N archs: where
the supernet's extra time goes.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch

import nas
from nas.supernet import Supernet


def step_time(model_fn, params, x, y, steps: int) -> float:
    """Median seconds per train step."""
    return statistics.median(interleaved_steps([(model_fn, params)], x, y, steps)[0])


def interleaved_steps(runs, x, y, steps: int):
    """Per run, the seconds of each of ``steps`` train steps, the runs taking turns step by
    step so that a burst of load from other processes hits all of them alike."""
    runs = [(fn, torch.optim.SGD(params, lr=0.01, momentum=0.9)) for fn, params in runs]
    times = [[] for _ in runs]
    for i in range(steps + 1):
        for run_times, (model_fn, opt) in zip(times, runs):
            start = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model_fn(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if i:  # the first step warms up allocator and kernels
                run_times.append(time.perf_counter() - start)
    return times


CL = torch.channels_last  # the layout training uses (TrainConfig.channels_last)


def setup(args):
    """The space, a channels-last supernet (seed 0), the arch sampler's rng and one batch."""
    space = nas.load_space(args.space)
    torch.manual_seed(0)
    supernet = Supernet(space, num_classes=10, in_chans=1).train().use_memory_format(CL)
    x = torch.randn(args.batch, 1, args.resolution, args.resolution).contiguous(memory_format=CL)
    return space, supernet, random.Random(0), x, torch.randint(0, 10, (args.batch,))


def throughput(args) -> None:
    space, supernet, rng, x, y = setup(args)
    ratios = []
    for i in range(args.archs):
        arch = space.sample(rng)
        static = supernet.extract(arch).train()  # channels-last, like the supernet
        static_s, super_s = interleaved_steps(
            [(static, static.parameters()),
             (lambda t, arch=arch: supernet(t, arch), supernet.parameters())],
            x, y, args.steps)
        t_static, t_super = statistics.median(static_s), statistics.median(super_s)
        ratios.append(statistics.median(b / a for a, b in zip(static_s, super_s)))
        print(f"  arch {i}: {nas.count_cost(arch).flops / 1e6:6.1f}M FLOPs  static "
              f"{args.batch / t_static:7.1f} img/s  supernet {args.batch / t_super:7.1f} img/s  "
              f"ratio {ratios[-1]:.3f}", flush=True)
    q = statistics.quantiles(ratios, n=4)
    print("train-step time ratio supernet/static (each arch: median of step-by-step ratios), "
          f"median over {args.archs} archs: "
          f"{statistics.median(ratios):.3f} (quartiles {q[0]:.3f}..{q[2]:.3f}; "
          f"goal <= 1.10, limit 1.15)")


def phases(args) -> None:
    """Forward, backward and optimizer step of the supernet vs the static net, per phase."""
    space, supernet, rng, x, y = setup(args)
    total = {"static": [0.0] * 3, "supernet": [0.0] * 3}
    for _ in range(args.phases):
        arch = space.sample(rng)
        static = supernet.extract(arch).train()
        runs = {"static": (static, static.parameters()),
                "supernet": (lambda t, arch=arch: supernet(t, arch), supernet.parameters())}
        runs = {k: (fn, torch.optim.SGD(ps, lr=0.01, momentum=0.9)) for k, (fn, ps) in runs.items()}
        times = {k: ([], [], []) for k in runs}
        for i in range(args.steps + 1):
            for name, (fn, opt) in runs.items():
                t0 = time.perf_counter()
                loss = torch.nn.functional.cross_entropy(fn(x), y)
                t1 = time.perf_counter()
                loss.backward()
                t2 = time.perf_counter()
                opt.step()
                opt.zero_grad(set_to_none=True)
                t3 = time.perf_counter()
                if i:  # the first step warms up
                    for phase, dt in zip(times[name], (t1 - t0, t2 - t1, t3 - t2)):
                        phase.append(dt)
        for name, phase_times in times.items():
            for j, phase in enumerate(phase_times):
                total[name][j] += statistics.median(phase)
    print(f"per phase, ms summed over {args.phases} archs (each the median of {args.steps} steps):")
    for j, phase in enumerate(("forward", "backward", "optimizer step")):
        a, b = total["static"][j] * 1e3, total["supernet"][j] * 1e3
        print(f"  {phase:15s} static {a:8.1f}  supernet {b:8.1f}  ratio {b / a:.3f}  "
              f"(+{(b - a) / args.phases:.1f} ms per step)")
    a, b = sum(total["static"]) * 1e3, sum(total["supernet"]) * 1e3
    print(f"  {'whole step':15s} static {a:8.1f}  supernet {b:8.1f}  ratio {b / a:.3f}")


def training_rate(args) -> None:
    """img/s of the real training loop (its own log: data, sampling, clipping, optimiser,
    checkpoints; not the one-off setup of loading data and building the supernet)."""
    from nas.train import TrainConfig, train_supernet

    for sampler in ("uniform", "sandwich"):
        with tempfile.TemporaryDirectory() as run:
            cfg = TrainConfig(space=args.space, steps=args.train_steps, batch_size=args.batch,
                              sampler=sampler, resolution=args.resolution,
                              checkpoint_every=args.train_steps // 2)
            train_supernet(cfg, run, progress=False)
            with open(f"{run}/train_log.jsonl") as log:
                rate = [json.loads(line) for line in log][-1]["img_per_s"]
        print(f"supernet training loop on Fashion-MNIST ({sampler}, {args.resolution}px, batch "
              f"{args.batch}): {rate:.0f} img/s")


def _peak_rss_child(mode: str, args) -> float:
    """Run ``--child MODE`` in a fresh process; its peak RSS in MiB."""
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--space", args.space,
                          "--resolution", str(args.resolution), "--batch", str(args.batch)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mib"]


def child(mode: str, args) -> None:
    torch.set_num_threads(2)
    space = nas.load_space(args.space)
    largest = space.extreme_arch(True)
    x = torch.randn(args.batch, 1, args.resolution, args.resolution).contiguous(memory_format=CL)
    y = torch.randint(0, 10, (args.batch,))
    if mode == "static":  # the baseline never builds the supernet
        model = nas.build_model(largest, num_classes=10, in_chans=1).train().to(memory_format=CL)
        step_time(model, model.parameters(), x, y, 3)
    else:
        # one sandwich step: largest, smallest and two random archs, gradients accumulate
        supernet = Supernet(space, num_classes=10, in_chans=1).train().use_memory_format(CL)
        opt = torch.optim.SGD(supernet.parameters(), lr=0.01, momentum=0.9)
        rng = random.Random(0)
        for _ in range(3):
            for arch in [largest, space.extreme_arch(False), space.sample(rng), space.sample(rng)]:
                torch.nn.functional.cross_entropy(supernet(x, arch), y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    print(json.dumps({"peak_rss_mib": peak_rss_mib()}))


def peak_rss_mib() -> float:
    """Peak RSS of this process image. Not ru_maxrss: Linux carries that across execve, so
    a child would report its parent's peak from before the fork; VmHWM starts afresh."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="mixnet_300m")
    p.add_argument("--archs", type=int, default=12)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--train-steps", type=int, default=30)
    p.add_argument("--child", choices=["static", "supernet"])
    p.add_argument("--phases", type=int, default=0, metavar="N",
                   help="only time forward, backward and step separately over N archs")
    args = p.parse_args()
    torch.set_num_threads(2)
    if args.child:
        return child(args.child, args)
    if args.phases:
        return phases(args)
    print(f"space {args.space}, batch {args.batch}, {args.resolution}x{args.resolution}, "
          f"torch threads {torch.get_num_threads()}")
    throughput(args)
    training_rate(args)
    static_mib = _peak_rss_child("static", args)
    super_mib = _peak_rss_child("supernet", args)
    print(f"peak RSS: supernet sandwich training {super_mib:.0f} MiB, largest static subnet "
          f"{static_mib:.0f} MiB, ratio {super_mib / static_mib:.2f}  (goal <= 1.5)")


if __name__ == "__main__":
    main()
