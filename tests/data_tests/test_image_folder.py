"""Users' own image folders: every dataset-wide property from every image, every mode
decoded to its range, hidden entries are not data, degenerate data refused (issue 16).

Every rule holds on both paths: images held in memory and images streamed from the files
(issue 25), so the tests run over both (``mode``) and read images through ``image(i)``,
which both kinds of split have."""

import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas.data import DataError, load_dataset, train_val_split
from nas.data.dataset import ImageSet, image_stats


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(params=["memory", "stream"])
def mode(request):
    return request.param


def pixels(split) -> torch.Tensor:
    """Every image of a split, uint8 [N, C, H, W] (same-size images)."""
    return torch.stack([split.image(i) for i in range(len(split))])


def save(path: Path, image: Image.Image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def colour_folder(root: Path, n: int = 4, size=(16, 16)) -> Path:
    """Two classes told apart by colour only: red and blue."""
    for split in ("train", "test"):
        for name, rgb in (("blue", (30, 30, 200)), ("red", (200, 30, 30))):
            for j in range(n):
                save(root / split / name / f"{j + 1}.png", Image.new("RGB", size, rgb))
    return root


def test_channels_come_from_every_image_not_the_first(tmp_path, mode):
    root = colour_folder(tmp_path / "d")
    # a greyscale PNG that sorts first in the first class
    save(root / "train" / "blue" / "0.png", Image.new("L", (16, 16), 100))
    d = load_dataset(str(root), mode)
    assert d.channels == 3
    assert d.train.image(0)[:, 0, 0].tolist() == [100, 100, 100]  # replicated, not lost
    assert d.train.image(1)[:, 0, 0].tolist() == [30, 30, 200]  # blue stays blue
    assert d.train.image(len(d.train) - 1)[:, 0, 0].tolist() == [200, 30, 30]  # red stays red
    assert any("1 of 17 images are greyscale" in n for n in d.notes)


def test_greyscale_sets_stay_one_channel_and_a_grey_palette_is_grey(tmp_path, mode):
    root = tmp_path / "g"
    for split in ("train", "test"):
        for i, name in enumerate(("a", "b")):
            for j in range(3):
                save(root / split / name / f"{j}.png", Image.new("L", (8, 8), 40 + 100 * i))
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 77, 77, 77] + [0, 0, 0] * 254)
    save(root / "train" / "a" / "p.png", palette)
    d = load_dataset(str(root), mode)
    assert d.channels == 1 and not [n for n in d.notes if "held in memory" not in n
                                    and "streamed" not in n]
    assert sorted(pixels(d.train)[:, 0, 0, 0].tolist()) == [40, 40, 40, 77, 140, 140, 140]


def test_sizes_come_from_every_image(tmp_path, mode):
    root = colour_folder(tmp_path / "s", n=2)
    # the first file is large, most are 16x16, one is not square
    save(root / "train" / "blue" / "0.png", Image.new("RGB", (40, 40), (30, 30, 200)))
    save(root / "train" / "red" / "9.png", Image.new("RGB", (20, 32), (200, 30, 30)))
    d = load_dataset(str(root), mode)
    assert pixels(d.train).shape[1:] == (3, 16, 16)  # the median shorter side, not 40
    assert pixels(d.test).shape[1:] == (3, 16, 16)
    # resized and centre-cropped, a uniform image keeps its colour
    assert d.train.image(0).flatten(1).unique(dim=1).T.tolist() == [[30, 30, 200]]
    assert any("centre-cropped to 16x16" in n for n in d.notes)


def test_16_bit_greyscale_keeps_its_brightness(tmp_path, mode):
    root = tmp_path / "deep"
    for split in ("train", "test"):
        for name, value in (("bright", 3000), ("dim", 1000)):
            for j in range(3):
                image = Image.fromarray(np.full((8, 8), value, dtype=np.uint16))
                assert image.mode == "I;16"
                save(root / split / name / f"{j}.png", image)
    d = load_dataset(str(root), mode)
    assert d.channels == 1
    # one linear map for the whole dataset, 0..3000 -> 0..255: the classes stay apart
    assert pixels(d.train)[d.train.labels == 0].unique().tolist() == [255]
    assert pixels(d.train)[d.train.labels == 1].unique().tolist() == [85]


def test_float_and_32_bit_images_share_one_range(tmp_path, mode):
    root = tmp_path / "f"
    for split in ("train", "test"):
        for name, value in (("neg", -1.0), ("pos", 3.0)):
            for j in range(3):
                save(root / split / name / f"{j}.tif",
                     Image.fromarray(np.full((8, 8), value, dtype=np.float32)))
    d = load_dataset(str(root), mode)
    assert pixels(d.train)[d.train.labels == 0].unique().tolist() == [0]
    assert pixels(d.train)[d.train.labels == 1].unique().tolist() == [255]


def add_clutter(root: Path, image: Image.Image) -> None:
    """What notebooks, macOS, Windows and NAS boxes leave in a dataset folder."""
    save(root / "train" / ".ipynb_checkpoints" / "1-checkpoint.png", image)
    save(root / "train" / "blue" / ".ipynb_checkpoints" / "1-checkpoint.png", image)
    (root / "test" / ".ipynb_checkpoints").mkdir(parents=True)
    (root / "test" / ".ipynb_checkpoints" / "notes-checkpoint.ipynb").write_text("{}")
    (root / "train" / "red" / "._1.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (root / "train" / "red" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "train" / "red" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    save(root / "train" / "__MACOSX" / "red" / "1.png", image)
    save(root / "test" / "@eaDir" / "1.png", image)


def test_hidden_and_system_entries_are_not_data(tmp_path, mode):
    root = colour_folder(tmp_path / "h")
    add_clutter(root, Image.new("RGB", (16, 16), (0, 255, 0)))
    d = load_dataset(str(root), mode)
    assert d.classes == ["blue", "red"]
    assert len(d.train) == 8 and len(d.test) == 8
    assert not (pixels(d.train)[:, 1] == 255).any()  # no green checkpoint copy got in


def test_hidden_entries_in_an_archive_are_not_data(tmp_path, mode):
    root = colour_folder(tmp_path / "pets")
    add_clutter(root, Image.new("RGB", (16, 16), (0, 255, 0)))
    archive = tmp_path / "pets.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="pets")
        tar.add(root / "train", arcname="__MACOSX/train")  # sorts before pets/
    d = load_dataset(str(archive), mode)
    assert d.classes == ["blue", "red"] and len(d.train) == 8


def test_images_in_sub_folders_belong_to_their_class(tmp_path, mode):
    root = colour_folder(tmp_path / "n", n=2)
    save(root / "train" / "red" / "batch2" / "x.png", Image.new("RGB", (16, 16), (200, 30, 30)))
    (root / "train" / "red" / "labels.csv").write_text("x,1\n")
    d = load_dataset(str(root), mode)
    assert torch.bincount(d.train.labels).tolist() == [2, 3]
    assert any("not images are skipped (1 .csv)" in n for n in d.notes)


def test_one_class_is_refused(tmp_path, mode):
    root = tmp_path / "one"
    for split in ("train", "test"):
        for j in range(4):
            save(root / split / "cat" / f"{j}.png", Image.new("RGB", (8, 8), (10 * j, 0, 0)))
    with pytest.raises(DataError, match="only one class \\(cat\\).*nothing can be ranked"):
        load_dataset(str(root), mode)


def test_identical_images_are_refused(tmp_path, mode):
    root = tmp_path / "same"
    for split in ("train", "test"):
        for name in ("a", "b"):
            for j in range(3):
                save(root / split / name / f"{j}.png", Image.new("L", (8, 8), 50))
    with pytest.raises(DataError, match="every training image is the same"):
        load_dataset(str(root), mode)


def test_a_validation_split_too_small_for_the_classes_is_refused():
    labels = torch.arange(10).repeat(2)  # 10 classes, 20 images
    images = ImageSet(torch.randint(0, 255, (20, 1, 4, 4), dtype=torch.uint8), labels)
    classes = [str(i) for i in range(10)]
    with pytest.raises(DataError, match="validation split .* 2 image\\(s\\) for 10 classes.*"
                                        "--val-fraction"):
        train_val_split(images, 0.1, 0, classes=classes)
    train, val = train_val_split(images, 0.5, 0, classes=classes)  # 10 images: may rank
    assert len(val) == 10


def test_a_constant_channel_normalises_to_zero_not_to_nan():
    images = torch.zeros(6, 3, 4, 4, dtype=torch.uint8)
    images[:, 0] = torch.arange(6).view(6, 1, 1) * 40  # red varies, green/blue are 0
    mean, std = image_stats(ImageSet(images, torch.zeros(6, dtype=torch.int64)))
    assert std[1] == std[2] == 1.0 and mean[1] == 0.0 and 0 < std[0] < 1


def test_the_recorded_evaluation_steps_make_the_evaluation_input():
    """An export records ``eval_steps()`` for whoever deploys its weights without nas:
    followed literally, they give the input the weights were evaluated on."""
    from torchvision.transforms.v2 import functional as TF

    from nas.data.recipe import make_recipe

    photo = make_recipe(150, small=False, resolution=100)
    steps = photo.eval_steps()
    assert steps == {"resize_shorter": 114, "centre_crop": 100}
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (150, 210, 3),
                                                              dtype=np.uint8))
    by_hand = TF.pil_to_tensor(TF.center_crop(TF.resize(image, steps["resize_shorter"]),
                                              steps["centre_crop"]))
    assert torch.equal(by_hand, photo.eval_transform()(image))
    assert make_recipe(16, small=True, resolution=20).eval_steps() == {"resize": [20, 20]}
    assert make_recipe(16, small=True).eval_steps() == {}


def test_a_flat_folder_or_another_file_is_refused_saying_what_it_found(tmp_path, capsys):
    """Classes at the top level (the usual ImageFolder) are named with what to do; a file
    that is not an archive is one line, not tarfile's five."""
    from nas.cli import main

    flat = tmp_path / "flat"
    for name in ("cat", "dog", "ship"):
        save(flat / name / "1.png", Image.new("RGB", (8, 8), (0, 0, 0)))
    with pytest.raises(DataError, match="its 3 folder\\(s\\) \\(cat, dog, ship\\) look like "
                                        "classes: move them under train/"):
        load_dataset(str(flat))
    splits = tmp_path / "splits"  # test/ and valid/ but no train/: not classes
    for name in ("test", "valid"):
        save(splits / name / "cat" / "1.png", Image.new("RGB", (8, 8), (0, 0, 0)))
    with pytest.raises(DataError) as refused:
        load_dataset(str(splits))
    assert "expected train/ and test/" in str(refused.value)
    assert "look like classes" not in str(refused.value)
    text = tmp_path / "notes.txt"
    text.write_text("not images\n")
    assert main(["search", "--budget", "300M", "--data", str(text), "-o",
                 str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "notes.txt: not a data folder, nor a .tar.gz of one" in err[0], err


def test_same_data_knows_fashion_mnists_names_and_paths(tmp_path, monkeypatch):
    """What --supernet's data is compared with: --data fmnist is a supernet's
    fashion-mnist, and a relative path its absolute one."""
    from nas.data import same_data

    assert same_data("fmnist", "fashion-mnist") and same_data("fashion_mnist", "fmnist")
    assert not same_data("fashion-mnist", str(tmp_path))
    monkeypatch.chdir(tmp_path.parent)
    assert same_data(tmp_path.name, str(tmp_path))
