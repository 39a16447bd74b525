"""A detector built from a found backbone: parameters and FLOPs of the yolo.yaml that
``nas export --yolo`` writes, beside YOLOv8n's, both for 80 classes at 640x640.

    .venv/bin/python experiments/bench/yolo_backbone.py     # ~1 min; bench/yolo_backbone.txt

The backbone is found_p130 (the issue-19 search's best network, at the space's target
input). FLOPs are multiply-accumulates as nas counts them everywhere (fvcore), at 1x3x640x640;
ultralytics prints 2x its own count as "GFLOPs", also shown. Nothing is downloaded: both
detectors are built from YAML (fresh weights), ultralytics kept offline.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

import torch  # noqa: E402

import nas  # noqa: E402
from nas.export import Deploy, ExportForm, export_arch, write_deploy  # noqa: E402
from nas.export.yolo import yolo_levels  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from formats import found_network  # noqa: E402


def count(model: torch.nn.Module, size: int = 640):
    from fvcore.nn import FlopCountAnalysis
    from ultralytics.utils.torch_utils import get_flops

    model = model.eval()
    params = sum(p.numel() for p in model.parameters())
    flops = FlopCountAnalysis(model, torch.zeros(1, 3, size, size))
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    return params, int(flops.total()), get_flops(model, size)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("YOLO_CONFIG_DIR", tmp)
        arch = found_network()
        form = ExportForm(backbone=True)
        export_arch(arch, tmp, form=form)
        write_deploy(tmp, arch, form, [], Deploy(yolo=True))
        sys.path.insert(0, tmp)
        importlib.import_module(f"nas_yolo_{arch.id}")
        from ultralytics.nn.tasks import DetectionModel

        rows = []
        found = DetectionModel(str(Path(tmp) / "yolo.yaml"), nc=80, verbose=False)
        backbone = found.model[0]
        b_params = sum(p.numel() for p in backbone.parameters())
        rows.append(("found_p130 backbone + YOLOv8n neck/head", *count(found), b_params))
        # ultralytics' own YAML (in its package): layers 0-9 are YOLOv8's backbone
        v8n = DetectionModel("yolov8n.yaml", nc=80, verbose=False)
        rows.append(("YOLOv8n", *count(v8n),
                     sum(p.numel() for p in v8n.model[:10].parameters())))
    levels = ", ".join(f"stride {r}: {c} ch" for c, r in yolo_levels(arch, form))
    print(f"backbone {arch.id} ({nas.count_cost(arch).flops / 1e6:.1f}M FLOPs at 224, "
          f"classifier included); levels {levels}")
    print(f"{'detector (80 classes, 640x640)':42s} {'params':>10s} {'FLOPs (MACs)':>13s} "
          f"{'ultralytics GFLOPs':>19s} {'backbone params':>16s}")
    for name, params, flops, gflops, bparams in rows:
        print(f"{name:42s} {params / 1e6:9.2f}M {flops / 1e9:12.2f}G {gflops:19.1f} "
              f"{bparams / 1e6:15.2f}M")


if __name__ == "__main__":
    main()
