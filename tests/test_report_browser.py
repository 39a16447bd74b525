"""report.html in headless Chromium: it renders the plot and the table, and fetches nothing.

Every request Chromium makes goes through a logging proxy on loopback; a control page
with one external image shows that the proxy does see a page's fetches. Needs Debian's
``chromium`` (`make test` installs it when run as root); skipped where it is absent.
"""

import http.server
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nas.report import write_report
from nas.search import open_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
# Chromium's own service traffic (network time, sign-in, component updates and, in version
# 150, www.google.com), which it sends for an empty page too, whatever the flags. It goes to
# Google's domains, to hosts that change between releases, so it is matched by domain.
SERVICE_DOMAINS = ("google.com", "googleapis.com", "gstatic.com")


def host(line: str) -> str:
    """The host of a logged request line (``GET http://h/p`` or ``CONNECT h:443``)."""
    return line.split()[1].split("//")[-1].split("/")[0].split(":")[0]


def page_requests(seen) -> list:
    """The logged requests that are not Chromium's own service traffic."""
    return [line for line in seen
            if not any(host(line) == d or host(line).endswith("." + d) for d in SERVICE_DOMAINS)]


class _Proxy(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def _refuse(self):
        self.seen.append(f"{self.command} {self.path}")
        self.send_error(403)

    do_GET = do_POST = do_HEAD = do_CONNECT = _refuse

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture()
def proxy():
    _Proxy.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], _Proxy.seen
    server.shutdown()


def chromium(page: Path, port: int, tmp: Path, *mode: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", f"--user-data-dir={tmp / 'profile'}",
             f"--proxy-server=http://127.0.0.1:{port}", "--proxy-bypass-list=<-loopback>",
             "--window-size=1200,1400", "--hide-scrollbars", "--virtual-time-budget=3000"]
    return subprocess.run([CHROMIUM, *flags, *mode, page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)


def test_proxy_sees_a_pages_fetches(proxy, tmp_path):
    port, seen = proxy
    control = tmp_path / "control.html"
    control.write_text('<html><body><img src="http://nas-report.invalid/x.png"></body></html>')
    chromium(control, port, tmp_path, "--dump-dom")
    assert any("nas-report.invalid" in line for line in page_requests(seen)), seen


def test_report_renders_and_fetches_nothing(search_run_dir, proxy, tmp_path):
    port, seen = proxy
    run = open_run(search_run_dir)
    page = write_report(run)["html"]
    # nothing in the page points outside it, so the service domains hide none of its fetches
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//|url\(\s*["']?\s*(https?:)?//""",
                         page.read_text(), re.I)
    shot = tmp_path / "shot.png"
    done = chromium(page, port, tmp_path, f"--screenshot={shot}")
    assert shot.exists(), done.stderr[-2000:]
    dom = chromium(page, port, tmp_path, "--dump-dom").stdout
    assert page_requests(seen) == []  # the page fetched nothing
    # the table: one row per finished trial; the plot: an inline SVG
    assert dom.count("<tr") == len(run.rows) + 1 + len(vars(run.config))
    assert "<svg" in dom
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 1400)
    pixels = np.asarray(image).reshape(-1, 3).astype(int)
    assert (pixels.min(1) < 235).mean() > 0.02  # not blank
    assert len(np.unique(pixels, axis=0)) > 50  # a plot, not a flat page
    # the budget line is drawn in matplotlib's tab:red (214, 39, 40), antialiased
    r, g, b = pixels.T
    assert ((r > 180) & (g < 90) & (b < 90)).sum() > 200
    image.save(tmp_path / "report-screenshot.png")
