"""Flickr8k photos and captions, and the offline flickr8k-multi30k set with its fixed photo split."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from csr_core.datasets._files import Location, _first_existing, _read_lines
from csr_core.datasets.flickr8k_languages import extra_languages
from csr_core.datasets.multi30k import M30K_LANGS, MULTI30K_FILES, _m30k_image_list, _m30k_task1
from csr_core.datasets.types import HUMAN, IMAGE_EXTENSIONS, INDEPENDENT, ImageTextSet
from csr_core.errors import DataError


def _flickr_id(file_name: str) -> str:
    """Flickr8k file `1000268201_693b08cb0e.jpg` → Flickr30k/Multi30K name `1000268201.jpg`."""
    return file_name.split("_", 1)[0].rsplit(".", 1)[0] + ".jpg"


def _read_flickr8k_captions(path: Path) -> dict[str, list[str]]:
    """`captions.txt` (CSV `image,caption`) or the official `Flickr8k.token.txt` (`name#j<TAB>caption`)."""
    out: dict[str, list[str]] = {}
    if path.name.endswith(".token.txt"):
        for i, line in enumerate(_read_lines(path), 1):
            if not line.strip():
                continue
            key, tab, text = line.partition("\t")
            if not tab or "#" not in key or not text.strip():
                raise DataError(f"{path}:{i}: expected 'image.jpg#j<TAB>caption', got {line[:80]!r}")
            out.setdefault(key.split("#", 1)[0], []).append(text.strip())
        return out
    text = "\n".join(_read_lines(path))
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or [h.strip().lower() for h in header] != ["image", "caption"]:
        raise DataError(f"{path}:1: expected the header 'image,caption', got {header!r}")
    for row in reader:
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise DataError(f"{path}:{reader.line_num}: expected 'image,caption', got {row!r}")
        out.setdefault(row[0].strip(), []).append(row[1].strip())
    return out


_F8K_CAPTION_FILES = ("captions.txt", "Flickr8k.token.txt", "Flickr8k_text/Flickr8k.token.txt")
FLICKR8K_CAPTIONS = Location("flickr8k", _F8K_CAPTION_FILES)
FLICKR8K_IMAGES = Location("flickr8k", ("images",))
_F8K_IMAGE_DIRS = ("images", "Images", "Flicker8k_Dataset", "Flickr8k_Dataset")


def _flickr8k_paths(folder: Path) -> tuple[Path, Path]:
    captions = _first_existing(*(folder / name for name in _F8K_CAPTION_FILES))
    images = _first_existing(*(folder / name for name in _F8K_IMAGE_DIRS))
    if captions is None:
        raise DataError(f"{folder}: no captions.txt or Flickr8k.token.txt found")
    if images is None:
        raise DataError(f"{folder}: no images/ (or Flicker8k_Dataset/) folder found")
    return captions, images


def _list_images(folder: Path) -> tuple[list[str], list[str]]:
    """Sorted image file names in a folder, and the other entries (reported, not silently ignored)."""
    names = sorted(os.listdir(folder))
    imgs = [n for n in names if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith(".")]
    return imgs, [n for n in names if n not in set(imgs)]


#: The offline set's split, fixed forever: seed and sizes. Changing them changes every published number.
F8K_M30K_SEED = 0
F8K_M30K_TEST = 237
F8K_M30K_VAL = 100
_F8K_M30K_SOURCES = ("train", "val", "test_2016_flickr")  # task1 splits that hold the 937 photos


@dataclass
class _F8kPlan:
    folder: Path  # flickr8k/
    m30k: Path  # multi30k/
    captions_file: Path
    images_dir: Path
    files: dict[str, str]  # image id -> file name
    task1: dict[str, tuple[str, int]]  # image id -> (multi30k split, line index)
    splits: dict[str, list[str]]  # split -> sorted image ids
    other_files: list[str]  # entries of the image folder that are not images (reported in meta)


def _f8k_m30k_plan(data_root: str | os.PathLike | None) -> _F8kPlan:
    folder = FLICKR8K_IMAGES.find(data_root)
    m30k = MULTI30K_FILES.find(data_root)
    captions_file, images_dir = _flickr8k_paths(folder)
    names, other = _list_images(images_dir)
    files: dict[str, str] = {}
    for n in names:
        fid = _flickr_id(n)
        if fid in files:
            raise DataError(f"{images_dir}: {files[fid]} and {n} have the same Flickr id {fid}")
        files[fid] = n
    task1: dict[str, tuple[str, int]] = {}
    for src in _F8K_M30K_SOURCES:
        _, ids = _m30k_image_list(m30k, src)
        for i, name in enumerate(ids):
            if name in files:
                if name in task1:
                    raise DataError(f"multi30k image {name} is listed in both {task1[name][0]} and {src}")
                task1[name] = (src, i)
    with_task1 = sorted(task1)
    if len(with_task1) < F8K_M30K_TEST + F8K_M30K_VAL + 1:
        raise DataError(
            f"{images_dir}: only {len(with_task1)} photos have Multi30K task1 captions; the flickr8k-multi30k split "
            f"needs more than {F8K_M30K_TEST + F8K_M30K_VAL}"
        )
    order = np.random.default_rng(F8K_M30K_SEED).permutation(len(with_task1))
    test = sorted(with_task1[i] for i in order[:F8K_M30K_TEST])
    val = sorted(with_task1[i] for i in order[F8K_M30K_TEST : F8K_M30K_TEST + F8K_M30K_VAL])
    held = set(test) | set(val)
    train = sorted(i for i in files if i not in held)
    splits = {"train": train, "val": val, "test": test}
    return _F8kPlan(folder, m30k, captions_file, images_dir, files, task1, splits, other)


def load_flickr8k_multi30k(
    split: str = "test", data_root: str | os.PathLike | None = None, image_root: str | os.PathLike | None = None
) -> ImageTextSet:
    """The offline set: the Flickr8k photos in `flickr8k/images` with Multi30K task1 and Flickr8k captions.

    Split BY PHOTO, fixed: the photos that have Multi30K task1 captions (937 of the 1000 shared photos) are sorted
    by id and permuted with `numpy.random.default_rng(0)`; the first 237 are `test`, the next 100 `val`, and every
    other photo (the remaining 600 with task1 captions and the 63 without) is `train`. No photo is in two splits
    (`split_image_ids` proves it).

    Captions per split:
      - `test`, `val`: `en`, `de`, `fr`, `cs` = Multi30K task1 (one caption per photo; de/fr/cs are human
        translations of the en line, so all four are aligned for cross-lingual retrieval), plus `en-x-f8k` = the
        five Flickr8k English captions (the task1 en line is usually one of them, tokenised differently).
      - `train`: `en` = the five Flickr8k English captions of every photo (the English training text), and `de`,
        `fr`, `cs` = Multi30K task1 translations where the photo has them (empty for the 63 without; for
        translate-train). Train `en` is therefore NOT aligned with train de/fr/cs.
    These photos are also Flickr30k photos (872 in Multi30K train, 34 in val, 31 in test_2016): a model fine-tuned
    on Flickr30k/Multi30K train has seen most of them.
    """
    if image_root is not None:
        raise DataError("flickr8k-multi30k uses the photos in flickr8k/images; image_root does not apply")
    split = {"dev": "val", "valid": "val"}.get(split, split)
    plan = _f8k_m30k_plan(data_root)
    if split not in plan.splits:
        raise DataError(f"flickr8k-multi30k has no split {split!r}; choose train, val or test")
    ids = plan.splits[split]
    f8k = _read_flickr8k_captions(plan.captions_file)
    en5: list[list[str]] = []
    for i in ids:
        caps = f8k.get(plan.files[i])
        if not caps:
            raise DataError(f"{plan.captions_file}: no captions for photo {plan.images_dir / plan.files[i]}")
        en5.append(caps)
    task1_lines: dict[str, dict[str, list[str]]] = {}
    task1_files: dict[str, dict[str, Path]] = {}
    for src in {plan.task1[i][0] for i in ids if i in plan.task1}:
        _, lines, files = _m30k_task1(plan.m30k, src)
        task1_lines[src], task1_files[src] = lines, files

    def task1_of(lang: str) -> list[list[str]]:
        out = []
        for i in ids:
            if i in plan.task1:
                src, row = plan.task1[i]
                lines = task1_lines[src].get(lang)
                if lines is None:
                    raise DataError(f"{plan.m30k / 'task1' / 'raw'}: no {src}.{lang}(.gz) caption file")
                out.append([lines[row]])
            else:
                out.append([])
        return out

    extra = extra_languages(
        data_root, split, [plan.files[i] for i in ids], list(ids), frozenset(f8k), [plan.task1.get(i) for i in ids],
        {src: (lines["en"], task1_files[src]["en"]) for src, lines in task1_lines.items()},
    )
    if split == "train":
        captions = {"en": en5, **{lang: task1_of(lang) for lang in ("de", "fr", "cs")}}
        provenance = {"en": INDEPENDENT, "de": HUMAN, "fr": HUMAN, "cs": HUMAN}
        aligned = frozenset({"de", "fr", "cs", "pt"})
        flickr8k_english = "en"  # train en IS the five Flickr8k captions
    else:
        captions = {lang: task1_of(lang) for lang in M30K_LANGS}
        captions["en-x-f8k"] = en5
        provenance = {lang: HUMAN for lang in M30K_LANGS} | {"en-x-f8k": INDEPENDENT}
        aligned = frozenset(M30K_LANGS) | {"pt"}
        flickr8k_english = "en-x-f8k"
    captions |= extra.captions
    provenance |= extra.provenance
    # caption j of zh-x-f8k / zh-x-mt translates Flickr8k English caption j
    flickr8k_aligned = frozenset({flickr8k_english, "zh-x-f8k", "zh-x-mt"})
    n_task1 = sum(1 for i in ids if i in plan.task1)
    return ImageTextSet(
        name="flickr8k-multi30k",
        split=split,
        image_ids=list(ids),
        image_paths=[plan.images_dir / plan.files[i] for i in ids],
        captions=captions,
        provenance=provenance,
        notes=(
            f"{len(ids)} Flickr8k photos ({n_task1} with Multi30K task1 captions); fixed split by photo, "
            f"seed {F8K_M30K_SEED}: test {F8K_M30K_TEST} / val {F8K_M30K_VAL} / train the rest."
            + "".join(f" {note}." for note in extra.notes)
        ),
        aligned_langs=aligned,
        other_alignments=(flickr8k_aligned,),
        image_sources=("flickr8k", "flickr30k"),
        training_images_note="these Flickr8k photos are also in Flickr30k (most in Multi30K train)",
        meta={"seed": F8K_M30K_SEED, "file_names": [plan.files[i] for i in ids], "other_files": plan.other_files},
    )


def load_flickr8k(
    split: str = "all", data_root: str | os.PathLike | None = None, image_root: str | os.PathLike | None = None
) -> ImageTextSet:
    """Flickr8k: `captions.txt` (CSV `image,caption`) or `Flickr8k.token.txt`, five English captions per photo.

    The set is the photos present in the image folder (`image_root` or `flickr8k/images`); captioned photos that
    have no file are counted in `notes`. Splits: `all`, plus `train`/`val`/`test` when the official
    `Flickr_8k.{train,dev,test}Images.txt` lists are present.
    """
    folder = FLICKR8K_CAPTIONS.find(data_root)
    captions_file = _first_existing(*(folder / name for name in _F8K_CAPTION_FILES))
    if captions_file is None:
        raise DataError(f"{folder}: no captions.txt or Flickr8k.token.txt found")
    images_dir = Path(image_root).expanduser() if image_root is not None else _flickr8k_paths(folder)[1]
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: image folder not found")
    caps = _read_flickr8k_captions(captions_file)
    names, other = _list_images(images_dir)
    split = {"dev": "val", "valid": "val"}.get(split, split)
    if split != "all":
        lists = {"train": "trainImages", "val": "devImages", "test": "testImages"}
        if split not in lists:
            raise DataError(f"flickr8k has no split {split!r}; choose all, train, val or test")
        list_name = f"Flickr_8k.{lists[split]}.txt"
        lst = _first_existing(folder / list_name, folder / "Flickr8k_text" / list_name)
        if lst is None:
            raise DataError(
                f"{folder}: no official Flickr_8k.{lists[split]}.txt split list here; use split='all' "
                "(or flickr8k-multi30k for a fixed split)"
            )
        wanted = {n.strip() for n in _read_lines(lst) if n.strip()}
        names = [n for n in names if n in wanted]
    no_caps = [n for n in names if n not in caps]
    if no_caps:
        raise DataError(f"{captions_file}: no captions for {len(no_caps)} photos in {images_dir}, e.g. {no_caps[:3]}")
    if not names:
        raise DataError(f"{images_dir}: no photos for flickr8k split {split!r}")
    ids = [_flickr_id(n) for n in names]
    if len(set(ids)) != len(ids):
        ids = list(names)  # Flickr ids clash: fall back to the file names
    missing_files = len(set(caps) - set(names)) if split == "all" else 0
    return ImageTextSet(
        name="flickr8k",
        split=split,
        image_ids=ids,
        image_paths=[images_dir / n for n in names],
        captions={"en": [caps[n] for n in names]},
        provenance={"en": INDEPENDENT},
        notes=f"{len(names)} photos in {images_dir.name}/"
        + (f"; {missing_files} captioned photos have no file here" if missing_files else ""),
        image_sources=("flickr8k", "flickr30k"),
        meta={"file_names": names, "other_files": other},
    )


