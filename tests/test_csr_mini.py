"""csr-mini = real towers + projection heads behind the Encoder protocol; heads files are safetensors only."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from csr_core.encoders.base import Encoder
from csr_core.encoders.csr_mini import (
    CsrMiniEncoder,
    ProjectionHeads,
    heads_filename,
    list_csr_mini,
    load_csr_mini,
    parse_csr_mini_name,
    tower_manifest,
)
from csr_core.errors import ModelError

CAPTIONS = ["A black dog runs through the grass .", "Two children play on a beach .", "a man rides a bike"]


@pytest.fixture(scope="module")
def heads_dir(tmp_path_factory) -> Path:
    """Random-init heads saved like trained ones (no trained heads ship yet)."""
    folder = tmp_path_factory.mktemp("heads")
    ProjectionHeads(1280, 384, 64, seed=0).save(folder / "minilm-en-s0", {"arm": "en", "note": "random init"})
    ProjectionHeads(1280, 384, 64, seed=1).save(folder / "minilm-mlcs-de-fr-cs-s0", {"arm": "mlcs-de-fr-cs"})
    ProjectionHeads(1280, 384, 64, kind="mlp", hidden_dim=96, seed=2).save(folder / "minilm-mlcs-de-fr-cs-s1", {})
    ProjectionHeads(1280, 384, 64, seed=3).save(folder / "e5-en-s0", {"arm": "en"})
    (folder / "notes.safetensors").write_bytes(b"not a head file name")  # ignored by the listing
    return folder


@pytest.fixture(scope="module")
def encoder(heads_dir) -> CsrMiniEncoder:
    return load_csr_mini("csr-mini", device="cpu", heads_dir=heads_dir)


@pytest.fixture(scope="module")
def photos(shared_data) -> list[Path]:
    return sorted((shared_data / "flickr8k" / "images").glob("*.jpg"))[:3]


def test_names_parse_and_list(heads_dir):
    assert parse_csr_mini_name("csr-mini") == ("minilm", "en", 0)
    assert parse_csr_mini_name("csr-mini-m:mlcs-de-fr-cs/s2") == ("e5", "mlcs-de-fr-cs", 2)
    assert heads_filename("minilm", "blcs-de", 1) == "minilm-blcs-de-s1.safetensors"
    assert list_csr_mini(heads_dir) == ["csr-mini", "csr-mini:mlcs-de-fr-cs", "csr-mini:mlcs-de-fr-cs/s1", "csr-mini-m"]
    for bad in ("csr-mini:", "csr-mini:DE", "csr-maxi", "csr-mini:en/seed1"):
        with pytest.raises(ModelError, match="not a csr-mini name"):
            parse_csr_mini_name(bad)


def test_missing_heads_error_lists_the_available_ones(heads_dir, tmp_path):
    with pytest.raises(ModelError, match=r"csr-mini:blcs-ar.*csr-mini, csr-mini:mlcs-de-fr-cs"):
        load_csr_mini("csr-mini:blcs-ar", device="cpu", heads_dir=heads_dir)
    with pytest.raises(ModelError, match="none"):
        load_csr_mini("csr-mini", device="cpu", heads_dir=tmp_path)


def test_encoder_protocol_normalisation_and_shapes(encoder, photos):
    assert isinstance(encoder, Encoder)
    assert encoder.name == "csr-mini" and encoder.dim == 64 and encoder.device == "cpu"
    img = encoder.encode_images(photos, batch_size=2)
    txt = encoder.encode_texts(CAPTIONS, lang="en")
    assert img.shape == (3, 64) and txt.shape == (3, 64)
    assert img.dtype == np.float32 and txt.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, atol=1e-5)
    assert encoder.encode_texts([]).shape == (0, 64)


def test_determinism_and_batch_invariance(encoder, photos):
    a = encoder.encode_images(photos, batch_size=1)
    b = encoder.encode_images(photos, batch_size=3)
    np.testing.assert_allclose(a, b, atol=1e-5)
    t1 = encoder.encode_texts(CAPTIONS, batch_size=1)
    t2 = encoder.encode_texts(CAPTIONS, batch_size=64)
    np.testing.assert_allclose(t1, t2, atol=1e-5)
    np.testing.assert_array_equal(encoder.encode_texts(CAPTIONS, batch_size=64), t2)


def test_cached_tower_features_give_the_same_embeddings(encoder, photos):
    feats = encoder.image_tower.encode(photos)
    np.testing.assert_allclose(encoder.encode_image_features(feats), encoder.encode_images(photos), atol=1e-6)
    tfeats = encoder.text_tower.encode(CAPTIONS)
    np.testing.assert_allclose(encoder.encode_text_features(torch.from_numpy(tfeats)), encoder.encode_texts(CAPTIONS), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(n, 1280\)"):
        encoder.encode_image_features(tfeats)


def test_variants_share_towers_and_differ_in_heads(encoder, heads_dir):
    other = load_csr_mini("csr-mini:mlcs-de-fr-cs", device="cpu", heads_dir=heads_dir)
    mlp = load_csr_mini("csr-mini:mlcs-de-fr-cs/s1", device="cpu", heads_dir=heads_dir)
    assert other.image_tower is encoder.image_tower and other.text_tower is encoder.text_tower
    assert mlp.heads.kind == "mlp" and mlp.name == "csr-mini:mlcs-de-fr-cs/s1"
    assert len({encoder.fingerprint, other.fingerprint, mlp.fingerprint}) == 3
    assert not np.allclose(encoder.encode_texts(CAPTIONS[:1]), other.encode_texts(CAPTIONS[:1]))


def test_multilingual_variant_uses_e5(heads_dir):
    enc = load_csr_mini("csr-mini-m", device="cpu", heads_dir=heads_dir)
    assert enc.text_tower.name == "multilingual-e5-small"
    out = enc.encode_texts(["ein Hund rennt", "un chien court"], lang="de")
    assert out.shape == (2, 64)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_heads_round_trip_is_exact(tmp_path, encoder, kind):
    heads = ProjectionHeads(1280, 384, 32, kind=kind, seed=7)
    with torch.no_grad():
        heads.logit_scale.fill_(3.3)
    manifest = {"arm": "en", "seed": 7, **tower_manifest(encoder.image_tower, encoder.text_tower)}
    path = heads.save(tmp_path / "minilm-en-s7", manifest)
    assert path == tmp_path / "minilm-en-s7.safetensors"
    sidecar = json.loads((tmp_path / "minilm-en-s7.json").read_text())
    assert sidecar["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sidecar["manifest"]["text_tower"] == "all-minilm-l6-v2" and sidecar["config"]["kind"] == kind

    loaded = ProjectionHeads.load(tmp_path / "minilm-en-s7")  # extension optional
    assert loaded.manifest == manifest and loaded.config == heads.config
    assert loaded.content_hash() == heads.content_hash()
    assert loaded.logit_scale.item() == pytest.approx(3.3)
    a = CsrMiniEncoder(encoder.image_tower, encoder.text_tower, heads, device="cpu")
    b = CsrMiniEncoder(encoder.image_tower, encoder.text_tower, loaded, device="cpu")
    feats = np.random.default_rng(0).normal(size=(5, 384)).astype(np.float32)
    np.testing.assert_array_equal(a.encode_text_features(feats), b.encode_text_features(feats))
    ifeats = np.random.default_rng(1).normal(size=(4, 1280)).astype(np.float32)
    np.testing.assert_array_equal(a.encode_image_features(ifeats), b.encode_image_features(ifeats))
    assert a.fingerprint == b.fingerprint


def test_heads_init_uses_a_private_rng():
    state = torch.get_rng_state()
    h1 = ProjectionHeads(1280, 384, 16, seed=5)
    assert torch.equal(state, torch.get_rng_state())
    h2 = ProjectionHeads(1280, 384, 16, seed=5)
    h3 = ProjectionHeads(1280, 384, 16, seed=6)
    assert h1.content_hash() == h2.content_hash() != h3.content_hash()


class _Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).touch, ())


def test_pickled_heads_are_refused_and_never_executed(tmp_path):
    heads = ProjectionHeads(1280, 384, 8)
    torch.save(heads.state_dict(), tmp_path / "heads.pt")
    with pytest.raises(ModelError, match="refusing"):
        ProjectionHeads.load(tmp_path / "heads.pt")
    marker = tmp_path / "executed"
    disguised = tmp_path / "minilm-en-s0.safetensors"
    disguised.write_bytes(pickle.dumps({"image_head.weight": _Payload(str(marker))}))
    with pytest.raises(ModelError, match="not a valid safetensors"):
        ProjectionHeads.load(disguised)
    with pytest.raises(ModelError, match="not a valid safetensors"):
        load_csr_mini("csr-mini", device="cpu", heads_dir=tmp_path)
    assert not marker.exists()


def test_foreign_safetensors_and_mismatched_towers_are_model_errors(tmp_path, encoder):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ModelError, match="format"):
        ProjectionHeads.load(tmp_path / "foreign.safetensors")
    with pytest.raises(ModelError, match="width 1280/512"):
        CsrMiniEncoder(encoder.image_tower, encoder.text_tower, ProjectionHeads(1280, 512, 8))
    heads = ProjectionHeads(1280, 384, 8)
    heads.manifest = {"text_tower": "multilingual-e5-small"}
    with pytest.raises(ModelError, match="trained on text tower 'multilingual-e5-small'"):
        CsrMiniEncoder(encoder.image_tower, encoder.text_tower, heads)
    heads.manifest = {"text_tower": "all-minilm-l6-v2", "text_tower_fingerprint": "all-minilm-l6-v2-0000"}
    with pytest.warns(UserWarning, match="all-minilm-l6-v2-0000"):
        CsrMiniEncoder(encoder.image_tower, encoder.text_tower, heads)
