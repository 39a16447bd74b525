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
from .channels import mid_channels, se_channels
from .errors import SupernetMismatch
from .grammar import SAME
from .model import build_model
from .ops.dynamic import ACTIVATIONS, DynamicBatchNorm, DynamicBlock, DynamicPointwise, init_linear
from .ops.static import MixNet
from .space.search_space import SearchSpace

__all__ = ["Supernet", "SupernetMismatch"]


@lru_cache(maxsize=2048)
def _layers(arch: Architecture) -> Tuple[Layer, ...]:
    return tuple(arch.layers())


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
        self.stem_kernel = stem["kernels"][0][0]
        self.stem_stride = stem["stride"][0]
        stem_max = max(stem["out"])
        self.stem_weight = nn.Parameter(
            torch.empty(stem_max, self.in_chans, self.stem_kernel, self.stem_kernel))
        self.stem_bn = DynamicBatchNorm(stem_max)

        widths = set(stem["out"])  # every width that can enter the next row
        self.rows = nn.ModuleList()
        for stage in space.stages:
            stage_modules = nn.ModuleList()
            for row in stage:
                alts = row.alternatives
                outs = widths if alts["out"] == (SAME,) else set(alts["out"])
                blocks = nn.ModuleList()
                for j in range(max(alts["repeats"])):
                    ins = widths if j == 0 else outs
                    expansions = alts.get("expansion", (1.0,))
                    mids = [w if row.kind == "ds" else mid_channels(w, e)
                            for w in ins for e in expansions]
                    blocks.append(DynamicBlock(
                        row.kind, in_max=max(ins), mid_max=max(mids), out_max=max(outs),
                        kernel_max=max(k[-1] for k in alts["kernels"]),
                        se_max=max(se_channels(w, se) for w in ins for se in alts["se"]),
                    ))
                stage_modules.append(blocks)
                widths = outs
            self.rows.append(stage_modules)
        head_max = max(space.head.alternatives["out"])
        self.head_conv = DynamicPointwise(max(widths), head_max)
        self.head_bn = DynamicBatchNorm(head_max)
        self.classifier_weight = nn.Parameter(torch.empty(self.num_classes, head_max))
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
        init_linear(self.classifier_weight, self.classifier_bias)
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    # ---------------------------------------------------------------- forward
    def _check(self, arch: Architecture) -> None:
        if not self.space.contains(arch):
            raise SupernetMismatch(
                f"architecture {arch.id} is not a point of space {self.space.name}")

    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        self._check(arch)
        stem = arch.stem
        x = F.conv2d(x, self.stem_weight[:stem.out], None, stem.stride, stem.kernel // 2)
        x = ACTIVATIONS[stem.act](self.stem_bn(x))
        for layer in _layers(arch):
            x = self.rows[layer.stage][layer.row][layer.repeat](x, layer)
        x = ACTIVATIONS[arch.head.act](self.head_bn(self.head_conv(x, arch.head.out)))
        x = x.mean((2, 3))
        return F.linear(x, self.classifier_weight[:, :arch.head.out], self.classifier_bias)

    # ---------------------------------------------------------------- extraction
    def active_state(self, arch: Architecture) -> Dict[str, torch.Tensor]:
        """State dict of ``build_model(arch)`` as views into the shared tensors."""
        self._check(arch)
        stem = arch.stem
        state: Dict[str, torch.Tensor] = {"stem.0.weight": self.stem_weight[:stem.out]}
        state.update({f"stem.1.{k}": v for k, v in self.stem_bn.active_state(stem.out).items()})
        for i, layer in enumerate(_layers(arch)):
            block = self.rows[layer.stage][layer.row][layer.repeat]
            state.update({f"blocks.{i}.{k}": v for k, v in block.active_state(layer).items()})
        last = arch.last_width
        state["head.0.weight"] = self.head_conv.active_weight(last, arch.head.out)
        state.update({f"head.1.{k}": v
                      for k, v in self.head_bn.active_state(arch.head.out).items()})
        state["classifier.weight"] = self.classifier_weight[:, :arch.head.out]
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

