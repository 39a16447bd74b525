import gzip
import http.server
import io
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas.cli import main
from nas.data import (
    DataError,
    Loader,
    dataset,
    fashion_mnist,
    image_folder,
    index,
    load_dataset,
    read_idx,
    train_val_split,
)
from nas.data import loader as loader_module

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
CIFAR = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10-jpg.tar.gz"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    blob = b"\x00\x00\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    blob += array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(blob) if gz else blob)


def fake_fmnist(folder: Path, n_train=50, n_test=20) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)))


def test_fashion_mnist_from_the_debian_package():
    d = load_dataset("fashion-mnist")
    assert d.train.images.shape == (60000, 1, 28, 28) and d.test.images.shape == (10000, 1, 28, 28)
    assert d.train.images.dtype == torch.uint8 and len(d.classes) == 10
    assert torch.bincount(d.train.labels).tolist() == [6000] * 10


def test_nas_data_dir_wins(tmp_path, monkeypatch):
    fake_fmnist(tmp_path / "fm")
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path / "fm"))
    assert len(load_dataset("fashion-mnist").train) == 50


@pytest.mark.parametrize("cut", [3, 10, 500])
def test_truncated_idx_is_a_clear_error(tmp_path, cut):
    fake_fmnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-cut] if cut != 3 else raw[:3]))
    with pytest.raises(DataError, match="truncated|magic"):
        read_idx(path)


def test_corrupt_gzip_and_bad_magic(tmp_path):
    (tmp_path / "x.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "x.gz")
    (tmp_path / "y").write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 8)
    with pytest.raises(DataError, match="magic"):
        read_idx(tmp_path / "y")


def test_incomplete_folder_names_the_missing_file(tmp_path, monkeypatch):
    fake_fmnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        load_dataset("fashion-mnist")


def test_nothing_found_without_download(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FMNIST", tmp_path / "nope")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist.load_fashion_mnist(download=False)


def test_image_stats_match_a_direct_computation():
    images = dataset.ImageSet(torch.randint(0, 256, (100, 3, 5, 5), dtype=torch.uint8),
                           torch.zeros(100, dtype=torch.int64))
    mean, std = dataset.image_stats(images, chunk=7)
    x = images.images.double() / 255
    torch.testing.assert_close(torch.tensor(mean, dtype=torch.float64), x.mean((0, 2, 3)))
    torch.testing.assert_close(torch.tensor(std, dtype=torch.float64),
                               x.std((0, 2, 3), correction=0))


def test_nothing_found_and_offline_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FMNIST", tmp_path / "nope")
    monkeypatch.setattr(fashion_mnist, "FMNIST_URL", "http://127.0.0.1:9/")  # discard port: refused
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist")


@pytest.fixture
def served_debian_files(tmp_path):
    """The Debian IDX files over HTTP on loopback, to exercise the checksummed download."""
    root = tmp_path / "www"
    shutil.copytree(DEBIAN, root)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_download_is_checksummed(served_debian_files, tmp_path, monkeypatch):
    root, url = served_debian_files
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FMNIST", tmp_path / "nope")
    monkeypatch.setattr(fashion_mnist, "FMNIST_URL", url)
    assert len(load_dataset("fashion-mnist").train) == 60000
    # a truncated file and a tampered file are both refused
    shutil.rmtree(tmp_path / "cache")
    good = (root / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="checksum"):
        load_dataset("fashion-mnist")
    shutil.rmtree(tmp_path / "cache")
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(good)
    bad = gzip.decompress((root / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bad[:-1] + b"\x01"))
    with pytest.raises(DataError, match="checksum"):
        load_dataset("fashion-mnist")


def make_folder(root: Path, classes=("cat", "dog"), n=3, size=(12, 12)) -> Path:
    for split in ("train", "test"):
        for i, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for j in range(n):
                color = (40 * i + 10 * j, 100, 200)
                Image.new("RGB", size, color).save(folder / f"{j}.png")
    return root


def test_image_folder_is_decoded_once_into_a_cache(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "imgs")
    d = load_dataset(str(root))
    assert d.classes == ["cat", "dog"] and d.train.images.shape == (6, 3, 12, 12)
    assert d.train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert d.train.images[3, 0, 0, 0].item() == 40  # dog, first image, red channel

    def boom(*a, **k):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(image_folder, "_decode_all", boom)
    monkeypatch.setattr(index, "_header", boom)  # nor are the headers read again
    again = load_dataset(str(root))
    assert torch.equal(again.train.images, d.train.images)
    streamed = load_dataset(str(root), "stream")  # the same index, no decode
    assert not streamed.in_memory and streamed.train.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_image_folder_tarball(tmp_path):
    root = make_folder(tmp_path / "pets")
    archive = tmp_path / "pets.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="pets")
    assert load_dataset(str(archive)).train.images.shape == (6, 3, 12, 12)


def test_processes_extracting_one_archive_at_once_each_get_it_whole(tmp_path):
    """torchrun's ranks open a .tar.gz at the same moment: none may remove or read another's
    half-done extraction (each extracts privately and renames; the first rename wins)."""
    archive = tmp_path / "many.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            for j in range(400):
                info = tarfile.TarInfo(f"many/{split}/c{j % 2}/{j}.bin")
                info.size = 2048
                tar.addfile(info, io.BytesIO(bytes(2048)))
    # each process lists what it got at once, as a rank starts to index it
    code = ("import os, sys; from pathlib import Path; from nas.data.index import extract; "
            "root = extract(Path(sys.argv[1])); "
            "print(sum(len(f) for _, _, f in os.walk(root)))")
    env = {**os.environ, "NAS_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(archive)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert all(rc == 0 and out.split() == ["800"] for out, _, rc in results), results
    extracted = tmp_path / "cache" / "extracted"
    (entry,) = [p for p in extracted.iterdir() if p.is_dir()]  # no private copy left behind
    assert sorted(p.name for p in extracted.iterdir()) == [entry.name, entry.name + "-lock"]


def test_what_a_killed_extraction_left_is_removed_by_the_next(tmp_path, monkeypatch):
    """A killed process leaves its part folder and its lock file, or (an earlier version)
    an entry extracted in place without its marker: the next extraction removes both and
    extracts whole."""
    root = make_folder(tmp_path / "pets")
    archive = tmp_path / "pets.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="pets")
    extracted = tmp_path / "cache" / "extracted"
    load_dataset(str(archive))
    (entry,) = [p for p in extracted.iterdir() if p.is_dir()]
    (entry / ".complete").unlink()  # cut before its marker
    shutil.rmtree(entry / "pets" / "train" / "dog")
    (extracted / f"{entry.name}.partx1y2" / "pets" / "train").mkdir(parents=True)
    # killed while it held the lock: the kernel releases it, the next one does not wait
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(600)",
         str(extracted / f"{entry.name}-lock")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    said = []

    def note(message):  # the waiting process says so; then the holder dies
        said.append(message)
        if "waiting" in message:
            holder.kill()
            holder.wait()

    monkeypatch.setattr(index, "note", note)
    assert load_dataset(str(archive)).train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert "another process is extracting it" in said[0] and "extracting into" in said[1]
    assert sorted(p.name for p in extracted.iterdir()) == [entry.name, entry.name + "-lock"]


@pytest.mark.parametrize("damage, fragment", [
    (lambda r: shutil.rmtree(r / "train" / "dog") or (r / "train" / "dog").mkdir(),
     "class folder has no images"),
    (lambda r: shutil.rmtree(r / "test"), "no such image folder"),
    (lambda r: shutil.rmtree(r / "test" / "dog"), "different class folders"),
    # more than 5% of a split unreadable: refused, naming the file
    (lambda r: (r / "train" / "cat" / "9.png").write_bytes(b"garbage"),
     r"1 of 7 images cannot be read.*9.png: cannot decode image"),
    (lambda r: (r / "train" / "cat" / "0.png").write_bytes(b"garbage"), "0.png: cannot decode"),
])
def test_broken_image_folders(tmp_path, damage, fragment):
    root = make_folder(tmp_path / "imgs")
    damage(root)
    with pytest.raises(DataError, match=fragment):
        load_dataset(str(root))


def test_missing_dataset_path():
    with pytest.raises(DataError, match="no dataset"):
        load_dataset("/no/such/dir")


def test_cli_data_errors_exit_2(tmp_path, capsys):
    tiny = str(Path(__file__).parents[1] / "spaces/tiny.yaml")
    code = main(["supernet", "train", "--space", tiny,
                 "--data", str(tmp_path / "absent"), "-o", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no dataset" in err[0]


def test_validation_split_is_seeded_and_disjoint():
    d = load_dataset("fashion-mnist")
    train, val = train_val_split(d.train, 0.1, seed=3)
    train2, val2 = train_val_split(d.train, 0.1, seed=3)
    assert len(val) == 6000 and len(train) == 54000
    assert torch.equal(val.labels, val2.labels) and torch.equal(val.images, val2.images)
    other, _ = train_val_split(d.train, 0.1, seed=4)
    assert not torch.equal(other.labels[:100], train.labels[:100])
    # disjoint and complete: label each image with its own index
    indexed = dataset.ImageSet(torch.zeros(1000, 1, 2, 2, dtype=torch.uint8), torch.arange(1000))
    tr, va = train_val_split(indexed, 0.2, seed=0)
    assert len(va) == 200 and not set(tr.labels.tolist()) & set(va.labels.tolist())
    assert sorted(tr.labels.tolist() + va.labels.tolist()) == list(range(1000))


def test_loader_augments_reproducibly():
    d = load_dataset("fashion-mnist")
    mean, std = d.stats()
    loader = Loader(d.train.subset(torch.arange(512)), 64, mean, std, train=True,
                    recipe=d.recipe(32), seed=5)
    assert loader.pad == 2 and loader.flip == 0.5
    x, y = next(loader.epoch(2))
    assert x.shape == (64, 1, 32, 32) and x.dtype == torch.float32
    assert abs(x.mean().item()) < 0.5 and 0.5 < x.std().item() < 1.5
    assert torch.equal(list(loader.epoch(2, start=3))[0][0], list(loader.epoch(2))[3][0])
    plain = Loader(d.train.subset(torch.arange(512)), 64, mean, std)
    assert len(plain) == 8
    first = next(plain.epoch(0))[0]
    expected = (d.train.images[:64].float() / 255 - mean[0]) / std[0]
    torch.testing.assert_close(first, expected)  # evaluation batches: in order, unaugmented


def test_pad_crop_is_a_shifted_window():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    out = loader_module._pad_crop(x, 1, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for b in range(2):
        windows = [padded[b, :, i:i + 4, j:j + 4] for i in range(3) for j in range(3)]
        assert any(torch.equal(out[b], w) for w in windows)


@pytest.mark.slow
@pytest.mark.skipif(not CIFAR.exists(), reason="shared/data/cifar10-jpg.tar.gz not present")
def test_cifar10_jpeg_tarball():
    d = load_dataset(str(CIFAR))
    assert d.classes[:3] == ["airplane", "automobile", "bird"]
    assert d.train.images.shape == (50000, 3, 32, 32) and d.test.images.shape == (10000, 3, 32, 32)
    assert torch.bincount(d.test.labels).tolist() == [1000] * 10
