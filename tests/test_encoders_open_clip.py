"""The open_clip backend on a real (tiny, randomly initialised) open_clip model built from tests/assets — no download.

Checks the protocol contract (shapes, float32, unit norm, determinism, batch-size invariance, progress, cancel) and
that our vectors are exactly open_clip's own `encode_image/encode_text` + normalisation on real Flickr8k photos.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from csr_core.encoders.base import Encoder
from csr_core.encoders.registry import load_encoder
from csr_core.errors import CancelledError, CSRError, DataError

ASSETS = Path(__file__).parent / "assets"
TINY_JSON = ASSETS / "csr-test-tiny-vit.json"
TINY_NAME = f"open_clip-config:{TINY_JSON}"
TEXTS = [
    "A black dog is running through the grass .",
    "Ein Mann fährt Fahrrad auf der Straße .",
    "Un enfant joue au ballon sur la plage .",
    "Dvě ženy sedí na lavičce .",
    "",
    "two dogs",
    "Пёс бежит по снегу",
    "一只狗在海滩上奔跑",
    "a " * 100,  # longer than the 77-token context: truncated, not an error
]


@pytest.fixture(scope="module")
def enc():
    return load_encoder(TINY_NAME, device="cpu")


@pytest.fixture(scope="module")
def photos(shared_data) -> list[Path]:
    paths = sorted((shared_data / "flickr8k" / "images").glob("*.jpg"))[:12]
    assert len(paths) == 12
    return paths


def test_protocol_and_metadata(enc):
    assert isinstance(enc, Encoder)
    assert enc.name == TINY_NAME
    assert enc.device == "cpu"
    assert enc.dim == 32  # embed_dim of the tiny config
    fp = enc.fingerprint
    assert isinstance(fp, str) and len(fp) == 64 and fp == enc.fingerprint


def test_images_shape_norm_determinism_and_batching(enc, photos):
    a = enc.encode_images(photos, batch_size=16)
    assert a.shape == (12, 32) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, enc.encode_images(photos, batch_size=16))  # deterministic
    b = enc.encode_images(photos, batch_size=1)
    np.testing.assert_allclose(a, b, atol=1e-5)
    c = enc.encode_images(photos, batch_size=5)  # ragged last batch
    np.testing.assert_allclose(a, c, atol=1e-5)
    # different photos give different vectors (a broken pipeline returning one constant row would pass the above)
    assert np.abs(a[0] - a[1]).max() > 1e-3


def test_texts_shape_norm_determinism_and_batching(enc):
    a = enc.encode_texts(TEXTS, lang="en", batch_size=16)
    assert a.shape == (len(TEXTS), 32) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, enc.encode_texts(TEXTS, batch_size=1), atol=1e-5)
    assert np.array_equal(a, enc.encode_texts(TEXTS, batch_size=16))
    assert np.abs(a[0] - a[1]).max() > 1e-3
    assert enc.encode_texts([]).shape == (0, 32)
    assert enc.encode_images([]).shape == (0, 32)


def test_same_vectors_as_open_clip_directly(enc, photos):
    """An independent open_clip model (same weights) with open_clip's own transform and tokenizer."""
    import open_clip
    import torch
    from PIL import Image

    arch = TINY_JSON.stem
    model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None)
    model.load_state_dict(enc.model.state_dict())
    model.eval()
    tokenizer = open_clip.get_tokenizer(arch)
    with torch.no_grad():
        x = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in photos])
        img = torch.nn.functional.normalize(model.encode_image(x), dim=-1).numpy()
        txt = torch.nn.functional.normalize(model.encode_text(tokenizer(TEXTS)), dim=-1).numpy()
    np.testing.assert_allclose(enc.encode_images(photos, batch_size=5), img, atol=1e-5)
    np.testing.assert_allclose(enc.encode_texts(TEXTS, batch_size=4), txt, atol=1e-5)


def test_pil_images_equal_paths(enc, photos):
    from PIL import Image

    pil = [Image.open(p) for p in photos[:4]]  # not yet RGB-converted: the encoder must do it
    np.testing.assert_allclose(enc.encode_images(pil), enc.encode_images(photos[:4]), atol=1e-6)


def test_progress_calls(enc, photos):
    calls: list[tuple[int, int]] = []
    enc.encode_images(photos, batch_size=5, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(5, 12), (10, 12), (12, 12)]
    calls.clear()
    enc.encode_texts(TEXTS, batch_size=4, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(4, 9), (8, 9), (9, 9)]


@pytest.mark.parametrize("kind", ["images", "texts"])
def test_cancel_between_batches(enc, photos, kind):
    calls = []

    def cancel(done, total):
        calls.append(done)
        raise CancelledError("user pressed stop")

    with pytest.raises(CancelledError):
        if kind == "images":
            enc.encode_images(photos, batch_size=2, progress=cancel)
        else:
            enc.encode_texts(TEXTS, batch_size=2, progress=cancel)
    assert calls == [2]  # stopped after the first batch, nothing further encoded


def test_bad_inputs(enc, tmp_path):
    with pytest.raises(CSRError, match="batch_size"):
        enc.encode_texts(["x"], batch_size=0)
    with pytest.raises(DataError, match="position 1 is NoneType"):
        enc.encode_texts(["ok", None])
    with pytest.raises(DataError, match="one string"):
        enc.encode_texts("a single caption")
    missing = tmp_path / "nope.jpg"
    with pytest.raises(DataError, match="nope.jpg"):
        enc.encode_images([missing])
    not_image = tmp_path / "text.jpg"
    not_image.write_text("not an image")
    with pytest.raises(DataError, match="text.jpg"):
        enc.encode_images([not_image])


def test_pixel_limit_is_passed_through(photos):
    small = load_encoder(TINY_NAME, device="cpu", max_pixels=1000)
    with pytest.raises(DataError, match="pixels"):
        small.encode_images(photos[:1])


def test_fingerprint_tracks_weights_not_instances(enc):
    """A second random init of the same config is a different model: different fingerprint (cache key)."""
    other = load_encoder(TINY_NAME, device="cpu")
    assert other.fingerprint != enc.fingerprint
    other.model.load_state_dict(enc.model.state_dict())
    other._fingerprint = None  # recompute after swapping weights in
    assert other.fingerprint == enc.fingerprint
