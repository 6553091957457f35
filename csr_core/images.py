"""Safe image opening: refuse image bombs from the header, name the file in every error, hash files for cache keys.

Nothing here touches Pillow's global state (`Image.MAX_IMAGE_PIXELS`, `ImageFile.LOAD_TRUNCATED_IMAGES`): the pixel
limit is passed explicitly and checked from the header that `Image.open` reads, before any pixel data is decoded.

Every decoded image reaches the encoders as 8-bit RGB through `to_rgb`, which converts each Pillow mode by what its
samples mean (a 16-bit grey is scaled by its bit depth, not clipped to white; transparency is composited on white)
and refuses, naming the file and the mode, what has no defined mapping. `find_duplicate_images` finds one photo
listed twice in a gallery (same file, or byte-identical files), which would make two gallery items correct answers.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from csr_core import _io
from csr_core.errors import DataError

#: Default pixel limit (width × height). 50 MP is far above any captioning photo (Flickr/COCO/XM3600 are ≤ ~12 MP)
#: and far below what would exhaust memory once decoded to RGB (≈150 MB).
DEFAULT_MAX_PIXELS = 50_000_000

#: What transparent pixels are composited onto: white, as img2dataset's alpha matting does when it builds the LAION
#: sets open_clip models are trained on (`rgb * a + 255 * (1 - a)`). A plain `convert("RGB")` would instead keep
#: whatever colour an encoder left under transparent pixels (often black, sometimes noise).
ALPHA_BACKGROUND: tuple[int, int, int] = (255, 255, 255)

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
    """Decode an image file into an 8-bit RGB PIL image, refusing bombs, missing, truncated and non-image files.

    The first frame of an animation is used. Pixels become RGB through `to_rgb` (see there: high bit depths are
    scaled, transparency is composited on `ALPHA_BACKGROUND`, modes without a defined mapping are refused with a
    DataError naming the file and mode). An 8-bit RGB or grey photo (every photo of the shipped data sets) converts
    exactly as open_clip's `convert("RGB")` does, so embeddings match published evaluations. The file handle is
    closed before returning.
    """
    p = Path(path)
    im = _open_header(p, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()
            rgb = to_rgb(im, p)
    except DataError:
        raise  # to_rgb's refusals already name the file and mode (DataError is a ValueError: not a decode error)
    except _DECODE_ERRORS as exc:
        raise DataError(f"{p}: image cannot be decoded, truncated or corrupt ({type(exc).__name__}: {exc})") from exc
    finally:
        im.close()
    return rgb


# --------------------------------------------------------------------------------------------------- modes to RGB

#: Modes whose samples Pillow maps to RGB by their standard definition (bilevel, grey, CMYK, JPEG YCbCr, CIE L*a*b*,
#: HSV; RGBX drops its padding byte). CMYK uses Pillow's profile-free formula, like open_clip's loaders.
_DIRECT_MODES = frozenset({"RGB", "RGBX", "1", "L", "CMYK", "YCbCr", "LAB", "HSV"})
#: Modes with an alpha channel: composited on ALPHA_BACKGROUND (`La`/`RGBa` are premultiplied: un-premultiplied first).
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
#: Integer grey modes wider than 8 bits: scaled to 8 bits by their bit depth.
_WIDE_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
#: TIFF tags read for the bit depth and range: BitsPerSample, SampleFormat, SMinSampleValue, SMaxSampleValue.
_BITS_PER_SAMPLE, _SAMPLE_FORMAT, _SMIN, _SMAX = 258, 339, 340, 341
_SIGNED_INT = 2  # SampleFormat value of two's-complement signed integers


def to_rgb(im: Image.Image, source: object = "in-memory image") -> Image.Image:
    """`im` as a new 8-bit RGB image, converted by what its samples mean; `source` (the file) names it in errors.

    - RGB, RGBX, 1, L, CMYK, YCbCr, LAB, HSV: Pillow's standard conversion (identical to `convert("RGB")`).
    - I;16, I;16B, I;16L, I;16N (16-bit grey, e.g. a 16-bit PNG) and I (32-bit integer grey): scaled by the bit depth
      the file declares (TIFF BitsPerSample), else the mode's own (16 bits; `I` without a declared depth is read as
      the 16-bit range Pillow gives PGM files): `round(v * 255 / (2**bits - 1))`, so 32768 of 65535 becomes 128, not
      the 255 that `convert("RGB")` clips it to (signed samples, as Pillow writes 32-bit TIFFs: their non-negative
      half, `2**(bits-1) - 1`). Negative values and values beyond the depth have no defined display mapping and are
      refused, as is an image whose samples all scale to one grey (a blank frame, e.g. 0..70000 in 32 bits).
    - F (32-bit float grey): the TIFF SMin/SMaxSampleValue range when declared, else values in [0, 1] scale by 255;
      any other range, NaN or infinity is refused with the range found.
    - Transparency (RGBA, LA, PA, premultiplied RGBa/La, P with a transparent palette entry, L/RGB/16-bit grey with a
      tRNS colour key) is composited on `ALPHA_BACKGROUND` (white), the matting img2dataset applies when it builds
      the LAION sets open_clip is trained on, rather than dropping alpha and keeping hidden colours.
    - Any other mode is refused with a DataError naming `source` and the mode.
    """
    mode = im.mode
    if mode in _WIDE_MODES:
        return _wide_to_rgb(im, source)
    if mode == "F":
        return _float_to_rgb(im, source)
    if mode in _ALPHA_MODES or (mode in _DIRECT_MODES | {"P"} and im.has_transparency_data):
        rgba = im.convert("LA").convert("RGBA") if mode == "La" else im.convert("RGBA")
        return _composite(rgba)
    if mode == "P":
        return im.convert("RGB")
    if mode in _DIRECT_MODES:
        return im.copy() if mode == "RGB" else im.convert("RGB")
    raise DataError(
        f"{source}: image mode {mode!r} is not supported (supported: {', '.join(sorted(_DIRECT_MODES | _ALPHA_MODES))}, "
        f"P, F, {', '.join(sorted(_WIDE_MODES))}); convert the file to 8-bit RGB"
    )


def _composite(rgba: Image.Image) -> Image.Image:
    """RGBA over ALPHA_BACKGROUND: out = rgb * a + background * (1 - a), rounded (Pillow's masked paste)."""
    out = Image.new("RGB", rgba.size, ALPHA_BACKGROUND)
    out.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
    return out


def _tiff_tag(im: Image.Image, tag: int) -> object:
    """A TIFF tag's value (first element of a per-sample tuple), None for other formats or an absent tag."""
    tags = getattr(im, "tag_v2", None)
    if tags is None or tag not in tags:
        return None
    value = tags[tag]
    return value[0] if isinstance(value, tuple) and value else value


def _wide_to_rgb(im: Image.Image, source: object) -> Image.Image:
    """16/32-bit integer grey scaled to 8 bits by its bit depth (see `to_rgb`)."""
    mode = im.mode
    values = np.asarray(im).astype(np.int64)
    declared = _tiff_tag(im, _BITS_PER_SAMPLE)
    bits = int(declared) if isinstance(declared, int) and 1 <= int(declared) <= 32 else 16
    signed = _tiff_tag(im, _SAMPLE_FORMAT) == _SIGNED_INT
    limit = (1 << (bits - 1 if signed else bits)) - 1  # signed samples: their non-negative half is the range
    low = int(values.min()) if values.size else 0
    high = int(values.max()) if values.size else 0
    if low < 0:
        raise DataError(f"{source}: image mode {mode!r} has negative samples (down to {low}), which have no defined "
                        "mapping to display intensities; convert it to unsigned 8- or 16-bit grey")
    if high > limit:
        said = (f"its declared {bits}-bit {'signed ' if signed else ''}depth" if declared is not None
                else "the 16-bit range (no bit depth declared)")
        raise DataError(f"{source}: image mode {mode!r} has samples up to {high}, beyond {said} (max {limit}): its "
                        "scale cannot be told; convert it to 8- or 16-bit grey")
    grey = ((values * 255 + limit // 2) // limit).astype(np.uint8)
    if high > low and grey.size and int(grey.min()) == int(grey.max()):
        raise DataError(f"{source}: image mode {mode!r} uses samples {low}..{high} of its {bits}-bit range (max "
                        f"{limit}): scaled to 8 bits they all become grey {int(grey.flat[0])}, a blank frame; "
                        "convert it to 8- or 16-bit grey that spans its range")
    out = Image.fromarray(grey)  # mode L
    key = im.info.get("transparency")
    if isinstance(key, int) and not isinstance(key, bool):  # a tRNS grey key, in the file's own sample values
        alpha = np.where(values == key, 0, 255).astype(np.uint8)
        return _composite(Image.merge("RGBA", (out, out, out, Image.fromarray(alpha))))
    return out.convert("RGB")


def _float_to_rgb(im: Image.Image, source: object) -> Image.Image:
    """32-bit float grey scaled to 8 bits by its declared or [0, 1] range (see `to_rgb`)."""
    values = np.asarray(im).astype(np.float64)
    if values.size and not np.isfinite(values).all():
        raise DataError(f"{source}: float image (mode 'F') holds NaN or infinite samples, which have no display "
                        "intensity; convert it to 8- or 16-bit grey")
    low = float(values.min()) if values.size else 0.0
    high = float(values.max()) if values.size else 0.0
    smin, smax = _tiff_tag(im, _SMIN), _tiff_tag(im, _SMAX)
    if isinstance(smin, (int, float)) and isinstance(smax, (int, float)) and float(smax) > float(smin):
        lo, hi = float(smin), float(smax)
    elif 0.0 <= low and high <= 1.0:
        lo, hi = 0.0, 1.0
    else:
        raise DataError(f"{source}: float image (mode 'F') with values in [{low:g}, {high:g}] and no declared range: "
                        "only floats in [0, 1] (or a TIFF SMin/SMaxSampleValue range) have a defined 8-bit mapping; "
                        "convert it to 8- or 16-bit grey, or scale it to [0, 1]")
    scaled = np.rint((np.clip(values, lo, hi) - lo) * (255.0 / (hi - lo)))
    return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")


def file_sha256(path: str | os.PathLike, chunk_size: int = _CHUNK) -> str:
    """Hex sha256 of a file's bytes, read in chunks (cache keys for images: content, not name)."""
    p = Path(path)
    try:
        return _io.file_sha256(p)
    except FileNotFoundError as exc:
        raise DataError(f"{p}: file not found") from exc
    except OSError as exc:
        raise DataError(f"{p}: cannot read file ({exc})") from exc


@dataclass(frozen=True)
class DuplicateImage:
    """Two gallery entries (indices into the paths given) that are one photo.

    `how` is "same file" (one file reached by two paths: `0.jpg` and `0.JPG` on a case-insensitive disk, a symlink,
    a hard link, `a/../0.jpg`) or "identical bytes" (two files with the same content; `sha256` is its hash).
    """

    first: int
    second: int
    how: str
    sha256: str = ""


def find_duplicate_images(paths: Sequence[str | os.PathLike]) -> list[DuplicateImage]:
    """Every entry of `paths` that repeats an earlier one, paired with the first entry it repeats (ordered by the
    repeat's position).

    Why: a gallery that holds one photo twice has two correct-looking answers for its queries, so Recall@K measures
    nothing for them. Cheap: one `stat` per file; only files whose size equals another distinct file's size are
    hashed (`csr_core._io.file_sha256`), so a gallery of distinct photos is hashed hardly at all. Paths that cannot
    be stat'ed (missing files) are left to the image checks that name them.
    """
    found: list[DuplicateImage] = []
    first_of: dict[object, int] = {}  # file identity (resolved path, then device + inode) -> first index
    by_size: dict[int, list[int]] = {}
    for index, raw in enumerate(paths):
        path = Path(raw)
        try:
            st = path.stat()
            resolved = os.path.normcase(os.path.realpath(path))
        except OSError:
            continue
        keys: list[object] = [("path", resolved)]
        if st.st_ino:  # 0 where a filesystem has no inode numbers: the resolved path is then the only identity
            keys.append(("inode", st.st_dev, st.st_ino))
        seen = next((first_of[k] for k in keys if k in first_of), None)
        if seen is not None:
            found.append(DuplicateImage(seen, index, "same file"))
            continue
        for k in keys:
            first_of[k] = index
        by_size.setdefault(st.st_size, []).append(index)
    for group in by_size.values():
        if len(group) < 2:
            continue
        first_with: dict[str, int] = {}
        for index in group:
            digest = file_sha256(paths[index])
            if digest in first_with:
                found.append(DuplicateImage(first_with[digest], index, "identical bytes", digest))
            else:
                first_with[digest] = index
    return sorted(found, key=lambda d: (d.second, d.first))


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
