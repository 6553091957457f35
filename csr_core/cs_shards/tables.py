"""Caption tables (CSV/TSV as open_clip_train's CsvDataset reads them, parquet as img2dataset writes them)."""

from __future__ import annotations

import contextlib
import csv
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csr_core import _io
from csr_core.cs_shards._constants import SIDECAR_COLUMN, TABLE_SUFFIXES
from csr_core.cs_shards.jobs import FileResult, SwitchJob, SwitchStats, _Counter, _dumps, sidecar
from csr_core.cs_shards.pool import _Pool, _switch_captions_task
from csr_core.cs_shards.tar import _check_distinct
from csr_core.errors import CSRError, DataError

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
