"""Weight-sharing (supernet) layers: one weight at the largest shape, sliced per architecture.

Every layer here is told the active widths explicitly on each call (from a
:class:`nas.arch.Layer`); none stores an "active subnet". Each exposes its active
tensors through one accessor (``active_*``) that both ``forward`` and the extraction
of a static network use, so the two cannot disagree about which weights an
architecture owns:

* widths are prefix slices (channels ``[0, c)``);
* a grouped 1x1 conv is the block diagonal of the dense weight;
* a MixConv group of kernel ``k`` uses the centre ``k x k`` crop of the layer's one
  depthwise weight at the largest kernel, for the channels of that group;
* BatchNorm uses the first ``c`` entries of its affine parameters and statistics.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..arch import Layer

__all__ = ["ACTIVATIONS", "DynamicPointwise", "DynamicConv", "DynamicMixConv",
           "DynamicBatchNorm", "DynamicSqueezeExcite", "DynamicBlock", "DYNAMIC_BLOCKS"]

ACTIVATIONS = {"relu": F.relu, "relu6": F.relu6, "swish": F.silu, "hswish": F.hardswish,
               "gelu": F.gelu}

Region = tuple  # a tuple of slices, one per leading dimension


def _view(t: torch.Tensor, region: Region) -> torch.Tensor:
    """``t[region]`` (slices of step 1 from within bounds, over the leading dimensions) as
    one strided view. (Arithmetic on the slices: ``slice.indices`` and ``t[region]`` cost
    more interpreter time than the conv of a small layer.)"""
    sizes, strides, offset = list(t.shape), t.stride(), t.storage_offset()
    for dim, s in enumerate(region):
        start = s.start or 0
        # clamped like indexing, so a width too large fails at the conv, not reads past
        sizes[dim] = (sizes[dim] if s.stop is None else min(s.stop, sizes[dim])) - start
        offset += start * strides[dim]
    return t.as_strided(sizes, strides, offset)


def take_regions(weight: torch.Tensor, regions: Sequence[Region]) -> List[torch.Tensor]:
    """``[weight[r] for r in regions]``, cheaper to differentiate.

    ``regions`` are tuples of slices (step 1); several regions must be consecutive along
    dimension 0 (MixConv groups, the blocks of a grouped 1x1 conv), else plain indexing is
    used. Plain indexing records one slice op per sliced dimension, and each one's backward
    allocates, zero-fills and copies a tensor of the full shape: for a 3-group MixConv 6
    full-size tensors per step for one weight. Here dimension 0 is narrowed once and split
    into the regions, and each block is one strided view of its piece, so backward fills
    one full-size tensor per weight and the rest at the size of a group. (A Python
    ``autograd.Function`` doing the same cost more in interpreter time: supernet/static
    train step 1.133-1.156 with it, 1.116-1.126 with this, in an A/B; experiments/README.md.)
    """
    if len(regions) == 1:
        return [_view(weight, regions[0])]
    rows = [(r[0].start or 0, weight.shape[0] if r[0].stop is None else r[0].stop)
            for r in regions]
    if any(a[1] != b[0] for a, b in zip(rows, rows[1:])):
        return [weight[r] for r in regions]
    sizes = [stop - start for start, stop in rows]
    pieces = weight.narrow(0, rows[0][0], sum(sizes)).split(sizes, 0)
    return [_view(piece, (slice(None),) + tuple(r[1:])) for piece, r in zip(pieces, regions)]


class DynamicPointwise(nn.Module):
    """1x1 conv of up to ``in_max -> out_max`` channels; grouped forms are block-diagonal slices."""

    def __init__(self, in_max: int, out_max: int, bias: bool = False):
        super().__init__()
        self.in_max, self.out_max = in_max, out_max
        self.weight = nn.Parameter(torch.empty(out_max, in_max, 1, 1))
        self.bias = nn.Parameter(torch.empty(out_max)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def active_weight(self, cin: int, cout: int, groups: int = 1) -> torch.Tensor:
        """The ``[cout, cin // groups, 1, 1]`` weight nn.Conv2d(cin, cout, 1, groups=groups) has."""
        if groups == 1:
            return take_regions(self.weight, [(slice(0, cout), slice(0, cin))])[0]
        ci, co = cin // groups, cout // groups
        return torch.cat(take_regions(self.weight, [
            (slice(g * co, (g + 1) * co), slice(g * ci, (g + 1) * ci)) for g in range(groups)
        ]), 0)

    def active_bias(self, cout: int):
        return None if self.bias is None else self.bias[:cout]

    def forward(self, x: torch.Tensor, cout: int, groups: int = 1) -> torch.Tensor:
        w = self.active_weight(x.shape[1], cout, groups)
        return F.conv2d(x, w, self.active_bias(cout), groups=groups)

    def extra_repr(self) -> str:
        return f"in_max={self.in_max}, out_max={self.out_max}, bias={self.bias is not None}"


class DynamicMixConv(nn.Module):
    """MixConv over up to ``channels_max`` channels; one depthwise weight at ``kernel_max``
    (and, with ``bias``, one bias per channel)."""

    def __init__(self, channels_max: int, kernel_max: int, bias: bool = False):
        super().__init__()
        self.channels_max, self.kernel_max = channels_max, kernel_max
        self.weight = nn.Parameter(torch.empty(channels_max, 1, kernel_max, kernel_max))
        self.bias = nn.Parameter(torch.empty(channels_max)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # He init with a depthwise conv's true fan-out, k*k per channel. (kaiming_normal_
        # would take C*k*k, ignoring groups: std 0.003 for 1440 channels at 11x11, and
        # behind BatchNorm gradients grow as the weights shrink.)
        nn.init.normal_(self.weight, 0.0, (2.0 / self.kernel_max ** 2) ** 0.5)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def active_biases(self, splits: Sequence[int]) -> List[torch.Tensor]:
        """Per group, its channels' biases (empty without a bias)."""
        if self.bias is None:
            return []
        out, start = [], 0
        for c in splits:
            out.append(self.bias[start:start + c])
            start += c
        return out

    def active_weights(self, splits: Sequence[int], kernels: Sequence[int]) -> List[torch.Tensor]:
        """Per group, the ``[c, 1, k, k]`` weight: its channels, centre-cropped to ``k``."""
        regions, start = [], 0
        for c, k in zip(splits, kernels):
            p = (self.kernel_max - k) // 2
            regions.append((slice(start, start + c), slice(None), slice(p, p + k),
                            slice(p, p + k)))
            start += c
        return list(take_regions(self.weight, regions))

    def forward(self, x: torch.Tensor, splits: Sequence[int], kernels: Sequence[int],
                stride: int) -> torch.Tensor:
        weights = self.active_weights(splits, kernels)
        biases = self.active_biases(splits) or [None] * len(weights)
        if len(weights) == 1:
            return F.conv2d(x, weights[0], biases[0], stride, kernels[0] // 2, 1, splits[0])
        chunks = torch.split(x, list(splits), dim=1)
        return torch.cat([
            F.conv2d(chunk, w, b, stride, k // 2, 1, c)
            for chunk, w, b, c, k in zip(chunks, weights, biases, splits, kernels)
        ], dim=1)

    def active_state(self, splits: Sequence[int], kernels: Sequence[int],
                     prefix: str) -> Dict[str, torch.Tensor]:
        """The state of the static :class:`~nas.ops.static.MixConv` (``prefix.convs.i.*``)."""
        state = {f"{prefix}.convs.{i}.weight": w
                 for i, w in enumerate(self.active_weights(splits, kernels))}
        state.update({f"{prefix}.convs.{i}.bias": b
                      for i, b in enumerate(self.active_biases(splits))})
        return state

    def extra_repr(self) -> str:
        return f"channels_max={self.channels_max}, kernel_max={self.kernel_max}"


class DynamicConv(nn.Module):
    """Dense k x k conv of up to ``in_max -> out_max`` channels at up to ``kernel_max``:
    prefix slices of the channels, the centre crop of the kernel."""

    def __init__(self, in_max: int, out_max: int, kernel_max: int, bias: bool = False):
        super().__init__()
        self.in_max, self.out_max, self.kernel_max = in_max, out_max, kernel_max
        self.weight = nn.Parameter(torch.empty(out_max, in_max, kernel_max, kernel_max))
        self.bias = nn.Parameter(torch.empty(out_max)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def active_weight(self, cin: int, cout: int, kernel: int) -> torch.Tensor:
        p = (self.kernel_max - kernel) // 2
        return take_regions(self.weight, [(slice(0, cout), slice(0, cin), slice(p, p + kernel),
                                           slice(p, p + kernel))])[0]

    def active_bias(self, cout: int):
        return None if self.bias is None else self.bias[:cout]

    def forward(self, x: torch.Tensor, cout: int, kernel: int, stride: int = 1,
                padding: int = -1) -> torch.Tensor:
        return F.conv2d(x, self.active_weight(x.shape[1], cout, kernel), self.active_bias(cout),
                        stride, kernel // 2 if padding < 0 else padding)

    def extra_repr(self) -> str:
        return (f"in_max={self.in_max}, out_max={self.out_max}, kernel_max={self.kernel_max}, "
                f"bias={self.bias is not None}")


class DynamicBatchNorm(nn.BatchNorm2d):
    """BatchNorm over the first ``c`` channels (affine parameters and running statistics).

    In training mode the running statistics of those channels are updated in place.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        stats, affine = (self.running_mean, self.running_var), (self.weight, self.bias)
        if c != self.num_features:  # narrow: cheaper than indexing, ~1 us per call
            stats = tuple(t.narrow(0, 0, c) for t in stats)
            affine = tuple(t.narrow(0, 0, c) for t in affine)
        # Like nn.BatchNorm2d with momentum set: num_batches_tracked is not used.
        return F.batch_norm(x, *stats, *affine, self.training, self.momentum, self.eps)

    def active_state(self, c: int) -> Dict[str, torch.Tensor]:
        return {"weight": self.weight[:c], "bias": self.bias[:c],
                "running_mean": self.running_mean[:c], "running_var": self.running_var[:c],
                "num_batches_tracked": self.num_batches_tracked}


class DynamicSqueezeExcite(nn.Module):
    """SE over up to ``channels_max`` channels with up to ``reduced_max`` squeezed ones."""

    def __init__(self, channels_max: int, reduced_max: int):
        super().__init__()
        self.conv_reduce = DynamicPointwise(channels_max, reduced_max, bias=True)
        self.conv_expand = DynamicPointwise(reduced_max, channels_max, bias=True)

    def forward(self, x: torch.Tensor, reduced: int, act, hard: bool = False) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        inner = F.relu if hard else act  # MobileNetV3's SE: ReLU inside, hard-sigmoid gate
        s = self.conv_expand(inner(self.conv_reduce(s, reduced)), x.shape[1])
        return x * (F.hardsigmoid(s) if hard else torch.sigmoid(s))

    def active_state(self, channels: int, reduced: int) -> Dict[str, torch.Tensor]:
        return {
            "conv_reduce.weight": self.conv_reduce.active_weight(channels, reduced),
            "conv_reduce.bias": self.conv_reduce.active_bias(reduced),
            "conv_expand.weight": self.conv_expand.active_weight(reduced, channels),
            "conv_expand.bias": self.conv_expand.active_bias(channels),
        }


class DynamicBlock(nn.Module):
    """A block slot of the supernet, at its largest widths and kernels: the base of the
    weight-sharing class of each block kind (the table of block kinds, :mod:`nas.blocks`,
    names it; :data:`DYNAMIC_BLOCKS` finds it).

    Module names mirror the kind's static class in :mod:`nas.ops.static`, so
    :meth:`active_state` returns a state dict the static block loads as is. Every slot is
    built from the same description of the row (the largest of each width and kernel any
    of its architectures can take); a kind uses what it needs.

    Args:
        in_max, mid_max, out_max: the largest input, middle and output widths.
        kernel_max: the largest (middle) depthwise or dense kernel (0: none in any choice).
        se_max: the largest SE width (0: no SE in any choice).
        start_max: uir: the largest first depthwise kernel (0: none in any choice).
        part_max: pc: the most channels PConv convolves.
    """

    def __init__(self, in_max: int, mid_max: int, out_max: int, kernel_max: int,
                 se_max: int, start_max: int = 0, part_max: int = 0):
        super().__init__()
        self.se = DynamicSqueezeExcite(mid_max, se_max) if se_max else None

    def _se(self, y: torch.Tensor, layer: Layer, act) -> torch.Tensor:
        return self.se(y, layer.se_ch, act, layer.se_hard) if layer.se_ch else y

    def forward(self, x: torch.Tensor, layer: Layer) -> torch.Tensor:
        raise NotImplementedError

    def block_state(self, layer: Layer, bn) -> Dict[str, torch.Tensor]:
        """The kind's own tensors for ``layer`` (``bn(name, module, channels)`` gives a
        BatchNorm's); SE's are added by :meth:`active_state`."""
        raise NotImplementedError

    def active_state(self, layer: Layer) -> Dict[str, torch.Tensor]:
        """The static block's state dict for ``layer`` (views into the shared tensors)."""
        def bn(name: str, module: DynamicBatchNorm, c: int) -> Dict[str, torch.Tensor]:
            return {f"{name}.{k}": v for k, v in module.active_state(c).items()}

        state = self.block_state(layer, bn)
        if layer.se_ch:
            state.update({f"se.{k}": v for k, v in
                          self.se.active_state(layer.mid_ch, layer.se_ch).items()})
        return state


class DynamicInverted(DynamicBlock):
    """ir and uir rows: [MixConv a -> BN] -> 1x1 expand -> BN -> act -> [MixConv k -> BN ->
    act] -> [SE] -> 1x1 project -> BN [+ input]."""

    def __init__(self, in_max, mid_max, out_max, kernel_max, se_max, start_max=0, part_max=0):
        super().__init__(in_max, mid_max, out_max, kernel_max, se_max)
        if start_max:
            self.conv_dw_start = DynamicMixConv(in_max, start_max)
            self.bn_start = DynamicBatchNorm(in_max)
        self.conv_pw = DynamicPointwise(in_max, mid_max)
        self.bn1 = DynamicBatchNorm(mid_max)
        if kernel_max:
            self.conv_dw = DynamicMixConv(mid_max, kernel_max)
            self.bn2 = DynamicBatchNorm(mid_max)
        self.conv_pwl = DynamicPointwise(mid_max, out_max)
        self.bn3 = DynamicBatchNorm(out_max)

    def forward(self, x, layer):
        act = ACTIVATIONS[layer.act]
        y = x
        if layer.start_kernels:
            stride = 1 if layer.kernels else layer.stride
            y = self.bn_start(self.conv_dw_start(y, layer.start_splits, layer.start_kernels,
                                                 stride))
        y = act(self.bn1(self.conv_pw(y, layer.mid_ch, layer.exp_groups)))
        if layer.kernels:
            y = act(self.bn2(self.conv_dw(y, layer.dw_splits, layer.kernels, layer.stride)))
        y = self._se(y, layer, act)
        y = self.bn3(self.conv_pwl(y, layer.out_ch, layer.proj_groups))
        return x + y if layer.residual else y

    def block_state(self, layer, bn):
        state = {}
        if layer.start_kernels:
            state.update(self.conv_dw_start.active_state(
                layer.start_splits, layer.start_kernels, "conv_dw_start"))
            state.update(bn("bn_start", self.bn_start, layer.in_ch))
        state["conv_pw.weight"] = self.conv_pw.active_weight(
            layer.in_ch, layer.mid_ch, layer.exp_groups)
        state.update(bn("bn1", self.bn1, layer.mid_ch))
        if layer.kernels:
            state.update(self.conv_dw.active_state(layer.dw_splits, layer.kernels, "conv_dw"))
            state.update(bn("bn2", self.bn2, layer.mid_ch))
        state["conv_pwl.weight"] = self.conv_pwl.active_weight(
            layer.mid_ch, layer.out_ch, layer.proj_groups)
        state.update(bn("bn3", self.bn3, layer.out_ch))
        return state


class DynamicSeparable(DynamicBlock):
    """ds and dsa rows: MixConv -> BN -> act -> [SE] -> 1x1 -> BN [-> act (dsa)]
    [+ input]."""

    def __init__(self, in_max, mid_max, out_max, kernel_max, se_max, start_max=0, part_max=0):
        super().__init__(in_max, mid_max, out_max, kernel_max, se_max)
        self.conv_dw = DynamicMixConv(in_max, kernel_max)
        self.bn1 = DynamicBatchNorm(in_max)
        self.conv_pw = DynamicPointwise(in_max, out_max)
        self.bn2 = DynamicBatchNorm(out_max)

    def forward(self, x, layer):
        act = ACTIVATIONS[layer.act]
        y = act(self.bn1(self.conv_dw(x, layer.dw_splits, layer.kernels, layer.stride)))
        y = self._se(y, layer, act)
        y = self.bn2(self.conv_pw(y, layer.out_ch, layer.proj_groups))
        if layer.kind == "dsa":
            y = act(y)
        return x + y if layer.residual else y

    def block_state(self, layer, bn):
        state = self.conv_dw.active_state(layer.dw_splits, layer.kernels, "conv_dw")
        state.update(bn("bn1", self.bn1, layer.in_ch))
        state["conv_pw.weight"] = self.conv_pw.active_weight(
            layer.in_ch, layer.out_ch, layer.proj_groups)
        state.update(bn("bn2", self.bn2, layer.out_ch))
        return state


class DynamicConvMixer(DynamicBlock):
    """cm rows: (MixConv with bias -> act -> BN) + input -> 1x1 with bias -> act -> BN."""

    def __init__(self, in_max, mid_max, out_max, kernel_max, se_max, start_max=0, part_max=0):
        super().__init__(in_max, mid_max, out_max, kernel_max, se_max)
        self.conv_dw = DynamicMixConv(in_max, kernel_max, bias=True)
        self.bn1 = DynamicBatchNorm(in_max)
        self.conv_pw = DynamicPointwise(in_max, out_max, bias=True)
        self.bn2 = DynamicBatchNorm(out_max)

    def forward(self, x, layer):
        act = ACTIVATIONS[layer.act]
        x = x + self.bn1(act(self.conv_dw(x, layer.dw_splits, layer.kernels, 1)))
        return self.bn2(act(self.conv_pw(x, layer.out_ch)))

    def block_state(self, layer, bn):
        state = self.conv_dw.active_state(layer.dw_splits, layer.kernels, "conv_dw")
        state.update(bn("bn1", self.bn1, layer.in_ch))
        state["conv_pw.weight"] = self.conv_pw.active_weight(layer.in_ch, layer.out_ch, 1)
        state["conv_pw.bias"] = self.conv_pw.active_bias(layer.out_ch)
        state.update(bn("bn2", self.bn2, layer.out_ch))
        return state


class DynamicConvBNAct(DynamicBlock):
    """cn rows: dense k x k conv -> BN -> act."""

    def __init__(self, in_max, mid_max, out_max, kernel_max, se_max, start_max=0, part_max=0):
        super().__init__(in_max, mid_max, out_max, kernel_max, se_max)
        self.conv = DynamicConv(in_max, out_max, kernel_max)
        self.bn = DynamicBatchNorm(out_max)

    def forward(self, x, layer):
        act = ACTIVATIONS[layer.act]
        return act(self.bn(self.conv(x, layer.out_ch, layer.kernels[0], layer.stride)))

    def block_state(self, layer, bn):
        state = {"0.weight": self.conv.active_weight(layer.in_ch, layer.out_ch,
                                                     layer.kernels[0])}
        state.update(bn("1", self.bn, layer.out_ch))
        return state


class DynamicPConv(DynamicBlock):
    """pc rows: PConv (dense conv on the first channels) -> 1x1 expand -> BN -> act -> 1x1
    project [+ input]."""

    def __init__(self, in_max, mid_max, out_max, kernel_max, se_max, start_max=0, part_max=0):
        super().__init__(in_max, mid_max, out_max, kernel_max, se_max)
        self.conv_partial = DynamicConv(part_max, part_max, kernel_max)
        self.conv_pw = DynamicPointwise(in_max, mid_max)
        self.bn1 = DynamicBatchNorm(mid_max)
        self.conv_pwl = DynamicPointwise(mid_max, out_max)

    def forward(self, x, layer):
        act = ACTIVATIONS[layer.act]
        p = layer.part_ch
        y = self.conv_partial(x[:, :p], p, layer.kernels[0])
        y = torch.cat([y, x[:, p:]], 1) if p < x.shape[1] else y
        y = self.conv_pwl(act(self.bn1(self.conv_pw(y, layer.mid_ch))), layer.out_ch)
        return x + y if layer.residual else y

    def block_state(self, layer, bn):
        p = layer.part_ch
        state = {"conv_partial.weight": self.conv_partial.active_weight(p, p, layer.kernels[0]),
                 "conv_pw.weight": self.conv_pw.active_weight(layer.in_ch, layer.mid_ch)}
        state.update(bn("bn1", self.bn1, layer.mid_ch))
        state["conv_pwl.weight"] = self.conv_pwl.active_weight(layer.mid_ch, layer.out_ch)
        return state


class DynamicADown(DynamicBlock):
    """adown rows: 2x2 average pool, then a 3x3 stride-2 conv on half the channels and a
    3x3 stride-2 max pool and a 1x1 conv on the other half, concatenated."""

    def __init__(self, in_max, mid_max, out_max, kernel_max, se_max, start_max=0, part_max=0):
        super().__init__(in_max, mid_max, out_max, kernel_max, se_max)
        self.cv1 = DynamicConv(in_max // 2, out_max // 2, 3)
        self.bn_cv1 = DynamicBatchNorm(out_max // 2)
        self.cv2 = DynamicPointwise(in_max // 2, out_max // 2)
        self.bn_cv2 = DynamicBatchNorm(out_max // 2)

    def forward(self, x, layer):
        act = ACTIVATIONS[layer.act]
        x1, x2 = F.avg_pool2d(x, 2, 1, 0, False, True).chunk(2, 1)
        half = layer.out_ch // 2
        y1 = act(self.bn_cv1(self.cv1(x1, half, 3, 2)))
        y2 = act(self.bn_cv2(self.cv2(F.max_pool2d(x2, 3, 2, 1), half)))
        return torch.cat([y1, y2], 1)

    def block_state(self, layer, bn):
        half_in, half = layer.in_ch // 2, layer.out_ch // 2
        state = {"cv1.0.weight": self.cv1.active_weight(half_in, half, 3)}
        state.update(bn("cv1.1", self.bn_cv1, half))
        state["cv2.0.weight"] = self.cv2.active_weight(half_in, half)
        state.update(bn("cv2.1", self.bn_cv2, half))
        return state


class DynamicShuffle(DynamicBlock):
    """sh rows: ShuffleNetV2's unit (see :class:`nas.ops.static.ShuffleUnit`); each branch
    half the output width, a prefix slice of the largest."""

    def __init__(self, in_max, mid_max, out_max, kernel_max, se_max, start_max=0, part_max=0):
        super().__init__(in_max, mid_max, out_max, kernel_max, se_max)
        half = out_max // 2
        self.branch1_dw = DynamicMixConv(in_max, kernel_max)
        self.branch1_bn1 = DynamicBatchNorm(in_max)
        self.branch1_pw = DynamicPointwise(in_max, half)
        self.branch1_bn2 = DynamicBatchNorm(half)
        self.conv_pw = DynamicPointwise(in_max, half)
        self.bn1 = DynamicBatchNorm(half)
        self.conv_dw = DynamicMixConv(half, kernel_max)
        self.bn2 = DynamicBatchNorm(half)
        self.conv_pwl = DynamicPointwise(half, half)
        self.bn3 = DynamicBatchNorm(half)

    def forward(self, x, layer):
        act = ACTIVATIONS[layer.act]
        half = layer.mid_ch
        if layer.stride > 1:
            first = self.branch1_dw(x, layer.start_splits, layer.kernels, layer.stride)
            first = act(self.branch1_bn2(self.branch1_pw(self.branch1_bn1(first), half)))
            second = x
        else:
            first, second = x.chunk(2, dim=1)
        second = act(self.bn1(self.conv_pw(second, half)))
        second = self.bn2(self.conv_dw(second, layer.dw_splits, layer.kernels, layer.stride))
        y = torch.cat([first, act(self.bn3(self.conv_pwl(second, half)))], dim=1)
        n, c, h, w = y.shape
        return y.reshape(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)

    def block_state(self, layer, bn):
        half = layer.mid_ch
        state = {}
        if layer.stride > 1:
            state.update(self.branch1_dw.active_state(layer.start_splits, layer.kernels,
                                                      "branch1_dw"))
            state.update(bn("branch1_bn1", self.branch1_bn1, layer.in_ch))
            state["branch1_pw.weight"] = self.branch1_pw.active_weight(layer.in_ch, half)
            state.update(bn("branch1_bn2", self.branch1_bn2, half))
        branch_in = layer.in_ch if layer.stride > 1 else layer.in_ch // 2
        state["conv_pw.weight"] = self.conv_pw.active_weight(branch_in, half)
        state.update(bn("bn1", self.bn1, half))
        state.update(self.conv_dw.active_state(layer.dw_splits, layer.kernels, "conv_dw"))
        state.update(bn("bn2", self.bn2, half))
        state["conv_pwl.weight"] = self.conv_pwl.active_weight(half, half)
        state.update(bn("bn3", self.bn3, half))
        return state


class DynamicMaxPool(DynamicBlock):
    """mp rows: a 3x3 max pool (no weights)."""

    def forward(self, x, layer):
        return F.max_pool2d(x, 3, layer.stride, 1)

    def block_state(self, layer, bn):
        return {}


#: The weight-sharing block classes by name (the table of block kinds names them).
DYNAMIC_BLOCKS: Dict[str, type] = {cls.__name__: cls for cls in (
    DynamicInverted, DynamicSeparable, DynamicConvMixer, DynamicConvBNAct, DynamicPConv,
    DynamicADown, DynamicShuffle, DynamicMaxPool)}


def init_linear(linear_weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Classifier init N(0, 0.01) (MobileNetV2's).

    Not EfficientNet's uniform(+-1/sqrt(classes)): harmless for 1000 classes, it gives
    10-class proxies logits so large that training starts at loss 5 with exploding
    gradients.
    """
    nn.init.normal_(linear_weight, 0.0, 0.01)
    nn.init.zeros_(bias)
