"""A warm evaluation that never builds the model: encoder fingerprints remembered against their inputs' identity.

An encoder's fingerprint hashes its built weights, transform and tokenizer, so computing it means importing torch and
open_clip and building the model (~6 s of a warm run whose vectors are all cached). After a model has been built once,
its fingerprint (and the traits the guards read: dimension, language invariance, training photos) is stored under the
identity of everything it was built from: the model name and options, the `stat` identity of each local file it reads
(path, size, inode, mtime and ctime: any rewrite changes ctime), and the versions of the packages that build it. A
later run with the same identity gets a `LazyEncoder` that answers from the memo and builds the real encoder only when
a vector is missing from the cache — and then checks that the built fingerprint is the remembered one.

Only names whose weights are local files qualify (open_clip `ARCH@file` and `config.json@file`); a pretrained tag, a
hub repo or random weights always load as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Callable

from csr_core import _io
from csr_core.errors import CSRError, ModelError

MEMO_VERSION = 1
_PACKAGES = ("open_clip_torch", "torch", "timm", "safetensors")
_CODE = ("open_clip_backend.py", "common.py", "backends.py", "memo.py")


def _local_files(name: str) -> list[Path] | None:
    """The files an encoder of `name` is built from, or None when its identity is not local files alone."""
    from csr_core.encoders.registry import parse_model_name

    try:
        spec = parse_model_name(name)
    except CSRError:
        return None
    if spec.backend != "open_clip" or not spec.checkpoint or spec.kind not in ("checkpoint", "config"):
        return None
    files = [spec.checkpoint] + ([spec.path] if spec.kind == "config" and spec.path else [])
    return [Path(f).expanduser() for f in files]


def _identity(name: str, opts: dict[str, Any]) -> dict[str, Any] | None:
    files = _local_files(name)
    if files is None:
        return None
    stats = []
    for path in files:
        try:
            st = os.stat(path)
        except OSError:
            return None  # the loader will name the missing file
        stats.append([str(path.resolve()), st.st_size, st.st_ino, st.st_dev, st.st_mtime_ns, st.st_ctime_ns])
    from csr_core.embed_cache import KEY_VERSION
    from csr_core.results import package_versions

    versions = package_versions(_PACKAGES)

    return {"memo": MEMO_VERSION, "cache_keys": KEY_VERSION, "name": name,
            "options": json.loads(json.dumps(opts, sort_keys=True, default=str)), "files": stats,
            "packages": versions, "code": _code_digest()}


def _code_digest() -> str:
    """The code that builds the encoder and computes its fingerprint: an edit there must not reuse a remembered one."""
    digest = hashlib.sha256()
    for module in _CODE:
        digest.update((Path(__file__).parent / module).read_bytes())
    return digest.hexdigest()[:16]


def _memo_path(identity: dict[str, Any]) -> Path:
    from csr_core.paths import cache_dir

    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]
    return cache_dir() / "encoder-memo" / f"{digest}.json"


def remember(name: str, encoder: Any, opts: dict[str, Any] | None = None) -> Path | None:
    """Store `encoder`'s fingerprint and traits under `name`'s identity (no-op for names that do not qualify, for a
    `LazyEncoder`, or when the cache folder cannot be written: the memo is only a shortcut)."""
    from csr_core.encoders.base import traits

    if isinstance(encoder, LazyEncoder):
        return None
    identity = _identity(name, opts or {})
    if identity is None:
        return None
    known = traits(encoder)
    entry = {"identity": identity, "fingerprint": encoder.fingerprint, "name": str(getattr(encoder, "name", name)),
             "dim": int(getattr(encoder, "dim", 0) or 0), "lang_invariant": known.lang_invariant,
             "training_image_ids": list(known.training_image_ids), "training_sources": list(known.training_sources)}
    path = _memo_path(identity)
    try:
        _io.atomic_write_text(path, json.dumps(entry, sort_keys=True))
    except OSError:
        return None
    return path


def lazy_encoder(name: str, build: Callable[[], Any], opts: dict[str, Any] | None = None) -> "LazyEncoder | None":
    """A `LazyEncoder` for `name` when its identity is remembered, else None (then load as usual)."""
    identity = _identity(name, opts or {})
    if identity is None:
        return None
    path = _memo_path(identity)
    if not path.is_file():
        return None
    try:
        entry = _io.read_json_file(path, "encoder memo", ModelError)
    except ModelError:
        return None
    if entry.get("identity") != identity or not isinstance(entry.get("fingerprint"), str):
        return None
    return LazyEncoder(entry, build, path)


class LazyEncoder:
    """An encoder known by its remembered fingerprint and traits; the real one is built on the first encode."""

    def __init__(self, entry: dict[str, Any], build: Callable[[], Any], memo_path: Path) -> None:
        self.fingerprint: str = entry["fingerprint"]
        self.name: str = entry["name"]
        self.dim: int = int(entry.get("dim") or 0)
        self.lang_invariant: bool = bool(entry.get("lang_invariant"))
        self.training_image_ids: list[str] = list(entry.get("training_image_ids") or ())
        self.training_sources: list[str] = list(entry.get("training_sources") or ())
        self._build = build
        self._memo_path = memo_path
        self._real: Any = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        """Whether the real encoder was needed (some vector was not in the cache)."""
        return self._real is not None

    def real(self) -> Any:
        with self._lock:
            if self._real is None:
                encoder = self._build()
                if encoder.fingerprint != self.fingerprint:
                    self._memo_path.unlink(missing_ok=True)
                    raise ModelError(f"{self.name}: the built model's fingerprint differs from the one remembered "
                                     f"in {self._memo_path} (removed); rerun — vectors read under the old one may "
                                     "not belong to this model")
                self._real = encoder
            return self._real

    def encode_texts(self, texts, lang=None, batch_size: int = 64, progress=None):
        return self.real().encode_texts(texts, lang=lang, batch_size=batch_size, progress=progress)

    def encode_images(self, items, batch_size: int = 32, progress=None):
        return self.real().encode_images(items, batch_size=batch_size, progress=progress)

    def __getattr__(self, attribute: str) -> Any:  # anything else an encoder has: from the real one
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        return getattr(self.real(), attribute)
