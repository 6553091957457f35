"""Image–caption datasets: one `ImageTextSet` type and loaders for the official layouts.

Every loader returns an `ImageTextSet`: image ids (and paths, or None for a text-only set), captions per language
per image (several allowed, possibly none for an image), a provenance label per language, and the languages whose
caption j is a translation of the same source caption j (`aligned_langs`, what cross-lingual t2t retrieval needs).

Provenance labels: `"human"` (written or translated by people, line-aligned with the other aligned languages),
`"machine"` (machine translation of the aligned source), `"human-independent"` (human captions written separately in
that language, not translations: Multi30K task2, STAIR Japanese in XTD10, Crossmodal-3600, Flickr8k) and
`"unknown"` (the publishers do not say, or user data without a `meta.json`).

Image ids are the file names the datasets publish (`1000268201.jpg`, `COCO_train2014_000000061844.jpg`); Flickr8k
photos (`1000268201_693b08cb0e.jpg`) get their Flickr id (`1000268201.jpg`), the name Flickr30k and Multi30K use, so
`check_leakage` sees the same photo under the same key in every set.

Language codes are BCP-47 tags normalised with `langcodes` (`deu_Latn` → `de`, `jp` → `ja`); a caption set that is
not a plain language gets a private-use suffix (`en-x-f8k`: the five Flickr8k English captions).

Bad input never passes silently: a missing or unreadable image, caption files of different lengths, an unknown
language code, a missing JSON field or an empty split raise `DataError` naming the file (and line);
`skip_unreadable=True` leaves unreadable images out and lists them in `ImageTextSet.skipped`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from csr_core.datasets._files import Location
from csr_core.datasets.codes import flores_tags, normalize_lang
from csr_core.datasets.flickr import (
    F8K_M30K_SEED,
    FLICKR8K_CAPTIONS,
    FLICKR8K_IMAGES,
    F8K_M30K_TEST,
    F8K_M30K_VAL,
    _f8k_m30k_plan,
    load_flickr8k,
    load_flickr8k_multi30k,
)
from csr_core.datasets.flickr8k_languages import LanguageSource, flickr8k_multi30k_languages
from csr_core.datasets.flickr30k_200 import FLICKR30K_200_FILES, load_flickr30k_200
from csr_core.datasets.jsonl import load_jsonl
from csr_core.datasets.leakage import LeakageReport, TrainingSource, canonical_image_key, check_leakage
from csr_core.datasets.multi30k import (
    M30K_LANGS,
    M30K_TASK1_SPLITS,
    MULTI30K_FILES,
    load_multi30k,
    m30k_split_ids,
)
from csr_core.datasets.types import (
    HUMAN,
    IMAGE_EXTENSIONS,
    INDEPENDENT,
    MACHINE,
    PROVENANCE_LABELS,
    PROVENANCES,
    TRANSLATED,
    UNKNOWN,
    FlatCaptions,
    ImageTextSet,
    ParallelCaptions,
)
from csr_core.datasets.xm3600 import XM3600_FILES, load_xm3600
from csr_core.datasets.xtd10 import XTD10_FILES, load_xtd10
from csr_core.errors import DataError
from csr_core.images import DEFAULT_MAX_PIXELS, check_images


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset: everything the rest of the project asks about it, in one entry.

    `locations`: the files it reads (all must be present; `available` and the loader use the same `Location`s).
    `fixed_splits`: the splits whose photo ids training checks against (`split_image_ids`); `split_ids` computes
    them without loading captions when the dataset has a faster way (default: load each split).
    `image_sources`: the photo collections its images come from (what a model trained on `<name>-train` has seen,
    for the leakage guard). `clip_benchmark`: the name CLIP_benchmark gives it (for imported reference results)."""

    name: str
    loader: Callable[..., ImageTextSet]
    description: str
    splits: tuple[str, ...]
    locations: tuple[Location, ...]
    images: str  # where its images come from, for people
    image_sources: tuple[str, ...]
    fixed_splits: tuple[str, ...] = ("test",)
    split_ids: Callable[[str | os.PathLike | None], dict[str, list[str]]] | None = None
    clip_benchmark: str | None = None
    languages: tuple[LanguageSource, ...] = ()  # the caption sets it offers, for listings (empty: see the loader)

    def available(self, data_root: str | os.PathLike | None = None) -> bool:
        return all(loc.exists(data_root) for loc in self.locations)

    def split_image_ids(self, data_root: str | os.PathLike | None = None) -> dict[str, list[str]]:
        if self.split_ids is not None:
            return self.split_ids(data_root)
        return {s: load_dataset(self.name, split=s, data_root=data_root, verify_images="none").image_ids
                for s in self.fixed_splits}


def _f8k_m30k_split_ids(data_root: str | os.PathLike | None) -> dict[str, list[str]]:
    return {k: list(v) for k, v in _f8k_m30k_plan(data_root).splits.items()}


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "flickr8k-multi30k", load_flickr8k_multi30k,
            "1000 Flickr8k photos; Multi30K task1 en/de/fr/cs + Framed pt (human, aligned) on 937; native zh, translated ar "
            "on all; fixed split by photo 663/100/237",
            ("train", "val", "test"), (FLICKR8K_IMAGES, MULTI30K_FILES), "shipped (flickr8k/images)",
            ("flickr8k", "flickr30k"), fixed_splits=("train", "val", "test"), split_ids=_f8k_m30k_split_ids,
            languages=flickr8k_multi30k_languages(),
        ),
        DatasetInfo(
            "multi30k", load_multi30k,
            "Multi30K task1 (en + human de/fr/cs translations; task=2: 5 independent en/de captions)",
            M30K_TASK1_SPLITS, (MULTI30K_FILES,), "user Flickr30k folder (image_root), else text-only",
            ("flickr30k",), fixed_splits=M30K_TASK1_SPLITS, split_ids=m30k_split_ids,
        ),
        DatasetInfo(
            "flickr8k", load_flickr8k, "Flickr8k photos with five English captions each",
            ("all", "train", "val", "test"), (FLICKR8K_CAPTIONS,), "flickr8k/images or image_root",
            ("flickr8k", "flickr30k"), fixed_splits=("all",), clip_benchmark="flickr8k",
        ),
        DatasetInfo(
            "xtd10", load_xtd10, "XTD10: 1000 COCO train2014 photos, captions in 11 languages (ja independent)",
            ("test",), (XTD10_FILES,), "user COCO train2014 folder (image_root), else text-only",
            ("coco-train2014",), clip_benchmark="multilingual_mscoco_captions",
        ),
        DatasetInfo(
            "xm3600", load_xm3600, "Crossmodal-3600: 3600 photos, native captions in 36 languages",
            ("test",), (XM3600_FILES,), "xm3600/images (user-supplied)", ("open-images",),
            clip_benchmark="crossmodal3600",
        ),
        DatasetInfo(
            "flickr30k-200", load_flickr30k_200,
            "Multi30K test_2016 English captions machine-translated (NLLB) into ~200 languages",
            ("test",), (FLICKR30K_200_FILES,), "user Flickr30k folder (image_root), else text-only",
            ("flickr30k",), clip_benchmark="flickr30k-200",
        ),
    )
}


def list_datasets(data_root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Registered datasets with description, splits, image source and whether their captions are present here."""
    out = [
        {
            "name": info.name,
            "description": info.description,
            "splits": list(info.splits),
            "images": info.images,
            "available": info.available(data_root),
            "languages": [
                {"lang": src.lang, "provenance": src.provenance, "source": src.source, "splits": list(src.splits),
                 "present": src.present(data_root)}
                for src in info.languages
            ],
        }
        for info in DATASETS.values()
    ]
    out.append(
        {
            "name": "jsonl:<folder>",
            "description": "your own folder with captions.jsonl ({'image': 'a.jpg', 'captions': {'en': [...]}})",
            "splits": ["test", "(any 'split' field)"],
            "images": "the folder (or image_root)",
            "available": True,
            "languages": [],
        }
    )
    return out


def _verify(ts: ImageTextSet, mode: str, skip_unreadable: bool, max_pixels: int) -> ImageTextSet:
    """Check image files ('exists' | 'header' | 'decode' | 'none'); raise, or drop and report when skipping."""
    if ts.image_paths is None or mode == "none":
        return ts
    if mode not in ("exists", "header", "decode"):
        raise DataError(f"verify_images must be one of none, exists, header, decode; got {mode!r}")
    bad: dict[int, str] = {}
    for i, p in enumerate(ts.image_paths):
        if mode == "exists":
            if not p.is_file():
                bad[i] = f"{p}: image file not found"
            continue
        _, skipped = check_images([p], skip_unreadable=True, max_pixels=max_pixels, decode=mode == "decode")
        if skipped:
            bad[i] = skipped[0][1]
    if not bad:
        return ts
    if not skip_unreadable:
        shown = "\n  ".join(bad[i] for i in sorted(bad)[:10])
        more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise DataError(
            f"{ts.name}/{ts.split}: {len(bad)} of {len(ts)} images are missing or unreadable:\n  {shown}{more}\n"
            "Fix them, or leave them out with `eval --skip-unreadable` (API: skip_unreadable=True); they are then "
            "listed as skipped."
        )
    return ts.drop_images(bad, bad)


def load_dataset(
    name: str,
    split: str = "test",
    data_root: str | os.PathLike | None = None,
    langs: Sequence[str] | None = None,
    image_root: str | os.PathLike | None = None,
    *,
    skip_unreadable: bool = False,
    verify_images: str = "header",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    **opts: Any,
) -> ImageTextSet:
    """Load a registered dataset (see `list_datasets`) or `jsonl:<folder>`, then keep `langs` and check images.

    `verify_images`: 'header' (default: every image exists, is an image and is under `max_pixels`), 'decode' (also
    decodes the pixels), 'exists', or 'none'. Unreadable images raise a DataError naming them, unless
    `skip_unreadable=True`, which leaves them out and lists them in `skipped`. Loader options (e.g. `task=2` for
    multi30k, `caption_field` for xm3600) go in `opts`.
    """
    if name.startswith("jsonl:"):
        loader: Callable[..., ImageTextSet] = load_jsonl
        kwargs: dict[str, Any] = {"path": name[len("jsonl:") :], "split": split, "image_root": image_root}
        if data_root is not None:
            raise DataError("jsonl datasets take their folder in the name (jsonl:<folder>), not data_root")
    elif name in DATASETS:
        loader = DATASETS[name].loader
        kwargs = {"split": split, "data_root": data_root, "image_root": image_root}
    else:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)} or jsonl:<folder>")
    accepted = set(inspect.signature(loader).parameters)
    unknown = sorted(set(opts) - accepted)
    if unknown:
        extra = sorted(accepted - set(kwargs) - {"path"})
        raise DataError(f"dataset {name!r} does not take option(s) {unknown}; it takes {extra or 'none'}")
    ts = loader(**kwargs, **opts)
    if len(ts) == 0:
        raise DataError(f"{name}/{split}: the split is empty")
    if langs is not None:
        ts = ts.select_languages(langs)
    if not ts.languages:
        raise DataError(f"{name}/{split}: no captions in any language")
    return _verify(ts, verify_images, skip_unreadable, max_pixels)


def split_image_ids(name: str, data_root: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """Image ids of every fixed split of a dataset (so training can prove no photo is on both sides)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name].split_image_ids(data_root)


__all__ = [
    "DATASETS",
    "DatasetInfo",
    "F8K_M30K_SEED",
    "F8K_M30K_TEST",
    "F8K_M30K_VAL",
    "FlatCaptions",
    "HUMAN",
    "IMAGE_EXTENSIONS",
    "INDEPENDENT",
    "ImageTextSet",
    "LeakageReport",
    "M30K_LANGS",
    "M30K_TASK1_SPLITS",
    "MACHINE",
    "PROVENANCES",
    "PROVENANCE_LABELS",
    "TRANSLATED",
    "TrainingSource",
    "ParallelCaptions",
    "UNKNOWN",
    "canonical_image_key",
    "check_leakage",
    "flores_tags",
    "list_datasets",
    "load_dataset",
    "load_flickr30k_200",
    "load_flickr8k",
    "load_flickr8k_multi30k",
    "load_jsonl",
    "load_multi30k",
    "load_xm3600",
    "load_xtd10",
    "normalize_lang",
    "split_image_ids",
]
