"""Benchmark: the data pipeline at two sizes, its throughput, and the defaults against an
older tree, each a ratio measured in one run (issue 25).

    .venv/bin/python experiments/bench/data.py photos --out DIR        # 1,500 and 15,000 JPEGs
    .venv/bin/python experiments/bench/data.py scale --photos DIR       # memory and wall time
    .venv/bin/python experiments/bench/data.py keepup --photos DIR      # data wait at 128 px
    .venv/bin/python experiments/bench/data.py defaults --baseline 6ed909e   # FMNIST, CIFAR-10

``photos``: photo folders in miniature, made from real images: CIFAR-10's first five classes
(``../shared/data/cifar10-jpg.tar.gz``), each image scaled to 500x375 and saved as a JPEG
(quality 85), ImageFolder layout, 1,500 or 15,000 training images and 150 test images.

``scale``: ``nas supernet train --data DIR --steps 20 --resolution 96 --batch-size 32 --no-eval``
(default space, default loader workers) with a fresh cache for each folder; the peak
resident memory of the training process and of its loader workers together (RSS, and PSS,
which counts pages the fork server shares with them once), sampled every 0.2 s from /proc,
and the wall time. Ratios 15,000 / 1,500 (goals: each peak <= 3 GB, ratio <= 1.3; wall <= 2x).

``keepup``: one epoch (or its first ``--steps``) of the 1,500-image folder at 128 px: the
share of wall time the training loop waited for batches and img/s, as logged per epoch in
``train_log.jsonl``, with 2 loader workers and with none (decoding in the training
process); beside them the same images decoded once into memory (128 px centre crops,
in-memory loader) trained by the same loop in this process: the pipeline's upper bound
(goal: wait <= 10%).

``defaults``: supernet training img/s on Fashion-MNIST and CIFAR-10 (in memory) with this
tree and with ``--baseline`` (a commit, checked out to a temporary worktree and imported
through PYTHONPATH with the same virtualenv), runs alternating, median of ``--repeats``
(goal: this tree >= 0.95x).

Pause background experiments (kill -STOP) while timing; say what else ran.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CIFAR = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"
NAS = [sys.executable, "-m", "nas"]


# ------------------------------------------------------------------ photo folders
def make_photos(out: Path, n_train: int, n_test: int = 150, classes: int = 5) -> Path:
    """A photo folder of ``n_train`` + ``n_test`` JPEGs of 500x375 from CIFAR-10 (made once;
    ``.complete`` marks it)."""
    from PIL import Image

    from nas.data import load_dataset

    folder = out / f"photos-{n_train}"
    if (folder / ".complete").exists():
        return folder
    cifar = load_dataset(str(CIFAR), "stream")
    for split, files, n in (("train", cifar.train, n_train), ("test", cifar.test, n_test)):
        per = n // classes
        labels = files.labels.tolist()
        for c in range(classes):
            target = folder / split / cifar.classes[c]
            target.mkdir(parents=True, exist_ok=True)
            picked = [i for i, label in enumerate(labels) if label == c][:per]
            for j, i in enumerate(picked):
                with Image.open(files.path(i)) as img:
                    img.convert("RGB").resize((500, 375), Image.BICUBIC).save(
                        target / f"{j:05d}.jpg", quality=85)
    (folder / ".complete").touch()
    return folder


# ------------------------------------------------------------------ process-tree memory
def _children(pid: int):
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    out = []
    for t in tasks:
        try:
            out += [int(c) for c in Path(f"/proc/{pid}/task/{t}/children").read_text().split()]
        except OSError:
            pass
    return out


def _descendants(pid: int):
    found, todo = [], _children(pid)
    while todo:
        p = todo.pop()
        found.append(p)
        todo += _children(p)
    return found


def _memory_kb(pid: int):
    """``(rss, pss)`` of a process in kB (0, 0 when it is gone)."""
    try:
        rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text()
                   .splitlines() if line.startswith("VmRSS:"))
        pss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/smaps_rollup")
                   .read_text().splitlines() if line.startswith("Pss:"))
        return rss, pss
    except (OSError, StopIteration, ValueError):
        return 0, 0


def run_measured(cmd, env) -> dict:
    """Run ``cmd``; its wall time and the peaks of its own memory and its descendants'."""
    peaks = {"main_rss": 0, "main_pss": 0, "workers_rss": 0, "workers_pss": 0, "workers": 0}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    done = threading.Event()

    def sample():
        while not done.is_set():
            rss, pss = _memory_kb(proc.pid)
            peaks["main_rss"] = max(peaks["main_rss"], rss)
            peaks["main_pss"] = max(peaks["main_pss"], pss)
            kids = [_memory_kb(p) for p in _descendants(proc.pid)]
            peaks["workers_rss"] = max(peaks["workers_rss"], sum(k[0] for k in kids))
            peaks["workers_pss"] = max(peaks["workers_pss"], sum(k[1] for k in kids))
            peaks["workers"] = max(peaks["workers"], len(kids))
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    output = proc.communicate()[0]
    done.set()
    thread.join()
    if proc.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{output[-3000:]}")
    return {"wall_s": time.perf_counter() - started, **peaks, "output": output}


def scale(photos: Path) -> None:
    rows = {}
    for n in (1500, 15000):
        folder = photos / f"photos-{n}"
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "NAS_CACHE_DIR": f"{tmp}/cache"}  # a fresh cache
            # --no-eval: the closing evaluation reads the validation carve (10% of the
            # images), work that grows with the data by design and comes after training
            cmd = [*NAS, "supernet", "train", "--data", str(folder), "--steps", "20",
                   "--resolution", "96", "--batch-size", "32", "--no-eval", "-o", f"{tmp}/run"]
            row = run_measured(cmd, env)
        rows[n] = row
        print(f"{n:6,} images: wall {row['wall_s']:.1f} s; peak training process "
              f"{row['main_rss'] / 2**20:.2f} GB RSS ({row['main_pss'] / 2**20:.2f} GB PSS); "
              f"loader workers together ({row['workers']} processes) "
              f"{row['workers_rss'] / 2**20:.2f} GB RSS, {row['workers_pss'] / 2**20:.2f} GB "
              "PSS", flush=True)
    a, b = rows[1500], rows[15000]
    print(f"15,000 / 1,500: wall {b['wall_s'] / a['wall_s']:.2f}x (goal <= 2); training "
          f"process {b['main_rss'] / a['main_rss']:.2f}x RSS; workers "
          f"{b['workers_rss'] / max(a['workers_rss'], 1):.2f}x RSS, "
          f"{b['workers_pss'] / max(a['workers_pss'], 1):.2f}x PSS (goal <= 1.3)")


def _epoch_record(run_dir: Path) -> dict:
    lines = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    return [r for r in lines if "epoch" in r][-1]


def keepup(photos: Path, resolution: int = 128, steps: int = 0) -> None:
    folder = photos / "photos-1500"
    results = {}
    # --steps N: the first N steps of the epoch (its record is written when training
    # stops), for a machine where a whole epoch at 128 px takes too long
    length = ["--steps", str(steps)] if steps else ["--epochs", "1"]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NAS_CACHE_DIR": f"{tmp}/cache"}
        for workers in (2, 0):
            out = Path(tmp) / f"w{workers}"
            cmd = [*NAS, "supernet", "train", "--data", str(folder), *length,
                   "--resolution", str(resolution), "--batch-size", "32", "--loader-workers",
                   str(workers), "--no-eval", "-o", str(out)]
            run_measured(cmd, env)
            results[workers] = _epoch_record(out)
            r = results[workers]
            print(f"streamed, {workers} loader workers: {r['img_per_s']:.1f} img/s, waiting for "
                  f"data {r['data_wait']:.1%} of the epoch ({r['steps']} steps)", flush=True)
        held = _in_memory_epoch(folder, resolution, env, results[2]["steps"])
    print(f"same images held in memory (128 px crops, decoded before): {held['img_per_s']:.1f} "
          f"img/s, waiting {held['data_wait']:.1%}")
    print(f"streamed with 2 workers / in memory: {results[2]['img_per_s'] / held['img_per_s']:.2f}x"
          f" img/s; with no worker: {results[0]['img_per_s'] / held['img_per_s']:.2f}x "
          "(goal: wait <= 10%)")


def _in_memory_epoch(folder: Path, resolution: int, env, steps: int) -> dict:
    """The supernet trained for ``steps`` steps on the folder's images decoded once into
    memory (centre crops at ``resolution``), by the same loop; in a child process with the
    same environment."""
    code = f"""
import json, os, random, sys, tempfile
import torch
sys.path.insert(0, {str(ROOT)!r})
from nas.data import ImageSet, Loader, image_stats, load_dataset
from nas.data.recipe import make_recipe
from nas.train import LoopConfig, data_splits, fit, create_optimizer, create_schedule
from nas.train.supernet import ArchSampler
from nas.supernet import Supernet
import nas
d = load_dataset({str(folder)!r}, "stream")
train, _ = data_splits(d, LoopConfig())
eval_recipe = d.recipe({resolution})
t = eval_recipe.eval_transform()
from nas.data.decode import decode_file
images = torch.stack([t(decode_file(train.path(i), train.form, eval_recipe.eval_resize))
                      for i in range(len(train))])
held = ImageSet(images, train.labels)
mean, std = image_stats(held)
loader = Loader(held, 32, mean, std, train=True, channels_last=True,
                recipe=make_recipe({resolution}, True), num_classes=len(d.classes))
space = nas.load_space("mixnet_300m")
torch.manual_seed(0)
net = Supernet(space, num_classes=len(d.classes), in_chans=3).to(memory_format=torch.channels_last)
opt = create_optimizer(net, "adamw", 2e-3, 0.05)
sched = create_schedule(opt, {steps}, 0.05)
sampler = ArchSampler(space, "sandwich", random.Random(0))
def step(x, y):
    teacher = None
    for arch, distilled in sampler.step():
        logits = net(x, arch)
        if distilled and teacher is not None:
            loss = -(teacher * torch.log_softmax(logits, 1)).sum(1).mean()
        else:
            loss = torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.1)
            teacher = torch.softmax(logits.detach(), 1)
        loss.backward()
    return loss.item()
log = os.path.join(tempfile.mkdtemp(), "log.jsonl")
net.train()
fit(step, net.parameters(), opt, sched, loader, {steps}, 0, grad_clip=5.0,
    checkpoint_every=10**9, save=lambda s: None, log_path=log, desc="held", progress=False)
print(json.dumps([json.loads(l) for l in open(log) if '"epoch"' in l][-1]))
"""
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def defaults(baseline: str, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old),
                        baseline], check=True, capture_output=True)
        try:
            for data, steps in (("fashion-mnist", 40), (str(CIFAR), 40)):
                rates = {"this tree": [], baseline: []}
                for r in range(repeats):
                    for name, path in (("this tree", ROOT), (baseline, old)):
                        label = "fmnist" if data == "fashion-mnist" else "cifar10"
                        out = Path(tmp) / f"{label}-{name}-{r}".replace(" ", "-")
                        env = {**os.environ, "PYTHONPATH": str(path)}
                        done = subprocess.run([*NAS, "supernet", "train", "--data", data,
                                               "--steps", str(steps), "--no-eval", "-o",
                                               str(out)], env=env, capture_output=True,
                                              text=True)
                        if done.returncode:
                            raise SystemExit(f"{name} on {data} failed:\n{done.stderr[-3000:]}")
                        lines = (out / "train_log.jsonl").read_text().splitlines()
                        last = json.loads([line for line in lines if '"step"' in line][-1])
                        rates[name].append(last["img_per_s"])
                a, b = (statistics.median(v) for v in rates.values())
                label = "fashion-mnist" if data == "fashion-mnist" else "cifar-10"
                print(f"{label}: this tree {a:.1f} img/s, {baseline} {b:.1f} img/s (medians of "
                      f"{repeats}: {rates}); ratio {a / b:.3f} (goal >= 0.95)", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                           capture_output=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    photos = sub.add_parser("photos")
    photos.add_argument("--out", type=Path, required=True)
    for name in ("scale", "keepup"):
        sp = sub.add_parser(name)
        sp.add_argument("--photos", type=Path, required=True)
        if name == "keepup":
            sp.add_argument("--steps", type=int, default=0,
                            help="the first N steps instead of the whole epoch")
    d = sub.add_parser("defaults")
    d.add_argument("--baseline", required=True)
    d.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if args.what == "photos":
        for n in (1500, 15000):
            print(make_photos(args.out, n))
    elif args.what == "scale":
        scale(args.photos)
    elif args.what == "keepup":
        keepup(args.photos, steps=args.steps)
    else:
        defaults(args.baseline, args.repeats)


if __name__ == "__main__":
    main()
