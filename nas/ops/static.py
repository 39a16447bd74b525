"""Static MixNet layers: the network ``nas.build_model`` builds and ``nas export`` writes.

This module imports only torch and the standard library, and takes every width already
resolved: the exporter copies its source verbatim into the standalone ``model.py``,
so the exported network is the very same code that nas tests against fvcore.
"""

from typing import List, Sequence

import torch
from torch import nn


def make_activation(name: str) -> nn.Module:
    """``relu`` | ``swish`` (SiLU) | ``hswish``."""
    if name == "relu":
        return nn.ReLU()
    if name == "swish":
        return nn.SiLU()
    if name == "hswish":
        return nn.Hardswish()
    raise ValueError(f"unknown activation {name!r}")


class ConvBNAct(nn.Sequential):
    """Conv (padding kernel // 2, no bias) -> BatchNorm -> optional activation."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1,
                 groups: int = 1, act: str = ""):
        layers = [
            nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        if act:
            layers.append(make_activation(act))
        super().__init__(*layers)


class _KernelGroups(nn.Module):
    """What both MixConv forms store: channel groups, their kernels, the stride."""

    def __init__(self, splits: Sequence[int], kernels: Sequence[int], stride: int = 1):
        super().__init__()
        if len(splits) != len(kernels) or min(splits) < 1:
            raise ValueError(f"bad MixConv groups: splits {splits}, kernels {kernels}")
        self.splits = list(splits)
        self.kernels = list(kernels)
        self.stride = stride

    def extra_repr(self) -> str:
        return f"splits={self.splits}, kernels={self.kernels}, stride={self.stride}"


class MixConv(_KernelGroups):
    """Mixed depthwise convolution (MixNet's MixConv).

    Channels are split into consecutive groups, smallest kernel first; each group is a
    depthwise conv with its own kernel size, and the outputs are concatenated.

    Args:
        splits: channels of each group.
        kernels: kernel size of each group (same length as ``splits``).
        stride: stride of every group.
    """

    def __init__(self, splits: Sequence[int], kernels: Sequence[int], stride: int = 1):
        super().__init__(splits, kernels, stride)
        self.convs = nn.ModuleList(
            nn.Conv2d(c, c, k, stride, k // 2, groups=c, bias=False)
            for c, k in zip(self.splits, self.kernels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.convs) == 1:
            return self.convs[0](x)
        chunks = torch.split(x, self.splits, dim=1)
        return torch.cat([conv(c) for conv, c in zip(self.convs, chunks)], dim=1)


class FusedMixConv(_KernelGroups):
    """MixConv as one depthwise conv at its largest kernel, smaller kernels zero-padded.

    Same outputs as :class:`MixConv` (the zero taps add nothing) from one convolution
    instead of a split, several convolutions and a concat: more multiply-adds, but often
    faster on CPU. Its weight is the groups' weights, each centred in a ``max(kernels)``
    square, stacked in channel order.
    """

    def __init__(self, splits: Sequence[int], kernels: Sequence[int], stride: int = 1):
        super().__init__(splits, kernels, stride)
        channels, kernel = sum(self.splits), max(self.kernels)
        self.conv = nn.Conv2d(channels, channels, kernel, stride, kernel // 2, groups=channels,
                              bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def make_mixconv(splits: Sequence[int], kernels: Sequence[int], stride: int,
                 fused: bool) -> nn.Module:
    return (FusedMixConv if fused else MixConv)(splits, kernels, stride)


class SqueezeExcite(nn.Module):
    """x * sigmoid(expand(act(reduce(mean(x))))), reduce/expand are 1x1 convs with bias."""

    def __init__(self, channels: int, reduced: int, act: str):
        super().__init__()
        self.channels = channels
        self.reduced = reduced
        self.conv_reduce = nn.Conv2d(channels, reduced, 1)
        self.act = make_activation(act)
        self.conv_expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.conv_expand(self.act(self.conv_reduce(s))))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduced={self.reduced}"


class DepthwiseSeparable(nn.Module):
    """MixConv -> BN -> act -> [SE] -> 1x1 project (grouped) -> BN [+ input]."""

    def __init__(self, in_ch: int, out_ch: int, kernels: Sequence[int], splits: Sequence[int],
                 stride: int, se_ch: int, proj_groups: int, act: str, residual: bool,
                 fused: bool = False):
        super().__init__()
        self.residual = residual
        self.conv_dw = make_mixconv(splits, kernels, stride, fused)
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.act1 = make_activation(act)
        self.se = SqueezeExcite(in_ch, se_ch, act) if se_ch else nn.Identity()
        self.conv_pw = nn.Conv2d(in_ch, out_ch, 1, groups=proj_groups, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(self.act1(self.bn1(self.conv_dw(x))))
        y = self.bn2(self.conv_pw(y))
        return x + y if self.residual else y


class InvertedResidual(nn.Module):
    """1x1 expand (grouped) -> BN -> act -> MixConv -> BN -> act -> [SE] -> 1x1 project -> BN."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, kernels: Sequence[int],
                 splits: Sequence[int], stride: int, se_ch: int, exp_groups: int,
                 proj_groups: int, act: str, residual: bool, fused: bool = False):
        super().__init__()
        self.residual = residual
        self.conv_pw = nn.Conv2d(in_ch, mid_ch, 1, groups=exp_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_ch)
        self.act1 = make_activation(act)
        self.conv_dw = make_mixconv(splits, kernels, stride, fused)
        self.bn2 = nn.BatchNorm2d(mid_ch)
        self.act2 = make_activation(act)
        self.se = SqueezeExcite(mid_ch, se_ch, act) if se_ch else nn.Identity()
        self.conv_pwl = nn.Conv2d(mid_ch, out_ch, 1, groups=proj_groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.bn1(self.conv_pw(x)))
        y = self.se(self.act2(self.bn2(self.conv_dw(y))))
        y = self.bn3(self.conv_pwl(y))
        return x + y if self.residual else y


class MixNet(nn.Module):
    """Stem -> blocks -> head (1x1 conv, BN, act) -> global average pool -> linear.

    Args:
        stem: ``(kernel, stride, out_ch, act)``.
        blocks: one row per block: ``(kind, in_ch, mid_ch, out_ch, kernels, splits,
            stride, se_ch, exp_groups, proj_groups, act, residual)``; ``kind`` is
            ``"ds"`` or ``"ir"`` (a ``ds`` block ignores ``mid_ch`` and ``exp_groups``).
        head: ``(out_ch, act)``.
        num_classes: classifier outputs.
        in_chans: input image channels.
        fused: build each MixConv as one zero-padded depthwise conv (:class:`FusedMixConv`).
        channels_last: keep weights and activations in NHWC memory order (the input is
            converted in ``forward``), which speeds up depthwise convs on CPU.
    """

    def __init__(self, stem, blocks, head, num_classes: int, in_chans: int,
                 fused: bool = False, channels_last: bool = False):
        super().__init__()
        self.channels_last = channels_last
        kernel, stride, stem_ch, stem_act = stem
        self.stem = ConvBNAct(in_chans, stem_ch, kernel, stride, act=stem_act)
        layers: List[nn.Module] = []
        for (kind, in_ch, mid_ch, out_ch, kernels, splits, stride, se_ch, exp_groups,
             proj_groups, act, residual) in blocks:
            if kind == "ds":
                layers.append(DepthwiseSeparable(in_ch, out_ch, kernels, splits, stride, se_ch,
                                                 proj_groups, act, residual, fused))
            elif kind == "ir":
                layers.append(InvertedResidual(in_ch, mid_ch, out_ch, kernels, splits, stride,
                                               se_ch, exp_groups, proj_groups, act, residual,
                                               fused))
            else:
                raise ValueError(f"unknown block kind {kind!r}")
        self.blocks = nn.Sequential(*layers)
        head_ch, head_act = head
        last_ch = blocks[-1][3] if blocks else stem_ch
        self.head = ConvBNAct(last_ch, head_ch, 1, act=head_act)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(head_ch, num_classes)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.blocks(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.forward_features(x)), 1))
