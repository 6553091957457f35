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

import csv
import dataclasses
import gzip
import hashlib
import inspect
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from csr_core.errors import DataError
from csr_core.images import DEFAULT_MAX_PIXELS, check_images

HUMAN = "human"
MACHINE = "machine"
INDEPENDENT = "human-independent"
UNKNOWN = "unknown"
PROVENANCES = (HUMAN, MACHINE, INDEPENDENT, UNKNOWN)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")

# ============================================================================================ language codes

_FLORES_RE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")


def _default_script(tag: str) -> str:
    import langcodes

    return langcodes.Language.get(tag).maximize().script or ""


def _flores_tag(code: str, macro: bool = True, keep_script: bool = False) -> str:
    """BCP-47 tag of one FLORES-200 code: `deu_Latn` → `de`; with `keep_script`, the script stays unless it is the
    language's default one (`zho_Hant` → `zh-Hant`, `zho_Hans` → `zh`)."""
    import langcodes

    lang, script = code.split("_")
    base = langcodes.standardize_tag(lang, macro=macro)
    if not keep_script:
        return base
    default = _default_script(base)
    if script == default or {script, default} == {"Hang", "Kore"}:
        return base
    loc = langcodes.Language.get(base)
    return f"{loc.language}-{script}" + (f"-{loc.territory}" if loc.territory else "")


def _unique_tags(codes: list[str], macro: bool) -> dict[str, str]:
    """Tags without script, adding the script only where one language comes in several scripts."""
    plain = {c: _flores_tag(c, macro) for c in codes}
    groups: dict[str, list[str]] = {}
    for c, tag in plain.items():
        groups.setdefault(tag, []).append(c)
    out = dict(plain)
    for tag, members in groups.items():
        if len(members) > 1:
            scripted = {c: _flores_tag(c, macro, keep_script=True) for c in members}
            if len(set(scripted.values())) < len(members):  # no known default script: name every script
                scripted = {c: f"{tag}-{c.split('_')[1]}" for c in members}
            out.update(scripted)
    return out


def flores_tags(codes: Iterable[str]) -> dict[str, str]:
    """Map FLORES-200 codes to short BCP-47 tags, unambiguously within the given set.

    The script is dropped unless the same language comes in two scripts (`zho_Hans` → `zh`, `zho_Hant` →
    `zh-Hant`); macrolanguages are used where that stays unique (`arb_Arab` → `ar`, `zsm_Latn` → `ms`); codes whose
    macrolanguage would collide (`aka_Latn`, `twi_Latn` → `ak`) keep their own language (`ak`, `tw`), and as a last
    resort the FLORES code itself.
    """
    codes = list(dict.fromkeys(codes))
    out = _unique_tags(codes, macro=True)
    individual = _unique_tags(codes, macro=False)
    for fallback in (individual.get, lambda c: c):
        counts: dict[str, int] = {}
        for tag in out.values():
            counts[tag] = counts.get(tag, 0) + 1
        for c in [c for c, tag in out.items() if counts[tag] > 1]:
            out[c] = fallback(c)
    return out


def normalize_lang(code: str, where: str = "") -> str:
    """Normalise one language code (`EN` → `en`, `jp` → `ja`, `deu_Latn` → `de`) by the project's one rule
    (`csr_core.languages.normalize_lang`); caption-set keys with a private-use suffix (`en-x-f8k`) keep it.

    Raises DataError prefixed by `where` (e.g. a file and line) for codes that name no language.
    """
    from csr_core.languages import normalize_lang as canonical

    prefix = f"{where}: " if where else ""
    raw = str(code).strip()
    base, private, suffix = raw.replace("_", "-").partition("-x-")
    try:
        tag = canonical(base)
    except DataError as exc:
        raise DataError(f"{prefix}{exc}") from None
    return f"{tag}-x-{suffix.lower()}" if private else tag


# ============================================================================================ file reading


def _read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 text file (plain or .gz), CRLF-safe, split on '\\n' only (never on U+2028 and the like,
    which would shift line alignment); errors name the file and line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: not a valid gzip file ({exc})") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 ({exc.reason})") from exc
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _read_caption_file(path: Path) -> list[str]:
    """One caption per line; a blank line is a missing caption, reported with its line number."""
    lines = _read_lines(path)
    for i, line in enumerate(lines, 1):
        if not line.strip():
            raise DataError(f"{path}:{i}: empty caption line (each line must hold the caption of one image)")
    return [line.strip() for line in lines]


def _jsonl_objects(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(`file:line`, object) for each non-blank line of a JSON-lines file; bad JSON names the file and line."""
    for lineno, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: invalid JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise DataError(f"{where}: expected a JSON object")
        yield where, obj


def _caption_list(value: Any, where: str, label: str) -> list[str]:
    """A caption or list of captions from JSON, checked: non-empty strings only."""
    caps = [value] if isinstance(value, str) else value
    if not isinstance(caps, list) or not all(isinstance(c, str) and c.strip() for c in caps):
        raise DataError(f"{where}: {label} must be a list of non-empty strings")
    return [c.strip() for c in caps]


def _same_length(files: dict[Path, Sequence[Any]], what: str = "line i of each describes the same image") -> None:
    """Raise a DataError naming both files and both line counts when aligned files differ in length."""
    items = list(files.items())
    ref_path, ref = items[0]
    for path, lines in items[1:]:
        if len(lines) != len(ref):
            raise DataError(
                f"caption files differ in length: {ref_path} has {len(ref)} lines but {path} has {len(lines)} "
                f"({what}); fix or re-download the files"
            )


def _first_existing(*candidates: Path) -> Path | None:
    return next((p for p in candidates if p.exists()), None)


def _locate(data_root: str | os.PathLike | None, folder: str, *markers: str) -> Path:
    """The dataset folder: `<data_root>/<folder>` when it holds one of `markers`, else `data_root` itself."""
    from csr_core.paths import data_dir

    root = Path(data_root).expanduser() if data_root is not None else data_dir()
    for cand in (root / folder, root):
        if any((cand / m).exists() for m in markers):
            return cand
    raise DataError(
        f"{folder} data not found: no {' or '.join(markers)} in {root / folder} or {root} "
        f"(pass data_root=... or set CSR_DATA_DIR)"
    )


# ============================================================================================ the set type


@dataclass
class FlatCaptions:
    """Captions of one language as rows: text, the row of its image in `image_ids`, and an id `image_id#j`."""

    lang: str
    texts: list[str]
    caption_image: np.ndarray  # int64, index into ImageTextSet.image_ids
    caption_ids: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def image_rows(self) -> np.ndarray:
        """Image rows that have at least one caption in this language (the i2t queries)."""
        return np.unique(self.caption_image)


@dataclass
class ParallelCaptions:
    """Line-aligned captions: `texts[X][r]` and `texts[Y][r]` are translations of the same source caption."""

    langs: tuple[str, ...]
    texts: dict[str, list[str]]
    caption_image: np.ndarray  # int64 image row of each aligned row
    ids: list[str]  # "image_id#j", shared by all languages
    skipped: list[tuple[str, str]]  # (image_id, why) for images left out: not the same number of captions

    @property
    def caption_ids(self) -> list[str]:
        return self.ids

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class ImageTextSet:
    """Images (or only their ids) with captions per language per image; treat as immutable once built."""

    name: str
    split: str
    image_ids: list[str]
    image_paths: list[Path] | None  # None: text-only set (images not available here)
    captions: dict[str, list[list[str]]]  # lang -> per image -> captions
    provenance: dict[str, str]
    notes: str = ""
    aligned_langs: frozenset[str] = frozenset()  # caption j is a translation of caption j in every one of these
    image_sources: tuple[str, ...] = ()  # e.g. ("coco-train2014",): what a model may have been trained on
    training_images_note: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file or id, reason) left out on request
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.image_ids)
        where = f"{self.name}/{self.split}"
        if len(set(self.image_ids)) != n:
            seen: set[str] = set()
            for image_id in self.image_ids:
                if image_id in seen:
                    raise DataError(f"{where}: image id {image_id!r} appears more than once")
                seen.add(image_id)
        if self.image_paths is not None:
            self.image_paths = [Path(p) for p in self.image_paths]
            if len(self.image_paths) != n:
                raise DataError(f"{where}: {len(self.image_paths)} image paths for {n} image ids")
        for lang, per_image in self.captions.items():
            if len(per_image) != n:
                raise DataError(f"{where}: language {lang!r} has caption lists for {len(per_image)} of {n} images")
        unknown = set(self.provenance) - set(self.captions)
        if unknown:
            raise DataError(f"{where}: provenance given for languages without captions: {sorted(unknown)}")
        for lang, prov in self.provenance.items():
            if prov not in PROVENANCES:
                raise DataError(f"{where}: provenance {prov!r} of {lang!r} is not one of {PROVENANCES}")
        self.aligned_langs = frozenset(self.aligned_langs) & frozenset(self.captions)

    # ---- basic facts ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def languages(self) -> list[str]:
        """Caption-set keys that hold at least one caption, in the set's order."""
        return [lang for lang, per in self.captions.items() if any(per)]

    @property
    def text_only(self) -> bool:
        return self.image_paths is None

    def caption_count(self, lang: str) -> int:
        return sum(len(c) for c in self._captions_of(lang))

    def describe(self) -> dict[str, Any]:
        """A small summary for tables and manifests."""
        return {
            "name": self.name,
            "split": self.split,
            "images": len(self),
            "text_only": self.text_only,
            "languages": {
                lang: {
                    "captions": self.caption_count(lang),
                    "images_with_captions": sum(1 for c in self.captions[lang] if c),
                    "provenance": self.provenance.get(lang, UNKNOWN),
                }
                for lang in self.languages
            },
            "aligned_langs": sorted(self.aligned_langs),
            "image_sources": list(self.image_sources),
            "skipped": len(self.skipped),
            "fingerprint": self.fingerprint,
        }

    @cached_property
    def fingerprint(self) -> str:
        """sha256 over ids, captions, provenance and image file names + sizes (cheap: no image bytes are hashed)."""
        files: list[Any] = []
        if self.image_paths is not None:
            for p in self.image_paths:
                try:
                    size = p.stat().st_size
                except OSError:
                    size = -1
                files.append([p.name, size])
        payload = {
            "name": self.name,
            "split": self.split,
            "image_ids": self.image_ids,
            "captions": {lang: self.captions[lang] for lang in sorted(self.captions)},
            "provenance": dict(sorted(self.provenance.items())),
            "aligned": sorted(self.aligned_langs),
            "files": files,
        }
        blob = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()

    # ---- views ------------------------------------------------------------------------------------------------
    def _captions_of(self, lang: str) -> list[list[str]]:
        if lang not in self.captions:
            raise DataError(
                f"{self.name}/{self.split} has no captions in {lang!r}; it has {', '.join(self.languages) or 'none'}"
            )
        return self.captions[lang]

    def flat(self, lang: str) -> FlatCaptions:
        """All captions of `lang` as rows, with `caption_image` (index into `image_ids`) as the ground truth."""
        texts: list[str] = []
        rows: list[int] = []
        ids: list[str] = []
        for i, caps in enumerate(self._captions_of(lang)):
            for j, text in enumerate(caps):
                texts.append(text)
                rows.append(i)
                ids.append(f"{self.image_ids[i]}#{j}")
        return FlatCaptions(lang=lang, texts=texts, caption_image=np.asarray(rows, dtype=np.int64), caption_ids=ids)

    def parallel(self, langs: Sequence[str], strict: bool = True) -> ParallelCaptions:
        """Aligned caption rows across `langs`, for cross-lingual t2t retrieval (row r of X ↔ row r of Y).

        Images whose caption counts differ between the languages (or are zero) are left out and listed in
        `skipped`. With `strict`, every language must be in `aligned_langs` (caption j a translation of the same
        source); `strict=False` pairs captions by image and position anyway (e.g. STAIR Japanese vs XTD10 English:
        same photo, independently written).
        """
        langs = tuple(dict.fromkeys(langs))
        if not langs:
            raise DataError("parallel() needs at least one language")
        per = {lang: self._captions_of(lang) for lang in langs}
        if strict:
            loose = [lang for lang in langs if lang not in self.aligned_langs]
            if loose and len(langs) > 1:
                provenance = {lang: self.provenance.get(lang, UNKNOWN) for lang in loose}
                raise DataError(
                    f"{self.name}/{self.split}: captions in {', '.join(loose)} are not translations aligned with the "
                    f"others (aligned here: {', '.join(sorted(self.aligned_langs)) or 'none'}; provenance "
                    f"{provenance}); drop them or pass strict=False to pair captions of the same image by position"
                )
        texts: dict[str, list[str]] = {lang: [] for lang in langs}
        rows: list[int] = []
        ids: list[str] = []
        skipped: list[tuple[str, str]] = []
        for i, image_id in enumerate(self.image_ids):
            counts = {lang: len(per[lang][i]) for lang in langs}
            n = counts[langs[0]]
            if n == 0 or any(c != n for c in counts.values()):
                skipped.append((image_id, ", ".join(f"{lang}: {c}" for lang, c in counts.items())))
                continue
            for j in range(n):
                for lang in langs:
                    texts[lang].append(per[lang][i][j])
                rows.append(i)
                ids.append(f"{image_id}#{j}")
        if not ids:
            raise DataError(f"{self.name}/{self.split}: no image has the same number of captions in {', '.join(langs)}")
        return ParallelCaptions(langs, texts, np.asarray(rows, dtype=np.int64), ids, skipped)

    def subset(self, selection: int | Sequence[int], seed: int = 0) -> ImageTextSet:
        """A smaller set with the same fields: `n` images drawn with a private seeded RNG (kept in their original
        order), or the given image rows in the given order. Deterministic, for quick runs and tests."""
        n = len(self)
        if isinstance(selection, (int, np.integer)):
            k = int(selection)
            if k <= 0:
                raise DataError(f"subset size must be positive, got {k}")
            if k >= n:
                return self
            idx = np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False)).tolist()
            how = f"{k} of {n} images (seed {seed})"
        else:
            idx = [int(i) for i in selection]
            if not idx:
                raise DataError(f"{self.name}/{self.split}: empty subset selection")
            bad = [i for i in idx if not 0 <= i < n]
            if bad:
                raise DataError(f"{self.name}/{self.split}: subset rows {bad[:5]} are outside 0..{n - 1}")
            if len(set(idx)) != len(idx):
                raise DataError(f"{self.name}/{self.split}: subset rows repeat")
            how = f"{len(idx)} chosen of {n} images"
        return dataclasses.replace(
            self,
            image_ids=[self.image_ids[i] for i in idx],
            image_paths=None if self.image_paths is None else [self.image_paths[i] for i in idx],
            captions={lang: [list(per[i]) for i in idx] for lang, per in self.captions.items()},
            notes=(self.notes + f" Subset: {how}.").strip(),
            meta={**self.meta, "subset_of": self.fingerprint, "subset_rows": idx},
        )

    def select_languages(self, langs: Iterable[str]) -> ImageTextSet:
        """Keep only `langs` (accepts aliases such as `jp` or FLORES codes); unknown ones raise a DataError."""
        keep: list[str] = []
        aliases = self.meta.get("source_codes", {})
        reverse = {src: key for key, src in aliases.items()}
        for want in langs:
            key = want if want in self.captions else reverse.get(want)
            if key is None:
                try:
                    norm = normalize_lang(want)
                except DataError:
                    norm = None
                key = norm if norm in self.captions else None
            if key is None:
                raise DataError(
                    f"{self.name}/{self.split} has no language {want!r}; available: {', '.join(self.languages)}"
                )
            if not any(self.captions[key]):
                raise DataError(f"{self.name}/{self.split}: language {key!r} has no captions in this split")
            keep.append(key)
        keep = list(dict.fromkeys(keep))
        return dataclasses.replace(
            self,
            captions={k: self.captions[k] for k in keep},
            provenance={k: v for k, v in self.provenance.items() if k in keep},
            aligned_langs=frozenset(self.aligned_langs) & frozenset(keep),
        )

    def drop_images(self, rows: Iterable[int], reasons: dict[int, str]) -> ImageTextSet:
        """Leave out image rows, recording each in `skipped` with its reason (never silent)."""
        gone = set(rows)
        if not gone:
            return self
        keep = [i for i in range(len(self)) if i not in gone]
        if not keep:
            raise DataError(f"{self.name}/{self.split}: every image was left out ({len(gone)} unreadable)")
        out = self.subset(keep)
        paths = self.image_paths
        skipped = list(self.skipped) + [
            (str(paths[i]) if paths is not None else self.image_ids[i], reasons.get(i, "left out"))
            for i in sorted(gone)
        ]
        meta = {k: v for k, v in out.meta.items() if k not in ("subset_of", "subset_rows")}
        return dataclasses.replace(out, notes=self.notes, skipped=skipped, meta=meta)


# ============================================================================================ leakage


def canonical_image_key(image_id: str) -> str:
    """Key that identifies a photo across datasets: base name, no `#caption` suffix, no extension, lower case."""
    name = str(image_id).split("#", 1)[0].replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    if dot and ext.lower() in {e.lstrip(".") for e in IMAGE_EXTENSIONS}:
        name = stem
    return name.lower()


# Image collections a source name implies (a model "trained on coco-train2017" has seen train2014 and val2014 photos).
_SOURCE_ALIASES = {
    "coco-train2017": {"coco-train2014", "coco-val2014"},
    "coco": {"coco-train2014", "coco-val2014"},
    "flickr30k-train": {"flickr30k"},
    "multi30k-train": {"flickr30k"},
}


def _expand_sources(sources: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for s in sources:
        s = str(s).strip().lower()
        out.add(s)
        out |= _SOURCE_ALIASES.get(s, set())
    return out


@dataclass
class LeakageReport:
    """What an evaluation set shares with a model's training data (empty lists: nothing known to overlap)."""

    overlap: list[str]
    source_overlap: list[str]
    message: str

    @property
    def ok(self) -> bool:
        return not self.overlap and not self.source_overlap


def check_leakage(
    eval_set: ImageTextSet,
    train_image_ids: Iterable[str] | None,
    allow: bool = False,
    model_training_sources: Iterable[str] | None = None,
) -> LeakageReport:
    """Refuse (DataError) an evaluation on photos the model was trained on, unless `allow=True`.

    Two checks: photo ids shared with `train_image_ids` (compared by `canonical_image_key`, so `1000268201.jpg`
    matches `1000268201`), and whole image collections: `model_training_sources` such as `{"coco-train2014"}`
    against `eval_set.image_sources` (XTD10's photos are COCO train2014). With `allow=True` the report is returned
    with its message for the run's notes.
    """
    overlap: list[str] = []
    if train_image_ids:
        train_keys = {canonical_image_key(i) for i in train_image_ids}
        overlap = [i for i in eval_set.image_ids if canonical_image_key(i) in train_keys]
    source_overlap: list[str] = []
    if model_training_sources:
        model_src = _expand_sources(model_training_sources)
        source_overlap = sorted(s for s in eval_set.image_sources if s.lower() in model_src)
    parts = []
    if overlap:
        parts.append(
            f"{len(overlap)} of {len(eval_set)} evaluation images of {eval_set.name}/{eval_set.split} are in the "
            f"model's training images (e.g. {', '.join(overlap[:5])})"
        )
    if source_overlap:
        parts.append(
            f"{eval_set.name} images come from {', '.join(source_overlap)}, which the model was trained on"
            + (f" ({eval_set.training_images_note})" if eval_set.training_images_note else "")
        )
    message = "; ".join(parts)
    report = LeakageReport(overlap, source_overlap, message)
    if not report.ok and not allow:
        raise DataError(
            f"train/test leakage: {message}. Scores would be inflated; evaluate on other photos, or pass "
            "allow_leakage / allow=True to run anyway (the run is then labelled)."
        )
    return report


# ============================================================================================ flickr8k photos


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


# ============================================================================================ multi30k

M30K_TASK1_SPLITS = ("train", "val", "test_2016_flickr", "test_2017_flickr", "test_2018_flickr", "test_2017_mscoco")
_M30K_ALIASES = {"test": "test_2016_flickr", "test_2016": "test_2016_flickr", "dev": "val", "valid": "val"}
M30K_LANGS = ("en", "de", "fr", "cs")


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
    folder = _locate(data_root, "multi30k", "task1")
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


# ============================================================================================ flickr8k-multi30k

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
    folder = _locate(data_root, "flickr8k", "images")
    m30k = _locate(data_root, "multi30k", "task1")
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
    for src in {plan.task1[i][0] for i in ids if i in plan.task1}:
        _, lines, _ = _m30k_task1(plan.m30k, src)
        task1_lines[src] = lines

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

    if split == "train":
        captions = {"en": en5, **{lang: task1_of(lang) for lang in ("de", "fr", "cs")}}
        provenance = {"en": INDEPENDENT, "de": HUMAN, "fr": HUMAN, "cs": HUMAN}
        aligned = frozenset({"de", "fr", "cs"})
    else:
        captions = {lang: task1_of(lang) for lang in M30K_LANGS}
        captions["en-x-f8k"] = en5
        provenance = {lang: HUMAN for lang in M30K_LANGS} | {"en-x-f8k": INDEPENDENT}
        aligned = frozenset(M30K_LANGS)
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
        ),
        aligned_langs=aligned,
        image_sources=("flickr8k", "flickr30k"),
        training_images_note="these Flickr8k photos are also in Flickr30k (most in Multi30K train)",
        meta={"seed": F8K_M30K_SEED, "file_names": [plan.files[i] for i in ids], "other_files": plan.other_files},
    )


def split_image_ids(name: str, data_root: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """Image ids of every split of a dataset with fixed splits (so training can prove no photo is on both sides)."""
    if name == "flickr8k-multi30k":
        return {k: list(v) for k, v in _f8k_m30k_plan(data_root).splits.items()}
    if name == "multi30k":
        folder = _locate(data_root, "multi30k", "task1")
        lists = folder / "task1" / "image_splits"
        return {s: _m30k_image_list(folder, s)[1] for s in M30K_TASK1_SPLITS if (lists / f"{s}.txt").exists()}
    if name in ("xtd10", "xm3600", "flickr30k-200", "flickr8k"):
        split = "all" if name == "flickr8k" else "test"
        return {split: load_dataset(name, split=split, data_root=data_root, verify_images="none").image_ids}
    raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


# ============================================================================================ flickr8k


def load_flickr8k(
    split: str = "all", data_root: str | os.PathLike | None = None, image_root: str | os.PathLike | None = None
) -> ImageTextSet:
    """Flickr8k: `captions.txt` (CSV `image,caption`) or `Flickr8k.token.txt`, five English captions per photo.

    The set is the photos present in the image folder (`image_root` or `flickr8k/images`); captioned photos that
    have no file are counted in `notes`. Splits: `all`, plus `train`/`val`/`test` when the official
    `Flickr_8k.{train,dev,test}Images.txt` lists are present.
    """
    folder = _locate(data_root, "flickr8k", *_F8K_CAPTION_FILES)
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


# ============================================================================================ xtd10

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
    folder = _locate(data_root, "xtd10", "XTD10")
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


# ============================================================================================ crossmodal-3600


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
    folder = _locate(data_root, "xm3600", "captions.jsonl")
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


# ============================================================================================ flickr30k-200


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
    folder = _locate(data_root, "flickr30k-200", "filenames.txt")
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


# ============================================================================================ generic jsonl


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
    meta: dict[str, Any] = {}
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{meta_path}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
        if not isinstance(meta, dict):
            raise DataError(f"{meta_path}: expected a JSON object")
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
    for code, prov in (meta.get("provenance") or {}).items():
        lang = normalize_lang(code, str(meta_path))
        if lang in captions:
            provenance[lang] = str(prov)
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


# ============================================================================================ registry


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset: its loader, what it is, its splits, and the files that make it runnable offline."""

    name: str
    loader: Callable[..., ImageTextSet]
    description: str
    splits: tuple[str, ...]
    marker: str  # file under the data root whose presence means the captions are here
    images: str  # where its images come from

    def available(self, data_root: str | os.PathLike | None = None) -> bool:
        from csr_core.paths import data_dir

        root = Path(data_root).expanduser() if data_root is not None else data_dir()
        return (root / self.marker).exists()


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "flickr8k-multi30k", load_flickr8k_multi30k,
            "1000 Flickr8k photos; Multi30K task1 en/de/fr/cs (human) on 937; fixed split by photo 663/100/237",
            ("train", "val", "test"), "flickr8k/images", "shipped (flickr8k/images)",
        ),
        DatasetInfo(
            "multi30k", load_multi30k,
            "Multi30K task1 (en + human de/fr/cs translations; task=2: 5 independent en/de captions)",
            M30K_TASK1_SPLITS, "multi30k/task1", "user Flickr30k folder (image_root), else text-only",
        ),
        DatasetInfo(
            "flickr8k", load_flickr8k, "Flickr8k photos with five English captions each",
            ("all", "train", "val", "test"), "flickr8k/captions.txt", "flickr8k/images or image_root",
        ),
        DatasetInfo(
            "xtd10", load_xtd10, "XTD10: 1000 COCO train2014 photos, captions in 11 languages (ja independent)",
            ("test",), "xtd10/XTD10", "user COCO train2014 folder (image_root), else text-only",
        ),
        DatasetInfo(
            "xm3600", load_xm3600, "Crossmodal-3600: 3600 photos, native captions in 36 languages",
            ("test",), "xm3600/captions.jsonl", "xm3600/images (user-supplied)",
        ),
        DatasetInfo(
            "flickr30k-200", load_flickr30k_200,
            "Multi30K test_2016 English captions machine-translated (NLLB) into ~200 languages",
            ("test",), "flickr30k-200/filenames.txt", "user Flickr30k folder (image_root), else text-only",
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
            "Fix them, or pass skip_unreadable=True to leave them out (listed in the set's `skipped`)."
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
