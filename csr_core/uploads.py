"""Files a browser sends: one private folder per session, plain file names only, size and type limits.

A shared lab server must never let an upload name a path (``../../x``, ``/etc/passwd``), fill the disk, or be run:
uploads are stored as bytes under a fresh ``0700`` temp folder and later read only by the text, image and
safetensors parsers, which refuse anything else. Nothing here imports, executes or unpickles what a user sends.

Typed paths (a dataset folder, an image root) go through `check_user_path`, which resolves symlinks and ``..`` and
accepts only paths inside folders the server allows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO, Union

from csr_core import _io
from csr_core.errors import DataError

#: Default cap on one upload. Streamlit's own `server.maxUploadSize` (default 200 MB) is a second, coarser fence.
MAX_UPLOAD_BYTES = 50 * 2**20
#: Cap on what a gzip upload may inflate to: the compressed size alone would let a 50 MiB upload take ~50 GB of the
#: shared server's memory when it is read (MUSE's largest lexicon is ~3 MB of text).
MAX_UPLOAD_INFLATED_BYTES = 256 * 2**20
LEXICON_SUFFIXES: tuple[str, ...] = (".txt", ".dict", ".tsv", ".gz")
CAPTION_SUFFIXES: tuple[str, ...] = (".txt", ".jsonl", ".json", ".gz")
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp")
MAX_NAME_BYTES = 255
_CHUNK = 1 << 20
_PART_PREFIX = ".upload-"

UploadData = Union[bytes, bytearray, memoryview, BinaryIO]


def new_session_dir(root: str | os.PathLike | None = None) -> Path:
    """A fresh folder only this server user can read (mode 0700), one per browser session."""
    return Path(tempfile.mkdtemp(prefix="csr-session-", dir=root))


def remove_session_dir(session_dir: str | os.PathLike) -> None:
    """Delete a session's uploads (session ended); missing folders are fine."""
    shutil.rmtree(session_dir, ignore_errors=True)


def safe_upload_path(session_dir: str | os.PathLike, filename: str) -> Path:
    """Where upload `filename` may be stored inside `session_dir`; DataError for anything but a plain file name.

    Refused: empty names, path separators (``../../x``, ``/abs``, ``a\\b``), names starting with '.', drive letters
    or NTFS streams (':'), control and bidi characters (names that display as something else), names over 255
    bytes. Refusing, not rewriting, keeps the message honest: the user learns which name was wrong.
    """
    if not isinstance(filename, str) or not filename.strip():
        raise DataError(f"upload name {filename!r} is empty; give the file a name such as en-de.txt")
    shown = repr(filename[:120])
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in filename):  # control and bidi/format characters
        raise DataError(f"upload name {shown} contains control or formatting characters; rename the file")
    if "/" in filename or "\\" in filename:
        raise DataError(f"upload name {shown} contains a path; only a plain file name (no '/' or '\\') is accepted")
    if filename.startswith(".") or filename != filename.strip():
        raise DataError(f"upload name {shown} starts with '.' or blank space; rename the file")
    if ":" in filename:
        raise DataError(f"upload name {shown} contains ':' (a drive letter or stream name); rename the file")
    if len(filename.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise DataError(f"upload name {shown}... is longer than {MAX_NAME_BYTES} bytes; rename the file")
    folder = Path(session_dir).resolve()
    target = folder / filename
    if target.parent != folder:  # belt and braces: the checks above already make this impossible
        raise DataError(f"upload name {shown} does not stay inside the session folder")
    return target


def _declared_size(data: UploadData) -> int | None:
    """Size known before reading: len(bytes), Streamlit's UploadedFile.size, fstat, or seek/tell; None if unknown."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return len(data)
    size = getattr(data, "size", None)
    if isinstance(size, int):
        return size
    try:
        return os.fstat(data.fileno()).st_size - data.tell()
    except (AttributeError, OSError, ValueError):
        pass
    try:
        here = data.tell()
        end = data.seek(0, os.SEEK_END)
        data.seek(here)
        return end - here
    except (AttributeError, OSError, ValueError):
        return None


def _mib(n: int) -> str:
    """Human size: MiB from 1 MiB up, KiB below (limits in tests are small)."""
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n / 2**10:,.1f} KiB"


def save_upload(session_dir: str | os.PathLike, name: str, data: UploadData, max_bytes: int = MAX_UPLOAD_BYTES,
                allowed_suffixes: Sequence[str] = LEXICON_SUFFIXES,
                max_inflated_bytes: int = MAX_UPLOAD_INFLATED_BYTES) -> Path:
    """Check `name`, type and size, then store `data` (bytes or a binary file object) in `session_dir`.

    The size is checked before anything is read when it is known (a 500 MB upload is refused without reading it),
    and again while copying (a stream longer than it claimed is cut off and removed); a gzip upload must inflate to
    at most `max_inflated_bytes`. The file appears under its
    final name only when complete (temp file + rename). Returns the stored path; DataError when refused.
    """
    target = safe_upload_path(session_dir, name)
    suffixes = tuple(s.lower() for s in allowed_suffixes)
    if not name.lower().endswith(suffixes):
        raise DataError(f"upload {name!r}: file type not accepted here; use one of {', '.join(suffixes)}")
    declared = _declared_size(data)
    if declared is not None and declared > max_bytes:
        raise DataError(f"upload {name!r} is {_mib(declared)}, over the {_mib(max_bytes)} limit; nothing was stored")
    if declared == 0:
        raise DataError(f"upload {name!r} is empty (0 bytes); nothing was stored")
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{_PART_PREFIX}{uuid.uuid4().hex}.part"
    written = 0
    try:
        with open(part, "xb") as out:
            for chunk in _chunks(data):
                written += len(chunk)
                if written > max_bytes:
                    raise DataError(f"upload {name!r} is over the {_mib(max_bytes)} limit; nothing was stored")
                out.write(chunk)
        if written == 0:
            raise DataError(f"upload {name!r} is empty (0 bytes); nothing was stored")
        with open(part, "rb") as fh:
            compressed = fh.read(2) == b"\x1f\x8b"
        if compressed:  # a bomb is refused here, on upload, not when a page reads it
            _io.inflate_gzip(part.read_bytes(), f"upload {name!r}", max_bytes=max_inflated_bytes, keep=False)
        os.replace(part, target)
    except OSError as error:
        part.unlink(missing_ok=True)
        raise DataError(f"could not store upload {name!r} in {folder} ({error.strerror or error}); nothing was "
                        "stored") from error
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return target


def _chunks(data: UploadData) -> Iterable[bytes]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data).cast("B")
        for start in range(0, len(view), _CHUNK):
            yield bytes(view[start:start + _CHUNK])
        return
    while True:
        chunk = data.read(_CHUNK)
        if not chunk:
            return
        yield bytes(chunk)


def check_user_path(path: str | os.PathLike, allowed_roots: Iterable[str | os.PathLike], what: str = "path") -> Path:
    """`path` resolved (symlinks and '..' followed) when it lies inside one of `allowed_roots`; DataError otherwise.

    For paths typed into the dashboard (a jsonl dataset folder, an image root): the server's data folder and the
    session's upload folder are typical roots. Nothing outside them is opened, listed or reported as existing.
    """
    raw = os.fspath(path)
    if not raw or "\x00" in raw:
        raise DataError(f"{what} {raw!r} is empty or holds a NUL byte")
    resolved = Path(raw).expanduser().resolve()
    roots = [Path(root).expanduser().resolve() for root in allowed_roots]
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(r) for r in roots) or "none"
        raise DataError(f"{what} {raw!r} is outside the folders this server may read ({allowed})")
    return resolved


__all__ = [
    "CAPTION_SUFFIXES", "IMAGE_SUFFIXES", "LEXICON_SUFFIXES", "MAX_UPLOAD_BYTES", "check_user_path",
    "new_session_dir", "remove_session_dir", "safe_upload_path", "save_upload",
]
