"""optuna-dashboard opens a run's study, as the README and ``nas report`` say: the command
the report prints is started on a copy of the run, on loopback, and the study is fetched
over HTTP.

Cost: ~5 s (the dashboard's start-up and two requests); skipped without optuna-dashboard
(``pip install "nas[dev]"`` has it).
"""

import json
import shlex
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from servers import _free_port

from nas.report import dashboard_command
from nas.search import open_run

DASHBOARD = shutil.which("optuna-dashboard") or str(
    Path(__file__).parents[2] / ".venv" / "bin" / "optuna-dashboard")
pytestmark = pytest.mark.skipif(not Path(DASHBOARD).exists(),
                                reason="optuna-dashboard is not installed")


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.status, reply.read()


def _start_dashboard(url: str):
    """``(process, base URL, first reply)`` of optuna-dashboard on a free loopback port; a
    port taken before the dashboard binds it (another test process) gets another try."""
    for _ in range(5):
        port = _free_port()
        server = subprocess.Popen([DASHBOARD, url, "--host", "127.0.0.1", "--port",
                                   str(port), "--quiet"], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while server.poll() is None:
            try:
                return server, base, _get(f"{base}/api/studies")
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    server.kill()
                    raise AssertionError("optuna-dashboard did not start in 60 s") from None
                time.sleep(0.3)
        output = server.stdout.read()
        if "address already in use" not in output.lower():
            raise AssertionError(output)
    raise AssertionError(f"optuna-dashboard found no free port: {output}")


def test_optuna_dashboard_opens_the_runs_study(search_run_dir, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(search_run_dir, run_dir)  # the dashboard may write to what it opens
    run = open_run(run_dir)
    command = shlex.split(dashboard_command(run))
    assert command[0] == "optuna-dashboard" and command[1].startswith("sqlite:///")
    server, base, (status, body) = _start_dashboard(command[1])
    try:
        assert status == 200
        payload = json.loads(body)
        # the list's key is "study_summaries" (0.21; a TODO there plans "studies")
        studies = payload.get("studies", payload.get("study_summaries"))
        assert [s["study_name"] for s in studies] == [run.config.study]
        study_id = studies[0]["study_id"]
        status, body = _get(f"{base}/api/studies/{study_id}?after=0")
        detail = json.loads(body)
        complete = [t for t in detail["trials"] if t["state"] == "Complete"]
        assert sorted(t["number"] for t in complete) == sorted(r["trial"] for r in run.rows)
        attrs = {a["key"] for a in complete[0]["user_attrs"]}
        assert {"arch", "flops", "feasible"} <= attrs
        status, page = _get(f"{base}/dashboard")
        assert status == 200 and b"<html" in page.lower()
    finally:
        server.terminate()
        server.wait(timeout=20)
