"""One image file decoded to the data set's common form (Pillow).

The common form (:class:`Form`) is decided once for the whole data set from every image's
header (:mod:`nas.data.image_folder`): one channel count, one value range for high-bit-depth
images and, for small images only, one square side. Decoding a JPEG far larger than the
size it is trained at uses Pillow's draft mode: the decoder itself scales by 1/2, 1/4 or
1/8 (a DCT-domain reduction, several times faster than decoding at full size and resizing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ..errors import DataError

__all__ = ["Form", "to_form", "decode_file", "open_image", "GREY_MODES", "HIGH_DEPTH_MODES"]

GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
HIGH_DEPTH_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


def open_image(path):
    """``PIL.Image.open(path)``, its failures a :class:`DataError` naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot decode image ({e})") from None


@dataclass(frozen=True)
class Form:
    """The common form every image of a data set is decoded to.

    Attributes:
        channels: 1 (greyscale) or 3 (RGB).
        side: small images of several sizes are resized (shorter side) and centre-cropped
            to ``side`` x ``side``; None keeps each image's own size.
        value_range: ``(lo, hi)`` mapped linearly to 0..255 for high-bit-depth images.
    """

    channels: int
    side: Optional[int] = None
    value_range: Optional[Tuple[float, float]] = None


def to_form(img, form: Form):
    """``img`` (a Pillow image) in the common form, as a Pillow image of mode L or RGB."""
    from PIL import Image

    if img.mode in HIGH_DEPTH_MODES:
        lo, hi = form.value_range
        values = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(np.rint((values - lo) * (255.0 / (hi - lo))), 0, 255)
                              .astype(np.uint8), mode="L")
    if img.mode == "La":  # premultiplied alpha: Pillow converts it only via LA
        img = img.convert("LA")
    img = img.convert("RGB" if form.channels == 3 else "L")
    if form.side is not None and img.size != (form.side, form.side):
        w, h = img.size
        scale = form.side / min(w, h)
        new = (max(form.side, round(w * scale)), max(form.side, round(h * scale)))
        img = img.resize(new, Image.BILINEAR)
        left, top = (new[0] - form.side) // 2, (new[1] - form.side) // 2
        img = img.crop((left, top, left + form.side, top + form.side))
    return img


def decode_file(path: str, form: Form, min_side: int = 0):
    """The image at ``path`` in the common form (a Pillow image, mode L or RGB).

    Args:
        path: the file.
        form: the data set's common form.
        min_side: the shorter side the caller needs at least; a JPEG is decoded at the
            smallest of 1/1, 1/2, 1/4, 1/8 of its size that keeps its shorter side at or
            above it (0: full size).

    Raises:
        DataError: the file cannot be decoded (named).
    """
    from PIL import UnidentifiedImageError

    with open_image(path) as img:
        try:
            if min_side and img.format == "JPEG":
                w, h = img.size
                scale = min_side / min(w, h)
                if scale < 0.5:
                    # draft() keeps the result at or above the requested size
                    img.draft(img.mode, (max(1, int(w * scale + 0.5)),
                                         max(1, int(h * scale + 0.5))))
            img.load()
            return to_form(img, form)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            raise DataError(f"{path}: cannot decode image mode {img.mode!r} ({e})") from None
