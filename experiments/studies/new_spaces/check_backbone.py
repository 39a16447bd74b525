"""Check a `nas export --backbone` directory as a detector would use it: the feature maps of
its model.py (+ weights.pt) at 224x224 and at a non-square 256x320 against the levels
arch.json advertises, and model.onnx's outputs against model.py's.

    .venv/bin/python experiments/studies/new_spaces/check_backbone.py EXPORT_DIR [...]

Prints one JSON line per directory and size: the shapes, whether they are the advertised
ones (channels, and ceil(size / reduction) per side; floor after a patch stem, which has
no padding) and the largest |ONNX - model.py|
relative to the level's largest activation.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

from nas.export import load_exported


def check(directory: Path) -> None:
    import onnxruntime as ort

    meta = json.loads((directory / "arch.json").read_text())
    levels = [meta["features"][i] for i in meta["out_indices"]]
    net = load_exported(directory, f"backbone_{directory.name}").build_model()
    net.load_state_dict(torch.load(directory / "weights.pt", weights_only=True))
    net.eval()
    session = ort.InferenceSession(str(directory / "model.onnx"))
    chans = meta["weights"]["in_chans"] if "weights" in meta else meta["input"]["channels"]
    torch.manual_seed(0)
    for height, width in ((224, 224), (256, 320)):
        x = torch.randn(2, chans, height, width)
        with torch.no_grad():
            maps = net(x)
        onnx_maps = session.run(None, {"input": x.numpy()})
        side = math.floor if "stem_p" in meta["arch"] else math.ceil  # a patch stem drops the rest
        advertised = [[f["channels"], side(height / f["reduction"]),
                       side(width / f["reduction"])] for f in levels]
        shapes = [list(m.shape[1:]) for m in maps]
        print(json.dumps({
            "export": str(directory), "input": [height, width],
            "levels": [f"stride{f['reduction']}" for f in levels], "shapes": shapes,
            "advertised": shapes == advertised,
            "onnx_shapes_equal": [list(o.shape[1:]) for o in onnx_maps] == shapes,
            # relative to the level's largest activation: briefly trained supernet weights
            # give feature maps in the thousands, where float32 rounding is ~1e-4 of that
            "max_rel_onnx_minus_model": max(
                ((torch.from_numpy(o) - m).abs().max() / m.abs().max()).item()
                for o, m in zip(onnx_maps, maps)),
            "max_abs_feature": max(m.abs().max().item() for m in maps),
        }))


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        check(Path(arg))
