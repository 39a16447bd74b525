"""Training throughput on a CUDA GPU, fp32 against bf16 autocast (run by ``gpu.sh``).

For the default space (``mixnet_300m``, 224 px, batch 128, 1000 classes, channels-last,
synthetic inputs already on the GPU: this measures the network, not the data), each for
``--seconds`` after warm-up steps:

* the supernet's sandwich step (largest, smallest and two random subnets, the smaller ones
  distilled from the largest: what ``nas supernet train`` runs);
* the static largest subnet's step (what ``nas train``, ``nas reference`` and re-ranking
  run), also through ``torch.compile`` in bf16 when this torch has it (compile time apart).

Prints img/s per configuration and the bf16/fp32 ratios. ``--smoke`` runs the same code on
the CPU with a tiny space and two steps each (the test suite's dry run).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, dtype):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def throughput(step, batch: int, device: torch.device, seconds: float, warmup: int,
               minimum: int) -> float:
    """img/s of ``step()`` after ``warmup`` calls, timed for ``seconds`` (at least
    ``minimum`` steps)."""
    for _ in range(warmup):
        step()
    _sync(device)
    started, steps = time.perf_counter(), 0
    while steps < minimum or time.perf_counter() - started < seconds:
        step()
        steps += 1
        if steps % 5 == 0:
            _sync(device)
    _sync(device)
    return steps * batch / (time.perf_counter() - started)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="CPU dry run: tiny space, 2 steps")
    p.add_argument("--seconds", type=float, default=20.0, help="timed seconds per config")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--space", default=str(ROOT / "search_spaces" / "mixnet_300m.yaml"))
    args = p.parse_args()

    import nas
    from nas.supernet import Supernet

    if args.smoke:
        device = torch.device("cpu")
        args.space, args.batch, args.resolution, args.seconds = (
            str(ROOT / "tests" / "spaces" / "tiny.yaml"), 4, 32, 0.0)
        warmup, minimum = 1, 2
    elif torch.cuda.is_available():
        device, warmup, minimum = torch.device("cuda"), 3, 5
        torch.backends.cudnn.benchmark = True
    else:
        print("gpu.py: torch sees no CUDA device (--smoke runs a CPU dry run)", file=sys.stderr)
        return 2
    space = nas.load_space(args.space)
    torch.manual_seed(0)
    classes = 1000
    supernet = Supernet(space, num_classes=classes, in_chans=3).to(device)
    supernet = supernet.to(memory_format=torch.channels_last)
    largest, smallest = space.extreme_arch(True), space.extreme_arch(False)
    static = supernet.extract(largest).to(device).to(memory_format=torch.channels_last)
    x = torch.randn(args.batch, 3, args.resolution, args.resolution, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (args.batch,), device=device)
    rng = random.Random(0)
    opt_sn = torch.optim.SGD(supernet.parameters(), lr=1e-3, momentum=0.9)
    opt_st = torch.optim.SGD(static.parameters(), lr=1e-3, momentum=0.9)
    bf16 = torch.bfloat16 if (device.type == "cpu" or torch.cuda.is_bf16_supported()) else None

    def sandwich(dtype):
        def step():
            teacher = None
            archs = [(largest, False), (smallest, True)] + [
                (space.sample(rng), True) for _ in range(2)]
            for arch, distilled in archs:
                with _autocast(device, dtype):
                    logits = supernet(x, arch)
                logits = logits.float()
                if distilled:
                    loss = -(teacher * F.log_softmax(logits, 1)).sum(1).mean()
                else:
                    loss = F.cross_entropy(logits, y)
                    teacher = F.softmax(logits.detach(), 1)
                loss.backward()
            opt_sn.step()
            opt_sn.zero_grad(set_to_none=True)
        return step

    def plain(model, dtype):
        def step():
            with _autocast(device, dtype):
                logits = model(x)
            F.cross_entropy(logits.float(), y).backward()
            opt_st.step()
            opt_st.zero_grad(set_to_none=True)
        return step

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke)"
    print(f"device {name}; torch {torch.__version__}; space {space.name}, batch {args.batch}, "
          f"{args.resolution}x{args.resolution}, channels-last, synthetic inputs", flush=True)
    rates = {}
    for label, dtype in (("fp32", None), ("bf16", bf16)):
        if label == "bf16" and dtype is None:
            print("bf16: not supported by this GPU; skipped")
            continue
        for kind, step in (("supernet sandwich", sandwich(dtype)),
                           ("static largest", plain(static, dtype))):
            rate = throughput(step, args.batch, device, args.seconds, warmup, minimum)
            rates[(kind, label)] = rate
            print(f"{kind:18s} {label}: {rate:9.1f} img/s", flush=True)
    if hasattr(torch, "compile") and not args.smoke and bf16 is not None:
        started = time.perf_counter()
        compiled = torch.compile(static)
        step = plain(compiled, bf16)
        step()
        _sync(device)
        compile_s = time.perf_counter() - started
        rates[("static largest", "bf16+compile")] = throughput(
            step, args.batch, device, args.seconds, warmup, minimum)
        print(f"{'static largest':18s} bf16+compile: "
              f"{rates[('static largest', 'bf16+compile')]:9.1f} img/s (compile {compile_s:.0f} s)")
    for kind in ("supernet sandwich", "static largest"):
        if (kind, "bf16") in rates:
            print(f"ratio bf16/fp32, {kind}: {rates[(kind, 'bf16')] / rates[(kind, 'fp32')]:.2f}x")
    compiled_rate = rates.get(("static largest", "bf16+compile"))
    if compiled_rate:
        print("ratio bf16+compile/fp32, static largest: "
              f"{compiled_rate / rates[('static largest', 'fp32')]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
