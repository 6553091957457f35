"""XTD10: COCO train2014 photos with captions in 11 languages."""

from __future__ import annotations

import os
from pathlib import Path

from csr_core.datasets._files import Location, _read_caption_file, _read_lines, _same_length
from csr_core.datasets.multi30k import _coco_or_flat
from csr_core.datasets.types import HUMAN, INDEPENDENT, MACHINE, ImageTextSet
from csr_core.errors import DataError

_XTD10_FILES = {
    "en": "XTD10/test_1kcaptions_en.txt",
    "es": "XTD10/test_1kcaptions_es.txt",
    "it": "XTD10/test_1kcaptions_it.txt",
    "ko": "XTD10/test_1kcaptions_ko.txt",
    "pl": "XTD10/test_1kcaptions_pl.txt",
    "ru": "XTD10/test_1kcaptions_ru.txt",
    "tr": "XTD10/test_1kcaptions_tr.txt",
    "zh": "XTD10/test_1kcaptions_zh.txt",
    "de": "MIC/test_1kcaptions_de.txt",
    "fr": "MIC/test_1kcaptions_fr.txt",
    "ja": "STAIR/test_1kcaptions_jp.txt",
}


XTD10_FILES = Location("xtd10", ("XTD10",))


def load_xtd10(
    split: str = "test", data_root: str | os.PathLike | None = None, image_root: str | os.PathLike | None = None
) -> ImageTextSet:
    """XTD10: 1000 COCO train2014 photos, one caption each in 11 languages (line i ↔ `test_image_names.txt` line i).

    en is the COCO caption; es it ko pl ru tr zh are crowd-sourced human translations of it (XTD10 README). de, fr
    come from MIC and translate the same line; we label them "machine": the XTD10 files do not say, but the text
    shows machine-translation errors ("player" → "lecteur", "home plate" → "plaque de la maison", "baseball" →
    "Basketball"). ja comes from STAIR Captions (`jp` in the file name), written independently in Japanese for the
    photo: not a translation, so it is not in `aligned_langs`.
    Images need a user's COCO train2014 folder (`image_root`); without it the set is text-only.
    """
    if split != "test":
        raise DataError(f"xtd10 has no split {split!r}; it has only 'test'")
    folder = XTD10_FILES.find(data_root)
    names_path = folder / "XTD10" / "test_image_names.txt"
    names = [n.strip() for n in _read_lines(names_path)]
    files = {lang: folder / rel for lang, rel in _XTD10_FILES.items()}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise DataError(f"xtd10 caption files missing: {', '.join(missing)}")
    lines = {lang: _read_caption_file(p) for lang, p in files.items()}
    _same_length({names_path: names, **{files[lang]: lines[lang] for lang in lines}})
    provenance = {lang: HUMAN for lang in lines} | {"de": MACHINE, "fr": MACHINE, "ja": INDEPENDENT}
    paths = None
    notes = (
        "XTD10 test: 1000 COCO train2014 photos; de/fr (MIC) labelled machine-translated (inferred from the text); "
        "ja (STAIR) is an independent caption, not a translation."
    )
    if image_root is not None:
        root = Path(image_root).expanduser()
        paths = [_coco_or_flat(root, n) for n in names]
    else:
        notes += " Text-only: pass image_root=<your COCO train2014 folder> for image settings."
    return ImageTextSet(
        name="xtd10",
        split="test",
        image_ids=names,
        image_paths=paths,
        captions={lang: [[c] for c in lines[lang]] for lang in lines},
        provenance=provenance,
        notes=notes,
        aligned_langs=frozenset(lines) - {"ja"},
        image_sources=("coco-train2014",),
        training_images_note=(
            "XTD10 images are COCO train2014: never evaluate image retrieval with a model tuned on COCO train"
        ),
        meta={"source_codes": {"ja": "jp"}},
    )


