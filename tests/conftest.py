"""Shared fixtures: the real data folder (skip with a reason when absent) and an isolated cache/results per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data (`CSR_DATA_DIR`, default ../shared/data); skip clearly where it is absent."""
    from csr_core.paths import data_dir

    root = data_dir()
    if not (root / "flickr8k").is_dir():
        pytest.skip(f"shared data not found at {root} (set CSR_DATA_DIR to the folder holding flickr8k/, multi30k/ ...)")
    return root


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path_factory, monkeypatch):
    """Every test writes its cache and results into its own temp folders, never the user's or the repo's."""
    base = tmp_path_factory.mktemp("csr")
    monkeypatch.setenv("CSR_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("CSR_RESULTS_DIR", str(base / "results"))
    yield
