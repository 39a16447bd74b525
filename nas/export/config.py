"""How ``nas export`` writes a network: :class:`ExportConfig`, one field per flag."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

from ..config import Settings, setting
from ..data import data_location
from ..errors import UsageError
from ..search.results import BEST_OBJECTIVES
from .formats import DEFAULT_TIMEOUT, FORMATS

__all__ = ["ExportConfig"]


@dataclass
class ExportConfig(Settings):
    """What ``nas export`` (and :func:`nas.export.export_trial`, which takes these by name)
    writes besides the network itself: which trial ``--best`` means, the form of
    ``model.py`` (:meth:`form`), whether an earlier export may be replaced. A new export
    flag is one more field here."""

    objective: str = setting("reward", choices=BEST_OBJECTIVES, help="what --best maximises")
    fused: bool = setting(False, help="each MixConv as one zero-padded depthwise conv (same "
                                      "outputs)")
    channels_last: bool = setting(False, help="NHWC memory format (often faster on CPU)")
    fold_bn: bool = setting(False, help="fold each BatchNorm into the conv before it: an "
                                        "inference-only form (same outputs up to rounding, "
                                        "fewer operations)")
    backbone: bool = setting(False, help="a detection backbone: build_model() returns the "
                                         "feature maps of --out-indices (timm's "
                                         "features_only), no head; arch.json lists every "
                                         "level's channels, reduction and shape")
    out_indices: List[int] = setting([], metavar="LEVEL",
                                     help="the backbone's feature levels, 0 the stem's (none: "
                                          "the levels at strides 8, 16 and 32)")
    force: bool = setting(False, help="overwrite an earlier export")
    int8: bool = setting(False, help="also write model.int8.onnx: statically quantised (QDQ, "
                                     "per-channel weights, BatchNorm folded), calibrated on "
                                     "training images of the run's data, checked on "
                                     "validation images")
    calib: str = setting("", path=data_location, metavar="DATA",
                         help="the images --int8 calibrates on (fashion-mnist, an ImageFolder "
                              "or a .tar.gz of one; default: the run's data; needed with "
                              "--arch)")
    # the deploy forms, written beside model.py (nas.export.deploy)
    formats: List[str] = setting([], choices=tuple(FORMATS), flag="--format", metavar="FORMAT",
                                 help="also write the network for a mobile runtime "
                                      "(model.onnx and model.ts are written without it): "
                                      + ", ".join(FORMATS) + " (each an extra: pip install "
                                      "'nas[FORMAT]'), each checked against torch where its "
                                      "runtime runs here (Core ML: converted only)")
    convert_timeout: float = setting(DEFAULT_TIMEOUT, metavar="SECONDS",
                                     help="seconds each format's converter may run")
    yolo: bool = setting(False, help="also write the backbone as an ultralytics plugin "
                                     "(nas_yolo_ID.py) and a YOLOv8-style detector over its "
                                     "stride 8/16/32 levels (yolo.yaml); implies --backbone")

    def check(self) -> None:
        if self.calib and not self.int8:
            raise UsageError("--calib names the images --int8 calibrates on: add --int8")

    def form(self):
        """The :class:`~nas.export.ExportForm` of ``model.py`` these settings ask for
        (``--yolo`` makes it a backbone)."""
        from .source import ExportForm

        return self.deploy().form(ExportForm(fused=self.fused, channels_last=self.channels_last,
                                             fold_bn=self.fold_bn, backbone=self.backbone,
                                             out_indices=tuple(self.out_indices) or None))

    def deploy(self):
        """The :class:`~nas.export.Deploy` forms these settings ask for."""
        from .deploy import Deploy

        return Deploy(formats=tuple(self.formats), timeout=self.convert_timeout, yolo=self.yolo)
