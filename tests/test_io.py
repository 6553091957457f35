"""csr_core._io: the one atomic writer and file hasher."""

from __future__ import annotations

import hashlib
import stat

import numpy as np
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


def test_one_text_decoder_for_every_reader(tmp_path):
    """UTF-8 with/without BOM, UTF-16 with BOM and gzip decode to the same text; bad bytes name file and line."""
    import codecs
    import gzip

    from csr_core._io import decode_text
    from csr_core.errors import DataError, LexiconError

    text = "ein Hund\nzwei Kätzchen\n一只狗\n"
    for data in (text.encode(), codecs.BOM_UTF8 + text.encode(), text.encode("utf-16"), gzip.compress(text.encode())):
        assert decode_text(data, "x.txt")[0] == text
    with pytest.raises(DataError, match=r"x\.txt is not valid utf-8 text \(byte 0xe4 at line 2\)"):
        decode_text(text.encode("latin-1", errors="replace"), "x.txt")
    with pytest.raises(LexiconError, match="looks binary"):
        decode_text(b"\x89PNG\x00\x00", "x.png", error=LexiconError)


def test_safetensors_layout_reads_headers_only(tmp_path):
    from safetensors.numpy import save_file

    from csr_core._io import safetensors_layout

    path = tmp_path / "a.safetensors"
    save_file({"keys": np.zeros((3, 32), np.uint8), "vectors": np.ones((3, 4), np.float32)}, str(path),
              metadata={"format": "demo"})
    assert safetensors_layout(path) == ({"format": "demo"}, {"keys": ((3, 32), "U8"), "vectors": ((3, 4), "F32")})
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(Exception, match="incomplete|not fully covered"):
        safetensors_layout(path)
