"""Tar shards in the WebDataset layout (issue 25): written from an image folder, read per
torchrun rank with the same labels and transforms, every rank and worker in step."""

import json

import pytest
import torch
from photos import photo_folder

from nas.data import image_stats, load_dataset, make_loader, train_val_split
from nas.data.shards import write_shards


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def shards(tmp_path):
    folder = load_dataset(str(photo_folder(tmp_path / "p", per_class=12)), "stream")
    index = write_shards(folder, tmp_path / "s", shard_size=5)
    return folder, tmp_path / "s", index


def test_shards_hold_every_image_with_its_label(shards):
    folder, root, index = shards
    assert index["splits"]["train"]["shard_lengths"] == [5, 5, 5, 5, 4]
    assert json.loads((root / "_info.json").read_text())["classes"] == ["ant", "bee"]
    d = load_dataset(str(root))
    assert d.classes == folder.classes and len(d.train) == 24 and len(d.test) == 4
    assert d.channels == 3 and not d.small and d.resolution == folder.resolution
    # the same images and labels as the folder, in another order
    loader = make_loader(d.train, 4, [0.5] * 3, [0.25] * 3, recipe=d.recipe(32), workers=0)
    labels = torch.cat([y for _, y in loader.epoch(0)])
    assert sorted(labels.tolist()) == sorted(folder.train.labels.tolist())
    mean, _ = image_stats(d.train)
    assert mean == pytest.approx(image_stats(folder.train)[0], abs=0.02)


def test_the_carve_is_per_sample_seeded_and_disjoint(shards):
    _, root, _ = shards
    d = load_dataset(str(root))
    rest, val = train_val_split(d.train, 0.25, seed=1, classes=d.classes)
    assert len(rest) + len(val) == 24 and 0 < len(val) < 24
    again_rest, again_val = train_val_split(d.train, 0.25, seed=1)
    assert len(again_val) == len(val)
    keys = {}
    for name, split in (("rest", rest), ("val", val)):
        loader = make_loader(split, 1, [0.5] * 3, [0.25] * 3, recipe=d.recipe(16), workers=0)
        keys[name] = {tuple(x.flatten()[:20].tolist()) for x, _ in loader.epoch(0)}
    assert not keys["rest"] & keys["val"]


def test_ranks_read_their_own_shards_in_step(shards):
    _, root, _ = shards
    d = load_dataset(str(root))
    recipe = d.recipe(16)

    def rank(r, workers=1):
        loader = make_loader(d.train, 4, [0.5] * 3, [0.25] * 3, recipe=recipe, train=True,
                             seed=2, workers=workers, part=(r, 2))
        return loader, list(loader.epoch(1))

    (l0, b0), (l1, b1) = rank(0), rank(1)
    # 5 shards over 2 ranks: uneven, yet both yield the same number of batches (no stall)
    assert len(l0) == len(l1) == len(b0) == len(b1) > 0
    assert all(x.shape == (2, 3, 16, 16) for x, _ in b0 + b1)  # each rank's half batch
    seen0 = {tuple(x[i].flatten()[:20].tolist()) for x, _ in b0 for i in range(2)}
    seen1 = {tuple(x[i].flatten()[:20].tolist()) for x, _ in b1 for i in range(2)}
    assert not seen0 & seen1


def test_same_seed_epoch_and_workers_give_the_same_batches_and_resume_exactly(shards):
    _, root, _ = shards
    d = load_dataset(str(root))
    recipe = d.recipe(16)

    def run(workers, start=0):
        loader = make_loader(d.train, 4, [0.5] * 3, [0.25] * 3, recipe=recipe, train=True,
                             seed=2, workers=workers)
        return list(loader.epoch(3, start=start))

    inline, pooled = run(0), run(1)  # one reader here, one in a worker process
    assert len(inline) == len(pooled) > 2
    for (x0, y0), (x1, y1) in zip(inline, pooled):
        assert torch.equal(x0, x1) and torch.equal(y0, y1)
    resumed = run(0, start=2)
    assert torch.equal(resumed[0][0], inline[2][0])
    two = run(2)
    assert torch.equal(torch.cat([y for _, y in two]).sort().values,
                       torch.cat([y for _, y in run(2)]).sort().values)
