"""A run's `git_dirty` says whether the *code* differed from its commit: results and shipped heads are data."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from csr_core import paths, results

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    for rel in ("csr_core/code.py", "csr_core/heads/en-s0.json", "results/runs/x.json"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("v1\n")
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "init"], check=True)
    return repo


def test_heads_and_results_written_by_a_grid_leave_the_tree_clean(tmp_path, monkeypatch):
    repo = _repo(tmp_path)
    monkeypatch.setattr(paths, "REPO_ROOT", repo)
    sha, dirty = results._git_state()
    assert len(sha) == 40 and dirty is False
    (repo / "csr_core/heads/en-s0.json").write_text("retrained\n")
    (repo / "results/runs/x.json").write_text("more rows\n")
    assert results._git_state()[1] is False
    (repo / "csr_core/code.py").write_text("edited\n")
    assert results._git_state()[1] is True
