"""Content-addressed on-disk embedding cache, so a re-run only encodes what it has never seen.

Layout (under `cache_dir()/embeddings`, or the `root` given)::

    <sha256(fingerprint)[:32]>/fingerprint.json      the full encoder fingerprint, for humans and `stats()`
    <sha256(fingerprint)[:32]>/<kind>/<sha256>.safetensors   immutable shards
    <sha256(fingerprint)[:32]>/<kind>/corrupt/...    shards that failed their checksum, moved aside

Design: **append-only, lock-free**. A writer never edits a file: it writes a new shard to a uniquely named temp
file in the same folder, fsyncs it and `os.replace`s it to `<sha256 of its bytes>.safetensors`. A shard's name *is*
its checksum, so there is no index to keep in step and nothing for two processes to fight over; readers take the
union of all shards (a key present twice, from two writers that raced, holds the same vector). A shard is a
safetensors file (never pickle) with two tensors, `keys` (uint8, n x 32: raw sha256 item keys) and `vectors`
(float32, n x d). A shard whose bytes do not hash to its name, or that does not parse, is reported (a
`CorruptShardWarning` naming the file, plus an entry in the caller's `CacheReport`), moved into `corrupt/`, and its
items count as missing so they are recomputed. `compact()` merges many small shards into one (it writes the merged
shard first, then deletes only the shards it read, so concurrent writers lose nothing).

Item keys are sha256 over (format version, encoder fingerprint, kind, options, content): the text itself for texts
(options: the language, since encoders such as e5 may treat languages differently), the sha256 of the file's
bytes for images (so a moved file still hits and an edited file misses).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from csr_core import _io
from csr_core.errors import CSRError, DataError, ModelError
from csr_core.paths import cache_dir

log = logging.getLogger(__name__)

KEY_VERSION = "csr-embed/1"
SHARD_FORMAT = "csr-embed-shard/1"
DEFAULT_FLUSH_EVERY = 512
DEFAULT_COMPACT_THRESHOLD = 64
_SHARD_RE = re.compile(r"^[0-9a-f]{64}\.safetensors$")
_KIND_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_TMP_PREFIX = ".tmp-"
_STALE_TMP_S = 3600.0

ProgressCallback = Callable[[int, int], None]


class CorruptShardWarning(UserWarning):
    """A cache shard failed its checksum or did not parse; it was moved aside and its items are recomputed."""


class CacheWriteWarning(UserWarning):
    """Finished embeddings could not be stored (disk full, read-only cache): the computation goes on without them."""


@dataclass
class CorruptShard:
    """One shard found corrupt: where it was, why, and where it was moved (None if another process moved it)."""

    path: Path
    reason: str
    moved_to: Path | None


@dataclass
class CacheReport:
    """What one cached call did, so callers (CLI, dashboard) can show hits, work done and any corruption found."""

    requested: int = 0
    unique: int = 0
    hits: int = 0
    encoded: int = 0
    shards_written: list[Path] = field(default_factory=list)
    corrupt: list[CorruptShard] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.corrupt


@dataclass
class CacheStats:
    """Size of the cache: `entries` counts stored rows (a key written twice by racing writers counts twice)."""

    entries: int
    shards: int
    bytes: int
    fingerprints: int
    corrupt_files: int


# --------------------------------------------------------------------------------------------------- keys


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(fingerprint: str, kind: str, options: Any, content: str) -> str:
    payload = json.dumps([KEY_VERSION, fingerprint, kind, options, content], ensure_ascii=False, separators=(",", ":"))
    return _sha256_hex(payload.encode("utf-8"))


def _text_options(encoder: Any, lang: str | None) -> dict[str, Any]:
    """Options that change a text's vector; an encoder may declare `lang_invariant = True` to share entries across langs."""
    from csr_core.encoders.base import traits

    if traits(encoder).lang_invariant:
        return {}
    return {"lang": lang}


def text_keys(fingerprint: str, texts: Sequence[str], lang: str | None = None, options: dict | None = None) -> list[str]:
    """Cache keys of `texts` under `fingerprint`; `options` defaults to `{"lang": lang}` (what `cached_encode_texts` uses)."""
    opts = {"lang": lang} if options is None else options
    out = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise DataError(f"text #{i} is {type(t).__name__}, not str: {t!r:.80}")
        out.append(_key(fingerprint, "text", opts, t))
    return out


def image_keys(fingerprint: str, items: Sequence[Any]) -> list[str]:
    """Cache keys of image items (paths or PIL images) under `fingerprint`, from the files' content hashes."""
    return [_key(fingerprint, "image", {}, image_content_hash(it)) for it in items]


# ------------------------------------------------------------------------------------------- image hashes

_HASH_MEMO: dict[tuple[str, int, int, int], str] = {}
_HASH_LOCK = threading.Lock()


def image_content_hash(item: Any) -> str:
    """Content hash of an image item: file bytes for paths (memoised by path, mtime, size, inode), pixels for PIL images."""
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(item, pil.Image):
        h = hashlib.sha256(f"{item.mode}|{item.size[0]}x{item.size[1]}|".encode())
        h.update(item.tobytes())
        return "pil:" + h.hexdigest()
    if not isinstance(item, (str, os.PathLike)):
        raise DataError(f"image item must be a file path or a PIL image, got {type(item).__name__}: {item!r:.80}")
    path = os.path.abspath(os.fspath(item))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"image file not found: {path}") from None
    except OSError as e:
        raise DataError(f"image file unreadable: {path}: {e}") from None
    memo_key = (path, st.st_mtime_ns, st.st_size, st.st_ino)
    with _HASH_LOCK:
        hit = _HASH_MEMO.get(memo_key)
    if hit is not None:
        return hit
    try:
        from csr_core.images import file_sha256

        digest = str(file_sha256(path))
    except OSError as e:
        raise DataError(f"image file unreadable: {path}: {e}") from None
    with _HASH_LOCK:
        _HASH_MEMO[memo_key] = digest
    return digest


def clear_hash_memo() -> None:
    """Forget memoised image hashes (tests and benchmarks measuring cold hashing)."""
    with _HASH_LOCK:
        _HASH_MEMO.clear()


# ------------------------------------------------------------------------------------------- shard files


def _shard_entries(path: Path) -> int:
    """How many vectors a shard holds, from its safetensors header (no tensor is read)."""
    return int(_io.safetensors_layout(path)[1]["keys"][0][0])


def _decode_shard(path: Path, data: bytes, fingerprint: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Verify the checksum (file name) and parse a shard; raise ValueError saying why it is bad."""
    from safetensors.numpy import load

    digest = _sha256_hex(data)
    if path.name != f"{digest}.safetensors":
        raise ValueError(f"checksum mismatch (bytes hash to {digest[:12]}..., {len(data)} bytes)")
    tensors = load(data)
    meta = _io.safetensors_layout(path)[0]  # the file is content-addressed: these are the bytes just verified
    if meta.get("format") != SHARD_FORMAT:
        raise ValueError(f"unknown shard format {meta.get('format')!r}")
    if meta.get("fingerprint") != fingerprint or meta.get("kind") != kind:
        raise ValueError("shard belongs to another fingerprint/kind")
    keys, vecs = tensors.get("keys"), tensors.get("vectors")
    if keys is None or vecs is None or keys.ndim != 2 or keys.shape[1] != 32 or vecs.ndim != 2:
        raise ValueError("missing or malformed keys/vectors tensors")
    if keys.shape[0] != vecs.shape[0] or keys.dtype != np.uint8 or vecs.dtype != np.float32:
        raise ValueError("keys/vectors shapes or dtypes disagree")
    return keys, vecs


def _atomic_write(folder: Path, name_from_bytes: Callable[[bytes], str], data: bytes) -> Path:
    """Write `data` to a unique temp file in `folder`, fsync, and rename to its final name (atomic on POSIX)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{_TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        final = folder / name_from_bytes(data)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


# ------------------------------------------------------------------------------------------------ cache


class EmbeddingCache:
    """Append-only store of float32 vectors keyed by content hashes, one folder per encoder fingerprint and kind.

    Safe for several processes writing at once (no locks: each write is a new, atomically renamed shard) and for
    threads sharing one instance. Keeps an in-process index of verified shards so repeated lookups stay cheap.
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else cache_dir() / "embeddings"
        self._lock = threading.Lock()
        # shard path -> ((size, mtime_ns), {key bytes: row})
        self._index: dict[Path, tuple[tuple[int, int], dict[bytes, int]]] = {}

    # -- paths

    @staticmethod
    def _check(fingerprint: str, kind: str) -> None:
        if not isinstance(fingerprint, str) or not fingerprint:
            raise ModelError(f"encoder fingerprint must be a non-empty string, got {fingerprint!r}")
        if not isinstance(kind, str) or not _KIND_RE.match(kind):
            raise CSRError(f"cache kind must look like 'text' or 'image', got {kind!r}")

    def fingerprint_dir(self, fingerprint: str) -> Path:
        return self.root / _sha256_hex(fingerprint.encode("utf-8"))[:32]

    def kind_dir(self, fingerprint: str, kind: str) -> Path:
        self._check(fingerprint, kind)
        return self.fingerprint_dir(fingerprint) / kind

    def _shards(self, folder: Path) -> list[Path]:
        try:
            names = sorted(e.name for e in os.scandir(folder) if e.is_file() and _SHARD_RE.match(e.name))
        except FileNotFoundError:
            return []
        return [folder / n for n in names]

    # -- corruption

    def _quarantine(self, path: Path, reason: str, report: CacheReport | None) -> None:
        dest_dir = path.parent / "corrupt"
        target = dest_dir / f"{path.name}.{uuid.uuid4().hex[:8]}"
        dest: Path | None = target
        try:
            dest_dir.mkdir(exist_ok=True)
            os.replace(path, target)
        except FileNotFoundError:
            dest = None  # another process moved or removed it first
        except OSError as e:
            log.error("could not move corrupt shard %s aside (%s); deleting it", path, e)
            path.unlink(missing_ok=True)
            dest = None
        with self._lock:
            self._index.pop(path, None)
        msg = f"corrupt embedding-cache shard {path}: {reason}; " + (
            f"moved to {dest}; its items will be recomputed" if dest else "already removed; its items will be recomputed"
        )
        warnings.warn(msg, CorruptShardWarning, stacklevel=3)
        log.warning(msg)
        if report is not None:
            report.corrupt.append(CorruptShard(path=path, reason=reason, moved_to=dest))

    def _load(self, path: Path, fingerprint: str, kind: str, report: CacheReport | None):
        """Read, verify and index one shard; None if it vanished (compacted away) or was corrupt."""
        try:
            st = os.stat(path)
            data = path.read_bytes()
        except FileNotFoundError:
            with self._lock:
                self._index.pop(path, None)
            return None
        try:
            keys, vecs = _decode_shard(path, data, fingerprint, kind)
        except FileNotFoundError:  # compacted away between the read and the header check: nothing is wrong
            with self._lock:
                self._index.pop(path, None)
            return None
        except Exception as e:  # noqa: BLE001 - any parse failure means the shard is unusable
            self._quarantine(path, f"{type(e).__name__}: {e}", report)
            return None
        with self._lock:
            if path not in self._index or self._index[path][0] != (st.st_size, st.st_mtime_ns):
                self._index[path] = ((st.st_size, st.st_mtime_ns), {k.tobytes(): i for i, k in enumerate(keys)})
            idx = self._index[path][1]
        return idx, vecs

    # -- public API

    def get(
        self, fingerprint: str, kind: str, keys: Iterable[str], report: CacheReport | None = None
    ) -> dict[str, np.ndarray]:
        """Vectors found for `keys` (hex sha256 strings); absent keys are simply missing from the result."""
        folder = self.kind_dir(fingerprint, kind)
        wanted = {bytes.fromhex(k): k for k in keys}
        found: dict[str, np.ndarray] = {}
        for _attempt in range(3):  # relist when a shard vanished mid-lookup (a concurrent compact())
            if not wanted:
                break
            vanished = False
            shards = self._shards(folder)
            with self._lock:
                known = {p: self._index[p][1] for p in shards if p in self._index}
            # shards already indexed in-process first: only those that hold a wanted key get read
            order = [p for p in shards if p in known] + [p for p in shards if p not in known]
            for path in order:
                if not wanted:
                    break
                if path in known and not any(k in known[path] for k in wanted):
                    continue
                loaded = self._load(path, fingerprint, kind, report)
                if loaded is None:
                    vanished = vanished or not path.exists()
                    continue
                idx, vecs = loaded
                hit = [(kb, idx[kb]) for kb in wanted if kb in idx]
                if hit:
                    rows = vecs[[r for _, r in hit]].copy()
                    for (kb, _), row in zip(hit, rows):
                        found[wanted.pop(kb)] = row
            if not vanished:
                break
        return found

    def put(self, fingerprint: str, kind: str, keys: Sequence[str], vectors: np.ndarray) -> Path | None:
        """Store vectors as one new shard (atomic); duplicate keys keep their first row. Returns the shard path."""
        folder = self.kind_dir(fingerprint, kind)
        vecs = np.asarray(vectors)
        if vecs.ndim != 2 or vecs.shape[0] != len(keys):
            raise CSRError(f"put needs a (n, d) array for n={len(keys)} keys, got shape {vecs.shape}")
        if len(keys) == 0:
            return None
        if not np.isfinite(vecs).all():
            raise ModelError(f"refusing to cache non-finite vectors for encoder fingerprint {fingerprint!r:.60}")
        first: dict[bytes, int] = {}
        for i, k in enumerate(keys):
            first.setdefault(bytes.fromhex(k), i)
        rows = list(first.values())
        key_arr = np.frombuffer(b"".join(first.keys()), dtype=np.uint8).reshape(len(rows), 32)
        from safetensors.numpy import save

        data = save(
            {"keys": key_arr, "vectors": np.ascontiguousarray(vecs[rows], dtype=np.float32)},
            metadata={"format": SHARD_FORMAT, "fingerprint": fingerprint, "kind": kind, "created": f"{time.time():.3f}"},
        )
        self._write_fingerprint_note(fingerprint)
        for attempt in range(2):
            try:
                return _atomic_write(folder, lambda b: f"{_sha256_hex(b)}.safetensors", data)
            except FileNotFoundError:  # folder removed by a concurrent clear(): recreate once
                if attempt:
                    raise
        return None

    def _write_fingerprint_note(self, fingerprint: str) -> None:
        note = self.fingerprint_dir(fingerprint) / "fingerprint.json"
        if not note.exists():
            body = json.dumps({"fingerprint": fingerprint, "format": SHARD_FORMAT}, ensure_ascii=False).encode()
            _atomic_write(note.parent, lambda _b: note.name, body)

    def compact(self, fingerprint: str, kind: str, report: CacheReport | None = None) -> Path | None:
        """Merge all shards of (fingerprint, kind) into one; only shards actually merged are deleted afterwards.

        Correct without the lock (readers union whatever exists; writers add new shards); the non-blocking lock just
        stops two processes from merging the same shards twice. Returns None when another process is compacting.
        """
        folder = self.kind_dir(fingerprint, kind)
        from filelock import FileLock, Timeout

        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(folder / ".compact.lock"))
        try:
            lock.acquire(timeout=0)  # one compactor at a time; the others skip (compaction is only housekeeping)
        except Timeout:
            return None
        try:
            return self._compact_locked(folder, fingerprint, kind, report)
        finally:
            lock.release()

    def _compact_locked(self, folder: Path, fingerprint: str, kind: str, report: CacheReport | None) -> Path | None:
        shards = self._shards(folder)
        if len(shards) < 2:
            return shards[0] if shards else None
        merged_keys: list[str] = []
        merged_vecs: list[np.ndarray] = []
        seen: set[bytes] = set()
        used: list[Path] = []
        for path in shards:
            loaded = self._load(path, fingerprint, kind, report)
            if loaded is None:
                continue
            idx, vecs = loaded
            used.append(path)
            take = [(kb, r) for kb, r in idx.items() if kb not in seen]
            seen.update(kb for kb, _ in take)
            if take:
                merged_keys.extend(kb.hex() for kb, _ in take)
                merged_vecs.append(vecs[[r for _, r in take]])
        if not merged_vecs:
            return None
        out = self.put(fingerprint, kind, merged_keys, np.concatenate(merged_vecs))
        for path in used:
            if path != out:
                path.unlink(missing_ok=True)
                with self._lock:
                    self._index.pop(path, None)
        self._remove_stale_tmp(folder)
        return out

    @staticmethod
    def _remove_stale_tmp(folder: Path) -> None:
        """Temp files older than an hour are leftovers of killed writers."""
        now = time.time()
        for p in folder.glob(f"{_TMP_PREFIX}*"):
            try:
                if now - p.stat().st_mtime > _STALE_TMP_S:
                    p.unlink()
            except FileNotFoundError:
                pass

    def shard_count(self, fingerprint: str, kind: str) -> int:
        return len(self._shards(self.kind_dir(fingerprint, kind)))

    def stats(self, fingerprint: str | None = None) -> CacheStats:
        """Entries, shards and bytes on disk (from shard headers; nothing is verified or loaded)."""
        fp_dirs = [self.fingerprint_dir(fingerprint)] if fingerprint is not None else (
            [p for p in self.root.iterdir() if p.is_dir()] if self.root.is_dir() else []
        )
        entries = shards = nbytes = corrupt = nfp = 0
        for fp_dir in fp_dirs:
            if not fp_dir.is_dir():
                continue
            nfp += 1
            for kind_dir in (p for p in fp_dir.iterdir() if p.is_dir()):
                for path in self._shards(kind_dir):
                    try:
                        size = path.stat().st_size
                        entries += _shard_entries(path)
                    except FileNotFoundError:
                        continue
                    except Exception:  # noqa: BLE001 - unreadable header: counted, fixed on next read
                        corrupt += 1
                        size = path.stat().st_size if path.exists() else 0
                    shards += 1
                    nbytes += size
                cdir = kind_dir / "corrupt"
                if cdir.is_dir():
                    corrupt += sum(1 for _ in cdir.iterdir())
        return CacheStats(entries=entries, shards=shards, bytes=nbytes, fingerprints=nfp, corrupt_files=corrupt)

    def clear(self, fingerprint: str | None = None) -> None:
        """Delete one fingerprint's entries, or the whole embeddings cache."""
        target = self.fingerprint_dir(fingerprint) if fingerprint is not None else self.root
        shutil.rmtree(target, ignore_errors=True)
        with self._lock:
            self._index = {p: v for p, v in self._index.items() if not p.is_relative_to(target)}


# ----------------------------------------------------------------------------------------- cached encode


def _fingerprint(encoder: Any) -> str:
    fp = getattr(encoder, "fingerprint", None)
    if not isinstance(fp, str) or not fp:
        raise ModelError(f"encoder {getattr(encoder, 'name', encoder)!r} has no usable `fingerprint` (got {fp!r})")
    return fp


def _cached_encode(
    encoder: Any,
    items: Sequence[Any],
    keys: list[str],
    kind: str,
    encode_batch: Callable[[list[Any]], np.ndarray],
    cache: EmbeddingCache | None,
    batch_size: int,
    progress: ProgressCallback | None,
    report: CacheReport | None,
    flush_every: int,
    compact_threshold: int | None,
) -> np.ndarray:
    """Shared body: dedupe keys, look up, encode missing items batch by batch, persist every `flush_every` items."""
    if batch_size < 1 or flush_every < 1:
        raise CSRError(f"batch_size and flush_every must be >= 1, got {batch_size} and {flush_every}")
    cache = cache if cache is not None else EmbeddingCache()
    report = report if report is not None else CacheReport()
    fp = _fingerprint(encoder)
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    report.requested += len(keys)
    report.unique += len(first)
    try:
        found = cache.get(fp, kind, list(first), report=report)
    except OSError as error:  # CSR_CACHE_DIR a file, an unreadable folder: like a full disk, the work goes on
        _warn_unusable(cache.root, error)
        found = {}
    report.hits += len(found)
    missing = [k for k in first if k not in found]
    total = len(missing)
    buf_keys: list[str] = []
    buf_vecs: list[np.ndarray] = []

    def flush() -> None:
        if buf_keys:
            try:
                shard = cache.put(fp, kind, buf_keys, np.concatenate(buf_vecs))
            except OSError as error:
                # the cache only saves time: a full or read-only disk must not fail the work it would have saved
                _warn_unsaved(f"{len(buf_keys)} {kind} embeddings", cache.root, error)
                shard = None
            if shard is not None:
                report.shards_written.append(shard)
            buf_keys.clear()
            buf_vecs.clear()

    done = 0
    try:
        for start in range(0, total, batch_size):
            bkeys = missing[start : start + batch_size]
            vecs = np.asarray(encode_batch([items[first[k]] for k in bkeys]), dtype=np.float32)
            if vecs.ndim != 2 or vecs.shape[0] != len(bkeys):
                raise ModelError(
                    f"encoder {getattr(encoder, 'name', '?')!r} returned shape {vecs.shape} for {len(bkeys)} {kind} items"
                )
            for k, v in zip(bkeys, vecs):
                found[k] = v
            buf_keys.extend(bkeys)
            buf_vecs.append(vecs)
            done += len(bkeys)
            report.encoded += len(bkeys)
            if len(buf_keys) >= flush_every:
                flush()
            if progress is not None:
                progress(done, total)
    except BaseException as exc:
        # keep completed batches (cancellation, Ctrl-C, an encoder error later on); never mask the original error
        try:
            flush()
        except Exception as e:  # noqa: BLE001
            log.error("could not persist %d finished embeddings after %s: %s", len(buf_keys), type(exc).__name__, e)
        raise
    flush()
    if compact_threshold is not None and total:
        try:
            if cache.shard_count(fp, kind) > compact_threshold:
                cache.compact(fp, kind, report=report)
        except OSError as error:  # housekeeping only: the shards it would merge are all still there
            _warn_unsaved("a compacted shard", cache.root, error)
    if not keys:
        dim = int(getattr(encoder, "dim", 0) or 0)
        return np.zeros((0, dim), dtype=np.float32)
    return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)


def _warn_unusable(root: Path, error: OSError) -> None:
    msg = (f"the embedding cache at {root} cannot be read ({error.strerror or error}); continuing without it "
           "(everything is encoded afresh): set CSR_CACHE_DIR to a writable folder")
    warnings.warn(msg, CacheWriteWarning, stacklevel=3)
    log.warning(msg)


def _warn_unsaved(what: str, root: Path, error: OSError) -> None:
    msg = (f"could not store {what} in the embedding cache at {root} ({error.strerror or error}); continuing "
           "without them (a rerun recomputes them): free disk space or set CSR_CACHE_DIR to a writable folder")
    warnings.warn(msg, CacheWriteWarning, stacklevel=3)
    log.warning(msg)


def cached_encode_texts(
    encoder: Any,
    texts: Sequence[str],
    lang: str | None = None,
    cache: EmbeddingCache | None = None,
    batch_size: int = 64,
    progress: ProgressCallback | None = None,
    *,
    report: CacheReport | None = None,
    flush_every: int = DEFAULT_FLUSH_EVERY,
    compact_threshold: int | None = DEFAULT_COMPACT_THRESHOLD,
) -> np.ndarray:
    """`encoder.encode_texts` through the cache: (n, d) float32 in input order; only unseen, distinct texts are encoded.

    `progress(done, total)` counts missing items after each batch (never called when nothing is missing) and may
    raise `csr_core.errors.CancelledError`; batches finished
    before that are kept on disk (shards are written every `flush_every` items and on any interruption).
    Pass a `CacheReport` as `report` to learn hits, work done and any corrupt shards found.
    """
    texts = list(texts)
    keys = text_keys(_fingerprint(encoder), texts, options=_text_options(encoder, lang))
    return _cached_encode(
        encoder, texts, keys, "text", lambda batch: encoder.encode_texts(batch, lang=lang, batch_size=batch_size),
        cache, batch_size, progress, report, flush_every, compact_threshold,
    )


def cached_encode_images(
    encoder: Any,
    paths: Sequence[Any],
    cache: EmbeddingCache | None = None,
    batch_size: int = 32,
    progress: ProgressCallback | None = None,
    *,
    report: CacheReport | None = None,
    flush_every: int = DEFAULT_FLUSH_EVERY,
    compact_threshold: int | None = DEFAULT_COMPACT_THRESHOLD,
) -> np.ndarray:
    """`encoder.encode_images` through the cache, keyed by file content; same contract as `cached_encode_texts`."""
    items = list(paths)
    keys = image_keys(_fingerprint(encoder), items)
    return _cached_encode(
        encoder, items, keys, "image", lambda batch: encoder.encode_images(batch, batch_size=batch_size),
        cache, batch_size, progress, report, flush_every, compact_threshold,
    )


__all__ = [
    "CacheReport",
    "CacheWriteWarning",
    "CacheStats",
    "CorruptShard",
    "CorruptShardWarning",
    "EmbeddingCache",
    "cached_encode_images",
    "cached_encode_texts",
    "clear_hash_memo",
    "image_content_hash",
    "image_keys",
    "text_keys",
]
