"""The shipped csr-mini heads: loadable by registry name, small, honest manifests, and they reproduce their numbers.

Reproduction uses the real towers on the fixed subset of test photos recorded in each manifest (60 photos, en + de
captions; the full-test numbers are also checked against the shipped results/ runs, read-only).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csr_core.encoders.csr_mini import HEADS_DIR, _FILE_RE, list_csr_mini, load_csr_mini

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p for p in HEADS_DIR.glob("*.safetensors") if _FILE_RE.fullmatch(p.name))
pytestmark = pytest.mark.skipif(not SHIPPED, reason="no heads shipped in csr_core/heads yet")
TOLERANCE = 0.5  # R@K points
REPRODUCE = ("csr-mini", "csr-mini-m:mlcs-de-fr-cs")  # one arm per tower (the towers are the slow part)


def _sidecar(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())


def test_total_size_is_small():
    total = sum(p.stat().st_size for p in HEADS_DIR.iterdir() if p.is_file())
    assert total < 20 * 1024 * 1024, f"shipped heads take {total / 1e6:.1f} MB"


def test_every_shipped_file_is_listed_and_has_a_complete_manifest(shared_data):
    from csr_core.datasets import split_image_ids

    names = list_csr_mini()
    assert "csr-mini" in names and "csr-mini-m" in names
    splits = split_image_ids("flickr8k-multi30k")
    for path in SHIPPED:
        side = _sidecar(path)
        manifest = side["manifest"]
        m = _FILE_RE.fullmatch(path.name)
        assert (manifest["tower"], manifest["arm"], manifest["seed"]) == (m["tower"], m["arm"], int(m["seed"]))
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
    if not (store.runs_dir).is_dir():
        pytest.skip("results/ holds no runs")
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


@pytest.mark.parametrize("name", REPRODUCE)
def test_shipped_heads_reproduce_their_numbers(shared_data, name):
    from csr_core.datasets import load_dataset
    from csr_core.evaluate import EvalConfig, run_evaluation

    encoder = load_csr_mini(name)
    repro = encoder.heads.manifest["repro"]
    subset_info = repro["subset"]
    test = load_dataset("flickr8k-multi30k", split="test")
    subset = test.subset(subset_info["n_images"], seed=subset_info["subset_seed"])
    assert subset.image_ids == subset_info["image_ids"]
    cfg = EvalConfig(model=name, dataset="flickr8k-multi30k", langs=tuple(subset_info["langs"]),
                     settings=("monolingual",), n_resamples=10)
    out = run_evaluation(cfg, encoder=encoder, dataset=subset, write=False)
    got = {f"{r.direction}/{r.query_lang if r.direction == 't2i' else r.doc_lang}/R@{int(r.k)}": r.value
           for r in out.rows[out.rows["metric"] == "recall"].itertuples()}
    assert set(got) == set(repro["values"])
    for key, want in repro["values"].items():
        assert abs(got[key] - want) <= TOLERANCE, f"{name} {key}: {got[key]:.2f} vs shipped {want:.2f}"
    # and the model is far from chance (10/60 = 16.7 % at R@10) in English
    assert got["t2i/en/R@10"] > 40
