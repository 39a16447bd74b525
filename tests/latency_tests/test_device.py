"""Latency on the user's device: nas latency pack writes a space's units for a runtime,
run_latency.py times them with the standard library and the runtime alone (run here, in a
process where nas and torch cannot be imported), nas latency read makes the table a search
uses. ONNX Runtime ~60 s, ncnn ~60 s here (pnnx per file).
"""

import json
import platform
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from standalone import NO_NAS

import nas
from nas.cli import main
from nas.errors import CheckpointError
from nas.latency import make_latency_model
from nas.latency.device import read_timings
from nas.latency.units import unit_keys

TINY = Path(__file__).parents[1] / "spaces" / "tiny.yaml"

# The runner as a user runs it, where neither nas nor torch is importable.
RUNNER = NO_NAS + textwrap.dedent("""
    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is not importable here")
    sys.meta_path.insert(0, NoTorch())
    import runpy
    script = sys.argv[1]
    sys.argv = [script] + sys.argv[2:]
    runpy.run_path(script, run_name="__main__")
""")


def _pack(tmp_path_factory, runtime):
    pytest.importorskip({"onnxruntime": "onnxruntime", "ncnn": "pnnx"}[runtime])
    out = tmp_path_factory.mktemp(f"pack-{runtime}")
    assert main(["latency", "pack", "--space", str(TINY), "--runtime", runtime, "--archs", "1",
                 "--calibrate", "2", "-o", str(out), "--force"]) == 0
    run = subprocess.run([sys.executable, "-c", RUNNER, str(out / "run_latency.py"),
                          "--repeats", "5"], capture_output=True, text=True, cwd=out)
    assert run.returncode == 0, run.stderr
    return out


@pytest.fixture(scope="module", params=["onnxruntime", "ncnn"])
def timed_pack(request, tmp_path_factory):
    return request.param, _pack(tmp_path_factory, request.param)


def test_the_timings_read_back_as_a_table_that_prices_the_packed_networks(timed_pack,
                                                                          tmp_path, capsys):
    runtime, pack = timed_pack
    manifest = json.loads((pack / "manifest.json").read_text())
    capsys.readouterr()
    assert main(["latency", "read", str(pack), "-o", str(tmp_path / "lut.json")]) == 0
    assert "use it: nas search --budget 300M --latency lut:" in capsys.readouterr().out
    table = make_latency_model(f"lut:{tmp_path / 'lut.json'}")
    assert table.backend == runtime and table.source == "table"
    assert table.device["machine"] == platform.machine()
    assert table.device["runtime_version"].startswith(runtime)
    assert "on " + platform.machine() in table.describe()
    assert set(table.entries) == {u["key"] for u in manifest["units"]}
    assert all(v > 0 for v in table.entries.values())
    for n in manifest["networks"]:  # every unit of the calibration networks is packed
        arch = nas.Architecture.parse(n["arch"])
        assert table.predict(arch) == pytest.approx(
            table.scale * sum(table.entries[k] for k in unit_keys(arch)))
    assert 0.2 < table.scale < 5


def test_a_device_table_refuses_a_unit_it_lacks_instead_of_timing_it_here(timed_pack):
    _, pack = timed_pack
    table = read_timings(pack)
    space = nas.load_space(TINY)
    rng = random.Random(99)
    other = next(a for a in (space.sample(rng) for _ in range(200))
                 if any(k not in table.entries for k in unit_keys(a)))
    with pytest.raises(CheckpointError, match="not the device it was timed on"):
        table.predict(other)
    assert table.misses == 0


def test_ncnn_times_only_the_unit_asked_for(timed_pack):
    """One ncnn file holds a bundle of units; extracting one output must run that unit
    alone, or every unit would cost the whole file."""
    runtime, pack = timed_pack
    if runtime != "ncnn":
        pytest.skip("ncnn only")
    manifest = json.loads((pack / "manifest.json").read_text())
    timings = json.loads((pack / "timings.json").read_text())["units"]
    group = [u["key"] for u in manifest["units"] if u["group"] == manifest["units"][0]["group"]]
    assert len(group) > 10
    assert max(timings[k] for k in group) < 0.5 * sum(timings[k] for k in group)


def test_timings_that_are_not_the_packs_are_refused(timed_pack, tmp_path):
    _, pack = timed_pack
    good = json.loads((pack / "timings.json").read_text())
    cases = {
        "another pack": ({**good, "pack": "0" * 16}, "timings of another pack"),
        "a unit missing": ({**good, "units": dict(list(good["units"].items())[1:])},
                           "have no timing"),
        "a bad number": ({**good, "units": {**good["units"],
                                            next(iter(good["units"])): -1}},
                         "not a positive number"),
        "no networks": ({**good, "networks": {}}, "calibration networks were not all"),
    }
    for data, message in cases.values():
        path = tmp_path / "t.json"
        path.write_text(json.dumps(data))
        with pytest.raises(CheckpointError, match=message):
            read_timings(pack, path)


def test_a_pack_is_not_overwritten_without_force(timed_pack, capsys):
    runtime, pack = timed_pack
    assert main(["latency", "pack", "--space", str(TINY), "--runtime", runtime,
                 "-o", str(pack)]) == 2
    assert "already holds a pack" in capsys.readouterr().err
