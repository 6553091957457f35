"""The results store: tidy rows, manifests, atomic append-only runs, loud failures on corrupt or foreign files."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from csr_core.errors import DataError, ResultsError
from csr_core.paths import REPO_ROOT
from csr_core.results import (
    RANK_COLUMNS,
    ROW_COLUMNS,
    SCHEMA_VERSION,
    ResultsStore,
    build_manifest,
    caption_lang,
    make_rows,
    params_key,
)


def record(**fields) -> dict:
    base = dict(model="open_clip:tiny/none", dataset="multi30k", split="test", setting="monolingual",
                query_lang="de", doc_lang="img", direction="t2i", metric="recall", k=1, value=12.5, n_queries=40,
                ci_low=5.0, ci_high=20.0)
    base.update(fields)
    return base


def sample_rows(tag: str = "a", n_langs: int = 3) -> pd.DataFrame:
    records = []
    for lang in ["en", "de", "fr", "cs", "it"][:n_langs]:
        for k in (1, 5, 10):
            records.append(record(query_lang=lang, k=k, value=float(k * 3), note=tag))
            records.append(record(query_lang="img", doc_lang=lang, direction="i2t", k=k, value=float(k * 4), note=tag))
        records.append(record(query_lang=lang, metric="median_rank", k=0, value=7.0, ci_low=None, ci_high=None))
    return make_rows(records)


def sample_ranks(n: int = 5, rng_seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(rng_seed)
    return pd.DataFrame({
        "setting": "monolingual", "query_lang": "de", "doc_lang": "img", "direction": "t2i", "cs_mode": "",
        "cs_p": math.nan, "cs_langs": "", "query_id": [f"q{i}" for i in range(n)],
        "rank": rng.integers(1, 50, size=n),
    })


# ---- rows ------------------------------------------------------------------------------------------------------
def test_make_rows_orders_columns_and_fills_defaults():
    rows = make_rows([dict(model="m", dataset="d", setting="cross", query_lang="de", doc_lang="fr", direction="t2t",
                           metric="mean_rank", value=3.5)])
    assert tuple(rows.columns) == ROW_COLUMNS
    row = rows.iloc[0]
    assert row["source"] == "ours"
    assert row["run_id"] == "" and row["cs_mode"] == "" and row["cs_langs"] == "" and row["note"] == ""
    assert row["k"] == 0 and row["seed"] == 0
    assert math.isnan(row["cs_p"]) and math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
    assert pd.isna(row["n_queries"])
    assert rows["k"].dtype == np.int64 and rows["value"].dtype == np.float64
    assert not rows.isna()[["split", "train_arm", "cs_mode"]].any().any()  # empty strings, never NaN


def test_make_rows_keeps_numpy_values_and_switch_fields():
    rows = make_rows([record(setting="cs-queries", query_lang="en", cs_mode="ml", cs_langs="de,fr",
                             cs_p=np.float32(0.5), k=np.int64(5), seed=np.int64(2), value=np.float64(33.3))])
    row = rows.iloc[0]
    assert (row["cs_mode"], row["cs_langs"], row["cs_p"], row["k"], row["seed"]) == ("ml", "de,fr", 0.5, 5, 2)
    assert row["value"] == pytest.approx(33.3)


@pytest.mark.parametrize(
    "fields, fragment",
    [
        (dict(setting="mono"), "unknown setting 'mono'"),
        (dict(direction="x2y"), "unknown direction 'x2y'"),
        (dict(metric="r@1"), "unknown metric 'r@1'"),
        (dict(source="theirs"), "unknown source 'theirs'"),
        (dict(k=0), "recall needs k >= 1"),
        (dict(metric="median_rank", k=5, value=3.0), "k must be 0"),
        (dict(value=150.0), "percent in [0, 100]"),
        (dict(value=math.nan), "finite"),
        (dict(k=1.5), "k must be an integer, got 1.5"),
        (dict(k=True), "k must be an integer"),
        (dict(model=3), "model must be a string, got 3"),
        (dict(model=""), "model is empty"),
        (dict(cs_p=2.0), "cs_p must be in [0, 1]"),
        (dict(value="high"), "value must be a number, got 'high'"),
        (dict(ci_low=30.0, ci_high=20.0), "ci_low 30.0 is above ci_high"),
        (dict(recall_at_1=3), "unknown column(s) ['recall_at_1']"),
    ],
)
def test_make_rows_rejects_bad_values_naming_them(fields, fragment):
    records = [record(), record(query_lang="fr", **fields)] if "recall_at_1" not in fields else [record(**fields)]
    with pytest.raises(ResultsError) as error:
        make_rows(records)
    assert fragment in str(error.value)
    if "recall_at_1" not in fields:
        assert "row 1" in str(error.value)


def test_make_rows_requires_core_fields():
    with pytest.raises(ResultsError, match=r"missing column\(s\) \['value'\]"):
        make_rows([dict(model="m", dataset="d", setting="cross", direction="t2t", metric="recall", k=1)])


def test_results_error_is_a_data_error():
    assert issubclass(ResultsError, DataError)


def test_caption_lang_picks_the_text_side():
    rows = make_rows([record(query_lang="de", doc_lang="img"), record(query_lang="img", doc_lang="fr", direction="i2t"),
                      record(setting="cross", query_lang="cs", doc_lang="en", direction="t2t")])
    assert caption_lang(rows).tolist() == ["de", "fr", "cs"]


# ---- manifest --------------------------------------------------------------------------------------------------
def test_build_manifest_records_code_packages_params_and_fingerprints():
    manifest = build_manifest({"model": "csr-mini", "ks": (1, 5, 10), "path": Path("/x/y"), "p": np.float64(0.5)},
                              {"data": "abc123", "lexicon": {"de": "f00"}})
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["params"] == {"model": "csr-mini", "ks": [1, 5, 10], "path": "/x/y", "p": 0.5}
    assert manifest["fingerprints"] == {"data": "abc123", "lexicon": {"de": "f00"}}
    assert manifest["packages"]["pandas"] == metadata.version("pandas")
    assert manifest["packages"]["numpy"] == metadata.version("numpy")
    assert manifest["python"] == ".".join(map(str, sys.version_info[:3]))
    assert manifest["created_utc"].endswith("+00:00")
    json.dumps(manifest)  # JSON-able as a whole
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert manifest["git_sha"] == (head.stdout.strip() if head.returncode == 0 else "")


def test_params_key_is_stable_and_sensitive():
    a = build_manifest({"model": "m", "ks": (1, 5), "langs": ["de", "fr"]})
    b = build_manifest({"langs": ["de", "fr"], "ks": [1, 5], "model": "m"})
    c = build_manifest({"model": "m", "ks": (1, 5), "langs": ["de", "cs"]})
    assert a["params_key"] == b["params_key"] == params_key({"ks": [1, 5], "langs": ["de", "fr"], "model": "m"})
    assert len(a["params_key"]) == 64
    assert c["params_key"] != a["params_key"]
    assert a["run_id"] != b["run_id"]


def test_build_manifest_rejects_params_that_are_not_json():
    with pytest.raises(ResultsError, match=r"params\.encoder: object"):
        build_manifest({"encoder": object()})


def test_build_manifest_does_not_import_torch():
    code = ("import sys; from csr_core.results import build_manifest; m = build_manifest({}); "
            "assert m['packages']['torch'], m; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---- writing and loading ---------------------------------------------------------------------------------------
def test_empty_store_loads_an_empty_frame_with_the_columns(tmp_path):
    store = ResultsStore(tmp_path / "nothing-here")
    rows = store.load()
    assert rows.empty and tuple(rows.columns) == ROW_COLUMNS
    assert store.runs() == [] and store.find_runs("x") == []


def test_default_root_follows_results_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CSR_RESULTS_DIR", str(tmp_path / "elsewhere"))
    assert ResultsStore().root == tmp_path / "elsewhere"


def test_round_trip_rows_ranks_and_manifest(tmp_path):
    store = ResultsStore(tmp_path)
    rows, ranks = sample_rows(), sample_ranks(200)
    manifest = build_manifest({"model": "m", "seed": 0}, {"data": "d1"})
    run_id = store.write_run(rows, manifest, ranks)

    assert run_id == manifest["run_id"]
    assert sorted(p.name for p in (tmp_path / "runs" / run_id).iterdir()) == [
        "manifest.json", "ranks.parquet", "rows.parquet"]
    loaded = store.load()
    assert tuple(loaded.columns) == ROW_COLUMNS
    assert (loaded["run_id"] == run_id).all()
    pd.testing.assert_frame_equal(loaded.drop(columns="run_id"), rows.drop(columns="run_id"), check_dtype=False)
    assert loaded["n_queries"].dtype == rows["n_queries"].dtype and loaded["k"].dtype == np.int64

    back = store.load_ranks(run_id)
    assert tuple(back.columns) == RANK_COLUMNS
    assert back["rank"].tolist() == ranks["rank"].tolist()
    assert back["query_id"].tolist() == ranks["query_id"].tolist()

    (saved,) = store.runs()
    assert saved["params"] == {"model": "m", "seed": 0} and saved["fingerprints"] == {"data": "d1"}
    assert saved["n_rows"] == len(rows)
    assert store.find_runs(manifest["params_key"]) == [run_id]
    assert store.find_runs(build_manifest({"model": "other"})["params_key"]) == []


def test_runs_append_and_never_overwrite(tmp_path):
    store = ResultsStore(tmp_path)
    manifest = build_manifest({"x": 1})
    first = store.write_run(sample_rows("a"), manifest)
    second = store.write_run(sample_rows("b"), build_manifest({"x": 1}))
    assert first != second
    assert set(store.load()["run_id"]) == {first, second}
    assert store.find_runs(manifest["params_key"]) == [first, second]
    with pytest.raises(ResultsError, match="append-only"):
        store.write_run(sample_rows("c"), manifest)
    assert len(store.load()) == 2 * len(sample_rows())


def test_run_without_ranks_has_an_empty_ranks_table(tmp_path):
    store = ResultsStore(tmp_path)
    run_id = store.write_run(sample_rows(), build_manifest({}), pd.DataFrame())
    ranks = store.load_ranks(run_id)
    assert ranks.empty and tuple(ranks.columns) == RANK_COLUMNS


def test_write_run_refuses_duplicate_keys_reference_rows_and_bad_ranks(tmp_path):
    store = ResultsStore(tmp_path)
    with pytest.raises(ResultsError, match="share one key"):
        store.write_run(make_rows([record(), record(value=20.0)]), build_manifest({}))
    with pytest.raises(ResultsError, match="write_reference"):
        store.write_run(make_rows([record(source="reference:openclip")]), build_manifest({}))
    with pytest.raises(ResultsError, match=r"missing \['rank'\]"):
        store.write_run(sample_rows(), build_manifest({}), sample_ranks().drop(columns="rank"))
    with pytest.raises(ResultsError, match="rank must be integers >= 1"):
        store.write_run(sample_rows(), build_manifest({}), sample_ranks().assign(rank=0))
    with pytest.raises(ResultsError, match="schema_version"):
        store.write_run(sample_rows(), {"run_id": "x"})
    assert store.load().empty and not (tmp_path / "runs").exists()


def _write_in_other_process(root: str, tag: str, barrier, queue) -> None:
    from csr_core.results import ResultsStore, build_manifest

    rows = sample_rows(tag, n_langs=5)
    manifest = build_manifest({"writer": tag})
    barrier.wait(timeout=60)
    queue.put(ResultsStore(root).write_run(rows, manifest, sample_ranks(20_000, rng_seed=len(tag))))


def test_two_processes_writing_at_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_write_in_other_process, args=(str(tmp_path), tag, barrier, queue))
               for tag in ("left", "right")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    run_ids = {queue.get(timeout=5), queue.get(timeout=5)}
    store = ResultsStore(tmp_path)
    rows = store.load()
    assert set(rows["run_id"]) == run_ids and len(run_ids) == 2
    assert sorted(rows["note"].unique()) == ["", "left", "right"]
    assert len(rows) == 2 * len(sample_rows(n_langs=5))
    for run_id in run_ids:
        assert len(store.load_ranks(run_id)) == 20_000
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".")]


def _write_with_file_size_limit(root: str, limit: int, queue) -> None:
    """A genuinely failing writer: the kernel refuses writes beyond RLIMIT_FSIZE (as with a full disk)."""
    import resource
    import signal

    from csr_core.errors import ResultsError
    from csr_core.results import ResultsStore, build_manifest

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG as an OSError instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        ResultsStore(root).write_run(sample_rows("big"), build_manifest({"big": True}),
                                     sample_ranks(300_000, rng_seed=3))
        queue.put("no error")
    except ResultsError as error:
        queue.put(f"ResultsError: {error}")


def test_failing_writer_leaves_earlier_results_intact(tmp_path):
    store = ResultsStore(tmp_path)
    earlier = store.write_run(sample_rows("earlier"), build_manifest({"n": 1}), sample_ranks(50))
    before = store.load()

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    worker = context.Process(target=_write_with_file_size_limit, args=(str(tmp_path), 64 * 1024, queue))
    worker.start()
    worker.join(timeout=120)
    message = queue.get(timeout=5)
    assert message.startswith("ResultsError: could not write"), message
    assert "File too large" in message and str(tmp_path / "runs") in message

    assert [m["run_id"] for m in store.runs()] == [earlier]
    pd.testing.assert_frame_equal(store.load(), before)
    assert len(store.load_ranks(earlier)) == 50
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [earlier]  # temp folder cleaned


def test_failing_manifest_write_is_reported_and_cleaned(tmp_path, monkeypatch):
    import errno

    from csr_core import results

    store = ResultsStore(tmp_path)
    earlier = store.write_run(sample_rows(), build_manifest({}))

    def disk_full(data, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(results, "_write_json", disk_full)
    with pytest.raises(ResultsError, match="No space left on device.*earlier results are untouched"):
        store.write_run(sample_rows("new"), build_manifest({}))
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [earlier]


# ---- corrupt / foreign / half-written ---------------------------------------------------------------------------
def _corrupt_parquet(run: Path) -> Path:
    path = run / "rows.parquet"
    path.write_bytes(path.read_bytes()[:200])  # truncated, as a killed copy would leave it
    return path


def _bad_json(run: Path) -> Path:
    path = run / "manifest.json"
    path.write_text('{"schema_version": 1,\n "run_id": ')
    return path


def _wrong_schema(run: Path) -> Path:
    path = run / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["schema_version"] = 99
    path.write_text(json.dumps(manifest))
    return path


def _foreign_parquet(run: Path) -> Path:
    path = run / "rows.parquet"
    pd.DataFrame({"model": ["m"], "score": [0.5]}).to_parquet(path)
    return path


def _bad_value(run: Path) -> Path:
    """Right schema and row count, one impossible value: the one-pass load must still name this file."""
    path = run / "rows.parquet"
    frame = pd.read_parquet(path)
    frame.loc[frame.index[0], "value"] = 150.0
    frame.to_parquet(path)
    manifest = json.loads((run / "manifest.json").read_text())
    del manifest["checksums"]  # as a run written before checksums: the bad value itself must be found
    (run / "manifest.json").write_text(json.dumps(manifest))
    return path


def _missing_manifest(run: Path) -> Path:
    path = run / "manifest.json"
    path.unlink()
    return path


def _stray_file(run: Path) -> Path:
    path = run.parent / "notes.csv"
    path.write_text("a,b\n")
    return path


def _renamed_folder(run: Path) -> Path:
    moved = run.with_name("copied-run")
    run.rename(moved)
    return moved / "manifest.json"


@pytest.mark.parametrize(
    "damage, fragment",
    [
        (_corrupt_parquet, "not a readable parquet file"),
        (_bad_json, "line 2: invalid JSON"),
        (_wrong_schema, "schema_version 99"),
        (_foreign_parquet, "unknown column(s) ['score']"),
        (_bad_value, "percent in [0, 100], got 150.0"),
        (_missing_manifest, "half-written"),
        (_stray_file, "foreign file"),
        (_renamed_folder, "does not match its folder"),
    ],
)
def test_corrupt_or_foreign_file_is_an_error_naming_it(tmp_path, damage, fragment):
    store = ResultsStore(tmp_path)
    store.write_run(sample_rows("good"), build_manifest({}))
    run_id = store.write_run(sample_rows("to-damage"), build_manifest({}))
    path = damage(tmp_path / "runs" / run_id)
    with pytest.raises(ResultsError) as error:
        store.load()
    assert str(path) in str(error.value) and fragment in str(error.value)


def test_corrupt_ranks_file_is_an_error_naming_it(tmp_path):
    store = ResultsStore(tmp_path)
    run_id = store.write_run(sample_rows(), build_manifest({}), sample_ranks(100))
    path = tmp_path / "runs" / run_id / "ranks.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(ResultsError, match="not a readable parquet") as error:
        store.load_ranks(run_id)
    assert str(path) in str(error.value)
    with pytest.raises(ResultsError, match="no run 'nope'"):
        store.load_ranks("nope")
    with pytest.raises(ResultsError, match="not a run folder name"):
        store.load_ranks("../reference")


def test_leftover_temp_folders_are_ignored_and_cleaned(tmp_path):
    store = ResultsStore(tmp_path)
    run_id = store.write_run(sample_rows(), build_manifest({}))
    dead = tmp_path / "runs" / ".tmp-999999999-deadbeef"  # beyond pid_max: its writer is certainly gone
    dead.mkdir()
    (dead / "rows.parquet").write_bytes(b"half")
    alive = tmp_path / "runs" / f".tmp-{os.getpid()}-cafe0000"  # a writer still at work: keep it
    alive.mkdir()
    before = store.fingerprint()

    assert set(store.load()["run_id"]) == {run_id}
    assert [m["run_id"] for m in store.runs()] == [run_id]
    assert store.clean_temp() == 1
    assert not dead.exists() and alive.exists()
    assert store.fingerprint() == before  # temp folders never count as results
    assert store.clean_temp(older_than_s=-1) == 1 and not alive.exists()


def test_fingerprint_changes_with_every_write_only(tmp_path):
    store = ResultsStore(tmp_path)
    empty = store.fingerprint()
    assert store.fingerprint() == empty
    store.write_run(sample_rows(), build_manifest({}))
    one = store.fingerprint()
    assert one != empty and store.fingerprint() == one
    store.load()
    assert store.fingerprint() == one
    store.write_reference(make_rows([record(source="reference:test")]), "test")
    assert store.fingerprint() not in (empty, one)


# ---- reference rows ---------------------------------------------------------------------------------------------
def test_reference_rows_are_stored_apart_and_never_confused_with_runs(tmp_path):
    store = ResultsStore(tmp_path)
    run_id = store.write_run(sample_rows(), build_manifest({}))
    reference = make_rows([record(source="reference:openclip", model="open_clip:ViT-B-32/openai", value=55.5)])
    ref_id = store.write_reference(reference, "openclip-test", build_manifest({"file": "x.csv"}))
    assert ref_id == "reference/openclip-test"
    assert (tmp_path / "reference" / "openclip-test" / "rows.parquet").is_file()

    rows = store.load()
    ours, refs = rows[rows["source"] == "ours"], rows[rows["source"] != "ours"]
    assert set(ours["run_id"]) == {run_id} and len(ours) == len(sample_rows())
    assert refs["source"].tolist() == ["reference:openclip"] and refs["run_id"].tolist() == [ref_id]
    assert (store.load(include_reference=False)["source"] == "ours").all()
    assert [m["run_id"] for m in store.runs()] == [run_id]  # references are not runs
    assert [m["name"] for m in store.references()] == ["openclip-test"]

    # importing the same source again replaces it instead of doubling its rows
    store.write_reference(make_rows([record(source="reference:openclip", value=66.0)]), "openclip-test")
    refs = store.load().query("source != 'ours'")
    assert refs["value"].tolist() == [66.0]
    assert [p.name for p in (tmp_path / "reference").iterdir() if not p.name.startswith(".")] == ["openclip-test"]

    with pytest.raises(ResultsError, match="must start with 'reference:'"):
        store.write_reference(make_rows([record()]), "mixed")
    with pytest.raises(ResultsError, match="plain folder name"):
        store.write_reference(reference, "../escape")


def test_our_rows_inside_reference_folder_are_an_error(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_reference(make_rows([record(source="reference:x")]), "x")
    path = tmp_path / "reference" / "x" / "rows.parquet"
    make_rows([record()]).assign(run_id="reference/x").to_parquet(path)
    with pytest.raises(ResultsError, match="source 'ours' inside reference/") as error:
        store.load()
    assert str(path) in str(error.value)
    assert (store.load(include_reference=False)).empty


def test_copied_store_is_readable_elsewhere(tmp_path):
    store = ResultsStore(tmp_path / "a")
    store.write_run(sample_rows(), build_manifest({}), sample_ranks())
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    pd.testing.assert_frame_equal(ResultsStore(tmp_path / "b").load(), store.load())


def test_loading_while_a_reference_is_reimported_sees_old_or_new_never_an_error(tmp_path):
    import threading

    store = ResultsStore(tmp_path)
    store.write_run(sample_rows(), build_manifest({}))
    reference = make_rows([record(source="reference:x", query_lang=lang) for lang in ("de", "fr", "cs")])
    store.write_reference(reference, "x")
    stop, errors = threading.Event(), []

    def reimport() -> None:
        try:
            while not stop.is_set():
                ResultsStore(tmp_path).write_reference(reference, "x")
        except Exception as error:  # surfaced below
            errors.append(error)

    writer = threading.Thread(target=reimport)
    writer.start()
    try:
        sizes = {len(store.load()) for _ in range(40)}
    finally:
        stop.set()
        writer.join()
    assert not errors
    assert sizes <= {len(sample_rows()), len(sample_rows()) + 3}
    assert len(store.load()) == len(sample_rows()) + 3


def test_query_columns_are_parsed_once_and_old_runs_get_them_on_load(tmp_path):
    """Structured query columns: written by evaluation, derived for runs stored before they existed (schema-1 runs,
    such as experiment 1's first grid: read through the compatibility reader, never migrated in place)."""
    import json
    import shutil
    from pathlib import Path

    from csr_core.results import QUERY_COLUMNS, parse_query_id

    assert parse_query_id("1000.jpg#2", "t2i", "de", "img") == ("1000.jpg", "de", 2)
    assert parse_query_id("1000.jpg", "i2t", "img", "fr") == ("1000.jpg", "fr", -1)
    assert parse_query_id("cs:1000.jpg#0", "t2i", "all", "img") == ("1000.jpg", "cs", 0)
    assert parse_query_id("1000.jpg#0", "t2t", "en", "de") == ("1000.jpg", "en", 0)
    real = ResultsStore(Path(__file__).resolve().parent.parent / "results")
    run_id = real.runs()[0]["run_id"]
    shipped = ResultsStore(tmp_path / "old")  # that run as a schema-1 writer stored it: no query columns
    folder = shipped.runs_dir / run_id
    shutil.copytree(real.runs_dir / run_id, folder)
    raw = pd.read_parquet(folder / "ranks.parquet").drop(columns=list(QUERY_COLUMNS))
    raw.to_parquet(folder / "ranks.parquet", index=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["checksums"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert shipped.seal() == 1
    assert not set(QUERY_COLUMNS) & set(pd.read_parquet(folder / "ranks.parquet").columns)  # stored without them
    ranks = shipped.load_ranks(run_id)
    assert tuple(ranks.columns) == RANK_COLUMNS and len(ranks) == len(raw)
    for row in ranks.sample(50, random_state=0).itertuples():
        assert (row.image_id, row.caption_lang, row.caption_index) == parse_query_id(
            row.query_id, row.direction, row.query_lang, row.doc_lang)
        assert row.query_id.split("#")[0].split(":")[-1] == row.image_id
