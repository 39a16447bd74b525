"""Study: a training-speed estimate as a second-stage score (issue 28, item 3).

    .venv/bin/python experiments/studies/estimators/training_speed.py train I N  # shard I of N
    .venv/bin/python experiments/studies/estimators/training_speed.py score REF2 [REF3 ...]

``train``: each architecture of ``studies/reference_cifar10`` trained from scratch for the
first 60 steps of the reference's own recipe (its data, carve, batch, optimiser and the
warm-up and cosine schedule of its whole epoch; seed 7, not one of the reference's
seeds; the model in torch's default memory format, where the reference trains it
channels-last: the same arithmetic up to rounding), every step's training loss appended
to ``training_speed.csv`` (one row an architecture: id, then the 60 losses; a rerun skips
the ones written). About 25 s an architecture on one core (a sixth of the reference's
epoch).

``score``: the training speed estimate (TSE, Ru et al., "Speedy Performance Estimation for
Neural Architecture Search", NeurIPS 2021: minus the sum of the training losses; also the
last 10 steps' mean) against the 3-seed truth, alone, and added by rank to ridge/summary's
out-of-fold prediction (``variants.py``'s folds and extra references), weights 0.25-1,
with the paired-bootstrap gain over ridge/summary. A second stage would train only the
predictor's best few hundred candidates this way, so only the truth's architectures are
needed: the combination fits nothing on the scores.
"""

import csv
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import kendalltau, rankdata
from variants import REFERENCE, out_of_fold, paired_gain, pool, ridge

import nas
from nas.data import image_stats
from nas.reference import load_reference, reference_config
from nas.train import RetrainConfig
from nas.train.loop import data_splits, load_data, total_steps, train_loader
from nas.train.optim import create_optimizer, create_schedule

OUT = Path(__file__).parent / "training_speed.csv"
STEPS, SEED = 60, 7


def losses_of(arch: str, train, dataset, mean, std, config) -> list:
    loader = train_loader(train, dataset, mean, std, config, torch.device("cpu"))
    total = total_steps(config, loader)
    torch.manual_seed(SEED)
    random.seed(SEED)
    model = nas.build_model(nas.Architecture.parse(arch), num_classes=len(dataset.classes),
                            in_chans=dataset.channels)
    optimizer = create_optimizer(model, config.optimizer, config.lr, config.weight_decay)
    schedule = create_schedule(optimizer, total, config.warmup)
    model.train()
    losses = []
    for step, (x, y) in enumerate(loader):
        if step == STEPS:
            break
        loss = F.cross_entropy(model(x), y, label_smoothing=config.label_smoothing)
        optimizer.zero_grad()
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        schedule.step()
        losses.append(round(loss.item(), 5))
    return losses


def train(shard: int, shards: int) -> None:
    torch.set_num_threads(1)
    archs = load_reference(REFERENCE)[1][["id", "arch"]]
    done = {row[0] for row in csv.reader(OUT.open())} if OUT.exists() else set()
    ref = reference_config(REFERENCE)
    config = RetrainConfig(arch=archs.arch[0], epochs=1.0, batch_size=ref.batch_size,
                           lr=ref.lr, seed=SEED, **ref.data_settings()).validate().resolved()
    dataset = load_data(config)
    train_split, _ = data_splits(dataset, config)
    mean, std = image_stats(train_split)
    for k, row in archs.iterrows():
        if k % shards != shard or row.id in done:
            continue
        started = time.perf_counter()
        losses = losses_of(row.arch, train_split, dataset, mean, std, config)
        with OUT.open("a", newline="") as f:  # one whole line an architecture
            csv.writer(f).writerow([row.id, *losses])
        print(f"{k} {row.id}: {time.perf_counter() - started:.1f} s, last loss {losses[-1]}",
              flush=True)


def score(extra_refs) -> None:
    data = pool(extra_refs)
    losses = {row[0]: np.array(row[1:], float) for row in csv.reader(OUT.open())}
    have = [k for k, i in enumerate(data.ref.id) if i in losses]
    truth = data.truth[have]
    base = [p[have] for p in (out_of_fold(data, data.summary.get, ridge, False, r)
                              for r in range(5))]
    print(f"{len(have)} of the truth's {len(data.ref)} architectures trained {STEPS} steps; "
          f"ridge/summary on them: tau {np.mean([kendalltau(b, truth)[0] for b in base]):.3f}")
    rng = np.random.default_rng(0)
    for name, of in (("TSE (minus the sum of the losses)", lambda v: -v.sum()),
                     ("minus the last 10 steps' mean loss", lambda v: -v[-10:].mean())):
        s = np.array([of(losses[data.ref.id[k]]) for k in have])
        print(f"{name}: tau {kendalltau(s, truth)[0]:.3f} alone")
        for w in (0.25, 0.5, 1.0):
            both = [rankdata(b) + w * rankdata(s) for b in base]
            taus = [kendalltau(c, truth)[0] for c in both]
            print(f"  rank of ridge/summary + {w} x its rank: tau {np.mean(taus):.3f}   gain "
                  "{:+.3f} [{:+.3f}, {:+.3f}]".format(*paired_gain(both, base, truth, rng)))


if __name__ == "__main__":
    if sys.argv[1:2] == ["train"] and len(sys.argv) == 4:
        train(int(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1:2] == ["score"]:
        score(sys.argv[2:])
    else:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        sys.exit(2)
