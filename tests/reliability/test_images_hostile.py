"""Hostile image files and galleries: every Pillow mode reaches the encoders as the RGB its samples mean (a 16-bit
grey is scaled by its bit depth, not clipped to a white frame; transparency is composited on white; what has no
defined mapping is refused naming the file and mode), and one photo listed twice in a gallery is refused before any
encoding, through the API and the CLI.

Every image is a real file written with Pillow/numpy into tmp_path and read back through `csr_core.images`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from csr_core.errors import DataError
from csr_core.images import ALPHA_BACKGROUND, find_duplicate_images, open_image, to_rgb

from .conftest import run_cli


def _pixels(path: Path) -> np.ndarray:
    """The RGB pixels `open_image` gives, as an (h, w, 3) uint8 array (mode checked)."""
    im = open_image(path)
    assert im.mode == "RGB"
    return np.asarray(im)


def _grey(values) -> np.ndarray:
    """Expected RGB of grey levels: each level on all three channels."""
    v = np.asarray(values, dtype=np.uint8)
    return np.stack([v, v, v], axis=-1)


# ------------------------------------------------------------------------------------------- high bit depths


def test_16bit_png_gradient_is_scaled_by_its_bit_depth_not_clipped_to_white(tmp_path):
    levels = np.arange(256, dtype=np.uint16) * 257  # 0, 257, ..., 65535: exactly the 8-bit levels 0..255
    gradient = np.vstack([levels, levels])
    mid = np.array([[32768, 16384, 49152, 1]], dtype=np.uint16)
    path, mid_path = tmp_path / "gradient16.png", tmp_path / "mid16.png"
    Image.fromarray(gradient).save(path)
    Image.fromarray(mid).save(mid_path)
    assert Image.open(path).mode == "I;16"  # the hostile input: what convert("RGB") turns into a white frame
    assert np.array_equal(_pixels(path), _grey(np.vstack([np.arange(256), np.arange(256)])))
    # mid-grey 32768 of 65535 is 128, a quarter is 64, three quarters 191, and 1 of 65535 is black
    assert np.array_equal(_pixels(mid_path), _grey([[128, 64, 191, 0]]))


@pytest.mark.parametrize("raw", ["I;16B", "I;16"])
def test_16bit_tiff_in_either_byte_order_is_scaled(tmp_path, raw):
    values = np.array([0, 1000, 32768, 65535], dtype=">u2" if raw == "I;16B" else "<u2")
    path = tmp_path / f"grey-{raw.replace(';', '')}.tif"
    Image.frombytes(raw, (4, 1), values.tobytes()).save(path)
    assert Image.open(path).mode == raw
    assert np.array_equal(_pixels(path), _grey([[0, 4, 128, 255]]))


def test_16bit_pgm_opened_as_mode_I_is_scaled(tmp_path):
    """Pillow reads a PGM with maxval > 255 as mode I in the 16-bit range, whatever its maxval (12 bits here)."""
    path = tmp_path / "twelve.pgm"
    path.write_bytes(b"P5\n3 1\n4095\n" + np.array([0, 2048, 4095], dtype=">u2").tobytes())
    assert Image.open(path).mode == "I"
    got = _pixels(path)[0, :, 0].astype(int)
    assert got[0] == 0 and got[2] == 255 and abs(got[1] - 128) <= 1  # 2048 / 4095 of the range, not 255


def test_32bit_integer_tiff_is_scaled_by_its_declared_depth_and_blank_or_negative_ones_are_refused(tmp_path):
    path = tmp_path / "int32.tif"
    Image.fromarray(np.array([[0, 2**30, 2**31 - 1]], dtype=np.int32)).save(path)  # Pillow writes signed 32-bit
    assert Image.open(path).mode == "I"
    assert np.array_equal(_pixels(path), _grey([[0, 128, 255]]))

    dark = tmp_path / "int32-dark.tif"  # 16-bit-sized data in a 32-bit file: every sample scales to 0
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(dark)
    with pytest.raises(DataError, match="blank frame") as exc:
        open_image(dark)
    assert str(dark) in str(exc.value) and "'I'" in str(exc.value)

    negative = tmp_path / "int32-negative.tif"
    Image.fromarray(np.array([[-5, 100]], dtype=np.int32)).save(negative)
    with pytest.raises(DataError, match="negative samples") as exc:
        open_image(negative)
    assert str(negative) in str(exc.value) and "'I'" in str(exc.value)


def test_float_tiff_in_0_1_is_scaled_and_other_ranges_or_nan_are_refused_with_the_range(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([[0.0, 0.25, 0.5, 1.0]], dtype=np.float32)).save(path)
    assert Image.open(path).mode == "F"
    assert np.array_equal(_pixels(path), _grey([[0, 64, 128, 255]]))

    wide = tmp_path / "float-wide.tif"
    Image.fromarray(np.array([[0.0, 1000.0]], dtype=np.float32)).save(wide)
    with pytest.raises(DataError) as exc:
        open_image(wide)
    assert str(wide) in str(exc.value) and "'F'" in str(exc.value) and "[0, 1000]" in str(exc.value)

    nan = tmp_path / "float-nan.tif"
    Image.fromarray(np.array([[0.0, np.nan]], dtype=np.float32)).save(nan)
    with pytest.raises(DataError, match="NaN") as exc:
        open_image(nan)
    assert str(nan) in str(exc.value)


# ------------------------------------------------------------------------------------------------ transparency


def test_rgba_is_composited_on_white_not_stripped_of_its_alpha(tmp_path):
    assert ALPHA_BACKGROUND == (255, 255, 255)
    im = Image.new("RGBA", (3, 1))
    im.putpixel((0, 0), (10, 20, 30, 0))  # fully transparent, hiding a dark colour
    im.putpixel((1, 0), (10, 20, 30, 255))  # opaque
    im.putpixel((2, 0), (0, 0, 0, 128))  # half-transparent black over white
    path = tmp_path / "rgba.png"
    im.save(path)
    got = _pixels(path).astype(int)
    assert got[0, 0].tolist() == [255, 255, 255]  # convert("RGB") would give the hidden (10, 20, 30)
    assert got[0, 1].tolist() == [10, 20, 30]
    assert np.abs(got[0, 2] - 127).max() <= 1  # 0 * 128/255 + 255 * 127/255


def test_grey_alpha_palette_and_colour_keys_are_composited_on_white(tmp_path):
    la = Image.new("LA", (2, 1))
    la.putpixel((0, 0), (50, 0))
    la.putpixel((1, 0), (50, 255))
    la.save(tmp_path / "la.png")
    assert np.array_equal(_pixels(tmp_path / "la.png"), _grey([[255, 50]]))

    p = Image.new("P", (2, 1))
    p.putpalette([0, 0, 0, 200, 10, 10])
    p.putpixel((1, 0), 1)
    p.save(tmp_path / "p.png", transparency=1)  # palette entry 1 (red) is transparent
    assert Image.open(tmp_path / "p.png").mode == "P"
    assert _pixels(tmp_path / "p.png").tolist() == [[[0, 0, 0], [255, 255, 255]]]

    pa = Image.new("PA", (2, 1))
    pa.putpalette([0, 0, 0, 200, 10, 10])
    pa.putpixel((0, 0), (1, 255))
    pa.putpixel((1, 0), (1, 0))
    pa.save(tmp_path / "pa.tif")
    assert Image.open(tmp_path / "pa.tif").mode == "PA"
    assert _pixels(tmp_path / "pa.tif").tolist() == [[[200, 10, 10], [255, 255, 255]]]

    key = Image.new("L", (2, 1))
    key.putpixel((1, 0), 7)
    key.save(tmp_path / "l-key.png", transparency=7)  # tRNS: grey level 7 is transparent
    assert np.array_equal(_pixels(tmp_path / "l-key.png"), _grey([[0, 255]]))

    key16 = tmp_path / "grey16-key.png"
    Image.fromarray(np.array([[1000, 32768]], dtype=np.uint16)).save(key16, transparency=1000)
    assert Image.open(key16).mode == "I;16"
    assert np.array_equal(_pixels(key16), _grey([[255, 128]]))


def test_premultiplied_modes_are_unpremultiplied_then_composited():
    """RGBa / La hold colour already multiplied by alpha: 50 at alpha 128 over white is 50 + 255 * 127/255."""
    for im in (Image.new("RGBa", (1, 1), (50, 50, 50, 128)), Image.new("La", (1, 1), (50, 128))):
        got = np.asarray(to_rgb(im)).astype(int)
        assert to_rgb(im).mode == "RGB" and np.abs(got - 177).max() <= 1, (im.mode, got)


# ------------------------------------------------------------------------------------------- other colour modes


def test_bilevel_grey_cmyk_ycbcr_and_lab_files_convert_by_their_definitions(tmp_path):
    bilevel = Image.new("1", (2, 1))
    bilevel.putpixel((1, 0), 1)
    bilevel.save(tmp_path / "one.png")
    assert np.array_equal(_pixels(tmp_path / "one.png"), _grey([[0, 255]]))

    grey = Image.fromarray(np.array([[0, 77, 200]], dtype=np.uint8))
    grey.save(tmp_path / "l.png")
    assert np.array_equal(_pixels(tmp_path / "l.png"), _grey([[0, 77, 200]]))

    cmyk = Image.new("CMYK", (3, 1))
    cmyk.putpixel((1, 0), (255, 0, 0, 0))  # full cyan ink
    cmyk.putpixel((2, 0), (0, 0, 0, 255))  # full black ink
    cmyk.save(tmp_path / "cmyk.tif")
    assert Image.open(tmp_path / "cmyk.tif").mode == "CMYK"
    assert _pixels(tmp_path / "cmyk.tif").tolist() == [[[255, 255, 255], [0, 255, 255], [0, 0, 0]]]

    ycc = Image.new("YCbCr", (2, 1), (128, 128, 128))
    ycc.putpixel((1, 0), (76, 85, 255))  # JFIF YCbCr of pure red
    ycc.save(tmp_path / "ycc.tif")
    assert Image.open(tmp_path / "ycc.tif").mode == "YCbCr"
    got = _pixels(tmp_path / "ycc.tif").astype(int)
    assert got[0, 0].tolist() == [128, 128, 128] and np.abs(got[0, 1] - [255, 0, 0]).max() <= 2

    lab = Image.new("LAB", (2, 1), (255, 128, 128))  # L* = 100, a* = b* = 0: white
    lab.putpixel((1, 0), (0, 128, 128))  # L* = 0: black
    lab.save(tmp_path / "lab.tif")
    assert Image.open(tmp_path / "lab.tif").mode == "LAB"
    got = _pixels(tmp_path / "lab.tif").astype(int)
    assert (got[0, 0] >= 250).all() and (got[0, 1] <= 3).all()


def test_hsv_converts_by_its_definition():
    """No file format stores HSV, so it comes in as an image built in memory."""
    im = Image.new("HSV", (3, 1))
    im.putpixel((0, 0), (0, 255, 255))
    im.putpixel((1, 0), (85, 255, 255))
    im.putpixel((2, 0), (0, 0, 128))
    assert np.asarray(to_rgb(im)).tolist() == [[[255, 0, 0], [0, 255, 0], [128, 128, 128]]]


def test_an_encoder_sees_a_16bit_photo_as_its_8bit_equivalent_not_a_white_frame(tmp_path, tiny_model):
    """End to end: the encoders open files through open_image, so the fix reaches the embeddings."""
    from csr_core.encoders.registry import load_encoder

    ramp = np.tile(np.linspace(0, 255, 48).round().astype(np.uint16), (48, 1))
    Image.fromarray(ramp * 257).save(tmp_path / "ramp16.png")  # 16-bit: level v stored as v * 257
    Image.fromarray(ramp.astype(np.uint8)).save(tmp_path / "ramp8.png")
    Image.new("L", (48, 48), 255).save(tmp_path / "white.png")
    encoder = load_encoder(tiny_model)
    e16, e8, white = encoder.encode_images([tmp_path / n for n in ("ramp16.png", "ramp8.png", "white.png")])
    assert np.allclose(e16, e8, atol=1e-5)
    assert np.abs(e16 - white).max() > 1e-3  # the white frame it was read as before gives another embedding


# ---------------------------------------------------------------------------------------- duplicate photos


def _photo(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def test_find_duplicate_images_finds_one_file_under_two_paths_and_byte_identical_copies(tmp_path):
    a = _photo(tmp_path / "0.png", (200, 0, 0))
    b = _photo(tmp_path / "1.png", (0, 200, 0))  # same size as a, other bytes: hashed, not a duplicate
    copy = tmp_path / "copy-of-0.png"
    copy.write_bytes(a.read_bytes())
    hard = tmp_path / "0-hardlink.png"  # one inode under two names: what 0.jpg / 0.JPG are on a case-insensitive disk
    os.link(a, hard)
    sym = tmp_path / "0-symlink.png"
    sym.symlink_to(a)
    dotted = tmp_path / "sub" / ".." / "1.png"
    (tmp_path / "sub").mkdir()
    paths = [a, b, copy, hard, sym, dotted]
    found = find_duplicate_images(paths)
    assert [(d.first, d.second, d.how) for d in found] == [
        (0, 2, "identical bytes"), (0, 3, "same file"), (0, 4, "same file"), (1, 5, "same file")]
    assert len(found[0].sha256) == 64
    assert find_duplicate_images([a, b, tmp_path / "missing.png"]) == []  # missing files are for the image checks


def test_a_1000_photo_gallery_is_checked_with_stats_and_hashes_only_equal_sizes(tmp_path, monkeypatch):
    """The cost claim: distinct sizes are never hashed; only the files that share a size are."""
    import csr_core.images as images

    hashed: list[Path] = []
    real_sha256 = images.file_sha256

    def counting_sha256(path):
        hashed.append(Path(path))
        return real_sha256(path)

    monkeypatch.setattr(images, "file_sha256", counting_sha256)
    paths = []
    for i in range(1000):
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(b"x" * (100 + i))  # every size distinct
        paths.append(path)
    assert find_duplicate_images(paths) == [] and hashed == []
    paths[10].write_bytes(b"y" * 50)
    paths[20].write_bytes(b"z" * 50)  # same size as 10, other bytes
    paths[30].write_bytes(b"y" * 50)  # a copy of 10
    found = find_duplicate_images(paths)
    assert [(d.first, d.second, d.how) for d in found] == [(10, 30, "identical bytes")]
    assert sorted(hashed) == sorted([paths[10], paths[20], paths[30]])


def _gallery(tmp_path: Path, n: int = 6):
    """A small image-text set of `n` distinct photos (different colours), captions in English."""
    from csr_core.datasets.types import ImageTextSet

    paths = [_photo(tmp_path / "photos" / f"{i}.png", (40 * i, 255 - 40 * i, 90)) for i in range(n)]
    return ImageTextSet(name="hostile", split="test", image_ids=[f"p{i}" for i in range(n)], image_paths=paths,
                        captions={"en": [[f"photo number {i}"] for i in range(n)]}, provenance={"en": "unknown"})


def test_evaluation_refuses_a_duplicated_photo_before_loading_a_model(tmp_path):
    from csr_core.datasets.types import ImageTextSet
    from csr_core.evaluate import EvalConfig, run_evaluation

    base = _gallery(tmp_path)
    paths = list(base.image_paths or [])
    paths[5] = paths[1]  # p5 points at p1's file
    dup = ImageTextSet(name="hostile", split="test", image_ids=base.image_ids, image_paths=paths,
                       captions=base.captions, provenance=base.provenance)
    # a model that cannot load: the refusal must come first, before any model or encoding
    config = EvalConfig(model="open_clip:no-such-architecture/none", dataset="hostile", langs=("en",), ks=(1, 2),
                        n_resamples=10)
    with pytest.raises(DataError, match="duplicate images") as exc:
        run_evaluation(config, dataset=dup, write=False)
    message = str(exc.value)
    assert "'p1'" in message and "'p5'" in message and str(paths[1]) in message and "same file" in message
    assert "allow_duplicate_images" in message and "--allow-duplicate-images" in message


def test_allowing_duplicates_runs_and_labels_the_run(tmp_path, tiny_model):
    from csr_core.datasets.types import ImageTextSet
    from csr_core.evaluate import EvalConfig, run_evaluation
    from csr_core.results import ResultsStore

    base = _gallery(tmp_path)
    paths = list(base.image_paths or [])
    (tmp_path / "photos" / "copy.png").write_bytes(paths[2].read_bytes())
    paths[4] = tmp_path / "photos" / "copy.png"  # byte-identical copy of p2 under p4
    dup = ImageTextSet(name="hostile", split="test", image_ids=base.image_ids, image_paths=paths,
                       captions=base.captions, provenance=base.provenance)
    config = EvalConfig(model=tiny_model, dataset="hostile", langs=("en",), ks=(1, 2), n_resamples=10)
    store = ResultsStore(tmp_path / "results")
    outcome = run_evaluation(config, dataset=dup, store=store, allow_duplicate_images=True)
    assert len(outcome.rows) > 0
    (note,) = [n for n in outcome.notes if n.startswith("DUPLICATE IMAGES (allowed)")]
    assert "'p2'" in note and "'p4'" in note and "identical bytes" in note
    (manifest,) = store.runs()
    assert "'p4'" in manifest["duplicate_images"]
    clean = run_evaluation(config, dataset=base, write=False)  # distinct photos: nothing to allow, nothing noted
    assert not any("DUPLICATE" in n for n in clean.notes)


def test_cli_refuses_two_ids_for_one_photo_unless_allowed(tmp_path, tiny_model):
    folder = tmp_path / "ds"
    for i in range(6):
        _photo(folder / f"{i}.png", (40 * i, 255 - 40 * i, 90))
    lines = [{"id": f"p{i}", "image": f"{i}.png", "captions": {"en": [f"photo number {i}"]}} for i in range(6)]
    lines.append({"id": "p0-again", "image": "0.png", "captions": {"en": ["photo number zero"]}})
    (folder / "captions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    args = ["eval", "--model", tiny_model, "--dataset", f"jsonl:{folder}", "--langs", "en", "--k", "1", "2",
            "--n-resamples", "10", "--quiet", "--out", str(tmp_path / "results")]
    refused = run_cli(*args)
    assert refused.rc == 2, refused.text
    assert "duplicate images" in refused.err and "'p0'" in refused.err and "'p0-again'" in refused.err
    assert str(folder / "0.png") in refused.err and "--allow-duplicate-images" in refused.err
    from csr_core.results import ResultsStore

    assert ResultsStore(tmp_path / "results").runs() == []  # nothing was written
    allowed = run_cli(*args, "--allow-duplicate-images")
    assert allowed.rc == 0, allowed.text
    assert "note: DUPLICATE IMAGES (allowed)" in allowed.out and "'p0-again'" in allowed.out
