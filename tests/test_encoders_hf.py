"""transformers CLIP and BLIP backends on tiny real models built from configs, saved with save_pretrained and loaded
through the registry by folder (no download). Vectors must equal transformers' own forward passes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from csr_core.encoders.base import Encoder
from csr_core.encoders.registry import load_encoder
from csr_core.errors import CancelledError, ModelError
from testsupport import build_tiny_blip, build_tiny_clip

TEXTS = [
    "the dog runs on the beach",
    "a",
    "zwei Hunde spielen im Schnee",
    "un chien court sur la plage , très vite , sans s'arrêter jamais",
    "Пёс бежит",
    "",
]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-hf-clip"))


@pytest.fixture(scope="module")
def blip_dir(tmp_path_factory) -> Path:
    return build_tiny_blip(tmp_path_factory.mktemp("tiny-hf-blip"))


@pytest.fixture(scope="module")
def photos(shared_data) -> list[Path]:
    return sorted((shared_data / "flickr8k" / "images").glob("*.jpg"))[20:29]


@pytest.fixture(scope="module")
def clip_enc(clip_dir):
    return load_encoder(f"hf:{clip_dir}", device="cpu")


@pytest.fixture(scope="module")
def blip_enc(blip_dir):
    return load_encoder(f"blip:{blip_dir}", device="cpu")


@pytest.mark.parametrize("which", ["clip_enc", "blip_enc"])
def test_contract(which, request, photos):
    enc = request.getfixturevalue(which)
    assert isinstance(enc, Encoder) and enc.device == "cpu" and enc.dim == 16
    img = enc.encode_images(photos, batch_size=16)
    txt = enc.encode_texts(TEXTS, lang="de", batch_size=16)
    for x, n in ((img, len(photos)), (txt, len(TEXTS))):
        assert x.shape == (n, 16) and x.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
        assert np.abs(x[0] - x[1]).max() > 1e-4
    # determinism and batch-size invariance (padding differs per batch: the attention mask must hide it)
    assert np.array_equal(img, enc.encode_images(photos, batch_size=16))
    np.testing.assert_allclose(img, enc.encode_images(photos, batch_size=1), atol=1e-5)
    np.testing.assert_allclose(txt, enc.encode_texts(TEXTS, batch_size=1), atol=1e-5)
    np.testing.assert_allclose(txt, enc.encode_texts(TEXTS, batch_size=4), atol=1e-5)


@pytest.mark.parametrize("which", ["clip_enc", "blip_enc"])
def test_progress_and_cancel(which, request, photos):
    enc = request.getfixturevalue(which)
    calls = []
    enc.encode_images(photos, batch_size=4, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(4, 9), (8, 9), (9, 9)]

    def stop(done, total):
        calls.append(done)
        raise CancelledError("stop")

    calls.clear()
    with pytest.raises(CancelledError):
        enc.encode_texts(TEXTS, batch_size=2, progress=stop)
    assert calls == [2]


def test_clip_equals_transformers(clip_dir, clip_enc, photos):
    import torch
    from PIL import Image
    from transformers import AutoProcessor, CLIPModel

    model = CLIPModel.from_pretrained(clip_dir).eval()
    proc = AutoProcessor.from_pretrained(clip_dir)
    images = [Image.open(p).convert("RGB") for p in photos]
    with torch.no_grad():
        pi = proc(images=images, return_tensors="pt")
        img = model.get_image_features(pixel_values=pi["pixel_values"])
        ti = proc(text=TEXTS, padding=True, return_tensors="pt")
        txt = model.get_text_features(input_ids=ti["input_ids"], attention_mask=ti["attention_mask"])
    img = getattr(img, "pooler_output", img)
    txt = getattr(txt, "pooler_output", txt)
    want_i = torch.nn.functional.normalize(img, dim=-1).numpy()
    want_t = torch.nn.functional.normalize(txt, dim=-1).numpy()
    np.testing.assert_allclose(clip_enc.encode_images(photos, batch_size=4), want_i, atol=1e-5)
    np.testing.assert_allclose(clip_enc.encode_texts(TEXTS, batch_size=4), want_t, atol=1e-5)


def test_blip_equals_itc_scores(blip_dir, blip_enc, photos):
    """Our BLIP vectors reproduce BlipForImageTextRetrieval(use_itm_head=False)'s image-text similarity matrix."""
    import torch
    from PIL import Image
    from transformers import AutoProcessor, BlipForImageTextRetrieval

    model = BlipForImageTextRetrieval.from_pretrained(blip_dir).eval()
    proc = AutoProcessor.from_pretrained(blip_dir)
    images = [Image.open(p).convert("RGB") for p in photos[:5]]
    with torch.no_grad():
        inputs = proc(images=images, text=TEXTS, padding=True, return_tensors="pt")
        out = model(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"],
                    attention_mask=inputs["attention_mask"], use_itm_head=False)
    want = out.itm_score.numpy()  # (n_images, n_texts) cosine similarities
    got = blip_enc.encode_images(photos[:5], batch_size=2) @ blip_enc.encode_texts(TEXTS, batch_size=4).T
    assert want.shape == got.shape == (5, len(TEXTS))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_fingerprints(clip_dir, blip_dir, clip_enc, blip_enc):
    again = load_encoder(f"hf:{clip_dir}", device="cpu")
    assert again.fingerprint == clip_enc.fingerprint  # same folder → same cache key across loads
    assert clip_enc.fingerprint != blip_enc.fingerprint
    assert len(clip_enc.fingerprint) == 64


def test_wrong_backend_for_folder(clip_dir, blip_dir, tmp_path):
    with pytest.raises(ModelError, match="load it as blip:"):
        load_encoder(f"hf:{blip_dir}")
    with pytest.raises(ModelError, match="load it as hf:"):
        load_encoder(f"blip:{clip_dir}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="no readable transformers config"):
        load_encoder(f"hf:{empty}")
