"""Datasets: the offline flickr8k-multi30k split, the official layouts on the real shared data, tiny fixtures for
the layouts not shipped here (Crossmodal-3600, user jsonl), and clear errors for bad input."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from csr_core.datasets import (
    DATASETS,
    HUMAN,
    INDEPENDENT,
    MACHINE,
    ImageTextSet,
    canonical_image_key,
    check_leakage,
    flores_tags,
    list_datasets,
    load_dataset,
    normalize_lang,
    split_image_ids,
)
from csr_core.errors import DataError

# sha256 of "\n".join(test image ids) of flickr8k-multi30k: the split is fixed forever (seed 0, 237/100/rest)
F8K_TEST_SHA = "8abd8e0e1e06b56b8154f33e227ada5b8fcd8d715d84e727bf9bd356c97f0d39"


@pytest.fixture(scope="module")
def f8k(shared_data) -> dict[str, ImageTextSet]:
    return {s: load_dataset("flickr8k-multi30k", s, data_root=shared_data) for s in ("train", "val", "test")}


@pytest.fixture(scope="module")
def xtd(shared_data) -> ImageTextSet:
    return load_dataset("xtd10", data_root=shared_data)


def _gz_line(path: Path, i: int) -> str:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return fh.read().split("\n")[i].strip()


# ---------------------------------------------------------------------------------------- flickr8k-multi30k


def test_offline_split_counts_and_disjointness(real_data):
    splits = split_image_ids("flickr8k-multi30k", data_root=real_data)
    assert {k: len(v) for k, v in splits.items()} == {"train": 663, "val": 100, "test": 237}
    sets = {k: set(v) for k, v in splits.items()}
    assert not sets["train"] & sets["val"] and not sets["train"] & sets["test"] and not sets["val"] & sets["test"]
    photos = {p.name.split("_")[0] + ".jpg" for p in (real_data / "flickr8k" / "images").glob("*.jpg")}
    assert len(photos) == 1000 and set().union(*sets.values()) == photos
    # 937 photos have Multi30K task1 captions (train 872 + val 34 + test_2016 31); val/test come only from them
    lists = real_data / "multi30k" / "task1" / "image_splits"
    task1 = set()
    for name in ("train", "val", "test_2016_flickr"):
        task1 |= photos & set((lists / f"{name}.txt").read_text().split())
    assert len(task1) == 937 and len(photos - task1) == 63
    assert sets["val"] | sets["test"] <= task1
    assert len(sets["train"] - task1) == 63


def test_offline_split_is_deterministic_and_pinned(real_data):
    a = split_image_ids("flickr8k-multi30k", data_root=real_data)
    b = split_image_ids("flickr8k-multi30k", data_root=real_data)
    assert a == b
    assert hashlib.sha256("\n".join(a["test"]).encode()).hexdigest() == F8K_TEST_SHA


def test_offline_captions_per_split(f8k, real_data):
    train, test = f8k["train"], f8k["test"]
    assert train.languages == ["en", "de", "fr", "cs", "zh", "zh-x-f8k", "zh-x-mt", "ar", "pt", "pt-x-f30k"]
    assert all(len(c) == 5 for c in train.captions["en"])  # the five Flickr8k captions of every photo
    assert train.caption_count("en") == 663 * 5
    assert sum(1 for c in train.captions["de"] if c) == 600  # task1 translations where present, never invented
    assert train.aligned_langs == {"de", "fr", "cs", "pt"}
    assert train.alignments == (frozenset({"de", "fr", "cs", "pt"}), frozenset({"en", "zh-x-f8k", "zh-x-mt"}))
    assert test.languages == ["en", "de", "fr", "cs", "en-x-f8k", "zh", "zh-x-f8k", "ar", "pt", "pt-x-f30k"]
    for lang in ("en", "de", "fr", "cs"):
        assert all(len(c) == 1 for c in test.captions[lang]) and test.provenance[lang] == HUMAN
    assert all(len(c) == 5 for c in test.captions["en-x-f8k"])
    assert test.provenance["en-x-f8k"] == INDEPENDENT
    assert all(p.is_file() for p in test.image_paths)
    assert [p.name.split("_")[0] + ".jpg" for p in test.image_paths] == test.image_ids


def test_distant_and_close_languages_on_the_test_photos(f8k, real_data):
    """zh (native), zh-x-f8k (human translations of the Flickr8k English), ar (translated), pt (task1 translation),
    pt-x-f30k (native): their published counts on our photos, their provenance and which of them align."""
    from csr_core.datasets import TRANSLATED

    train, test = f8k["train"], f8k["test"]
    assert all(len(c) == 5 for c in test.captions["zh"]) and test.provenance["zh"] == INDEPENDENT
    assert all(len(c) == 3 for c in test.captions["ar"]) and test.provenance["ar"] == TRANSLATED
    assert all(len(c) == 1 for c in test.captions["pt"]) and test.provenance["pt"] == HUMAN
    assert all(len(c) == 5 for c in test.captions["pt-x-f30k"]) and test.provenance["pt-x-f30k"] == INDEPENDENT
    covered = sum(1 for c in test.captions["zh-x-f8k"] if c) + sum(1 for c in train.captions["zh-x-f8k"] if c)
    assert covered + sum(1 for c in f8k["val"].captions["zh-x-f8k"] if c) == 125  # the Flickr8k test photos
    assert "zh-x-mt" not in test.captions and train.provenance["zh-x-mt"] == MACHINE  # MT: training text only
    assert test.alignments == (frozenset({"en", "de", "fr", "cs", "pt"}), frozenset({"en-x-f8k", "zh-x-f8k"}))
    row = test.image_ids.index(next(i for i, c in zip(test.image_ids, test.captions["zh-x-f8k"]) if c))
    par = test.parallel(["en-x-f8k", "zh-x-f8k"])
    assert len(par) == 5 * sum(1 for c in test.captions["zh-x-f8k"] if c) and par.texts["zh-x-f8k"][0]
    assert test.captions["zh-x-f8k"][row][0] in par.texts["zh-x-f8k"]
    for independent in ("zh", "ar", "pt-x-f30k"):
        with pytest.raises(DataError, match="not translations aligned"):
            test.parallel(["en-x-f8k", independent])  # same number of captions per photo, but not line-aligned
    assert "joined" in test.notes  # the Arabic caption broken over two lines is repaired, and said


def test_offline_task1_alignment_known_lines(f8k, real_data):
    train, test = f8k["train"], f8k["test"]
    row = train.image_ids.index("1000268201.jpg")  # line 3 of Multi30K task1 train
    assert train.captions["de"][row] == ["Ein kleines Mädchen klettert in ein Spielhaus aus Holz."]
    assert "A child in a pink dress is climbing up a set of stairs in an entry way ." in train.captions["en"][row]
    # every test photo's four captions are the same line of the same Multi30K file
    raw = real_data / "multi30k" / "task1"
    lists = {s: (raw / "image_splits" / f"{s}.txt").read_text().split() for s in ("train", "val", "test_2016_flickr")}
    for i in (0, 100, 236):
        image_id = test.image_ids[i]
        src = next(s for s, ids in lists.items() if image_id in ids)
        line = lists[src].index(image_id)
        for lang in ("en", "de", "fr", "cs"):
            assert test.captions[lang][i] == [_gz_line(raw / "raw" / f"{src}.{lang}.gz", line)]


def test_flat_and_parallel_views(f8k, real_data):
    test = f8k["test"]
    flat = test.flat("en-x-f8k")
    assert len(flat) == 1185 and flat.caption_image.dtype == np.int64
    assert np.array_equal(np.bincount(flat.caption_image), np.full(237, 5))
    assert flat.caption_ids[:2] == [f"{test.image_ids[0]}#0", f"{test.image_ids[0]}#1"]
    assert flat.texts[7] == test.captions["en-x-f8k"][1][2]
    par = test.parallel(["en", "de", "fr", "cs"])
    assert len(par) == 237 and not par.skipped
    assert par.texts["de"][0] == test.captions["de"][0][0] and par.ids[0] == f"{test.image_ids[0]}#0"
    # train: en has 5 captions, de 1 or 0 -> nothing aligns, and en is not a translation of de
    with pytest.raises(DataError, match="not translations"):
        f8k["train"].parallel(["en", "de"])
    loose = f8k["train"].parallel(["de", "fr", "cs"])
    assert len(loose) == 600 and len(loose.skipped) == 63  # the 63 photos without task1 are listed, not hidden


def test_subset_is_deterministic_and_keeps_order(f8k):
    test = f8k["test"]
    a, b = test.subset(20), test.subset(20)
    assert a.image_ids == b.image_ids and len(a) == 20
    rows = [test.image_ids.index(i) for i in a.image_ids]
    assert rows == sorted(rows)
    assert test.subset(20, seed=1).image_ids != a.image_ids
    c = test.subset([5, 2])
    assert c.image_ids == [test.image_ids[5], test.image_ids[2]]
    assert c.captions["de"] == [test.captions["de"][5], test.captions["de"][2]]
    assert c.image_paths == [test.image_paths[5], test.image_paths[2]]
    with pytest.raises(DataError, match="outside"):
        test.subset([999])


def test_fingerprint_stable_and_content_sensitive(f8k, shared_data):
    test = f8k["test"]
    again = load_dataset("flickr8k-multi30k", "test", data_root=shared_data)
    assert again.fingerprint == test.fingerprint and len(test.fingerprint) == 64
    changed = test.subset(range(len(test)))
    changed.captions["de"][0] = ["anders"]
    assert changed.fingerprint != test.fingerprint
    assert test.subset(10).fingerprint != test.fingerprint


def test_leakage_guard(f8k, shared_data):
    train_ids = set(split_image_ids("flickr8k-multi30k", data_root=shared_data)["train"])
    assert check_leakage(f8k["test"], train_ids).ok
    with pytest.raises(DataError) as exc:
        check_leakage(f8k["val"], train_ids | set(f8k["val"].image_ids[:3]))
    assert "3 of 100 evaluation images" in str(exc.value) and f8k["val"].image_ids[0] in str(exc.value)
    report = check_leakage(f8k["val"], {i.split(".")[0] for i in f8k["val"].image_ids[:3]}, allow=True)
    assert len(report.overlap) == 3 and not report.ok  # ids without extension still match
    assert canonical_image_key("COCO_train2014_000000117071.jpg#367178") == "coco_train2014_000000117071"


# ---------------------------------------------------------------------------------------- official layouts


def test_xtd10_eleven_languages_text_only(xtd, real_data):
    assert len(xtd) == 1000 and xtd.text_only
    assert sorted(xtd.languages) == sorted(["en", "es", "it", "ko", "pl", "ru", "tr", "zh", "de", "fr", "ja"])
    assert all(xtd.caption_count(lang) == 1000 for lang in xtd.languages)  # es..zh lack a final newline
    assert xtd.captions["en"][1] == ["a cat with its paws on a computer mouse at a desk"]
    assert xtd.captions["ja"][0] == ["黒いユニフォームのランナーがホームに帰ってきた"]
    assert xtd.image_ids[0] == "COCO_train2014_000000061844.jpg"
    assert xtd.provenance["ja"] == INDEPENDENT and xtd.provenance["es"] == HUMAN and xtd.provenance["de"] == MACHINE
    assert "ja" not in xtd.aligned_langs and len(xtd.aligned_langs) == 10
    assert not any("\r" in c[0] for c in xtd.captions["es"])
    with pytest.raises(DataError, match="ja"):
        xtd.parallel(["en", "ja"])
    assert len(xtd.parallel(["en", "ja"], strict=False)) == 1000
    assert xtd.select_languages(["jp", "en"]).languages == ["ja", "en"]  # the order asked for


def test_xtd10_refused_for_coco_trained_model(xtd):
    assert "COCO train2014" in xtd.training_images_note
    with pytest.raises(DataError, match="coco-train2014"):
        check_leakage(xtd, None, model_training_sources={"coco-train2014"})
    with pytest.raises(DataError, match="leakage"):
        check_leakage(xtd, None, model_training_sources={"coco"})
    assert not check_leakage(xtd, None, allow=True, model_training_sources={"coco-train2017"}).ok
    assert check_leakage(xtd, None, model_training_sources={"laion2b"}).ok


def test_xtd10_with_coco_folder_needs_the_images(tmp_path, real_data):
    with pytest.raises(DataError) as exc:
        load_dataset("xtd10", data_root=real_data, image_root=tmp_path)
    assert "1000 of 1000 images" in str(exc.value) and "COCO_train2014_000000061844.jpg" in str(exc.value)


def test_multi30k_task1_and_task2(real_data):
    test = load_dataset("multi30k", "test", data_root=real_data)
    assert test.split == "test_2016_flickr" and len(test) == 1000 and test.text_only
    assert test.captions["en"][0] == ["A man in an orange hat starring at something."]
    assert test.captions["cs"][0] == ["Muž v oranžovém klobouku na něco zírá."]
    assert test.aligned_langs == {"en", "de", "fr", "cs"}
    coco = load_dataset("multi30k", "test_2017_mscoco", data_root=real_data)
    assert coco.languages == ["en", "de", "fr"] and "coco-train2014" in coco.image_sources
    task2 = load_dataset("multi30k", "val", data_root=real_data, task=2)
    assert len(task2) == 1014 and task2.caption_count("de") == 5 * 1014 and not task2.aligned_langs
    with pytest.raises(DataError, match="no split 'test_2099'"):
        load_dataset("multi30k", "test_2099", data_root=real_data)


def test_multi30k_with_image_folder_reports_or_skips_missing(tmp_path, real_data):
    folder = tmp_path / "flickr30k"
    folder.mkdir()
    for src in (real_data / "flickr8k" / "images").glob("1007129816_*.jpg"):
        shutil.copy(src, folder / "1007129816.jpg")  # the first photo of test_2016
    with pytest.raises(DataError, match="999 of 1000 images"):
        load_dataset("multi30k", "test", data_root=real_data, image_root=folder)
    kept = load_dataset("multi30k", "test", data_root=real_data, image_root=folder, skip_unreadable=True)
    assert kept.image_ids == ["1007129816.jpg"] and len(kept.skipped) == 999
    assert kept.captions["de"] == [["Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt."]]
    assert all("not found" in reason for _, reason in kept.skipped)


def test_flickr30k_200_machine_translated_with_normalised_codes(real_data):
    ts = load_dataset("flickr30k-200", data_root=real_data)
    assert len(ts) == 1000 and len(ts.languages) > 190
    assert ts.provenance["en"] == HUMAN and ts.provenance["de"] == MACHINE
    assert all(p == MACHINE for lang, p in ts.provenance.items() if lang != "en")
    assert ts.meta["source_codes"]["de"] == "deu_Latn" and ts.meta["source_codes"]["zh-Hant"] == "zho_Hant"
    assert {"zh", "zh-Hant", "ar", "ko", "ja"} <= set(ts.languages) and "eng_captions.txt" in ts.meta["other_files"]
    lists = (real_data / "multi30k" / "task1" / "image_splits" / "test_2016_flickr.txt").read_text().split()
    assert ts.image_ids == lists
    sub = load_dataset("flickr30k-200", data_root=real_data, langs=["eng_Latn", "deu_Latn", "zho_Hant"])
    assert sub.languages == ["en", "de", "zh-Hant"]
    assert sub.parallel(sub.languages).texts["de"][0].startswith("Der Mann")


def test_flores_codes_unambiguous():
    tags = flores_tags(["deu_Latn", "zho_Hans", "zho_Hant", "aka_Latn", "twi_Latn", "arb_Arab", "kor_Hang"])
    assert tags == {"deu_Latn": "de", "zho_Hans": "zh", "zho_Hant": "zh-Hant", "aka_Latn": "ak", "twi_Latn": "tw",
                    "arb_Arab": "ar", "kor_Hang": "ko"}
    assert normalize_lang("jp") == "ja" and normalize_lang("EN") == "en" and normalize_lang("deu_Latn") == "de"
    with pytest.raises(DataError, match="unknown language code 'xx'"):
        normalize_lang("xx")


def test_flickr8k_photos_present(real_data):
    ts = load_dataset("flickr8k", "all", data_root=real_data, verify_images="exists")
    assert len(ts) == 1000 and all(len(c) == 5 for c in ts.captions["en"])
    assert "7091" in ts.notes  # captioned photos without a file are counted, not silently dropped
    with pytest.raises(DataError, match="Flickr_8k.testImages.txt"):
        load_dataset("flickr8k", "test", data_root=real_data)


def test_registry(shared_data):
    names = {d["name"]: d for d in list_datasets(shared_data)}
    offered = {src["lang"]: src for src in names["flickr8k-multi30k"]["languages"]}
    assert {"pt", "zh", "ar", "zh-x-mt"} <= set(offered) and all(src["present"] for src in offered.values())
    assert (offered["zh"]["provenance"], offered["ar"]["provenance"]) == (INDEPENDENT, "translated")
    assert offered["zh-x-mt"]["splits"] == ["train"]  # machine translations are training text only
    assert not [s for s in list_datasets(shared_data / "nowhere")[0]["languages"] if s["present"] and s["lang"] == "zh"]
    assert set(DATASETS) <= set(names) and "jsonl:<folder>" in names
    assert names["flickr8k-multi30k"]["available"] and not names["xm3600"]["available"]
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        load_dataset("nope")
    with pytest.raises(DataError, match="does not take option"):
        load_dataset("xtd10", data_root=shared_data, bogus=1)
    with pytest.raises(DataError, match="no language 'sw'"):
        load_dataset("xtd10", data_root=shared_data, langs=["en", "sw"])
    with pytest.raises(DataError, match="no split 'train'"):
        load_dataset("xtd10", "train", data_root=shared_data)


def test_availability_is_what_the_loader_accepts(tmp_path):
    """'Present here' and 'loads here' read the same Location: Flickr8k with only the official token file is both."""
    folder = tmp_path / "flickr8k"
    _jpg(folder / "images" / "1000268201_693b08cb0e.jpg")
    (folder / "Flickr8k.token.txt").write_text("1000268201_693b08cb0e.jpg#0\tA child in a pink dress .\n")
    assert DATASETS["flickr8k"].available(tmp_path)
    assert len(load_dataset("flickr8k", "all", data_root=tmp_path)) == 1
    (folder / "Flickr8k.token.txt").unlink()
    assert not DATASETS["flickr8k"].available(tmp_path)
    with pytest.raises(DataError, match="flickr8k data not found"):
        load_dataset("flickr8k", "all", data_root=tmp_path)


def test_registry_owns_fixed_splits_and_training_sources(f8k, shared_data):
    """Fixed splits come from the DatasetInfo; `<dataset>-train` implies the entry's image collections."""
    ids = split_image_ids("flickr8k-multi30k", shared_data)
    assert {k: len(v) for k, v in ids.items()} == {k: len(ts) for k, ts in f8k.items()}
    assert set(DATASETS["flickr8k-multi30k"].image_sources) <= set(f8k["test"].image_sources)
    assert not check_leakage(f8k["test"], None, allow=True, model_training_sources={"multi30k-train"}).ok
    assert check_leakage(f8k["test"], None, model_training_sources={"xm3600-train"}).ok  # no train split: no alias
    with pytest.raises(DataError, match="unknown dataset"):
        split_image_ids("nope", shared_data)


# ---------------------------------------------------------------------------------------- fixtures in tmp_path


def _jpg(path: Path, colour=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 12), colour).save(path)
    return path


def _write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_xm3600_published_layout(tmp_path):
    root = tmp_path / "xm3600"
    for key in ("000411001ff7dd4f", "0005f0a6d3ca5d8e"):
        _jpg(root / "images" / f"{key}.jpg")
    _write_jsonl(root / "captions.jsonl", [
        {"image/key": "000411001ff7dd4f",
         "en": {"caption": ["A rooster.", "A chicken on grass."], "caption/tokenized": ["a rooster ."]},
         "de": {"caption": ["Ein Hahn."], "caption/tokenized": ["ein hahn ."]},
         "fil": {"caption": ["Isang tandang."]}},
        {"image/key": "0005f0a6d3ca5d8e", "en": {"caption": ["Two boats."]}, "de": {"caption": ["Zwei Boote."]}},
    ])
    ts = load_dataset("xm3600", data_root=tmp_path)
    assert ts.image_ids == ["000411001ff7dd4f", "0005f0a6d3ca5d8e"] and not ts.text_only
    assert ts.captions["en"] == [["A rooster.", "A chicken on grass."], ["Two boats."]]
    assert ts.captions["fil"] == [["Isang tandang."], []]  # a missing language is an empty list, kept visible
    assert set(ts.provenance.values()) == {INDEPENDENT} and not ts.aligned_langs
    assert ts.flat("en").caption_image.tolist() == [0, 0, 1]
    assert ts.image_sources == ("open-images",)


def test_xm3600_missing_field_names_file_and_line(tmp_path):
    _write_jsonl(tmp_path / "captions.jsonl", [
        {"image/key": "a", "en": {"caption": ["x"]}},
        {"image/key": "b", "en": {"caption/tokenized": ["x"]}},
    ])
    with pytest.raises(DataError, match=r"captions\.jsonl:2: language 'en' has no field 'caption'"):
        load_dataset("xm3600", data_root=tmp_path)
    _write_jsonl(tmp_path / "captions.jsonl", [{"en": {"caption": ["x"]}}])
    with pytest.raises(DataError, match=r"captions\.jsonl:1: missing field 'image/key'"):
        load_dataset("xm3600", data_root=tmp_path)


def test_user_jsonl_folder(tmp_path):
    _jpg(tmp_path / "a.jpg")
    _jpg(tmp_path / "sub" / "b.png")
    _write_jsonl(tmp_path / "captions.jsonl", [
        {"image": "a.jpg", "captions": {"en": ["a red square"], "DE": ["ein rotes Quadrat"]}},
        {"image": "sub/b.png", "captions": {"en": ["another red square", "red"], "de": []}},
        {"image": "c.jpg", "split": "train", "captions": {"en": ["unused"]}},
    ])
    meta = {"name": "mine", "provenance": {"de": "machine"}, "aligned": ["en", "de"]}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    ts = load_dataset(f"jsonl:{tmp_path}")
    assert ts.name == "mine" and ts.image_ids == ["a.jpg", "sub/b.png"]
    assert ts.captions == {"en": [["a red square"], ["another red square", "red"]], "de": [["ein rotes Quadrat"], []]}
    assert ts.provenance == {"en": "unknown", "de": MACHINE}
    par = ts.parallel(["en", "de"])
    assert par.ids == ["a.jpg#0"] and par.skipped == [("sub/b.png", "en: 2, de: 0")]
    with pytest.raises(DataError, match="c.jpg: image file not found"):
        load_dataset(f"jsonl:{tmp_path}", "train")
    with pytest.raises(DataError, match=r"split 'val' is empty; splits present: test \(2\), train \(1\)"):
        load_dataset(f"jsonl:{tmp_path}", "val")


def test_user_jsonl_bad_lines(tmp_path):
    cases = [
        ({"image": "b.jpg", "captions": {"xx": ["?"]}}, r":2: unknown language code 'xx'"),
        ({"captions": {"en": ["no image"]}}, r":2: missing field 'image'"),
        ({"image": "b.jpg"}, r":2: missing field 'captions'"),
        ('{"image": "b.jpg", "captions": ', r":2: invalid JSON"),
        ({"image": "b.jpg", "captions": {"en": [""]}}, r":2: captions\['en'\] must be a list of non-empty strings"),
        ({"image": "a.jpg", "captions": {"en": ["again"]}}, r":2: image 'a.jpg' repeats .*captions\.jsonl:1"),
    ]
    for bad, pattern in cases:
        folder = tmp_path / f"case{cases.index((bad, pattern))}"
        _jpg(folder / "a.jpg")
        _write_jsonl(folder / "captions.jsonl", [{"image": "a.jpg", "captions": {"en": ["ok"]}}, bad])
        with pytest.raises(DataError, match=r"captions\.jsonl" + pattern):
            load_dataset(f"jsonl:{folder}")


def test_unreadable_images_raise_or_are_reported(tmp_path):
    _jpg(tmp_path / "good.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    _write_jsonl(tmp_path / "captions.jsonl", [
        {"image": "good.jpg", "captions": {"en": ["fine"]}},
        {"image": "broken.jpg", "captions": {"en": ["broken"]}},
        {"image": "gone.jpg", "captions": {"en": ["missing"]}},
    ])
    with pytest.raises(DataError) as exc:
        load_dataset(f"jsonl:{tmp_path}")
    assert "2 of 3 images" in str(exc.value) and "broken.jpg" in str(exc.value) and "gone.jpg" in str(exc.value)
    ts = load_dataset(f"jsonl:{tmp_path}", skip_unreadable=True)
    assert ts.image_ids == ["good.jpg"] and ts.captions["en"] == [["fine"]]
    assert [Path(p).name for p, _ in ts.skipped] == ["broken.jpg", "gone.jpg"]
    assert "not a readable image" in ts.skipped[0][1] and "not found" in ts.skipped[1][1]
    (tmp_path / "good.jpg").unlink()
    with pytest.raises(DataError, match="every image was left out"):
        load_dataset(f"jsonl:{tmp_path}", skip_unreadable=True)


def _mini_multi30k(root: Path, en: list[str], de: list[str], names: list[str]) -> Path:
    raw = root / "multi30k" / "task1" / "raw"
    raw.mkdir(parents=True)
    (root / "multi30k" / "task1" / "image_splits").mkdir()
    (root / "multi30k" / "task1" / "image_splits" / "test_2016_flickr.txt").write_text("\n".join(names) + "\n")
    for lang, lines in (("en", en), ("de", de)):
        with gzip.open(raw / f"test_2016_flickr.{lang}.gz", "wt", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
    return root


def test_caption_files_of_different_lengths_name_both(tmp_path):
    root = _mini_multi30k(tmp_path, ["a", "b", "c"], ["x", "y"], ["1.jpg", "2.jpg", "3.jpg"])
    with pytest.raises(DataError) as exc:
        load_dataset("multi30k", "test", data_root=root)
    msg = str(exc.value)
    assert "test_2016_flickr.txt has 3 lines" in msg and "test_2016_flickr.de.gz has 2" in msg


def test_blank_caption_line_is_named(tmp_path):
    root = _mini_multi30k(tmp_path, ["a", "", "c"], ["x", "y", "z"], ["1.jpg", "2.jpg", "3.jpg"])
    with pytest.raises(DataError, match=r"test_2016_flickr\.en\.gz:2: empty caption line"):
        load_dataset("multi30k", "test", data_root=root)


def test_unicode_line_separators_do_not_shift_alignment(tmp_path):
    root = _mini_multi30k(tmp_path, ["a\u2028b", "c"], ["x", "y\x85z"], ["1.jpg", "2.jpg"])
    ts = load_dataset("multi30k", "test", data_root=root)
    assert ts.captions["en"] == [["a\u2028b"], ["c"]] and ts.captions["de"][1] == ["y\x85z"]


# ------------------------------------------------------------------------- Chinese, Arabic, Portuguese layouts


def test_flickr8k_language_files_name_file_and_line_for_bad_input(tmp_path):
    from csr_core.datasets.flickr8k_languages import read_keyed_captions, read_portuguese_task1

    known = frozenset({"1_a.jpg", "2_b.jpg"})
    cases = {
        "1_a.jpg#zhc#0 一只狗\nno key here\n": r"zh\.txt:2: expected 'NAME\.jpg#zhc#j caption'",
        "1_a.jpg#zhc#0 一只狗\n9_z.jpg#zhc#0 一只猫\n": r"zh\.txt:2: '9_z\.jpg' is not a Flickr8k photo",
        "1_a.jpg#zhb#0 一只狗\n": r"zh\.txt:1: caption set tag 'zhb', expected 'zhc'",
        "1_a.jpg#zhc#0 一只狗\n1_a.jpg#zhc#2 一只猫\n": r"zh\.txt:2: caption #2 of 1_a\.jpg out of order",
        "1_a.jpg#zhc#0  \n": r"zh\.txt:1: (empty caption|no caption)",
    }
    for text, match in cases.items():
        (tmp_path / "zh.txt").write_text(text, encoding="utf-8")
        with pytest.raises(DataError, match=match):
            read_keyed_captions(tmp_path / "zh.txt", known, separator=" ", tag="zhc")
    (tmp_path / "zh.txt").write_bytes("1_a.jpg#zhc#0 一只狗\n".encode("gb18030"))  # not UTF-8
    with pytest.raises(DataError, match=r"zh\.txt is not valid utf-8 text"):
        read_keyed_captions(tmp_path / "zh.txt", known, separator=" ", tag="zhc")
    # the two published quirks: a caption broken over two lines (joined, said) and the Flickr8k `.jpg.1` duplicate
    (tmp_path / "ar.txt").write_text("1_a.jpg#0\tطفلة صغيرة\nتتسلق\n2258277193_586949ec62.jpg.1#0\tx\n"
                                     "2_b.jpg#0\tكلب\n", encoding="utf-8")
    read = read_keyed_captions(tmp_path / "ar.txt", known, separator="\t", tag=None)
    assert read.captions == {"1_a.jpg": ["طفلة صغيرة تتسلق"], "2_b.jpg": ["كلب"]}
    assert read.joined_lines == [2] and "line 2" in read.report() and "2258277193_586949ec62.jpg.1" in read.report()
    # Portuguese task1 lines must be as many as the English lines they translate
    raw = tmp_path / "framed-multi30k" / "multi30k" / "task1" / "raw"
    raw.mkdir(parents=True)
    with gzip.open(raw / "val.pt.gz", "wt", encoding="utf-8") as fh:
        fh.write("Um cão .\n")
    with pytest.raises(DataError, match="differ in length"):
        read_portuguese_task1(tmp_path, "val", ["A dog .", "A cat ."], tmp_path / "val.en.gz")


def test_independent_captions_are_compared_per_photo(tmp_path):
    """A gap between English and independently written captions is paired by photo; pairing them caption by
    caption (line j of one with line j of the other) is refused."""
    import pandas as pd

    from csr_core.analysis import language_gaps

    rows = []
    for p in range(40):
        rows.append({"query_id": f"en:{p}.jpg#0", "rank": 1 if p % 2 else 3, "query_lang": "en"})
        rows += [{"query_id": f"zh:{p}.jpg#{j}", "rank": 1 if (p + j) % 3 else 4, "query_lang": "zh"}
                 for j in range(5)]
    ranks = pd.DataFrame(rows).assign(setting="monolingual", doc_lang="img", direction="t2i", cs_mode="",
                                      cs_langs="", cs_p=float("nan"))
    ranks["image_id"] = ranks["query_id"].str.split(":").str[1].str.split("#").str[0]
    aligned = [frozenset({"en", "de"})]
    gaps = language_gaps(ranks, k=1, alignments=aligned, n_resamples=200)
    row = gaps.set_index("lang").loc["zh"]
    assert row["paired"] == "photo" and row["n"] == 40  # 40 photos, not 200 captions
    photo_en = [float(p % 2) for p in range(40)]
    photo_zh = [sum(1.0 if (p + j) % 3 else 0.0 for j in range(5)) / 5 for p in range(40)]
    assert row["gap"] == pytest.approx(100 * (np.mean(photo_en) - np.mean(photo_zh)))
    with pytest.raises(DataError, match="caption by caption is refused"):
        language_gaps(ranks, k=1, alignments=aligned, pairing="caption")
