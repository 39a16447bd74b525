"""The exported backbone as a YOLO backbone: an ultralytics plugin module and a model YAML.

``nas export ... --yolo`` writes, beside ``model.py`` and ``weights.pt``:

* ``nas_yolo_<id>.py``: the network's classes (``model.py``'s source) and a module class
  ``NasBackbone_<id>`` that builds the backbone and loads ``weights.pt``; importing the
  module assigns that class into ``ultralytics.nn.tasks``, where ultralytics' YAML parser
  looks up layer names, so no file of ultralytics is edited. The YAML names the class:
  its arguments pass through ``ast.literal_eval``, so a path could not be given there.
  ultralytics pickles the model into its checkpoints, with this module's import path:
  the module must be importable (its folder on ``PYTHONPATH``) wherever a checkpoint is
  loaded. The name carries the architecture's id, so two backbones never share one.
* ``yolo.yaml``: a YOLOv8-style detector over the backbone's stride 8/16/32 levels
  (``Index`` layers pick them from the backbone's list of feature maps), with YOLOv8n's
  neck (SPPF, two C2f top-down, two bottom-up, Detect) and the backbone's channels filled in.

Only validated values reach the generated files: the architecture id (hex), integers,
and ``model.py``'s source (:func:`nas.export.model_source`, itself validated).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Tuple

from .. import __version__
from ..arch import Architecture
from ..errors import ExportError
from ..files import atomic_write_bytes
from ..model import layer_table
from ..ops.static import feature_levels
from ..runs import ExportDir
from .source import ExportForm, model_source, out_levels

__all__ = ["yolo_levels", "plugin_source", "yolo_yaml", "write_yolo", "NECK"]

#: YOLOv8n's neck widths (YOLOv8's 256/512/1024 at width 0.25): SPPF and the P5 C2f, the
#: P4 C2f and downsampling conv, the P3 C2f and downsampling conv.
NECK = (256, 128, 64)

_ID = re.compile(r"^[0-9a-f]{16}$")


def yolo_levels(arch: Architecture, form: ExportForm) -> List[Tuple[int, int]]:
    """``(channels, reduction)`` of the three levels the detector reads.

    Raises:
        ExportError: the backbone's levels are not three, each at twice the stride of the
            one before (the neck upsamples by 2), or the form cannot be trained.
    """
    if form.fused or form.fold_bn:
        raise ExportError("--yolo writes a backbone to train: drop --fused and --fold-bn "
                          "(forms for inference only)")
    _, blocks, _ = layer_table(arch)
    levels = feature_levels(arch.stem.stride, arch.stem.out, blocks)
    picked = [(levels[i]["num_chs"], levels[i]["reduction"])
              for i in out_levels(arch, form.out_indices)]
    reductions = [r for _, r in picked]
    has = ", ".join(map(str, levels.reduction()))
    if len(picked) != 3 or reductions[1] != 2 * reductions[0] or \
            reductions[2] != 2 * reductions[1]:
        raise ExportError(f"--yolo needs three feature levels, each at twice the stride of "
                          f"the one before (e.g. 8, 16, 32), got reductions "
                          f"{', '.join(map(str, reductions)) or 'none'}; pick them with "
                          f"--out-indices (this network has {has})")
    return picked


def _check_id(arch: Architecture) -> str:
    if not _ID.fullmatch(arch.id):  # ids are hex digests; defence in depth
        raise ExportError(f"unexpected architecture id {arch.id!r}")
    return arch.id


def plugin_source(arch: Architecture, form: ExportForm) -> str:
    """The text of ``nas_yolo_<id>.py`` for ``arch`` written in ``form`` (a backbone)."""
    levels = yolo_levels(arch, form)
    ident = _check_id(arch)
    body = model_source(arch, form).split('\n"""\n', 1)[1]  # model.py less its docstring
    chans = ", ".join(str(int(c)) for c, _ in levels)
    strides = ", ".join(str(int(r)) for _, r in levels)
    return f'''"""YOLO backbone plugin exported by nas {_version()}: architecture {ident}
as an ultralytics layer, NasBackbone_{ident} (feature maps at strides {strides}).

Train the detector of yolo.yaml (beside this file) with ultralytics' own arguments:

    python nas_yolo_{ident}.py train data=coco8.yaml epochs=100 imgsz=640

or from Python, importing this module first:

    import nas_yolo_{ident}            # registers NasBackbone_{ident} into ultralytics
    from ultralytics import YOLO
    YOLO("yolo.yaml").train(data="coco8.yaml", epochs=100)

ultralytics stores this module's import path in every checkpoint of that model: put this
folder on PYTHONPATH (or import this module) wherever a checkpoint is loaded.

Imported before ultralytics, it keeps ultralytics from reaching out: YOLO_OFFLINE=1 (no
online checks, no usage events) and YOLO_AUTOINSTALL=false (no pip install of missing
requirements), unless already set; registering also turns ultralytics' usage-event
setting (sync) off. Architecture (nas canonical form):
    {arch}
"""

import os

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

{body}

BACKBONE = "NasBackbone_{ident}"
LEVEL_CHANNELS = ({chans},)
LEVEL_STRIDES = ({strides},)


class NasBackbone_{ident}(nn.Module):
    """The backbone as an ultralytics layer: a list of the feature maps at LEVEL_STRIDES
    ((N, C, H / stride, W / stride) each, C from LEVEL_CHANNELS), for Index layers.

    Loads weights.pt from this module's folder when it is there. Weights for other input
    channels are adapted as timm's adapt_input_conv does: for one channel the stem's
    kernels summed; for more (a one-channel dataset's weights fed RGB) repeated over the
    channels and scaled to keep the sum.
    """

    def __init__(self, in_chans: int = 3):
        super().__init__()
        self.net = build_model(in_chans=in_chans, features_only=True,
                               out_indices=OUT_INDICES)
        weights = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights.pt")
        if os.path.exists(weights):
            state = torch.load(weights, map_location="cpu", weights_only=True)
            own = self.net.state_dict()
            for key, value in state.items():
                want = own[key].shape
                if value.dim() == 4 and value.shape != want and \\
                        (value.shape[0], *value.shape[2:]) == (want[0], *want[2:]):
                    if want[1] == 1:  # one channel: the sum of the kernels
                        state[key] = value.sum(dim=1, keepdim=True)
                    else:  # repeated over the channels, scaled to keep the sum
                        repeat = -(-want[1] // value.shape[1])
                        state[key] = (value.repeat(1, repeat, 1, 1)[:, :want[1]]
                                      * (value.shape[1] / want[1]))
            self.net.load_state_dict(state)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self.net(x)


def register() -> None:
    """Make NasBackbone_{ident} a layer name ultralytics' YAML parser finds."""
    import ultralytics.nn.tasks
    from ultralytics.utils import SETTINGS

    setattr(ultralytics.nn.tasks, BACKBONE, NasBackbone_{ident})
    if SETTINGS.get("sync"):
        SETTINGS.update(sync=False)


def main(argv: Sequence[str]) -> None:
    """ultralytics' command line (yolo MODE key=value ...), model=yolo.yaml by default."""
    import sys

    from ultralytics.cfg import entrypoint

    args = list(argv)
    if not any(a.startswith("model=") for a in args):
        args.append("model=" + os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                            "yolo.yaml"))
    sys.argv = ["yolo", *args]
    entrypoint()


register()

if __name__ == "__main__":
    import importlib
    import sys

    # Run as a script, these classes live in __main__, an import path no checkpoint could
    # be loaded from: register and run the module imported under its own name instead.
    importlib.import_module("nas_yolo_{ident}").main(sys.argv[1:])
'''


def yolo_yaml(arch: Architecture, form: ExportForm) -> str:
    """The text of ``yolo.yaml``: a YOLOv8-style detector over the backbone of ``arch``."""
    (c3, r3), (c4, r4), (c5, r5) = yolo_levels(arch, form)
    ident = _check_id(arch)
    wide, mid, narrow = NECK
    return f"""# YOLOv8-style detector over the nas backbone {ident} (nas export --yolo).
# Backbone levels: stride {r3}: {c3} channels, stride {r4}: {c4}, stride {r5}: {c5}.
# Neck and head: YOLOv8n's (widths {narrow}/{mid}/{wide}); nc is set from the data at training.
# Needs nas_yolo_{ident}.py imported first (it registers the backbone layer):
#   python nas_yolo_{ident}.py train data=coco8.yaml epochs=100 imgsz=640
nc: 80
backbone:
  - [-1, 1, NasBackbone_{ident}, []]  # 0: the list of feature maps
  - [0, 1, Index, [{c3}, 0]]  # 1: P3/{r3}
  - [0, 1, Index, [{c4}, 1]]  # 2: P4/{r4}
  - [0, 1, Index, [{c5}, 2]]  # 3: P5/{r5}
  - [-1, 1, SPPF, [{wide}, 5]]  # 4
head:
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]  # 5
  - [[-1, 2], 1, Concat, [1]]  # 6: cat P4
  - [-1, 1, C2f, [{mid}]]  # 7
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]  # 8
  - [[-1, 1], 1, Concat, [1]]  # 9: cat P3
  - [-1, 1, C2f, [{narrow}]]  # 10: P3 out
  - [-1, 1, Conv, [{narrow}, 3, 2]]  # 11
  - [[-1, 7], 1, Concat, [1]]  # 12: cat head P4
  - [-1, 1, C2f, [{mid}]]  # 13: P4 out
  - [-1, 1, Conv, [{mid}, 3, 2]]  # 14
  - [[-1, 4], 1, Concat, [1]]  # 15: cat head P5
  - [-1, 1, C2f, [{wide}]]  # 16: P5 out
  - [[10, 13, 16], 1, Detect, [nc]]  # 17
"""


def write_yolo(arch: Architecture, out_dir, form: ExportForm) -> List[Path]:
    """Write the plugin module and ``yolo.yaml`` into the export ``out_dir``."""
    out = ExportDir(out_dir)
    written = []
    for path, text in ((out.yolo_plugin(arch.id), plugin_source(arch, form)),
                       (out.yolo_yaml, yolo_yaml(arch, form))):
        atomic_write_bytes(path, text.encode())
        written.append(path)
    return written


def _version() -> str:
    if not re.fullmatch(r"[0-9][0-9a-z.+-]*", __version__):
        raise ExportError("bad version string")
    return __version__
