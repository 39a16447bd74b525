"""report.html in headless Chromium: it renders, fetches nothing, and its interaction works.

Every request Chromium makes goes through a logging proxy on loopback; a control page
with one external image shows that the proxy does see a page's fetches. The interaction
test drives Chromium through the DevTools protocol (tests/cdp.py): real mouse events on a
front point, screenshots of each picture, a 1280 px viewport, then the same page with
JavaScript off. Needs Debian's ``chromium`` (`make test` installs it when run as root);
skipped where it is absent. Cost: ~15 s on 2 cores (two browser starts, one page each).
"""

import http.server
import io
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from cdp import Chromium
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


def flags(port: int, tmp: Path) -> list:
    return ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", f"--user-data-dir={tmp / 'profile'}",
            f"--proxy-server=http://127.0.0.1:{port}", "--proxy-bypass-list=<-loopback>",
            "--hide-scrollbars"]


def chromium(page: Path, port: int, tmp: Path, *mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", *flags(port, tmp), "--window-size=1200,1400",
                           "--virtual-time-budget=3000", *mode, page.resolve().as_uri()],
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
    page = write_report(run).html
    # nothing in the page points outside it, so the service domains hide none of its fetches
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//|url\(\s*["']?\s*(https?:)?//""",
                         page.read_text(), re.I)
    shot = tmp_path / "shot.png"
    done = chromium(page, port, tmp_path, f"--screenshot={shot}")
    assert shot.exists(), done.stderr[-2000:]
    dom = chromium(page, port, tmp_path, "--dump-dom").stdout
    assert page_requests(seen) == []  # the page fetched nothing
    # the table of all trials: one row per finished trial; the plot: an inline SVG
    assert dom.count('<tr id="row-') == len(run.rows)
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


def not_blank(png: bytes, name: str, tmp: Path) -> Image.Image:
    """The screenshot saved for a look, and checked to hold a drawing, not a flat area."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.save(tmp / f"{name}.png")
    pixels = np.asarray(image).reshape(-1, 3).astype(int)
    assert (pixels.min(1) < 200).mean() > 0.01, name  # some ink
    assert len(np.unique(pixels, axis=0)) > 20, name  # more than a background and a frame
    return image


def test_report_interaction_in_chromium(synthetic_run_dir, proxy, tmp_path):
    """Pictures present, hover shows a trial, a click selects its row; 1280 px without
    horizontal overflow; with JavaScript off the same content and the click still works."""
    port, seen = proxy
    run_dir = tmp_path / "run"
    shutil.copytree(synthetic_run_dir, run_dir)
    shutil.copytree(synthetic_run_dir.parent / "run-random", tmp_path / "run-random")
    run = open_run(run_dir)
    url = write_report(run).html.resolve().as_uri()
    front = len(run.front())
    browser = Chromium(CHROMIUM, flags(port, tmp_path), width=1280, height=900)
    try:
        browser.open(url)
        width = "document.documentElement.scrollWidth"
        assert browser.eval(width) <= 1280
        assert browser.eval("document.querySelectorAll('tr[id^=trial-] svg.arch').length") \
            == front
        shots = {name: browser.screenshot(selector) for name, selector in (
            ("picture", "tr[id^=trial-] svg.arch"), ("front", "svg.front"),
            ("history", "svg.history"), ("importance", "svg.imp"))}
        for name, png in shots.items():
            not_blank(png, name, tmp_path)
        # the history has this run's line (blue) and random search's (orange, dashed)
        history = np.asarray(Image.open(io.BytesIO(shots["history"])).convert("RGB")).astype(int)
        r, g, b = history.reshape(-1, 3).T
        assert ((r < 80) & (g > 90) & (g < 150) & (b > 150)).sum() > 100  # #1f77b4
        assert ((r > 220) & (g > 100) & (g < 160) & (b < 60)).sum() > 50  # #ff7f0e

        point = "svg.front .pt.fr"
        trial = browser.eval(f"document.querySelector('{point}').getAttribute('data-trial')")
        at = browser.centre(point)
        browser.mouse("mouseMoved", at["x"], at["y"])
        tip = "document.getElementById('tip')"
        assert browser.eval(f"{tip}.hidden") is False
        assert browser.eval(f"{tip}.textContent").startswith(f"trial {trial}: ")
        assert browser.eval(f"{tip}.querySelector('svg.arch') !== null")  # its picture
        not_blank(browser.screenshot(), "hover", tmp_path)
        browser.click(at["x"], at["y"])
        assert browser.eval("document.querySelector(':target').id") == f"trial-{trial}"
        assert browser.eval(f"document.getElementById('trial-{trial}').className") \
            == "front selected"
        assert browser.eval("document.querySelectorAll('tr.selected').length") == 1
        not_blank(browser.screenshot(), "clicked", tmp_path)
        # long architecture strings wrap: no overflow with every one of them unfolded
        browser.eval("document.querySelectorAll('details').forEach(d => d.open = true)")
        assert browser.eval(width) <= 1280
        assert browser.eval("document.querySelectorAll('.cmd button').length") >= front
        assert all(u.startswith("file://") for u in browser.requests()), browser.requests()

        # JavaScript off: the static page is all there, and a click still selects the row
        browser.send("Emulation.setScriptExecutionDisabled", {"value": True}, page=True)
        browser.open(url)
        assert browser.eval("document.querySelectorAll('tr[id^=trial-] svg.arch').length") \
            == front
        assert browser.eval("document.querySelectorAll('.cmd button').length") == 0  # no script
        assert browser.eval(f"document.querySelector('{point} title') !== null")  # native tip
        at = browser.centre(point)
        browser.click(at["x"], at["y"])
        assert browser.eval("document.querySelector(':target').id") == f"trial-{trial}"
        not_blank(browser.screenshot(), "clicked-without-javascript", tmp_path)
        assert browser.eval(width) <= 1280
    finally:
        browser.close()
    assert page_requests(seen) == []
