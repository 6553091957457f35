"""Bilingual lexicons (source word -> translations) for artificial code-switching.

Loads MUSE dictionaries in their published layout (``source target``), the reversed layout of the shared data
(``target @ source``), TSV with a header, and multiword Wikipedia parallel titles; from a path or uploaded bytes.
Keys are NFC, lowercase and tokenised exactly like captions (``csr_core.tokenize``), so a key either matches whole
caption words or never matches. Every skipped line is counted in a `LoadReport`; nothing is half-loaded silently.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

from csr_core import _io
from csr_core import paths
from csr_core.errors import DataError, LexiconError
from csr_core.tokenize import key_of_pieces, nfc, phrase_key, split_words, stopwords

log = logging.getLogger(__name__)

#: Official home of the MUSE ground-truth dictionaries (facebookresearch/MUSE).
MUSE_URL = "https://dl.fbaipublicfiles.com/arrival/dictionaries/en-{lang}.txt"

LAYOUTS = ("auto", "muse", "reversed", "tsv", "multiword")
MAX_EXAMPLES = 5
_HEADER_SOURCE = {"src", "source", "source_word", "word", "from", "en", "english"}
_HEADER_TARGET = {"tgt", "target", "target_word", "translation", "translations", "to"}
_NAMESPACE = re.compile(r"^[^\s:]+:(?=\S)")
_DISAMBIGUATION = re.compile(r"\s*\([^()]*\)\s*$")


# --------------------------------------------------------------------------------------------------------------------
# language codes


def normalize_lang(code: str) -> str:
    """Canonical language code (one rule for the whole project: `csr_core.languages.normalize_lang`)."""
    from csr_core.languages import normalize_lang as canonical

    try:
        return canonical(code)
    except DataError as exc:
        raise LexiconError(str(exc)) from None


def infer_pair(name: str) -> tuple[str, str] | None:
    """Language pair written in a file name ("en-de.dict", "en_de.0-5000.txt"), or None."""
    import langcodes

    base = Path(str(name)).name.lower()
    for match in re.finditer(r"(?<![a-z0-9])([a-z]{2,3})[-_]([a-z]{2,3})(?![a-z])", base):
        a, b = match.groups()
        if langcodes.tag_is_valid(a) and langcodes.tag_is_valid(b):
            return a, b
    return None


# --------------------------------------------------------------------------------------------------------------------
# results of loading


@dataclass(frozen=True)
class LoadReport:
    """What loading saw: line counts and the first malformed lines (line number, text), so nothing is hidden."""

    source: str
    layout: str
    encoding: str
    n_lines: int
    n_pairs: int
    n_entries: int
    n_blank: int = 0
    n_malformed: int = 0
    malformed: tuple[tuple[int, str], ...] = ()
    n_unmatchable: int = 0
    unmatchable: tuple[tuple[int, str], ...] = ()
    n_identity_dropped: int = 0
    n_duplicates: int = 0
    header: tuple[str, ...] | None = None
    swapped: bool = False  # columns read target-first (file name like de-en.txt, or swap=True)

    @property
    def ok(self) -> bool:
        return self.n_malformed == 0

    def summary(self) -> str:
        """One paragraph for CLI/dashboard: counts, then the first malformed lines."""
        text = (f"{self.source}: layout {self.layout}, {self.encoding}; {self.n_lines} lines -> {self.n_entries} "
                f"entries ({self.n_malformed} malformed, {self.n_unmatchable} unmatchable, {self.n_blank} blank, "
                f"{self.n_duplicates} duplicate, {self.n_identity_dropped} identity pairs dropped)")
        if self.malformed:
            shown = "; ".join(f"line {no}: {line!r}" for no, line in self.malformed)
            hidden = self.n_malformed - len(self.malformed)
            more = f" and {hidden} more" if hidden > 0 else ""
            text += f"\n  malformed {shown}{more}"
        return text


@dataclass(frozen=True)
class LexiconStats:
    """Size and shape of a lexicon."""

    src: str
    tgt: str
    entries: int
    sources: int
    mean_translations: float
    identity_share: float
    max_ngram: int


class Coverage(NamedTuple):
    """Share of caption word tokens and of word types (lowercase) that have a translation."""

    token_share: float
    type_share: float
    n_tokens: int
    n_types: int
    covered_tokens: int
    covered_types: int


# --------------------------------------------------------------------------------------------------------------------
# the lexicon


class Lexicon:
    """Source phrase (lowercase key) -> translations in file order. Immutable once built."""

    def __init__(self, table: Mapping[str, Sequence[str]], src: str = "en", tgt: str = "", *, name: str = "",
                 report: LoadReport | None = None) -> None:
        self.src = normalize_lang(src)
        self.tgt = normalize_lang(tgt) if tgt else ""
        self.name = name or (f"{self.src}-{self.tgt}" if self.tgt else self.src)
        built: dict[str, list[str]] = {}
        max_n = 0
        for key, values in table.items():
            norm, n_words = _norm_key(key)
            if not n_words:
                raise LexiconError(f"lexicon {self.name}: key {key!r} can never match caption words (no word, or "
                                   f"punctuation at its edge)")
            if isinstance(values, str):
                values = [values]
            bucket = built.setdefault(norm, [])
            for value in values:
                value = nfc(value).strip()
                if value and value not in bucket:
                    bucket.append(value)
            if not bucket:
                raise LexiconError(f"lexicon {self.name}: key {key!r} has no translation")
            max_n = max(max_n, n_words)
        if not built:
            raise LexiconError(f"lexicon {self.name} is empty")
        self._table: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in built.items()}
        self.max_ngram = max_n
        self.report = report

    # ---- construction ----------------------------------------------------------------------------------------------

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]], src: str = "en", tgt: str = "", *, name: str = "",
                   drop_identity: bool = False) -> Lexicon:
        """From (source, target) pairs; repeated sources collect several translations in order."""
        table: dict[str, list[str]] = {}
        for source, target in pairs:
            if drop_identity and _norm_key(source)[0] == _norm_key(target)[0]:
                continue
            table.setdefault(source, []).append(target)
        return cls(table, src, tgt, name=name)

    @classmethod
    def from_file(cls, path: str | os.PathLike, src: str = "en", tgt: str | None = None, *, layout: str = "auto",
                  drop_identity: bool = False, swap: bool | None = None, strict: bool = False) -> Lexicon:
        """Load a lexicon file. `tgt` defaults to the pair in the file name (en-de.dict -> de). Two-column files
        (MUSE, multiword, TSV without named columns) are read in the order the name gives (de-en.txt: German first);
        `swap` overrides that. `strict` refuses any malformed line."""
        path = Path(path)
        data = _io.read_input_bytes(path, "lexicon", LexiconError)
        return cls.from_bytes(data, str(path), src=src, tgt=tgt, layout=layout, drop_identity=drop_identity,
                              swap=swap, strict=strict)

    @classmethod
    def from_bytes(cls, data: bytes, name: str, src: str = "en", tgt: str | None = None, *, layout: str = "auto",
                   drop_identity: bool = False, swap: bool | None = None, strict: bool = False) -> Lexicon:
        """Load an uploaded file (its bytes and original name, which may carry the language pair)."""
        src = normalize_lang(src)
        pair = infer_pair(name)
        if tgt is None:
            if pair and normalize_lang(pair[0]) == src:
                tgt = pair[1]
            elif pair and normalize_lang(pair[1]) == src:
                tgt = pair[0]
            else:
                raise LexiconError(f"cannot tell the target language of {name}: name it like en-de.txt or pass tgt")
        tgt = normalize_lang(tgt)
        if layout not in LAYOUTS:
            raise LexiconError(f"unknown lexicon layout {layout!r} for {name}; choose one of {', '.join(LAYOUTS)}")
        text, encoding = _decode(data, name)
        name_reversed = pair is not None and normalize_lang(pair[0]) == tgt and normalize_lang(pair[1]) == src
        table, report, max_n = _parse(text, name, encoding, layout, src, tgt, drop_identity, swap, name_reversed)
        if strict and report.n_malformed:
            raise LexiconError(f"lexicon {name} has malformed lines (strict mode)\n{report.summary()}")
        if report.n_malformed:
            log.warning("%s", report.summary())
        lexicon = cls.__new__(cls)
        lexicon.src, lexicon.tgt, lexicon.name = src, tgt, Path(name).name
        lexicon._table, lexicon.max_ngram, lexicon.report = table, max_n, report
        return lexicon

    # ---- lookups ---------------------------------------------------------------------------------------------------

    def translations(self, phrase: str) -> tuple[str, ...]:
        """Translations of a word or phrase (case-insensitive), in file order; () when there is none."""
        found = self._table.get(phrase.lower())
        if found is None:
            found = self._table.get(_norm_key(phrase)[0], ())
        return found

    def __contains__(self, phrase: object) -> bool:
        return isinstance(phrase, str) and bool(self.translations(phrase))

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"Lexicon({self.name!r}, {self.src}->{self.tgt}, {len(self._table)} sources)"

    def inverted(self) -> "Lexicon":
        """The reverse dictionary (tgt -> src): every translation becomes a key whose values are the source phrases
        that gave it, in file order (so the first sense of the reverse lookup is the first pair in the file)."""
        table: dict[str, list[str]] = {}
        for key, values in self._table.items():
            for value in values:
                bucket = table.setdefault(value, [])
                if key not in bucket:
                    bucket.append(key)
        usable = {k: v for k, v in table.items() if _norm_key(k)[1]}
        return Lexicon(usable, src=self.tgt or "xx", tgt=self.src, name=f"{self.tgt}-{self.src} (inverted {self.name})")

    def target_words(self) -> tuple[str, ...]:
        """Every distinct translation, sorted (the noise-control arm draws random target words from it)."""
        cached = getattr(self, "_target_words", None)
        if cached is None:
            cached = tuple(sorted({t for values in self._table.values() for t in values}))
            self._target_words = cached
        return cached

    @property
    def table(self) -> Mapping[str, tuple[str, ...]]:
        """Read-only key -> translations mapping (what the code-switcher precomputes from)."""
        return MappingProxyType(self._table)

    # ---- statistics ------------------------------------------------------------------------------------------------

    def stats(self) -> LexiconStats:
        entries = sum(len(v) for v in self._table.values())
        identity = sum(1 for k, v in self._table.items() for t in v if _norm_key(t)[0] == k)
        return LexiconStats(self.src, self.tgt, entries, len(self._table), entries / len(self._table),
                            identity / entries, self.max_ngram)

    def coverage(self, captions: Iterable[str], *, exclude_stopwords: bool = False, max_n: int = 3) -> Coverage:
        """Share of word tokens / types of `captions` that the lexicon translates (longest match up to `max_n`
        words when it holds phrases). `exclude_stopwords` drops source-language stopwords from both counts, which is
        the denominator of the code-switching ratio."""
        stop = stopwords(self.src) if exclude_stopwords else frozenset()
        n = min(max_n, self.max_ngram)
        table = self._table
        n_tokens = covered = 0
        types: set[str] = set()
        covered_types: set[str] = set()
        for caption in captions:
            pieces = split_words(nfc(caption))
            lowers = [w.lower() for w in pieces[1::2]]
            hit = _match_mask(pieces, table, n) if n > 1 else [w in table for w in lowers]
            for word, is_hit in zip(lowers, hit):
                if word in stop:
                    continue
                n_tokens += 1
                types.add(word)
                if is_hit:
                    covered += 1
                    covered_types.add(word)
        if n_tokens == 0:
            return Coverage(0.0, 0.0, 0, 0, 0, 0)
        return Coverage(covered / n_tokens, len(covered_types) / len(types), n_tokens, len(types), covered,
                        len(covered_types))

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of the canonical content (languages, keys, translations in order): same content, same print."""
        digest = hashlib.sha256(f"{self.src}\t{self.tgt}\n".encode())
        for key in sorted(self._table):
            digest.update(("\t".join((key, *self._table[key])) + "\n").encode())
        return digest.hexdigest()


def _norm_key(text: str) -> tuple[str, int]:
    """Fast path for plain single words; `phrase_key` otherwise (also flags keys that can never match)."""
    if text.isalnum():
        return nfc(text).lower(), 1
    return phrase_key(text)


def _match_mask(pieces: list[str], table: Mapping[str, tuple[str, ...]], max_n: int) -> list[bool]:
    """Which words of a split text fall in a greedy left-to-right longest match of a table key."""
    n_words = len(pieces) // 2
    mask = [False] * n_words
    j = 0
    while j < n_words:
        for n in range(min(max_n, n_words - j), 0, -1):
            if key_of_pieces(pieces, 2 * j + 1, 2 * (j + n) - 1) in table:
                mask[j:j + n] = [True] * n
                j += n
                break
        else:
            j += 1
    return mask


# --------------------------------------------------------------------------------------------------------------------
# decoding and parsing


def _decode(data: bytes, name: str) -> tuple[str, str]:
    """Text of an uploaded/read lexicon (`_io.decode_text`: UTF-8, UTF-16/32 with BOM, gzip; binary is refused)."""
    return _io.decode_text(data, f"lexicon {name}", error=LexiconError)


def detect_layout(lines: Sequence[str], name: str = "lexicon", src: str = "en", tgt: str = "") -> str:
    """Guess the layout from the first non-blank lines; an explicit `layout=` overrides it."""
    sample = [line for line in lines[:400] if line.strip()][:200]
    if not sample:
        raise LexiconError(f"lexicon {name} is empty")
    share = lambda test: sum(1 for line in sample if test(line)) / len(sample)  # noqa: E731
    if share(lambda line: " @ " in line) >= 0.5:
        return "reversed"
    if "\t" in sample[0] and _header_columns(sample[0].split("\t"), src, tgt) is not None:
        return "tsv"
    if share(lambda line: " ||| " in line) >= 0.5:
        return "multiword"
    if share(lambda line: "\t" in line) >= 0.5:
        cells = [cell.strip() for line in sample for cell in line.split("\t")]
        return "multiword" if any(" " in cell for cell in cells) else "muse"
    if share(lambda line: len(line.split()) == 2) >= 0.5:
        return "muse"
    raise LexiconError(f"cannot tell the layout of lexicon {name} (first line {sample[0][:80]!r}); pass layout= one "
                       f"of muse ('source target'), reversed ('target @ source'), tsv (with header), multiword")


def _space_header(lines: Sequence[str], src: str, tgt: str) -> tuple[int, tuple[str, ...], tuple[int, int]] | None:
    """(line index, cells, columns) when the first non-blank line of a two-column list is a header row."""
    head_index = next((i for i, line in enumerate(lines) if line.strip()), None)
    if head_index is None:
        return None
    cells = tuple(lines[head_index].split("\t") if "\t" in lines[head_index] else lines[head_index].split())
    found = _header_columns(cells, src, tgt) if len(cells) == 2 else None
    return (head_index, tuple(c.strip() for c in cells), found) if found is not None else None


def _header_columns(cells: Sequence[str], src: str, tgt: str) -> tuple[int, int] | None:
    """(source column, target column) when `cells` is a header row, else None."""
    names = [cell.strip().lower() for cell in cells]
    source_names = _HEADER_SOURCE | {src.lower()}
    target_names = _HEADER_TARGET | ({tgt.lower()} if tgt else set())
    s = next((i for i, n in enumerate(names) if n in source_names), None)
    t = next((i for i, n in enumerate(names) if n in target_names and i != s), None)
    return (s, t) if s is not None and t is not None else None


def clean_title(title: str) -> str:
    """Wikipedia title -> plain phrase: no namespace prefix, no "(disambiguation)", underscores as spaces, lowercase."""
    title = _NAMESPACE.sub("", title.strip().replace("_", " "))
    return _DISAMBIGUATION.sub("", title).strip().lower()


def _parse(text: str, name: str, encoding: str, layout: str, src: str, tgt: str, drop_identity: bool,
           swap: bool | None, name_reversed: bool = False) -> tuple[dict[str, tuple[str, ...]], LoadReport, int]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if layout == "auto":
        layout = detect_layout(lines, name, src, tgt)
    header: tuple[str, ...] | None = None
    columns = (0, 1)
    first_data = 0
    if layout == "tsv":
        head_index = next((i for i, line in enumerate(lines) if line.strip()), None)
        if head_index is None:
            raise LexiconError(f"lexicon {name} is empty")
        header = tuple(cell.strip() for cell in lines[head_index].rstrip("\r").split("\t"))
        found = _header_columns(header, src, tgt)
        if found is None and len(header) == 2:
            found = (0, 1)
        if found is None:
            raise LexiconError(f"lexicon {name}: TSV header {list(header)} names no source/target columns (use "
                               f"src/tgt, source/target or the language codes {src}/{tgt})")
        columns, first_data = found, head_index + 1
        positional = _header_columns(header, src, tgt) is None
    elif layout == "muse" and (head := _space_header(lines, src, tgt)) is not None:
        # "source target" / "en de" on top of a word list: a header, not a pair (it used to load as one)
        head_index, header, columns = head
        first_data, positional = head_index + 1, False
        if swap is None and columns == (1, 0):
            swap = True  # "de en": the header says the target comes first
    else:
        positional = layout in ("muse", "multiword")
    if swap is None:
        swap = name_reversed and positional
    table: dict[str, list[str]] = {}
    malformed: list[tuple[int, str]] = []
    unmatchable: list[tuple[int, str]] = []
    n_malformed = n_unmatchable = n_blank = n_pairs = n_identity = n_dup = 0
    max_n = 0
    width = max(columns) + 1
    for index in range(first_data, len(lines)):
        line = lines[index].rstrip("\r")
        if not line.strip():
            n_blank += 1
            continue
        pair = _split_line(line, layout, columns, width)
        if pair is None:
            n_malformed += 1
            if len(malformed) < MAX_EXAMPLES:
                malformed.append((index + 1, line[:120]))
            continue
        source, target = (pair[1], pair[0]) if swap else pair
        if layout == "multiword":
            source, target = clean_title(source), clean_title(target)
            if not source or not target:
                n_malformed += 1
                if len(malformed) < MAX_EXAMPLES:
                    malformed.append((index + 1, line[:120]))
                continue
        key, n_words = _norm_key(source)
        target = nfc(target).strip()
        if not n_words:
            # e.g. "#der @ #the": punctuation at the edge of a key can never line up with caption words.
            n_unmatchable += 1
            if len(unmatchable) < MAX_EXAMPLES:
                unmatchable.append((index + 1, line[:120]))
            continue
        n_pairs += 1
        if drop_identity and _norm_key(target)[0] == key:
            n_identity += 1
            continue
        bucket = table.setdefault(key, [])
        if target in bucket:
            n_dup += 1
            continue
        bucket.append(target)
        if n_words > max_n:
            max_n = n_words
    table = {k: v for k, v in table.items() if v}
    n_entries = sum(len(v) for v in table.values())
    report = LoadReport(Path(name).name, layout, encoding, len(lines), n_pairs, n_entries, n_blank, n_malformed,
                        tuple(malformed), n_unmatchable, tuple(unmatchable), n_identity, n_dup, header, swap)
    n_content = len(lines) - first_data - n_blank
    if n_content <= 0:
        raise LexiconError(f"lexicon {name} is empty (no pairs after {'the header' if header else 'reading it'})")
    if not table:
        why = "every line is malformed" if n_malformed == n_content else "no usable pair is left"
        raise LexiconError(f"lexicon {name}: {why} for layout {layout!r}\n{report.summary()}")
    if n_malformed > n_content / 2:
        raise LexiconError(f"lexicon {name}: {n_malformed} of {n_content} lines are malformed for layout {layout!r}; "
                           f"is that the right layout?\n{report.summary()}")
    return {k: tuple(v) for k, v in table.items()}, report, max_n


def _split_line(line: str, layout: str, columns: tuple[int, int], width: int) -> tuple[str, str] | None:
    """(source, target) cells of one line, or None when it does not fit the layout."""
    if layout == "reversed":
        parts = line.split(" @ ")
        if len(parts) != 2:
            return None
        target, source = parts[0].strip(), parts[1].strip()
    elif layout == "muse":
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) != 2:
            return None
        source, target = parts[0].strip(), parts[1].strip()
    elif layout == "tsv":
        parts = line.split("\t")
        if len(parts) < width:
            return None
        source, target = parts[columns[0]].strip(), parts[columns[1]].strip()
    else:  # multiword
        parts = line.split(" ||| ") if " ||| " in line else line.split("\t")
        if len(parts) != 2:
            return None
        source, target = parts[0].strip(), parts[1].strip()
    if not source or not target:
        return None
    return source, target


# --------------------------------------------------------------------------------------------------------------------
# MUSE files: shared data, cache, download


def available_muse(data_root: str | os.PathLike | None = None) -> list[str]:
    """Target languages with an EN->X MUSE dictionary in the data folder or the download cache."""
    found: set[str] = set()
    for folder in (Path(data_root or paths.data_dir()) / "muse", paths.cache_dir() / "muse"):
        if folder.is_dir():
            for path in folder.iterdir():
                match = re.fullmatch(r"en-([a-z]{2,3})\.(dict|txt)", path.name)
                if match:
                    found.add(match.group(1))
    return sorted(found)


def muse_path(lang: str, data_root: str | os.PathLike | None = None) -> Path | None:
    """Where the EN->`lang` MUSE dictionary is on disk (shared data first, then the download cache), or None."""
    lang = normalize_lang(lang)
    root = Path(data_root or paths.data_dir()) / "muse"
    for candidate in (root / f"en-{lang}.dict", root / f"en-{lang}.txt", paths.cache_dir() / "muse" / f"en-{lang}.txt"):
        if candidate.is_file():
            return candidate
    return None


def load_muse(lang: str, data_root: str | os.PathLike | None = None, *, drop_identity: bool = False,
              download: bool = False) -> Lexicon:
    """The MUSE EN->`lang` lexicon from the data folder or cache (downloading it when asked); memoised per file."""
    lang = normalize_lang(lang)
    path = muse_path(lang, data_root)
    if path is None:
        if not download:
            have = ", ".join(available_muse(data_root)) or "none"
            raise LexiconError(f"no MUSE dictionary en-{lang} under {Path(data_root or paths.data_dir()) / 'muse'} or "
                               f"{paths.cache_dir() / 'muse'} (available: {have}); download it with "
                               f"download_muse('{lang}') or give a lexicon file")
        path = download_muse(lang)
    stat = path.stat()
    return _load_cached(str(path), stat.st_mtime_ns, stat.st_size, lang, drop_identity)


@functools.lru_cache(maxsize=32)
def _load_cached(path: str, mtime_ns: int, size: int, lang: str, drop_identity: bool) -> Lexicon:
    return Lexicon.from_file(path, "en", lang, drop_identity=drop_identity)


def download_muse(lang: str, cache_dir: str | os.PathLike | None = None, *, timeout: float = 10.0,
                  url: str | None = None, force: bool = False) -> Path:
    """Fetch the official EN->`lang` MUSE dictionary once into the cache; offline it says so clearly."""
    lang = normalize_lang(lang)
    target = Path(cache_dir or paths.cache_dir()) / "muse" / f"en-{lang}.txt"
    if target.is_file() and not force:
        return target
    url = url or MUSE_URL.format(lang=lang)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed https URL by default)
            data = response.read()
    except urllib.error.HTTPError as error:
        raise LexiconError(f"download of {url} failed: HTTP {error.code} (is en-{lang} a MUSE language?)") from error
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise LexiconError(f"cannot download the MUSE dictionary from {url} ({reason}): offline or unreachable. "
                           f"Put the file at {target} or load a lexicon file instead") from error
    Lexicon.from_bytes(data, target.name, "en", lang)  # refuse an HTML error page or a truncated file
    return _io.atomic_write_bytes(target, data)
