"""House rules the linters of `make lint` cannot state themselves: the dead-code allow-list
holds only names vulture would otherwise report, and tests/ mirrors nas/'s packages."""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import nas

ROOT = Path(__file__).parents[1]


def test_every_allow_listed_name_is_one_vulture_reports():
    # A stale entry would keep a future dead name of the same spelling out of the report.
    tree = ast.parse((ROOT / "vulture_allowlist.py").read_text())
    listed = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    report = subprocess.run([sys.executable, "-m", "vulture", "nas"], cwd=ROOT,
                            capture_output=True, text=True).stdout
    reported = {line.split("'")[1] for line in report.splitlines() if "'" in line}
    assert listed and listed <= reported, f"not reported, remove: {sorted(listed - reported)}"


def test_every_package_of_nas_has_its_test_folder():
    packages = [m.name for m in pkgutil.iter_modules(nas.__path__) if m.ispkg]
    missing = [p for p in packages if not (ROOT / "tests" / f"{p}_tests").is_dir()]
    assert not missing, f"tests/ mirrors nas/: add tests/<name>_tests/ for {missing}"
