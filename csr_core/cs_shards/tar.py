"""webdataset tar shards: one sample in memory at a time, members kept in order."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import stat
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from csr_core import _io
from csr_core.cs_shards._constants import _CANCEL_EVERY, _KEY_SPLIT, _TAR_ERRORS, SIDECAR_SUFFIX
from csr_core.cs_shards.jobs import FileResult, SwitchJob, _Counter, _dumps, sidecar
from csr_core.errors import CancelledError, CSRError, DataError

# --------------------------------------------------------------------------------------------------------------------
# webdataset tar shards


def switch_shard(source: str | os.PathLike, output: str | os.PathLike, job: SwitchJob,
                 cancel: Callable[[], bool] | None = None) -> FileResult:
    """Switch one tar shard into `output` (atomically); see the module docstring for the layout."""
    source, output = Path(source), Path(output)
    if job.key == "index":
        raise CSRError("shards are keyed by their sample keys (key='sample') or the caption text (key='text'); "
                       "key='index' is for tables")
    _check_distinct(source, output)
    if not source.exists() or source.is_dir():
        raise DataError(f"shard {source} not found" if not source.exists() else f"shard {source} is a folder")
    started = time.perf_counter()
    counter = _Counter(job.switcher)
    compress = output.name.endswith((".gz", ".tgz"))

    def write(tmp: Path) -> None:
        with contextlib.ExitStack() as stack:
            raw = stack.enter_context(open(source, "rb"))
            compressed = raw.peek(6)[:6].startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ"))  # peek: pipes work too
            sink: Any = stack.enter_context(open(tmp, "wb"))
            if compress:  # mtime 0: the same input gives the same bytes
                sink = stack.enter_context(gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0))
            try:
                reader = tarfile.open(fileobj=raw, mode="r|*")
            except _TAR_ERRORS as exc:
                raise DataError(f"{source} is not a tar archive (a webdataset shard): {exc}") from None
            writer = _TarWriter(sink)
            _copy_shard(reader, writer, None if compressed else raw, source, job, counter, cancel)
            writer.close()

    try:
        _io.atomic_write(output, write)
    except OSError as exc:
        raise CSRError(f"cannot switch {source} into {output}: {exc.strerror or exc}") from exc
    return FileResult(str(source), str(output), counter.done(), time.perf_counter() - started)


def _copy_shard(reader: tarfile.TarFile, writer: _TarWriter, raw: Any, source: Path, job: SwitchJob,
                counter: _Counter, cancel: Callable[[], bool] | None) -> None:
    sample_key: str | None = None
    members: list[tuple[tarfile.TarInfo, bytes | None, str]] = []
    last = "(start of archive)"
    iterator = iter(reader)
    n_samples = 0
    while True:
        try:
            member = next(iterator)
        except StopIteration:
            break
        except _TAR_ERRORS as exc:
            raise DataError(f"{source}: corrupt or truncated tar after member {last!r}: {exc}") from None
        data: bytes | None = None
        if member.isfile():
            try:
                handle = reader.extractfile(member)
                data = handle.read() if handle is not None else b""
            except _TAR_ERRORS as exc:
                raise DataError(f"{source}: member {member.name!r} is truncated or unreadable: {exc}") from None
        last = member.name
        split = _KEY_SPLIT.match(member.name) if member.isfile() else None
        if split is None:  # directories, links, `__meta__` files without an extension: copied where they are
            if members:
                _write_sample(writer, sample_key, members, source, job, counter)
                members = []
            _add(writer, member, data)
            continue
        key, suffix = split.group(1), split.group(2).lower()
        if key != sample_key or any(suffix == seen for _, _, seen in members):
            if members:
                if key == sample_key:
                    raise DataError(f"{source}: member {member.name!r} repeats the .{suffix} of sample {key!r} "
                                    "(the members of a sample must be consecutive and distinct)")
                _write_sample(writer, sample_key, members, source, job, counter)
                n_samples += 1
                if cancel is not None and n_samples % _CANCEL_EVERY == 0 and cancel():
                    raise CancelledError(f"switching {source} was cancelled")
            sample_key, members = key, []
        members.append((member, data, suffix))
    if members:
        _write_sample(writer, sample_key, members, source, job, counter)
    info = os.fstat(raw.fileno()) if raw is not None else None  # uncompressed regular files only (not pipes)
    if info is not None and stat.S_ISREG(info.st_mode) and info.st_size - reader.offset < 512:
        raise DataError(f"{source}: truncated tar: no end-of-archive marker after member {last!r}")


def _write_sample(writer: _TarWriter, key: str | None, members: list[tuple[tarfile.TarInfo, bytes | None, str]],
                  source: Path, job: SwitchJob, counter: _Counter) -> None:
    ext = job.caption_ext
    suffixes = [suffix for _, _, suffix in members]
    taken = [s for s in suffixes if s in (job.orig_ext, SIDECAR_SUFFIX)]
    if taken:
        raise DataError(f"{source}: sample {key!r} already has a .{taken[0]} member: this shard is code-switched "
                        "already (switch the original shards)")
    if ext not in suffixes:
        if job.on_missing == "skip":
            counter.stats.n_skipped += 1
            return
        names = ", ".join(info.name for info, _, _ in members)
        raise DataError(f"{source}: sample {key!r} has no .{ext} caption (members: {names}); pass on_missing='skip' "
                        "(--on-missing skip) to drop such samples")
    switcher = job.switcher
    for info, data, suffix in members:
        if suffix != ext:
            _add(writer, info, data)
            continue
        raw = data or b""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{source}: member {info.name!r} (the caption of sample {key!r}) is not valid UTF-8 "
                            f"(byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
        seed_key = key if job.key != "text" else None
        result = switcher.switch(text, seed_key)
        counter.add(result)
        base = info.name[: len(info.name) - len(ext) - 1]
        _add(writer, _fresh(info, info.name), result.text.encode("utf-8"))
        _add(writer, _fresh(info, f"{base}.{job.orig_ext}"), raw)
        _add(writer, _fresh(info, f"{base}.{SIDECAR_SUFFIX}"),
             _dumps(sidecar(switcher, result, key, seed_key)).encode("utf-8"))


def _fresh(template: tarfile.TarInfo, name: str) -> tarfile.TarInfo:
    """A new regular-file header named `name` with the caption member's owner, mode and time (no stale pax)."""
    info = tarfile.TarInfo(name)
    info.mtime, info.mode = template.mtime, template.mode
    info.uid, info.gid, info.uname, info.gname = template.uid, template.gid, template.uname, template.gname
    return info


def _add(writer: _TarWriter, info: tarfile.TarInfo, data: bytes | None) -> None:
    writer.add(info, data)


class _TarWriter:
    """tarfile's own streaming writer (PAX format, UTF-8 names), one member at a time."""

    def __init__(self, sink: Any) -> None:
        self._tar = tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8")

    def add(self, info: tarfile.TarInfo, data: bytes | None) -> None:
        if data is None:
            self._tar.addfile(info)
        else:
            info.size = len(data)
            self._tar.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        self._tar.close()


def _check_distinct(source: Path, output: Path) -> None:
    with contextlib.suppress(OSError):
        if output.exists() and os.path.samefile(source, output):
            raise CSRError(f"output {output} is the input itself; write to another folder")
    if source.resolve() == output.resolve():
        raise CSRError(f"output {output} is the input itself; write to another folder")



def read_sidecars(shard: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The `<key>.cs.json` records of an output shard, in order (for checks and analyses)."""
    path = Path(shard)
    try:
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                if member.isfile() and member.name.endswith("." + SIDECAR_SUFFIX):
                    handle = tar.extractfile(member)
                    if handle is not None:
                        yield json.loads(handle.read().decode("utf-8"))
    except _TAR_ERRORS as exc:
        raise DataError(f"{path} is not a readable tar shard: {exc}") from None
