"""The set types every loader returns: ImageTextSet, its flat and parallel caption views, provenance labels."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from csr_core.datasets.codes import normalize_lang
from csr_core.errors import DataError

HUMAN = "human"
MACHINE = "machine"
INDEPENDENT = "human-independent"
UNKNOWN = "unknown"
TRANSLATED = "translated"  # translated from another caption set, but which source line each translates is unknown
PROVENANCES = (HUMAN, MACHINE, INDEPENDENT, TRANSLATED, UNKNOWN)
#: What each label means, for tables, the CLI and the dashboard.
PROVENANCE_LABELS = {
    HUMAN: "human, parallel (line-aligned)",  # Multi30K en is the original, de/fr/cs/pt its translations
    MACHINE: "machine translation (training arms only)",
    INDEPENDENT: "human-written, independent",
    TRANSLATED: "translated, not line-aligned",
    UNKNOWN: "unknown",
}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


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
    other_alignments: tuple[frozenset[str], ...] = ()  # further groups aligned among themselves (not with the above)
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
        groups = [frozenset(g) & frozenset(self.captions) for g in self.other_alignments]
        self.other_alignments = tuple(g for g in groups if len(g) > 1)
        for g in self.other_alignments:
            if g & self.aligned_langs:
                raise DataError(f"{where}: {sorted(g & self.aligned_langs)} are in two alignment groups")

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

    @property
    def alignments(self) -> tuple[frozenset[str], ...]:
        """Every group of languages whose caption j translates the same source caption j (largest first)."""
        groups = ((self.aligned_langs,) if len(self.aligned_langs) > 1 else ()) + self.other_alignments
        return tuple(sorted(groups, key=lambda g: (-len(g), sorted(g))))

    def aligned_group(self, lang: str) -> frozenset[str]:
        """The languages line-aligned with `lang` (itself included; just `{lang}` when it is aligned with none)."""
        return next((g for g in self.alignments if lang in g), frozenset({lang}))

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
            "alignments": [sorted(g) for g in self.alignments],
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
        if self.other_alignments:  # only then, so sets without them keep their fingerprints
            payload["other_alignments"] = sorted(",".join(sorted(g)) for g in self.other_alignments)
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
        if strict and len(langs) > 1:
            group = self.aligned_group(langs[0])
            loose = [lang for lang in langs if lang not in group]
            if loose or len(group) == 1:
                loose = loose or [langs[0]]
                provenance = {lang: self.provenance.get(lang, UNKNOWN) for lang in loose}
                groups = "; ".join(", ".join(sorted(g)) for g in self.alignments) or "none"
                raise DataError(
                    f"{self.name}/{self.split}: captions in {', '.join(loose)} are not translations aligned with the "
                    f"others (aligned groups here: {groups}; provenance {provenance}); drop them or pass "
                    "strict=False to pair captions of the same image by position"
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
            other_alignments=tuple(frozenset(g) & frozenset(keep) for g in self.other_alignments),
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


