"""Static layers: the network ``nas.build_model`` builds and ``nas export`` writes.

This module imports only torch and the standard library, and takes every width already
resolved: the exporter copies its source verbatim into the standalone ``model.py``,
so the exported network is the very same code that nas tests against fvcore.
"""

from typing import Dict, List, Optional, Sequence

import torch
from torch import nn


def make_activation(name: str) -> nn.Module:
    """``relu`` | ``relu6`` | ``swish`` (SiLU) | ``hswish`` | ``gelu`` (exact, not tanh)."""
    if name == "relu":
        return nn.ReLU()
    if name == "relu6":
        return nn.ReLU6()
    if name == "swish":
        return nn.SiLU()
    if name == "hswish":
        return nn.Hardswish()
    if name == "gelu":
        return nn.GELU()
    raise ValueError(f"unknown activation {name!r}")


def make_norm(channels: int, fold_bn: bool) -> nn.Module:
    """The BatchNorm after a conv; with ``fold_bn`` an identity, its affine map being folded
    into that conv's weight and bias (see ``FOLDS``)."""
    return nn.Identity() if fold_bn else nn.BatchNorm2d(channels)


class ConvBNAct(nn.Sequential):
    """Conv (padding kernel // 2, no bias) -> BatchNorm -> optional activation.

    With ``fold_bn`` the conv has a bias and the BatchNorm is an identity (inference form).
    """

    # (conv, the BatchNorm right after it): what fold_bn folds, in every block class
    FOLDS = (("0", "1"),)
    # The build options (make_block) a block class takes: MixConv's form, BN folding.
    OPTIONS = ("fold_bn",)

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1,
                 groups: int = 1, act: str = "", fold_bn: bool = False):
        layers = [
            nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=fold_bn),
            make_norm(out_ch, fold_bn),
        ]
        if act:
            layers.append(make_activation(act))
        super().__init__(*layers)


class _KernelGroups(nn.Module):
    """What both MixConv forms store: channel groups, their kernels, the stride."""

    def __init__(self, splits: Sequence[int], kernels: Sequence[int], stride: int = 1,
                 bias: bool = False):
        super().__init__()
        if len(splits) != len(kernels) or min(splits) < 1:
            raise ValueError(f"bad MixConv groups: splits {splits}, kernels {kernels}")
        self.splits = list(splits)
        self.kernels = list(kernels)
        self.stride = stride
        self.bias = bias

    def extra_repr(self) -> str:
        return (f"splits={self.splits}, kernels={self.kernels}, stride={self.stride}"
                + (", bias=True" if self.bias else ""))


class MixConv(_KernelGroups):
    """Mixed depthwise convolution (MixNet's MixConv).

    Channels are split into consecutive groups, smallest kernel first; each group is a
    depthwise conv with its own kernel size, and the outputs are concatenated.

    Args:
        splits: channels of each group.
        kernels: kernel size of each group (same length as ``splits``).
        stride: stride of every group.
        bias: give each group's conv a bias (ConvMixer's depthwise conv has one).
    """

    def __init__(self, splits: Sequence[int], kernels: Sequence[int], stride: int = 1,
                 bias: bool = False):
        super().__init__(splits, kernels, stride, bias)
        self.convs = nn.ModuleList(
            nn.Conv2d(c, c, k, stride, k // 2, groups=c, bias=bias)
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

    def __init__(self, splits: Sequence[int], kernels: Sequence[int], stride: int = 1,
                 bias: bool = False):
        super().__init__(splits, kernels, stride, bias)
        channels, kernel = sum(self.splits), max(self.kernels)
        self.conv = nn.Conv2d(channels, channels, kernel, stride, kernel // 2, groups=channels,
                              bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def make_mixconv(splits: Sequence[int], kernels: Sequence[int], stride: int,
                 fused: bool, bias: bool = False) -> nn.Module:
    """:class:`FusedMixConv` or :class:`MixConv` (``bias``: each conv has one)."""
    return (FusedMixConv if fused else MixConv)(splits, kernels, stride, bias)


class SqueezeExcite(nn.Module):
    """x * gate(expand(act(reduce(mean(x))))), reduce/expand are 1x1 convs with bias.

    MixNet/EfficientNet: the block's activation and a sigmoid gate; MobileNetV3
    (``hard=True``): ReLU and a hard sigmoid (Howard et al. 2019, timm's ``SqueezeExcite``
    with ``gate_layer='hard_sigmoid', force_act_layer=nn.ReLU``).
    """

    def __init__(self, channels: int, reduced: int, act: str, hard: bool = False):
        super().__init__()
        self.channels = channels
        self.reduced = reduced
        self.hard = hard
        self.conv_reduce = nn.Conv2d(channels, reduced, 1)
        self.act = make_activation("relu" if hard else act)
        self.conv_expand = nn.Conv2d(reduced, channels, 1)
        self.gate = nn.Hardsigmoid() if hard else nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.conv_expand(self.act(self.conv_reduce(s))))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduced={self.reduced}, hard={self.hard}"


def make_se(channels: int, reduced: int, act: str, hard: bool) -> nn.Module:
    return SqueezeExcite(channels, reduced, act, hard) if reduced else nn.Identity()


class DepthwiseSeparable(nn.Module):
    """MixConv -> BN -> act -> [SE] -> 1x1 project (grouped) -> BN [-> act] [+ input].

    ``pw_act`` adds the activation after the projection (timm's ``dsa``, MobileNetV1).
    ``fold_bn``: the inference form, each BatchNorm folded into the conv before it.
    """

    FOLDS = (("conv_dw", "bn1"), ("conv_pw", "bn2"))
    OPTIONS = ("fused", "fold_bn")

    def __init__(self, in_ch: int, out_ch: int, kernels: Sequence[int], splits: Sequence[int],
                 stride: int, se_ch: int, proj_groups: int, act: str, residual: bool,
                 fused: bool = False, pw_act: bool = False, se_hard: bool = False,
                 fold_bn: bool = False):
        super().__init__()
        self.residual = residual
        self.conv_dw = make_mixconv(splits, kernels, stride, fused, bias=fold_bn)
        self.bn1 = make_norm(in_ch, fold_bn)
        self.act1 = make_activation(act)
        self.se = make_se(in_ch, se_ch, act, se_hard)
        self.conv_pw = nn.Conv2d(in_ch, out_ch, 1, groups=proj_groups, bias=fold_bn)
        self.bn2 = make_norm(out_ch, fold_bn)
        self.act2 = make_activation(act) if pw_act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(self.act1(self.bn1(self.conv_dw(x))))
        y = self.act2(self.bn2(self.conv_pw(y)))
        return x + y if self.residual else y


class InvertedResidual(nn.Module):
    """1x1 expand (grouped) -> BN -> act -> MixConv -> BN -> act -> [SE] -> 1x1 project -> BN.

    ``fold_bn``: the inference form, each BatchNorm folded into the conv before it.
    """

    FOLDS = (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3"))
    OPTIONS = ("fused", "fold_bn")

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, kernels: Sequence[int],
                 splits: Sequence[int], stride: int, se_ch: int, exp_groups: int,
                 proj_groups: int, act: str, residual: bool, fused: bool = False,
                 se_hard: bool = False, fold_bn: bool = False):
        super().__init__()
        self.residual = residual
        self.conv_pw = nn.Conv2d(in_ch, mid_ch, 1, groups=exp_groups, bias=fold_bn)
        self.bn1 = make_norm(mid_ch, fold_bn)
        self.act1 = make_activation(act)
        self.conv_dw = make_mixconv(splits, kernels, stride, fused, bias=fold_bn)
        self.bn2 = make_norm(mid_ch, fold_bn)
        self.act2 = make_activation(act)
        self.se = make_se(mid_ch, se_ch, act, se_hard)
        self.conv_pwl = nn.Conv2d(mid_ch, out_ch, 1, groups=proj_groups, bias=fold_bn)
        self.bn3 = make_norm(out_ch, fold_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.bn1(self.conv_pw(x)))
        y = self.se(self.act2(self.bn2(self.conv_dw(y))))
        y = self.bn3(self.conv_pwl(y))
        return x + y if self.residual else y


class UniversalInvertedResidual(nn.Module):
    """MobileNetV4's UIB: [MixConv -> BN] -> 1x1 expand -> BN -> act -> [MixConv -> BN -> act]
    -> [SE] -> 1x1 project -> BN [+ input].

    Empty ``start_kernels`` or ``kernels`` leave that depthwise conv out (IB, ExtraDW,
    ConvNext-like, FFN); without the middle one, the first one strides (timm's
    ``UniversalInvertedResidual``, Qin et al. 2024). ``fold_bn``: the inference form, each
    BatchNorm folded into the conv before it.
    """

    FOLDS = (("conv_dw_start", "bn_start"), ("conv_pw", "bn1"), ("conv_dw", "bn2"),
             ("conv_pwl", "bn3"))
    OPTIONS = ("fused", "fold_bn")

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, start_kernels: Sequence[int],
                 start_splits: Sequence[int], kernels: Sequence[int], splits: Sequence[int],
                 stride: int, se_ch: int, se_hard: bool, act: str, residual: bool,
                 fused: bool = False, fold_bn: bool = False):
        super().__init__()
        self.residual = residual
        self.conv_dw_start = (make_mixconv(start_splits, start_kernels,
                                           1 if kernels else stride, fused, bias=fold_bn)
                              if start_kernels else None)
        self.bn_start = make_norm(in_ch, fold_bn) if start_kernels else None
        self.conv_pw = nn.Conv2d(in_ch, mid_ch, 1, bias=fold_bn)
        self.bn1 = make_norm(mid_ch, fold_bn)
        self.act1 = make_activation(act)
        self.conv_dw = (make_mixconv(splits, kernels, stride, fused, bias=fold_bn)
                        if kernels else None)
        self.bn2 = make_norm(mid_ch, fold_bn) if kernels else None
        self.act2 = make_activation(act) if kernels else None
        self.se = make_se(mid_ch, se_ch, act, se_hard)
        self.conv_pwl = nn.Conv2d(mid_ch, out_ch, 1, bias=fold_bn)
        self.bn3 = make_norm(out_ch, fold_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.conv_dw_start is not None and self.bn_start is not None:
            y = self.bn_start(self.conv_dw_start(y))
        y = self.act1(self.bn1(self.conv_pw(y)))
        if self.conv_dw is not None and self.bn2 is not None and self.act2 is not None:
            y = self.act2(self.bn2(self.conv_dw(y)))
        y = self.bn3(self.conv_pwl(self.se(y)))
        return x + y if self.residual else y


class ConvMixerLayer(nn.Module):
    """ConvMixer's layer: x + BN(act(MixConv(x))), then BN(act(1x1 conv)); convs have biases
    (Trockman & Kolter 2022, timm's ``ConvMixer``). Its BatchNorms follow an activation,
    so ``fold_bn`` leaves them (folding needs a conv right before the BN)."""

    OPTIONS = ("fused",)  # its BatchNorms follow activations: nothing to fold

    def __init__(self, in_ch: int, out_ch: int, kernels: Sequence[int], splits: Sequence[int],
                 act: str, fused: bool = False):
        super().__init__()
        self.conv_dw = make_mixconv(splits, kernels, 1, fused, bias=True)
        self.act1 = make_activation(act)
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv_pw = nn.Conv2d(in_ch, out_ch, 1)
        self.act2 = make_activation(act)
        self.bn2 = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.bn1(self.act1(self.conv_dw(x)))
        return self.bn2(self.act2(self.conv_pw(x)))


class PConvBlock(nn.Module):
    """FasterNet's block: PConv (a dense ``kernel`` conv on the first ``part_ch`` channels,
    the rest untouched) -> 1x1 expand -> BN -> act -> 1x1 project [+ input]
    (Chen et al. 2023, the reference ``Partial_conv3`` + ``MLPBlock``). ``fold_bn``: the
    inference form, its BatchNorm folded into the 1x1 expand."""

    FOLDS = (("conv_pw", "bn1"),)

    OPTIONS = ("fold_bn",)  # no MixConv to fuse

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, part_ch: int, kernel: int,
                 act: str, residual: bool, fold_bn: bool = False):
        super().__init__()
        self.residual = residual
        self.part_ch = part_ch
        self.rest_ch = in_ch - part_ch
        self.conv_partial = nn.Conv2d(part_ch, part_ch, kernel, 1, kernel // 2, bias=False)
        self.conv_pw = nn.Conv2d(in_ch, mid_ch, 1, bias=fold_bn)
        self.bn1 = make_norm(mid_ch, fold_bn)
        self.act1 = make_activation(act)
        self.conv_pwl = nn.Conv2d(mid_ch, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.rest_ch:
            part, rest = torch.split(x, [self.part_ch, self.rest_ch], dim=1)
            y = torch.cat([self.conv_partial(part), rest], dim=1)
        else:
            y = self.conv_partial(x)
        y = self.conv_pwl(self.act1(self.bn1(self.conv_pw(y))))
        return x + y if self.residual else y


class ADown(nn.Module):
    """YOLOv9's ADown: 2x2 average pool (stride 1), then half the channels through a 3x3
    stride-2 conv -> BN -> act, half through a 3x3 stride-2 max pool and a 1x1 conv -> BN
    -> act, concatenated (Wang et al. 2024, ultralytics' ``ADown``)."""

    OPTIONS = ("fold_bn",)

    def __init__(self, in_ch: int, out_ch: int, act: str, stride: int = 2,
                 fold_bn: bool = False):
        super().__init__()
        if stride != 2:
            raise ValueError(f"ADown always has stride 2, got {stride}")
        self.pool = nn.AvgPool2d(2, 1, 0, False, True)
        self.cv1 = ConvBNAct(in_ch // 2, out_ch // 2, 3, 2, act=act, fold_bn=fold_bn)
        self.max_pool = nn.MaxPool2d(3, 2, 1)
        self.cv2 = ConvBNAct(in_ch // 2, out_ch // 2, 1, act=act, fold_bn=fold_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.pool(x).chunk(2, 1)
        return torch.cat([self.cv1(x1), self.cv2(self.max_pool(x2))], dim=1)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2's unit (Ma et al. 2018; torchvision's ``shufflenetv2.InvertedResidual``)
    with MixConv depthwise convs. Strided: branch 1 (MixConv -> BN -> 1x1 -> BN -> act) and
    branch 2 (1x1 -> BN -> act -> MixConv -> BN -> 1x1 -> BN -> act) both on the input;
    else the input's first half passes and branch 2 takes the second. Concatenated, then
    the channels shuffled in 2 groups. Each branch puts out half of ``out_ch``."""

    FOLDS = (("branch1_dw", "branch1_bn1"), ("branch1_pw", "branch1_bn2"), ("conv_pw", "bn1"),
             ("conv_dw", "bn2"), ("conv_pwl", "bn3"))
    OPTIONS = ("fused", "fold_bn")

    def __init__(self, in_ch: int, out_ch: int, kernels: Sequence[int], splits: Sequence[int],
                 input_splits: Sequence[int], stride: int, act: str, fused: bool = False,
                 fold_bn: bool = False):
        super().__init__()
        half = out_ch // 2
        self.stride = stride
        if stride > 1:
            self.branch1_dw = make_mixconv(input_splits, kernels, stride, fused, bias=fold_bn)
            self.branch1_bn1 = make_norm(in_ch, fold_bn)
            self.branch1_pw = nn.Conv2d(in_ch, half, 1, bias=fold_bn)
            self.branch1_bn2 = make_norm(half, fold_bn)
            self.branch1_act = make_activation(act)
        self.conv_pw = nn.Conv2d(in_ch if stride > 1 else in_ch // 2, half, 1, bias=fold_bn)
        self.bn1 = make_norm(half, fold_bn)
        self.act1 = make_activation(act)
        self.conv_dw = make_mixconv(splits, kernels, stride, fused, bias=fold_bn)
        self.bn2 = make_norm(half, fold_bn)
        self.conv_pwl = nn.Conv2d(half, half, 1, bias=fold_bn)
        self.bn3 = make_norm(half, fold_bn)
        self.act2 = make_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            first = self.branch1_act(self.branch1_bn2(self.branch1_pw(
                self.branch1_bn1(self.branch1_dw(x)))))
            second = x
        else:
            first, second = x.chunk(2, dim=1)
        second = self.bn2(self.conv_dw(self.act1(self.bn1(self.conv_pw(second)))))
        y = torch.cat([first, self.act2(self.bn3(self.conv_pwl(second)))], dim=1)
        n, c, h, w = y.shape
        return y.reshape(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


class MaxPoolBlock(nn.MaxPool2d):
    """3x3 max pool, stride ``stride``, padding 1: ShuffleNet's and ResNet's after the stem."""

    OPTIONS = ()

    def __init__(self, out_ch: int, stride: int = 2):
        super().__init__(3, stride, 1)


class PatchStem(nn.Sequential):
    """ConvMixer's patch embedding: ``patch`` x ``patch`` conv with bias, stride ``patch``,
    no padding -> act -> BN (after the activation: ``fold_bn`` leaves it)."""

    def __init__(self, in_ch: int, out_ch: int, patch: int, act: str):
        super().__init__(nn.Conv2d(in_ch, out_ch, patch, patch), make_activation(act),
                         nn.BatchNorm2d(out_ch))


def make_block(name: str, args: Dict, fused: bool = False, fold_bn: bool = False) -> nn.Module:
    """The block class ``name`` (one of :data:`BLOCKS`) built from its literal row
    ``args``, with the build options it takes (its ``OPTIONS``)."""
    cls = BLOCKS.get(name)
    if cls is None:
        raise ValueError(f"unknown block class {name!r}")
    options = {"fused": fused, "fold_bn": fold_bn}
    return cls(**args, **{k: options[k] for k in cls.OPTIONS})


class FeatureInfo(list):
    """Per feature level ``{"num_chs", "reduction", "index"}`` (timm's ``feature_info``):
    ``index`` is the block whose output it is (-1: the stem)."""

    def channels(self) -> List[int]:
        return [f["num_chs"] for f in self]

    def reduction(self) -> List[int]:
        return [f["reduction"] for f in self]


def make_head(in_ch: int, head, num_classes: int, fold_bn: bool = False) -> List[nn.Module]:
    """``[conv, pool, post, classifier]`` of the head ``(out_ch, act, post, post_bn)`` fed
    ``in_ch`` channels: [1x1 conv -> BN -> act] -> global average pool -> [1x1 conv with
    bias, or with ``post_bn`` a BN, -> act] -> linear (absent parts are ``nn.Identity``)."""
    head_ch, act, post, post_bn = head
    conv = ConvBNAct(in_ch, head_ch, 1, act=act, fold_bn=fold_bn) if head_ch else nn.Identity()
    width = head_ch or in_ch
    if post and post_bn:
        post_conv: nn.Module = ConvBNAct(width, post, 1, act=act, fold_bn=fold_bn)
    elif post:
        post_conv = nn.Sequential(nn.Conv2d(width, post, 1), make_activation(act))
    else:
        post_conv = nn.Identity()
    return [conv, nn.AdaptiveAvgPool2d(1), post_conv, nn.Linear(post or width, num_classes)]


def feature_levels(stem_stride: int, stem_ch: int, blocks) -> FeatureInfo:
    """Every reduction level of the network: where it ends, its channels and reduction.

    A level is the stretch of blocks at one spatial reduction; its feature map is the
    output of its last block (or of the stem), as in timm's ``features_only`` models.
    """
    levels = FeatureInfo([{"num_chs": stem_ch, "reduction": stem_stride, "index": -1}])
    for i, (_, args) in enumerate(blocks):
        stride = args.get("stride", 1)
        if stride > 1:
            levels.append({"num_chs": args["out_ch"],
                           "reduction": levels[-1]["reduction"] * stride, "index": i})
        else:
            levels[-1] = {"num_chs": args["out_ch"], "reduction": levels[-1]["reduction"],
                          "index": i}
    return levels


def default_out_indices(levels: Sequence[Dict]) -> List[int]:
    """The levels at strides 8, 16 and 32 (a detector's P3-P5); else the last level."""
    picked = [i for i, f in enumerate(levels) if f["reduction"] in (8, 16, 32)]
    return picked or [len(levels) - 1]


class MixNet(nn.Module):
    """Stem -> blocks -> head ([1x1 conv, BN, act] -> global average pool -> [1x1 conv,
    bias or BN, act] -> linear); or, with ``features_only``, the feature maps of the
    chosen reduction levels (timm's feature-extraction convention).

    Args:
        stem: ``(kernel, stride, out_ch, act, patch)``; ``patch`` > 0 is a patch stem.
        blocks: one ``(class name, args)`` per block: a class of :data:`BLOCKS` and its
            keyword arguments (see :func:`make_block`).
        head: ``(out_ch, act, post, post_bn)``: the widths of the 1x1 convs before and
            after pooling (0: none) and whether the latter has a BN (else a bias).
        num_classes: classifier outputs.
        in_chans: input image channels.
        fused: build each MixConv as one zero-padded depthwise conv (:class:`FusedMixConv`).
        channels_last: keep weights and activations in NHWC memory order (the input is
            converted in ``forward``), which speeds up depthwise convs on CPU.
        fold_bn: the inference form: every BatchNorm that directly follows a conv is an
            identity, its eval-mode affine map folded into that conv's weight and bias
            (each block class's ``FOLDS`` pairs; ``nas.export.fold_state_dict`` makes the
            weights). Same outputs in eval mode up to rounding, fewer operations; not for
            training (the network has no BatchNorm left there).
        features_only: build no head; ``forward`` returns the list of feature maps of
            ``out_indices`` (indices into ``feature_levels``; default: strides 8/16/32).
            ``feature_info`` describes them (``channels()``, ``reduction()``).
    """

    def __init__(self, stem, blocks, head, num_classes: int, in_chans: int,
                 fused: bool = False, channels_last: bool = False, features_only: bool = False,
                 out_indices: Optional[Sequence[int]] = None, fold_bn: bool = False):
        super().__init__()
        self.channels_last = channels_last
        self.features_only = features_only
        self.fold_bn = fold_bn
        kernel, stride, stem_ch, stem_act, patch = stem
        self.stem = (PatchStem(in_chans, stem_ch, patch, stem_act) if patch else
                     ConvBNAct(in_chans, stem_ch, kernel, stride, act=stem_act, fold_bn=fold_bn))
        levels = feature_levels(stride, stem_ch, blocks)
        self.out_indices: List[int] = sorted(set(
            default_out_indices(levels) if out_indices is None else out_indices))
        if features_only:
            if not self.out_indices or any(not 0 <= i < len(levels) for i in self.out_indices):
                raise ValueError(f"out_indices {self.out_indices} must be levels 0 to "
                                 f"{len(levels) - 1} of {levels.reduction()}")
            self.feature_info = FeatureInfo(levels[i] for i in self.out_indices)
            last = max(f["index"] for f in self.feature_info)
            blocks = blocks[:last + 1]  # the blocks after the last level are not needed
        else:
            self.feature_info = levels
        self._taps: List[int] = [f["index"] for f in self.feature_info]
        self.blocks = nn.Sequential(*(make_block(name, args, fused, fold_bn)
                                      for name, args in blocks))
        if not features_only:
            last_ch = blocks[-1][1]["out_ch"] if blocks else stem_ch
            self.head, self.pool, self.head_post, self.classifier = make_head(
                last_ch, head, num_classes, fold_bn)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.blocks(self.stem(x)))

    def forward_levels(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The feature maps of ``out_indices``, shallowest first."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.stem(x)
        out: List[torch.Tensor] = []
        if -1 in self._taps:
            out.append(x)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self._taps:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor):
        if self.features_only:
            return self.forward_levels(x)
        x = self.head_post(self.pool(self.forward_features(x)))
        return self.classifier(torch.flatten(x, 1))


#: The block classes by name: what a block row of ``MixNet``'s table builds.
BLOCKS: Dict[str, type] = {cls.__name__: cls for cls in (
    DepthwiseSeparable, InvertedResidual, UniversalInvertedResidual, ConvMixerLayer, ConvBNAct,
    PConvBlock, ADown, ShuffleUnit, MaxPoolBlock)}
