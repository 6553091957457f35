"""A user's own folder: captions.jsonl (+ optional meta.json) beside the photos."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from csr_core import _io
from csr_core.datasets._files import _caption_list, _jsonl_objects
from csr_core.datasets.codes import normalize_lang
from csr_core.datasets.types import UNKNOWN, ImageTextSet
from csr_core.errors import DataError


def load_jsonl(
    path: str | os.PathLike,
    split: str = "test",
    image_root: str | os.PathLike | None = None,
) -> ImageTextSet:
    """A user's folder with `captions.jsonl`: one line per photo,
    `{"image": "a.jpg", "captions": {"en": ["..."], "de": ["..."]}}`, optional `"id"` and `"split"` (default
    `"test"`). Images are relative to the folder (or `image_root`). An optional `meta.json` beside it may give
    `{"name", "provenance": {"de": "machine"}, "aligned": ["en", "de"], "image_sources": [...], "notes"}`;
    provenance defaults to "unknown"."""
    p = Path(path).expanduser()
    file = p / "captions.jsonl" if p.is_dir() else p
    if not file.exists():
        raise DataError(f"{file}: captions.jsonl not found")
    folder = file.parent
    meta_path = folder / "meta.json"
    meta = _read_meta(meta_path) if os.path.lexists(meta_path) else {}
    images_dir = Path(image_root).expanduser() if image_root is not None else folder
    ids: list[str] = []
    images: list[str] = []
    rows: list[dict[str, list[str]]] = []
    seen: dict[str, str] = {}
    splits_present: dict[str, int] = {}
    for where, obj in _jsonl_objects(file):
        for fld in ("image", "captions"):
            if fld not in obj:
                raise DataError(f"{where}: missing field {fld!r}")
        line_split = str(obj.get("split", "test"))
        splits_present[line_split] = splits_present.get(line_split, 0) + 1
        if line_split != split:
            continue
        if not isinstance(obj["image"], str) or not obj["image"].strip():
            raise DataError(f"{where}: 'image' must be a non-empty file name")
        image_id = str(obj.get("id", obj["image"]))
        if image_id in seen:
            raise DataError(f"{where}: image {image_id!r} repeats {seen[image_id]}")
        seen[image_id] = where
        caps = obj["captions"]
        if not isinstance(caps, dict):
            raise DataError(f"{where}: 'captions' must be an object {{language: [captions]}}")
        row: dict[str, list[str]] = {}
        for code, texts in caps.items():
            lang = normalize_lang(code, where)
            row.setdefault(lang, []).extend(_caption_list(texts, where, f"captions[{code!r}]"))
        ids.append(image_id)
        images.append(obj["image"])
        rows.append(row)
    if not ids:
        present = ", ".join(f"{s} ({n})" for s, n in splits_present.items()) or "none"
        raise DataError(f"{file}: split {split!r} is empty; splits present: {present}")
    langs = list(dict.fromkeys(lang for row in rows for lang in row))
    captions = {lang: [row.get(lang, []) for row in rows] for lang in langs}
    provenance = {}
    for code, prov in meta.get("provenance", {}).items():
        lang = normalize_lang(code, str(meta_path))
        if lang in captions:
            provenance[lang] = prov
    provenance = {lang: provenance.get(lang, UNKNOWN) for lang in langs}
    aligned = frozenset(normalize_lang(c, str(meta_path)) for c in meta.get("aligned", []))
    return ImageTextSet(
        name=str(meta.get("name") or f"jsonl:{folder}"),
        split=split,
        image_ids=ids,
        image_paths=[images_dir / im for im in images],
        captions=captions,
        provenance=provenance,
        notes=str(meta.get("notes", f"User data from {file}.")),
        aligned_langs=aligned,
        image_sources=tuple(meta.get("image_sources", ("user",))),
        meta={"source": str(file)},
    )




#: meta.json's fields and the JSON type each must have (a string where a list belongs would be read character by
#: character: `"image_sources": "flickr8k"` would defeat the leakage check).
_META_TYPES: dict[str, tuple[type, str]] = {"name": (str, "a string"), "notes": (str, "a string"),
                                            "provenance": (dict, 'an object {"de": "machine", ...}'),
                                            "aligned": (list, 'a list of language codes ["en", "de"]'),
                                            "image_sources": (list, 'a list of strings ["flickr8k"]')}


def _read_meta(meta_path: Path) -> dict[str, Any]:
    """meta.json through the input gate, every known field type-checked; errors name the file and the field."""
    meta = _io.read_json_file(meta_path, "dataset meta")
    for key, (kind, wanted) in _META_TYPES.items():
        if key in meta and not isinstance(meta[key], kind):
            raise DataError(f"{meta_path}: {key!r} must be {wanted}, got {type(meta[key]).__name__} "
                            f"{json.dumps(meta[key])[:60]}")
    for key in ("aligned", "image_sources"):
        bad = [v for v in meta.get(key, []) if not isinstance(v, str) or not v.strip()]
        if bad:
            raise DataError(f"{meta_path}: {key!r} must hold non-empty strings, got {bad[0]!r}")
    for code, prov in meta.get("provenance", {}).items():
        if not isinstance(prov, str) or not prov.strip():
            raise DataError(f"{meta_path}: provenance of {code!r} must be a non-empty string, got {prov!r}")
    return meta
