"""Model-name resolution: parsing, offline errors that say what runs here, safe checkpoints, local configs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from csr_core.encoders.backends import BACKENDS
from csr_core.encoders.registry import (
    BackendInfo,
    available_backends,
    list_offline_models,
    load_encoder,
    parse_model_name,
)
from csr_core.errors import ModelError

ASSETS = Path(__file__).parent / "assets"
TINY_JSON = ASSETS / "csr-test-tiny-vit.json"
ARCH = TINY_JSON.stem
TEXTS = ["a dog runs on the beach", "zwei Kinder spielen", "un homme"]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Offline with an empty hub cache, so nothing pretrained can be found whatever this machine has cached."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))


@pytest.fixture(scope="module")
def tiny():
    return load_encoder(f"open_clip-config:{TINY_JSON}", device="cpu")


@pytest.mark.parametrize(
    "name, expect",
    [
        ("open_clip:ViT-B-32/openai", dict(backend="open_clip", kind="tag", arch="ViT-B-32", pretrained="openai")),
        (
            "open_clip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k",
            dict(kind="tag", arch="xlm-roberta-base-ViT-B-32", pretrained="laion5b_s13b_b90k"),
        ),
        ("open_clip:hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", dict(kind="hf-hub", repo="laion/CLIP-ViT-B-32-laion2B-s34B-b79K")),  # noqa: E501
        ("open_clip:ViT-B-32", dict(kind="random", arch="ViT-B-32", pretrained=None)),
        ("open_clip:ViT-B-32@/w/c.safetensors", dict(kind="checkpoint", arch="ViT-B-32", checkpoint="/w/c.safetensors")),  # noqa: E501
        ("open_clip-config:/c/tiny.json", dict(kind="config", path="/c/tiny.json", checkpoint=None)),
        ("open_clip-config:/c/tiny.json@/w/a.pt", dict(kind="config", path="/c/tiny.json", checkpoint="/w/a.pt")),
        ("open_clip:local-dir:/m/folder", dict(kind="local-dir", path="/m/folder")),
        ("hf:openai/clip-vit-base-patch32", dict(backend="hf", kind="hub", repo="openai/clip-vit-base-patch32")),
        ("hf:/models/clip", dict(backend="hf", kind="folder", path="/models/clip")),
        ("blip:Salesforce/blip-itm-base-coco", dict(backend="blip", kind="hub", repo="Salesforce/blip-itm-base-coco")),
        ("blip:./blipdir", dict(backend="blip", kind="folder", path="./blipdir")),
        ("csr-mini", dict(backend="csr-mini", kind="embedded")),
        ("csr-mini-m", dict(backend="csr-mini")),
        ("csr-mini:mlcs-de-fr-cs", dict(backend="csr-mini")),
    ],
)
def test_parse_model_name(name, expect):
    spec = parse_model_name(name)
    assert spec.raw == name
    for k, v in expect.items():
        assert getattr(spec, k) == v, (k, spec)


@pytest.mark.parametrize(
    "bad, match",
    [
        ("", "empty"),
        ("ViT-B-32", "no backend prefix"),
        ("clip:foo/bar", "unknown backend 'clip'"),
        ("open_clip:", "nothing after"),
        ("hf:just-a-name", "org/repo"),
        ("open_clip:ViT-B-32/a/b", "ARCH/TAG"),
        ("open_clip:hf-hub:noslash", "org/repo"),
    ],
)
def test_bad_names(bad, match):
    with pytest.raises(ModelError, match=match):
        parse_model_name(bad)


@pytest.mark.parametrize(
    "name, needs",
    [
        ("open_clip:ViT-B-32/openai", "pretrained weights from hf-hub:timm/vit_base_patch32_clip_224.openai"),
        ("open_clip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k", "hf-hub:xlm-roberta-base"),
        ("open_clip:xlm-roberta-base-ViT-B-32", "text tower's config and tokenizer"),  # random init still needs these
        ("open_clip:hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "open_clip_config.json"),
        ("hf:openai/clip-vit-base-patch32", "hf-hub:openai/clip-vit-base-patch32"),
        ("blip:Salesforce/blip-itm-base-coco", "hf-hub:Salesforce/blip-itm-base-coco"),
    ],
)
def test_offline_resolution_error_is_clear_and_opens_no_connection(offline, monkeypatch, name, needs):
    import socket

    attempts: list[object] = []

    def refuse(self, address):  # records any network attempt (the machine has no network: it would only hang)
        attempts.append(address)
        raise OSError(f"test: no network connection allowed to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    with pytest.raises(ModelError) as ei:
        load_encoder(name)
    msg = str(ei.value)
    assert "cannot be resolved offline" in msg and needs in msg
    assert "HF_HUB_OFFLINE=1" in msg
    runnable = [b.name for b in available_backends() if b.runs_offline_here]
    assert "open_clip" in runnable
    for b in runnable:
        assert f"{b} (" in msg  # the message lists every backend that runs here
    assert "open_clip-config:" in msg  # and how to use local files
    assert attempts == []  # failed before any download attempt, so it cannot wait on a network timeout


def test_unknown_tag_and_arch(offline):
    with pytest.raises(ModelError, match="not a pretrained tag of ViT-B-32.*openai"):
        load_encoder("open_clip:ViT-B-32/no-such-tag")
    with pytest.raises(ModelError, match="unknown open_clip architecture.*ViT-B-32"):
        load_encoder("open_clip:ViT-B-33")


def test_backends_and_offline_models(offline):
    infos = available_backends()
    assert [i.name for i in infos] == ["open_clip", "hf", "blip", "csr-mini"]
    for i in infos:
        assert isinstance(i, BackendInfo) and isinstance(i.runs_offline_here, bool) and i.reason
    by_name = {i.name: i for i in infos}
    assert by_name["open_clip"].runs_offline_here and "0 cached pretrained" in by_name["open_clip"].reason
    models = list_offline_models()
    assert all(isinstance(m, str) for m in models)
    assert not any(m.startswith(("open_clip:", "hf:", "blip:")) for m in models)  # empty hub cache
    assert any(m.startswith("csr-mini") for m in models) == by_name["csr-mini"].runs_offline_here


def test_offline_models_lists_cached_hub_repos(offline, tmp_path, monkeypatch):
    """A hub-cache layout holding a CLIP repo (config + weights) is offered offline; a config without weights is not."""
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    layout = {"acme/tiny-clip": ["config.json", "model.safetensors"], "acme/no-weights": ["config.json"]}
    for repo, files in layout.items():
        snap = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / "abc123"
        snap.mkdir(parents=True)
        (cache / f"models--{repo.replace('/', '--')}" / "refs").mkdir()
        (cache / f"models--{repo.replace('/', '--')}" / "refs" / "main").write_text("abc123")
        for f in files:
            (snap / f).write_text(json.dumps({"model_type": "clip"}) if f == "config.json" else "x")
    models = list_offline_models()
    assert "hf:acme/tiny-clip" in models and "hf:acme/no-weights" not in models


def test_csr_mini_is_delegated_with_its_own_options():
    with pytest.raises(ModelError, match="unknown option.*csr-mini"):
        load_encoder("csr-mini", batch=3)
    names = BACKENDS["csr-mini"].offline_models()
    assert "csr-mini" in names and "csr-mini-m" in names


def test_unknown_option_and_missing_folder():
    with pytest.raises(ModelError, match="unknown option"):
        load_encoder(f"open_clip-config:{TINY_JSON}", colour="blue")
    with pytest.raises(ModelError, match="folder not found"):
        load_encoder("hf:/no/such/folder")
    with pytest.raises(ModelError, match="checkpoint file not found"):
        load_encoder(f"open_clip-config:{TINY_JSON}@/no/such/ckpt.safetensors")


def test_safetensors_checkpoint_gives_identical_vectors(tiny, tmp_path, shared_data):
    from safetensors.torch import save_file

    ckpt = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny.model.state_dict().items()}, str(ckpt))
    photos = sorted((shared_data / "flickr8k" / "images").glob("*.jpg"))[:4]
    want_i, want_t = tiny.encode_images(photos), tiny.encode_texts(TEXTS)
    for name in (f"open_clip-config:{TINY_JSON}@{ckpt}", f"open_clip:{ARCH}@{ckpt}"):
        enc = load_encoder(name, device="cpu")
        assert np.array_equal(enc.encode_images(photos), want_i)
        assert np.array_equal(enc.encode_texts(TEXTS), want_t)
        assert enc.fingerprint == tiny.fingerprint  # same weights + preprocessing → same cache key


def test_plain_torch_checkpoint_loads(tiny, tmp_path):
    import torch

    ckpt = tmp_path / "tiny.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in tiny.model.state_dict().items()}}, ckpt)
    enc = load_encoder(f"open_clip-config:{TINY_JSON}@{ckpt}", device="cpu")
    assert np.array_equal(enc.encode_texts(TEXTS), tiny.encode_texts(TEXTS))


class _Payload:
    """Unpickling this would create a marker file: proof that no code ran if the file is absent."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_checkpoint_with_objects_is_refused(tiny, tmp_path):
    import torch

    marker = tmp_path / "code-ran"
    ckpt = tmp_path / "evil.pt"
    sd = dict(tiny.model.state_dict())
    sd["extra"] = _Payload(str(marker))
    torch.save(sd, ckpt)
    with pytest.raises(ModelError, match="refused"):
        load_encoder(f"open_clip-config:{TINY_JSON}@{ckpt}", device="cpu")
    assert not marker.exists()


def test_wrong_checkpoint_and_bad_configs(tiny, tmp_path):
    from safetensors.torch import save_file

    ckpt = tmp_path / "wrong.safetensors"
    import torch

    save_file({"visual.conv1.weight": torch.zeros(3, 3)}, str(ckpt))
    with pytest.raises(ModelError, match="does not fit"):
        load_encoder(f"open_clip-config:{TINY_JSON}@{ckpt}", device="cpu")
    bad_ext = tmp_path / "w.npz"
    bad_ext.write_bytes(b"xx")
    with pytest.raises(ModelError, match="unsupported file type"):
        load_encoder(f"open_clip-config:{TINY_JSON}@{bad_ext}", device="cpu")

    broken = tmp_path / "broken-cfg.json"
    broken.write_text('{\n  "embed_dim": 32,\n  "vision_cfg": {,\n}\n')
    with pytest.raises(ModelError, match=r"broken-cfg.json, line 3"):
        load_encoder(f"open_clip-config:{broken}")
    partial = tmp_path / "partial-cfg.json"
    partial.write_text(json.dumps({"embed_dim": 32}))
    with pytest.raises(ModelError, match="missing top-level key"):
        load_encoder(f"open_clip-config:{partial}")
    clash = tmp_path / "ViT-B-32.json"  # would shadow the built-in architecture
    shutil.copy(TINY_JSON, clash)
    with pytest.raises(ModelError, match="already registered with a different configuration"):
        load_encoder(f"open_clip-config:{clash}")


def test_open_clip_local_dir(tiny, tmp_path):
    """open_clip's own folder layout (open_clip_config.json + weights) loads; a folder without weights is an error."""
    from safetensors.torch import save_file

    folder = tmp_path / "oc-folder"
    folder.mkdir()
    cfg = json.loads(TINY_JSON.read_text())
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}))
    with pytest.raises(ModelError, match="no weights"):
        load_encoder(f"open_clip:local-dir:{folder}", device="cpu")
    weights = {k: v.contiguous() for k, v in tiny.model.state_dict().items()}
    save_file(weights, str(folder / "open_clip_model.safetensors"))
    enc = load_encoder(f"open_clip:local-dir:{folder}", device="cpu")
    assert np.array_equal(enc.encode_texts(TEXTS), tiny.encode_texts(TEXTS))


def test_a_new_backend_is_one_registry_entry(monkeypatch, tiny):
    """Adding a backend = one `Backend` in BACKENDS: parsing, options, listing, describing and loading follow."""
    from csr_core.encoders.backends import Backend, ModelSpec

    toy = Backend(
        name="toy", grammar="toy:NAME", claims=lambda raw: raw.startswith("toy:"),
        parse=lambda raw: ModelSpec(raw, "toy", "embedded", arch=raw.split(":", 1)[1]),
        missing=lambda spec, opts: [], load=lambda spec, device, opts, offline: tiny,
        options=lambda: frozenset({"colour"}), describe=lambda: BackendInfo("toy", True, "a test backend"),
        offline_models=lambda: ["toy:one"],
    )
    monkeypatch.setitem(BACKENDS, "toy", toy)
    assert parse_model_name("toy:one").arch == "one"
    assert load_encoder("toy:one", colour="red") is tiny
    with pytest.raises(ModelError, match="unknown option.*toy backend"):
        load_encoder("toy:one", size=3)
    assert "toy" in [b.name for b in available_backends()] and "toy:one" in list_offline_models()
    monkeypatch.delitem(BACKENDS, "toy")
    with pytest.raises(ModelError, match="unknown backend 'toy'"):
        parse_model_name("toy:one")
