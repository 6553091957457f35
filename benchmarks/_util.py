"""Shared helpers for the benchmark scripts: timing, peak RSS, child-process measurement, throw-away checkpoints.

Benchmarks are scripts, not tests: they print figures. Everything they write goes to a temp dir (never results/,
never the user's embedding cache, never the repo).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import threading
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    """Current RSS of this process in MiB (from /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark for this process (Linux ≥ 4.0: write 5 to clear_refs); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def vm_hwm_mb() -> float:
    """VmHWM (peak RSS since the last reset_peak_rss) in MiB; falls back to ru_maxrss."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return peak_rss_mb()


@contextlib.contextmanager
def timed() -> Iterator[dict]:
    """`with timed() as t: ...` then t["wall_s"], t["cpu_s"] (this process: user + system)."""
    out: dict = {}
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        yield out
    finally:
        out["wall_s"] = time.perf_counter() - w0
        out["cpu_s"] = time.process_time() - c0


@dataclass
class ChildRun:
    """One measured child process: wall time, CPU time (user+sys, its waited-for descendants included), peak RSS.

    Linux carries the *parent's* RSS high-water mark into a forked child's ru_maxrss across exec, so the figure can
    never be below the driver's RSS at spawn (`parent_rss_mb`): keep drivers light (no torch import) — see
    `make_open_clip_checkpoint`, which works in a subprocess for that reason.
    """

    label: str
    cmd: list[str]
    rc: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    stdout: str
    stderr: str
    parent_rss_mb: float = 0.0

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("stdout"), d.pop("stderr"), d.pop("cmd")
        return d


def run_child(label: str, cmd: Sequence[str], env: dict | None = None, cwd: str | Path | None = None,
              log_dir: Path | None = None) -> ChildRun:
    """Run `cmd`, measuring it alone with os.wait4 (per-child rusage: RUSAGE_CHILDREN would mix runs together).

    stdout/stderr go to files in `log_dir` (or a temp dir) so a chatty tqdm cannot block the pipe.
    """
    import tempfile

    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="csr-bench-log-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    out_p, err_p = log_dir / f"{label}.out", log_dir / f"{label}.err"
    parent_rss = vm_hwm_mb()
    with open(out_p, "wb") as out, open(err_p, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildRun(
        label=label,
        cmd=list(cmd),
        rc=proc.returncode,
        wall_s=wall,
        cpu_s=ru.ru_utime + ru.ru_stime,
        peak_rss_mb=ru.ru_maxrss / 1024.0,
        stdout=out_p.read_text(errors="replace"),
        stderr=err_p.read_text(errors="replace"),
        parent_rss_mb=parent_rss,
    )


def make_open_clip_checkpoint(arch: str, out_dir: Path, seed: int = 0, config_path: str | Path | None = None) -> Path:
    """Random-init `arch` (or a local config JSON) with a fixed seed and save its weights as safetensors.

    Both tools then load the very same file, so any difference in R@K is the tools', not the weights'. Runs in a
    child process so the calling driver never holds torch + a model (which would inflate measured children's RSS).
    """
    stem = Path(config_path).stem if config_path is not None else arch
    out = Path(out_dir) / f"{stem}-seed{seed}.safetensors"
    if out.is_file():
        return out
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from _util import _write_checkpoint; "
            "_write_checkpoint(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] or None)")
    subprocess.run([sys.executable, "-c", code, str(Path(__file__).resolve().parent), arch, str(out), str(seed),
                    str(config_path or "")], check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    return out


def _write_checkpoint(arch: str, out: str, seed: int, config_path: str | None) -> None:
    import open_clip
    import torch
    from safetensors.torch import save_file

    if config_path:
        open_clip.add_model_config(str(config_path))
        arch = Path(config_path).stem
    out = Path(out)
    with torch.random.fork_rng(devices=[]):  # never disturb the caller's global RNG
        torch.manual_seed(seed)
        model = open_clip.create_model(arch, pretrained=None)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    save_file(state, str(tmp))
    os.replace(tmp, out)


def fmt_ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}×" if b else "n/a"


def dump_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, default=str))


def gpu_peak_sampler(enabled: bool) -> tuple[threading.Event, list[float]]:
    """Sample the GPUs' used memory with nvidia-smi every 0.2 s until the event is set; peak[0] holds the MiB peak
    (stays 0 when disabled or without nvidia-smi)."""
    stop, peak = threading.Event(), [0.0]

    def sample() -> None:
        while not stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout
                peak[0] = max([peak[0]] + [float(v) for v in out.split()])
            except (OSError, ValueError, subprocess.SubprocessError):
                return
            stop.wait(0.2)

    if enabled:
        threading.Thread(target=sample, daemon=True).start()
    return stop, peak
