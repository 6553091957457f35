"""Optional Ray backend: shard embedding across workers (processes, machines, GPUs), same vectors as one process.

When to use it: a gallery too big for one process in the time you have — Crossmodal-3600 x 36 languages, LAION-scale
image sets, many models at once — on a machine with many cores/GPUs or a Ray cluster. On a laptop or this 2-core box
one process is faster (Ray start-up and a model copy per worker cost seconds and memory); see docs/performance.md.

Each worker is a Ray actor that loads the encoder *by registry name* (so every worker builds the same weights and
checks the same fingerprint), receives contiguous shards of the inputs and returns their vectors; the driver puts
them back in input order. Image items are sent as paths, so on a multi-machine cluster the files must be at the same
path on every node (a shared file system), or pass PIL images. Ray is optional: `pip install ray`.

    from csr_core.distributed import RayEncoderPool, ray_encode_texts
    vecs = ray_encode_texts("csr-mini", captions, num_workers=8)   # starts a local Ray if none is running
    with RayEncoderPool("open_clip:ViT-B-32@/w/ckpt.safetensors", num_workers=4) as pool:   # load once, use twice
        img, txt = pool.encode_images(paths), pool.encode_texts(captions, lang="en")
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from csr_core.encoders.base import Encoder
from csr_core.errors import CSRError, ModelError

ProgressCallback = Callable[[int, int], None]

# Environment forwarded to workers so they resolve models and caches exactly as the driver does.
_FORWARD_ENV_PREFIXES = ("CSR_", "HF_", "TRANSFORMERS_", "OPEN_CLIP", "TORCH_HOME", "XDG_CACHE_HOME")
_REPO_ROOT = str(Path(__file__).resolve().parents[1])


def ray_available() -> tuple[bool, str]:
    """(True, version) when Ray imports here, else (False, why) — for skips, the UI and clear errors."""
    try:
        import ray
    except ImportError as e:
        return False, f"ray is not installed ({e}); pip install ray"
    return True, str(getattr(ray, "__version__", "?"))


def _ray():
    ok, why = ray_available()
    if not ok:
        raise ModelError(f"the Ray backend needs Ray: {why}")
    import ray

    return ray


def _worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARD_ENV_PREFIXES)}
    env["TOKENIZERS_PARALLELISM"] = "false"
    # Make csr_core importable in workers even when it is run from a checkout rather than installed.
    path = os.environ.get("PYTHONPATH", "")
    env["PYTHONPATH"] = _REPO_ROOT + (os.pathsep + path if path else "")
    return env


def _check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise CSRError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class _EncoderWorker:
    """Body of the Ray actor: one encoder per worker process, torch limited to the CPUs Ray gave the worker."""

    def __init__(self, encoder_name: str, device: str | None, opts: dict, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        from csr_core.encoders.registry import load_encoder

        self.encoder = load_encoder(encoder_name, device=device, **opts)

    def fingerprint(self) -> str:
        return self.encoder.fingerprint

    def dim(self) -> int:
        return int(self.encoder.dim)

    def attributes(self) -> dict:
        from dataclasses import asdict

        from csr_core.encoders.base import traits

        return asdict(traits(self.encoder))

    def encode_texts(self, start: int, texts: list[str], lang: str | None, batch_size: int):
        return start, self.encoder.encode_texts(texts, lang=lang, batch_size=batch_size)

    def encode_images(self, start: int, items: list, batch_size: int):
        return start, self.encoder.encode_images(items, batch_size=batch_size)


def _start(ray, num_workers: int, address: str | None) -> bool:
    """Connect to `address` or start a local Ray with `num_workers` CPUs; True when this call started it."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home from a benchmark or a test
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_workers, **kwargs)
    return True


class RayEncoderPool(Encoder):
    """`num_workers` Ray actors each holding the encoder `encoder_name`; encode many inputs without reloading it.

    Use as a context manager (or call `close()`): the actors are killed on exit, and a Ray this pool started
    itself (none was initialised and no `address` was given) is shut down. The constructor loads the model in every
    worker and refuses workers whose weights differ (fingerprints), e.g. a random-init name, where each process
    would draw different weights. `fingerprint` and `dim` are the encoder's, and the pool implements the `Encoder`
    protocol (`name`, `device`, `encode_texts`, `encode_images`), so it can stand in for an encoder anywhere —
    `run_evaluation(config, encoder=pool)`, `cached_encode_texts(pool, ...)` — with cache lookups in the driver and
    only the misses sent to the workers.
    """

    def __init__(
        self,
        encoder_name: str,
        num_workers: int = 2,
        *,
        device: str | None = None,
        cpus_per_worker: float = 1,
        gpus_per_worker: float = 0,
        encoder_opts: dict | None = None,
        address: str | None = None,
        shutdown: bool | None = None,
        start_timeout_s: float = 300.0,
    ) -> None:
        self._ray = ray = _ray()
        self.encoder_name = self.name = encoder_name
        self.device = f"ray:{device or 'auto'}"
        self.num_workers = _check_positive("num_workers", num_workers)
        self._started = _start(ray, self.num_workers, address)
        self._shutdown = shutdown
        self._workers: list = []
        try:
            _check_capacity(ray, self.num_workers, cpus_per_worker, gpus_per_worker)
            actor_cls = ray.remote(_EncoderWorker).options(
                num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, runtime_env={"env_vars": _worker_env()}
            )
            threads = max(1, int(cpus_per_worker))
            opts = dict(encoder_opts or {})
            self._workers = [actor_cls.remote(encoder_name, device, opts, threads) for _ in range(self.num_workers)]
            try:
                fps = ray.get([w.fingerprint.remote() for w in self._workers], timeout=start_timeout_s)
                dims = ray.get([w.dim.remote() for w in self._workers], timeout=start_timeout_s)
            except ray.exceptions.GetTimeoutError as e:
                free = ray.available_resources()
                raise ModelError(
                    f"{self.num_workers} Ray worker(s) for {encoder_name!r} did not start within {start_timeout_s:g} s "
                    f"(free now: {free.get('CPU', 0):g} CPU, {free.get('GPU', 0):g} GPU; each worker needs "
                    f"{cpus_per_worker:g} CPU, {gpus_per_worker:g} GPU). Close other pools or use fewer workers."
                ) from e
            except ray.exceptions.RayError as e:
                raise ModelError(f"Ray workers could not load {encoder_name!r}: {_cause(e)}") from e
            if len(set(fps)) != 1:
                raise ModelError(
                    f"Ray workers built different weights for {encoder_name!r} (fingerprints {sorted(set(fps))}): a "
                    "random-init name draws new weights in every process — save them to a checkpoint and use "
                    "NAME@/path/ckpt.safetensors; on a cluster check every node has the same files and packages"
                )
        except BaseException:
            self.close()
            raise
        self._fingerprint: str = fps[0]
        self._dim: int = int(dims[0])
        for attr, value in ray.get(self._workers[0].attributes.remote()).items():
            setattr(self, attr, value)  # the Encoder traits: lang_invariant changes cache keys, training ids the guard

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def dim(self) -> int:
        return self._dim

    def __enter__(self) -> RayEncoderPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Kill the actors; shut Ray down if this pool started it (or `shutdown=True`)."""
        ray = self._ray
        for w in self._workers:
            try:
                ray.kill(w)
            except Exception:  # noqa: BLE001 - an actor that already died needs no killing
                pass
        self._workers = []
        if ray.is_initialized() and ((self._shutdown is None and self._started) or self._shutdown):
            ray.shutdown()

    def encode_texts(self, texts: Sequence[str], lang: str | None = None, batch_size: int = 64,
                     progress: ProgressCallback | None = None, *, shard_size: int | None = None) -> np.ndarray:
        """Same vectors as `encoder.encode_texts(texts, lang, batch_size)` in one process (float rounding aside)."""
        from csr_core.encoders.common import check_texts

        return self._run("text", check_texts(texts), batch_size, shard_size, lang, progress)

    def encode_images(self, items: Sequence[Any], batch_size: int = 32, progress: ProgressCallback | None = None, *,
                      shard_size: int | None = None) -> np.ndarray:
        """Same vectors as `encoder.encode_images(items)`; paths must be readable on every node."""
        items = [str(it) if isinstance(it, Path) else it for it in items]
        return self._run("image", items, batch_size, shard_size, None, progress)

    def _run(self, kind: str, items: list, batch_size: int, shard_size: int | None, lang: str | None,
             progress: ProgressCallback | None) -> np.ndarray:
        ray = self._ray
        if not self._workers:
            raise CSRError("this RayEncoderPool is closed")
        batch_size = _check_positive("batch_size", batch_size)
        n = len(items)
        if shard_size is None:  # ~4 shards per worker balances load; whole batches keep batching as in one process
            per = math.ceil(n / (4 * self.num_workers) / batch_size) * batch_size if n else batch_size
            shard_size = max(batch_size, per)
        shard_size = _check_positive("shard_size", shard_size)
        out = np.empty((n, self.dim), dtype=np.float32)
        pending: dict = {}
        for i, start in enumerate(range(0, n, shard_size)):
            chunk = items[start : start + shard_size]
            w = self._workers[i % self.num_workers]
            ref = (w.encode_texts.remote(start, chunk, lang, batch_size) if kind == "text"
                   else w.encode_images.remote(start, chunk, batch_size))
            pending[ref] = len(chunk)
        done = 0
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                rows = pending.pop(ready[0])
                try:
                    start, vecs = ray.get(ready[0])
                except ray.exceptions.RayError as e:
                    raise ModelError(f"a Ray worker failed while encoding {kind}s with {self.encoder_name!r}: "
                                     f"{_cause(e)}") from e
                vecs = np.asarray(vecs, dtype=np.float32)
                if vecs.shape != (rows, self.dim):
                    raise ModelError(f"a Ray worker returned shape {vecs.shape} for {rows} {kind}s")
                out[start : start + rows] = vecs
                done += rows
                if progress is not None:
                    progress(done, n)  # may raise CancelledError: the remaining shards are cancelled below
        except BaseException:
            for ref in pending:
                ray.cancel(ref)
            raise
        return out


def _check_capacity(ray, num_workers: int, cpus: float, gpus: float) -> None:
    """Fail at once when the whole cluster could never host the workers (Ray would wait for them forever)."""
    total = ray.cluster_resources()
    need_cpu, need_gpu = num_workers * cpus, num_workers * gpus
    if need_cpu > total.get("CPU", 0) + 1e-9 or need_gpu > total.get("GPU", 0) + 1e-9:
        raise ModelError(
            f"{num_workers} worker(s) x ({cpus:g} CPU, {gpus:g} GPU) exceed this Ray cluster "
            f"({total.get('CPU', 0):g} CPU, {total.get('GPU', 0):g} GPU): use fewer workers or a bigger cluster"
        )


def _cause(err: BaseException) -> str:
    """The worker-side error message (Ray wraps it in RayTaskError / ActorDiedError)."""
    cause = getattr(err, "cause", None)
    return f"{type(cause).__name__}: {cause}" if cause is not None else f"{type(err).__name__}: {err}"


def ray_encode_texts(
    encoder_name: str,
    texts: Sequence[str],
    num_workers: int = 2,
    lang: str | None = None,
    batch_size: int = 64,
    *,
    shard_size: int | None = None,
    device: str | None = None,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    encoder_opts: dict | None = None,
    address: str | None = None,
    shutdown: bool | None = None,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """`load_encoder(encoder_name).encode_texts(texts, lang)` sharded over `num_workers` Ray actors; (n, d) float32.

    Starts a local Ray (num_cpus = num_workers) unless one is initialised or `address` names a cluster, and shuts
    it down afterwards only if it started it (override with `shutdown`). Use `gpus_per_worker=1` (and
    device="cuda") on a multi-GPU node. `progress(done, total)` runs in the driver as shards finish.
    """
    from csr_core.encoders.common import check_batch_size, check_texts

    texts = check_texts(texts)
    check_batch_size(batch_size)
    if shard_size is not None:
        _check_positive("shard_size", shard_size)
    with RayEncoderPool(encoder_name, num_workers, device=device, cpus_per_worker=cpus_per_worker,
                        gpus_per_worker=gpus_per_worker, encoder_opts=encoder_opts, address=address,
                        shutdown=shutdown) as pool:
        return pool.encode_texts(texts, lang=lang, batch_size=batch_size, shard_size=shard_size, progress=progress)


def ray_encode_images(
    encoder_name: str,
    items: Sequence[Any],
    num_workers: int = 2,
    batch_size: int = 32,
    *,
    shard_size: int | None = None,
    device: str | None = None,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    encoder_opts: dict | None = None,
    address: str | None = None,
    shutdown: bool | None = None,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """`load_encoder(encoder_name).encode_images(items)` sharded over Ray actors; paths must be readable on every
    node. Same options and start/shutdown rules as `ray_encode_texts`."""
    from csr_core.encoders.common import check_batch_size

    check_batch_size(batch_size)
    if shard_size is not None:
        _check_positive("shard_size", shard_size)
    with RayEncoderPool(encoder_name, num_workers, device=device, cpus_per_worker=cpus_per_worker,
                        gpus_per_worker=gpus_per_worker, encoder_opts=encoder_opts, address=address,
                        shutdown=shutdown) as pool:
        return pool.encode_images(items, batch_size=batch_size, shard_size=shard_size, progress=progress)


__all__ = ["RayEncoderPool", "ray_available", "ray_encode_images", "ray_encode_texts"]
