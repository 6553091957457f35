"""Where data, caches and results live; every module asks here so one env var moves them all."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """`$CSR_DATA_DIR`, else `../shared/data` beside the repo when present, else `./data`."""
    env = os.environ.get("CSR_DATA_DIR")
    if env:
        return Path(env).expanduser()
    shared = REPO_ROOT.parent / "shared" / "data"
    return shared if shared.is_dir() else REPO_ROOT / "data"


def cache_dir() -> Path:
    """`$CSR_CACHE_DIR`, else a per-user cache folder; never inside the (possibly read-only) package."""
    env = os.environ.get("CSR_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "csr_lab"


def results_dir() -> Path:
    """`$CSR_RESULTS_DIR`, else the repo's `results/` (which ships the embedded default's evidence)."""
    env = os.environ.get("CSR_RESULTS_DIR")
    return Path(env).expanduser() if env else REPO_ROOT / "results"
