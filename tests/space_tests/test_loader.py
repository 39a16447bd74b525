"""The malformed-space corpus: every file gives a one-line FILE:LINE:COL error."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import nas
from nas.cli import main

BAD = sorted((Path(__file__).parent / "bad").glob("*.yaml"))


def expectation(path: Path):
    first = path.read_text().splitlines()[0]
    m = re.match(r"# expect (\d+): (.*)", first)
    assert m, f"{path} lacks its '# expect LINE: message' header"
    return int(m.group(1)), m.group(2)


def test_corpus_is_large():
    assert len(BAD) >= 30


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_malformed_space_names_file_line_and_token(path):
    line, fragment = expectation(path)
    with pytest.raises(nas.SpaceError) as info:
        nas.load_space(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}:"), message
    assert fragment in message


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_cli_prints_one_line_and_exits_2(path, capsys):
    assert main(["space", "show", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"nas: error: {path}:")


def test_console_script_never_prints_a_traceback():
    path = next(p for p in BAD if p.stem == "bad_kernel")
    run = subprocess.run([sys.executable, "-m", "nas", "space", "show", str(path)],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert f"{path}:5:" in run.stderr


def test_column_points_at_the_token(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("input: {channels: 3, resolution: 32, classes: 10}\nstem: stem_c16\n"
                 "stages:\n  - [ir_r1_k3_e6_c24, ir_r1_k3_e3_q1]\nhead: head_c64\n")
    with pytest.raises(nas.SpaceError) as info:
        nas.load_space(f)
    # '  - [ir_r1_k3_e6_c24, ' is 22 characters: the second row starts at column 23,
    # and its token 'q1' 12 characters later.
    assert (info.value.line, info.value.column) == (4, 35)


def test_unknown_space_lists_registered_names():
    with pytest.raises(FileNotFoundError, match="mixnet_300m"):
        nas.load_space("no_such_space")


def test_yaml_text_and_user_space_dirs(tmp_path, monkeypatch):
    text = ("input: {channels: 3, resolution: 32, classes: 10}\nstem: stem_c16\n"
            "stages:\n  - [ds_r1_k3_c16]\nhead: head_c64\n")
    assert nas.load_space(text).is_single_point
    (tmp_path / "mine.yaml").write_text(text)
    monkeypatch.setenv("NAS_SPACES_PATH", str(tmp_path))
    assert "mine" in nas.available_spaces()
    assert nas.load_space("mine").name == "mine"
