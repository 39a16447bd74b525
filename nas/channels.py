"""Channel arithmetic shared by the cost model, the builders and the exporter.

Every width the network uses is derived here, so the analytic cost model and the
modules it must agree with can never drift apart.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

Split = Union[str, Tuple[int, ...]]

WIDTH_DIVISOR = 8


def mid_channels(in_channels: int, expansion: float) -> int:
    """Expanded width of an inverted-residual block.

    ``in_channels * expansion`` rounded to the nearest multiple of 8 (at least 8).
    For the integer expansions of MixNet and widths that are multiples of 8 this is
    exactly ``in_channels * expansion``; the rounding only matters for fractional
    expansions, and keeps grouped 1x1 convs and channel splits well defined.
    """
    if expansion == 1:
        return in_channels
    raw = in_channels * expansion
    return max(WIDTH_DIVISOR, int(raw / WIDTH_DIVISOR + 0.5) * WIDTH_DIVISOR)


def se_channels(in_channels: int, se_ratio: float) -> int:
    """Squeeze-excitation width: block *input* channels x ratio (MixNet convention).

    Rounded half up, at least 1; 0 when the ratio is 0 (no SE).
    """
    if se_ratio <= 0:
        return 0
    return max(1, int(in_channels * se_ratio + 0.5))


def make_divisible(value: float, divisor: int = WIDTH_DIVISOR, round_limit: float = 0.9) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, never below ``divisor`` nor
    more than 10% below ``value`` (timm's ``make_divisible``, TensorFlow's ``_make_divisible``
    in the MobileNet reference code)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < round_limit * value else rounded


def hard_se_channels(mid_channels_: int, ratio: float) -> int:
    """MobileNetV3's SE width: *expanded* channels x ratio, :func:`make_divisible` by 8;
    0 when the ratio is 0 (no SE)."""
    if ratio <= 0:
        return 0
    return make_divisible(mid_channels_ * ratio)


def split_channels(total: int, groups: int, rule: Split = "equal") -> Tuple[int, ...]:
    """Split ``total`` channels into ``groups`` in order (smallest kernel first).

    Rules:
      * ``"equal"``: ``total // groups`` each, the remainder to the first group
        (MixNet's reference code).
      * ``"exp"``: group ``i`` gets ``total // 2**(i+1)``, the last group the rest.
      * a tuple of positive integer ratios: group ``i`` gets
        ``total * r_i // sum(r)``, the remainder to the first group.

    A group may come out empty; callers that need non-empty groups check
    ``min(...) > 0`` (the space loader rejects such splits).
    """
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    if groups == 1:
        return (total,)
    if rule == "equal":
        sizes = [total // groups] * groups
    elif rule == "exp":
        sizes = [total // 2 ** (i + 1) for i in range(groups - 1)]
        sizes.append(total - sum(sizes))
        return tuple(sizes)
    else:
        ratios = tuple(rule)
        if len(ratios) != groups:
            raise ValueError(f"split {ratios} has {len(ratios)} parts, expected {groups}")
        denom = sum(ratios)
        sizes = [total * r // denom for r in ratios]
    sizes[0] += total - sum(sizes)
    return tuple(sizes)


def conv_out_size(size: int, kernel: int, stride: int, padding: Optional[int] = None) -> int:
    """Spatial output size of a convolution, 'same'-padded (padding = kernel // 2) unless
    ``padding`` is given (ConvMixer's patch embedding has none)."""
    pad = kernel // 2 if padding is None else padding
    return (size + 2 * pad - kernel) // stride + 1


def adown_out_size(size: int) -> int:
    """Output size of ADown: a 2x2 stride-1 average pool, then 3x3 stride-2 (padding 1)."""
    return (size - 1 + 2 - 3) // 2 + 1


def check_groups(sizes: Sequence[int]) -> bool:
    """True when every channel group is non-empty."""
    return all(s > 0 for s in sizes)
