"""The dashboard: streamlit-free helpers (csr_core.dashboard_state) and every page through Streamlit's AppTest.

Result-dependent pages read a real small results folder written once per module: a tiny open_clip model (tests/
assets JSON config, weights drawn from a seeded generator and saved as safetensors, so runs are reproducible)
evaluated by `run_evaluation` on 20 real flickr8k-multi30k test photos in en/de/fr/cs, as two "arms", plus a slice of
the real open_clip reference CSV imported as reference rows.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from csr_core import analysis
from csr_core import dashboard_state as ds
from csr_core.errors import CancelledError, DataError

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "dashboard.py")
TINY = REPO / "tests" / "assets" / "csr-test-tiny-vit.json"
N_PHOTOS = 20


# =============================================================================================== helpers (no streamlit)
class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_job_reports_progress_eta_and_result():
    clock = FakeClock()
    step = threading.Event()
    go_on = threading.Event()

    def target(progress, cancel):
        progress("encode images", 0, 100)
        clock.t += 10
        progress("encode images", 25, 100)
        step.set()
        go_on.wait(5)
        progress("encode captions de", 5, 10)
        return {"rows": 3}

    job = ds.Job(target, label="tiny", clock=clock).start()
    assert step.wait(5)
    snap = job.snapshot()
    assert snap.status == ds.RUNNING and snap.active
    assert (snap.stage, snap.done, snap.total, snap.fraction) == ("encode images", 25, 100, 0.25)
    assert snap.stage_eta_s == pytest.approx(30.0)  # 25 items in 10 s, 75 left
    assert snap.elapsed_s == pytest.approx(10.0)
    go_on.set()
    assert job.wait(5)
    snap = job.snapshot()
    assert snap.status == ds.DONE and snap.result == {"rows": 3} and not snap.active
    assert snap.stages_done == ("encode images", "encode captions de")
    assert ds.format_duration(snap.stage_eta_s) == "—" and ds.format_duration(185) == "3 min 05 s"


def test_job_cancel_and_failure_are_reported_not_raised():
    started = threading.Event()

    def slow(progress, cancel):
        started.set()
        for i in range(1000):
            time.sleep(0.01)
            progress("work", i, 1000)
        return "finished"

    job = ds.Job(slow, label="slow").start()
    assert started.wait(5)
    job.cancel()
    assert job.wait(5)
    snap = job.snapshot()
    assert snap.status == ds.CANCELLED and snap.cancel_requested and snap.result is None

    def broken(progress, cancel):
        raise DataError("captions.txt line 3: bad row")

    failed = ds.Job(broken, label="broken").start()
    assert failed.wait(5)
    assert failed.snapshot().status == ds.FAILED
    assert failed.snapshot().error == "DataError: captions.txt line 3: bad row"
    assert "captions.txt" in failed.traceback
    with pytest.raises(RuntimeError):
        failed.start()
    with pytest.raises(CancelledError):
        job.progress("after cancel", 1, 2)


def test_encoder_pool_loads_once_under_a_lock_and_evicts_lru():
    calls: list[str] = []

    def loader(name):
        calls.append(name)
        time.sleep(0.05)
        return object()

    pool = ds.EncoderPool(loader=loader, max_size=2)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(pool.get("a"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["a"] and len({id(g) for g in got}) == 1
    pool.get("b")
    pool.get("a")
    pool.get("c")  # evicts b, the least recently used
    assert pool.names() == ["a", "c"] and calls == ["a", "b", "c"]


def test_query_params_round_trip_and_reject_bad_values():
    schema = {"k": ds.Param("int", 10, lo=1), "p": ds.Param("float", 0.5, lo=0, hi=1),
              "langs": ds.Param("list", ["de"]), "mode": ds.Param("str", "bl", ("bl", "ml")),
              "refs": ds.Param("bool", True)}
    values = {"k": 5, "p": 0.25, "langs": ["de", "fr"], "mode": "ml", "refs": False}
    encoded = ds.encode_params(values, schema)
    assert encoded == {"k": "5", "p": "0.25", "langs": "de,fr", "mode": "ml", "refs": "0"}
    decoded, problems = ds.decode_params(encoded, schema)
    assert decoded == values and problems == []
    decoded, problems = ds.decode_params({"k": "0", "p": "nan", "mode": "xx", "refs": ["1", "maybe"]}, schema)
    assert decoded == {"k": 10, "p": 0.5, "langs": ["de"], "mode": "bl", "refs": True}
    assert len(problems) == 4 and all("ignored" in p for p in problems)
    assert ds.pick("x", ["a", "b"], "b") == "b" and ds.pick("a", ["a"]) == "a" and ds.pick("z", []) is None


def test_uploads_are_checked_and_kept_inside_the_session_folder(tmp_path):
    from csr_core import uploads

    folder = uploads.new_session_dir(tmp_path)
    path = uploads.save_upload(folder, "en-de.txt", b"dog hund\n")
    assert path.parent == folder and path.read_bytes() == b"dog hund\n"
    with pytest.raises(DataError, match="etc"):  # a path from the browser is refused, never followed
        uploads.save_upload(folder, "../../etc/en-de.txt", b"dog hund\n")
    with pytest.raises(DataError):
        uploads.save_upload(folder, "lexicon.pkl", b"x")
    with pytest.raises(DataError, match="MiB"):
        uploads.save_upload(folder, "big.txt", b"x" * (2 * 2**20), max_bytes=2**20)
    with pytest.raises(DataError, match="empty"):
        uploads.save_upload(folder, "e.txt", b"")
    assert sorted(p.name for p in folder.iterdir()) == ["en-de.txt"]


def _tiny_model(folder: Path, seed: int) -> str:
    """The tiny open_clip config with weights drawn from a seeded generator (global RNG state restored)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    from csr_core.encoders.open_clip_backend import register_model_config

    arch = register_model_config(str(TINY))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.create_model(arch, pretrained=None)
    path = folder / f"tiny-seed{seed}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return f"open_clip-config:{TINY}@{path}"


@pytest.fixture(scope="module")
def store_dirs(shared_data, tmp_path_factory):
    """Two arms of the tiny model on 20 test photos (all four settings) + a slice of the real reference CSV."""
    from csr_core.evaluate import EvalConfig, run_evaluation
    from csr_core.results import ResultsStore

    base = tmp_path_factory.mktemp("dash")
    saved = {k: os.environ.get(k) for k in ("CSR_CACHE_DIR", "CSR_RESULTS_DIR")}
    os.environ["CSR_CACHE_DIR"] = str(base / "cache")
    os.environ["CSR_RESULTS_DIR"] = str(base / "results")
    try:
        store = ResultsStore(base / "results")
        run_ids = {}
        for arm, seed in (("en", 0), ("mlcs-de-fr-cs", 1)):
            config = EvalConfig(model=_tiny_model(base, seed), dataset="flickr8k-multi30k", split="test",
                                langs=("en", "de", "fr", "cs"), settings=("monolingual", "cross", "multilingual",
                                                                          "cs-queries"),
                                max_images=N_PHOTOS, cs_modes=("bl", "ml"), cs_ps=(0.0, 0.5, 1.0),
                                cs_langs=("de", "fr"),
                                n_resamples=200, train_arm=arm)
            run_ids[arm] = run_evaluation(config, store=store).run_id
        reference = shared_data / "reference" / "openclip_multilingual_retrieval_results.csv"
        if reference.is_file():
            from csr_core.importers import import_openclip_multilingual_csv

            rows = import_openclip_multilingual_csv(reference)
            models = sorted(rows["model"].unique())[:3]
            store.write_reference(rows[(rows["dataset"] == "xtd10") & rows["model"].isin(models)], "openclip")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return {"results": base / "results", "cache": base / "cache", "runs": run_ids, "store": store}


@pytest.fixture
def results(store_dirs, monkeypatch):
    monkeypatch.setenv("CSR_RESULTS_DIR", str(store_dirs["results"]))
    monkeypatch.setenv("CSR_CACHE_DIR", str(store_dirs["cache"]))
    return store_dirs


@pytest.fixture(autouse=True)
def fresh_streamlit_caches():
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def test_query_table_joins_ranks_with_captions_and_images(results, shared_data):
    from csr_core.datasets import load_dataset

    store = results["store"]
    ranks = store.load_ranks(results["runs"]["en"])
    data = load_dataset("flickr8k-multi30k", "test")
    table = ds.query_table(ranks, data, setting="monolingual", direction="t2i", lang="de", k=5)
    expected = ranks[(ranks["setting"] == "monolingual") & (ranks["direction"] == "t2i")
                     & (ranks["query_lang"] == "de")]
    assert len(table) == len(expected) == N_PHOTOS
    assert int((~table["hit"]).sum()) == int((expected["rank"] > 5).sum())
    assert list(table["rank"]) == sorted(table["rank"], reverse=True)  # worst first
    first = table.iloc[0]
    row = data.image_ids.index(first["query_id"].split("#")[0])
    assert first["caption"] == data.captions["de"][row][0] and Path(first["image"]).is_file()
    cross = ds.query_table(ranks, data, setting="cross", direction="t2t", lang="en", doc_lang="fr", k=1)
    assert len(cross) == N_PHOTOS and cross["caption"].str.len().min() > 0
    i2t = ds.query_table(ranks, data, setting="monolingual", direction="i2t", lang="cs", k=1)
    assert len(i2t) == N_PHOTOS and all(Path(p).is_file() for p in i2t["image"])


def test_group_contrast_is_the_mean_of_per_language_gaps(results):
    from csr_core.metrics import hits_at_k

    ranks = results["store"].load_ranks(results["runs"]["en"])
    table, test = analysis.group_contrast(ranks, {"de": "close", "fr": "close", "cs": "distant"}, k=10, n_resamples=200)
    mono = ranks[(ranks["setting"] == "monolingual") & (ranks["direction"] == "t2i")]
    hit = {lang: hits_at_k(f.set_index("query_id")["rank"].sort_index().to_numpy(), 10)
           for lang, f in mono.groupby("query_lang")}
    close = 100 * (hit["en"].mean() - (hit["de"].mean() + hit["fr"].mean()) / 2)
    distant = 100 * (hit["en"].mean() - hit["cs"].mean())
    got = table.set_index("group")["value"]
    assert got["close"] == pytest.approx(close) and got["distant"] == pytest.approx(distant)
    assert (table["ci_low"] <= table["value"]).all() and (table["value"] <= table["ci_high"]).all()
    assert test["diff"] == pytest.approx(close - distant) and 0 <= test["p_value"] <= 1 and test["n"] == N_PHOTOS
    _, none = analysis.group_contrast(ranks, {"de": "close"}, k=10)
    assert "distant" in none["note"] and np.isnan(none["p_value"])


# ========================================================================================================== AppTest
def app(page: str | None = None, query: dict | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=120)
    if query:
        at.query_params.update(query)
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def rerun(at):
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def arr(value) -> np.ndarray:
    if isinstance(value, dict) and "bdata" in value:
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        if value.get("shape"):
            out = out.reshape([int(n) for n in str(value["shape"]).split(",")])
        return out.astype(float)
    return np.array(value, dtype=float)


def charts(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def chart_titled(at, words: str) -> dict:
    for spec in charts(at):
        title = spec["layout"].get("title", {})
        if words in (title.get("text", "") if isinstance(title, dict) else str(title)):
            return spec
    raise AssertionError(f"no chart titled with {words!r}: {[c['layout'].get('title') for c in charts(at)]}")


def frame(at, *columns: str) -> pd.DataFrame:
    """The first table showing all these columns (read-only st.dataframe elements carry no key in AppTest)."""
    for element in at.dataframe:
        value = element.value
        if all(c in value.columns for c in columns):
            return value
    raise AssertionError(f"no table with columns {columns}: {[list(d.value.columns) for d in at.dataframe]}")


def widget(at, kind: str, key: str):
    return getattr(at, kind)(key=key)


def text_of(at) -> str:
    parts = [m.value for m in at.markdown] + [e.value for e in at.info] + [e.value for e in at.warning]
    parts += [e.value for e in at.error] + [e.value for e in at.success] + [e.value for e in at.caption]
    return "\n".join(parts)


def stored(results, **where) -> pd.DataFrame:
    rows = results["store"].load()
    for column, value in where.items():
        rows = rows[rows[column] == value]
    return rows


PAGES = tuple(f"app_pages/{name}.py" for name in ("overview", "codeswitch", "heatmaps", "gaps", "run_eval", "finetune"))


def test_every_page_renders_a_helpful_message_on_empty_results(shared_data):
    at = app()
    assert "No results yet" in text_of(at)
    for page in PAGES[1:]:
        at.switch_page(page)
        rerun(at)
        if page in ("app_pages/heatmaps.py", "app_pages/gaps.py", "app_pages/finetune.py"):
            assert "No results yet" in text_of(at), page
        if page == "app_pages/run_eval.py":  # usable without results
            assert at.selectbox(key="run_dataset").value == "flickr8k-multi30k"
        if page == "app_pages/codeswitch.py":  # needs no results either
            assert frame(at, "caption_id", "switched").shape[0] > 0


def test_overview_headline_follows_k_and_direction(results):
    at = app()
    assert [m.value for m in at.metric][:3] == ["2", "5", "2"]  # runs; models: 2 checkpoints + 3 refs; datasets
    spec = chart_titled(at, "R@10 (t2i)")
    expected = stored(results, setting="monolingual", direction="t2i", metric="recall", k=10,
                      run_id=results["runs"]["en"])
    en_arm = next(t for t in spec["data"] if t["name"].endswith("· en"))
    got = dict(zip(en_arm["x"], arr(en_arm["y"])))
    assert got == pytest.approx(dict(zip(expected["query_lang"], expected["value"])))
    widget(at, "selectbox", "ov_k").set_value(1)
    rerun(at)
    spec1 = chart_titled(at, "R@1 (t2i)")
    assert spec1["data"][0]["y"] != en_arm["y"]
    widget(at, "radio", "ov_direction").set_value("i2t")
    rerun(at)
    assert chart_titled(at, "R@1 (i2t)")
    assert at.query_params.get("k") in ("1", ["1"]) and at.query_params.get("direction") in ("i2t", ["i2t"])
    from csr_core.viz import find_chromium

    if find_chromium():  # PNG export through the page (kaleido + the local Chromium)
        widget(at, "button", "ov_headline_png").click()
        rerun(at)
        png = next(b for b in at.get("download_button") if b.proto.label == "Download PNG")
        assert png is not None and not at.warning


def test_heatmaps_main_widgets_change_the_heatmap(results):
    at = app("app_pages/heatmaps.py")
    spec = chart_titled(at, "R@10 (model × caption language)")
    z10 = arr(spec["data"][0]["z"])
    assert spec["data"][0]["x"][0] == "en" and "95% CI" in spec["data"][0]["hovertemplate"]
    assert z10.shape == (2, 4)
    widget(at, "selectbox", "hm_k").set_value(1)
    rerun(at)
    z1 = arr(chart_titled(at, "R@1 (model").get("data")[0]["z"])
    assert (z1 <= z10).all() and not np.array_equal(z1, z10)
    widget(at, "selectbox", "hm_direction").set_value("i2t")
    rerun(at)
    assert chart_titled(at, "i2t · R@1")
    widget(at, "selectbox", "hm_setting").set_value("cross")
    rerun(at)
    cross = chart_titled(at, "caption in query_lang")
    # the one language order (close before between), the same on both axes
    assert cross["data"][0]["x"] == ["en", "de", "fr", "cs"] and cross["data"][0]["y"] == ["en", "de", "fr", "cs"]
    assert np.isnan(arr(cross["data"][0]["z"])).diagonal().all()  # no X → X cell
    widget(at, "selectbox", "hm_run").set_value(widget(at, "selectbox", "hm_run").options[0])
    rerun(at)
    widget(at, "selectbox", "hm_setting").set_value("cs-queries")
    rerun(at)
    curve = chart_titled(at, "switched with probability p")
    names = {t["name"] for t in curve["data"] if t.get("mode") == "lines+markers"}
    assert names == {"BL de", "BL fr", "ML de,fr"}
    widget(at, "selectbox", "hm_setting").set_value("multilingual")
    rerun(at)
    share = chart_titled(at, "Language of the top-1 caption")
    assert {t["name"] for t in share["data"]} == {s for s in widget(at, "selectbox", "hm_diff_a").options}


def test_heatmap_references_are_marked_and_can_be_hidden(results):
    at = app("app_pages/heatmaps.py")
    widget(at, "selectbox", "hm_dataset").set_value("xtd10")
    rerun(at)
    spec = chart_titled(at, "xtd10")
    assert len(spec["data"][0]["y"]) == 3 and all("[ref:openclip]" in y for y in spec["data"][0]["y"])
    at.session_state["hm_cells"] = {"selection": {"rows": [], "columns": [], "cells": [[0, "de"]]}}
    rerun(at)
    assert "no per-query ranks" in text_of(at)
    widget(at, "checkbox", "hm_refs").uncheck()
    rerun(at)
    assert not widget(at, "checkbox", "hm_refs").value
    assert "no data for this selection" in json.dumps(charts(at)[0]["layout"])


def test_heatmap_cell_drills_down_to_failing_queries(results, shared_data):
    from csr_core.datasets import load_dataset

    at = app("app_pages/heatmaps.py")
    table = at.dataframe(key="hm_cells").value
    row = int(np.flatnonzero(table["series"].str.endswith("· en"))[0])
    at.session_state["hm_cells"] = {"selection": {"rows": [], "columns": [], "cells": [[row, "de"]]}}
    rerun(at)
    ranks = results["store"].load_ranks(results["runs"]["en"])
    de = ranks[(ranks["setting"] == "monolingual") & (ranks["direction"] == "t2i") & (ranks["query_lang"] == "de")]
    failing = at.dataframe(key="hm_queries").value
    assert len(failing) == int((de["rank"] > 10).sum()) > 0
    assert (failing["rank"] > 10).all() and not failing["hit"].any()
    worst = failing.iloc[0]
    data = load_dataset("flickr8k-multi30k", "test")
    image_row = data.image_ids.index(worst["query_id"].split("#")[0])
    assert worst["caption"] == data.captions["de"][image_row][0]
    assert at.image and at.image[0].captions == [worst["query_id"]]
    # picking another failing query shows that one
    if len(failing) > 1:
        at.session_state["hm_queries"] = {"selection": {"rows": [1], "columns": [], "cells": []}}
        rerun(at)
        assert at.image[0].captions == [failing.iloc[1]["query_id"]]


def test_difference_heatmap_is_zero_centred_and_equals_row_differences(results):
    at = app("app_pages/heatmaps.py")
    spec = chart_titled(at, "A − B")
    assert spec["layout"]["coloraxis"]["cmid"] == 0
    a, b = widget(at, "selectbox", "hm_diff_a").value, widget(at, "selectbox", "hm_diff_b").value
    run_of = {label: results["runs"][label.rsplit("· ", 1)[1]] for label in (a, b)}
    z = arr(spec["data"][0]["z"])
    ys, xs = spec["data"][0]["y"], spec["data"][0]["x"]
    for i, metric in enumerate(ys):
        for j, lang in enumerate(xs):
            k = int(metric[2:])
            va = stored(results, run_id=run_of[a], setting="monolingual", direction="t2i", metric="recall", k=k,
                        query_lang=lang)["value"].item()
            vb = stored(results, run_id=run_of[b], setting="monolingual", direction="t2i", metric="recall", k=k,
                        query_lang=lang)["value"].item()
            assert z[i, j] == pytest.approx(va - vb)
    compare = frame(at, "p_holm", "significant")
    assert set(compare["lang"]) == {"en", "de", "fr", "cs"} and compare["p_holm"].between(0, 1).all()
    widget(at, "selectbox", "hm_diff_a").set_value(b)
    widget(at, "selectbox", "hm_diff_b").set_value(a)
    rerun(at)
    assert np.allclose(arr(chart_titled(at, "A − B")["data"][0]["z"]), -z)


def test_gaps_page_scatter_trend_and_groups_follow_widgets(results):
    from csr_core.languages import uriel_distance

    at = app("app_pages/gaps.py")
    spec = chart_titled(at, "vs URIEL genetic distance")
    points = [t for t in spec["data"] if t.get("mode") == "markers+text"]
    # one trace per (model/arm, group): the marker shape is the group
    assert {t["name"].split(", ")[0] for t in points} == set(widget(at, "multiselect", "gp_series").value)
    first = points[0]
    assert dict(zip(first["text"], arr(first["x"]))) == pytest.approx(
        {lang: uriel_distance("en", lang, "genetic") for lang in first["text"]})
    assert any(t.get("mode") == "lines" and t["name"].startswith("OLS") for t in spec["data"])
    assert len(frame(at, "pearson r")) == 2
    widget(at, "selectbox", "gp_kind").set_value("syntactic")
    rerun(at)
    syn = [t for t in chart_titled(at, "syntactic distance")["data"] if t.get("mode") == "markers+text"][0]
    assert not np.allclose(arr(syn["x"]), arr(first["x"]))
    widget(at, "selectbox", "gp_k").set_value(1)
    rerun(at)
    assert chart_titled(at, "R@1")
    groups = chart_titled(at, "by language group")
    assert {x for t in groups["data"] for x in t["x"]} == {"close", "between"}  # default: de, fr close; cs between
    assert "no language of this run is in the distant group" in " ".join(frame(at, "gap close − gap distant")["note"])
    assert widget(at, "slider", "gp_threshold").disabled
    widget(at, "radio", "gp_grouping").set_value("threshold")
    rerun(at)
    widget(at, "slider", "gp_threshold").set_value(0.5)
    rerun(at)
    groups = chart_titled(at, "by language group")
    expected = {"close" if uriel_distance("en", lang, "syntactic") <= 0.5 else "distant" for lang in ("de", "fr", "cs")}
    assert expected == {"close", "distant"}  # de, fr syntactically closer to en than cs
    assert {x for t in groups["data"] for x in t["x"]} == expected
    tests = frame(at, "gap close − gap distant")
    assert tests["p_value"].between(0, 1).all()
    widget(at, "multiselect", "gp_series").set_value(widget(at, "multiselect", "gp_series").value[:1])
    rerun(at)
    assert len(frame(at, "pearson r")) == 1


DISTANT_LANGS = ("en", "de", "fr", "pt", "cs", "zh", "ar")


@pytest.fixture(scope="module")
def distant_store(shared_data, tmp_path_factory):
    """One tiny-model run over close, between and distant languages on the same photos (monolingual + cross)."""
    from csr_core.evaluate import EvalConfig, run_evaluation
    from csr_core.results import ResultsStore

    base = tmp_path_factory.mktemp("distant")
    store = ResultsStore(base / "results")
    config = EvalConfig(model=_tiny_model(base, 0), dataset="flickr8k-multi30k", split="test", langs=DISTANT_LANGS,
                        settings=("monolingual", "cross"), max_images=N_PHOTOS, n_resamples=200, train_arm="en")
    saved = os.environ.get("CSR_CACHE_DIR")
    os.environ["CSR_CACHE_DIR"] = str(base / "cache")
    try:
        run_id = run_evaluation(config, store=store).run_id
    finally:
        os.environ.pop("CSR_CACHE_DIR") if saved is None else os.environ.__setitem__("CSR_CACHE_DIR", saved)
    return {"results": base / "results", "cache": base / "cache", "run_id": run_id, "store": store}


def test_gaps_page_shows_close_between_and_distant_groups_and_language_pairs(distant_store, monkeypatch):
    from itertools import combinations

    from csr_core.datasets import TRANSLATED
    from csr_core.pairs import pair_label

    monkeypatch.setenv("CSR_RESULTS_DIR", str(distant_store["results"]))
    monkeypatch.setenv("CSR_CACHE_DIR", str(distant_store["cache"]))
    at = app("app_pages/gaps.py")
    groups = chart_titled(at, "by language group")
    bars = {x: y for t in groups["data"] for x, y in zip(t["x"], arr(t["y"]))}
    assert set(bars) == {"close", "between", "distant"}
    gaps = frame(at, "lang", "group", "provenance", "paired").set_index("lang")
    assert set(gaps.index) == set(DISTANT_LANGS) - {"en"}
    assert gaps["group"].to_dict() == {"de": "close", "fr": "close", "pt": "close", "cs": "between", "zh": "distant",
                                       "ar": "distant"}
    # Multi30K translations pair caption by caption; independent Chinese and translated Arabic captions by photo
    assert set(gaps.loc[["de", "fr", "pt", "cs"], "paired"]) == {"caption"}
    assert set(gaps.loc[["zh", "ar"], "paired"]) == {"photo"} and gaps.loc["ar", "provenance"] == TRANSLATED
    # one caption per photo in de/fr/pt: the close bar is the mean of their gaps (mean of differences, same photos)
    assert bars["close"] == pytest.approx(gaps.loc[["de", "fr", "pt"], "gap"].mean())
    assert bars["between"] == pytest.approx(gaps.loc["cs", "gap"])
    test = frame(at, "gap close − gap distant").iloc[0]
    assert test["photos"] == N_PHOTOS and 0 <= test["p_value"] <= 1
    assert test["gap close − gap distant"] == pytest.approx(bars["close"] - bars["distant"])

    # the pair view: every pair of the aligned Multi30K languages, none with the unaligned zh / ar
    pairs = chart_titled(at, "pair score")
    labels = {label for t in pairs["data"] if t.get("mode") == "markers+text" for label in t["text"]}
    aligned = sorted(set(DISTANT_LANGS) - {"zh", "ar"})
    assert len(labels) == 10 and all(any(lab in (pair_label(a, b), pair_label(b, a)) for a, b in
                                         combinations(aligned, 2)) for lab in labels)
    assert "n = 10 pairs" in pairs["layout"]["title"]["text"]

    widget(at, "text_input", "gp_overrides").set_value("cs=distant")
    rerun(at)
    bars = {x for t in chart_titled(at, "by language group")["data"] for x in t["x"]}
    assert bars == {"close", "distant"}
    assert frame(at, "lang", "group").set_index("lang").loc["cs", "group"] == "distant"
    widget(at, "text_input", "gp_overrides").set_value("cs=far")
    rerun(at)
    assert any("cs='far'" in e.value and "must be one of" in e.value for e in at.error)


def test_finetune_page_shows_arms_and_deltas_vs_baseline(results):
    at = app("app_pages/finetune.py")
    assert widget(at, "selectbox", "ft_baseline").value == "en"
    delta = chart_titled(at, "Δ R@10 vs en")["data"][0]
    got = dict(zip(delta["x"], arr(delta["y"])))
    mlcs = stored(results, run_id=results["runs"]["mlcs-de-fr-cs"], setting="monolingual", direction="t2i",
                  metric="recall", k=10).set_index("query_lang")["value"]
    base = stored(results, run_id=results["runs"]["en"], setting="monolingual", direction="t2i", metric="recall",
                  k=10).set_index("query_lang")["value"]
    assert got == pytest.approx((mlcs - base).to_dict())
    widget(at, "selectbox", "ft_baseline").set_value("mlcs-de-fr-cs")
    rerun(at)
    flipped = chart_titled(at, "Δ R@10 vs mlcs-de-fr-cs")["data"][0]
    assert dict(zip(flipped["x"], arr(flipped["y"]))) == pytest.approx({k: -v for k, v in got.items()})
    widget(at, "selectbox", "ft_k").set_value(5)
    rerun(at)
    assert chart_titled(at, "Δ R@5")
    assert widget(at, "button", "ft_train").disabled  # no arm name typed yet


def test_codeswitch_p_seed_mode_and_caption_change_the_output(shared_data):
    at = app("app_pages/codeswitch.py")
    assert widget(at, "multiselect", "cs_langs").value == ["de"]

    def switched() -> str:
        return next(h.value for h in at.get("html") if "cs-switched" in h.value)

    widget(at, "slider", "cs_p").set_value(0.0)
    rerun(at)
    assert "<mark" not in switched()
    bulk0 = frame(at, "caption_id", "switched")
    assert (bulk0["original"] == bulk0["switched"]).all()
    widget(at, "slider", "cs_p").set_value(1.0)
    rerun(at)
    assert 'data-lang="de"' in switched()
    bulk1 = frame(at, "caption_id", "switched")
    assert (bulk1["switch_ratio"] > 0).mean() > 0.9 and len(bulk1) == len(bulk0)
    widget(at, "slider", "cs_p").set_value(0.5)
    rerun(at)
    half = frame(at, "caption_id", "switched")["switched"]
    widget(at, "number_input", "cs_seed").set_value(7)
    rerun(at)
    assert not frame(at, "caption_id", "switched")["switched"].equals(half)
    widget(at, "multiselect", "cs_langs").set_value(["de", "fr"])
    widget(at, "radio", "cs_mode").set_value("ml")
    widget(at, "slider", "cs_p").set_value(1.0)
    rerun(at)
    langs = set(",".join(frame(at, "caption_id", "switched")["langs"]).split(","))
    assert {"de", "fr"} <= langs
    assert set(frame(at, "lexicon", "entries")["lang"]) == {"de", "fr"}
    widget(at, "text_input", "cs_filter").set_value("dog")
    rerun(at)
    options = widget(at, "selectbox", "cs_pick").options
    assert options and all("dog" in o.lower() for o in options)
    widget(at, "radio", "cs_input").set_value("my own text")
    rerun(at)
    widget(at, "text_area", "cs_custom").set_value("The dog and the cat sleep.")
    rerun(at)
    assert "The dog and the cat sleep." not in switched() and "dog" in next(
        h.value for h in at.get("html") if "cs-original" in h.value)
    assert at.query_params.get("mode") in ("ml", ["ml"]) and at.query_params.get("seed") in ("7", ["7"])


def test_codeswitch_view_is_reproduced_from_its_url(shared_data):
    query = {"p": "1.0", "langs": "fr", "mode": "bl", "seed": "3", "text": "A red dog."}
    at = app("app_pages/codeswitch.py", query=query)
    assert widget(at, "slider", "cs_p").value == 1.0 and widget(at, "multiselect", "cs_langs").value == ["fr"]
    assert widget(at, "radio", "cs_input").value == "my own text"
    assert 'data-lang="fr"' in next(h.value for h in at.get("html") if "cs-switched" in h.value)


def test_malformed_lexicon_upload_shows_an_error_and_the_page_stays_alive(shared_data):
    at = app("app_pages/codeswitch.py")
    widget(at, "radio", "cs_lex_source").set_value("Upload a file")
    rerun(at)
    at.file_uploader(key="cs_upload").set_value(("en-de.txt", b"\x00\x01\x02garbage\x00", "text/plain"))
    rerun(at)
    errors = [e.value for e in at.error]
    assert any("Could not use en-de.txt" in e and "binary" in e for e in errors), errors
    assert widget(at, "radio", "cs_mode").value == "bl" and "Choose at least one lexicon" in text_of(at)
    # other types are refused by streamlit itself (and again by save_upload, tested above)
    assert at.file_uploader(key="cs_upload").allowed_type == [".txt", ".dict", ".tsv", ".gz"]
    at.file_uploader(key="cs_upload").set_value(("en-de.txt", "dog hund\nred rot\nbad-line\n".encode(), "text/plain"))
    widget(at, "slider", "cs_p").set_value(1.0)
    widget(at, "radio", "cs_input").set_value("my own text")
    rerun(at)
    widget(at, "text_area", "cs_custom").set_value("A red dog.")
    rerun(at)
    assert not at.error and any("1 malformed" in w.value for w in at.warning)
    switched = next(h.value for h in at.get("html") if "cs-switched" in h.value)
    assert ">hund<sub" in switched and ">rot<sub" in switched  # the uploaded lexicon's words (case follows source)


def _wait_for_job(at, timeout: float = 180.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = at.session_state["run_job"]
        if not job.snapshot().active:
            rerun(at)
            rerun(at)
            return job.snapshot()
        time.sleep(0.5)
        rerun(at)
    raise AssertionError("the evaluation did not finish in time")


def test_run_page_small_eval_lands_rows_and_cancel_writes_nothing(shared_data, tmp_path):
    from csr_core.results import ResultsStore

    model = _tiny_model(tmp_path, seed=5)
    at = app("app_pages/run_eval.py")
    # The model catalogue is listed by a background worker: wait for it rather than assert on a race with it.
    deadline = time.time() + 180
    while "Checking which models can run here" in text_of(at):
        assert time.time() < deadline, "the model catalogue never finished"
        time.sleep(0.5)
        rerun(at)
    offered = widget(at, "selectbox", "run_model")
    assert offered.options and offered.value == offered.options[0]  # shipped csr-mini heads are offered, first chosen
    widget(at, "multiselect", "run_langs").set_value([])
    rerun(at)
    assert widget(at, "button", "run_start").disabled and "pick at least one language" in text_of(at)
    widget(at, "text_input", "run_model_custom").set_value(model)
    widget(at, "multiselect", "run_langs").set_value(["en", "de"])
    widget(at, "multiselect", "run_settings").set_value(["monolingual"])
    widget(at, "number_input", "run_max_images").set_value(N_PHOTOS)
    widget(at, "number_input", "run_resamples").set_value(100)
    rerun(at)
    widget(at, "button", "run_start").click()
    rerun(at)
    snap = _wait_for_job(at)
    assert snap.status == "done", snap.error
    assert any(f"Run `{snap.result.run_id}` written" in s.value for s in at.success)
    store = ResultsStore()
    rows = store.load()
    assert list(rows["run_id"].unique()) == [snap.result.run_id]
    recall = rows[rows["metric"] == "recall"]
    assert set(recall["query_lang"]) == {"en", "de", "img"} and (recall["n_queries"] == N_PHOTOS).all()
    assert len(store.load_ranks(snap.result.run_id)) == 4 * N_PHOTOS  # t2i + i2t, two languages
    shown = frame(at, "setting", "query_lang", "ci_high")
    assert len(shown) == len(recall)

    at.switch_page("app_pages/heatmaps.py")
    rerun(at)
    heat = chart_titled(at, "R@10 (model × caption language)")
    assert heat["data"][0]["x"] == ["en", "de"] and len(heat["data"][0]["y"]) == 1

    # cancel: a bigger job (all test photos, a model whose embeddings are not cached) stopped at once
    at.switch_page("app_pages/run_eval.py")
    rerun(at)
    widget(at, "text_input", "run_model_custom").set_value(_tiny_model(tmp_path, seed=6))
    widget(at, "number_input", "run_max_images").set_value(0)
    widget(at, "multiselect", "run_settings").set_value(["monolingual", "cross"])
    rerun(at)
    widget(at, "button", "run_start").click()
    rerun(at)
    widget(at, "button", "run_cancel").click()
    rerun(at)
    snap = _wait_for_job(at)
    assert snap.status == "cancelled" and "cancelled" in snap.error
    assert any("Cancelled" in w.value for w in at.warning)
    assert len(ResultsStore().runs()) == 1  # nothing written by the cancelled run


def test_gaps_page_opens_on_a_close_vs_distant_answer_for_the_shipped_runs(monkeypatch, tmp_path):
    """The done-criterion of the distant-languages work: on the results shipped in the repository (read only), the
    page's default selection already has a distant group, paired by photo, and a pair view over XTD10's 45 pairs."""
    from csr_core.paths import REPO_ROOT

    monkeypatch.setenv("CSR_RESULTS_DIR", str(REPO_ROOT / "results"))
    monkeypatch.setenv("CSR_CACHE_DIR", str(tmp_path / "cache"))
    at = app("app_pages/gaps.py")
    assert widget(at, "selectbox", "gp_dataset").value == "flickr8k-multi30k"
    chosen = widget(at, "multiselect", "gp_series").value
    # the runs with the most languages, EN-only arms (one per text tower) first
    assert [label.endswith("· en") for label in chosen[:3]] == [True, True, False]
    groups = chart_titled(at, "by language group")
    assert {x for t in groups["data"] for x in t["x"]} == {"close", "between", "distant"}
    tests = frame(at, "gap close − gap distant")
    assert (tests["photos"] == 237).all() and tests["p_value"].between(0, 1).all()
    gaps = frame(at, "lang", "group", "provenance", "paired")
    assert {"pt", "zh", "ar"} <= set(gaps["lang"])
    assert set(gaps.loc[gaps["lang"].isin(["zh", "ar"]), "paired"]) == {"photo"}
    pairs = chart_titled(at, "pair score")
    assert "n = " in pairs["layout"]["title"]["text"]


@pytest.fixture(scope="module")
def experiment_store(tmp_path_factory):
    """Experiment-2 runs with planted effects and the report facts written from them, as `experiment` writes them."""
    from testsupport import build_planted_design_store

    from csr_core.training import design_render, design_report

    root = tmp_path_factory.mktemp("experiment")
    store = build_planted_design_store(root)
    report = design_report.build_report(store, "experiment-2", towers=("e5",))
    design_render.write(report, root)
    return {"root": root, "report": report}


def test_overview_states_the_answer_from_the_declared_tests(experiment_store, monkeypatch):
    monkeypatch.setenv("CSR_RESULTS_DIR", str(experiment_store["root"]))
    at = app("app_pages/overview.py")
    text = text_of(at)
    assert "distant languages gain significantly more than close ones under blcs-zh" in text
    chart = chart_titled(at, "English, close → distant")
    (tower,) = experiment_store["report"].towers
    f1 = {(t.arm, t.target): t.estimate.value for t in tower.f1}
    bars = {trace["name"]: dict(zip(trace["x"], arr(trace["y"]))) for trace in chart["data"]}
    assert list(bars) == ["mlcs-de-fr-pt-zh-ar"]  # the headline arm present in these runs
    assert bars["mlcs-de-fr-pt-zh-ar"] == pytest.approx({x: f1[("mlcs-de-fr-pt-zh-ar", x)] for x in tower.langs})
    assert chart["layout"]["xaxis"]["categoryarray"][:4] == ["en", "de", "pt", "fr"]  # languages.display_order
    (report_button,) = [b for b in at.get("download_button") if b.proto.label == "Whole report (one HTML file)"]
    assert report_button.proto.deferred_file_id and not report_button.proto.url  # built on click, not on every rerun


def test_finetune_page_pools_the_experiments_seeds_and_keeps_its_runs_out_of_single_run_views(experiment_store,
                                                                                              monkeypatch):
    monkeypatch.setenv("CSR_RESULTS_DIR", str(experiment_store["root"]))
    at = app("app_pages/finetune.py")
    (tower,) = experiment_store["report"].towers
    heat = chart_titled(at, "mean over seeds")["data"][0]
    assert list(heat["y"]) == tower.arms
    cell = tower.primary[("blcs-zh", "zh")].estimate.value
    assert arr(heat["z"])[list(heat["y"]).index("blcs-zh"), list(heat["x"]).index("zh")] == pytest.approx(cell, abs=0.05)
    widget(at, "multiselect", "ft_exp_arms").set_value(["blcs-zh", "blcs-de"])
    rerun(at)
    delta = chart_titled(at, "family F1")
    names = sorted(trace["name"] for trace in delta["data"])
    assert names == ["blcs-de", "blcs-zh"]
    english = frame(at, "Δ en", "verdict")
    assert set(english["arm"]) == {c.arm for c in tower.english}
    assert "`None`" not in text_of(at)
    # experiment runs are not single runs: no single-run comparison is drawn from them
    assert not [c for c in charts(at) if "per language (95% CI; * Holm" in str(c["layout"].get("title"))]


# ---- arms, not runs: seed pooling and run sets -------------------------------------------------------------------
def _seeded_store(root, runs: list[tuple[str, str, float]]):
    """One monolingual t2i R@10 row per (model, run_set, value) in a fresh store."""
    from csr_core.results import ResultsStore, build_manifest, make_rows

    store = ResultsStore(root)
    for model, run_set, value in runs:
        seed = int(model.split("/s")[1].split("+")[0])
        rows = make_rows([dict(source="ours", model=model, dataset="flickr8k-multi30k", split="test",
                               setting="monolingual", query_lang=lang, doc_lang="img", direction="t2i",
                               metric="recall", k=10, value=value + shift, n_queries=100, ci_low=value + shift - 5,
                               ci_high=value + shift + 5, train_arm="en", seed=seed)
                          for lang, shift in (("en", 0.0), ("de", -4.0))])
        store.write_run(rows, build_manifest({"model": model, "run_set": run_set, "seed": seed}))
    return store


def test_pool_seeds_gives_one_row_per_arm_with_mean_sd_and_seeds(tmp_path):
    store = _seeded_store(tmp_path / "r", [("csr-mini:en/s0+top2", "experiment-2", 10.0),
                                           ("csr-mini:en/s1+top2", "experiment-2", 20.0),
                                           ("csr-mini:en/s2+top2", "experiment-2", 30.0),
                                           ("csr-mini:blcs-de/s0", "experiment-2", 50.0)])
    rows = store.load()
    pooled = ds.pool_seeds(rows).set_index(["model", "query_lang"])
    arm = pooled.loc[("csr-mini:en/s*+top2", "de")]
    assert arm["value"] == pytest.approx(16.0) and arm["value_sd"] == pytest.approx(10.0)
    assert arm["n_seeds"] == 3 and arm["seed"] == -1 and np.isnan(arm["ci_low"])
    assert arm["note"].startswith("mean of 3 seeds (0,1,2), sd 10.0")
    assert arm["run_id"] == min(rows.loc[rows["model"].str.startswith("csr-mini:en/"), "run_id"])
    single = pooled.loc[("csr-mini:blcs-de/s0", "en")]  # one seed: passes through with its own CI
    assert single["value"] == 50.0 and single["ci_low"] == 45.0 and single["n_seeds"] == 1
    assert len(pooled) == 4
    sets = ds.run_sets(store.runs())
    assert set(sets.values()) == {"experiment-2"} and set(sets) == set(rows["run_id"])


def test_heatmap_pools_seeds_and_leaves_scratch_runs_out_by_default(tmp_path, monkeypatch):
    """A scratch run (Run eval / Fine-tuning pages) of the same arm must not change the published arm's numbers."""
    root = tmp_path / "results"
    _seeded_store(root, [("csr-mini:en/s0+top2", "experiment-2", 10.0), ("csr-mini:en/s1+top2", "experiment-2", 20.0),
                         ("csr-mini:en/s2+top2", "experiment-2", 30.0), ("csr-mini:en/s3+top2", "scratch", 90.0)])
    monkeypatch.setenv("CSR_RESULTS_DIR", str(root))
    monkeypatch.setenv("CSR_CACHE_DIR", str(tmp_path / "cache"))
    at = app("app_pages/heatmaps.py")
    assert widget(at, "multiselect", "hm_run_sets").value == ["experiment-2"]
    spec = chart_titled(at, "seeds pooled")
    assert spec["data"][0]["y"] == ["csr-mini:en/s*+top2 · en"]
    assert arr(spec["data"][0]["z"]).tolist() == [[20.0, 16.0]]  # en, de: mean of the three published seeds
    assert "mean of %{customdata[3]} seeds" in spec["data"][0]["hovertemplate"]
    widget(at, "multiselect", "hm_run_sets").set_value(["experiment-2", "scratch"])
    rerun(at)
    both = chart_titled(at, "seeds pooled")["data"][0]
    # chosen, it is shown as its own row, never pooled into the published arm
    assert dict(zip(both["y"], arr(both["z"]).tolist())) == {"csr-mini:en/s*+top2 · en": [20.0, 16.0],
                                                              "csr-mini:en/s3+top2 · en": [90.0, 86.0]}
    widget(at, "toggle", "hm_pool").set_value(False)
    rerun(at)
    unpooled = chart_titled(at, "monolingual · t2i")
    assert len(unpooled["data"][0]["y"]) == 4 and "seeds pooled" not in json.dumps(unpooled["layout"]["title"])


def test_a_heatmap_with_many_rows_shows_a_capped_choosable_set(tmp_path, monkeypatch):
    from csr_core.viz import MAX_HEATMAP_ROWS as MAX_ROWS

    root = tmp_path / "results"
    _seeded_store(root, [(f"csr-mini:arm{i:02d}/s0", "mine", 10.0 + i) for i in range(MAX_ROWS + 5)])
    monkeypatch.setenv("CSR_RESULTS_DIR", str(root))
    monkeypatch.setenv("CSR_CACHE_DIR", str(tmp_path / "cache"))
    at = app("app_pages/heatmaps.py")
    rows_widget = widget(at, "multiselect", "hm_rows")
    assert len(rows_widget.options) == MAX_ROWS + 5 and len(rows_widget.value) == MAX_ROWS
    assert len(chart_titled(at, "monolingual · t2i")["data"][0]["y"]) == MAX_ROWS
    rows_widget.set_value(rows_widget.options[:3])
    rerun(at)
    assert len(chart_titled(at, "monolingual · t2i")["data"][0]["y"]) == 3


def test_overview_explains_its_notation_in_a_glossary_and_tooltips(results):
    from csr_core.glossary import GLOSSARY, explain

    at = app()
    glossary = frame(at, "term", "meaning")
    assert list(glossary["term"]) == list(GLOSSARY) and glossary["meaning"].str.len().min() > 40
    for term in ("R@K", "t2i", "i2t", "t2t", "gallery", "arm", "seed", "model name"):
        assert term in GLOSSARY
    assert widget(at, "selectbox", "ov_k").help == explain("R@K")
    assert "t2i: text → image" in widget(at, "radio", "ov_direction").help
    heatmaps = app("app_pages/heatmaps.py")
    assert widget(heatmaps, "selectbox", "hm_k").help == explain("R@K")


def test_codeswitch_explorer_shows_the_photo_translations_and_consistent_counts(shared_data):
    from csr_core.codeswitch import CodeSwitcher, bidi_isolated, switch_facts
    from csr_core.datasets import load_dataset
    from csr_core.lexicon import load_muse

    at = app("app_pages/codeswitch.py")
    widget(at, "slider", "cs_p").set_value(1.0)
    rerun(at)
    data = load_dataset("flickr8k-multi30k", "test")
    flat = data.flat("en")
    index = widget(at, "selectbox", "cs_pick").value
    row = int(flat.caption_image[index])
    human = frame(at, "lang", "provenance", "caption")
    expected = [(lang, bidi_isolated(c)) for lang in data.languages for c in data.captions[lang][row]]
    assert list(zip(human["lang"], human["caption"])) == expected  # every language's human captions, this photo
    assert "ar" not in data.languages or human.loc[human["lang"] == "ar", "caption"].str.startswith("\u2068").all()
    assert at.image and str(data.image_ids[row]) in text_of(at) + " ".join(s.value for s in at.subheader)
    facts = switch_facts(CodeSwitcher({"de": load_muse("de")}, mode="bl", p=1.0, seed=0).switch(flat.texts[index]))
    shown = {m.label: m.value for m in at.metric}
    assert shown["Content words switched"] == f"{facts.n_switched_content} / {facts.n_content}"
    assert shown["Switch ratio (content words)"] == f"{facts.n_switched_content / facts.n_content:.0%}"
    assert shown["Unchanged by the lexicon"] == str(facts.n_identity)
    assert any(e.label.startswith("Stopwords (") for e in at.expander)


def test_codeswitch_table_isolates_arabic_runs(shared_data):
    from csr_core.lexicon import available_muse

    if "ar" not in available_muse():
        pytest.skip("no MUSE en-ar dictionary here")
    at = app("app_pages/codeswitch.py")
    widget(at, "multiselect", "cs_langs").set_value(["ar"])
    widget(at, "slider", "cs_p").set_value(1.0)
    rerun(at)
    table = frame(at, "caption_id", "switched")
    arabic = table["switched"].str.contains("[\u0600-\u06ff]", regex=True)
    assert arabic.mean() > 0.5
    assert table.loc[arabic, "switched"].str.contains("\u2068").all()  # each RTL run in an isolate
    assert not table.loc[~arabic, "switched"].str.contains("\u2068").any()


def test_run_page_warns_before_an_eval_on_a_training_split(shared_data):
    at = app("app_pages/run_eval.py")
    assert not any("split. Models fine-tuned" in w.value for w in at.warning)  # test split: no warning
    splits = widget(at, "selectbox", "run_split").options
    assert "train" in splits
    widget(at, "selectbox", "run_split").set_value("train")
    rerun(at)
    assert any("**train** split" in w.value and "not test numbers" in w.value for w in at.warning)


def test_training_shows_its_loss_and_validation_live_and_lands_a_scratch_run(shared_data, tmp_path, monkeypatch):
    """A real (tiny) training job from the Fine-tuning page: the panel draws each step as it comes and the
    evaluated run lands in the scratch run set."""
    import time

    from csr_core.results import ResultsStore

    monkeypatch.setenv("CSR_RESULTS_DIR", str(tmp_path / "results"))
    at = app("app_pages/finetune.py")
    widget(at, "text_input", "ft_new_arm").set_value("en")
    widget(at, "number_input", "ft_new_steps").set_value(20)
    rerun(at)
    widget(at, "button", "ft_train").click()
    rerun(at)
    deadline = time.monotonic() + 600
    while at.session_state["ft_job"].snapshot().active and time.monotonic() < deadline:
        time.sleep(1)
        rerun(at)
    snap = at.session_state["ft_job"].snapshot()
    assert snap.status == "done", snap.error
    history = at.session_state["ft_history"]
    assert [r["step"] for r in history] == list(range(1, 21))
    curve = chart_titled(at, "loss and validation mean recall per step")
    assert list(arr(curve["data"][0]["x"])) == list(range(1, 21))
    (run,) = ResultsStore(tmp_path / "results").runs()
    assert run["params"]["run_set"] == "scratch" and run["params"]["train_arm"] == "en"


def test_a_shared_server_confines_typed_model_paths_when_asked(shared_data, tmp_path, monkeypatch):
    """Opt-in (CSR_MODEL_DIRS): a typed model outside the allowed folders is refused before any job starts, also by
    the CLI's evaluation path; a symlink out of the folder does not get round it; inside, it runs."""
    from csr_core.encoders.registry import check_model_paths, parse_model_name
    from csr_core.errors import ModelError
    from csr_core.results import ResultsStore

    allowed = tmp_path / "allowed"
    allowed.mkdir()
    outside = _tiny_model(tmp_path, seed=7)  # open_clip-config:<tiny.json>@<tmp>/tiny-seed7.safetensors
    inside_weights = allowed / "tiny.safetensors"
    inside_weights.write_bytes(Path(outside.rsplit("@", 1)[1]).read_bytes())
    (allowed / "escape.safetensors").symlink_to(outside.rsplit("@", 1)[1])
    config_path = outside.split(":", 1)[1].rsplit("@", 1)[0]
    monkeypatch.setenv("CSR_MODEL_DIRS", f"{allowed}{os.pathsep}{Path(config_path).parent}")
    check_model_paths(parse_model_name(f"open_clip-config:{config_path}@{inside_weights}"))  # allowed: no error
    for name in (outside, f"open_clip-config:{config_path}@{allowed / 'escape.safetensors'}"):
        with pytest.raises(ModelError, match="outside the folders this server allows"):
            check_model_paths(parse_model_name(name))
    at = app("app_pages/run_eval.py")
    widget(at, "text_input", "run_model_custom").set_value(outside)
    widget(at, "multiselect", "run_langs").set_value(["en"])
    widget(at, "multiselect", "run_settings").set_value(["monolingual"])
    rerun(at)
    widget(at, "button", "run_start").click()
    rerun(at)
    assert any("outside the folders this server allows" in e.value for e in at.error)
    assert "run_job" not in at.session_state  # no job was started
    from csr_core.evaluate import EvalConfig, run_evaluation

    with pytest.raises(ModelError, match="outside the folders"):  # the CLI's path (eval) refuses it too
        run_evaluation(EvalConfig(model=outside, dataset="flickr8k-multi30k", split="test", langs=("en",),
                                  settings=("monolingual",), max_images=N_PHOTOS), store=ResultsStore(tmp_path / "r"))
    monkeypatch.delenv("CSR_MODEL_DIRS")
    check_model_paths(parse_model_name(outside))  # unset: not confined
