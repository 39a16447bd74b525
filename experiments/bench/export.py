"""Benchmark: CPU latency of the exported MixNet-S in its split, fused and channels-last forms.

    .venv/bin/python experiments/bench/export.py [--rounds 5] [--threads 2]

Exports MixNet-S (the ``mixnet_s`` space) with ``nas export --arch`` in each form, loads
each ``model.py`` as a user would (no nas import in the forward path), gives all of them the
same weights (the split form's, fused with :func:`nas.export.fuse_state_dict`), checks
they agree, and times eval-mode forwards at 224x224, batch 1 and batch 32. Forms are
interleaved round by round so machine noise hits them alike; each figure is the median
over rounds, printed as a ratio to the split form measured in the same run (goal: the
best form <= 0.70x the split form).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import nas
from nas.export import fuse_state_dict, load_exported

FORMS = {
    "split": [],
    "split --channels-last": ["--channels-last"],
    "fused": ["--fused"],
    "fused --channels-last": ["--fused", "--channels-last"],
}


def export_forms(tmp: Path):
    arch = nas.load_space("mixnet_s").sample(0)
    models = {}
    for i, (name, flags) in enumerate(FORMS.items()):
        out = tmp / f"form{i}"
        subprocess.run([sys.executable, "-m", "nas", "export", "--arch", str(arch), "-o",
                        str(out), *flags], check=True, capture_output=True)
        models[name] = load_exported(out, f"bench_form{i}").build_model().eval()
    torch.manual_seed(0)
    split = models["split"]
    for module in split.modules():  # non-trivial BN statistics, so the check means something
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    split_state, fused_state = split.state_dict(), fuse_state_dict(split)
    for name, model in models.items():
        model.load_state_dict(fused_state if name.startswith("fused") else split_state)
    return models


def time_forward(model, x, repeats: int) -> float:
    with torch.inference_mode():
        model(x)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
        return (time.perf_counter() - start) / repeats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        models = export_forms(Path(tmp))
    x1 = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        reference = models["split"](x1)
        for name, model in models.items():
            delta = (model(x1) - reference).abs().max().item()
            assert delta < 1e-4, (name, delta)
    print(f"MixNet-S exported, 224x224, {args.threads} threads, eval mode, median of "
          f"{args.rounds} interleaved rounds; all forms agree with split within 1e-4")
    for batch, repeats in ((1, 20), (32, 2)):
        x = torch.randn(batch, 3, 224, 224)
        times = {name: [] for name in models}
        for _ in range(args.rounds):
            for name, model in models.items():
                times[name].append(time_forward(model, x, repeats))
        base = statistics.median(times["split"])
        print(f"batch {batch}:")
        for name, values in times.items():
            med = statistics.median(values)
            ratios = sorted(v / base for v in values)
            print(f"  {name:<22} {med * 1000:8.1f} ms   ratio to split {med / base:.3f} "
                  f"(rounds {ratios[0]:.2f}-{ratios[-1]:.2f})")
        best = min((statistics.median(v), n) for n, v in times.items())
        print(f"  best: {best[1]}, {best[0] / base:.3f}x split (goal <= 0.70)")


if __name__ == "__main__":
    main()
