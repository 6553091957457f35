"""Faults: the eval command killed mid-run, two evals writing one results folder at once, a full disk.

Every case ends the same way: no partial rows in the results folder, what was finished is kept, and the next run
completes with exactly the numbers an undisturbed run gives.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from .conftest import REPO, cli_command, comparable_rows, eval_args, run_cli, subprocess_env

LANGS = "en,de,fr,cs"


@pytest.fixture(scope="module")
def reference(tiny_model, shared_data, tmp_path_factory):
    """An undisturbed run (in this process, its own cache): the numbers every faulted run must reproduce."""
    from csr_core.results import ResultsStore

    out = tmp_path_factory.mktemp("reference")
    previous = os.environ.get("CSR_CACHE_DIR")
    os.environ["CSR_CACHE_DIR"] = str(tmp_path_factory.mktemp("reference-cache"))
    try:
        result = run_cli(*eval_args(tiny_model, "--langs", LANGS, "--out", out))
    finally:
        if previous is None:
            os.environ.pop("CSR_CACHE_DIR", None)
        else:
            os.environ["CSR_CACHE_DIR"] = previous
    assert result.rc == 0, result.err
    store = ResultsStore(out)
    (run_id,) = [m["run_id"] for m in store.runs()]
    return store.load(), store.load_ranks(run_id)


def _shards(cache: Path) -> dict[str, set[str]]:
    return {kind: {p.name for p in cache.glob(f"embeddings/*/{kind}/*.safetensors")} for kind in ("image", "text")}


def test_sigkill_mid_run_leaves_no_rows_keeps_finished_embeddings_and_rerun_matches(reference, tiny_model, tmp_path,
                                                                                    monkeypatch):
    from csr_core.embed_cache import EmbeddingCache
    from csr_core.results import ResultsStore

    cache, out = tmp_path / "cache", tmp_path / "results"
    # progress bars on (no --quiet): the stage labels tell us where the run is
    argv = [a for a in eval_args(tiny_model, "--langs", LANGS, "--out", out) if a != "--quiet"]
    proc = subprocess.Popen(cli_command(*argv), cwd=REPO, env=subprocess_env(CSR_CACHE_DIR=str(cache)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = bytearray()
    reached = threading.Event()

    def watch() -> None:
        while chunk := proc.stderr.read1(4096):
            seen.extend(chunk)
            if b"encode captions de" in seen:  # images and English captions are finished (and flushed) by now
                reached.set()

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    try:
        assert reached.wait(timeout=120), f"never reached the German captions:\n{seen.decode(errors='replace')}"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL  # it was still running: killed mid-run
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)

    store = ResultsStore(out)
    assert store.runs() == [] and store.load(include_reference=False).empty  # no partial rows
    kept = _shards(cache)
    assert len(kept["image"]) == 1 and len(kept["text"]) >= 1  # images and English captions survived
    assert EmbeddingCache(cache / "embeddings").stats().corrupt_files == 0

    monkeypatch.setenv("CSR_CACHE_DIR", str(cache))  # the rerun uses the same cache
    rerun = run_cli(*eval_args(tiny_model, "--langs", LANGS, "--out", out))
    assert rerun.rc == 0, rerun.err
    after = _shards(cache)
    assert after["image"] == kept["image"]  # images were not encoded again
    assert kept["text"] <= after["text"] and len(after["text"]) > len(kept["text"])  # only the rest was encoded
    (run_id,) = [m["run_id"] for m in store.runs()]
    ref_rows, ref_ranks = reference
    assert comparable_rows(store.load()).equals(comparable_rows(ref_rows))
    assert store.load_ranks(run_id).equals(ref_ranks)
    store.clean_temp(older_than_s=0)


def test_two_evals_writing_at_once_both_land_complete(reference, tiny_model, tmp_path):
    """Two processes share one results folder and one cache; started together, both runs land whole."""
    from csr_core.embed_cache import EmbeddingCache
    from csr_core.results import KEY_COLUMNS, ResultsStore

    cache, out = tmp_path / "cache", tmp_path / "results"
    env = subprocess_env(CSR_CACHE_DIR=str(cache))
    configs = {"all-k": ["--k", "1", "5", "10"], "k-1-5": ["--k", "1", "5"]}
    procs = {name: subprocess.Popen(cli_command(*eval_args(tiny_model, "--langs", "en,de", "--out", out, *extra)),
                                    cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, extra in configs.items()}
    outputs = {name: proc.communicate(timeout=240) for name, proc in procs.items()}
    for name, proc in procs.items():
        assert proc.returncode == 0, outputs[name][1]

    store = ResultsStore(out)
    runs = store.runs()
    assert len(runs) == 2 and not [p for p in store.runs_dir.iterdir() if p.name.startswith(".")]
    rows = store.load()  # validates each run's row count against its manifest
    by_ks = {tuple(m["params"]["ks"]): m["run_id"] for m in runs}
    from csr_core.results import caption_lang

    ref = reference[0]
    ref_rows = comparable_rows(ref[caption_lang(ref).isin(["en", "de"])])  # monolingual rows are per language
    assert set(by_ks) == {(1, 5, 10), (1, 5)}
    assert comparable_rows(rows[rows["run_id"] == by_ks[1, 5, 10]]).equals(ref_rows)
    partial = comparable_rows(rows[rows["run_id"] == by_ks[1, 5]])
    keys = [c for c in KEY_COLUMNS if c != "run_id"]
    expected = ref_rows[(ref_rows["metric"] != "mean_recall") & (ref_rows["k"] != 10)].reset_index(drop=True)
    assert partial[keys + ["value", "ci_low", "ci_high"]].equals(expected[keys + ["value", "ci_low", "ci_high"]])
    assert EmbeddingCache(cache / "embeddings").stats().corrupt_files == 0


def _can_mount_tmpfs(target: Path) -> bool:
    target.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(target)],
                              capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (a real file system that fills up), when this machine lets us mount one (root in a container)."""
    mount = tmp_path / "small-disk"
    if not _can_mount_tmpfs(mount):
        pytest.skip("cannot mount a tmpfs here (needs root); the failing-writer test below covers disk full instead")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10)


def _fill(folder: Path) -> Path:
    """Write until the file system is full (ENOSPC); returns the filler file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for size in (1 << 16, 1 << 12, 1 << 9):
            while True:
                try:
                    handle.write(b"\0" * size)
                except OSError as error:
                    assert error.errno == errno.ENOSPC
                    break
    return filler


def test_disk_full_while_writing_results_is_a_clear_error_and_earlier_runs_survive(small_disk, tiny_model,
                                                                                  tmp_path, monkeypatch):
    from csr_core.results import ResultsStore

    monkeypatch.setenv("CSR_CACHE_DIR", str(tmp_path / "cache"))
    out = small_disk / "results"
    args = eval_args(tiny_model, "--langs", "en,de", "--out", out)
    assert run_cli(*args).rc == 0
    store = ResultsStore(out)
    before = store.load()
    filler = _fill(small_disk)

    result = run_cli(*args)
    assert result.rc == 2, result.text
    assert "No space left on device" in result.err and str(out / "runs") in result.err
    assert "nothing was written, earlier results are untouched" in result.err
    assert len(store.runs()) == 1 and store.load().equals(before)
    assert [p.name for p in store.runs_dir.iterdir()] == [before["run_id"].iloc[0]]  # no temp folder left behind

    filler.unlink()  # space freed: the same command now lands
    assert run_cli(*args).rc == 0
    assert len(store.runs()) == 2


def test_disk_full_in_the_embedding_cache_warns_and_the_eval_still_lands(small_disk, tiny_model, tmp_path,
                                                                         monkeypatch):
    from csr_core.embed_cache import CacheWriteWarning
    from csr_core.results import ResultsStore

    monkeypatch.setenv("CSR_CACHE_DIR", str(small_disk / "cache"))
    _fill(small_disk)
    out = tmp_path / "results"
    with pytest.warns(CacheWriteWarning, match="No space left on device"):
        result = run_cli(*eval_args(tiny_model, "--langs", "en", "--out", out))
    assert result.rc == 0, result.err
    assert len(ResultsStore(out).runs()) == 1


def test_failing_writer_mid_run_folder_is_a_clear_error_and_earlier_runs_survive(tiny_model, tmp_path, monkeypatch):
    """Disk full where no tmpfs can be mounted: the ranks file fails with ENOSPC after the rows file was written."""
    import csr_core.results as results
    from csr_core.results import ResultsStore

    monkeypatch.setenv("CSR_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "results"
    args = eval_args(tiny_model, "--langs", "en", "--out", out)
    assert run_cli(*args).rc == 0
    store = ResultsStore(out)
    before = store.load()
    real_write = results._write_parquet

    def write_until_full(frame, path):
        if path.name == "ranks.parquet":
            with open(path, "wb") as handle:
                handle.write(b"PAR1 half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(frame, path)

    monkeypatch.setattr(results, "_write_parquet", write_until_full)
    result = run_cli(*args)
    assert result.rc == 2 and "No space left on device" in result.err and "nothing was written" in result.err
    assert store.load().equals(before) and len(list(store.runs_dir.iterdir())) == 1
    monkeypatch.setattr(results, "_write_parquet", real_write)
    assert run_cli(*args).rc == 0 and len(store.runs()) == 2


def test_killed_writer_temp_folder_is_invisible_and_cleaned(tmp_path):
    """A writer killed between its temp folder and the rename leaves `.tmp-<pid>-*`: readers never see it."""
    from csr_core.results import ResultsStore

    store = ResultsStore(tmp_path)
    child = subprocess.Popen(["sleep", "0"])
    child.wait()  # a pid that is certainly dead now
    temp = store.runs_dir / f".tmp-{child.pid}-0123abcd"
    temp.mkdir(parents=True)
    (temp / "rows.parquet").write_bytes(b"PAR1 torn")
    assert store.runs() == [] and store.load(include_reference=False).empty
    assert store.clean_temp() == 1 and not temp.exists()
    live = store.runs_dir / f".tmp-{os.getpid()}-0123abcd"  # a live writer's folder is left alone
    live.mkdir()
    assert store.clean_temp() == 0 and live.exists()
