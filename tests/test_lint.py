"""House rules the linters of `make lint` cannot state themselves: the dead-code allow-list
holds only names vulture would otherwise report."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_every_allow_listed_name_is_one_vulture_reports():
    # A stale entry would keep a future dead name of the same spelling out of the report.
    tree = ast.parse((ROOT / "vulture_allowlist.py").read_text())
    listed = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    report = subprocess.run([sys.executable, "-m", "vulture", "nas"], cwd=ROOT,
                            capture_output=True, text=True).stdout
    reported = {line.split("'")[1] for line in report.splitlines() if "'" in line}
    assert listed and listed <= reported, f"not reported, remove: {sorted(listed - reported)}"

