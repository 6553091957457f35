"""The leakage guard knows the shipped heads' training photos: heads loaded by name carry the ids their manifest records.

Real shipped heads (loaded by registry name), the real guard (`run_evaluation` / `check_leakage`) and the real
dataset. On the real data the recorded `ids_sha256` matches and the train (and val: the checkpoint was chosen on it)
photos are refused. On other data (the synthetic test data, or a manifest whose hash this data does not give) the
ids cannot be told, so every Flickr8k/Flickr30k set is refused with a message naming the heads file and both hashes,
while XTD10 still runs.
"""

from __future__ import annotations

import copy
import hashlib
import pickle
from pathlib import Path

import pytest

from csr_core.datasets import TrainingSource, check_leakage, load_dataset, split_image_ids
from csr_core.encoders.base import traits
from csr_core.encoders.csr_mini import HEADS_DIR, ProjectionHeads, load_csr_mini, resolve_training_photos
from csr_core.errors import DataError, ModelError
from csr_core.evaluate import EvalConfig, run_evaluation

SHIPPED_EN = HEADS_DIR / "minilm-en-s0.safetensors"


def _sha(ids) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def _config(split: str, **kw) -> EvalConfig:
    kw = dict(model="csr-mini", dataset="flickr8k-multi30k", split=split, langs=("en",), ks=(1, 5), max_images=6,
              n_resamples=10) | kw
    return EvalConfig(**kw)


@pytest.fixture(scope="module")
def f8k(shared_data) -> dict:
    """The three splits, loaded once (loading is the slow part of a refused evaluation)."""
    return {split: load_dataset("flickr8k-multi30k", split=split) for split in ("train", "val", "test")}


def _copy_heads(folder: Path, name: str, edit) -> Path:
    """The shipped English MiniLM heads saved under `name` in `folder`, with `edit(manifest)` applied."""
    heads = ProjectionHeads.load(SHIPPED_EN)
    manifest = copy.deepcopy(heads.manifest)
    edit(manifest)
    return heads.save(folder / name, manifest)


# ------------------------------------------------------------------------------------------- real data: ids known


@pytest.mark.parametrize("name", ["csr-mini", "csr-mini:blcs-de", "csr-mini-m"])
def test_shipped_heads_carry_their_checked_training_and_val_photos(real_data, name):
    encoder = load_csr_mini(name, device="cpu")
    record = encoder.heads.manifest["training_images"]
    splits = split_image_ids("flickr8k-multi30k")
    known = traits(encoder)
    assert set(known.training_image_ids) == set(splits["train"]) | set(splits["val"])
    assert _sha(set(known.training_image_ids) & set(splits["train"])) == record["ids_sha256"]
    assert not set(known.training_image_ids) & set(splits["test"])
    assert known.training_sources == ()
    assert "checked" in encoder.training_photos.note and str(encoder.heads.source_path) in encoder.training_photos.note


@pytest.mark.parametrize("name", ["csr-mini", "csr-mini:blcs-de", "csr-mini-m:mlcs-de-fr-cs"])
def test_eval_of_shipped_heads_on_train_or_val_is_refused_by_name(real_data, f8k, name):
    for split in ("train", "val"):
        with pytest.raises(DataError, match="leakage") as exc:  # the encoder is loaded by name, through the registry
            run_evaluation(_config(split, model=name), dataset=f8k[split], write=False)
        assert f"6 of 6 evaluation images of flickr8k-multi30k/{split}" in str(exc.value)
        assert "allow_leakage" in str(exc.value)


def test_allow_leakage_runs_and_the_run_says_so_while_test_is_unaffected(real_data, f8k):
    from csr_core.results import ResultsStore

    store = ResultsStore()
    leaky = run_evaluation(_config("train", allow_leakage=True), dataset=f8k["train"], store=store)
    (manifest,) = store.runs()
    assert manifest["run_id"] == leaky.run_id and len(leaky.rows) > 0
    assert manifest["params"]["allow_leakage"] is True and manifest["params"]["split"] == "train"  # the run's label
    n = _config("train").max_images  # every evaluated photo is a training photo
    assert manifest["leakage"].startswith(f"{n} of {n} evaluation images") and "training images" in manifest["leakage"]
    assert any(note.startswith("LEAKAGE (allowed)") for note in leaky.notes)
    clean = run_evaluation(_config("test"), dataset=f8k["test"], write=False)  # not the heads' photos
    assert len(clean.rows) > 0 and (clean.rows["n_queries"] > 0).all() and "leakage" not in " ".join(clean.notes)


def test_heads_trained_on_a_max_photos_subset_carry_that_subset(f8k, tmp_path):
    """The trainer's seeded subset of the train split is rebuilt and checked against its hash (any data mode)."""
    from csr_core.finetune import _subset_rows
    from csr_core.training.data import check_no_test_photos

    splits = split_image_ids("flickr8k-multi30k")
    rows = _subset_rows(len(splits["train"]), 10, 1)
    subset = [splits["train"][int(i)] for i in rows]

    def edit(manifest):
        manifest["training_images"] = check_no_test_photos(subset)

    _copy_heads(tmp_path, "minilm-en-s0", edit)
    encoder = load_csr_mini("csr-mini", device="cpu", heads_dir=tmp_path)
    ids = set(traits(encoder).training_image_ids)
    assert ids == set(subset) | set(splits["val"]) and traits(encoder).training_sources == ()
    others = f8k["train"]
    outside = others.subset([i for i, p in enumerate(others.image_ids) if p not in ids][:5])
    assert check_leakage(outside, ids).ok  # train photos the subset never saw are not refused
    inside = others.subset([others.image_ids.index(p) for p in subset[:3]])
    with pytest.raises(DataError, match="3 of 3 evaluation images"):
        check_leakage(inside, ids)


# ------------------------------------------------------------------------- other data: ids unknown, sets refused


def test_a_hash_this_data_does_not_give_refuses_flickr_sets_and_names_both_hashes(f8k, tmp_path):
    wrong = "0" * 64

    def edit(manifest):
        manifest["training_images"]["ids_sha256"] = wrong

    path = _copy_heads(tmp_path, "minilm-en-s0", edit)
    encoder = load_csr_mini("csr-mini", device="cpu", heads_dir=tmp_path)
    assert traits(encoder).training_image_ids == ()
    (source,) = traits(encoder).training_sources
    assert isinstance(source, TrainingSource) and source == "flickr8k-multi30k-train"
    got = _sha(split_image_ids("flickr8k-multi30k")["train"])
    for split in ("test", "train"):
        with pytest.raises(DataError, match="leakage") as exc:
            run_evaluation(_config(split), encoder=encoder, dataset=f8k[split], write=False)
        message = str(exc.value)
        assert str(path) in message and wrong in message and got in message, message
    xtd = load_dataset("xtd10")  # COCO photos: cannot be the heads' Flickr photos
    assert check_leakage(xtd, set(traits(encoder).training_image_ids),
                         model_training_sources=traits(encoder).training_sources).ok
    assert not run_evaluation(_config("test", allow_leakage=True), encoder=encoder, dataset=f8k["test"],
                              write=False).rows.empty


def test_shipped_heads_on_the_synthetic_data_are_refused_on_flickr_sets(shared_data, f8k):
    """The synthetic photos are not the real ones: the recorded hash cannot match, so the guard refuses the set."""
    if not (shared_data / ".synthetic").exists():
        pytest.skip("real data: the shipped heads' hash matches here (the mismatch is covered with an edited manifest)")
    with pytest.raises(DataError, match="leakage") as exc:
        run_evaluation(_config("test"), dataset=f8k["test"], write=False)
    assert str(SHIPPED_EN) in str(exc.value) and "ids sha256" in str(exc.value)


def test_loading_needs_no_dataset_files_and_missing_files_refuse_flickr_sets(shared_data, f8k, tmp_path,
                                                                              monkeypatch):
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("CSR_DATA_DIR", str(empty))
    encoder = load_csr_mini("csr-mini", device="cpu")  # no flickr8k files anywhere: loading still works
    assert encoder._resolved_training is None  # nothing was resolved at load
    (source,) = traits(encoder).training_sources
    assert "cannot be listed here" in source.note and str(SHIPPED_EN) in source.note
    with pytest.raises(DataError, match="cannot be listed here"):
        check_leakage(f8k["test"].subset(5), traits(encoder).training_image_ids, model_training_sources=traits(encoder).training_sources)
    xtd = load_dataset("xtd10", data_root=shared_data)
    assert check_leakage(xtd, traits(encoder).training_image_ids,
                         model_training_sources=traits(encoder).training_sources).ok


# ------------------------------------------------------------------------------------------- records and traits


def test_malformed_record_is_refused_at_load_naming_the_file(tmp_path):
    def edit(manifest):
        manifest["training_images"]["ids_sha256"] = "not-a-hash"

    path = _copy_heads(tmp_path, "minilm-en-s0", edit)
    with pytest.raises(ModelError, match="ids_sha256") as exc:
        load_csr_mini("csr-mini", device="cpu", heads_dir=tmp_path)
    assert str(path) in str(exc.value)

    def unknown(manifest):
        manifest["training_images"]["dataset"] = "nope"

    _copy_heads(tmp_path, "minilm-en-s0", unknown)
    with pytest.raises(ModelError, match="unknown dataset 'nope'"):
        load_csr_mini("csr-mini", device="cpu", heads_dir=tmp_path)


def test_heads_without_a_record_say_so_and_assignment_overrides_the_manifest(shared_data, tmp_path):
    _copy_heads(tmp_path, "minilm-en-s0", lambda manifest: manifest.pop("training_images"))
    bare = load_csr_mini("csr-mini", device="cpu", heads_dir=tmp_path)
    assert traits(bare).training_image_ids == () and traits(bare).training_sources == ()
    assert "records no training photos" in bare.training_photos.note

    encoder = load_csr_mini("csr-mini", device="cpu")
    encoder.training_image_ids = ["1000268201.jpg"]  # what finetune.make_encoder does for heads it just trained
    encoder.training_sources = ()
    assert traits(encoder).training_image_ids == ("1000268201.jpg",) and traits(encoder).training_sources == ()
    encoder.training_image_ids = None  # back to the manifest's record
    encoder.training_sources = None
    resolved = resolve_training_photos(encoder.heads.manifest, encoder.heads.source_path)
    assert traits(encoder).training_image_ids == resolved.image_ids and len(resolved.image_ids + resolved.sources)


def test_training_source_keeps_its_note_through_pickle_and_copy():
    """Pooled encoders send their traits between processes (csr_core.distributed): the note must survive."""
    source = TrainingSource("flickr8k-multi30k-train", "why")
    for clone in (pickle.loads(pickle.dumps(source)), copy.deepcopy(source)):
        assert clone == "flickr8k-multi30k-train" and isinstance(clone, TrainingSource) and clone.note == "why"
