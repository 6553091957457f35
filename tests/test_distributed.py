"""The optional Ray backend on a real local Ray cluster (2 CPUs, 2 workers): sharded embedding gives the same vectors,
in the same order, as the single-process path — tiny open_clip config from tests/assets, real Flickr8k photos.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ray  # noqa: E402 - a test dependency (requirements-dev.txt): missing ray is a failure, not a skip

from csr_core.distributed import RayEncoderPool, ray_available, ray_encode_texts  # noqa: E402
from csr_core.encoders.registry import load_encoder  # noqa: E402
from csr_core.errors import CSRError, ModelError  # noqa: E402

TINY_RANDOM = f"open_clip-config:{Path(__file__).parent / 'assets' / 'csr-test-tiny-vit.json'}"


@pytest.fixture(scope="module")
def cluster():
    """One local Ray for the module (start-up costs seconds); the functions under test must not shut it down."""
    import os

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    """The tiny config with its (random) weights saved once, so every worker loads the same file."""
    from safetensors.torch import save_file

    model = load_encoder(TINY_RANDOM, device="cpu").model
    ckpt = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt))
    return f"{TINY_RANDOM}@{ckpt}"


@pytest.fixture(scope="module")
def single(tiny):
    return load_encoder(tiny, device="cpu")


@pytest.fixture(scope="module")
def flickr(shared_data):
    from csr_core.datasets import load_dataset

    ds = load_dataset("flickr8k", split="all").subset(16, seed=3)
    texts = ds.flat("en").texts[:50]
    assert len(ds.image_paths) == 16 and len(texts) == 50
    return list(ds.image_paths), texts


def test_ray_is_reported_available():
    ok, version = ray_available()
    assert ok and version == ray.__version__


class TestPool:
    """Tests sharing one pool of 2 workers; it is closed after the class (it holds both CPUs of the cluster)."""

    @pytest.fixture(scope="class")
    def pool(self, cluster, tiny):
        with RayEncoderPool(tiny, num_workers=2) as p:
            yield p
        assert not p._workers

    def test_pool_reports_the_encoder(self, pool, single):
        assert pool.fingerprint == single.fingerprint and pool.dim == single.dim == 32

    def test_texts_match_single_process(self, pool, single, flickr):
        _, texts = flickr
        calls = []
        got = pool.encode_texts(texts, lang="en", batch_size=8, shard_size=16,
                                progress=lambda d, t: calls.append((d, t)))
        want = single.encode_texts(texts, batch_size=8)
        assert got.shape == (50, single.dim) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=1e-5)
        # 4 shards finished (in any order), each reported once; rows come back in input order (they differ pairwise)
        assert len(calls) == 4 and calls[-1] == (50, 50) and sorted(d for d, _ in calls) == [d for d, _ in calls]
        assert np.abs(got[0] - got[1]).max() > 1e-3

    def test_images_match_single_process(self, pool, single, flickr):
        paths, _ = flickr
        got = pool.encode_images(paths, batch_size=4, shard_size=4)
        want = single.encode_images(paths, batch_size=4)
        assert got.shape == (16, single.dim)
        np.testing.assert_allclose(got, want, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)

    def test_pool_stands_in_for_the_encoder_with_the_cache(self, pool, single, flickr, tmp_path):
        from csr_core.embed_cache import CacheReport, EmbeddingCache, cached_encode_texts
        from csr_core.encoders.base import Encoder

        assert isinstance(pool, Encoder)
        assert getattr(pool, "lang_invariant", False) == getattr(single, "lang_invariant", False)
        _, texts = flickr
        sample = list(dict.fromkeys(texts))[:20]  # distinct captions: each is encoded once, then read back
        assert len(sample) >= 10
        cache, report = EmbeddingCache(tmp_path), CacheReport()
        got = cached_encode_texts(pool, sample, lang="en", cache=cache, batch_size=8, report=report)
        assert report.encoded == len(sample)
        # same fingerprint, so the single-process encoder reads the pool's vectors straight from the cache
        again = CacheReport()
        from_cache = cached_encode_texts(single, sample, lang="en", cache=cache, report=again)
        np.testing.assert_array_equal(from_cache, got)
        assert again.hits == len(sample) and again.encoded == 0
        np.testing.assert_allclose(got, single.encode_texts(sample, batch_size=8), atol=1e-5)

    def test_more_workers_than_the_cluster_holds_fail_fast(self, pool, tiny):
        with pytest.raises(ModelError, match="exceed this Ray cluster"):
            RayEncoderPool(tiny, num_workers=3)


def test_caller_started_ray_is_left_running(cluster):
    import time

    assert ray.is_initialized()
    deadline = time.monotonic() + 30  # killed actors hand their CPUs back asynchronously
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU") == 2  # the closed pool's workers are gone


def test_workers_with_different_weights_are_refused(cluster):
    # a random-init name builds different weights in every process: refusing it is what keeps vectors comparable
    with pytest.raises(ModelError, match="different weights"):
        ray_encode_texts(TINY_RANDOM, ["a dog", "a cat"], num_workers=2)


def test_worker_errors_surface_as_model_errors(cluster, tmp_path):
    with pytest.raises(ModelError, match="Ray workers could not load") as info:
        ray_encode_texts(f"open_clip-config:{tmp_path / 'missing.json'}", ["a dog"], num_workers=1)
    assert "missing.json" in str(info.value)


def test_bad_arguments_fail_before_any_work(cluster):
    with pytest.raises(CSRError, match="num_workers"):
        ray_encode_texts(TINY_RANDOM, ["a"], num_workers=0)
    with pytest.raises(CSRError, match="shard_size"):
        ray_encode_texts(TINY_RANDOM, ["a"], shard_size=0)
    with pytest.raises(CSRError):
        ray_encode_texts(TINY_RANDOM, "one string, not a list")


def test_eval_backend_ray_lands_the_same_rows_as_a_local_eval(cluster, tiny, shared_data, tmp_path, monkeypatch,
                                                              capsys):
    """`python -m csr_core eval --backend ray`: the same run, its vectors encoded by Ray actors."""
    from csr_core.cli import main
    from csr_core.results import KEY_COLUMNS, ResultsStore

    monkeypatch.setenv("CSR_CACHE_DIR", str(tmp_path / "cache-ray"))
    argv = ["eval", "--model", tiny, "--dataset", "flickr8k-multi30k", "--max-images", "16", "--langs", "en,de",
            "--quiet"]
    assert main([*argv, "--backend", "ray", "--workers", "2", "--out", str(tmp_path / "ray")]) == 0
    assert ray.is_initialized()  # the command used the running cluster and left it running
    monkeypatch.setenv("CSR_CACHE_DIR", str(tmp_path / "cache-local"))
    assert main([*argv, "--out", str(tmp_path / "local")]) == 0
    keys = [c for c in KEY_COLUMNS if c != "run_id"]

    def rows(folder):
        return ResultsStore(folder).load().drop(columns=["run_id"]).sort_values(keys).reset_index(drop=True)

    remote, local = rows(tmp_path / "ray"), rows(tmp_path / "local")
    assert len(remote) > 0 and remote[keys].equals(local[keys])
    np.testing.assert_allclose(remote["value"], local["value"], atol=100 / 16 + 1e-9)  # at most one query apart
    assert (remote["value"] == local["value"]).mean() > 0.9
    capsys.readouterr()
    assert main([*argv, "--workers", "3", "--out", str(tmp_path / "x")]) == 2
    assert "--workers and --ray-address apply to --backend ray only" in capsys.readouterr().err
