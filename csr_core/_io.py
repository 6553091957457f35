"""File primitives every module shares: atomic writes and content hashes (one implementation each).

Atomic: the bytes go to a temp file in the target's folder, are fsynced, and `os.replace` puts them in place, so a
reader sees the old file or the new one, never half of either, and a crash leaves at most a `.tmp` file that no
reader opens. The temp file is removed on any failure.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable

_CHUNK = 1 << 20


def atomic_write(target: str | os.PathLike, write: Callable[[Path], object], *, mode: int | None = 0o644) -> Path:
    """Call `write(tmp_path)` to fill a temp file beside `target`, then move it into place atomically."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)  # mkstemp's files are private; results and heads are ordinary files
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


def atomic_write_bytes(target: str | os.PathLike, data: bytes, **kwargs) -> Path:
    return atomic_write(target, lambda tmp: tmp.write_bytes(data), **kwargs)


def atomic_write_text(target: str | os.PathLike, text: str, **kwargs) -> Path:
    return atomic_write(target, lambda tmp: tmp.write_text(text, encoding="utf-8"), **kwargs)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (hashlib.file_digest where the Python has it); OSError propagates."""
    with open(path, "rb") as fh:
        if hasattr(hashlib, "file_digest"):
            return hashlib.file_digest(fh, "sha256").hexdigest()
        digest = hashlib.sha256()
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
        return digest.hexdigest()
