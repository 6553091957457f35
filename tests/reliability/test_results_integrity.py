"""The results store under damage: checksummed files, a damaged run named while the rest loads (store, CLI,
dashboard), `--skip-existing` that never skips a damaged run and is atomic under concurrent starts, and store
folders that cannot be written refused before any work."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from tests.reliability.conftest import (REPO, cli_command, comparable_rows, eval_args, run_cli, subprocess_env)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, tiny_model, shared_data):
    """A store with two runs of the tiny model (en,de and en,fr), written by the eval command."""
    from csr_core.results import ResultsStore

    root = tmp_path_factory.mktemp("results")
    cache = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("CSR_CACHE_DIR")
    os.environ["CSR_CACHE_DIR"] = str(cache)
    try:
        for langs in ("en,de", "en,fr"):
            result = run_cli(*eval_args(tiny_model, "--langs", langs, "--out", root))
            assert result.rc == 0, result.err
    finally:
        if previous is None:
            os.environ.pop("CSR_CACHE_DIR", None)
        else:
            os.environ["CSR_CACHE_DIR"] = previous
    store = ResultsStore(root)
    first, second = (m["run_id"] for m in store.runs())
    return {"root": root, "cache": cache, "first": first, "second": second, "rows": store.load()}


@pytest.fixture
def store_copy(two_runs, tmp_path):
    from csr_core.results import ResultsStore

    root = tmp_path / "results"
    shutil.copytree(two_runs["root"], root)
    return ResultsStore(root)


def _flip_bit(path, position: int) -> bytes:
    data = bytearray(path.read_bytes())
    original = bytes(data)
    data[position // 8] ^= 1 << (position % 8)
    path.write_bytes(bytes(data))
    return original


def test_manifests_record_the_checksum_of_each_parquet_file(store_copy):
    from csr_core._io import file_sha256

    for manifest in store_copy.runs():
        folder = store_copy.runs_dir / manifest["run_id"]
        assert manifest["checksums"] == {name: file_sha256(folder / name)
                                         for name in ("rows.parquet", "ranks.parquet")}


def test_every_flipped_bit_in_rows_or_ranks_is_caught(store_copy, two_runs):
    """Bit rot that still parses as parquet used to change a stored R@5 silently; now any flip raises CorruptRun
    naming the file (60 random positions per file, a private RNG)."""
    from csr_core.results import CorruptRun

    rng = np.random.default_rng(0)
    run_id = two_runs["second"]
    for name, read in (("rows.parquet", lambda: store_copy.load()),
                       ("ranks.parquet", lambda: store_copy.load_ranks(run_id))):
        path = store_copy.runs_dir / run_id / name
        for position in rng.integers(0, path.stat().st_size * 8, size=60):
            original = _flip_bit(path, int(position))
            with pytest.raises(CorruptRun, match=f"(?s){run_id}/{name}: .*damaged"):
                read()
            path.write_bytes(original)
    assert comparable_rows(store_copy.load()).equals(comparable_rows(two_runs["rows"]))  # restored: loads again


def test_a_damaged_run_is_named_and_the_rest_of_the_store_still_loads(store_copy, two_runs):
    from csr_core.results import CorruptRun

    bad, good = two_runs["second"], two_runs["first"]
    _flip_bit(store_copy.runs_dir / bad / "rows.parquet", 8 * 200 + 3)
    with pytest.raises(CorruptRun, match=bad):
        store_copy.load()  # strict by default: a report never silently loses a run
    damaged: dict[str, str] = {}
    rows = store_copy.load(damaged=damaged)
    assert list(damaged) == [f"runs/{bad}"] and "damaged" in damaged[f"runs/{bad}"]
    expected = two_runs["rows"][two_runs["rows"]["run_id"] == good]
    assert comparable_rows(rows).equals(comparable_rows(expected))

    nested = store_copy.runs_dir / good / "manifest.json"  # a manifest nested 100k levels deep
    nested.write_text("[" * 100_000 + "]" * 100_000)
    damaged = {}
    assert store_copy.load(damaged=damaged).empty and len(damaged) == 2
    assert "nested deeper than" in damaged[f"runs/{good}"]
    assert [m["run_id"] for m in store_copy.runs(damaged={})] == [bad]  # its manifest is intact, its rows not


def test_cli_gaps_names_a_damaged_run_and_reads_the_others(store_copy, two_runs):
    bad, good = two_runs["second"], two_runs["first"]
    (store_copy.runs_dir / bad / "manifest.json").write_text('{"run_id": ')
    result = run_cli("gaps", "--run", good, "--out", store_copy.root)
    assert result.rc == 0, result.text
    assert f"warning: runs/{bad} skipped" in result.err and "invalid JSON" in result.err
    assert f"run {good}" in result.out


def test_dashboard_warns_about_each_damaged_run_and_shows_the_rest(store_copy, two_runs, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    bad = two_runs["second"]
    _flip_bit(store_copy.runs_dir / bad / "rows.parquet", 8 * 300 + 1)
    monkeypatch.setenv("CSR_RESULTS_DIR", str(store_copy.root))
    monkeypatch.setenv("CSR_CACHE_DIR", str(two_runs["cache"]))
    st.cache_data.clear()
    at = AppTest.from_file(str(REPO / "dashboard.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/heatmaps.py").run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = [w.value for w in at.warning]
    assert any(bad in w and "damaged" in w for w in warnings), warnings
    assert not at.error, [e.value for e in at.error]
    st.cache_data.clear()


def test_skip_existing_redoes_a_damaged_run_and_skips_an_intact_one(store_copy, two_runs, tiny_model, monkeypatch):
    monkeypatch.setenv("CSR_CACHE_DIR", str(two_runs["cache"]))
    args = eval_args(tiny_model, "--langs", "en,fr", "--out", store_copy.root, "--skip-existing")
    result = run_cli(*args)
    assert result.rc == 0 and "skipped: identical run" in result.out, result.text
    assert len(store_copy.runs()) == 2

    bad = two_runs["second"]
    rows = store_copy.runs_dir / bad / "rows.parquet"
    rows.write_bytes(rows.read_bytes()[:-40])  # torn copy
    result = run_cli(*args)
    assert result.rc == 0 and "skipped" not in result.out, result.text
    damaged: dict[str, str] = {}
    new = store_copy.load(damaged=damaged)
    assert list(damaged) == [f"runs/{bad}"]
    redone = new[~new["run_id"].isin([two_runs["first"]])]
    expected = two_runs["rows"][two_runs["rows"]["run_id"] == bad]
    assert comparable_rows(redone).equals(comparable_rows(expected))  # same config, same numbers


def test_two_identical_skip_existing_evals_started_together_land_once(two_runs, tiny_model, tmp_path):
    """Without the params-key lock both saw no run and both wrote one."""
    from csr_core.results import ResultsStore

    root = tmp_path / "results"
    argv = cli_command(*eval_args(tiny_model, "--langs", "en,de", "--out", root, "--skip-existing"))
    env = subprocess_env(CSR_CACHE_DIR=str(two_runs["cache"]))
    procs = [subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert len(ResultsStore(root).runs()) == 1
    assert sum("skipped: identical run" in out for out, _ in outputs) == 1, outputs


def test_seal_adds_checksums_to_older_runs_without_changing_their_rows(store_copy, two_runs):
    from csr_core.results import CorruptRun

    run_id = two_runs["first"]
    manifest_path = store_copy.runs_dir / run_id / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["checksums"]  # as written before checksums existed
    manifest_path.write_text(json.dumps(manifest))
    assert store_copy.seal() == 1 and store_copy.seal() == 0
    sealed = json.loads(manifest_path.read_text())
    assert set(sealed["checksums"]) == {"rows.parquet", "ranks.parquet"}
    assert {k: v for k, v in sealed.items() if k != "checksums"} == manifest
    assert comparable_rows(store_copy.load()).equals(comparable_rows(two_runs["rows"]))
    _flip_bit(store_copy.runs_dir / run_id / "ranks.parquet", 8 * 100)
    with pytest.raises(CorruptRun):
        store_copy.load_ranks(run_id)


@pytest.mark.parametrize("command", ["eval", "import"])
def test_a_results_folder_that_is_a_file_is_refused_before_any_work(command, tiny_model, tmp_path):
    not_a_folder = tmp_path / "results"
    not_a_folder.write_text("a file")
    cache = tmp_path / "cache"
    if command == "eval":
        argv = [*eval_args(tiny_model, "--out", not_a_folder)]
    else:
        source = tmp_path / "cb.json"
        source.write_text(json.dumps({"dataset": "flickr30k", "model": "ViT-B-32", "pretrained": "openai",
                                      "task": "zeroshot_retrieval", "language": "en",
                                      "metrics": {"image_retrieval_recall@5": 0.5}}))
        argv = ["import", "clip-benchmark", source, "--results-dir", not_a_folder]
    result = run_cli_in_cache(argv, cache)
    assert result.rc == 2, result.text
    assert f"results folder {not_a_folder}: is a file, not a folder" in result.err
    assert "Traceback" not in result.err and not cache.exists()  # refused before any embedding was computed
    assert not_a_folder.read_text() == "a file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder, so there is nothing to refuse")
def test_a_read_only_results_folder_is_refused_before_any_work(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        source = tmp_path / "cb.json"
        source.write_text("{}")
        result = run_cli("import", "clip-benchmark", source, "--results-dir", folder)
        assert result.rc == 2 and f"results folder {folder}: cannot write" in result.err, result.text
    finally:
        folder.chmod(0o755)


def run_cli_in_cache(argv, cache):
    previous = os.environ.get("CSR_CACHE_DIR")
    os.environ["CSR_CACHE_DIR"] = str(cache)
    try:
        return run_cli(*argv)
    finally:
        if previous is None:
            os.environ.pop("CSR_CACHE_DIR", None)
        else:
            os.environ["CSR_CACHE_DIR"] = previous


# ---- imported files ------------------------------------------------------------------------------------------
def _clip_benchmark_file(path, **overrides):
    data = {"dataset": "flickr30k", "model": "ViT-B-32", "pretrained": "openai", "task": "zeroshot_retrieval",
            "language": "en", "metrics": {"image_retrieval_recall@5": 0.5}}
    path.write_text(json.dumps(data | overrides))
    return path


def test_an_imported_k_too_large_for_the_store_is_named(tmp_path):
    huge = "99999999999999999999"
    source = _clip_benchmark_file(tmp_path / "cb.json", metrics={f"image_retrieval_recall@{huge}": 0.5})
    result = run_cli("import", "clip-benchmark", source, "--results-dir", tmp_path / "results")
    assert result.rc == 2, result.text
    assert f"K = {huge} is out of range" in result.err and str(source) in result.err
    assert not (tmp_path / "results" / "reference").exists()


def test_imported_language_codes_are_normalised_and_unknown_ones_named(tmp_path):
    from csr_core.results import ResultsStore

    result = run_cli("import", "clip-benchmark", _clip_benchmark_file(tmp_path / "up.json", language="EN"),
                     "--results-dir", tmp_path / "results")
    assert result.rc == 0, result.text
    assert set(ResultsStore(tmp_path / "results").load()["query_lang"]) == {"en"}
    bad = _clip_benchmark_file(tmp_path / "xx.json", language="qqq-notalanguage")
    result = run_cli("import", "clip-benchmark", bad, "--results-dir", tmp_path / "results")
    assert result.rc == 2 and f"{bad}: 'language'" in result.err, result.text


@pytest.mark.parametrize("kind", ["clip-benchmark", "openclip-csv"])
def test_a_fifo_or_nested_json_as_an_import_file_is_refused_not_read(tmp_path, kind):
    fifo = tmp_path / "results.json"
    os.mkfifo(fifo)
    result = run_cli("import", kind, fifo, "--results-dir", tmp_path / "results")  # used to block forever
    assert result.rc == 2 and "FIFO" in result.err and str(fifo) in result.err, result.text
    if kind == "clip-benchmark":
        nested = tmp_path / "nested.json"
        nested.write_text("[" * 100_000 + "]" * 100_000)
        result = run_cli("import", kind, nested, "--results-dir", tmp_path / "results")
        assert result.rc == 2 and "nested deeper than" in result.err, result.text
