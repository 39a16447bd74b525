"""Photo-like image folders for the data tests: JPEGs larger than the small-image recipe's
64 px, different per seed, written in the ImageFolder layout."""

from pathlib import Path

import numpy as np
from PIL import Image


def photo(seed: int, size=(120, 90)) -> Image.Image:
    """A photo-like RGB image: smooth gradients plus noise, different per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * (1 + seed % 3)) % 256, (yy * 2 + seed * 7) % 256,
                     ((xx + yy) * (1 + seed % 5)) % 256], axis=-1)
    noise = rng.integers(0, 40, (h, w, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def photo_folder(root: Path, per_class=6, size=(120, 90), classes=("ant", "bee")) -> Path:
    for split, n in (("train", per_class), ("test", 2)):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for j in range(n):
                photo(100 * c + j + (0 if split == "train" else 50), size).save(
                    folder / f"{j}.jpg", quality=90)
    return root
