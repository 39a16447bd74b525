"""Mobile formats of nas export: each format's conversion time and its largest difference
from torch, for MixNet-S and a searched network (found_p130 of the issue-19 study), each
at 3x224x224, batch 1.

    .venv/bin/python experiments/bench/formats.py        # ~6 min; bench/formats.txt, formats.csv

What `nas export --arch ARCH --format ncnn mnn tflite coreml` does, through the same
function: the network is written (model.py), fresh weights (seed 0) are converted in a
process of their own per format, and each converted file with a runtime on Linux is run on
two seeded random images, as torch runs them. Conversion time is the converter's own wall
time (not the process start or the check); the machine is shared, so times are indicative.
TFLite needs pip install 'nas[tflite]' (litert-torch); a format whose extra is missing is
left out of the rows and said so.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import random
import tempfile
from pathlib import Path

import torch

import nas
from nas.export import FORMATS, convert_export, export_arch, load_exported
from nas.export.trial import target_inputs

HERE = Path(__file__).parent


def found_network(name: str = "found_p130") -> nas.Architecture:
    """A network a search found: the issue-19 study's ``name`` (its rows hold it as
    trained, at 3x32x32 and 10 classes), at the space's target input (3x224x224, 1000)."""
    with open(HERE.parent / "studies" / "found_vs_mixnet" / "rows.csv") as f:
        text = next(r["arch"] for r in csv.DictReader(f) if r["network"] == name)
    return nas.Architecture.parse("3x224x224-1000/" + text.split("/", 1)[1])


def networks(seed: int):
    """MixNet-S (the space's single point), the searched network found_p130 and, with
    --seed, a random network of mixnet_300m."""
    nets = [("mixnet_s", nas.load_space("mixnet_s").sample(0)),
            ("found_p130 (searched, issue 19)", found_network())]
    if seed >= 0:
        nets.append((f"mixnet_300m sample (seed {seed})",
                     nas.load_space("mixnet_300m").sample(random.Random(seed))))
    return nets


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=-1,
                   help="also a random mixnet_300m network of this seed (default: none)")
    p.add_argument("-o", "--output", default=str(HERE / "formats.csv"), help="rows (.csv)")
    args = p.parse_args()
    formats = [f for f, fmt in FORMATS.items()
               if all(importlib.util.find_spec(m) for m in fmt.modules)]
    left_out = sorted(set(FORMATS) - set(formats))
    rows = []
    for label, arch in networks(args.seed):
        cost = nas.count_cost(arch)
        with tempfile.TemporaryDirectory() as tmp:
            export_arch(arch, tmp)
            # the scale of what is compared: convert_export's fresh weights (seed 0)
            with torch.random.fork_rng(), torch.no_grad():
                torch.manual_seed(0)
                net = load_exported(tmp, "bench_model").build_model().eval()
                largest = max(net(x).abs().max().item() for x in target_inputs(arch))
            for fmt in formats:  # one at a time: each its own process and time limit
                c = convert_export(tmp, [fmt], target_inputs(arch))[fmt]
                size = sum(f.stat().st_size for p in c.paths
                           for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
                rows.append({"network": label, "arch": str(arch), "flops": cost.flops,
                             "params": cost.params, "format": fmt,
                             "seconds": round(c.seconds, 2),
                             "max_abs_diff": "" if c.delta is None else f"{c.delta:.3g}",
                             "max_abs_logit": f"{largest:.3g}",
                             "runtime": c.runtime or "(converted only)",
                             "bytes": size})
                print(json.dumps(rows[-1]), flush=True)
    with open(args.output, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\n{'network':34s} {'format':7s} {'convert s':>9s} {'max |d|':>9s} "
          f"{'max |logit|':>11s} {'MB':>6s}  runtime")
    for r in rows:
        print(f"{r['network']:34s} {r['format']:7s} {r['seconds']:9.1f} "
              f"{r['max_abs_diff'] or '-':>9s} {r['max_abs_logit']:>11s} "
              f"{r['bytes'] / 1e6:6.1f}  {r['runtime']}")
    if left_out:
        print(f"not installed, left out: {', '.join(left_out)}")
    print(f"rows: {args.output}")


if __name__ == "__main__":
    main()
