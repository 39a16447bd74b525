"""Benchmark: the exported MixNet-S against the model zoo's (timm's ``mixnet_s``), CPU, batch 1.

    .venv/bin/pip install --no-deps timm        # once (see "timm" below)
    .venv/bin/python experiments/bench/export.py [--rounds 15] [--threads 2] [--batch 1]

Exports MixNet-S (the ``mixnet_s`` space) with ``nas export --arch`` in several forms, loads
each ``model.py`` as a user would (no nas import in the forward path) and times eval-mode
forwards at 224x224 in torch eager, beside timm's ``mixnet_s`` built by timm itself, and
then the split form, the best form and timm's network in ONNX Runtime (CPU execution
provider, the same threads; ``nas.latency``'s ONNX Runtime backend).

Checks first, so that the times compare the same function:
* timm's weights (BN statistics randomised) copied into the split form give timm's logits:
  the same architecture, kernel for kernel;
* every form, given those weights (``fuse_state_dict`` / ``fold_state_dict``), agrees with
  the split form within ``TOLERANCE`` (largest logit difference printed).

Timing: forms interleaved round by round so that machine noise hits them alike; a round
times ``--repeats`` forwards of each form (mean); each figure is the median over rounds,
and each ratio the median of the per-round ratios to timm's eager network in that round
(quartiles in brackets). Goal (issue 18): best form <= 0.60x timm in torch eager. The
clock is wall time; with ``--threads 1`` it is the calling thread's CPU time (both runtimes
compute a one-thread call on the caller's thread), which time given to other processes on a
loaded machine does not inflate (``nas.latency``'s convention).

timm (``pip install timm``; ``make bench`` installs it) imports torchvision, which loads
with the torch + torchvision pair the Makefile installs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import nas
from nas.export import fold_state_dict, fuse_state_dict, load_exported
from nas.latency.runtime import OnnxRuntime

# Largest |logit| difference allowed between a form and the split form, relative to the
# largest |logit|: float32 rounding of other summation orders (fused kernels, channels-last,
# timm's convs) and of folded weights, through 60 layers.
TOLERANCE = 1e-5

FORMS = {  # name: nas export flags
    "split": [],
    "fused --channels-last": ["--fused", "--channels-last"],
    "split --channels-last --fold-bn": ["--channels-last", "--fold-bn"],
    "fused --channels-last --fold-bn": ["--fused", "--channels-last", "--fold-bn"],
}
BASELINE = "timm mixnet_s"


def import_timm():
    try:
        import timm
    except ImportError as e:
        if e.name == "timm":
            sys.exit("timm is not installed: .venv/bin/pip install timm")
        raise
    return timm


def copy_timm_weights(ours: torch.nn.Module, theirs: torch.nn.Module) -> None:
    """Load ``theirs``'s tensors into ``ours`` (split form), in registration order.

    Both register the same layers in the same order; timm's grouped 1x1 convs
    (``MixedConv2d``, one conv per group) are one grouped conv here, whose weight is
    timm's group weights stacked on the output axis.
    """
    source = list(theirs.state_dict().values())
    state, i = {}, 0
    for key, target in ours.state_dict().items():
        parts = [source[i]]
        i += 1
        while target.dim() and sum(t.shape[0] for t in parts) < target.shape[0]:
            parts.append(source[i])
            i += 1
        tensor = torch.cat(parts, 0) if len(parts) > 1 else parts[0]
        if tensor.shape != target.shape:
            raise SystemExit(f"timm's weights do not fit {key}: {tuple(tensor.shape)} vs "
                             f"{tuple(target.shape)}")
        state[key] = tensor
    if i != len(source):
        raise SystemExit(f"{len(source) - i} of timm's tensors left over")
    ours.load_state_dict(state)


def build(tmp: Path, timm):
    """The forms (exported, loaded from model.py) and timm's network, with equal weights."""
    torch.manual_seed(0)
    reference = timm.create_model("mixnet_s", pretrained=False).eval()
    for module in reference.modules():  # non-trivial BN statistics and affine maps
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)
    arch = nas.load_space("mixnet_s").sample(0)
    models = {}
    for i, (name, flags) in enumerate(FORMS.items()):
        out = tmp / f"form{i}"
        subprocess.run([sys.executable, "-m", "nas", "export", "--arch", str(arch), "-o",
                        str(out), *flags], check=True, capture_output=True)
        models[name] = load_exported(out, f"bench_form{i}").build_model().eval()
    split = models["split"]
    copy_timm_weights(split, reference)
    for name, model in models.items():
        fused, folded = "--fused" in FORMS[name], "--fold-bn" in FORMS[name]
        state = fold_state_dict(split) if folded else split.state_dict()
        model.load_state_dict(fuse_state_dict(split, state) if fused else state)
    models[BASELINE] = reference
    models[f"{BASELINE} channels-last"] = timm.create_model("mixnet_s").eval().to(
        memory_format=torch.channels_last)
    models[f"{BASELINE} channels-last"].load_state_dict(reference.state_dict())
    return models


def time_forward(call, x, repeats: int, clock=time.perf_counter) -> float:
    call(x)  # warm-up
    start = clock()
    for _ in range(repeats):
        call(x)
    return (clock() - start) / repeats


def report(times, base: str, label: str) -> None:
    ratios = {name: sorted(v / b for v, b in zip(values, times[base]))
              for name, values in times.items()}
    for name, values in times.items():
        q = statistics.quantiles(ratios[name], n=4) if len(values) > 1 else ratios[name] * 3
        print(f"  {name:<48} {statistics.median(values) * 1000:7.2f} ms   "
              f"{statistics.median(ratios[name]):.3f}x {label} [{q[0]:.3f}-{q[-1]:.3f}]")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--repeats", type=int, default=10, help="forwards per form per round")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime part")
    args = p.parse_args()
    timm = import_timm()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        models = build(Path(tmp), timm)
    x = torch.randn(args.batch, 3, 224, 224)
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    with torch.inference_mode():
        split = models["split"](x)
        timm_delta = (models[BASELINE](x) - split).abs().max().item()
        deltas = {name: (model(x) - split).abs().max().item() for name, model in models.items()}
    tolerance = TOLERANCE * split.abs().max().item()
    if timm_delta > tolerance or max(deltas.values()) > tolerance:
        raise SystemExit(f"forms disagree: {deltas}")
    print(f"MixNet-S, 224x224, batch {args.batch}, {args.threads} threads, eval mode; "
          f"timm {timm.__version__}, torch {torch.__version__}; clock: "
          f"{'thread CPU time' if args.threads == 1 else 'wall'}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the start")
    print(f"same function: timm's weights in the split form give timm's logits within "
          f"{timm_delta:.1e}; every form agrees with split within "
          f"{max(deltas.values()):.1e} (tolerance {tolerance:.1e}: {TOLERANCE:g} of the "
          f"largest |logit|, {split.abs().max().item():.2f})")
    print(f"torch eager (torch.inference_mode), median of {args.rounds} interleaved rounds "
          f"of {args.repeats} forwards:")
    times = {name: [] for name in models}
    with torch.inference_mode():
        for _ in range(args.rounds):
            for name, model in models.items():
                times[name].append(time_forward(model, x, args.repeats, clock))
    report(times, BASELINE, "timm")
    eager = {n: statistics.median(v[i] / b for i, b in enumerate(times[BASELINE]))
             for n, v in times.items() if n in FORMS}
    best = min(eager, key=eager.get)
    print(f"  best nas form: {best}, {eager[best]:.3f}x timm's mixnet_s (goal <= 0.60)")
    if args.no_onnx:
        return
    runtime = OnnxRuntime(threads=args.threads)
    onnx_forms = {f"onnxruntime: {n}": models[n] for n in (BASELINE, "split", best)}
    # one network per graph, as nas export writes model.onnx
    calls = {name: runtime.compile([model.to(memory_format=torch.contiguous_format)], [x])[0]
             for name, model in onnx_forms.items()}
    ort_times = {name: [] for name in calls}
    ort_times[f"eager: {BASELINE}"] = []
    eager_timm = models[BASELINE]
    print(f"ONNX Runtime {__import__('onnxruntime').__version__} (CPU, {args.threads} "
          f"intra-op threads, default graph optimisations), same protocol:")
    with torch.inference_mode():
        for _ in range(args.rounds):
            for name, call in calls.items():
                ort_times[name].append(time_forward(lambda _x, c=call: c(), x, args.repeats,
                                                    clock))
            ort_times[f"eager: {BASELINE}"].append(time_forward(eager_timm, x, args.repeats,
                                                                clock))
    report(ort_times, f"onnxruntime: {BASELINE}", "timm in onnxruntime")


if __name__ == "__main__":
    main()
