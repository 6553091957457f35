"""Code-switching of CLIP training data at scale: webdataset tar shards and caption tables, streamed.

Inputs, as CLIP pretraining pipelines store them:

- webdataset tar shards in img2dataset layout (`<key>.jpg`, `<key>.txt` caption, optional `<key>.json`), plain or
  gzip-compressed. Each output shard has the same members in the same order; the caption member holds the switched
  caption, the original follows as `<key>.orig.txt` and a sidecar `<key>.cs.json` records the spans, languages, p,
  mode, seed and the key that seeded the caption. open_clip_train reads the shards unchanged (it takes `.txt` as the
  caption; the extra members are ignored), and `sizes.json` beside them gives it the sample counts.
- caption tables: CSV/TSV (open_clip_train's `CsvDataset`, tab-separated by default) and parquet (img2dataset's
  metadata). The output is the same table with the caption column switched in place (so `--csv-caption-key` stays
  what it was), plus `<caption>_orig` (the original) and `cs_json` (the sidecar as JSON). A parquet input can be
  written as a CSV/TSV for open_clip_train (`--out train.tsv`).

Streaming: a tar shard is read member by member (one sample in memory at a time), a table batch by batch (CSV rows
or parquet row-group batches); shard patterns (`{00000..00999}`) are expanded with `braceexpand`, as webdataset/open_clip do.
Every output file is written atomically (`csr_core._io.atomic_write`): a killed job leaves at most a hidden
`.<name>.*.tmp`, never a half-written shard under its final name.

Parallelism: `workers > 1` switches shards in that many processes (one output shard per input shard); a table's
batches are switched in the worker processes while this process reads and writes in order. `use_ray=True` runs one
Ray Data task per shard or table (a cluster reads and writes a shared file system). Determinism: each caption's
draws depend only on (seed, key) -- the sample key (`__key__` of the tar, the `key` column of img2dataset parquet,
else the row number) or, with `key="text"`, the caption text as in the line CLI -- so the output bytes are the same
whatever the number of workers, the backend or the order shards finish in.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import multiprocessing
import os
import re
import stat
import tarfile
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csr_core import _io
from csr_core.codeswitch import CodeSwitcher, SwitchedText
from csr_core.errors import CancelledError, CSRError, DataError

KEY_MODES = ("sample", "text", "index")
ON_MISSING = ("error", "skip")
ORIG_SUFFIX = "orig"  # <key>.orig.txt
SIDECAR_SUFFIX = "cs.json"  # <key>.cs.json
SIDECAR_COLUMN = "cs_json"
SIZES_FILE = "sizes.json"  # open_clip_train's get_dataset_size reads it
MANIFEST_FILE = "codeswitch.json"
TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}
_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error)
_KEY_SPLIT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's base_plus_ext: key up to the first dot
_CANCEL_EVERY = 64


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


# --------------------------------------------------------------------------------------------------------------------
# webdataset tar shards


def switch_shard(source: str | os.PathLike, output: str | os.PathLike, job: SwitchJob,
                 cancel: Callable[[], bool] | None = None) -> FileResult:
    """Switch one tar shard into `output` (atomically); see the module docstring for the layout."""
    source, output = Path(source), Path(output)
    if job.key == "index":
        raise CSRError("shards are keyed by their sample keys (key='sample') or the caption text (key='text'); "
                       "key='index' is for tables")
    _check_distinct(source, output)
    if not source.exists() or source.is_dir():
        raise DataError(f"shard {source} not found" if not source.exists() else f"shard {source} is a folder")
    started = time.perf_counter()
    counter = _Counter(job.switcher)
    compress = output.name.endswith((".gz", ".tgz"))

    def write(tmp: Path) -> None:
        with contextlib.ExitStack() as stack:
            raw = stack.enter_context(open(source, "rb"))
            compressed = raw.peek(6)[:6].startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ"))  # peek: pipes work too
            sink: Any = stack.enter_context(open(tmp, "wb"))
            if compress:  # mtime 0: the same input gives the same bytes
                sink = stack.enter_context(gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0))
            try:
                reader = tarfile.open(fileobj=raw, mode="r|*")
            except _TAR_ERRORS as exc:
                raise DataError(f"{source} is not a tar archive (a webdataset shard): {exc}") from None
            writer = _TarWriter(sink)
            _copy_shard(reader, writer, None if compressed else raw, source, job, counter, cancel)
            writer.close()

    try:
        _io.atomic_write(output, write)
    except OSError as exc:
        raise CSRError(f"cannot switch {source} into {output}: {exc.strerror or exc}") from exc
    return FileResult(str(source), str(output), counter.done(), time.perf_counter() - started)


def _copy_shard(reader: tarfile.TarFile, writer: _TarWriter, raw: Any, source: Path, job: SwitchJob,
                counter: _Counter, cancel: Callable[[], bool] | None) -> None:
    sample_key: str | None = None
    members: list[tuple[tarfile.TarInfo, bytes | None, str]] = []
    last = "(start of archive)"
    iterator = iter(reader)
    n_samples = 0
    while True:
        try:
            member = next(iterator)
        except StopIteration:
            break
        except _TAR_ERRORS as exc:
            raise DataError(f"{source}: corrupt or truncated tar after member {last!r}: {exc}") from None
        data: bytes | None = None
        if member.isfile():
            try:
                handle = reader.extractfile(member)
                data = handle.read() if handle is not None else b""
            except _TAR_ERRORS as exc:
                raise DataError(f"{source}: member {member.name!r} is truncated or unreadable: {exc}") from None
        last = member.name
        split = _KEY_SPLIT.match(member.name) if member.isfile() else None
        if split is None:  # directories, links, `__meta__` files without an extension: copied where they are
            if members:
                _write_sample(writer, sample_key, members, source, job, counter)
                members = []
            _add(writer, member, data)
            continue
        key, suffix = split.group(1), split.group(2).lower()
        if key != sample_key or any(suffix == seen for _, _, seen in members):
            if members:
                if key == sample_key:
                    raise DataError(f"{source}: member {member.name!r} repeats the .{suffix} of sample {key!r} "
                                    "(the members of a sample must be consecutive and distinct)")
                _write_sample(writer, sample_key, members, source, job, counter)
                n_samples += 1
                if cancel is not None and n_samples % _CANCEL_EVERY == 0 and cancel():
                    raise CancelledError(f"switching {source} was cancelled")
            sample_key, members = key, []
        members.append((member, data, suffix))
    if members:
        _write_sample(writer, sample_key, members, source, job, counter)
    info = os.fstat(raw.fileno()) if raw is not None else None  # uncompressed regular files only (not pipes)
    if info is not None and stat.S_ISREG(info.st_mode) and info.st_size - reader.offset < 512:
        raise DataError(f"{source}: truncated tar: no end-of-archive marker after member {last!r}")


def _write_sample(writer: _TarWriter, key: str | None, members: list[tuple[tarfile.TarInfo, bytes | None, str]],
                  source: Path, job: SwitchJob, counter: _Counter) -> None:
    ext = job.caption_ext
    suffixes = [suffix for _, _, suffix in members]
    taken = [s for s in suffixes if s in (job.orig_ext, SIDECAR_SUFFIX)]
    if taken:
        raise DataError(f"{source}: sample {key!r} already has a .{taken[0]} member: this shard is code-switched "
                        "already (switch the original shards)")
    if ext not in suffixes:
        if job.on_missing == "skip":
            counter.stats.n_skipped += 1
            return
        names = ", ".join(info.name for info, _, _ in members)
        raise DataError(f"{source}: sample {key!r} has no .{ext} caption (members: {names}); pass on_missing='skip' "
                        "(--on-missing skip) to drop such samples")
    switcher = job.switcher
    for info, data, suffix in members:
        if suffix != ext:
            _add(writer, info, data)
            continue
        raw = data or b""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{source}: member {info.name!r} (the caption of sample {key!r}) is not valid UTF-8 "
                            f"(byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
        seed_key = key if job.key != "text" else None
        result = switcher.switch(text, seed_key)
        counter.add(result)
        base = info.name[: len(info.name) - len(ext) - 1]
        _add(writer, _fresh(info, info.name), result.text.encode("utf-8"))
        _add(writer, _fresh(info, f"{base}.{job.orig_ext}"), raw)
        _add(writer, _fresh(info, f"{base}.{SIDECAR_SUFFIX}"),
             _dumps(sidecar(switcher, result, key, seed_key)).encode("utf-8"))


def _fresh(template: tarfile.TarInfo, name: str) -> tarfile.TarInfo:
    """A new regular-file header named `name` with the caption member's owner, mode and time (no stale pax)."""
    info = tarfile.TarInfo(name)
    info.mtime, info.mode = template.mtime, template.mode
    info.uid, info.gid, info.uname, info.gname = template.uid, template.gid, template.uname, template.gname
    return info


def _add(writer: _TarWriter, info: tarfile.TarInfo, data: bytes | None) -> None:
    writer.add(info, data)


class _TarWriter:
    """tarfile's own streaming writer (PAX format, UTF-8 names), one member at a time."""

    def __init__(self, sink: Any) -> None:
        self._tar = tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8")

    def add(self, info: tarfile.TarInfo, data: bytes | None) -> None:
        if data is None:
            self._tar.addfile(info)
        else:
            info.size = len(data)
            self._tar.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        self._tar.close()


def _check_distinct(source: Path, output: Path) -> None:
    with contextlib.suppress(OSError):
        if output.exists() and os.path.samefile(source, output):
            raise CSRError(f"output {output} is the input itself; write to another folder")
    if source.resolve() == output.resolve():
        raise CSRError(f"output {output} is the input itself; write to another folder")


# --------------------------------------------------------------------------------------------------------------------
# caption tables (CSV/TSV, parquet)


@dataclass
class _Batch:
    """A batch of table rows: CSV rows (lists of str) or a parquet record batch, with where each row came from."""

    captions: list[Any]
    keys: list[Any]
    first_row: int  # global 0-based index of the first row
    lines: list[int] | None = None  # CSV: the line each row starts on
    rows: list[list[str]] | None = None
    arrow: Any = None

    def where(self, index: int) -> str:
        if self.lines is not None:
            return f"line {self.lines[index]}"
        return f"row {self.first_row + index}"


def table_format(path: str | os.PathLike) -> str:
    """"csv" or "parquet" from the file name (.csv/.tsv/.txt, .parquet/.pq; a trailing .gz is not supported)."""
    suffix = Path(path).suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise CSRError(f"cannot tell the table format of {path}: name it .csv, .tsv or .parquet")
    return TABLE_SUFFIXES[suffix]


class _TableReader:
    """Streams a CSV/TSV (stdlib csv, line numbers kept) or parquet file (pyarrow, batch by batch)."""

    def __init__(self, path: Path, job: SwitchJob) -> None:
        self.path = path
        self.job = job
        self.format = table_format(path)
        self.columns: list[str] = []
        self.sep: str | None = None
        self.schema: Any = None
        self._stack = contextlib.ExitStack()
        if not path.is_file():
            raise DataError(f"table {path} not found" if not path.exists() else f"table {path} is not a file")
        try:
            self._open()
        except BaseException:
            self._stack.close()
            raise

    def _open(self) -> None:
        path, job = self.path, self.job
        if self.format == "csv":
            self._open_csv()
        else:
            self._open_parquet()
        for name in (f"{job.caption_col}_orig", SIDECAR_COLUMN):
            if name in self.columns:
                raise DataError(f"{path} already has a {name!r} column: this table is code-switched already")
        if job.caption_col not in self.columns:
            raise DataError(f"{path} has no caption column {job.caption_col!r} (columns: {', '.join(self.columns)}); "
                            "name it with --caption-col")
        self.caption_index = self.columns.index(job.caption_col)
        self.key_col = job.key_col
        if self.key_col is None and job.key == "sample" and "key" in self.columns:
            self.key_col = "key"
        if self.key_col is not None and self.key_col not in self.columns:
            raise DataError(f"{path} has no key column {self.key_col!r} (columns: {', '.join(self.columns)})")
        self.key_index = self.columns.index(self.key_col) if self.key_col is not None else None

    def close(self) -> None:
        self._stack.close()

    # -- CSV

    def _open_csv(self) -> None:
        handle = self._stack.enter_context(open(self.path, encoding="utf-8-sig", errors="surrogateescape",
                                                newline=""))
        first = handle.readline()
        if not first.strip():
            raise DataError(f"{self.path} is empty: a caption table needs a header line")
        self.sep = self.job.sep or ("\t" if "\t" in first else "," if "," in first else "\t")
        handle.seek(0)  # the utf-8-sig decoder is reset: a BOM is dropped again
        self._csv = csv.reader(handle, delimiter=self.sep)
        try:
            self.columns = next(self._csv)
        except csv.Error as exc:
            raise DataError(f"{self.path}, line 1: unreadable CSV header: {exc}") from None
        bad = [name for name in self.columns if _has_surrogates(name)]
        if bad:
            raise DataError(f"{self.path}, line 1: the header is not valid UTF-8")

    def _csv_batches(self) -> Iterator[_Batch]:
        width = len(self.columns)
        cap, key_i = self.caption_index, self.key_index
        size = self.job.batch_size
        row_index = 0
        line = self._csv.line_num + 1
        rows: list[list[str]] = []
        lines: list[int] = []
        while True:
            try:
                row = next(self._csv)
            except StopIteration:
                break
            except csv.Error as exc:
                raise DataError(f"{self.path}, line {line}: malformed CSV: {exc}") from None
            if not row:  # a blank line
                line = self._csv.line_num + 1
                continue
            if len(row) != width:
                raise DataError(f"{self.path}, line {line}: {len(row)} field(s) but the header has {width} "
                                f"(separator {self.sep!r}; pass --sep if it is another one)")
            rows.append(row)
            lines.append(line)
            line = self._csv.line_num + 1
            if len(rows) == size:
                yield self._csv_batch(rows, lines, row_index, cap, key_i)
                row_index += len(rows)
                rows, lines = [], []
        if rows:
            yield self._csv_batch(rows, lines, row_index, cap, key_i)

    def _csv_batch(self, rows: list[list[str]], lines: list[int], first: int, cap: int, key_i: int | None) -> _Batch:
        batch = _Batch([row[cap] for row in rows], [row[key_i] for row in rows] if key_i is not None else [],
                       first, lines=lines, rows=rows)
        for index, caption in enumerate(batch.captions):
            if _has_surrogates(caption):
                raise DataError(f"{self.path}, {batch.where(index)}: the caption ({self.job.caption_col!r}) is not "
                                "valid UTF-8")
        return batch

    # -- parquet

    def _open_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            self._parquet = pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{self.path} is not a parquet file: {exc}") from None
        self.schema = self._parquet.schema_arrow
        self.columns = list(self.schema.names)
        caption = self.job.caption_col
        if caption in self.columns:
            kind = self.schema.field(caption).type
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)
                    or pa.types.is_large_binary(kind)):
                raise DataError(f"{self.path}: the caption column {caption!r} holds {kind}, not text")

    def _parquet_batches(self) -> Iterator[_Batch]:
        import pyarrow as pa

        first = 0
        try:
            for record in self._parquet.iter_batches(batch_size=self.job.batch_size):
                captions = record.column(self.caption_index).to_pylist()
                keys = record.column(self.key_index).to_pylist() if self.key_index is not None else []
                batch = _Batch(captions, keys, first, arrow=record)
                for index, caption in enumerate(captions):
                    if isinstance(caption, bytes):
                        try:
                            captions[index] = caption.decode("utf-8")
                        except UnicodeDecodeError as exc:
                            raise DataError(f"{self.path}, {batch.where(index)}: the caption is not valid UTF-8 "
                                            f"(byte 0x{caption[exc.start]:02x} at offset {exc.start})") from None
                yield batch
                first += record.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{self.path}: unreadable parquet data after row {first}: {exc}") from None

    def batches(self) -> Iterator[_Batch]:
        return self._csv_batches() if self.format == "csv" else self._parquet_batches()


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class _TableWriter:
    """Writes switched batches as CSV (stdlib csv) or parquet (pyarrow), columns in input order plus two more."""

    def __init__(self, path: Path, reader: _TableReader, job: SwitchJob) -> None:
        self.format = table_format(path)
        self.reader = reader
        self.caption_col = job.caption_col
        self.columns = [*reader.columns, f"{job.caption_col}_orig", SIDECAR_COLUMN]
        self._stack = contextlib.ExitStack()
        self._handle: Any = None
        self._parquet: Any = None
        self._schema: Any = None
        self.sep = job.sep or reader.sep or "\t"
        self._path = path

    def open(self, tmp: Path) -> None:
        if self.format == "csv":
            self._handle = self._stack.enter_context(open(tmp, "w", encoding="utf-8", errors="surrogateescape",
                                                          newline=""))
            self._csv = csv.writer(self._handle, delimiter=self.sep, lineterminator="\n")
            self._csv.writerow(self.columns)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.reader.schema is not None:
            schema = self.reader.schema
            index = schema.get_field_index(self.caption_col)
            kind = schema.field(index).type
            text_type = pa.large_string() if pa.types.is_large_string(kind) or pa.types.is_large_binary(kind) \
                else pa.string()
            schema = schema.set(index, pa.field(self.caption_col, text_type, nullable=True))
        else:
            schema = pa.schema([pa.field(name, pa.string()) for name in self.reader.columns])
            text_type = pa.string()
        schema = schema.append(pa.field(f"{self.caption_col}_orig", text_type)).append(
            pa.field(SIDECAR_COLUMN, pa.string()))
        self._schema = schema
        self._parquet = pq.ParquetWriter(str(tmp), schema)
        self._stack.callback(self._parquet.close)

    def write(self, batch: _Batch, keep: list[int] | None, texts: list[str], originals: list[str],
              sidecars: list[str]) -> None:
        if self.format == "csv":
            self._csv.writerows(self._csv_rows(batch, keep, texts, originals, sidecars))
        else:
            self._write_parquet(batch, keep, texts, originals, sidecars)

    def _csv_rows(self, batch: _Batch, keep: list[int] | None, texts: list[str], originals: list[str],
                  sidecars: list[str]) -> Iterator[list[str]]:
        cap = self.reader.caption_index
        if batch.rows is not None:
            source_rows: Sequence[list[Any]] = batch.rows
        else:
            columns = batch.arrow.to_pydict()
            source_rows = [list(values) for values in zip(*(columns[name] for name in self.reader.columns))]
        picked = source_rows if keep is None else [source_rows[i] for i in keep]
        for row, text, original, record in zip(picked, texts, originals, sidecars):
            out = [_cell(value) for value in row]
            out[cap] = text
            out.extend((original, record))
            yield out

    def _write_parquet(self, batch: _Batch, keep: list[int] | None, texts: list[str], originals: list[str],
                       sidecars: list[str]) -> None:
        import pyarrow as pa

        schema = self._schema
        cap = self.reader.caption_index
        if batch.arrow is not None:
            record = batch.arrow
            if keep is not None:
                record = record.take(pa.array(keep, type=pa.int64()))
            arrays = list(record.columns)
        else:
            source_rows = batch.rows or []
            rows = source_rows if keep is None else [source_rows[i] for i in keep]
            arrays = [pa.array([row[i] for row in rows], pa.string()) for i in range(len(self.reader.columns))]
        text_type = schema.field(cap).type
        arrays[cap] = pa.array(texts, text_type)
        arrays.append(pa.array(originals, text_type))
        arrays.append(pa.array(sidecars, pa.string()))
        self._parquet.write_table(pa.Table.from_arrays(arrays, schema=schema))

    def close(self) -> None:
        self._stack.close()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    return value if isinstance(value, str) else str(value)


def switch_captions(job: SwitchJob, captions: Sequence[str], keys: Sequence[str | None],
                    record_keys: Sequence[str | None]) -> tuple[list[str], list[str], SwitchStats]:
    """Switch a batch of captions: (switched texts, sidecar JSON strings, stats). `keys` seed the draws (None: the
    caption text); `record_keys` are the sample keys written into the sidecars."""
    switcher = job.switcher
    counter = _Counter(switcher)
    texts, records = [], []
    for caption, seed_key, record_key in zip(captions, keys, record_keys):
        result = switcher.switch(caption, seed_key)
        counter.add(result)
        texts.append(result.text)
        records.append(_dumps(sidecar(switcher, result, record_key, seed_key)))
    return texts, records, counter.done()


def _prepare(batch: _Batch, reader: _TableReader, job: SwitchJob) -> tuple[list[int] | None, list[str],
                                                                         list[str | None], list[str | None], int]:
    """(rows kept or None for all, captions, seed keys, record keys, rows skipped) of a batch; missing caption or
    key: DataError naming the row, or skipped with on_missing='skip'."""
    keep: list[int] = []
    captions: list[str] = []
    seed_keys: list[str | None] = []
    record_keys: list[str | None] = []
    skipped = 0
    for index, caption in enumerate(batch.captions):
        if caption is None or caption == "":
            if job.on_missing == "skip":
                skipped += 1
                continue
            raise DataError(f"{reader.path}, {batch.where(index)}: no caption (the {job.caption_col!r} cell is "
                            "empty); pass --on-missing skip to drop such rows")
        row_key: str
        if reader.key_index is not None:
            value = batch.keys[index]
            if value is None or value == "":
                raise DataError(f"{reader.path}, {batch.where(index)}: the key column {reader.key_col!r} is empty")
            row_key = value if isinstance(value, str) else str(value)
        else:
            row_key = str(batch.first_row + index)
        if job.key == "index":
            row_key = str(batch.first_row + index)
        keep.append(index)
        captions.append(caption)
        record_keys.append(row_key)
        seed_keys.append(None if job.key == "text" else row_key)
    return (None if skipped == 0 else keep), captions, seed_keys, record_keys, skipped


def switch_table(source: str | os.PathLike, output: str | os.PathLike, job: SwitchJob,
                 pool: _Pool | None = None) -> FileResult:
    """Switch one caption table into `output` (atomically; CSV or parquet by its name). With a `pool`, batches are
    switched in its worker processes while this process reads and writes them in order."""
    source, output = Path(source), Path(output)
    _check_distinct(source, output)
    table_format(output)
    started = time.perf_counter()
    total = SwitchStats()
    reader = _TableReader(source, job)
    try:
        writer = _TableWriter(output, reader, job)

        def write(tmp: Path) -> None:
            writer.open(tmp)
            try:
                window: deque[tuple[_Batch, list[int] | None, list[str], Any]] = deque()
                limit = 2 * pool.workers if pool is not None else 0

                def flush_one() -> None:
                    batch, keep, originals, pending = window.popleft()
                    texts, records, stats = pending.result() if pool is not None else pending
                    writer.write(batch, keep, texts, originals, records)
                    total.add(stats)

                for batch in reader.batches():
                    keep, captions, seed_keys, record_keys, skipped = _prepare(batch, reader, job)
                    total.n_skipped += skipped
                    if pool is not None:
                        pending: Any = pool.submit(_switch_captions_task, (captions, seed_keys, record_keys))
                    else:
                        pending = switch_captions(job, captions, seed_keys, record_keys)
                    window.append((batch, keep, captions, pending))
                    while len(window) > limit:
                        flush_one()
                while window:
                    flush_one()
            finally:
                writer.close()

        try:
            _io.atomic_write(output, write)
        except OSError as exc:
            raise CSRError(f"cannot switch {source} into {output}: {exc.strerror or exc}") from exc
    finally:
        reader.close()
    return FileResult(str(source), str(output), total, time.perf_counter() - started)


# --------------------------------------------------------------------------------------------------------------------
# worker processes


_WORKER: dict[str, Any] = {}


def _init_worker(job: SwitchJob, cancel: Any) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _WORKER["job"] = job
    _WORKER["cancel"] = cancel


def _cancelled() -> bool:
    cancel = _WORKER.get("cancel")
    return bool(cancel is not None and cancel.is_set())


def _shard_task(source: str, output: str) -> FileResult:
    if _cancelled():
        raise CancelledError(f"switching {source} was cancelled")
    return switch_shard(source, output, _WORKER["job"], cancel=_cancelled)


def _switch_captions_task(captions: list[str], seed_keys: list[str | None],
                          record_keys: list[str | None]) -> tuple[list[str], list[str], SwitchStats]:
    if _cancelled():
        raise CancelledError("switching was cancelled")
    return switch_captions(_WORKER["job"], captions, seed_keys, record_keys)


class _Pool:
    """`workers` spawned processes holding the job (the switcher is sent once per worker). On an error the others
    are told to stop; each stops at its next sample, and its unfinished temp file is removed. A worker that dies
    (killed, out of memory) fails the run with BrokenProcessPool instead of hanging it."""

    def __init__(self, job: SwitchJob, workers: int) -> None:
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")  # never fork a process that may hold torch threads
        self.workers = workers
        self._cancel = context.Event()
        self._executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                             initargs=(job, self._cancel))

    def submit(self, fn: Callable[..., Any], args: tuple) -> Any:
        return self._executor.submit(fn, *args)

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        if error is not None:
            self._cancel.set()  # running tasks stop at their next sample; queued ones are dropped
        interrupted = error is not None and not isinstance(error, Exception)  # Ctrl-C: workers got it too
        self._executor.shutdown(wait=not interrupted, cancel_futures=error is not None)


def _ordered(pool: _Pool | None, job: SwitchJob, pairs: Iterable[tuple[str, str]]) -> Iterator[FileResult]:
    """Switch shards here or in the pool, at most 2 x workers submitted ahead, results in input order."""
    if pool is None:
        for source, output in pairs:
            yield switch_shard(source, output, job)
        return
    window: deque[Any] = deque()
    for source, output in pairs:
        window.append(pool.submit(_shard_task, (source, output)))
        if len(window) >= 2 * pool.workers:
            yield window.popleft().result()
    while window:
        yield window.popleft().result()


# --------------------------------------------------------------------------------------------------------------------
# Ray Data


class _RayFileSwitcher:
    """Ray Data callable class: one job per actor, one row = one input file."""

    def __init__(self, job: SwitchJob, kind: str) -> None:
        self.job = job
        self.kind = kind

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        try:
            if self.kind == "shards":
                result = switch_shard(row["source"], row["output"], self.job)
            else:
                result = switch_table(row["source"], row["output"], self.job)
        except CSRError as exc:  # user errors come back as rows, so the driver raises the message itself
            return {"index": row["index"], "error": str(exc), "error_type": type(exc).__name__, "result": ""}
        stats = result.stats
        payload = {"source": result.source, "output": result.output, "seconds": result.seconds,
                   "stats": {"n_samples": stats.n_samples, "n_skipped": stats.n_skipped, "n_content": stats.n_content,
                             "n_switched_content": stats.n_switched_content, "by_lang": stats.by_lang}}
        return {"index": row["index"], "error": "", "error_type": "", "result": json.dumps(payload)}


def _ray_env() -> dict[str, Any]:
    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    env = {k: v for k, v in os.environ.items() if k.startswith(("CSR_", "HF_"))}
    env["PYTHONPATH"] = root + (os.pathsep + path if path else "")
    return {"env_vars": env}


def _ray_run(kind: str, pairs: list[tuple[str, str]], job: SwitchJob, workers: int,
             address: str | None) -> list[FileResult]:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise CSRError(f"--ray needs Ray ({exc}); pip install 'ray[data]'") from None
    started = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False,
                                      runtime_env=_ray_env())
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=workers, **kwargs)
        started = True
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        items = [{"index": i, "source": s, "output": o} for i, (s, o) in enumerate(pairs)]
        dataset: Any = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
        dataset = dataset.map(_RayFileSwitcher, fn_constructor_args=(job, kind), concurrency=workers, num_cpus=1)
        rows = sorted(dataset.take_all(), key=lambda row: row["index"])
    finally:
        if started:
            ray.shutdown()
    errors = [row for row in rows if row["error"]]
    if errors:
        first = errors[0]
        more = f" ({len(errors) - 1} more file(s) failed too)" if len(errors) > 1 else ""
        error_type = DataError if first["error_type"] in ("DataError", "LexiconError") else CSRError
        raise error_type(first["error"] + more)
    results = []
    for row in rows:
        payload = json.loads(row["result"])
        stats = SwitchStats(**payload["stats"])
        results.append(FileResult(payload["source"], payload["output"], stats, payload["seconds"]))
    return results


# --------------------------------------------------------------------------------------------------------------------
# runs over many files


def _check_workers(workers: int) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise CSRError(f"workers must be a positive integer, got {workers!r}")
    return workers


def _shard_pairs(patterns: Sequence[str], out_dir: Path) -> Iterator[tuple[str, str]]:
    names: set[str] = set()
    any_shard = False
    for pattern in patterns:
        for shard in expand_braces(pattern):
            any_shard = True
            name = Path(shard).name
            if name in names:
                raise CSRError(f"two input shards are named {name}: their outputs in {out_dir} would collide")
            names.add(name)
            yield shard, str(out_dir / name)
    if not any_shard:
        raise CSRError("no shards: give a pattern such as 'data/{00000..00009}.tar'")


def switch_shards(patterns: str | Sequence[str], out_dir: str | os.PathLike, job: SwitchJob, *, workers: int = 1,
                  use_ray: bool = False, ray_address: str | None = None) -> RunSummary:
    """Switch every shard the pattern(s) name into `out_dir` (same file names), then merge their sample counts into
    `out_dir/sizes.json` (open_clip_train's dataset size) and the switching settings into `out_dir/codeswitch.json`.
    A folder holding shards switched with other settings is refused."""
    workers = _check_workers(workers)
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    out = Path(out_dir)
    manifest = _load_manifest(out, job)
    started = time.perf_counter()
    pairs = _shard_pairs(patterns, out)
    results: list[FileResult] = []
    if use_ray:
        results = _ray_run("shards", list(pairs), job, workers, ray_address)
    elif workers == 1:
        results = list(_ordered(None, job, pairs))
    else:
        with _Pool(job, workers) as pool:
            results = list(_ordered(pool, job, pairs))
    summary = _summary("shards", results, time.perf_counter() - started, job)
    _write_sizes(out, results)
    _write_manifest(out, manifest, job, results)
    return summary


def switch_tables(patterns: str | Sequence[str], job: SwitchJob, *, output: str | os.PathLike | None = None,
                  out_dir: str | os.PathLike | None = None, workers: int = 1, use_ray: bool = False,
                  ray_address: str | None = None) -> RunSummary:
    """Switch caption tables: one table into `output`, or each into `out_dir` under its own name. Locally the
    tables go one after another, each one's batches over `workers` processes; with Ray, one task per table."""
    workers = _check_workers(workers)
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    sources = [path for pattern in patterns for path in expand_braces(pattern)]
    if not sources:
        raise CSRError("no tables given")
    if (output is None) == (out_dir is None):
        raise CSRError("give either an output table (--out) or an output folder (--out-dir)")
    if output is not None:
        if len(sources) != 1:
            raise CSRError(f"{len(sources)} tables but one --out file; use --out-dir for several")
        pairs = [(sources[0], str(output))]
    else:
        folder = Path(out_dir)  # type: ignore[arg-type]
        names = [Path(s).name for s in sources]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise CSRError(f"several input tables are named {repeated[0]}: their outputs would collide")
        pairs = [(s, str(folder / n)) for s, n in zip(sources, names)]
    started = time.perf_counter()
    if use_ray:
        results = _ray_run("tables", pairs, job, workers, ray_address)
    elif workers == 1:
        results = [switch_table(s, o, job) for s, o in pairs]
    else:
        with _Pool(job, workers) as pool:
            results = [switch_table(s, o, job, pool) for s, o in pairs]
    return _summary("tables", results, time.perf_counter() - started, job)


def _summary(kind: str, results: list[FileResult], seconds: float, job: SwitchJob) -> RunSummary:
    total = SwitchStats()
    for result in results:
        total.add(result.stats)
    return RunSummary(kind, results, total, seconds, job.switcher.params)


def _write_sizes(out: Path, results: list[FileResult]) -> None:
    sizes: dict[str, int] = {}
    path = out / SIZES_FILE
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                sizes.update({str(k): int(v) for k, v in loaded.items()})
        except (OSError, ValueError, TypeError):
            sizes = {}
    for result in results:
        sizes[Path(result.output).name] = result.stats.n_samples
    _io.atomic_write_text(path, json.dumps(dict(sorted(sizes.items())), indent=1) + "\n")


def _settings(job: SwitchJob) -> dict[str, Any]:
    return {**job.switcher.params, "key": job.key, "caption_ext": job.caption_ext, "on_missing": job.on_missing}


def _load_manifest(out: Path, job: SwitchJob) -> dict[str, Any]:
    path = out / MANIFEST_FILE
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is unreadable ({exc}); remove it or use another --out-dir") from None
    if not isinstance(manifest, dict):
        raise DataError(f"{path} is not a code-switching manifest; remove it or use another --out-dir")
    if manifest.get("settings") != _settings(job):
        raise CSRError(f"{out} holds shards code-switched with other settings ({path}); use another --out-dir so "
                       "the two are not mixed")
    return manifest


def _write_manifest(out: Path, manifest: dict[str, Any], job: SwitchJob, results: list[FileResult]) -> None:
    shards = dict(manifest.get("shards", {}))
    for result in results:
        stats = result.stats
        shards[Path(result.output).name] = {"source": result.source, "samples": stats.n_samples,
                                            "skipped": stats.n_skipped, "content_words": stats.n_content,
                                            "switched_content_words": stats.n_switched_content,
                                            "switched_by_lang": stats.by_lang}
    record = {"settings": _settings(job), "shards": dict(sorted(shards.items()))}
    _io.atomic_write_text(out / MANIFEST_FILE, json.dumps(record, ensure_ascii=False, indent=1) + "\n")


def read_sidecars(shard: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The `<key>.cs.json` records of an output shard, in order (for checks and analyses)."""
    path = Path(shard)
    try:
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                if member.isfile() and member.name.endswith("." + SIDECAR_SUFFIX):
                    handle = tar.extractfile(member)
                    if handle is not None:
                        yield json.loads(handle.read().decode("utf-8"))
    except _TAR_ERRORS as exc:
        raise DataError(f"{path} is not a readable tar shard: {exc}") from None
