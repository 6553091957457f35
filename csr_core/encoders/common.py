"""Helpers all backends share: device choice, batching with progress/cancel, image loading, checkpoints, fingerprints.

Kept backend-agnostic (torch + numpy only) so open_clip, transformers and csr-mini encoders batch, report progress,
cancel and fingerprint identically — the embedding cache relies on that.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import numpy as np

from csr_core.encoders.base import ImageItem, ProgressCallback, l2_normalise
from csr_core.errors import CSRError, DataError, ModelError

# Bump when the way we turn inputs into vectors changes (batching, pooling, normalisation), so cached vectors made by
# an older pipeline never pass for new ones.
PIPELINE_VERSION = "csr-encoders-1"

# Hash every weight byte up to this total; above it, hash names/shapes/dtypes plus a strided sample of every tensor.
# sha256 runs at ~1 GB/s here, so a ViT-B-32 (0.6 GB) hashes fully in ~0.5 s, while multi-GB models stay fast.
FULL_HASH_LIMIT_BYTES = 1 << 30
SAMPLE_ELEMENTS_PER_TENSOR = 65536

# Probe used to fingerprint a tokenizer by behaviour (vocab, merges, lower-casing, special tokens) without
# depending on how each library stores its files. Mixed scripts so vocab changes in any of them show.
TOKENIZER_PROBE = "A dog runs on the beach. Ein Hund läuft am Strand. Пёс бежит. 一只狗在海滩上奔跑。 ¿Qué? 123"

T = TypeVar("T")
P = TypeVar("P")


def pick_device(device: str | None = None) -> str:
    """`cuda` when available unless the caller names a device; validated so a typo fails here, not mid-batch."""
    import torch

    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ModelError(f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:N' or leave it unset ({e})") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} was asked for but CUDA is not available here; use device='cpu'")
    return str(dev)


def default_image_workers() -> int:
    """Decode/preprocess threads: PIL and torchvision release the GIL, a few threads keep the model fed."""
    return max(1, min(4, os.cpu_count() or 1))


def check_batch_size(batch_size: int) -> int:
    """Reject nonsense early with the value in the message (it may come from a UI field)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise CSRError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def check_texts(texts: Sequence[str]) -> list[str]:
    """Texts as a list of str; a None/number (e.g. a NaN from a half-empty CSV column) is an error, never 'None'."""
    if isinstance(texts, str):
        raise DataError("encode_texts expects a sequence of strings, got one string; wrap it in a list")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise DataError(f"text at position {i} is {type(t).__name__} ({t!r:.60}), not a string")
    return out


def load_image(item: ImageItem, max_pixels: int | None = None):
    """A path goes through `csr_core.images.open_image` (pixel limit, clear errors); a PIL image is used as given."""
    from PIL import Image

    if isinstance(item, Image.Image):
        from csr_core.images import to_rgb

        return to_rgb(item)  # 16-bit, float and transparent modes scaled and composited, not clipped
    if isinstance(item, (str, Path)):
        from csr_core.images import open_image

        return open_image(item) if max_pixels is None else open_image(item, max_pixels=max_pixels)
    raise CSRError(f"an image item must be a file path or a PIL image, got {type(item).__name__}: {item!r:.80}")


def run_batches(
    items: Sequence[T],
    batch_size: int,
    compute: Callable[[list[Any]], np.ndarray],
    dim: int,
    progress: ProgressCallback | None = None,
    prepare: Callable[[T], P] | None = None,
    workers: int = 1,
    normalise: bool = True,
) -> np.ndarray:
    """Encode `items` batch by batch into one float32 (n, dim) array, L2-normalised unless `normalise=False` (towers
    return raw features that heads project).

    `prepare` (decode + preprocess one item) runs in a small thread pool, one batch ahead of `compute`, so image I/O
    overlaps the forward pass without holding more than two batches in memory. `progress(done, total)` runs after
    each batch; if it raises (e.g. CancelledError) pending work is dropped and the error propagates — nothing partial
    is returned.
    """
    batch_size = check_batch_size(batch_size)
    n = len(items)
    out = np.empty((n, dim), dtype=np.float32)
    if n == 0:
        return out
    starts = list(range(0, n, batch_size))

    if prepare is None:
        for s in starts:
            chunk = list(items[s : s + batch_size])
            out[s : s + len(chunk)] = _check_block(compute(chunk), len(chunk), dim, normalise)
            if progress is not None:
                progress(s + len(chunk), n)
        return out

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="csr-prep")
    try:

        def submit(s: int) -> list[Future]:
            return [pool.submit(prepare, it) for it in items[s : s + batch_size]]

        pending = submit(starts[0])
        for i, s in enumerate(starts):
            current = pending
            pending = submit(starts[i + 1]) if i + 1 < len(starts) else []
            prepared = [f.result() for f in current]
            out[s : s + len(prepared)] = _check_block(compute(prepared), len(prepared), dim, normalise)
            if progress is not None:
                progress(s + len(prepared), n)
        return out
    finally:
        pool.shutdown(wait=True, cancel_futures=True)



class PreparedImageBatches:
    """`encode_images` for backends that prepare each image on worker threads (decode + preprocess) and encode the
    stacked tensors in batches: the open_clip and transformers backends differ only in the two hooks."""

    image_workers: int

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def _prepare_image(self, item: ImageItem) -> Any:
        raise NotImplementedError

    def _encode_image_batch(self, tensors: list) -> np.ndarray:
        raise NotImplementedError

    def encode_images(
        self, items: Sequence[ImageItem], batch_size: int = 32, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        return run_batches(items, batch_size, self._encode_image_batch, self.dim, progress,
                           prepare=self._prepare_image, workers=self.image_workers)

def _check_block(block: np.ndarray, rows: int, dim: int, normalise: bool = True) -> np.ndarray:
    block = np.asarray(block, dtype=np.float32)
    if block.shape != (rows, dim):
        raise ModelError(f"encoder returned shape {block.shape} for a batch of {rows}; expected ({rows}, {dim})")
    return l2_normalise(block) if normalise else block


def to_numpy(t) -> np.ndarray:
    """float32 numpy on the CPU from any torch tensor (fp16/bf16/cuda included)."""
    return t.detach().float().cpu().numpy()


# ---------------------------------------------------------------- checkpoints


def safe_load_state_dict(path: str | Path) -> dict:
    """Load weights without executing code: safetensors, or torch.load(weights_only=True) for .pt/.pth/.bin.

    A pickle that needs arbitrary objects is refused (ModelError), never loaded with weights_only=False.
    """
    import torch

    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelError(f"checkpoint file not found: {p}")
    suffix = p.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        sd: Any
        try:
            sd = load_file(str(p), device="cpu")
        except Exception as e:  # safetensors raises its own error types
            raise ModelError(f"checkpoint {p} is not a readable safetensors file: {e}") from e
    elif suffix in (".pt", ".pth", ".bin", ".ckpt"):
        try:
            sd = torch.load(str(p), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise ModelError(
                f"refused to load checkpoint {p}: it is a pickle that needs arbitrary Python objects, which could run "
                f"code. Convert it to safetensors (or a plain tensor state dict) first. Details: {str(e)[:300]}"
            ) from e
        except Exception as e:
            raise ModelError(f"checkpoint {p} could not be read as a torch weights file: {e}") from e
    else:
        raise ModelError(f"checkpoint {p}: unsupported file type {suffix!r}; use .safetensors (or .pt/.pth/.bin)")
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ModelError(f"checkpoint {p} does not hold a state dict of tensors (got {type(sd).__name__})")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


# ---------------------------------------------------------------- fingerprints


def weights_digest(named_tensors: Iterable[tuple[str, Any]], full_limit_bytes: int = FULL_HASH_LIMIT_BYTES) -> str:
    """sha256 over tensor names, shapes, dtypes and bytes (all bytes up to `full_limit_bytes`, else strided samples).

    Above the limit every tensor still contributes SAMPLE_ELEMENTS_PER_TENSOR evenly spaced elements, so any
    fine-tune (which moves nearly every tensor) changes the digest while a multi-GB model hashes in well under a second.
    """
    import torch

    tensors = [(name, t.detach()) for name, t in named_tensors]
    total = sum(t.numel() * t.element_size() for _, t in tensors)
    full = total <= full_limit_bytes
    h = hashlib.sha256(f"full={full};n={len(tensors)}".encode())
    for name, t in tensors:
        h.update(f"|{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        flat = t.reshape(-1)
        if not full and flat.numel() > SAMPLE_ELEMENTS_PER_TENSOR:
            step = flat.numel() // SAMPLE_ELEMENTS_PER_TENSOR
            flat = flat[::step][:SAMPLE_ELEMENTS_PER_TENSOR]
        raw = flat.contiguous().cpu().view(torch.uint8).numpy()
        h.update(memoryview(raw))
    return h.hexdigest()


def module_digest(module) -> str:
    """Digest of a torch module's state dict (parameters and buffers), in state-dict order."""
    return weights_digest(module.state_dict().items())


def tokenizer_probe_ids(tokenize: Callable[[list[str]], Any]) -> str:
    """sha256 of the ids a tokenizer gives the probe sentence: changes with vocab, merges, casing or special tokens."""
    ids = tokenize([TOKENIZER_PROBE])
    arr = np.asarray(ids.cpu().numpy() if hasattr(ids, "cpu") else ids, dtype=np.int64)
    return hashlib.sha256(arr.tobytes()).hexdigest()[:16]


def combine_fingerprint(*parts: str) -> str:
    """One sha256 over the pipeline version and the given parts (name, weights digest, preprocessing ...)."""
    h = hashlib.sha256(PIPELINE_VERSION.encode())
    for part in parts:
        h.update(b"\x00")
        h.update(str(part).encode())
    return h.hexdigest()
