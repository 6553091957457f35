"""Multi30K task 1 (aligned en/de/fr/cs) and task 2 (independent en/de captions)."""

from __future__ import annotations

import os
from pathlib import Path

from csr_core.datasets._files import Location, _first_existing, _read_caption_file, _read_lines, _same_length
from csr_core.datasets.types import HUMAN, INDEPENDENT, ImageTextSet
from csr_core.errors import DataError

M30K_TASK1_SPLITS = ("train", "val", "test_2016_flickr", "test_2017_flickr", "test_2018_flickr", "test_2017_mscoco")
_M30K_ALIASES = {"test": "test_2016_flickr", "test_2016": "test_2016_flickr", "dev": "val", "valid": "val"}
M30K_LANGS = ("en", "de", "fr", "cs")


MULTI30K_FILES = Location("multi30k", ("task1",))


def _m30k_raw(folder: Path, task: int, stem: str) -> Path | None:
    raw = folder / f"task{task}" / "raw"
    return _first_existing(raw / f"{stem}.gz", raw / stem)


def _m30k_image_list(folder: Path, split: str) -> tuple[Path, list[str]]:
    path = folder / "task1" / "image_splits" / f"{split}.txt"
    names = [n.strip() for n in _read_lines(path)]
    for i, n in enumerate(names, 1):
        if not n:
            raise DataError(f"{path}:{i}: empty image name")
    return path, names


def _m30k_task1(folder: Path, split: str) -> tuple[list[str], dict[str, list[str]], dict[str, Path]]:
    """Image names and the aligned captions per language that exist for a task1 split (checked line counts)."""
    list_path, names = _m30k_image_list(folder, split)
    files = {lang: p for lang in M30K_LANGS if (p := _m30k_raw(folder, 1, f"{split}.{lang}")) is not None}
    if "en" not in files:
        raise DataError(f"{folder / 'task1' / 'raw'}: no {split}.en(.gz) caption file")
    lines = {lang: _read_caption_file(p) for lang, p in files.items()}
    _same_length({list_path: names, **{files[lang]: lines[lang] for lang in lines}})
    return names, lines, files


def _coco_or_flat(image_root: Path, name: str) -> Path:
    """A file in a user image folder: `<root>/<name>`, or COCO's `<root>/train2014/<name>` / `val2014` layout."""
    direct = image_root / name
    if direct.exists() or not name.startswith("COCO_"):
        return direct
    sub = "train2014" if "_train2014_" in name else "val2014" if "_val2014_" in name else ""
    nested = image_root / sub / name
    return nested if sub and nested.exists() else direct


def load_multi30k(
    split: str = "test",
    data_root: str | os.PathLike | None = None,
    image_root: str | os.PathLike | None = None,
    task: int = 1,
) -> ImageTextSet:
    """Multi30K. Task 1: one English caption per image with human German/French/Czech translations (aligned),
    splits train, val, test_2016_flickr (= test), test_2017_flickr, test_2018_flickr, test_2017_mscoco. Task 2:
    five independent English and five independent German captions per image (train, val, test_2016).
    Images come from a user's Flickr30k folder (`image_root`, files `<id>.jpg`; COCO names for test_2017_mscoco);
    without it the set is text-only."""
    folder = MULTI30K_FILES.find(data_root)
    split = _M30K_ALIASES.get(split, split)
    if task not in (1, 2):
        raise DataError(f"multi30k task must be 1 or 2, got {task!r}")
    valid = M30K_TASK1_SPLITS if task == 1 else ("train", "val", "test_2016_flickr")
    if split not in valid:
        raise DataError(f"multi30k task {task} has no split {split!r}; choose one of {', '.join(valid)} (or 'test')")
    if task == 1:
        names, lines, files = _m30k_task1(folder, split)
        captions = {lang: [[c] for c in lines[lang]] for lang in lines}
        provenance = {lang: HUMAN for lang in lines}
        aligned = frozenset(lines)
        notes = (
            f"Multi30K task 1 {split}: one English caption per image and its human translations "
            f"({', '.join(lang for lang in lines if lang != 'en')}); line i of every file belongs to image i."
        )
    else:
        list_path, names = _m30k_image_list(folder, split)
        stem = "test_2016" if split == "test_2016_flickr" else split
        captions = {}
        all_files: dict[Path, list[str]] = {list_path: names}
        for lang in ("en", "de"):
            per: list[list[str]] = [[] for _ in names]
            for k in range(1, 6):
                path = _m30k_raw(folder, 2, f"{stem}.{k}.{lang}")
                if path is None:
                    raise DataError(f"{folder / 'task2' / 'raw'}: missing {stem}.{k}.{lang}(.gz)")
                caps = _read_caption_file(path)
                all_files[path] = caps
                _same_length(all_files)
                for i, c in enumerate(caps):
                    per[i].append(c)
            captions[lang] = per
        provenance = {"en": INDEPENDENT, "de": INDEPENDENT}
        aligned = frozenset()
        notes = f"Multi30K task 2 {split}: five English and five German captions per image, written independently."
    ids = list(names)
    sources = ("coco-train2014", "coco-val2014") if split == "test_2017_mscoco" else ("flickr30k",)
    paths = None
    if image_root is not None:
        root = Path(image_root).expanduser()
        paths = [_coco_or_flat(root, n.split("#", 1)[0]) for n in names]
    else:
        notes += " Text-only: pass image_root=<your Flickr30k image folder> for image settings."
    return ImageTextSet(
        name="multi30k" if task == 1 else "multi30k-task2",
        split=split,
        image_ids=ids,
        image_paths=paths,
        captions=captions,
        provenance=provenance,
        notes=notes,
        aligned_langs=aligned,
        image_sources=sources,
        training_images_note="Multi30K photos are Flickr30k photos (test_2017_mscoco: COCO 2014)",
        meta={"task": task},
    )


def m30k_split_ids(data_root: str | os.PathLike | None) -> dict[str, list[str]]:
    """Photo ids of every task-1 split whose image list is present (read from the lists, no captions loaded)."""
    folder = MULTI30K_FILES.find(data_root)
    lists = folder / "task1" / "image_splits"
    return {s: _m30k_image_list(folder, s)[1] for s in M30K_TASK1_SPLITS if (lists / f"{s}.txt").exists()}
