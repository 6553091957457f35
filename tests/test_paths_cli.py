"""The folders every module relies on, and the CLI entry point."""

import subprocess
import sys
from pathlib import Path

import pytest

from csr_core import paths


def test_env_vars_move_every_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("CSR_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("CSR_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("CSR_RESULTS_DIR", str(tmp_path / "r"))
    assert paths.data_dir() == tmp_path / "d"
    assert paths.cache_dir() == tmp_path / "c"
    assert paths.results_dir() == tmp_path / "r"


def test_default_data_dir_prefers_shared_beside_repo(monkeypatch):
    monkeypatch.delenv("CSR_DATA_DIR", raising=False)
    shared = paths.REPO_ROOT.parent / "shared" / "data"
    expected = shared if shared.is_dir() else paths.REPO_ROOT / "data"
    assert paths.data_dir() == expected


def test_cache_never_inside_package(monkeypatch):
    monkeypatch.delenv("CSR_CACHE_DIR", raising=False)
    package_dir = Path(paths.__file__).parent
    assert package_dir not in paths.cache_dir().parents


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "csr_core", "--help"], capture_output=True, text=True, check=True)
    assert "python -m csr_core" in out.stdout


def test_cli_models_and_datasets_tell_what_runs_here(shared_data):
    env_run = lambda *a: subprocess.run([sys.executable, "-m", "csr_core", *a], capture_output=True, text=True,
                                        timeout=120)
    models = env_run("models")
    assert models.returncode == 0 and "open_clip" in models.stdout and "csr-mini" in models.stdout
    datasets = env_run("datasets", "--data-dir", str(shared_data))
    assert datasets.returncode == 0
    assert "[here] flickr8k-multi30k" in datasets.stdout and "[----] xm3600" in datasets.stdout


def test_cli_bad_command_input_is_a_clear_error_not_a_traceback():
    out = subprocess.run([sys.executable, "-m", "csr_core", "eval", "--model", "open_clip:NoSuchArch-99",
                          "--dataset", "flickr8k-multi30k", "--max-images", "5"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2
    assert "error:" in out.stderr and "Traceback" not in out.stderr


def test_cli_threads_must_be_positive():
    out = subprocess.run([sys.executable, "-m", "csr_core", "experiment", "--threads", "0", "--report-only"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--threads must be >= 1, got 0" in out.stderr and "Traceback" not in out.stderr


def test_console_script_is_installed_and_routes_commands():
    """`pip install -e .` (the Makefile) installs csr_core as the distribution csr-lab with a `csr-lab` command."""
    import importlib.metadata
    import subprocess
    import sys
    from pathlib import Path

    import csr_core

    dist = importlib.metadata.distribution("csr-lab")
    assert dist.version == csr_core.__version__
    assert any(ep.name == "csr-lab" and ep.value == "csr_core.cli:main" for ep in dist.entry_points)
    exe = Path(sys.executable).parent / "csr-lab"
    assert exe.is_file(), f"{exe} missing: run `make install` (pip install -e .)"
    done = subprocess.run([str(exe), "datasets"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "flickr8k-multi30k" in done.stdout
    bad = subprocess.run([str(exe), "eval", "--model", "csr-mini", "--dataset", "flickr8k-multi30k",
                          "--settings", "nope"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown setting" in bad.stderr


def test_finetune_flags_are_derived_from_every_train_config_field():
    """A TrainConfig field is a finetune flag without being re-declared; parsing gives back the same config."""
    import argparse
    import dataclasses

    from csr_core.commands import finetune as command
    from csr_core.commands._config_args import config_from_args
    from csr_core.finetune import TrainConfig

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    flags = {a.dest for a in parser._actions}
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= flags
    args = parser.parse_args(["--tower", "e5", "--arm", "mlcs-de-fr", "--seed", "3", "--no-learn-temperature",
                              "--variants", "2", "--lr", "0.01"])
    config = config_from_args(TrainConfig, args)
    assert config == TrainConfig(tower="e5", arm="mlcs-de-fr", seed=3, learn_temperature=False, variants=2, lr=0.01)
    assert config_from_args(TrainConfig, parser.parse_args([])) == TrainConfig()


def test_cli_flags_are_derived_from_the_config_dataclasses():
    """Every EvalConfig / TrainConfig field is a flag, and parsing the flags builds back an equal config."""
    import argparse
    import dataclasses

    from csr_core.commands import eval as eval_cmd
    from csr_core.commands import finetune as finetune_cmd
    from csr_core.commands._config_args import config_from_args
    from csr_core.evaluate import EvalConfig
    from csr_core.finetune import TrainConfig

    parser = argparse.ArgumentParser()
    eval_cmd.add_arguments(parser)
    dests = {a.dest for a in parser._actions}
    assert {f.name for f in dataclasses.fields(EvalConfig)} - {"dataset_options"} <= dests
    args = parser.parse_args(["--model", "csr-mini", "--langs", "en, de", "--k", "1", "5", "--cs-ps", "0", "1",
                              "--settings", "monolingual,cross", "--n-resamples", "50", "--allow-leakage"])
    assert config_from_args(EvalConfig, args) == EvalConfig(
        model="csr-mini", dataset="flickr8k-multi30k", langs=("en", "de"), ks=(1, 5), cs_ps=(0.0, 1.0),
        settings=("monolingual", "cross"), n_resamples=50, allow_leakage=True)
    with pytest.raises(SystemExit):
        parser.parse_args([])  # --model has no default: required

    parser = argparse.ArgumentParser()
    finetune_cmd.add_arguments(parser)
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= {a.dest for a in parser._actions}
    args = parser.parse_args(["--arm", "mlcs-de-fr-cs", "--seed", "3", "--no-learn-temperature"])
    assert config_from_args(TrainConfig, args) == TrainConfig(arm="mlcs-de-fr-cs", seed=3, learn_temperature=False)
