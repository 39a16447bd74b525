import json
import subprocess
import sys
from pathlib import Path

import pytest

import nas
from nas.cli import main

TESTS = Path(__file__).parent


def test_space_show_json_keys(capsys):
    assert main(["space", "show", "mixnet_300m", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info) == {"name", "decisions", "size_log10", "flops_min", "flops_max",
                         "params_min", "params_max"}
    assert info["flops_min"] < 300e6 < info["flops_max"]


def test_single_point_space_show_has_flops_and_params(capsys):
    assert main(["space", "show", "mixnet_m", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["flops"], info["params"]) == (355_613_152, 5_014_382)


def test_space_show_text(capsys):
    assert main(["space", "show", "mixnet_300m"]) == 0
    out = capsys.readouterr().out
    assert "70 decisions" in out and "FLOPs" in out and "s5.b1" in out


def test_space_show_writes_rows_as_the_grammar_does(capsys):
    # flags only when set, a patch stem without kernel and stride, a plain one without p
    assert main(["space", "show", str(TESTS / "spaces" / "patch.yaml")]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert "  stem    stem p[2|4] c[32|48] actgelu" in rows
    assert "  head    head c0 f96 fbn actrelu6" in rows
    assert main(["space", "show", "mixnet_s"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert "  stem    stem k3 s2 c16 actrelu" in rows
    assert not any("fbn" in r or "noskip" in r for r in rows)


def test_space_list(capsys):
    assert main(["space", "list", "--json"]) == 0
    assert {"mixnet_s", "mixnet_m", "mixnet_300m"} <= set(json.loads(capsys.readouterr().out))


def test_space_sample_json_lines(capsys):
    assert main(["space", "sample", "mixnet_300m", "-n", "4", "--seed", "3", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    space = nas.load_space("mixnet_300m")
    for line in lines:
        row = json.loads(line)
        assert set(row) == {"arch", "flops", "params"}
        arch = nas.Architecture.parse(row["arch"])
        assert space.contains(arch)
        assert (row["flops"], row["params"]) == (nas.count_cost(arch).flops,
                                                 nas.count_cost(arch).params)
    assert main(["space", "sample", "mixnet_300m", "-n", "4", "--seed", "3", "--json"]) == 0
    assert capsys.readouterr().out.strip().splitlines() == lines


def test_export_from_string_and_from_arch_json(tmp_path, capsys):
    arch = nas.load_space("mixnet_s").sample(0)
    assert main(["export", "--arch", str(arch), "-o", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "model.py").exists()
    assert main(["export", "--arch", str(tmp_path / "a" / "arch.json"),
                 "-o", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "model.py").read_text() == (tmp_path / "b" / "model.py").read_text()
    assert main(["export", "--arch", str(arch), "-o", str(tmp_path / "a")]) == 2
    assert "--force" in capsys.readouterr().err


def test_bad_arguments_exit_2_without_traceback(capsys):
    assert main(["export", "--arch", "3x32x32-10/stem_c16/ds_k4/head_c64", "-o", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nas: error: column") and "kernel 4" in err
    assert main(["space", "show", "no_such_space"]) == 2
    assert "registered spaces" in capsys.readouterr().err
    assert main(["space", "sample", "mixnet_s", "-n", "0"]) == 2


def test_console_script_help():
    run = subprocess.run([sys.executable, "-m", "nas", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "space" in run.stdout and "export" in run.stdout


def test_os_errors_are_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    arch = nas.load_space("mixnet_s").sample(0)
    assert main(["export", "--arch", str(arch), "-o", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nas: error:") and "file" in err[0]
    bad_json = tmp_path / "arch.json"
    bad_json.write_text("{nope")
    assert main(["export", "--arch", str(bad_json), "-o", str(tmp_path / "o")]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_space_show_json_of_a_single_point_space_has_exactly_the_contract_keys(capsys):
    assert main(["space", "show", "mixnet_s", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {
        "name", "decisions", "size_log10", "flops_min", "flops_max", "params_min",
        "params_max", "flops", "params"}


def test_closed_stdout_pipe_is_quiet():
    run = subprocess.run(f"{sys.executable} -m nas space sample mixnet_300m -n 2000 | head -1",
                         shell=True, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.count("\n") == 1
    assert "Traceback" not in run.stderr and "Exception" not in run.stderr


def imported_by(argv) -> set:
    """The modules ``python -m nas ARGV`` imports (it must succeed)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "nas", *argv],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
            if line.startswith("import time:")}


def heavy(modules, names=("torch", "optuna", "sqlalchemy")) -> list:
    return sorted(m for m in modules if m.split(".")[0] in names)[:5]


@pytest.mark.parametrize("argv", [["--help"], ["space", "show", "mixnet_s"],
                                  ["space", "sample", "mixnet_300m", "-n", "2"],
                                  ["space", "list"]])
def test_light_commands_import_neither_torch_nor_optuna(argv):
    """`nas --help` and `nas space ...` start in a fraction of torch's import time."""
    assert not heavy(imported_by(argv))


def test_search_help_imports_no_torch():
    """Its flags come from the search settings (Optuna's storages among them), which name
    datasets, latency backends and estimators without loading them."""
    assert not heavy(imported_by(["search", "--budget", "1", "--help"]), ("torch",))


def test_report_imports_no_torch(synthetic_run_dir, tmp_path):
    """Issue 17: `nas report RUN` (page, importance, PNG, comparison with RUN-random) never
    needs torch, whose import is ~1.7 s of a 1,000-trial report. ~7 s (a 60-trial report)."""
    import shutil

    shutil.copytree(synthetic_run_dir.parent, tmp_path / "runs")
    modules = imported_by(["report", str(tmp_path / "runs" / "run")])
    assert (tmp_path / "runs" / "run" / "report.html").is_file()
    assert any(m.startswith("optuna.importance") for m in modules)  # importance was drawn
    assert not heavy(modules, ("torch",))


def test_hidden_files_in_a_spaces_folder_are_not_spaces(tmp_path, monkeypatch, capsys):
    """Issue 16: macOS's ._name copies (binary) are not space files."""
    import shutil
    from pathlib import Path

    shutil.copy(Path(__file__).parent / "spaces" / "tiny.yaml", tmp_path / "mine.yaml")
    (tmp_path / "._mine.yaml").write_bytes(b"\x00\x05\x16\x07\xff AppleDouble")
    monkeypatch.setenv("NAS_SPACES_PATH", str(tmp_path))
    assert main(["space", "list", "--json"]) == 0
    names = set(json.loads(capsys.readouterr().out))
    assert "mine" in names and "._mine" not in names
    assert main(["space", "list"]) == 0


def test_os_errors_name_the_file_they_could_not_write(tmp_path, capsys):
    """Issue 16: a write the file system refuses is one line naming the file."""
    import resource

    arch = nas.load_space("mixnet_s").sample(0)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, hard))  # what `ulimit -f 2` sets
    try:
        code = main(["export", "--arch", str(arch), "-o", str(tmp_path / "x")])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0] == f"nas: error: {tmp_path / 'x' / 'model.py'}: File too large"
    assert not (tmp_path / "x" / "model.py").exists() and not list((tmp_path / "x").iterdir())


ARCH = "3x32x32-10/stem_c8/ds_r1_k3_c8/head_c16"


@pytest.mark.parametrize("argv, fragment", [
    (["rerank", "RUN", "--top", "0"], "--top must be >= 1, got 0"),
    (["rerank", "RUN", "--steps", "many"], "--steps must be a whole number, got 'many'"),
    (["rank", "REF", "--estimator", "oracle"],
     "--estimator must be supernet, naswot or predictor:PATH, got 'oracle'"),
    (["rank", "REF", "--estimator", "naswot", "--calib-images", "-1"],
     "--calib-images must be >= 0, got -1"),
    (["predictor", "fit", "REF", "-o", "p.json", "--model", "svm"],
     "--model must be ridge or gbm, got 'svm'"),
    (["predictor", "fit", "REF", "-o", "p.json", "--min-seeds", "0"],
     "--min-seeds must be >= 1, got 0"),
    (["export", "--arch", ARCH, "-o", "x", "--objective", "loss"],
     "--objective must be reward or acc, got 'loss'"),
    (["export", "--arch", ARCH, "-o", "x", "--out-indices", "2", "top"],
     "--out-indices must be a whole number, got 'top'"),
])
def test_settings_of_rerank_rank_predictor_and_export_are_refused_first(argv, fragment, capsys,
                                                                        tmp_path, monkeypatch):
    """Their flags are settings classes: a bad value is one line naming the flag, exit 2,
    before the run, reference or output named is read or written."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"nas: error: {fragment}"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, shown", [
    (["rerank"], ["--top TOP architectures to retrain (default: 3)",
                  "(batch 128) (default: 300)", "--seeds SEEDS seeds per re-ranked "
                  "architecture (default: 2)"]),
    (["rank"], ["--estimator {supernet,naswot,predictor:PATH}", "--supernet PATH [PATH ...]",
                "(default: none)", "(default: 2048)"]),
    (["predictor", "fit"], ["--model {ridge,gbm}", "(default: ridge)", "(default: summary)",
                            "--naswot, --no-naswot", "(default: 1)"]),
    (["export"], ["--objective {reward,acc} what --best maximises (default: reward)",
                  "--fused, --no-fused", "--fold-bn, --no-fold-bn",
                  "--out-indices LEVEL [LEVEL ...]", "--force, --no-force"]),
])
def test_settings_commands_show_each_default_once_declared(argv, shown, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for part in shown:
        assert part in text


@pytest.mark.parametrize("argv, words", [
    (["search", "--budget", "-5M"], "bad budget '-5M'"),
    (["search", "--budget", "300M", "--latency-budget", "-3ms"], "bad latency budget '-3ms'"),
    (["search", "--budget", "300M", "--gamma", "-1e-3"], "--gamma must be >= 0"),
])
def test_a_negative_value_is_named_by_its_setting(argv, words, capsys):
    """argparse took '-5M' for an option: 27 lines of usage ending 'expected one
    argument'. Now the setting's own one-line error names it, before anything runs."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


def test_plain_negative_numbers_stay_with_argparse():
    """argparse takes them itself, and a list option keeps the values after one."""
    from nas.cli import _negative_values

    assert _negative_values(["reference", "--seeds", "-1", "2"]) == [
        "reference", "--seeds", "-1", "2"]
    assert _negative_values(["search", "--budget", "-5M", "--", "--x", "-5M"]) == [
        "search", "--budget=-5M", "--", "--x", "-5M"]


@pytest.mark.parametrize("argv, words", [
    (["export", "runs/x", "--best", "--arch", "a", "-o", "e"],
     "nas export: error: argument --arch: not allowed with argument --best (nas export "
     "--help lists the options)"),
    (["space", "show"], "nas space show: error: the following arguments are required: space"),
])
def test_argparse_errors_are_one_line(argv, words, capsys):
    """argparse printed the whole usage (10-27 lines) before the line that says what is
    wrong."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and err[0].startswith(words), err


def test_an_unknown_option_names_the_commands_help(capsys):
    """It pointed at 'nas --help', whose options are not the command's."""
    assert main(["space", "show", "mixnet_s", "--nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["nas space show: error: unrecognized arguments: --nope (nas space show "
                   "--help lists the options)"], err
