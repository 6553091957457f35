"""Captions of the Flickr8k photos in distant and close languages beyond Multi30K: Chinese (Flickr8k-CN), Arabic
(Arabic Flickr8k) and Brazilian Portuguese (Framed Multi30K), read from their official layouts.

Each reader returns captions per Flickr8k file name (`1000268201_693b08cb0e.jpg` → [caption 0, 1, ...]) or, for the
Multi30K-aligned Portuguese, lines per task1 split. Ids are checked against the Flickr8k caption file's 8091 photo
names: an id that is not a Flickr8k photo is an error naming file and line, except the one duplicate entry the
Flickr8k token file itself publishes (`2258277193_586949ec62.jpg.1`), which is skipped and reported. Malformed lines
(no key, wrong tag, a caption index out of order, an empty caption) raise DataError naming file and line; the one
repair made is a caption broken over two lines (a line with no key right after a caption line), joined and reported.

Provenance (what the publishers say):
  zh         Flickr8k-CN `flickr8kzhc`: 5 captions per photo written by native speakers (independent of English)
  zh-x-f8k   Flickr8k-CN `flickr8kzhmtest`: human translations of the 5 English captions, caption j ↔ English j
             (Flickr8k test split only: 125 of the 1000 shared photos)
  zh-x-mt    Flickr8k-CN `flickr8kzhb`: Baidu machine translations of the 5 English captions (training arms only)
  ar         Arabic Flickr8k: translations of 3 of the 5 English captions, which 3 is not recorded (not aligned)
  pt         Framed Multi30K task1: human translations aligned line by line with Multi30K task1 en/de/fr/cs
  pt-x-f30k  Framed Multi30K `flickr30k/captions.txt`: 5 original Portuguese descriptions per Flickr30k photo
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from csr_core.datasets._files import Location, _first_existing, _read_lines, _same_length
from csr_core.errors import DataError

FLICKR8K_CN_FILES = Location("flickr8k-cn", ("flickr8kzhc.caption.txt",))
ARABIC_FILES = Location("arabic-flickr8k", ("Flickr8k.arabic.full.txt",))
FRAMED_FILES = Location("framed-multi30k", ("multi30k", "flickr30k"))

#: Flickr8k-CN caption sets: language tag → (file, tag inside the key).
CHINESE_SETS = {"zh": ("flickr8kzhc.caption.txt", "zhc"), "zh-x-f8k": ("flickr8kzhmtest.captions.txt", "zhm"),
                "zh-x-mt": ("flickr8kzhb.caption.txt", "zhb")}
#: An entry the Flickr8k token file itself publishes twice (with a `.1` suffix); its copies are skipped, reported.
KNOWN_DUPLICATE_NAMES = frozenset({"2258277193_586949ec62.jpg.1"})
_CN_KEY = re.compile(r"(?P<name>[^#\s]+)#(?P<tag>[a-z]+)#(?P<j>\d+)")
_TOKEN_KEY = re.compile(r"(?P<name>[^#\s]+)#(?P<j>\d+)")


@dataclass(frozen=True)
class LanguageSource:
    """One caption set a dataset offers: its language tag, provenance, where it comes from and which splits."""

    lang: str
    provenance: str
    source: str
    location: Location | None = None  # None: part of the dataset's own files
    splits: tuple[str, ...] = ("train", "val", "test")

    def present(self, data_root: str | os.PathLike | None) -> bool:
        return self.location is None or self.location.exists(data_root)


def flickr8k_multi30k_languages() -> tuple[LanguageSource, ...]:
    """What `csr-lab datasets` lists for flickr8k-multi30k (the loader adds each one whose files are present)."""
    from csr_core.datasets.multi30k import MULTI30K_FILES
    from csr_core.datasets.types import HUMAN, INDEPENDENT, MACHINE, TRANSLATED

    m30k = "Multi30K task1 (one caption per photo, line-aligned)"
    return (
        LanguageSource("en", HUMAN, f"{m30k}; train: the 5 Flickr8k captions", MULTI30K_FILES),
        *(LanguageSource(lang, HUMAN, f"{m30k}, human translation of en", MULTI30K_FILES) for lang in ("de", "fr", "cs")),
        LanguageSource("pt", HUMAN, "Framed Multi30K task1, human translation aligned with en/de/fr/cs", FRAMED_FILES),
        LanguageSource("en-x-f8k", INDEPENDENT, "Flickr8k, 5 English captions per photo", None, ("val", "test")),
        LanguageSource("zh", INDEPENDENT, "Flickr8k-CN zhc, 5 captions written by native speakers", FLICKR8K_CN_FILES),
        LanguageSource("zh-x-f8k", HUMAN, "Flickr8k-CN zhm, human translations aligned with the Flickr8k English "
                       "(Flickr8k test photos only)", FLICKR8K_CN_FILES),
        LanguageSource("zh-x-mt", MACHINE, "Flickr8k-CN zhb, Baidu machine translations (training arms only)",
                       FLICKR8K_CN_FILES, ("train",)),
        LanguageSource("ar", TRANSLATED, "Arabic Flickr8k, translations of 3 of the 5 English captions", ARABIC_FILES),
        LanguageSource("pt-x-f30k", INDEPENDENT, "Framed Multi30K, 5 original Portuguese descriptions per photo",
                       FRAMED_FILES),
    )


@dataclass
class CaptionFile:
    """Captions per photo file name read from one file, with what was repaired or skipped (never silent)."""

    path: Path
    captions: dict[str, list[str]] = field(default_factory=dict)
    joined_lines: list[int] = field(default_factory=list)  # line numbers of continuation lines joined to the last
    skipped: list[str] = field(default_factory=list)  # known published duplicates left out
    first_index: int | None = None  # the file's caption numbering starts at 0 or 1 (Framed Multi30K counts from 1)

    def report(self) -> str:
        parts = []
        if self.joined_lines:
            parts.append(f"{len(self.joined_lines)} caption(s) broken over two lines were joined "
                         f"({self.path.name}: line {', '.join(map(str, self.joined_lines))})")
        if self.skipped:
            parts.append(f"the duplicate entry {', '.join(sorted(set(self.skipped)))} published in "
                         f"{self.path.name} was skipped")
        return "; ".join(parts)


def _add(out: CaptionFile, where: str, name: str, j: int, text: str, known_names: frozenset[str]) -> None:
    if name in KNOWN_DUPLICATE_NAMES:
        out.skipped.append(name)
        return
    if name not in known_names:
        raise DataError(f"{where}: {name!r} is not a Flickr8k photo (not in the Flickr8k caption file)")
    if out.first_index is None:
        if j not in (0, 1):
            raise DataError(f"{where}: caption numbering must start at #0 or #1, got #{j}")
        out.first_index = j
    caps = out.captions.setdefault(name, [])
    if j != len(caps) + out.first_index:
        raise DataError(f"{where}: caption #{j} of {name} out of order (expected #{len(caps) + out.first_index})")
    if not text.strip():
        raise DataError(f"{where}: empty caption for {name}#{j}")
    caps.append(text.strip())


def read_keyed_captions(path: Path, known_names: frozenset[str], *, separator: str, tag: str | None,
                        others: str = "error") -> CaptionFile:
    """`NAME#TAG#j caption` (Flickr8k-CN, space-separated) or `NAME#j<TAB>caption` (Flickr8k token layout).

    A name outside `known_names` is an error (`others="error"`: the file should only hold those photos) or is left
    out (`others="skip"`: a file covering a larger collection, e.g. all of Flickr30k)."""
    pattern = _CN_KEY if tag is not None else _TOKEN_KEY
    out = CaptionFile(path)
    last: tuple[str, int] | None = None
    for lineno, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        key, sep, text = line.partition(separator)
        m = pattern.fullmatch(key.strip())
        if m is None:
            if separator not in line and last is not None and last[0] in out.captions:
                out.captions[last[0]][-1] += " " + line.strip()  # a caption broken over two lines
                out.joined_lines.append(lineno)
                continue
            layout = f"NAME.jpg#{tag}#j caption" if tag else "NAME.jpg#j<TAB>caption"
            raise DataError(f"{where}: expected '{layout}', got {line[:80]!r}")
        if tag is not None and m["tag"] != tag:
            raise DataError(f"{where}: caption set tag {m['tag']!r}, expected {tag!r} for {path.name}")
        if not sep:
            raise DataError(f"{where}: no caption after the key {key!r}")
        if others == "skip" and m["name"] not in known_names:
            continue
        _add(out, where, m["name"], int(m["j"]), text, known_names)
        last = (m["name"], int(m["j"]))
    return out


def read_chinese(data_root: str | os.PathLike | None, known_names: frozenset[str]) -> dict[str, CaptionFile]:
    """Every Flickr8k-CN caption set that is present (zh always: it is the folder's marker)."""
    folder = FLICKR8K_CN_FILES.find(data_root)
    out = {}
    for lang, (file_name, tag) in CHINESE_SETS.items():
        path = folder / file_name
        if path.exists():
            out[lang] = read_keyed_captions(path, known_names, separator=" ", tag=tag)
    return out


def read_arabic(data_root: str | os.PathLike | None, known_names: frozenset[str]) -> CaptionFile:
    folder = ARABIC_FILES.find(data_root)
    return read_keyed_captions(folder / "Flickr8k.arabic.full.txt", known_names, separator="\t", tag=None)


def read_portuguese_task1(data_root: str | os.PathLike | None, split: str, task1_en: list[str],
                          task1_en_path: Path) -> list[str] | None:
    """Framed Multi30K's pt lines of one task1 split (None when that split's file is absent); line i ↔ en line i."""
    folder = FRAMED_FILES.find(data_root)
    path = _first_existing(*(folder / "multi30k" / "task1" / "raw" / f"{split}.pt{ext}" for ext in (".gz", "")))
    if path is None:
        return None
    lines = _read_lines(path)
    for i, line in enumerate(lines, 1):
        if not line.strip():
            raise DataError(f"{path}:{i}: empty caption line (line i is the pt translation of Multi30K line i)")
    _same_length({task1_en_path: task1_en, path: lines}, "line i translates Multi30K task1 English line i")
    return [line.strip() for line in lines]


def read_portuguese_originals(data_root: str | os.PathLike | None, wanted: set[str]) -> CaptionFile | None:
    """The 5 original pt descriptions per Flickr30k photo (`ID.jpg#j<TAB>caption`), kept for the `wanted` ids."""
    folder = FRAMED_FILES.find(data_root)
    path = _first_existing(folder / "flickr30k" / "captions.txt.gz", folder / "flickr30k" / "captions.txt")
    if path is None:
        return None
    return read_keyed_captions(path, frozenset(wanted), separator="\t", tag=None, others="skip")


@dataclass
class ExtraLanguages:
    """The languages this module adds to a split of flickr8k-multi30k, per photo, with provenance and notes."""

    captions: dict[str, list[list[str]]] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def extra_languages(
    data_root: str | os.PathLike | None,
    split: str,
    file_names: list[str],
    flickr_ids: list[str],
    known_names: frozenset[str],
    task1_rows: list[tuple[str, int] | None],
    task1_en: dict[str, tuple[list[str], Path]],
) -> ExtraLanguages:
    """zh, zh-x-f8k, ar, pt, pt-x-f30k (and zh-x-mt for `train`) for the photos `file_names` of one split.

    `task1_rows[i]`: photo i's (Multi30K task1 split, line) or None; `task1_en[src]`: that split's English lines and
    file (pt line r must translate en line r). A source whose folder is absent adds no language and says so."""
    from csr_core.datasets.types import HUMAN, INDEPENDENT, MACHINE, TRANSLATED

    out = ExtraLanguages()

    def per_photo(source: CaptionFile, lang: str, provenance: str, keys: list[str]) -> None:
        out.captions[lang] = [list(source.captions.get(k, [])) for k in keys]
        out.provenance[lang] = provenance
        have = sum(1 for c in out.captions[lang] if c)
        if have < len(keys):
            out.notes.append(f"{lang}: captions for {have} of {len(keys)} photos ({source.path.name})")
        if source.report():
            out.notes.append(f"{lang}: {source.report()}")

    chinese = read_chinese(data_root, known_names) if FLICKR8K_CN_FILES.exists(data_root) else {}
    if not chinese:
        out.notes.append("flickr8k-cn not found: no Chinese captions")
    provenance = {"zh": INDEPENDENT, "zh-x-f8k": HUMAN, "zh-x-mt": MACHINE}
    for lang, source in chinese.items():
        if lang == "zh-x-mt" and split != "train":
            continue  # machine translations are training text only: never an evaluation language
        per_photo(source, lang, provenance[lang], file_names)
    if ARABIC_FILES.exists(data_root):
        per_photo(read_arabic(data_root, known_names), "ar", TRANSLATED, file_names)
    else:
        out.notes.append("arabic-flickr8k not found: no Arabic captions")
    if not FRAMED_FILES.exists(data_root):
        out.notes.append("framed-multi30k not found: no Portuguese captions")
        return out
    pt_lines: dict[str, list[str]] = {}
    for src, (lines, path) in task1_en.items():
        found = read_portuguese_task1(data_root, src, lines, path)
        if found is not None:
            pt_lines[src] = found
    if pt_lines:
        out.captions["pt"] = [[pt_lines[r[0]][r[1]]] if r is not None and r[0] in pt_lines else []
                              for r in task1_rows]
        out.provenance["pt"] = HUMAN
    originals = read_portuguese_originals(data_root, set(flickr_ids))
    if originals is not None:
        per_photo(originals, "pt-x-f30k", INDEPENDENT, flickr_ids)
    return out
