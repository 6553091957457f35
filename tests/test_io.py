"""csr_core._io: the one atomic writer and file hasher."""

from __future__ import annotations

import hashlib
import stat

import pytest

from csr_core import _io


def test_atomic_write_replaces_whole_files_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "out.json"
    _io.atomic_write_text(target, "old")
    assert target.read_text() == "old" and stat.S_IMODE(target.stat().st_mode) == 0o644

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        _io.atomic_write(target, broken)
    assert target.read_text() == "old"  # the reader still sees the whole old file
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]  # no temp file left behind
    _io.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"


def test_file_sha256_is_the_sha256_of_the_bytes(tmp_path):
    data = bytes(range(256)) * 5000  # > one read chunk
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert _io.file_sha256(path) == hashlib.sha256(data).hexdigest()
    with pytest.raises(FileNotFoundError):
        _io.file_sha256(tmp_path / "missing")
