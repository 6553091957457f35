"""Dashboard speed and memory: per page, time from request to a rendered page in headless chromium; server peak RSS.

For each page of `dashboard.py`, on the shipped results (`results/`, or --results / $CSR_RESULTS_DIR):
- **cold**: a freshly started server and a fresh browser context, this page as the very first request;
- **warm**: the same page opened again by full navigation (median / max over --repeats) on a server that has
  served every page once;
- **nav**: switching to the page from another one through the sidebar (no reload; median over --repeats).
"script" is until Streamlit reports the script run finished (`data-test-script-state=notRunning`); "drawn" also
waits until plotly.js has drawn every chart (charts render lazily after the run). Peak RSS is the largest sum of
resident memory over the server's process tree (sampled every 50 ms), with the kernel's VmHWM of the server
process as a check. Goals: ≤ 2 s per page, ≤ 2 GB.

    .venv/bin/python benchmarks/dashboard_bench.py [--repeats 3] [--results results/] [--json out.json]
    .venv/bin/python benchmarks/dashboard_bench.py --only-screenshot docs/screenshots/heatmaps.png \
        --screenshot-page "heatmaps?dataset=xtd10&setting=cross&direction=t2t&k=10"   # the README image

Needs Debian's /usr/bin/chromium and the `playwright` package (never `playwright install`). Writes nothing into
results/: the server gets a temp CSR_CACHE_DIR and only reads the results folder.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
READY = "[data-testid='stApp'][data-test-script-state='notRunning']"
# (url path, sidebar label); the default page is served at the app root.
PAGES = (("", "Overview"), ("codeswitch", "Code-switch explorer"), ("heatmaps", "R@K heatmaps"),
         ("gaps", "Gaps vs typology"), ("run", "Run eval"), ("finetune", "Fine-tuning"))
GOAL_S = 2.0
GOAL_MB = 2048.0
# plotly's component loads lazily: until then a chart is an stSkeleton placeholder (no stPlotlyChart element yet)
CHARTS_DRAWN = """() => document.querySelectorAll("[data-testid='stSkeleton']").length === 0
    && Array.from(document.querySelectorAll("[data-testid='stPlotlyChart']"))
            .every(c => c.querySelector(".js-plotly-plot .main-svg"))"""
WATCH_RUNS = """() => {
    const app = document.querySelector("[data-testid='stApp']");
    window.__csrRuns = 0;
    if (window.__csrObserver) window.__csrObserver.disconnect();
    window.__csrObserver = new MutationObserver(() => {
        if (app.getAttribute('data-test-script-state') !== 'notRunning') window.__csrRuns += 1;
    });
    window.__csrObserver.observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""


# ---- the server and its memory -------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_status(pid: int, field: str) -> float:
    """A `kB` field of /proc/<pid>/status in MiB (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return 0.0


def _tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except (OSError, ValueError):
                pass
    return out


class Server:
    """`streamlit run dashboard.py` on a free port, in its own process group, with an RSS sampler."""

    def __init__(self, results: Path, cache: Path, log_dir: Path, label: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if results.is_relative_to(REPO):  # the sidebar shows this path: keep screenshots free of local paths
            results = results.relative_to(REPO)
        env = dict(os.environ, CSR_RESULTS_DIR=str(results), CSR_CACHE_DIR=str(cache), TOKENIZERS_PARALLELISM="false",
                   HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        cmd = [sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.headless", "true",
               "--server.port", str(self.port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
               "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"]
        with open(log_dir / f"streamlit-{label}.log", "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.peak_tree_mb = 0.0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        self._wait_healthy()

    def _sample(self) -> None:
        while not self._stop.is_set() and self.proc.poll() is None:
            total = sum(_proc_status(p, "VmRSS") for p in _tree(self.proc.pid))
            self.peak_tree_mb = max(self.peak_tree_mb, total)
            self._stop.wait(0.05)

    def _wait_healthy(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"streamlit exited with code {self.proc.returncode} (see its log)")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as answer:
                    if answer.read().strip() == b"ok":
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"streamlit not healthy after {timeout:.0f} s")

    def hwm_mb(self) -> float:
        return _proc_status(self.proc.pid, "VmHWM")

    def stop(self) -> None:
        self._stop.set()
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
            except ProcessLookupError:
                pass
        self._sampler.join(timeout=2)


# ---- timing ------------------------------------------------------------------------------------------------------
def open_page(page, url: str, timeout_ms: float) -> tuple[float, float]:
    """Full navigation: (seconds to script finished, seconds to every chart drawn)."""
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_selector(READY, timeout=timeout_ms)
    t_script = time.perf_counter() - t0
    page.wait_for_function(CHARTS_DRAWN, timeout=timeout_ms)
    return t_script, time.perf_counter() - t0


def nav_to(page, label: str, timeout_ms: float) -> float:
    """Sidebar click to the page (no reload): seconds until its script run ended and its charts were drawn."""
    page.evaluate(WATCH_RUNS)
    t0 = time.perf_counter()
    page.locator("[data-testid='stSidebarNav']").get_by_text(label, exact=True).click()
    page.wait_for_function("() => window.__csrRuns > 0", timeout=timeout_ms)
    page.wait_for_selector(READY, timeout=timeout_ms)
    page.wait_for_function(CHARTS_DRAWN, timeout=timeout_ms)
    return time.perf_counter() - t0


def page_errors(page) -> int:
    return page.locator("[data-testid='stException']").count()


def screenshot(results: Path, work: Path, path: str, out: Path, timeout_ms: float) -> int:
    """One viewport screenshot of a page on the given results (for the README)."""
    from playwright.sync_api import sync_playwright

    server = Server(results, work / "cache", work, "screenshot")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            open_page(page, f"{server.url}/{path.lstrip('/')}", timeout_ms)
            if page_errors(page):
                raise SystemExit(f"{path} shows an exception; no screenshot taken")
            page.wait_for_timeout(500)  # let plotly finish its transitions
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
            browser.close()
    finally:
        server.stop()
    print(f"saved {out} ({out.stat().st_size / 1024:.0f} KiB)")
    return 0


def main(argv: list[str] | None = None) -> int:
    from csr_core.paths import results_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=None, help="results folder (default: $CSR_RESULTS_DIR or "
                                                                    "the repo's results/)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per page before giving up")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--only-screenshot", type=Path, default=None, metavar="PNG",
                        help="skip the timings: save a 1400×1000 screenshot of --screenshot-page here")
    parser.add_argument("--screenshot-page", default="heatmaps", help="url path (+ query) for --only-screenshot")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).is_file():
        raise SystemExit(f"{CHROMIUM} not found: apt-get install chromium (never `playwright install`)")
    from playwright.sync_api import sync_playwright

    results = (args.results or results_dir()).resolve()
    runs = sorted(p.name for p in (results / "runs").glob("*") if (p / "manifest.json").is_file())
    print(f"results: {results} ({len(runs)} runs) · load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs · repeats {args.repeats}")
    timeout_ms = args.timeout * 1000
    work = Path(tempfile.mkdtemp(prefix="csr-dash-bench-"))
    if args.only_screenshot:
        return screenshot(results, work, args.screenshot_page, args.only_screenshot, timeout_ms)
    figures: dict[str, dict] = {label: {} for _, label in PAGES}
    peaks: dict[str, float] = {}
    hwm: dict[str, float] = {}
    exceptions: dict[str, int] = {}

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            # cold: one fresh server + fresh browser context per page
            for path, label in PAGES:
                server = Server(results, work / "cache", work, f"cold-{path or 'overview'}")
                try:
                    context = browser.new_context(viewport={"width": 1400, "height": 1000})
                    page = context.new_page()
                    script, drawn = open_page(page, f"{server.url}/{path}", timeout_ms)
                    figures[label].update(cold_script=script, cold_drawn=drawn)
                    exceptions[label] = page_errors(page)
                    context.close()
                    time.sleep(1.0)  # background work a page started (e.g. the model catalogue) counts for memory
                    peaks[f"cold {label}"], hwm[f"cold {label}"] = server.peak_tree_mb, server.hwm_mb()
                finally:
                    server.stop()
                print(f"  cold {label:22s} {script:6.2f} s script · {drawn:6.2f} s drawn")

            # warm: one server, every page served once, then repeated full navigations and sidebar switches
            server = Server(results, work / "cache", work, "warm")
            try:
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                for path, _ in PAGES:
                    open_page(page, f"{server.url}/{path}", timeout_ms)
                warm: dict[str, list] = {label: [] for _, label in PAGES}
                nav: dict[str, list] = {label: [] for _, label in PAGES}
                for _ in range(args.repeats):
                    for path, label in PAGES:
                        warm[label].append(open_page(page, f"{server.url}/{path}", timeout_ms))
                        exceptions[label] += page_errors(page)
                for _ in range(args.repeats):
                    for _, label in PAGES[1:] + PAGES[:1]:  # each switch starts from the previous page
                        nav[label].append(nav_to(page, label, timeout_ms))
                        exceptions[label] += page_errors(page)
                context.close()
                time.sleep(3.0)
                peaks["warm session"], hwm["warm session"] = server.peak_tree_mb, server.hwm_mb()
            finally:
                server.stop()
        finally:
            browser.close()

    for _, label in PAGES:
        scripts, drawns = [w[0] for w in warm[label]], [w[1] for w in warm[label]]
        figures[label].update(warm_script=statistics.median(scripts), warm_drawn=statistics.median(drawns),
                              warm_drawn_max=max(drawns), nav=statistics.median(nav[label]), nav_max=max(nav[label]),
                              exceptions=exceptions[label])

    head = (f"{'page':22s} {'cold script':>11s} {'cold drawn':>10s} {'warm script':>11s} {'warm drawn':>10s} "
            f"{'warm max':>8s} {'nav':>6s} {'nav max':>7s}  goal")
    print(f"\nseconds from request to rendered page (warm: median of {args.repeats})")
    print(head)
    print("-" * len(head))
    for _, label in PAGES:
        f = figures[label]
        worst = max(f["cold_drawn"], f["warm_drawn_max"], f["nav_max"])
        warm_ok = max(f["warm_drawn"], f["nav"]) <= GOAL_S
        verdict = "ok" if worst <= GOAL_S else ("warm ok, cold over" if warm_ok else "OVER")
        if f["exceptions"]:
            verdict += f" · {f['exceptions']} exception(s)!"
        print(f"{label:22s} {f['cold_script']:11.2f} {f['cold_drawn']:10.2f} {f['warm_script']:11.2f} "
              f"{f['warm_drawn']:10.2f} {f['warm_drawn_max']:8.2f} {f['nav']:6.2f} {f['nav_max']:7.2f}  {verdict}")
    peak = max(peaks.values())
    print(f"\nserver peak RSS (process tree, sampled): {peak:.0f} MiB "
          f"({'ok' if peak <= GOAL_MB else 'OVER'} vs {GOAL_MB:.0f}); VmHWM of the server process: "
          f"{max(hwm.values()):.0f} MiB")
    for key, value in peaks.items():
        print(f"  {key:30s} tree {value:7.0f} MiB · VmHWM {hwm[key]:7.0f} MiB")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"results": str(results), "runs": len(runs), "pages": figures,
                                         "peak_rss_mb": peaks, "vm_hwm_mb": hwm}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
