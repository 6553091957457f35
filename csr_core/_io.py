"""File primitives every module shares: the input gate, atomic writes, content hashes, text decoding and safetensors
headers (one implementation each).

The input gate (`read_input_bytes`, `read_input_text`, `read_json_file`, `loads_json`) is the one way the project reads
a file a user can hand it (datasets, lexicons, configs, imports, manifests, uploads): regular files only (a FIFO or
`/dev/zero` would hang or fill memory), a size limit before reading, a limit on what gzip inflates to while inflating,
bounded JSON nesting, and the project's own error naming the file and line.

Atomic: the bytes go to a temp file in the target's folder, are fsynced, and `os.replace` puts them in place, so a
reader sees the old file or the new one, never half of either, and a crash leaves at most a `.tmp` file that no
reader opens. The temp file is removed on any failure.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import os
import stat
import zlib
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from csr_core.errors import CSRError, DataError

_CHUNK = 1 << 20

#: The largest file the gate reads, and the most a compressed file may inflate to (env CSR_MAX_INPUT_MB overrides
#: both: a research corpus can be big, a hostile upload must not take the shared server's memory).
MAX_INPUT_BYTES = 1 << 30
#: JSON nesting deeper than this is refused: no project file nests beyond ~6 levels, and Python's decoder would
#: raise RecursionError near 1000.
MAX_JSON_DEPTH = 100


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


def decode_text(data: bytes, name: str, error: type[CSRError] = DataError) -> tuple[str, str]:
    """(text, encoding) of a text file's bytes: gzip by its magic bytes, UTF-8 (BOM or not), UTF-16/32 with a BOM.

    Binary data (NUL bytes without a UTF-16/32 BOM) and invalid bytes raise `error` naming `name` and the line."""
    if data[:2] == b"\x1f\x8b":
        data = inflate_gzip(data, name, error)
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


def input_limit() -> int:
    """The gate's byte limit: `MAX_INPUT_BYTES`, or CSR_MAX_INPUT_MB when set."""
    raw = os.environ.get("CSR_MAX_INPUT_MB")
    if raw:
        try:
            return max(1, int(float(raw) * (1 << 20)))
        except ValueError:
            raise DataError(f"CSR_MAX_INPUT_MB={raw!r} is not a number of megabytes") from None
    return MAX_INPUT_BYTES


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB"


def check_regular_file(path: str | os.PathLike, what: str = "file", error: type[CSRError] = DataError) -> os.stat_result:
    """The stat of `path` (symlinks followed) if it is a regular file; else `error` saying what it is instead."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise error(f"{what} {p}: not found (No such file or directory)") from None
    except OSError as exc:
        raise error(f"{what} {p}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{what} {p}: is a folder, expected a file")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else (
            "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a socket or special file")
        raise error(f"{what} {p}: is {kind}, not a regular file; give a file")
    return st


def read_input_bytes(path: str | os.PathLike, what: str = "file", error: type[CSRError] = DataError,
                     max_bytes: int | None = None) -> bytes:
    """A user-given file's bytes, through the gate: regular file, at most `max_bytes` (default `input_limit()`)."""
    limit = input_limit() if max_bytes is None else max_bytes
    st = check_regular_file(path, what, error)
    if st.st_size > limit:
        raise error(f"{what} {path}: {_mb(st.st_size)} is over the {_mb(limit)} input limit "
                    "(raise CSR_MAX_INPUT_MB if it is meant to be read)")
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)  # a file that grows while read is still bounded
    except OSError as exc:
        raise error(f"{what} {path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise error(f"{what} {path}: over the {_mb(limit)} input limit")
    return data


def inflate_gzip(data: bytes, name: str, error: type[CSRError] = DataError, max_bytes: int | None = None,
                 keep: bool = True) -> bytes:
    """Decompress gzip bytes (every member) but stop at `max_bytes` of output: a 10 MB bomb that inflates to 10 GiB
    is refused after `max_bytes`, never held in memory. Truncated or corrupt data raises `error` naming `name`.
    `keep=False` only checks (the output is counted and dropped, so the check itself holds ~1 MiB at a time)."""
    limit = input_limit() if max_bytes is None else max_bytes
    step = _CHUNK if not keep else limit + 1
    out: list[bytes] = []
    total = 0
    rest = data
    try:
        while rest:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = inflater.decompress(rest, min(step, limit + 1 - total))
            while True:
                total += len(chunk)
                if keep:
                    out.append(chunk)
                if total > limit:
                    raise error(f"{name}: inflates to more than the {_mb(limit)} input limit (a gzip bomb, or raise "
                                "CSR_MAX_INPUT_MB)")
                if not inflater.unconsumed_tail:
                    break
                chunk = inflater.decompress(inflater.unconsumed_tail, min(step, limit + 1 - total))
            if not inflater.eof:
                raise error(f"{name}: the gzip data ends early (truncated file)")
            rest = inflater.unused_data
            if rest and rest[:2] != b"\x1f\x8b":
                break  # trailing garbage after the last member: gzip itself ignores zero padding
    except zlib.error as exc:
        raise error(f"{name} looks gzip-compressed but cannot be decompressed: {exc}") from None
    return b"".join(out)


def read_input_text(path: str | os.PathLike, what: str = "file", error: type[CSRError] = DataError,
                    max_bytes: int | None = None) -> str:
    """A user-given text file (plain or gzip, UTF-8/16/32) through the gate, decoded; errors name the file."""
    return decode_text(read_input_bytes(path, what, error, max_bytes), f"{what} {path}", error)[0]


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def loads_json(text: str, where: str, error: type[CSRError] = DataError, max_depth: int = MAX_JSON_DEPTH,
               one_line: bool = False) -> Any:
    """`json.loads` with the project's error: bad JSON names `where` and the line (`one_line`: `where` already
    names it, a JSON-lines record), and nesting deeper than `max_depth` is refused (Python's decoder would
    otherwise raise RecursionError on hostile input)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        line = "" if one_line else f", line {exc.lineno}"
        raise error(f"{where}{line}: invalid JSON ({exc.msg})") from None
    except RecursionError:
        raise error(f"{where}: JSON nested deeper than {max_depth} levels") from None
    if _depth_exceeds(value, max_depth):
        raise error(f"{where}: JSON nested deeper than {max_depth} levels")
    return value


def read_json_file(path: str | os.PathLike, what: str = "JSON file", error: type[CSRError] = DataError,
                   expect: type = dict, max_bytes: int = 64 << 20) -> Any:
    """A JSON file through the gate, whose top level must be `expect` (an object unless told); errors name it."""
    text = read_input_text(path, what, error, max_bytes)
    value = loads_json(text, f"{what} {path}", error)
    if not isinstance(value, expect):
        raise error(f"{what} {path}: expected a JSON {'object' if expect is dict else expect.__name__}, "
                    f"got {type(value).__name__}")
    return value
