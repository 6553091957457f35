"""Embedding cache: only missing items are encoded, results are exact and ordered, corruption is caught and healed,
concurrent writers and interrupted runs lose nothing they finished.

The encoder here is a small deterministic hashing model implementing the Encoder protocol (a stand-in for the
*model*, which is not under test) that counts how many items it was asked to encode.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from csr_core.embed_cache import (
    CacheReport,
    CorruptShardWarning,
    EmbeddingCache,
    cached_encode_images,
    cached_encode_texts,
    image_content_hash,
    text_keys,
)
from csr_core.errors import CancelledError, DataError, ModelError


class HashEncoder:
    """Deterministic encoder: each item's vector is seeded by the sha256 of (lang, text) or of the image file's bytes."""

    device = "cpu"

    def __init__(self, dim: int = 16, salt: str = "v1", delay: float = 0.0, lang_invariant: bool = False) -> None:
        self.name = f"hash-test-{salt}"
        self.dim = dim
        self.fingerprint = f"hash-test/{salt}/d{dim}"
        self.delay = delay
        self.lang_invariant = lang_invariant
        self.n_texts = 0
        self.n_images = 0

    def _vec(self, data: bytes) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(data).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
        return v / np.linalg.norm(v)

    def text_vec(self, text: str, lang: str | None) -> np.ndarray:
        prefix = b"" if self.lang_invariant else f"{lang}\0".encode()
        return self._vec(prefix + text.encode("utf-8"))

    def encode_texts(self, texts, lang=None, batch_size=64, progress=None) -> np.ndarray:
        self.n_texts += len(texts)
        if self.delay:
            time.sleep(self.delay)
        return np.stack([self.text_vec(t, lang) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def encode_images(self, items, batch_size=32, progress=None) -> np.ndarray:
        self.n_images += len(items)
        return np.stack([self._vec(Path(p).read_bytes()) for p in items])


def _texts(n: int, start: int = 0) -> list[str]:
    langs = ["a dog runs on grass", "ein Hund läuft", "un chien court", "一只狗在跑", "pes běží"]
    return [f"{langs[i % len(langs)]} #{i}" for i in range(start, start + n)]


def _expected(enc: HashEncoder, texts, lang=None) -> np.ndarray:
    return np.stack([enc.text_vec(t, lang) for t in texts])


def _flickr_images(shared_data: Path, n: int) -> list[Path]:
    paths = sorted((shared_data / "flickr8k" / "images").glob("*.jpg"))[:n]
    assert len(paths) == n
    return paths


# ------------------------------------------------------------------------------------------ basic behaviour


def test_cold_warm_partial_and_duplicates(tmp_path):
    root = tmp_path / "emb"
    enc = HashEncoder()
    texts = _texts(200)

    rep = CacheReport()
    cold = cached_encode_texts(enc, texts, lang="en", cache=EmbeddingCache(root), batch_size=32, report=rep)
    assert enc.n_texts == 200 and rep.encoded == 200 and rep.hits == 0 and rep.ok
    assert cold.dtype == np.float32 and cold.shape == (200, 16)
    assert np.array_equal(cold, _expected(enc, texts, "en"))

    # warm, from a fresh cache object (nothing in-process carried over): nothing encoded, bit-identical rows
    enc.n_texts = 0
    rep = CacheReport()
    warm = cached_encode_texts(enc, texts, lang="en", cache=EmbeddingCache(root), report=rep)
    assert enc.n_texts == 0 and rep.hits == 200 and rep.encoded == 0
    assert np.array_equal(warm, cold)

    # partial overlap, shuffled order: only the 50 new texts are encoded, rows follow the input order
    mixed = _texts(50, start=200) + texts[::-1][:100]
    rng = np.random.default_rng(0)
    mixed = [mixed[i] for i in rng.permutation(len(mixed))]
    out = cached_encode_texts(enc, mixed, lang="en", cache=EmbeddingCache(root))
    assert enc.n_texts == 50
    assert np.array_equal(out, _expected(enc, mixed, "en"))

    # duplicates inside one call are encoded once
    enc.n_texts = 0
    dup = ["fresh x", "fresh y", "fresh x", "fresh x", "fresh y", texts[0]]
    rep = CacheReport()
    out = cached_encode_texts(enc, dup, lang="en", cache=EmbeddingCache(root), report=rep)
    assert enc.n_texts == 2 and rep.unique == 3 and rep.requested == 6 and rep.hits == 1
    assert np.array_equal(out, _expected(enc, dup, "en"))
    assert np.array_equal(out[0], out[2]) and np.array_equal(out[1], out[4])


def test_language_and_fingerprint_are_part_of_the_key(tmp_path):
    cache = EmbeddingCache(tmp_path)
    enc = HashEncoder()
    texts = _texts(10)
    en = cached_encode_texts(enc, texts, lang="en", cache=cache)
    de = cached_encode_texts(enc, texts, lang="de", cache=cache)
    assert enc.n_texts == 20 and not np.array_equal(en, de)

    other = HashEncoder(salt="v2")  # another model (weights/preprocessing) never sees the first one's vectors
    cached_encode_texts(other, texts, lang="en", cache=cache)
    assert other.n_texts == 10

    inv = HashEncoder(salt="inv", lang_invariant=True)  # encoders that ignore lang may share entries across langs
    cached_encode_texts(inv, texts, lang="en", cache=cache)
    cached_encode_texts(inv, texts, lang="de", cache=cache)
    assert inv.n_texts == 10


def test_default_root_is_csr_cache_dir_and_empty_input(tmp_path, monkeypatch):
    monkeypatch.setenv("CSR_CACHE_DIR", str(tmp_path / "cc"))
    cache = EmbeddingCache()
    assert cache.root == tmp_path / "cc" / "embeddings"
    enc = HashEncoder(dim=8)
    out = cached_encode_texts(enc, [], cache=cache)
    assert out.shape == (0, 8) and out.dtype == np.float32
    cached_encode_texts(enc, ["one"])  # cache=None -> default root
    assert cache.stats().entries == 1


def test_get_put_stats_clear(tmp_path):
    cache = EmbeddingCache(tmp_path)
    keys = text_keys("fp-a", ["x", "y", "z"], lang="en")
    vecs = np.arange(12, dtype=np.float32).reshape(3, 4)
    shard = cache.put("fp-a", "text", keys, vecs)
    assert shard is not None and shard.name == hashlib.sha256(shard.read_bytes()).hexdigest() + ".safetensors"
    got = cache.get("fp-a", "text", keys + [text_keys("fp-a", ["w"], lang="en")[0]])
    assert set(got) == set(keys)
    for k, v in zip(keys, vecs):
        assert np.array_equal(got[k], v)
    assert cache.get("fp-a", "image", keys) == {}  # kinds are separate
    cache.put("fp-b", "text", keys[:1], vecs[:1])
    st = cache.stats()
    assert (st.entries, st.shards, st.fingerprints, st.corrupt_files) == (4, 2, 2, 0)
    assert st.bytes == sum(p.stat().st_size for p in tmp_path.rglob("*.safetensors"))
    assert cache.stats("fp-b").entries == 1
    cache.clear("fp-a")
    assert cache.get("fp-a", "text", keys) == {} and cache.stats().entries == 1
    cache.clear()
    assert cache.stats().entries == 0
    with pytest.raises(ModelError):
        cache.put("fp-a", "text", keys, np.full((3, 4), np.nan, np.float32))


def test_bad_inputs_raise_clear_errors(tmp_path):
    enc = HashEncoder()
    with pytest.raises(DataError, match="text #1"):
        cached_encode_texts(enc, ["ok", 3], cache=EmbeddingCache(tmp_path))
    with pytest.raises(DataError, match="nope.jpg"):
        cached_encode_images(enc, [tmp_path / "nope.jpg"], cache=EmbeddingCache(tmp_path))

    class Broken(HashEncoder):
        def encode_texts(self, texts, lang=None, batch_size=64, progress=None):
            return np.zeros((len(texts) + 1, self.dim), np.float32)

    with pytest.raises(ModelError, match="shape"):
        cached_encode_texts(Broken(), ["a", "b"], cache=EmbeddingCache(tmp_path))
    assert EmbeddingCache(tmp_path).stats().entries == 0  # nothing wrong was stored


# ------------------------------------------------------------------------------------------------- corruption


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_corrupt_shard_is_reported_moved_aside_and_recomputed(tmp_path, damage):
    root = tmp_path / "emb"
    enc = HashEncoder()
    texts = _texts(96)
    cached_encode_texts(enc, texts, cache=EmbeddingCache(root), batch_size=16, flush_every=32)  # 3 shards of 32
    shards = sorted((EmbeddingCache(root).kind_dir(enc.fingerprint, "text")).glob("*.safetensors"))
    assert len(shards) == 3
    bad = shards[1]
    data = bytearray(bad.read_bytes())
    if damage == "flip":
        data[len(data) - 7] ^= 0xFF  # inside the vectors: still parses, only the checksum can tell
    elif damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data = bytearray(b"not a safetensors file at all")
    bad.write_bytes(bytes(data))

    enc.n_texts = 0
    rep = CacheReport()
    with pytest.warns(CorruptShardWarning, match=bad.name):
        out = cached_encode_texts(enc, texts, cache=EmbeddingCache(root), report=rep)
    assert np.array_equal(out, _expected(enc, texts))  # right values, not the damaged ones
    assert enc.n_texts == 32 and rep.encoded == 32  # exactly the bad shard's items were recomputed
    assert len(rep.corrupt) == 1 and rep.corrupt[0].path == bad and not rep.ok
    assert rep.corrupt[0].moved_to is not None and rep.corrupt[0].moved_to.exists() and not bad.exists()
    assert EmbeddingCache(root).stats().corrupt_files == 1

    enc.n_texts = 0  # healed: the next run is clean and fully warm
    rep = CacheReport()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptShardWarning)
        cached_encode_texts(enc, texts, cache=EmbeddingCache(root), report=rep)
    assert enc.n_texts == 0 and rep.ok


def test_shard_corrupted_after_being_indexed_in_process(tmp_path):
    """The same cache object re-verifies a shard each time it reads vectors from it."""
    cache = EmbeddingCache(tmp_path)
    enc = HashEncoder()
    texts = _texts(20)
    cached_encode_texts(enc, texts, cache=cache)
    cached_encode_texts(enc, texts, cache=cache)  # indexed in-process now
    (shard,) = cache.kind_dir(enc.fingerprint, "text").glob("*.safetensors")
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0x01
    shard.write_bytes(bytes(data))
    enc.n_texts = 0
    with pytest.warns(CorruptShardWarning):
        out = cached_encode_texts(enc, texts, cache=cache)
    assert enc.n_texts == 20 and np.array_equal(out, _expected(enc, texts))


# ------------------------------------------------------------------------------------------------- interruption


def test_cancel_keeps_completed_batches(tmp_path):
    enc = HashEncoder()
    texts = _texts(100)
    calls = []

    def progress(done, total):
        calls.append((done, total))
        if len(calls) == 3:
            raise CancelledError("user pressed stop")

    with pytest.raises(CancelledError):
        # flush_every larger than the run: the finished batches are written on the way out
        cached_encode_texts(enc, texts, cache=EmbeddingCache(tmp_path), batch_size=10, progress=progress,
                            flush_every=1000)
    assert calls == [(10, 100), (20, 100), (30, 100)]
    enc.n_texts = 0
    seen = []
    out = cached_encode_texts(enc, texts, cache=EmbeddingCache(tmp_path), batch_size=10,
                              progress=lambda d, t: seen.append((d, t)))
    assert enc.n_texts == 70 and seen[-1] == (70, 70)  # progress counts missing items only
    assert np.array_equal(out, _expected(enc, texts))


def _killed_worker(root: str, n_batches: int) -> None:
    """Dies abruptly (os._exit: no cleanup, like SIGKILL) after `n_batches` batches."""
    enc = HashEncoder()

    def progress(done, total):
        if done >= 10 * n_batches:
            os._exit(3)

    cached_encode_texts(enc, _texts(100), cache=EmbeddingCache(root), batch_size=10, progress=progress, flush_every=20)


def test_killed_process_keeps_flushed_shards(tmp_path):
    p = mp.get_context("spawn").Process(target=_killed_worker, args=(str(tmp_path), 5))
    p.start()
    p.join(60)
    assert p.exitcode == 3
    enc = HashEncoder()
    cached_encode_texts(enc, _texts(100), cache=EmbeddingCache(tmp_path), batch_size=10)
    assert enc.n_texts == 60  # 40 items were flushed (every 20); the 5th batch died in memory
    assert not list(tmp_path.rglob(".tmp-*"))


# ------------------------------------------------------------------------------------------------- concurrency


def _writer(root: str, start: int, n: int, barrier, compact_threshold) -> None:
    enc = HashEncoder(delay=0.002)
    barrier.wait(30)
    for _ in range(2):  # second pass: mostly warm reads while the other process is still writing
        out = cached_encode_texts(enc, _texts(n, start), cache=EmbeddingCache(root), batch_size=8, flush_every=8,
                                  compact_threshold=compact_threshold)
        assert np.array_equal(out, _expected(enc, _texts(n, start)))


@pytest.mark.parametrize("compact_threshold", [None, 16], ids=["append-only", "with-compaction"])
def test_two_processes_writing_overlapping_sets(tmp_path, compact_threshold):
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), s, 300, barrier, compact_threshold)) for s in (0, 150)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]

    enc = HashEncoder()
    texts = _texts(450)
    cache = EmbeddingCache(tmp_path)
    keys = text_keys(enc.fingerprint, texts, lang=None)
    got = cache.get(enc.fingerprint, "text", keys)
    assert len(got) == 450
    exp = _expected(enc, texts)
    assert all(np.array_equal(got[k], e) for k, e in zip(keys, exp))
    assert not list(tmp_path.rglob(".tmp-*")) and cache.stats().corrupt_files == 0
    out = cached_encode_texts(enc, texts, cache=cache)
    assert enc.n_texts == 0 and np.array_equal(out, exp)


def test_compact_merges_shards_without_losing_entries(tmp_path):
    cache = EmbeddingCache(tmp_path)
    enc = HashEncoder()
    texts = _texts(64)
    cached_encode_texts(enc, texts, cache=cache, batch_size=8, flush_every=8, compact_threshold=None)
    cached_encode_texts(enc, texts[:16], cache=cache, lang="x", batch_size=8, flush_every=8, compact_threshold=None)
    assert cache.shard_count(enc.fingerprint, "text") == 10
    before = cache.stats().entries
    merged = cache.compact(enc.fingerprint, "text")
    assert cache.shard_count(enc.fingerprint, "text") == 1 and merged.exists()
    assert cache.stats().entries == before == 80
    enc.n_texts = 0
    out = cached_encode_texts(enc, texts, cache=EmbeddingCache(tmp_path))
    assert enc.n_texts == 0 and np.array_equal(out, _expected(enc, texts))
    # automatic compaction once a folder holds more shards than the threshold
    cached_encode_texts(enc, _texts(40, 100), cache=cache, batch_size=4, flush_every=4, compact_threshold=5)
    assert cache.shard_count(enc.fingerprint, "text") == 1 and cache.stats().entries == 120


# ------------------------------------------------------------------------------------------------------ images


def test_image_keys_follow_file_bytes(tmp_path, shared_data):
    src = _flickr_images(shared_data, 4)
    work = tmp_path / "imgs"
    work.mkdir()
    paths = [work / p.name for p in src[:3]]
    for s, d in zip(src, paths):
        shutil.copyfile(s, d)
    cache = EmbeddingCache(tmp_path / "emb")
    enc = HashEncoder()
    first = cached_encode_images(enc, paths, cache=cache, batch_size=2)
    assert enc.n_images == 3
    assert np.array_equal(first, np.stack([enc._vec(p.read_bytes()) for p in src[:3]]))

    # same bytes under another name (and the original shared file): cache hit, content-addressed
    moved = work / "renamed.jpg"
    shutil.copyfile(paths[0], moved)
    again = cached_encode_images(enc, [moved, src[1]], cache=cache)
    assert enc.n_images == 3 and np.array_equal(again, first[:2])

    # edit a file's bytes: only it is re-encoded, with the new content's vector
    shutil.copyfile(src[3], paths[1])
    out = cached_encode_images(enc, paths, cache=cache)
    assert enc.n_images == 4
    assert np.array_equal(out[1], enc._vec(src[3].read_bytes()))
    assert np.array_equal(out[[0, 2]], first[[0, 2]])
    assert image_content_hash(paths[1]) == hashlib.sha256(src[3].read_bytes()).hexdigest()


def test_pil_images_are_keyed_by_pixels(tmp_path):
    from PIL import Image

    a = Image.new("RGB", (8, 8), (10, 20, 30))
    b = Image.new("RGB", (8, 8), (10, 20, 31))
    assert image_content_hash(a) == image_content_hash(a.copy()) != image_content_hash(b)


def test_encoder_traits_have_one_reader():
    """Optional Encoder attributes are read through `traits`: declared values, else the protocol's defaults."""
    from csr_core.encoders.base import Encoder, EncoderTraits, traits

    assert traits(HashEncoder(lang_invariant=True)).lang_invariant
    assert traits(object()) == EncoderTraits()
    declared = HashEncoder()
    declared.training_image_ids = ["a.jpg"]
    assert traits(declared).training_image_ids == ("a.jpg",) and traits(declared).known_training_data

    class Subclassed(Encoder):  # an encoder that subclasses the protocol inherits its defaults
        name, device, fingerprint, dim = "s", "cpu", "s-1", 4

    assert Subclassed().lang_invariant is False and Subclassed().training_sources == ()
