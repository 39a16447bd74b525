"""Study: zero-cost proxies of every reference architecture, for predictors that aggregate
them by rank (AZ-NAS style; issue 28, item 3). Writes ``zero_cost.csv`` beside this script
(cached: a rerun computes only the architectures it lacks), which ``variants.py`` reads.

    .venv/bin/python experiments/studies/estimators/zero_cost.py REF [REF ...]

Proxies at initialisation (seed 0), on 64 training images of the first reference's data
at 32x32 (``nas.reference.estimator_context``), labels drawn at random (seed 0; the images'
own labels are not exposed to estimators):

* ``synflow`` (Tanaka et al. 2020): sum |theta * dR/dtheta| with every weight made
  positive and an all-ones input, R the sum of the output, in float64, BatchNorm in eval;
* ``snip`` (Lee et al. 2019): sum |theta * dL/dtheta| of the cross-entropy on the batch;
* ``grad_norm`` (Abdelfattah et al. 2021): the L2 norm of dL/dtheta over every weight.

Each is stored as log(1 + value); NASWOT comes from ``cache.csv`` (``run.py``).
"""

import math
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

import nas
from nas.reference import estimator_context, load_reference

HERE = Path(__file__).parent
OUT = HERE / "zero_cost.csv"


def proxies(model, images, labels):
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    model.zero_grad()
    F.cross_entropy(model(images), labels).backward()
    snip = sum(float((p * p.grad).detach().abs().sum()) for p in params)
    grad_norm = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in params))
    model.zero_grad()
    model.double().eval()
    with torch.no_grad():
        signs = [p.sign() for p in params]
        for p in params:
            p.abs_()
    model(torch.ones((1,) + tuple(images.shape[1:]), dtype=torch.float64)).sum().backward()
    synflow = sum(float((p * p.grad).detach().abs().sum()) for p in params)
    with torch.no_grad():
        for p, s in zip(params, signs):
            p.mul_(s)
    return {"synflow": math.log1p(synflow), "snip": math.log1p(snip),
            "grad_norm": math.log1p(grad_norm)}


def main() -> None:
    torch.set_num_threads(1)
    refs = sys.argv[1:]
    archs = pd.concat([load_reference(r)[1][["id", "arch"]] for r in refs]).drop_duplicates("id")
    have = pd.read_csv(OUT, dtype={"id": str}) if OUT.exists() else pd.DataFrame(columns=["id"])
    todo = archs[~archs.id.isin(set(have.id))]
    context = estimator_context(refs[0])
    images = context.images(64)
    labels = torch.randint(context.num_classes, (64,), generator=torch.Generator().manual_seed(0))
    rows, start = [], time.perf_counter()
    for r in todo.itertuples():
        torch.manual_seed(0)
        model = nas.build_model(nas.Architecture.parse(r.arch), num_classes=context.num_classes,
                                in_chans=images.shape[1])
        rows.append({"id": r.id, **proxies(model, images, labels)})
    if rows:
        out = pd.concat([have, pd.DataFrame(rows)], ignore_index=True)
        out.to_csv(OUT, index=False)
    print(f"{len(rows)} architectures scored in {time.perf_counter() - start:.0f} s "
          f"({len(have)} cached): {OUT}")


if __name__ == "__main__":
    main()
