"""experiments/bench/gpu.sh: the CUDA throughput script, dry-run on the CPU (issue 25)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "bench" / "gpu.sh"


def run(*args):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable}, timeout=300)


def test_the_smoke_run_times_every_configuration_and_prints_the_ratios():
    out = run("--smoke")
    assert out.returncode == 0, out.stderr[-2000:]
    for line in ("supernet sandwich  fp32", "supernet sandwich  bf16", "static largest     fp32",
                 "static largest     bf16", "ratio bf16/fp32, supernet sandwich",
                 "ratio bf16/fp32, static largest"):
        assert line in out.stdout
    rates = [float(line.split(":")[1].split()[0]) for line in out.stdout.splitlines()
             if "img/s" in line]
    assert len(rates) == 4 and all(r > 0 for r in rates)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_without_a_gpu_it_says_so_in_one_line():
    out = run()
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "gpu.py: torch sees no CUDA device (--smoke runs a CPU dry run)"]
