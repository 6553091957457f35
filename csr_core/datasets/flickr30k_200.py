"""flickr30k-200: NLLB machine translations of Multi30K test_2016 into ~200 languages."""

from __future__ import annotations

import os
from pathlib import Path

from csr_core.datasets._files import Location, _read_caption_file, _read_lines, _same_length
from csr_core.datasets.codes import _FLORES_RE, flores_tags
from csr_core.datasets.types import HUMAN, MACHINE, ImageTextSet
from csr_core.errors import DataError

FLICKR30K_200_FILES = Location("flickr30k-200", ("filenames.txt",))


def load_flickr30k_200(
    split: str = "test", data_root: str | os.PathLike | None = None, image_root: str | os.PathLike | None = None
) -> ImageTextSet:
    """flickr30k-200 (NLLB-CLIP): the 1000 Multi30K test_2016 photos, `filenames.txt`, and one `<flores>.txt` per
    language with line i describing photo i. `eng_Latn` is the human English source; every other language is an
    NLLB machine translation of it (provenance "machine"). FLORES codes become BCP-47 tags with `flores_tags`
    (`deu_Latn` → `de`); the original codes are in `meta["source_codes"]`. Files that are not FLORES-coded (such as
    `eng_captions.txt`, a copy of the English) are listed in `meta["other_files"]`. Images from `image_root`
    (Flickr30k folder), else text-only."""
    if split not in ("test", "test_2016_flickr"):
        raise DataError(f"flickr30k-200 has no split {split!r}; it has only 'test' (Multi30K test_2016)")
    folder = FLICKR30K_200_FILES.find(data_root)
    names_path = folder / "filenames.txt"
    names = [n.strip() for n in _read_lines(names_path)]
    entries = sorted(p for p in folder.iterdir() if p.suffix == ".txt" and p.name != "filenames.txt")
    flores = {p.stem: p for p in entries if _FLORES_RE.match(p.stem)}
    other = [p.name for p in entries if not _FLORES_RE.match(p.stem)]
    if not flores:
        raise DataError(f"{folder}: no FLORES-coded caption files such as deu_Latn.txt")
    tags = flores_tags(flores)
    lines = {tags[c]: _read_caption_file(p) for c, p in flores.items()}
    _same_length({names_path: names, **{flores[c]: lines[tags[c]] for c in flores}})
    order = sorted(lines, key=lambda t: (t != "en", t))
    provenance = {t: (HUMAN if t == "en" else MACHINE) for t in order}
    paths = None
    notes = (
        f"flickr30k-200: {len(names)} Multi30K test_2016 photos; {len(order) - 1} languages machine-translated "
        "(NLLB) from English."
    )
    if image_root is not None:
        root = Path(image_root).expanduser()
        paths = [root / n for n in names]
    else:
        notes += " Text-only: pass image_root=<your Flickr30k image folder> for image settings."
    return ImageTextSet(
        name="flickr30k-200",
        split="test",
        image_ids=names,
        image_paths=paths,
        captions={t: [[c] for c in lines[t]] for t in order},
        provenance=provenance,
        notes=notes,
        aligned_langs=frozenset(order),
        image_sources=("flickr30k",),
        training_images_note="flickr30k-200 photos are Flickr30k / Multi30K test_2016 photos",
        meta={"source_codes": {tags[c]: c for c in flores}, "other_files": other},
    )


