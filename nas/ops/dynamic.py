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

__all__ = ["ACTIVATIONS", "DynamicPointwise", "DynamicMixConv", "DynamicBatchNorm",
           "DynamicSqueezeExcite", "DynamicBlock"]

ACTIVATIONS = {"relu": F.relu, "swish": F.silu, "hswish": F.hardswish}

Region = tuple  # a tuple of slices, one per leading dimension


class _TakeRegions(torch.autograd.Function):
    """Views of disjoint sub-blocks of one tensor, with a single backward.

    Plain indexing records one slice op per sliced dimension, and each one's backward
    allocates, zero-fills and copies a tensor of the full shape: for a 3-group MixConv
    that is 6 full-size tensors per step for one weight. Here backward writes every
    block's gradient into one zero tensor.
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor, regions: Sequence[Region]):
        ctx.regions = regions
        ctx.shape = weight.shape
        ctx.channels_last = weight.dim() == 4 and not weight.is_contiguous() and \
            weight.is_contiguous(memory_format=torch.channels_last)
        return tuple(weight[r] for r in regions)

    @staticmethod
    def backward(ctx, *grads):
        grad = grads[0].new_zeros(ctx.shape)
        if ctx.channels_last:  # match the parameter's layout, as autograd's own grads do
            grad = grad.contiguous(memory_format=torch.channels_last)
        for region, g in zip(ctx.regions, grads):  # autograd passes zeros for unused ones
            grad[region] = g
        return grad, None


def take_regions(weight: torch.Tensor, regions: Sequence[Region]) -> Sequence[torch.Tensor]:
    """``[weight[r] for r in regions]`` for disjoint regions, cheaper to differentiate."""
    if not torch.is_grad_enabled() or not weight.requires_grad:
        return [weight[r] for r in regions]
    return _TakeRegions.apply(weight, tuple(regions))


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
    """MixConv over up to ``channels_max`` channels; one depthwise weight at ``kernel_max``."""

    def __init__(self, channels_max: int, kernel_max: int):
        super().__init__()
        self.channels_max, self.kernel_max = channels_max, kernel_max
        self.weight = nn.Parameter(torch.empty(channels_max, 1, kernel_max, kernel_max))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # He init with a depthwise conv's true fan-out, k*k per channel. (kaiming_normal_
        # would take C*k*k, ignoring groups: std 0.003 for 1440 channels at 11x11, and
        # behind BatchNorm gradients grow as the weights shrink.)
        nn.init.normal_(self.weight, 0.0, (2.0 / self.kernel_max ** 2) ** 0.5)

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
        if len(weights) == 1:
            return F.conv2d(x, weights[0], None, stride, kernels[0] // 2, 1, splits[0])
        chunks = torch.split(x, list(splits), dim=1)
        return torch.cat([
            F.conv2d(chunk, w, None, stride, k // 2, 1, c)
            for chunk, w, c, k in zip(chunks, weights, splits, kernels)
        ], dim=1)

    def extra_repr(self) -> str:
        return f"channels_max={self.channels_max}, kernel_max={self.kernel_max}"


class DynamicBatchNorm(nn.BatchNorm2d):
    """BatchNorm over the first ``c`` channels (affine parameters and running statistics).

    In training mode the running statistics of those channels are updated in place.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        # Like nn.BatchNorm2d with momentum set: num_batches_tracked is not used.
        return F.batch_norm(
            x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c],
            self.training, self.momentum, self.eps,
        )

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

    def forward(self, x: torch.Tensor, reduced: int, act) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.conv_expand(act(self.conv_reduce(s, reduced)), x.shape[1])
        return x * torch.sigmoid(s)

    def active_state(self, channels: int, reduced: int) -> Dict[str, torch.Tensor]:
        return {
            "conv_reduce.weight": self.conv_reduce.active_weight(channels, reduced),
            "conv_reduce.bias": self.conv_reduce.active_bias(reduced),
            "conv_expand.weight": self.conv_expand.active_weight(reduced, channels),
            "conv_expand.bias": self.conv_expand.active_bias(channels),
        }


class DynamicBlock(nn.Module):
    """A ds or ir block slot of the supernet, at its largest widths.

    Module names mirror :class:`nas.ops.static.InvertedResidual` and
    :class:`~nas.ops.static.DepthwiseSeparable`, so :meth:`active_state` returns a
    state dict the static block loads as is.
    """

    def __init__(self, kind: str, in_max: int, mid_max: int, out_max: int, kernel_max: int,
                 se_max: int):
        super().__init__()
        self.kind = kind
        if kind == "ir":
            self.conv_pw = DynamicPointwise(in_max, mid_max)
            self.bn1 = DynamicBatchNorm(mid_max)
            self.conv_dw = DynamicMixConv(mid_max, kernel_max)
            self.bn2 = DynamicBatchNorm(mid_max)
            self.conv_pwl = DynamicPointwise(mid_max, out_max)
            self.bn3 = DynamicBatchNorm(out_max)
        else:
            self.conv_dw = DynamicMixConv(in_max, kernel_max)
            self.bn1 = DynamicBatchNorm(in_max)
            self.conv_pw = DynamicPointwise(in_max, out_max)
            self.bn2 = DynamicBatchNorm(out_max)
        self.se = DynamicSqueezeExcite(mid_max, se_max) if se_max else None

    def forward(self, x: torch.Tensor, layer: Layer) -> torch.Tensor:
        act = ACTIVATIONS[layer.act]
        if self.kind == "ir":
            y = act(self.bn1(self.conv_pw(x, layer.mid_ch, layer.exp_groups)))
            y = act(self.bn2(self.conv_dw(y, layer.dw_splits, layer.kernels, layer.stride)))
            if layer.se_ch:
                y = self.se(y, layer.se_ch, act)
            y = self.bn3(self.conv_pwl(y, layer.out_ch, layer.proj_groups))
        else:
            y = act(self.bn1(self.conv_dw(x, layer.dw_splits, layer.kernels, layer.stride)))
            if layer.se_ch:
                y = self.se(y, layer.se_ch, act)
            y = self.bn2(self.conv_pw(y, layer.out_ch, layer.proj_groups))
        return x + y if layer.residual else y

    def active_state(self, layer: Layer) -> Dict[str, torch.Tensor]:
        """The static block's state dict for ``layer`` (views into the shared tensors)."""
        state: Dict[str, torch.Tensor] = {}

        def bn(name: str, module: DynamicBatchNorm, c: int) -> None:
            state.update({f"{name}.{k}": v for k, v in module.active_state(c).items()})

        dw = self.conv_dw.active_weights(layer.dw_splits, layer.kernels)
        state.update({f"conv_dw.convs.{i}.weight": w for i, w in enumerate(dw)})
        if self.kind == "ir":
            state["conv_pw.weight"] = self.conv_pw.active_weight(
                layer.in_ch, layer.mid_ch, layer.exp_groups)
            bn("bn1", self.bn1, layer.mid_ch)
            bn("bn2", self.bn2, layer.mid_ch)
            state["conv_pwl.weight"] = self.conv_pwl.active_weight(
                layer.mid_ch, layer.out_ch, layer.proj_groups)
            bn("bn3", self.bn3, layer.out_ch)
        else:
            bn("bn1", self.bn1, layer.in_ch)
            state["conv_pw.weight"] = self.conv_pw.active_weight(
                layer.in_ch, layer.out_ch, layer.proj_groups)
            bn("bn2", self.bn2, layer.out_ch)
        if layer.se_ch:
            state.update({f"se.{k}": v for k, v in
                          self.se.active_state(layer.mid_ch, layer.se_ch).items()})
        return state


def init_linear(linear_weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Classifier init N(0, 0.01) (MobileNetV2's).

    Not EfficientNet's uniform(+-1/sqrt(classes)): harmless for 1000 classes, it gives
    10-class proxies logits so large that training starts at loss 5 with exploding
    gradients.
    """
    nn.init.normal_(linear_weight, 0.0, 0.01)
    nn.init.zeros_(bias)
