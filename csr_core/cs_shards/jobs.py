"""Jobs, counters and sidecar records shared by the shard and table code-switchers."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from csr_core.codeswitch import CodeSwitcher, SwitchedText
from csr_core.cs_shards._constants import KEY_MODES, ON_MISSING, ORIG_SUFFIX
from csr_core.errors import CSRError

# --------------------------------------------------------------------------------------------------------------------
# shard patterns


def expand_braces(pattern: str) -> Iterator[str]:
    """Expand a shard pattern as webdataset/open_clip do (the `braceexpand` package they use: `{000..003}`,
    `{a,b}`, nested groups), with several patterns joined by `::`. Unbalanced braces are an error."""
    from braceexpand import UnbalancedBracesError, braceexpand  # type: ignore[attr-defined]

    for part in pattern.split("::"):
        if not part:
            continue
        try:
            yield from braceexpand(part)
        except UnbalancedBracesError:
            raise CSRError(f"unbalanced braces in shard pattern {part!r}") from None


# --------------------------------------------------------------------------------------------------------------------
# jobs and counts


@dataclass(frozen=True)
class SwitchJob:
    """What to switch and how; picklable, so worker processes and Ray tasks get the same switcher."""

    switcher: CodeSwitcher
    key: str = "sample"  # sample: sample key / key column / row number; text: caption text; index: row number
    caption_ext: str = "txt"  # tar shards: the caption member's extension
    caption_col: str = "caption"  # tables
    key_col: str | None = None  # tables: None = the `key` column when there is one, else the row number
    on_missing: str = "error"  # a sample without caption (tables: null or empty cell): error or skip
    sep: str | None = None  # CSV separator; None: detected from the header (tab for a parquet input's CSV output)
    batch_size: int = 2048  # table rows per batch

    def __post_init__(self) -> None:
        if not isinstance(self.switcher, CodeSwitcher):
            raise CSRError(f"a SwitchJob needs a CodeSwitcher, got {type(self.switcher).__name__}")
        if self.key not in KEY_MODES:
            raise CSRError(f"key must be one of {', '.join(KEY_MODES)}, got {self.key!r}")
        if self.on_missing not in ON_MISSING:
            raise CSRError(f"on_missing must be one of {', '.join(ON_MISSING)}, got {self.on_missing!r}")
        ext = self.caption_ext.lstrip(".").lower()
        if not ext or "/" in ext:
            raise CSRError(f"caption extension must be like 'txt', got {self.caption_ext!r}")
        object.__setattr__(self, "caption_ext", ext)
        if self.sep is not None and len(self.sep) != 1:
            raise CSRError(f"the CSV separator must be one character, got {self.sep!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise CSRError(f"batch_size must be a positive integer, got {self.batch_size!r}")

    @property
    def orig_ext(self) -> str:
        return f"{ORIG_SUFFIX}.{self.caption_ext}"


@dataclass
class SwitchStats:
    """Counts over switched captions; the per-language switched content words add up to `n_switched_content`."""

    n_samples: int = 0
    n_skipped: int = 0
    n_content: int = 0
    n_switched_content: int = 0
    by_lang: dict[str, int] = field(default_factory=dict)

    def add(self, other: SwitchStats) -> None:
        self.n_samples += other.n_samples
        self.n_skipped += other.n_skipped
        self.n_content += other.n_content
        self.n_switched_content += other.n_switched_content
        for lang, count in other.by_lang.items():
            self.by_lang[lang] = self.by_lang.get(lang, 0) + count

    @property
    def switch_ratio(self) -> float:
        return self.n_switched_content / self.n_content if self.n_content else 0.0

    def lang_ratio(self, lang: str) -> float:
        return self.by_lang.get(lang, 0) / self.n_content if self.n_content else 0.0


@dataclass
class FileResult:
    """One input file (shard or table) and its output."""

    source: str
    output: str
    stats: SwitchStats
    seconds: float


@dataclass
class RunSummary:
    """What a run did: per-file results in input order and the totals."""

    kind: str  # "shards" or "tables"
    files: list[FileResult]
    stats: SwitchStats
    seconds: float
    switcher_params: dict[str, Any]

    @property
    def captions_per_second(self) -> float:
        return self.stats.n_samples / self.seconds if self.seconds > 0 else 0.0


class _Counter:
    """Accumulates `SwitchStats` caption by caption (content words of each span, as `CodeSwitcher.language_stats`)."""

    def __init__(self, switcher: CodeSwitcher) -> None:
        from csr_core.tokenize import split_words, stopwords

        self.stats = SwitchStats()
        self._by_lang: Counter[str] = Counter()
        self._stop = stopwords(switcher.src)
        self._split = split_words
        self._content: dict[str, int] = {}  # span source -> its content words (sources repeat a lot)

    def add(self, result: SwitchedText) -> None:
        stats = self.stats
        stats.n_samples += 1
        stats.n_content += result.n_content
        stats.n_switched_content += result.n_switched_content
        if result.n_switched:
            known = self._content
            for span in result.spans:
                count = known.get(span.source)
                if count is None:
                    count = sum(w.lower() not in self._stop for w in self._split(span.source)[1::2])
                    if len(known) >= 100_000:
                        known.clear()
                    known[span.source] = count
                self._by_lang[span.lang] += count

    def done(self) -> SwitchStats:
        self.stats.by_lang = dict(self._by_lang)
        return self.stats


def sidecar(switcher: CodeSwitcher, result: SwitchedText, key: str | None, seed_key: str | None) -> dict[str, Any]:
    """The record kept beside a switched caption: how it was switched (mode, p, langs, seed and the key that seeded
    it; None = the caption text) and what changed (spans with offsets into `original` and `text`)."""
    record: dict[str, Any] = {"key": key, "seed": switcher.seed, "seed_key": seed_key, "mode": switcher.mode,
                              "p": switcher.p, "langs": list(switcher.langs),
                              "translation_choice": switcher.translation_choice,
                              "langs_used": list(result.langs_used)}
    record.update(result.to_dict())
    return record


def _dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))
