"""File primitives every module shares: atomic writes, content hashes, text decoding and safetensors headers (one
implementation each).

Atomic: the bytes go to a temp file in the target's folder, are fsynced, and `os.replace` puts them in place, so a
reader sees the old file or the new one, never half of either, and a crash leaves at most a `.tmp` file that no
reader opens. The temp file is removed on any failure.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import hashlib
import os
import zlib
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from csr_core.errors import DataError

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


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp folder beside `target`; on success it is renamed to `target` (which must not exist yet, or is
    replaced when it is an older copy), on failure removed -- so a reader never sees half a folder."""
    import shutil

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


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


def safetensors_layout(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, tuple[tuple[int, ...], str]]]:
    """(metadata, {tensor name: (shape, dtype)}) of a .safetensors file, read through `safetensors.safe_open` without
    loading any tensor. Whatever safetensors rejects (truncated, bad header) propagates as its own exception."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as fh:
        layout = {}
        for name in fh.keys():
            piece = fh.get_slice(name)
            layout[name] = (tuple(int(d) for d in piece.get_shape()), str(piece.get_dtype()))
        return dict(fh.metadata() or {}), layout


# UTF-32 LE first: it starts like UTF-16 LE.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def decode_text(data: bytes, name: str, error: type[DataError] = DataError) -> tuple[str, str]:
    """(text, encoding) of a text file's bytes: gzip by its magic bytes, UTF-8 (BOM or not), UTF-16/32 with a BOM.

    Binary data (NUL bytes without a UTF-16/32 BOM) and invalid bytes raise `error` naming `name` and the line."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise error(f"{name} looks gzip-compressed but cannot be decompressed: {exc}") from exc
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), None)
    if encoding is None:
        encoding = "utf-8"
        if b"\x00" in data[:65536]:
            raise error(f"{name} looks binary (NUL bytes), not text; give a UTF-8 text file")
    try:
        return data.decode(encoding), encoding
    except UnicodeDecodeError as exc:
        line = data[: exc.start].decode(encoding, errors="replace").count("\n") + 1
        raise error(f"{name} is not valid {encoding} text (byte 0x{data[exc.start]:02x} at line {line}); save it as "
                    "UTF-8 (or UTF-16 with a BOM)") from exc
