"""The exported model.py must stand alone: torch + the standard library only."""

import json
import random
import subprocess
import sys
import textwrap

import pytest
import torch
from standalone import NO_NAS

import nas
from nas.errors import ExportError
from nas.export.source import _literal

# Runs in a fresh interpreter where importing nas fails.
STANDALONE = NO_NAS + textwrap.dedent("""
    import json
    sys.path.insert(0, sys.argv[1])
    import torch
    import model
    net = model.build_model(**json.loads(sys.argv[2])).eval()
    weights = sys.argv[1] + "/weights.pt"
    try:
        net.load_state_dict(torch.load(weights, weights_only=True))
    except FileNotFoundError:
        pass
    torch.manual_seed(0)
    shape = (2, model.IN_CHANS if "in_chans" not in json.loads(sys.argv[2])
             else json.loads(sys.argv[2])["in_chans"], model.RESOLUTION, model.RESOLUTION)
    with torch.no_grad():
        out = net(torch.randn(*shape))
    torch.save(out, sys.argv[1] + "/out.pt")
    print(json.dumps({"params": sum(p.numel() for p in net.parameters()),
                      "shape": list(out.shape), "nas_loaded": "nas" in sys.modules}))
""")


def run_standalone(directory, **kwargs):
    run = subprocess.run([sys.executable, "-c", STANDALONE, str(directory), json.dumps(kwargs)],
                         capture_output=True, text=True, cwd=directory)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_exported_model_stands_alone(spaces, tmp_path):
    for name in ("mixnet_s", "mixnet_300m", "edge_cases"):
        arch = spaces[name].sample(random.Random(3))
        out = tmp_path / name
        nas.export_arch(arch, out)
        result = run_standalone(out)
        model = nas.build_model(arch)
        assert result["params"] == sum(p.numel() for p in model.parameters())
        assert result["shape"] == [2, arch.input.classes]
        assert result["nas_loaded"] is False
        meta = json.loads((out / "arch.json").read_text())
        assert nas.Architecture.parse(meta["arch"]) == arch
        assert nas.Architecture.from_dict(meta["structure"]) == arch
        assert (meta["flops"], meta["params"]) == tuple(vars(nas.count_cost(arch)).values())


def test_exported_model_reproduces_nas_outputs_with_its_weights(spaces, tmp_path):
    arch = spaces["edge_cases"].sample(random.Random(9))
    nas.export_arch(arch, tmp_path)
    model = nas.build_model(arch).eval()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    run_standalone(tmp_path)
    torch.manual_seed(0)
    x = torch.randn(2, arch.input.channels, arch.input.resolution, arch.input.resolution)
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(torch.load(tmp_path / "out.pt", weights_only=True), expected,
                               rtol=0, atol=1e-6)


def test_build_model_arguments_adapt(spaces, tmp_path):
    arch = spaces["mixnet_s"].sample(0)
    nas.export_arch(arch, tmp_path)
    result = run_standalone(tmp_path, num_classes=10, in_chans=1)
    assert result["shape"] == [2, 10]


def test_export_refuses_to_overwrite(spaces, tmp_path):
    arch = spaces["mixnet_s"].sample(0)
    nas.export_arch(arch, tmp_path)
    with pytest.raises(ExportError, match="already holds an export"):
        nas.export_arch(arch, tmp_path)
    (tmp_path / "weights.pt").write_bytes(b"stale")
    nas.export_arch(spaces["mixnet_m"].sample(0), tmp_path, force=True)
    assert not (tmp_path / "weights.pt").exists()  # weights of another network are not kept


@pytest.mark.parametrize("value", ['relu"); import os; ("', "__import__('os')", "a\nb", "relu\n",
                                   "Relu", 1.5, None, (1, "2"), [1, 2]])
def test_literal_writer_refuses_anything_unvalidated(value):
    with pytest.raises(ExportError):
        _literal(value)


def test_generated_code_is_only_the_table_and_the_library(spaces):
    source = nas.model_source(spaces["mixnet_300m"].sample(1))
    compile(source, "model.py", "exec")
    imports = {line.strip() for line in source.splitlines()
               if line.startswith(("import ", "from "))}
    assert imports == {"import torch", "from torch import nn",
                       "from typing import List, Sequence"}
