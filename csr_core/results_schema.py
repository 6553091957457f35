"""The tidy results schema: row and rank columns, their validation and normalisation (docs/conventions.md).

One home for what a results row *is*; `csr_core.results` stores and reads them. Every reader and writer goes through
`make_rows` / `normalise_rows` / `normalise_ranks`, so a wrong value is an error naming its column and row.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from csr_core.errors import ResultsError
from csr_core.settings import SETTING_NAMES

ROW_COLUMNS: tuple[str, ...] = (
    "run_id", "source", "model", "dataset", "split", "setting", "query_lang", "doc_lang", "direction",
    "metric", "k", "cs_mode", "cs_p", "cs_langs", "train_arm", "seed", "value", "n_queries", "ci_low", "ci_high",
    "note",
)
RANK_COLUMNS: tuple[str, ...] = (
    "setting", "query_lang", "doc_lang", "direction", "cs_mode", "cs_p", "cs_langs", "query_id", "rank",
    "image_id", "caption_lang", "caption_index",
)
# What a query was, as columns (never re-split from query_id by readers): the photo it belongs to, the language of
# its caption side, and the caption's index among that photo's captions in that language (-1: the query is the image).
QUERY_COLUMNS: tuple[str, ...] = ("image_id", "caption_lang", "caption_index")
# The identity of a row inside one run: two rows with the same key mean a bug in whoever produced them.
KEY_COLUMNS: tuple[str, ...] = tuple(
    c for c in ROW_COLUMNS if c not in ("value", "n_queries", "ci_low", "ci_high", "note")
)

DIRECTIONS: tuple[str, ...] = ("t2i", "i2t", "t2t")
METRICS: tuple[str, ...] = ("recall", "median_rank", "mean_rank", "mean_recall", "lang_share")
PERCENT_METRICS: frozenset[str] = frozenset({"recall", "mean_recall", "lang_share"})
OURS = "ours"
REFERENCE_PREFIX = "reference:"

STRING_COLUMNS = (
    "run_id", "source", "model", "dataset", "split", "setting", "query_lang", "doc_lang", "direction", "metric",
    "cs_mode", "cs_langs", "train_arm", "note",
)
_REQUIRED = ("model", "dataset", "setting", "direction", "metric", "value")
_RANK_STRING_COLUMNS = ("setting", "query_lang", "doc_lang", "direction", "cs_mode", "cs_langs", "query_id", "image_id",
                        "caption_lang")

# ---- rows ------------------------------------------------------------------------------------------------------
def make_rows(records: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """Records (dicts) → validated tidy rows in `ROW_COLUMNS` order; missing optional fields get their defaults."""
    if isinstance(records, pd.DataFrame):
        frame = records.copy()
    else:
        records = list(records)
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                raise ResultsError(f"row {index}: expected a dict, got {type(record).__name__}")
        frame = pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=list(ROW_COLUMNS))
    return normalise_rows(frame, where="rows", fill_defaults=True)


def empty_rows() -> pd.DataFrame:
    """An empty frame with the row columns and dtypes, so pages can filter it without special cases."""
    return normalise_rows(pd.DataFrame(columns=list(ROW_COLUMNS)), where="rows", fill_defaults=True)


def caption_lang(df: pd.DataFrame) -> pd.Series:
    """The caption-side language of each row: `doc_lang` when the query is an image, else `query_lang`."""
    return pd.Series(np.where(df["query_lang"] == "img", df["doc_lang"], df["query_lang"]), index=df.index,
                     name="caption_lang")


def _first_bad(where: str, mask, values, message: str) -> None:
    """Raise naming the first offending row and its value, if the mask marks any row."""
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        position = int(np.flatnonzero(mask)[0])
        value = values.iloc[position] if isinstance(values, pd.Series) else values[position]
        value = value.item() if isinstance(value, np.generic) else value
        raise ResultsError(f"{where}: row {position}: {message.format(value=repr(value))}")


def _missing(values: pd.Series) -> np.ndarray:
    """None, pd.NA, NaN (and NaT) per value, vectorised: rank tables hold millions of values."""
    return np.asarray(pd.isna(values), dtype=bool)


def _is_int(v) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return False
    return isinstance(v, (int, np.integer)) or (isinstance(v, (float, np.floating)) and float(v).is_integer())


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _column(frame: pd.DataFrame, column: str) -> pd.Series:
    if column in frame.columns:
        return frame[column].astype(object)
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _int_column(frame: pd.DataFrame, column: str, where: str, default: int | None) -> pd.Series:
    """Integers (no bools, no fractions); missing → `default`, or pd.NA (nullable Int64) when default is None."""
    raw = frame[column] if column in frame.columns else None
    if raw is not None and pd.api.types.is_integer_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        if default is None:
            return raw.astype("Int64")
        return raw.astype("Int64").fillna(default).astype("int64")  # fast path: stored files, numpy arrays
    values = _column(frame, column)
    missing = _missing(values)
    ok = missing | np.fromiter((_is_int(v) for v in values), dtype=bool, count=len(values))
    _first_bad(where, ~ok, values, f"{column} must be an integer, got {{value}}")
    if default is not None:
        return pd.Series([default if m else int(v) for v, m in zip(values, missing)], index=frame.index,
                         dtype="int64")
    return pd.Series(pd.array([pd.NA if m else int(v) for v, m in zip(values, missing)], dtype="Int64"),
                     index=frame.index)


def _float_column(frame: pd.DataFrame, column: str, where: str) -> pd.Series:
    raw = frame[column] if column in frame.columns else None
    if raw is not None and pd.api.types.is_float_dtype(raw.dtype):
        return raw.astype("float64")  # fast path: stored files, numpy arrays
    values = _column(frame, column)
    missing = _missing(values)
    ok = missing | np.fromiter((_is_number(v) for v in values), dtype=bool, count=len(values))
    _first_bad(where, ~ok, values, f"{column} must be a number, got {{value}}")
    return pd.Series([math.nan if m else float(v) for v, m in zip(values, missing)], index=frame.index,
                     dtype="float64")


def normalise_rows(frame: pd.DataFrame, where: str, fill_defaults: bool) -> pd.DataFrame:
    """Check columns, types and values; return a frame with `ROW_COLUMNS` in order and stable dtypes.

    `fill_defaults` (records being built) fills absent optional columns; loading a stored file does not, so a
    foreign parquet missing columns is reported instead of being padded.
    """
    unknown = [c for c in frame.columns if c not in ROW_COLUMNS]
    if unknown:
        raise ResultsError(f"{where}: unknown column(s) {unknown}; expected a subset of {list(ROW_COLUMNS)}")
    required = _REQUIRED if fill_defaults else ROW_COLUMNS
    missing_cols = [c for c in required if c not in frame.columns]
    if missing_cols:
        raise ResultsError(f"{where}: missing column(s) {missing_cols}")
    frame = frame.reset_index(drop=True)
    columns: dict[str, pd.Series] = {}
    for column in STRING_COLUMNS:
        default = OURS if column == "source" else ""
        raw = frame[column] if column in frame.columns else None
        if raw is not None and pd.api.types.is_string_dtype(raw.dtype) and not raw.isna().any():
            if raw.dtype != object or all(isinstance(v, str) for v in raw):
                columns[column] = raw.astype(str)
                continue
        values = _column(frame, column)
        values = values.where(~_missing(values), default)
        ok = np.fromiter((isinstance(v, str) for v in values), dtype=bool, count=len(values))
        _first_bad(where, ~ok, values, f"{column} must be a string, got {{value}}")
        columns[column] = values.astype(str)
    for column in ("model", "dataset"):
        _first_bad(where, columns[column] == "", columns[column], f"{column} is empty")
    for column, allowed in (("setting", SETTING_NAMES), ("direction", DIRECTIONS), ("metric", METRICS)):
        _first_bad(where, ~columns[column].isin(allowed), columns[column],
                   f"unknown {column} {{value}} (expected one of {', '.join(allowed)})")
    source = columns["source"]
    is_reference = source.str.startswith(REFERENCE_PREFIX) & (source.str.len() > len(REFERENCE_PREFIX))
    _first_bad(where, ~((source == OURS) | is_reference), source,
               "unknown source {value} (expected 'ours' or 'reference:<name>')")

    k = _int_column(frame, "k", where, default=0)
    seed = _int_column(frame, "seed", where, default=0)
    n_queries = _int_column(frame, "n_queries", where, default=None)
    cs_p, value, ci_low, ci_high = (_float_column(frame, c, where) for c in ("cs_p", "value", "ci_low", "ci_high"))
    metric = columns["metric"]
    _first_bad(where, ~np.isfinite(value), value, "value must be a finite number, got {value}")
    _first_bad(where, (metric == "recall") & (k < 1), k, "recall needs k >= 1, got k={value}")
    _first_bad(where, (metric == "lang_share") & (k < 1), k, "lang_share needs k >= 1, got k={value}")
    _first_bad(where, metric.isin(("median_rank", "mean_rank", "mean_recall")) & (k != 0), k,
               "k must be 0 for median_rank / mean_rank / mean_recall, got k={value}")
    _first_bad(where, metric.isin(PERCENT_METRICS) & ((value < 0) | (value > 100)), value,
               "recall-type values are percent in [0, 100], got {value}")
    _first_bad(where, metric.isin(("median_rank", "mean_rank")) & (value < 1), value, "ranks are >= 1, got {value}")
    _first_bad(where, (cs_p < 0) | (cs_p > 1), cs_p, "cs_p must be in [0, 1] (NaN when nothing is switched), "
               "got {value}")
    _first_bad(where, n_queries.fillna(0).to_numpy() < 0, n_queries, "n_queries must be >= 0, got {value}")
    _first_bad(where, ci_low > ci_high, ci_low, "ci_low {value} is above ci_high")
    columns.update(k=k, seed=seed, n_queries=n_queries, cs_p=cs_p, value=value, ci_low=ci_low, ci_high=ci_high)
    return pd.DataFrame({c: columns[c] for c in ROW_COLUMNS}, index=frame.index)


def check_unique_rows(rows: pd.DataFrame, where: str) -> None:
    duplicated = rows.duplicated(subset=list(KEY_COLUMNS), keep=False)
    if duplicated.any():
        first = rows[duplicated].iloc[0]
        key = {c: first[c] for c in KEY_COLUMNS if c != "run_id" and first[c] not in ("", 0)}
        raise ResultsError(f"{where}: {int(duplicated.sum())} rows share one key, e.g. {key}; each "
                           "(model, dataset, split, setting, langs, direction, metric, k, cs_*, train_arm, seed) "
                           "must appear once per run")


def parse_query_id(query_id: str, direction: str, query_lang: str, doc_lang: str) -> tuple[str, str, int]:
    """(image_id, caption_lang, caption_index) of one query id: the one place that reads the id grammar.

    Ids are `<image>#<j>` for a caption query (the j-th caption of that photo in the caption-side language),
    `<lang>:<image>#<j>` in a pooled multilingual query set, and `<image>` for an image query (index -1; its
    caption side is the gallery language).
    """
    qid = str(query_id)
    caption_lang = doc_lang if direction == "i2t" else query_lang
    if "#" not in qid:
        return qid, caption_lang, -1
    head, _, j = qid.rpartition("#")
    if direction == "t2i" and query_lang == "all" and ":" in head:
        caption_lang, head = head.split(":", 1)
    return head, caption_lang, int(j) if j.isdigit() else -1


def with_query_columns(ranks: pd.DataFrame) -> pd.DataFrame:
    """Add `QUERY_COLUMNS` parsed from query_id (writers, and the reader of runs stored before the columns existed)."""
    columns = (ranks[c].tolist() for c in ("query_id", "direction", "query_lang", "doc_lang"))  # arrow: iterate lists
    parsed = [parse_query_id(q, d, ql, dl) for q, d, ql, dl in zip(*columns)]
    out = ranks.copy()
    out["image_id"] = [p[0] for p in parsed]
    out["caption_lang"] = [p[1] for p in parsed]
    out["caption_index"] = np.asarray([p[2] for p in parsed], dtype=np.int64)
    return out


def normalise_ranks(ranks: pd.DataFrame | None, where: str) -> pd.DataFrame:
    """Per-query ranks in `RANK_COLUMNS` order; None or a column-less empty frame means "no ranks"."""
    if ranks is None or (len(ranks) == 0 and len(ranks.columns) == 0):
        ranks = pd.DataFrame({c: pd.Series(dtype=object) for c in RANK_COLUMNS})
    if not set(QUERY_COLUMNS) & set(ranks.columns) and {"query_id", "direction"} <= set(ranks.columns):
        ranks = with_query_columns(ranks)  # written before the structured columns existed (schema 1 runs)
    missing = [c for c in RANK_COLUMNS if c not in ranks.columns]
    unknown = [c for c in ranks.columns if c not in RANK_COLUMNS]
    if missing or unknown:
        raise ResultsError(f"{where}: ranks columns must be {list(RANK_COLUMNS)}; missing {missing}, unknown {unknown}")
    ranks = ranks.reset_index(drop=True)
    out = {}
    for column in _RANK_STRING_COLUMNS:
        values = ranks[column].astype(object)
        values = values.where(~_missing(values), "")
        if pd.api.types.infer_dtype(values, skipna=False) != "string":  # all str already: no per-value map
            values = values.map(str)
        out[column] = values.astype(str)
    out["cs_p"] = pd.to_numeric(ranks["cs_p"], errors="coerce").astype("float64")
    rank = ranks["rank"]
    if len(rank) and (not pd.api.types.is_integer_dtype(rank) or bool((rank < 1).any())):
        raise ResultsError(f"{where}: rank must be integers >= 1 (1-based rank of the first correct item)")
    out["rank"] = rank.astype("int64")
    out["caption_index"] = pd.to_numeric(ranks["caption_index"], errors="raise").astype("int64")
    return pd.DataFrame(out)[list(RANK_COLUMNS)]
