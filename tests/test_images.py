"""Safe image opening: real photos decode, bombs are refused from the header, broken files are named."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from csr_core.errors import DataError
from csr_core.images import DEFAULT_MAX_PIXELS, check_images, file_sha256, image_size, open_image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _fake_png(path: Path, width: int, height: int) -> Path:
    """A 70-byte PNG whose header claims width×height RGB pixels but holds almost no data (a bomb's shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 8)) + _chunk(b"IEND", b"")
    )
    return path


@pytest.fixture(scope="module")
def photos(shared_data) -> list[Path]:
    return sorted((shared_data / "flickr8k" / "images").glob("*.jpg"))[:5]


def test_real_photo_opens_as_rgb_with_header_size(photos):
    im = open_image(photos[0])
    assert im.mode == "RGB"
    assert im.size == image_size(photos[0])
    assert 100 < im.size[0] <= 500 and 100 < im.size[1] <= 500
    assert im.getextrema() != ((0, 0), (0, 0), (0, 0))  # real pixels, not a blank canvas


def test_other_modes_become_rgb(tmp_path):
    for mode in ("RGBA", "L", "P", "1", "CMYK"):
        path = tmp_path / f"x_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
        Image.new(mode, (7, 5)).save(path)
        im = open_image(path)
        assert (im.mode, im.size) == ("RGB", (7, 5))


def test_bomb_refused_from_header_before_decoding(tmp_path):
    bomb = _fake_png(tmp_path / "bomb.png", 20_000, 4_000)  # 80 MP claimed, 70 bytes on disk
    with pytest.raises(DataError) as exc:
        open_image(bomb)
    msg = str(exc.value)
    assert "bomb.png" in msg and "80,000,000 pixels" in msg and f"{DEFAULT_MAX_PIXELS:,}" in msg
    # the same file under a higher limit gets past the header check and fails only when decoding: proof that the
    # pixel check ran on the header, before any decode
    with pytest.raises(DataError, match="cannot be decoded"):
        open_image(bomb, max_pixels=100_000_000)
    with pytest.raises(DataError, match="80,000,000"):
        image_size(bomb)


def test_huge_bomb_beyond_pillow_limit_is_a_data_error(tmp_path):
    bomb = _fake_png(tmp_path / "huge.png", 100_000, 100_000)
    with pytest.raises(DataError, match="huge.png"):
        open_image(bomb, max_pixels=10**12)


def test_pillow_global_state_untouched(tmp_path):
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    with pytest.raises(DataError):
        open_image(_fake_png(tmp_path / "b.png", 20_000, 4_000), max_pixels=10)
    with pytest.raises(DataError, match="cannot be decoded"):
        open_image(_fake_png(tmp_path / "c.png", 20_000, 4_000), max_pixels=10**12)
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == before


def test_truncated_missing_and_non_image_files_are_named(tmp_path, photos):
    data = photos[0].read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # otherwise Pillow would hide truncation everywhere
    with pytest.raises(DataError, match=r"truncated\.jpg.*(truncated|corrupt)"):
        open_image(truncated)
    with pytest.raises(DataError, match=r"nope\.jpg: image file not found"):
        open_image(tmp_path / "nope.jpg")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image", encoding="utf-8")
    with pytest.raises(DataError, match=r"notes\.jpg: not a readable image"):
        open_image(text)
    with pytest.raises(DataError, match="not a file"):
        open_image(tmp_path)


def test_file_sha256_matches_hashlib_for_any_chunk_size(photos):
    want = hashlib.sha256(photos[1].read_bytes()).hexdigest()
    assert file_sha256(photos[1]) == want
    assert file_sha256(photos[1], chunk_size=7) == want
    assert file_sha256(photos[1]) != file_sha256(photos[2])


def test_file_sha256_missing(tmp_path):
    with pytest.raises(DataError, match="gone.jpg"):
        file_sha256(tmp_path / "gone.jpg")


def test_check_images_reports_every_bad_file(tmp_path, photos):
    data = photos[0].read_bytes()
    truncated = tmp_path / "half.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\x00" * 100)
    missing = tmp_path / "missing.jpg"
    paths = [photos[0], junk, photos[1], missing, truncated]

    with pytest.raises(DataError) as exc:
        check_images(paths)
    msg = str(exc.value)
    assert "2 of 5 images" in msg and "junk.jpg" in msg and "missing.jpg" in msg and "skip_unreadable" in msg

    ok, skipped = check_images(paths, skip_unreadable=True)
    assert ok == [photos[0], photos[1], truncated]  # the header of a truncated JPEG is fine
    assert [p for p, _ in skipped] == [junk, missing]
    assert all(str(p) in reason for p, reason in skipped)

    ok, skipped = check_images(paths, skip_unreadable=True, decode=True)
    assert ok == [photos[0], photos[1]]
    assert [p for p, _ in skipped] == [junk, missing, truncated]
