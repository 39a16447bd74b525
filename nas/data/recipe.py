"""The data recipe: how training and evaluation images are made, in timm's names.

Two kinds, decided by the images' size (:func:`make_recipe`):

* ``small`` (images of at most :data:`SMALL_SIDE` px, e.g. Fashion-MNIST, CIFAR-10): the
  recipe nas has always used for them, pad-and-crop by 1/14 of the side and horizontal
  flips for training, images as they are for evaluation, both resized to ``resolution``
  when it differs. The committed CIFAR-10 references were trained with it.
* ``crop`` (photos): the field's recipe (timm's ``create_transform``, once-for-all's
  loader): ``RandomResizedCrop`` to ``resolution`` with ``scale`` (0.08, 1) and ``ratio``
  (3/4, 4/3), horizontal flip with probability ``hflip``; evaluation resizes the shorter
  side to ``floor(resolution / crop_pct)`` and centre-crops ``resolution``.

Options on both: RandAugment (``aa``, timm's string ``rand-m9-n2``: 2 ops of magnitude 9),
mixup and cutmix (``mixup``, ``cutmix``: Beta(alpha, alpha) mixing of whole batches, one of
the two per batch when both are on). Label smoothing is the trainer's (``--label-smoothing``).
torchvision's transforms v2 do the work; a recipe only names them.

A recipe is plain data (picklable for loader workers) and describes itself in one line
(:meth:`Recipe.describe`), which checkpoints, references and predictors record: results
made with different recipes are not pooled.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace
from typing import Callable, Optional, Tuple

from ..errors import UsageError

__all__ = ["Recipe", "make_recipe", "SMALL_SIDE", "DEFAULT_PHOTO_RESOLUTION", "parse_aa",
           "same_recipe"]

#: Images whose (median) shorter side is at most this keep the small-image recipe.
SMALL_SIDE = 64
#: Photos train at this side unless ``--resolution`` says otherwise (timm's and MixNet's
#: ImageNet input), never at their native size.
DEFAULT_PHOTO_RESOLUTION = 224


def parse_aa(text: str) -> Optional[Tuple[int, int]]:
    """timm's RandAugment string ``rand-m{magnitude}[-n{ops}]`` -> ``(ops, magnitude)``;
    empty -> None.

    Raises:
        UsageError: another string.
    """
    if not text:
        return None
    match = re.fullmatch(r"rand(?:-m(\d+))?(?:-n(\d+))?(?:-mstd[\d.]+)?", text, re.ASCII)
    if not match:
        raise UsageError(f"--aa: expected timm's RandAugment string rand-m<magnitude>[-n<ops>] "
                         f"(e.g. rand-m9-n2), got {text!r}")
    magnitude, ops = int(match[1] or 9), int(match[2] or 2)
    if not 0 <= magnitude <= 30:
        raise UsageError(f"--aa: magnitude must be in [0, 30], got {magnitude}")
    return ops, magnitude


@dataclass(frozen=True)
class Recipe:
    """How one data set's images become training and evaluation inputs.

    Attributes:
        kind: ``small`` or ``crop`` (see the module docstring).
        resolution: the side of every input (pixels).
        native: small recipe: the side images are stored at (pad-and-crop works there);
            crop recipe: the photos' median shorter side (information only).
        hflip: probability of a horizontal flip in training.
        scale_min: crop recipe: the smallest area fraction RandomResizedCrop takes.
        crop_pct: crop recipe: evaluation's centre crop as a fraction of the resized side.
        aa: timm's RandAugment string, or empty.
        mixup, cutmix: Beta alphas of batch mixing (0: off).
    """

    kind: str
    resolution: int
    native: int = 0
    hflip: float = 0.5
    scale_min: float = 0.08
    crop_pct: float = 0.875
    aa: str = ""
    mixup: float = 0.0
    cutmix: float = 0.0

    @property
    def pad(self) -> int:
        """Small recipe: the pad-and-crop margin, in native pixels."""
        return max(1, self.native // 14)

    @property
    def eval_resize(self) -> int:
        """Crop recipe: the shorter side images are resized to before the centre crop."""
        return int(math.floor(self.resolution / self.crop_pct))

    def decode_side(self, train: bool) -> int:
        """The shorter side a file must be decoded at, at least (JPEG draft mode): twice the
        training crop, or the evaluation resize; 0 for the small recipe (native size)."""
        if self.kind == "small":
            return 0
        return 2 * self.resolution if train else self.eval_resize

    def with_resolution(self, resolution: int) -> "Recipe":
        return replace(self, resolution=resolution)

    def describe(self) -> str:
        """One line naming every choice (what checkpoints and references record)."""
        if self.kind == "small":
            words = (f"small: pad-and-crop {self.pad}px of {self.native}px + hflip "
                     f"{self.hflip:g}, evaluated as is")
            if self.resolution != self.native:
                words += f", resized to {self.resolution}px"
        else:
            words = (f"crop: RandomResizedCrop {self.resolution}px scale ({self.scale_min:g}, 1) "
                     f"ratio (3/4, 4/3) + hflip {self.hflip:g}; eval resize {self.eval_resize}"
                     f" + centre crop {self.resolution} (crop_pct {self.crop_pct:g})")
        if self.aa:
            words += f"; RandAugment {self.aa}"
        if self.mixup or self.cutmix:
            words += f"; mixup {self.mixup:g} cutmix {self.cutmix:g}"
        return words

    def to_dict(self) -> dict:
        return asdict(self)

    # ------------------------------------------------------------ transforms (per image)
    def train_transform(self) -> Callable:
        """A Pillow image in the common form -> uint8 tensor ``[C, R, R]``, augmented (the
        torch random generator draws the augmentation: seed it per image)."""
        from torchvision.transforms import v2

        small = self.kind == "small"
        if small:
            steps = [v2.PILToTensor(), v2.RandomCrop(self.native, padding=self.pad)]
        else:
            steps = [v2.RandomResizedCrop(self.resolution, scale=(self.scale_min, 1.0),
                                          ratio=(3 / 4, 4 / 3), antialias=True)]
        if self.hflip:
            steps.append(v2.RandomHorizontalFlip(self.hflip))
        aa = parse_aa(self.aa)
        if aa is not None:
            steps.append(v2.RandAugment(num_ops=aa[0], magnitude=aa[1]))
        if not small:
            steps.append(v2.PILToTensor())
        elif self.resolution != self.native:
            steps.append(v2.Resize((self.resolution, self.resolution), antialias=True))
        return v2.Compose(steps)

    def eval_transform(self) -> Callable:
        """A Pillow image in the common form -> uint8 tensor ``[C, R, R]``."""
        from torchvision.transforms import v2

        if self.kind == "small":
            steps = [v2.PILToTensor()]
            if self.resolution != self.native:
                steps.append(v2.Resize((self.resolution, self.resolution), antialias=True))
            return v2.Compose(steps)
        return v2.Compose([v2.Resize(self.eval_resize, antialias=True),
                           v2.CenterCrop(self.resolution), v2.PILToTensor()])

    def eval_steps(self) -> dict:
        """What :meth:`eval_transform` does, for someone deploying the weights without nas:
        ``{"resize_shorter": N, "centre_crop": R}`` (photos), ``{"resize": [R, R]}`` (small
        images at another size) or ``{}`` (small images as they are); then pixels / 255
        and the mean and std the weights were trained with."""
        if self.kind == "small":
            return {} if self.resolution == self.native else {
                "resize": [self.resolution, self.resolution]}
        return {"resize_shorter": self.eval_resize, "centre_crop": self.resolution}

    # ------------------------------------------------------------ batch mixing
    def mixer(self, num_classes: int) -> Optional[Callable]:
        """Mixup / cutmix of a float batch and its labels -> (batch, soft labels), or None
        when both are off (the torch random generator draws: seed it per batch)."""
        if not (self.mixup or self.cutmix):
            return None
        from torchvision.transforms import v2

        mixers = []
        if self.mixup:
            mixers.append(v2.MixUp(alpha=self.mixup, num_classes=num_classes))
        if self.cutmix:
            mixers.append(v2.CutMix(alpha=self.cutmix, num_classes=num_classes))
        return mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)


def make_recipe(native: int, small: bool, resolution: int = 0, *, hflip: float = 0.5,
                scale_min: float = 0.08, crop_pct: float = 0.875, aa: str = "",
                mixup: float = 0.0, cutmix: float = 0.0) -> Recipe:
    """The recipe of a data set whose images are ``native`` px (small ones: their common
    side; photos: their median shorter side), at ``resolution`` (0: the native side for
    small images; for photos :data:`DEFAULT_PHOTO_RESOLUTION`, or their side when smaller:
    never upsampled by default)."""
    parse_aa(aa)
    if small:
        return Recipe("small", resolution or native, native, hflip, scale_min, crop_pct, aa,
                      mixup, cutmix)
    default = min(native, DEFAULT_PHOTO_RESOLUTION) if native else DEFAULT_PHOTO_RESOLUTION
    return Recipe("crop", resolution or default, native, hflip, scale_min, crop_pct, aa,
                  mixup, cutmix)


def same_recipe(a: str, b: str) -> bool:
    """Whether two recorded recipes (:meth:`Recipe.describe`) are the same. An empty one was
    recorded before recipes were, when every network trained with the small-image recipe
    with flips at 0.5 and nothing else: it equals any such recipe (the data, and with it
    the pad, is compared apart)."""
    def legacy_like(text: str) -> bool:
        return text == "" or (text.startswith("small:") and "hflip 0.5," in text
                              and ";" not in text)

    return a == b or (legacy_like(a) and legacy_like(b) and "" in (a, b))
