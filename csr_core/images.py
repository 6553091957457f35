"""Safe image opening: refuse image bombs from the header, name the file in every error, hash files for cache keys.

Nothing here touches Pillow's global state (`Image.MAX_IMAGE_PIXELS`, `ImageFile.LOAD_TRUNCATED_IMAGES`): the pixel
limit is passed explicitly and checked from the header that `Image.open` reads, before any pixel data is decoded.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from csr_core import _io
from csr_core.errors import DataError

#: Default pixel limit (width × height). 50 MP is far above any captioning photo (Flickr/COCO/XM3600 are ≤ ~12 MP)
#: and far below what would exhaust memory once decoded to RGB (≈150 MB).
DEFAULT_MAX_PIXELS = 50_000_000

_CHUNK = 1 << 20
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def _pixel_error(path: Path, width: int, height: int, max_pixels: int) -> DataError:
    return DataError(
        f"{path}: image is {width}×{height} = {width * height:,} pixels, over the limit of {max_pixels:,} "
        f"(a possible decompression bomb); shrink the file or raise max_pixels if you trust it"
    )


def _open_header(path: Path, max_pixels: int) -> Image.Image:
    """Open lazily (header only) and enforce the pixel limit; the caller must close the image."""
    if not path.exists():
        raise DataError(f"{path}: image file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own global limit; our explicit limit below is the one that decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: refused by Pillow's own decompression-bomb limit ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise DataError(f"{path}: not a readable image (Pillow cannot identify the format)") from exc
    except _DECODE_ERRORS as exc:
        raise DataError(f"{path}: cannot read image header ({type(exc).__name__}: {exc})") from exc
    width, height = im.size
    if width <= 0 or height <= 0:
        im.close()
        raise DataError(f"{path}: image header gives an empty size {width}×{height}")
    if width * height > max_pixels:
        im.close()
        raise _pixel_error(path, width, height, max_pixels)
    return im


def image_size(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) from the header alone; raises DataError like `open_image` for bad or oversized files."""
    im = _open_header(Path(path), max_pixels)
    try:
        return im.size
    finally:
        im.close()


def open_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image file into an RGB PIL image, refusing bombs, missing, truncated and non-image files.

    Conversion is plain `convert("RGB")` (first frame of animations, alpha dropped), as open_clip's loaders do, so
    embeddings match published evaluations. The file handle is closed before returning.
    """
    p = Path(path)
    im = _open_header(p, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()
            rgb = im.convert("RGB") if im.mode != "RGB" else im.copy()
    except _DECODE_ERRORS as exc:
        raise DataError(f"{p}: image cannot be decoded, truncated or corrupt ({type(exc).__name__}: {exc})") from exc
    finally:
        im.close()
    return rgb


def file_sha256(path: str | os.PathLike, chunk_size: int = _CHUNK) -> str:
    """Hex sha256 of a file's bytes, read in chunks (cache keys for images: content, not name)."""
    p = Path(path)
    try:
        return _io.file_sha256(p)
    except FileNotFoundError as exc:
        raise DataError(f"{p}: file not found") from exc
    except OSError as exc:
        raise DataError(f"{p}: cannot read file ({exc})") from exc


def check_images(
    paths: Iterable[str | os.PathLike],
    skip_unreadable: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    decode: bool = False,
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Check many image files; return (ok_paths, skipped) where skipped holds (path, reason) pairs.

    `decode=False` checks existence, format and pixel limit from the header (fast); `decode=True` also decodes the
    pixels (finds truncated files, slower). Without `skip_unreadable` any failure raises one DataError listing every
    bad file (up to 10 named, plus the count), so nothing is dropped silently.
    """
    ok: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for raw in paths:
        p = Path(raw)
        try:
            if decode:
                open_image(p, max_pixels=max_pixels).close()
            else:
                image_size(p, max_pixels=max_pixels)
        except DataError as exc:
            skipped.append((p, str(exc)))
            continue
        ok.append(p)
    if skipped and not skip_unreadable:
        shown = "\n  ".join(reason for _, reason in skipped[:10])
        more = f"\n  ... and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        raise DataError(
            f"{len(skipped)} of {len(ok) + len(skipped)} images are missing or unreadable:\n  {shown}{more}\n"
            f"Fix the files, or pass skip_unreadable=True to leave them out (they are then reported as skipped)."
        )
    return ok, skipped
