"""Real-browser fixtures: a small real results store, `streamlit run dashboard.py` on a free port, headless chromium.

The browser is Debian's `/usr/bin/chromium` driven by Playwright's sync API (`playwright install` cannot download a
browser here, and must never be run). Tests are skipped with a clear reason when chromium or playwright is missing.

The store holds real runs: the tiny open_clip config (tests/assets) with weights drawn from a seeded generator,
evaluated by `run_evaluation` on the first 20 real flickr8k-multi30k test photos, as two training arms, so every
result page (heatmaps, gaps, fine-tuning) has something to draw.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from testsupport import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "assets" / "csr-test-tiny-vit.json"
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
READY = "[data-testid='stApp'][data-test-script-state='notRunning']"
N_PHOTOS = 20
ARMS = (("en", 0), ("mlcs-de-fr", 1))  # (train_arm label, weight seed)


def chromium_missing_reason() -> str | None:
    """Why the browser suite cannot run here, or None."""
    if not Path(CHROMIUM).is_file():
        return f"{CHROMIUM} not found: install Debian's chromium (`make browser-deps` or apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the `playwright` Python package is not installed (requirements-dev.txt)"
    return None


# ---------------------------------------------------------------------------------------------- a real results store
def tiny_model(folder: Path, seed: int) -> str:
    """The tiny open_clip config with seeded random weights saved as safetensors; returns the model name to use."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    from csr_core.encoders.open_clip_backend import register_model_config

    arch = register_model_config(str(TINY))
    with torch.random.fork_rng(devices=[]):  # never disturb the global RNG
        torch.manual_seed(seed)
        model = open_clip.create_model(arch, pretrained=None)
    path = folder / f"tiny-seed{seed}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return f"open_clip-config:{TINY}@{path}"


def build_results_store(base: Path, n_photos: int = N_PHOTOS) -> dict:
    """Two arms of the tiny model on `n_photos` real test photos, all four settings; cache under base/cache."""
    from csr_core.evaluate import EvalConfig, run_evaluation
    from csr_core.results import ResultsStore

    saved = {k: os.environ.get(k) for k in ("CSR_CACHE_DIR", "CSR_RESULTS_DIR")}
    os.environ["CSR_CACHE_DIR"] = str(base / "cache")
    os.environ["CSR_RESULTS_DIR"] = str(base / "results")
    try:
        store = ResultsStore(base / "results")
        runs = {}
        for arm, seed in ARMS:
            config = EvalConfig(model=tiny_model(base, seed), dataset="flickr8k-multi30k", split="test",
                                langs=("en", "de", "fr", "cs"),
                                settings=("monolingual", "cross", "multilingual", "cs-queries"),
                                max_images=n_photos, cs_modes=("bl",), cs_ps=(0.0, 0.5, 1.0), cs_langs=("de",),
                                n_resamples=200, train_arm=arm)
            runs[arm] = run_evaluation(config, store=store).run_id
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return {"results": base / "results", "cache": base / "cache", "runs": runs, "store": store, "base": base}


# ------------------------------------------------------------------------------------------------- the real server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    """Poll Streamlit's health endpoint until it answers `ok` (fail early if the server died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"streamlit at {url} not healthy after {timeout:.0f} s")


def start_server(results_dir: Path, cache_dir: Path, log_path: Path, port: int | None = None
                 ) -> tuple[subprocess.Popen, str]:
    """`streamlit run dashboard.py` headless on 127.0.0.1:<free port>, reading `results_dir`; returns (proc, url)."""
    port = port or free_port()
    env = dict(os.environ, CSR_RESULTS_DIR=str(results_dir), CSR_CACHE_DIR=str(cache_dir),
               TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    cmd = [sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false"]
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
    except Exception:
        stop_server(proc)
        raise
    return proc, url


def stop_server(proc: subprocess.Popen) -> None:
    """Terminate the server's own process group (it was started in a new session), then kill if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


# ------------------------------------------------------------------------------------------------- page helpers
@dataclass
class Dashboard:
    """The running app: its URL, store, log, and helpers that wait for Streamlit to finish each script run."""

    url: str
    results: Path
    cache: Path
    base: Path
    runs: dict
    log_path: Path
    page_errors: list = field(default_factory=list)

    def tiny_model(self, seed: int) -> str:
        """Another tiny open_clip checkpoint (a model name the Run page can load), saved beside the store."""
        return tiny_model(self.base, seed)

    def wait_ready(self, page, timeout: float = 120_000) -> None:
        page.wait_for_selector(READY, timeout=timeout)

    def open(self, page, path: str = "", timeout: float = 120_000) -> None:
        """Full navigation to /path; returns once the script has run to the end (initial → running → notRunning)."""
        page.goto(f"{self.url}/{path.lstrip('/')}")
        page.wait_for_selector(READY, timeout=timeout)

    def after(self, page, action: Callable[[], None], timeout: float = 120_000) -> None:
        """Do `action` (a click, a key), wait until it started a script run and that run finished.

        A MutationObserver counts transitions to `running`, so a run that starts and ends between two polls is
        not missed, and the previous `notRunning` state is not mistaken for the new one.
        """
        page.evaluate("""() => {
            const app = document.querySelector("[data-testid='stApp']");
            window.__csrRuns = 0;
            if (window.__csrObserver) window.__csrObserver.disconnect();
            window.__csrObserver = new MutationObserver(() => {
                if (app.getAttribute('data-test-script-state') !== 'notRunning') window.__csrRuns += 1;
            });
            window.__csrObserver.observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
        }""")
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        action()
        try:
            page.wait_for_function("() => window.__csrRuns > 0", timeout=min(timeout, 30_000))
        except PlaywrightTimeout:  # the input was redrawn under the keystrokes (a rerun raced them): once more
            action()
            page.wait_for_function("() => window.__csrRuns > 0", timeout=timeout)
        page.wait_for_selector(READY, timeout=timeout)

    def charts_drawn(self, page, timeout: float = 60_000) -> int:
        """Wait until plotly.js has drawn every chart: the plotly component is loaded lazily, so right after the
        script run a chart may still be an `stSkeleton` placeholder without any stPlotlyChart element."""
        page.wait_for_function("""() => {
            const charts = Array.from(document.querySelectorAll("[data-testid='stPlotlyChart']"));
            return charts.length > 0 && document.querySelectorAll("[data-testid='stSkeleton']").length === 0
                && charts.every(c => c.querySelector(".js-plotly-plot .main-svg"));
        }""", timeout=timeout)
        return page.locator("[data-testid='stPlotlyChart']").count()

    def exceptions(self, page) -> list[str]:
        return [e.inner_text() for e in page.locator("[data-testid='stException']").all()]

    def screenshot(self, page, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def server_log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="session")
def browser_store(shared_data, tmp_path_factory) -> dict:
    reason = chromium_missing_reason()
    if reason:
        skip_or_fail(reason)
    return build_results_store(tmp_path_factory.mktemp("browser-store"))


@pytest.fixture(scope="session")
def dashboard(browser_store) -> Iterator[Dashboard]:
    """The server for the whole session (stopped at the end, its log kept under test-artifacts/ on failure)."""
    base = browser_store["base"]
    log_path = base / "streamlit.log"
    proc, url = start_server(browser_store["results"], browser_store["cache"], log_path)
    try:
        yield Dashboard(url=url, results=browser_store["results"], cache=browser_store["cache"], base=base,
                        runs=browser_store["runs"], log_path=log_path)
    finally:
        stop_server(proc)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, ARTIFACTS / "streamlit.log")


@pytest.fixture(scope="session")
def chromium_browser():
    reason = chromium_missing_reason()
    if reason:
        skip_or_fail(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def app_page(chromium_browser, dashboard):
    """A fresh browser context (own cookies, so its own Streamlit session) and page; uncaught JS errors recorded."""
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    page = context.new_page()
    dashboard.page_errors = []
    page.on("pageerror", lambda error: dashboard.page_errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
