"""The dashboard in a real browser: time from `stats-service demo` start to the overview
showing charts with data (target < 5 s), and from page load to the first chart drawn
(target < 1 s on demo data).

    .venv/bin/python benchmarks/bench_dashboard.py              # 5 starts, 10 loads a page
    .venv/bin/python benchmarks/bench_dashboard.py --starts 3 --loads 5

Headless Chromium from Debian's `chromium` package (driven by Playwright, like the tests;
no browser is downloaded) is started first, as a user's browser is already open.

Cold start: the clock starts when `stats-service demo` is spawned on an empty data dir;
the browser asks for the overview as soon as `/v1/health` answers (the demo's tenant
allows anonymous reads, so no sign-in), and the clock stops when every demo board's row
shows a sparkline drawn from stored data. Stages: health answered, page loaded
(DOMContentLoaded), rows listed, sparklines drawn.

Page loads: against the running demo (a day of history stored), the time is
`performance.now()` (milliseconds since navigation start) when the page's first chart
with data is drawn: the overview's first sparkline, the device page's first drawing (a
plain SVG of the data while Plotly compiles) and its first interactive Plotly chart, the
run page's timeline, and the explorer with one series given in the URL. Cold: each load
in a fresh incognito context (nothing cached, a first visit); warm: loads in a browser
with a profile on disk after two visits (scripts and Chrome's compiled-code cache in
place: a returning user).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, BrowserContext, BrowserType, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ADMIN_KEY, VENV_BIN, print_machine, print_table

CHROMIUM = Path(os.environ.get("STATS_BENCH_CHROMIUM", "/usr/bin/chromium"))
BOARDS = ("esp32-01", "esp32-02", "esp32-03")
TIMEOUT_S = 60.0

# true once every board's row has a sparkline with a drawn line
SPARKS_DRAWN = """boards => boards.every(b => {
  const row = document.querySelector(`tr[data-device="${b}"]`);
  return row && row.querySelector('.spark polyline');
}) ? performance.now() : false"""
FIRST_SPARK = "() => document.querySelector('.spark polyline') ? performance.now() : false"
FIRST_PLOT = """sel => {
  const plot = document.querySelector(sel);
  return plot && Number(plot.dataset.points) > 0 ? performance.now() : false;
}"""
# pages draw a plain SVG of the data while Plotly is still compiling
FIRST_PREVIEW = """() => {
  const plot = document.querySelector('.plot[data-preview], .plot[data-points]');
  const drawn = Number(plot?.dataset.preview || plot?.dataset.points || 0);
  return drawn > 0 ? performance.now() : false;
}"""


class Demo:
    """`stats-service demo` on a fresh data dir and a port of its own choosing."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="stats-bench-ui-"))
        self.data = self.tmp / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.spawned = 0.0

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STATS_")}
        env |= {"STATS_ADMIN_KEY": ADMIN_KEY, "STATS_LOG_LEVEL": "warning",
                "STATS_STATSD_ENABLED": "false"}
        log = open(self.tmp / "demo.log", "wb")  # noqa: SIM115 - the child owns it
        self.spawned = time.monotonic()
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "stats-service"), "demo", "--port", "0", "--data-dir", str(self.data)],
            env=env, cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()

    def wait_health(self) -> float:
        """Seconds from spawn until /v1/health answers 200."""
        assert self.proc is not None
        deadline = self.spawned + TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"demo exited with {self.proc.returncode}: {self.log()}")
            try:
                info = json.loads((self.data / "server.json").read_text())
                ours = info.get("pid") == self.proc.pid
                if ours and httpx.get(info["url"] + "/v1/health", timeout=2).status_code == 200:
                    self.url = info["url"]
                    return time.monotonic() - self.spawned
            except (OSError, ValueError, httpx.HTTPError):
                pass
            time.sleep(0.02)
        raise TimeoutError(f"the demo did not answer within {TIMEOUT_S}s: {self.log()}")

    def log(self) -> str:
        return (self.tmp / "demo.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # our own child, by its handle
                self.proc.wait(10)
        shutil.rmtree(self.tmp, ignore_errors=True)


def cold_start(browser: Browser) -> dict[str, float]:
    demo = Demo()
    try:
        demo.start()
        health = demo.wait_health()
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(demo.url + "/ui/", wait_until="domcontentloaded")
        loaded = time.monotonic() - demo.spawned
        page.wait_for_selector(f'tr[data-device="{BOARDS[-1]}"]', timeout=TIMEOUT_S * 1000)
        rows = time.monotonic() - demo.spawned
        # a board listed before its history is stored shows its sparkline after the next
        # reload of the overview (a live point of a device it does not know brings one)
        page.wait_for_function(SPARKS_DRAWN, arg=list(BOARDS), timeout=TIMEOUT_S * 1000,
                               polling="raf")
        drawn = time.monotonic() - demo.spawned
        context.close()
        return {"health": health, "loaded": loaded, "rows": rows, "drawn": drawn}
    finally:
        demo.stop()


def page_loads(
    browser: Browser, browser_type: BrowserType, loads: int
) -> dict[str, list[float]]:
    demo = Demo()
    try:
        demo.start()
        demo.wait_health()
        with httpx.Client(base_url=demo.url, headers={"X-API-Key": ADMIN_KEY}, timeout=30) as c:
            deadline = time.monotonic() + TIMEOUT_S
            while len(c.get("/v1/devices").json()["items"]) < len(BOARDS) + 1:
                if time.monotonic() > deadline:
                    raise TimeoutError("the demo's boards and run did not appear")
                time.sleep(0.2)
            run = c.get("/v1/runs").json()["items"][0]["id"]
            series = c.get("/v1/devices/esp32-01/metrics").json()["metrics"][0]["series_id"]
        pages: dict[str, tuple[str, str, Any]] = {
            "overview /ui/": ("/ui/", FIRST_SPARK, None),
            "device: first drawing": ("/ui/devices/esp32-01", FIRST_PREVIEW, None),
            "device: interactive": ("/ui/devices/esp32-01", FIRST_PLOT, ".plot[data-points]"),
            "run: first drawing": (f"/ui/runs/{run}", FIRST_PREVIEW, None),
            "run: interactive": (f"/ui/runs/{run}", FIRST_PLOT, ".plot[data-points]"),
            "explorer: first drawing": (f"/ui/explore?series={series}", FIRST_PREVIEW, None),
            "explorer: interactive": (f"/ui/explore?series={series}", FIRST_PLOT,
                                      ".plot[data-points]"),
        }
        times: dict[str, list[float]] = {}
        for name, (path, check, arg) in pages.items():
            cold, warm = times.setdefault(f"{name} (cold)", []), times.setdefault(
                f"{name} (warm)", []
            )
            for _ in range(loads):  # a first visit: nothing cached
                cold.append(timed_load(browser.new_context(), demo.url + path, check, arg))
            # a returning visitor: a browser profile on disk (an incognito context keeps
            # no compiled-code cache), after two visits
            profile = tempfile.mkdtemp(prefix="stats-bench-profile-")
            context = browser_type.launch_persistent_context(
                profile, executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
            )
            try:
                for i in range(loads + 2):
                    took = timed_load(context, demo.url + path, check, arg, close=False)
                    if i >= 2:  # the second load stores the compiled code the third one uses
                        warm.append(took)
            finally:
                context.close()
                shutil.rmtree(profile, ignore_errors=True)
        return times
    finally:
        demo.stop()


def timed_load(
    context: BrowserContext, url: str, check: str, arg: Any, close: bool = True
) -> float:
    """Seconds from navigation start until `check` holds in the page."""
    page = context.new_page()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(url, wait_until="commit")
    handle = page.wait_for_function(check, arg=arg, timeout=TIMEOUT_S * 1000, polling="raf")
    took = float(handle.json_value()) / 1000
    page.close()
    if close:
        context.close()
    return took


def summary(values: list[float]) -> list[str]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return [f"{statistics.median(ordered):.2f}", f"{p90:.2f}", f"{ordered[-1]:.2f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=5, help="cold demo starts")
    parser.add_argument("--loads", type=int, default=10, help="loads of each page")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit(f"no chromium at {CHROMIUM}: apt-get install -y chromium")
    print_machine()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--no-sandbox"])
        try:
            starts = [cold_start(browser) for _ in range(args.starts)]
            loads = page_loads(browser, playwright.chromium, args.loads)
        finally:
            browser.close()

    print(f"\ndemo start -> overview with charts ({args.starts} cold starts, seconds from spawn)")
    rows = [[stage, *summary([s[stage] for s in starts])]
            for stage in ("health", "loaded", "rows", "drawn")]
    print_table(["stage", "median s", "p90 s", "max s"], rows)
    worst = max(s["drawn"] for s in starts)
    print(f"target < 5 s: {'met' if worst < 5 else 'MISSED'} (slowest start {worst:.2f} s)")

    print(f"\npage load -> first chart with data ({args.loads} loads each; cold: a fresh "
          "incognito context, warm: a browser profile on disk after two visits)")
    print_table(["page", "median s", "p90 s", "max s"],
                [[name, *summary(values)] for name, values in loads.items()])
    for kind in ("cold", "warm"):
        for stage in ("first drawing", "interactive"):
            slowest = max(
                max(v)
                for k, v in loads.items()
                if k.endswith(f"({kind})") and ("interactive" in k) == (stage == "interactive")
            )
            verdict = "met" if slowest < 1 else "MISSED"
            print(f"target < 1 s, {stage}, {kind}: {verdict} (slowest load {slowest:.2f} s)")


if __name__ == "__main__":
    main()
