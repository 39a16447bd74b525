"""``Supernet(space)``: every architecture of a space on one set of shared weights.

``supernet(x, arch)`` runs ``arch``; nothing about the architecture is stored between
calls. ``supernet.extract(arch)`` returns the static network ``build_model`` builds,
loaded with the weights and BatchNorm statistics ``arch`` uses in the supernet.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .arch import Architecture, Layer
from .blocks import SAME, kind_of
from .channels import hard_se_channels, se_channels
from .errors import SupernetMismatch
from .model import build_model
from .ops.dynamic import (
    ACTIVATIONS,
    DYNAMIC_BLOCKS,
    DynamicBatchNorm,
    DynamicPointwise,
    init_linear,
)
from .ops.static import MixNet
from .space.search_space import RowSpace, SearchSpace

__all__ = ["Supernet", "SupernetMismatch"]


@lru_cache(maxsize=2048)
def _layers(arch: Architecture) -> Tuple[Layer, ...]:
    return tuple(arch.layers())


def _row_blocks(row: RowSpace, widths) -> Tuple[nn.ModuleList, set]:
    """The block slots of one row fed any of ``widths``, and the widths it can put out:
    each the weight-sharing class the table of block kinds names, at the largest widths
    and kernels the row's choices give it."""
    alts = row.alternatives
    kind = kind_of(row.kind)
    outs = set(widths) if alts["out"] == (SAME,) else set(alts["out"])
    blocks = nn.ModuleList()
    expansions = alts.get("expansion", (1.0,))
    cls = DYNAMIC_BLOCKS[kind.dynamic]
    for j in range(max(alts["repeats"])):
        ins = widths if j == 0 else outs
        mids = [kind.mid_width(w, o, e) for w in ins for o in outs for e in expansions]
        se = [se_channels(w, r) for w in ins for r in alts.get("se", (0,))]
        se += [hard_se_channels(m, r) for m in mids for r in alts.get("hse", (0,))]
        kernels = [max(k) for k in alts["kernels"] if k] if "kernels" in alts else []
        starts = [max(k) for k in alts.get("start", ()) if k]
        parts = ([kind.part(w, d) for w in ins for d in alts.get("div", (1,))]
                 if kind.part else [0])
        blocks.append(cls(in_max=max(ins), mid_max=max(mids), out_max=max(outs),
                          kernel_max=max(kernels, default=0), se_max=max(se),
                          start_max=max(starts, default=0), part_max=max(parts)))
    # An optional row may be absent and pass on its input width.
    return blocks, (outs | set(widths)) if 0 in alts["repeats"] else outs


class Supernet(nn.Module):
    """Weight-sharing network over every architecture of ``space``.

    Args:
        space: the search space.
        num_classes: classifier outputs (default: the space's target classes).
        in_chans: input channels (default: the space's target channels).
    """

    def __init__(self, space: SearchSpace, num_classes: Optional[int] = None,
                 in_chans: Optional[int] = None):
        super().__init__()
        self.space = space
        self.num_classes = space.input.classes if num_classes is None else num_classes
        self.in_chans = space.input.channels if in_chans is None else in_chans
        stem = space.stem.alternatives
        self.stem_patch = max(stem["patch"])
        self.stem_kernel = self.stem_patch or stem["kernels"][0][0]
        self.stem_stride = stem["stride"][0]
        stem_max = max(stem["out"])
        self.stem_weight = nn.Parameter(
            torch.empty(stem_max, self.in_chans, self.stem_kernel, self.stem_kernel))
        # ConvMixer's patch embedding has a bias (and its BN after the activation)
        self.stem_bias = nn.Parameter(torch.empty(stem_max)) if self.stem_patch else None
        self.stem_bn = DynamicBatchNorm(stem_max)

        widths = set(stem["out"])  # every width that can enter the next row
        self.rows = nn.ModuleList()
        for stage in space.stages:
            stage_modules = nn.ModuleList()
            for row in stage:
                blocks, outs = _row_blocks(row, widths)
                stage_modules.append(blocks)
                widths = outs
            self.rows.append(stage_modules)
        head = space.head.alternatives
        head_max = max(head["out"])
        self.head_conv = DynamicPointwise(max(widths), head_max) if head_max else None
        self.head_bn = DynamicBatchNorm(head_max) if head_max else None
        pooled = head_max or max(widths)
        post_max = max(head["post"])
        self.post_bn = head["post_bn"][0]
        self.post_conv = (DynamicPointwise(pooled, post_max, bias=not self.post_bn)
                          if post_max else None)
        self.post_norm = DynamicBatchNorm(post_max) if post_max and self.post_bn else None
        features = post_max or pooled
        self.classifier_weight = nn.Parameter(torch.empty(self.num_classes, features))
        self.classifier_bias = nn.Parameter(torch.empty(self.num_classes))
        self.memory_format = torch.contiguous_format
        self.reset_parameters()

    def use_memory_format(self, memory_format: torch.memory_format) -> "Supernet":
        """Lay the weights out as ``memory_format`` (channels-last trains 2-3x faster on
        CPU); extracted networks follow. Returns self."""
        self.memory_format = memory_format
        return self.to(memory_format=memory_format)

    def reset_parameters(self) -> None:
        nn.init.kaiming_normal_(self.stem_weight, mode="fan_out", nonlinearity="relu")
        if self.stem_bias is not None:
            nn.init.zeros_(self.stem_bias)
        init_linear(self.classifier_weight, self.classifier_bias)
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    # ---------------------------------------------------------------- forward
    def _check(self, arch: Architecture) -> None:
        if not self.space.contains(arch):
            raise SupernetMismatch(
                f"architecture {arch.id} is not a point of space {self.space.name}")

    def _stem_weight(self, stem) -> torch.Tensor:
        p = (self.stem_kernel - stem.kernel) // 2  # a smaller patch is the centre crop
        return self.stem_weight[:stem.out, :, p:p + stem.kernel, p:p + stem.kernel]

    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        self._check(arch)
        stem = arch.stem
        act = ACTIVATIONS[stem.act]
        if stem.patch:
            x = F.conv2d(x, self._stem_weight(stem), self.stem_bias[:stem.out], stem.patch)
            x = self.stem_bn(act(x))
        else:
            x = F.conv2d(x, self._stem_weight(stem), None, stem.stride, stem.kernel // 2)
            x = act(self.stem_bn(x))
        for layer in _layers(arch):
            x = self.rows[layer.stage][layer.row][layer.repeat](x, layer)
        head = arch.head
        act = ACTIVATIONS[head.act]
        if head.out:
            x = act(self.head_bn(self.head_conv(x, head.out)))
        x = x.mean((2, 3), keepdim=True)
        if head.post:
            x = self.post_conv(x, head.post)
            x = act(self.post_norm(x) if head.post_bn else x)
        width = head.features(arch.last_width)
        return F.linear(x.flatten(1), self.classifier_weight[:, :width], self.classifier_bias)

    # ---------------------------------------------------------------- extraction
    def active_state(self, arch: Architecture) -> Dict[str, torch.Tensor]:
        """State dict of ``build_model(arch)`` as views into the shared tensors."""
        self._check(arch)
        stem = arch.stem
        state: Dict[str, torch.Tensor] = {"stem.0.weight": self._stem_weight(stem)}
        bn_name = "stem.1"
        if stem.patch:
            state["stem.0.bias"] = self.stem_bias[:stem.out]
            bn_name = "stem.2"
        state.update({f"{bn_name}.{k}": v
                      for k, v in self.stem_bn.active_state(stem.out).items()})
        for i, layer in enumerate(_layers(arch)):
            block = self.rows[layer.stage][layer.row][layer.repeat]
            state.update({f"blocks.{i}.{k}": v for k, v in block.active_state(layer).items()})
        last = arch.last_width
        head = arch.head
        if head.out:
            state["head.0.weight"] = self.head_conv.active_weight(last, head.out)
            state.update({f"head.1.{k}": v
                          for k, v in self.head_bn.active_state(head.out).items()})
        pooled = head.out or last
        if head.post:
            state["head_post.0.weight"] = self.post_conv.active_weight(pooled, head.post)
            if head.post_bn:
                state.update({f"head_post.1.{k}": v
                              for k, v in self.post_norm.active_state(head.post).items()})
            else:
                state["head_post.0.bias"] = self.post_conv.active_bias(head.post)
        width = head.features(last)
        state["classifier.weight"] = self.classifier_weight[:, :width]
        state["classifier.bias"] = self.classifier_bias
        return state

    def extract(self, arch: Architecture) -> MixNet:
        """The static network of ``arch`` with copied weights and BN statistics.

        Returned in the supernet's mode (train/eval) and on its device.
        """
        model = build_model(arch, num_classes=self.num_classes, in_chans=self.in_chans)
        device = self.stem_weight.device
        with torch.no_grad():
            state = {k: v.detach().clone() for k, v in self.active_state(arch).items()}
        model.load_state_dict(state, strict=True)
        model = model.to(device, memory_format=self.memory_format)
        return model.train(self.training)

    def extra_repr(self) -> str:
        return (f"space={self.space.name}, num_classes={self.num_classes}, "
                f"in_chans={self.in_chans}")

