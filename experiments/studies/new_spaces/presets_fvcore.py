"""Every shipped preset against the reference counts, as a user checks it: `nas space show
NAME --json`, then fvcore on the exported model.py at 224x224 (batch 1, zeros, eval mode).

    .venv/bin/python experiments/studies/new_spaces/presets_fvcore.py [OUT_DIR]

Prints one JSON line per preset: nas's params and FLOPs, fvcore's on model.py, the
reference (issue 15's table: timm's networks, fvcore at 224x224, 1000 classes) and whether
all three agree. ConvMixer-768/32 traces in about a minute on a loaded 2-core machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from fvcore.nn import FlopCountAnalysis

from nas.export import load_exported

REFERENCE = {  # params, FLOPs
    "mixnet_l": (7_329_252, 576_971_728),
    "efficientnet_b0": (5_288_548, 399_352_864),
    "mobilenetv1_100": (4_231_976, 578_875_904),
    "mobilenetv2_100": (3_504_872, 314_193_216),
    "mobilenetv3_large_100": (5_483_032, 225_436_416),
    "mobilenetv4_conv_small": (3_774_024, 189_981_440),
    "convmixer_768_32": (21_110_248, 20_779_874_304),
}
NAS = [sys.executable, "-m", "nas"]


def main(out: Path) -> None:
    torch.set_num_threads(2)
    for name, (ref_params, ref_flops) in REFERENCE.items():
        shown = json.loads(subprocess.run(NAS + ["space", "show", name, "--json"], check=True,
                                          capture_output=True, text=True).stdout)
        arch = subprocess.run(NAS + ["space", "sample", name, "-n", "1", "--json"], check=True,
                              capture_output=True, text=True).stdout
        target = out / name
        subprocess.run(NAS + ["export", "--arch", json.loads(arch)["arch"], "-o", str(target),
                              "--force"], check=True, capture_output=True)
        model = load_exported(target, f"preset_{name}").build_model().eval()
        start = time.perf_counter()
        counter = FlopCountAnalysis(model, torch.zeros(1, 3, 224, 224))
        counter.unsupported_ops_warnings(False)
        counter.uncalled_modules_warnings(False)
        with torch.no_grad():
            flops = counter.total()
        params = sum(p.numel() for p in model.parameters())
        print(json.dumps({
            "preset": name, "nas": [shown["params"], shown["flops"]],
            "fvcore_model_py": [params, flops], "reference": [ref_params, ref_flops],
            "equal": shown["params"] == params == ref_params
            and shown["flops"] == flops == ref_flops,
            "fvcore_s": round(time.perf_counter() - start, 1)}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
