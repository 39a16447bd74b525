"""Settings declared once: flags, help, checks and strict loading derived from the field;
and every file name of a run directory spelled in one module."""

import argparse
import ast
import dataclasses
from pathlib import Path
from typing import List, Optional

import pytest

from nas.config import Settings, inherit, setting, setting_of
from nas.data.shards import ShardsConfig
from nas.diagnose import DiagnoseConfig
from nas.errors import UsageError
from nas.estimators import PredictorConfig, RankConfig
from nas.export import ExportConfig
from nas.latency import TableConfig
from nas.latency.device import PackConfig, ReadConfig
from nas.reference import ReferenceConfig
from nas.report import ReportConfig
from nas.search import RerankConfig, SearchConfig
from nas.space.show import ListConfig, SampleConfig, ShowConfig
from nas.train import QuickReportConfig, RetrainConfig, TrainConfig
from nas.units import parse_flops

NAS = Path(__file__).parents[1] / "nas"
ALL_SETTINGS = [SearchConfig, TrainConfig, RetrainConfig, DiagnoseConfig, ReferenceConfig,
                TableConfig, PackConfig, RerankConfig, RankConfig, PredictorConfig, ExportConfig,
                ListConfig, ShowConfig, SampleConfig, QuickReportConfig, ShardsConfig, ReadConfig,
                ReportConfig]


@dataclasses.dataclass
class Base(Settings):
    budget: int = setting(help="a budget", parse=parse_flops, at_least=1)
    epochs: float = setting(1.0, above=0, help="epochs")
    mode: str = setting("a", choices=("a", "b"), help="a or b")
    seeds: List[int] = setting([0, 1], rerun=True, help="seeds")
    fast: bool = setting(True, help="go fast")
    hidden: str = setting("", cli=False, help="not a flag")
    files: List[str] = setting([], metavar="PATH", help="some files")


@dataclasses.dataclass
class Child(Base):
    epochs: float = inherit(5.0)


def _parse(cls, argv):
    p = argparse.ArgumentParser()
    cls.add_arguments(p)
    return p, p.parse_args(argv)


def test_flags_help_and_values_come_from_the_fields():
    p, args = _parse(Base, ["--budget", "300M", "--seeds", "3", "4", "--no-fast", "--files",
                            "a", "7"])
    assert Base.given(args) == {"budget": 300_000_000, "seeds": [3, 4], "fast": False,
                                "files": ["a", "7"]}
    text = p.format_help()
    assert "--files PATH [PATH ...]" in text and "some files (default: none)" in text
    assert "--epochs EPOCHS  epochs (default: 1.0)" in " ".join(text.split()).replace(
        "EPOCHS epochs", "EPOCHS  epochs") or "(default: 1.0)" in text
    assert "--hidden" not in text and "{a,b}" in text
    with pytest.raises(SystemExit):  # required: no default
        _parse(Base, [])


def test_inherit_keeps_the_declaration_and_changes_the_default():
    assert Child(budget=1).epochs == 5.0
    with pytest.raises(UsageError, match="--epochs must be > 0"):
        Child(budget=1, epochs=0.0).validate()
    p, _ = _parse(Child, ["--budget", "1"])
    assert "(default: 5.0)" in p.format_help()


@pytest.mark.parametrize("bad, fragment", [
    ({"budget": 0}, "--budget must be >= 1"), ({"mode": "c"}, "--mode must be a or b"),
    ({"epochs": float("nan")}, "finite"), ({"fast": 1}, "true or false"),
    ({"seeds": [1, "2"]}, "list of whole numbers"), ({"files": ["a", 2]}, "list of texts")])
def test_checks_name_the_flag(bad, fragment):
    with pytest.raises(UsageError, match=fragment):
        Base(**{"budget": 1, **bad}).validate()


@dataclasses.dataclass
class Elsewhere(Settings):
    rounds: float = setting_of(Child, "epochs", default=7.0, rerun=True)
    mode_again: str = setting_of(Base, "mode", flag="--mode")


def test_a_setting_declared_again_elsewhere_keeps_its_declaration():
    """setting_of: another class's setting under another name (nas search --rerank-steps is
    nas rerank --steps): the help and bounds come along, the flag is its own."""
    assert Elsewhere().rounds == 7.0 and Elsewhere.flag("rounds") == "--rounds"
    assert Elsewhere.flag("mode_again") == "--mode" and Elsewhere.rerun_settings() == {"rounds"}
    with pytest.raises(UsageError, match="--rounds must be > 0"):
        Elsewhere(rounds=0.0).validate()
    with pytest.raises(UsageError, match="--mode must be a or b"):
        Elsewhere(mode_again="c").validate()
    assert "epochs (default: 7.0)" in " ".join(_parse(Elsewhere, [])[0].format_help().split())
    # the search's re-ranking recipe is nas rerank's: one default each
    for name in ("steps", "seeds"):
        mine, theirs = (SearchConfig.settings()[f"rerank_{name}"],
                        RerankConfig.settings()[name])
        assert mine.default == theirs.default and \
            mine.metadata["nas_setting"]["help"] == theirs.metadata["nas_setting"]["help"]


def test_exclusive_settings_are_refused_together_everywhere(capsys):
    from nas.cli import main
    from nas.report import ReportConfig

    assert ReportConfig(json=True).validate().json and ReportConfig(trial=3).validate().trial == 3
    with pytest.raises(UsageError, match="--json and --trial cannot be given together"):
        ReportConfig(json=True, trial=3).validate()
    with pytest.raises(UsageError, match="cannot be given together"):
        ReportConfig.from_dict({"json": True, "trial": 0})
    with pytest.raises(SystemExit) as exit_:  # argparse, before anything is read
        main(["report", "no-such-run", "--json", "--trial", "3"])
    assert exit_.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_strict_loading_of_saved_settings():
    assert Base.from_dict({"budget": 5, "epochs": 2}).epochs == 2.0
    with pytest.raises(UsageError, match="x.json: unknown settings"):
        Base.from_dict({"budget": 5, "typo": 1}, "x.json")
    with pytest.raises(UsageError, match="budget must be a whole number"):
        Base.from_dict({"budget": "300M"})
    with pytest.raises(UsageError, match="budget must be a whole number"):
        Base.from_dict({"budget": True})
    old, new = Base(budget=1), Base(budget=1, seeds=[7])
    assert new.differences(old) == {}  # seeds may change between reruns
    assert Base(budget=2).differences(old) == {"budget": 1}


def test_an_optional_setting_is_none_until_given():
    @dataclasses.dataclass
    class Maybe(Settings):
        size: Optional[int] = setting(None, at_least=1, help="a size")

    p = argparse.ArgumentParser()
    Maybe.add_arguments(p)
    assert "(default: none)" in p.format_help()
    assert Maybe(**Maybe.given(p.parse_args([]))).validate().size is None
    assert Maybe(**Maybe.given(p.parse_args(["--size", "3"]))).validate().size == 3
    with pytest.raises(UsageError, match="--size must be >= 1, got 0"):
        Maybe(size=0).validate()
    assert Maybe.from_dict({"size": None}).size is None
    with pytest.raises(UsageError, match="size must be a whole number or null"):
        Maybe.from_dict({"size": "3"})


@pytest.mark.parametrize("cls", ALL_SETTINGS)
def test_every_command_setting_round_trips_and_has_help(cls):
    required = {n: 1 for n, f in cls.settings().items()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    extra = {RetrainConfig: {"arch": "3x32x32-10/stem_c8/ds_r1_k3_c8/head_c16"},
             RankConfig: {"estimator": "naswot"}}.get(cls, {})
    config = cls(**{**required, **extra}).validate()
    assert cls.from_dict(config.to_dict()) == config
    assert all(f.metadata["nas_setting"]["help"] for f in cls.settings().values())


def test_the_cli_declares_no_setting_flag_by_hand():
    """Every settings class is a command's, and a command's own arguments (where it reads
    and writes) are never one of its settings' flags."""
    from nas import cli

    used = set()
    for key, command in cli._COMMANDS.items():
        classes = [cli._settings_class(path) for path in command.settings]
        used |= set(classes)
        names = [n for a in command.args for n in (a if isinstance(a, tuple) else (a,))
                 if n != "!"]
        own = {flag for n in names for flag in cli._ARGS[n][0]}
        settings = {cls.flag(n) for cls in classes for n, f in cls.settings().items()
                    if f.metadata["nas_setting"]["cli"]}
        assert not own & settings, (key, own & settings)
        cli._parser(list(key) + ["--help"])  # builds: no flag declared twice
    assert used == set(ALL_SETTINGS)
    assert {n for c in cli._COMMANDS.values() for a in c.args
            for n in (a if isinstance(a, tuple) else (a,))} - {"!"} == set(cli._ARGS)


def _literals(path: Path):
    """String constants of a module that are not docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr)
                  and isinstance(n.body[0].value, ast.Constant)}
    return [n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docstrings]


def test_every_run_file_name_is_spelled_once():
    """Paths into run directories are built only by nas.runs (prose, such as help text,
    may still name the files)."""
    names = {s for s in _literals(NAS / "runs.py")  # (not an f-string's bare "." part)
             if "." in s and "/" not in s and " " not in s and any(c.isalnum() for c in s)}
    assert {"study.db", "trials.csv", "config.json", "supernet.pt", "weights.pt"} <= names
    for path in NAS.rglob("*.py"):
        if path.name == "runs.py":
            continue
        literals = _literals(path)  # parsed once per module, not once per name
        found = {n for n in names for s in literals if n in s and " " not in s}
        assert not found, f"{path.relative_to(NAS.parent)} spells {sorted(found)}"


def test_paths_are_stored_independently_of_the_working_directory(tmp_path, monkeypatch):
    """Issue 16: a file the user names is kept absolute, or relative to the run directory
    when it lies inside it; names that are not files (a dataset, a registered space, a
    database URL) are kept as typed."""
    monkeypatch.chdir(tmp_path)
    typed = SearchConfig(budget=1, space="my space.yaml", data="data", supernet="sn",
                         storage="journal:runs/r/s.journal", latency="lut:t.json").resolved()
    assert typed.space == str(tmp_path / "my space.yaml") and typed.data == str(tmp_path / "data")
    assert typed.storage == f"journal:{tmp_path / 'runs' / 'r' / 's.journal'}"
    assert typed.latency == f"lut:{tmp_path / 't.json'}"
    saved = typed.to_dict(tmp_path / "runs" / "r")
    assert saved["storage"] == "journal:s.journal" and saved["supernet"] == str(tmp_path / "sn")
    moved = tmp_path / "elsewhere" / "r"
    back = SearchConfig.from_dict(saved, "config.json", base=moved)
    assert back.storage == f"journal:{moved / 's.journal'}" and back.data == typed.data
    named = SearchConfig(budget=1, data="fashion-mnist",
                         storage="postgresql://u:p@h/db").resolved()
    assert (named.space, named.data, named.storage, named.latency) == (
        "mixnet_300m", "fashion-mnist", "postgresql://u:p@h/db", "torch")


def test_reference_shards_split_the_architectures_without_overlap():
    """``nas reference --shard I/N``: N processes together train every architecture once."""
    from nas.reference import ReferenceConfig, shard_indices
    parts = [shard_indices(f"{i}/3", 10) for i in range(3)]
    assert sorted(sum(parts, [])) == list(range(10))
    assert parts[1] == [1, 4, 7]
    for bad in ("3/3", "1", "a/2", "-1/2", "\u00b2/2", "1/2/3"):
        with pytest.raises(UsageError, match="--shard"):
            ReferenceConfig(shard=bad).validate()
