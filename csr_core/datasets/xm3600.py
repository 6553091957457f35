"""Crossmodal-3600: native captions in 36 languages."""

from __future__ import annotations

import os
from pathlib import Path

from csr_core.datasets._files import Location, _caption_list, _jsonl_objects
from csr_core.datasets.codes import normalize_lang
from csr_core.datasets.types import INDEPENDENT, ImageTextSet
from csr_core.errors import DataError

XM3600_FILES = Location("xm3600", ("captions.jsonl",))


def load_xm3600(
    split: str = "test",
    data_root: str | os.PathLike | None = None,
    image_root: str | os.PathLike | None = None,
    caption_field: str = "caption",
) -> ImageTextSet:
    """Crossmodal-3600 in its published layout: `captions.jsonl` (one object per photo: `"image/key"` and per
    language `{"caption": [...], "caption/tokenized": [...], ...}`) and `images/<image/key>.jpg`. Captions were
    written natively per language (not translations), so no languages are aligned. Not shipped here: pass
    `data_root` (the folder holding captions.jsonl, or its parent with `xm3600/`)."""
    if split != "test":
        raise DataError(f"xm3600 has no split {split!r}; it has only 'test'")
    folder = XM3600_FILES.find(data_root)
    path = folder / "captions.jsonl"
    ids: list[str] = []
    per_lang: dict[str, dict[int, list[str]]] = {}
    first_seen: dict[str, str] = {}
    for where, obj in _jsonl_objects(path):
        if "image/key" not in obj:
            raise DataError(f"{where}: missing field 'image/key'")
        key = str(obj["image/key"])
        if key in first_seen:
            raise DataError(f"{where}: image/key {key!r} repeats {first_seen[key]}")
        first_seen[key] = where
        row = len(ids)
        ids.append(key)
        for code, val in obj.items():
            if code == "image/key" or not isinstance(val, dict):
                continue
            lang = normalize_lang(code, where)
            if caption_field not in val:
                raise DataError(f"{where}: language {code!r} has no field {caption_field!r}")
            per_lang.setdefault(lang, {})[row] = _caption_list(val[caption_field], where, f"{code}.{caption_field}")
    if not ids:
        raise DataError(f"{path}: no photos (empty split)")
    images_dir = Path(image_root).expanduser() if image_root is not None else folder / "images"
    if image_root is not None and not images_dir.is_dir():
        raise DataError(f"{images_dir}: image folder not found")
    paths = [images_dir / f"{k}.jpg" for k in ids] if images_dir.is_dir() else None
    captions = {lang: [rows.get(i, []) for i in range(len(ids))] for lang, rows in per_lang.items()}
    return ImageTextSet(
        name="xm3600",
        split="test",
        image_ids=ids,
        image_paths=paths,
        captions=captions,
        provenance={lang: INDEPENDENT for lang in captions},
        notes=f"Crossmodal-3600: {len(ids)} photos, captions written natively in {len(captions)} languages."
        + ("" if paths else f" Text-only: no image folder at {images_dir}."),
        image_sources=("open-images",),
        training_images_note="Crossmodal-3600 photos come from Open Images",
    )


