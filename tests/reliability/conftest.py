"""Shared helpers of the reliability suite: a tiny real open_clip model with fixed weights, CLI runners.

The tiny model (tests/assets/csr-test-tiny-vit.json) gets its weights from a safetensors checkpoint written once per
session, so every process that loads `TINY` has the same fingerprint: the embedding cache is shared between an
interrupted run and its rerun, and two runs give the same numbers (a config without a checkpoint is random per
process).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "tests" / "assets" / "csr-test-tiny-vit.json"


def page_path(name: str) -> Path:
    """A dashboard page file in app_pages/; a missing page is a failure, not a skip."""
    path = REPO / "app_pages" / name
    assert path.is_file(), f"dashboard page {path} is missing"
    return path


def page_files() -> list[Path]:
    files = sorted((REPO / "app_pages").glob("*.py"))
    assert files, "no dashboard pages in app_pages/"
    return files
N_PHOTOS = 30


@dataclass
class CliResult:
    rc: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A safetensors checkpoint of the tiny architecture (13 MB, written once per session, never committed)."""
    import open_clip
    from safetensors.torch import save_file

    open_clip.add_model_config(str(TINY_CONFIG))
    model = open_clip.create_model(TINY_CONFIG.stem, pretrained=None)
    path = tmp_path_factory.mktemp("tiny") / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint) -> str:
    """The model name a user would type: local config + local safetensors checkpoint."""
    return f"open_clip-config:{TINY_CONFIG}@{tiny_checkpoint}"


def run_cli(*argv: str) -> CliResult:
    """`python -m csr_core ARGV` in this process (same code path as the console), capturing its output."""
    from csr_core.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exit_:  # argparse errors
            rc = exit_.code if isinstance(exit_.code, int) else 2
    return CliResult(int(rc), out.getvalue(), err.getvalue())


def subprocess_env(**extra: str) -> dict[str, str]:
    """The test's environment (isolated cache/results dirs, offline hub) for a child `python -m csr_core`."""
    env = dict(os.environ)
    env.update(TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1",
               OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.update(extra)
    return env


def cli_command(*argv: str) -> list[str]:
    return [sys.executable, "-m", "csr_core", *[str(a) for a in argv]]


def run_cli_subprocess(*argv: str, timeout: float = 120, **env: str) -> CliResult:
    proc = subprocess.run(cli_command(*argv), cwd=REPO, env=subprocess_env(**env), capture_output=True, text=True,
                          timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def eval_args(model: str, *extra: str, photos: int = N_PHOTOS) -> list[str]:
    """A small, quick eval: the tiny model on `photos` photos of the offline set."""
    return ["eval", "--model", model, "--dataset", "flickr8k-multi30k", "--max-images", str(photos), "--quiet",
            *extra]


def comparable_rows(frame):
    """Rows without the run id, sorted, so two runs of the same config compare equal."""
    from csr_core.results import KEY_COLUMNS

    keys = [c for c in KEY_COLUMNS if c != "run_id"]
    return frame.drop(columns=["run_id"]).sort_values(keys).reset_index(drop=True)
