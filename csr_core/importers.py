"""Published numbers → tidy reference rows, so our runs can be plotted beside CLIP_benchmark / open_clip results.

Every imported row has `source = "reference:<origin>"`, percent values (fractions × 100), `split = "test"` and the
language convention of docs/conventions.md (t2i: query_lang = caption language, doc_lang = "img"; i2t: the reverse).
In CLIP_benchmark's naming, *image retrieval* means text → image (t2i) and *text retrieval* image → text (i2t).
"""

from __future__ import annotations

import io
import math
import re
import urllib.request
from pathlib import Path

import pandas as pd

from csr_core import _io
from csr_core.errors import DataError
from csr_core.results import make_rows

OPENCLIP_MULTILINGUAL_URL = (
    "https://raw.githubusercontent.com/mlfoundations/open_clip/main/docs/openclip_multilingual_retrieval_results.csv"
)
OPENCLIP_RETRIEVAL_URL = (
    "https://raw.githubusercontent.com/mlfoundations/open_clip/main/docs/openclip_retrieval_results.csv"
)
SOURCE_CLIP_BENCHMARK = "reference:clip_benchmark"
SOURCE_OPENCLIP = "reference:openclip"

# CLIP_benchmark dataset names → ours come from the registry (DatasetInfo.clip_benchmark); of datasets we do not
# register, COCO is renamed and the rest (flickr30k, xtd200) are kept as written, minus "wds/" and with "/" → "_".
_UNREGISTERED_NAMES = {"mscoco_captions": "mscoco"}
# The largest K an imported metric may name: R@K beyond any gallery these sources use (and int64-safe).
MAX_K = 1_000_000
_TASK_DIRECTIONS = {"image": "t2i", "text": "i2t"}
_METRIC_KEY = re.compile(r"^(image|text)_retrieval_recall@(\d+)$")
_MULTILINGUAL_COLUMN = re.compile(r"^(\S+) (image|text)_retrieval_recall@(\d+) (\S+)$")
_ENGLISH_COLUMN = re.compile(r"^(Flickr|MSCOCO) (image|text) retr\. R@(\d+)$")
_ENGLISH_DATASETS = {"Flickr": "flickr30k", "MSCOCO": "mscoco"}
# Columns of open_clip's English CSV that are not image-text retrieval R@K (other benchmarks, model size).
_ENGLISH_OTHER = re.compile(r"^(params \(M\)|FLOPs \(B\)|Average score|WinoGAViL .*)$")


def _dataset_name(raw: str) -> str:
    name = raw[len("wds/"):] if raw.startswith("wds/") else raw
    from csr_core.datasets import DATASETS

    ours = _UNREGISTERED_NAMES | {info.clip_benchmark: info.name for info in DATASETS.values() if info.clip_benchmark}
    return ours.get(name, name.replace("/", "_"))


def _language(raw: str, where: str) -> str:
    """The project's code for a source's language code (`EN` → `en`, XTD10's `jp` → `ja`); unknown codes refused."""
    from csr_core.languages import normalize_lang

    try:
        return normalize_lang(raw)
    except DataError as error:
        raise DataError(f"{where}: {error}") from None


def _k(raw: str, where: str) -> int:
    """K of a metric name, refused beyond `MAX_K` (a 20-digit K used to overflow the rows' int64 column)."""
    k = int(raw)
    if not 1 <= k <= MAX_K:
        raise DataError(f"{where}: K = {raw} is out of range (1 … {MAX_K:,})")
    return k


def _langs(direction: str, lang: str) -> dict[str, str]:
    return {"query_lang": lang, "doc_lang": "img"} if direction == "t2i" else {"query_lang": "img", "doc_lang": lang}


def _percent(fraction: float) -> float:
    """Fraction → percent, rounded off float noise (0.5728 → 57.28, not 57.28000000000001)."""
    return round(float(fraction) * 100.0, 10)


def _record(source: str, model: str, dataset: str, direction: str, lang: str, k: int, fraction: float,
            note: str = "") -> dict:
    return {
        "source": source, "model": model, "dataset": dataset, "split": "test", "setting": "monolingual",
        "direction": direction, "metric": "recall", "k": k, "value": _percent(fraction), "note": note,
        **_langs(direction, lang),
    }


# ---- CLIP_benchmark ------------------------------------------------------------------------------------------
def import_clip_benchmark_json(path: Path | str) -> pd.DataFrame:
    """One CLIP_benchmark result file (`clip_benchmark eval ... --output X.json`) → reference rows."""
    path = Path(path)
    data = _io.loads_json(_io.read_input_text(path, "CLIP_benchmark result file", max_bytes=64 << 20),
                          f"CLIP_benchmark result file {path}")
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with dataset/model/pretrained/task/metrics/language")
    missing = [key for key in ("dataset", "model", "pretrained", "task", "metrics", "language") if key not in data]
    if missing:
        raise DataError(f"{path}: missing key(s) {missing} — not a CLIP_benchmark result file")
    if data["task"] != "zeroshot_retrieval":
        raise DataError(f"{path}: task is {data['task']!r}; only 'zeroshot_retrieval' results can be imported")
    if not isinstance(data["metrics"], dict):
        raise DataError(f"{path}: 'metrics' must be an object of name → value")
    language = data["language"]
    if isinstance(language, list) and len(language) == 1:
        language = language[0]
    if not isinstance(language, str) or not language:
        raise DataError(f"{path}: 'language' must be one language code, got {data['language']!r}")
    model = f"open_clip:{data['model']}/{data['pretrained']}"
    dataset = _dataset_name(str(data["dataset"]))
    records = []
    for key, value in data["metrics"].items():
        match = _METRIC_KEY.match(key)
        if not match:
            continue  # other metrics CLIP_benchmark may add (e.g. for other tasks) are not R@K
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
                or not 0 <= value <= 1:
            raise DataError(f"{path}: metrics[{key!r}] = {value!r} is not a fraction in [0, 1]")
        direction = _TASK_DIRECTIONS[match.group(1)]
        records.append(_record(SOURCE_CLIP_BENCHMARK, model, dataset, direction,
                               _language(language, f"{path}: 'language'"),
                               _k(match.group(2), f"{path}: metrics[{key!r}]"), value))
    if not records:
        raise DataError(f"{path}: no image_retrieval_recall@K / text_retrieval_recall@K in 'metrics' "
                        f"(found {sorted(data['metrics'])})")
    return make_rows(records)


# ---- open_clip's published CSVs ------------------------------------------------------------------------------
def _read_csv(path: Path) -> pd.DataFrame:
    text = _io.read_input_text(path, "open_clip CSV", max_bytes=256 << 20)
    try:
        return pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"{path}: not a readable CSV ({error})") from error


def _require_columns(path: Path, frame: pd.DataFrame, needed: tuple[str, ...], layout: str) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing} — not open_clip's {layout} CSV")


def _cell(path: Path, frame: pd.DataFrame, row: int, column: str) -> float | None:
    """A metric cell as a fraction; None for an empty cell (model not evaluated); error for anything else."""
    value = frame.at[row, column]
    if pd.isna(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or not 0 <= number <= 1:
        raise DataError(f"{path}: line {row + 2}, column {column!r}: {value!r} is not a fraction in [0, 1]")
    return number


def import_openclip_multilingual_csv(path: Path | str) -> pd.DataFrame:
    """open_clip's `openclip_multilingual_retrieval_results.csv` (XTD10 + Crossmodal-3600 per language) → rows.

    Columns `"<dataset> <image|text>_retrieval_recall@K <lang>"`; the `avg` columns are averages of the others
    and are skipped (recompute them from the rows if needed).
    """
    path = Path(path)
    frame = _read_csv(path)
    _require_columns(path, frame, ("model", "version"), "multilingual retrieval")
    metric_columns: list[tuple[str, str, str, int, str]] = []
    unknown = []
    for column in frame.columns:
        if column in ("model", "version", "avg"):
            continue
        match = _MULTILINGUAL_COLUMN.match(column)
        if not match:
            unknown.append(column)
            continue
        raw_dataset, task, k, lang = match.groups()
        if lang == "avg":
            continue
        where = f"{path}: column {column!r}"
        metric_columns.append((column, _dataset_name(raw_dataset), _TASK_DIRECTIONS[task], _k(k, where),
                               _language(lang, where)))
    if unknown:
        raise DataError(f"{path}: unknown column layout {unknown[:5]}; expected "
                        "'<dataset> <image|text>_retrieval_recall@K <lang>'")
    if not metric_columns:
        raise DataError(f"{path}: no '<dataset> image_retrieval_recall@K <lang>' columns")
    records = []
    for row in range(len(frame)):
        model = f"open_clip:{frame.at[row, 'model']}/{frame.at[row, 'version']}"
        for column, dataset, direction, k, lang in metric_columns:
            value = _cell(path, frame, row, column)
            if value is not None:
                records.append(_record(SOURCE_OPENCLIP, model, dataset, direction, lang, k, value))
    return make_rows(records)


def import_openclip_retrieval_csv(path: Path | str) -> pd.DataFrame:
    """open_clip's English `openclip_retrieval_results.csv` (Flickr30k, MSCOCO R@1/5/10) → rows."""
    path = Path(path)
    frame = _read_csv(path)
    _require_columns(path, frame, ("name", "pretrained"), "retrieval")
    metric_columns: list[tuple[str, str, str, int]] = []
    unknown = []
    for column in frame.columns:
        if column in ("name", "pretrained") or _ENGLISH_OTHER.match(column):
            continue
        match = _ENGLISH_COLUMN.match(column)
        if not match:
            unknown.append(column)
            continue
        raw_dataset, task, k = match.groups()
        metric_columns.append((column, _ENGLISH_DATASETS[raw_dataset], _TASK_DIRECTIONS[task],
                               _k(k, f"{path}: column {column!r}")))
    if unknown:
        raise DataError(f"{path}: unknown column layout {unknown[:5]}; expected e.g. 'Flickr image retr. R@1'")
    if not metric_columns:
        raise DataError(f"{path}: no '<Flickr|MSCOCO> <image|text> retr. R@K' columns")
    records = []
    for row in range(len(frame)):
        model = f"open_clip:{frame.at[row, 'name']}/{frame.at[row, 'pretrained']}"
        for column, dataset, direction, k in metric_columns:
            value = _cell(path, frame, row, column)
            if value is not None:
                records.append(_record(SOURCE_OPENCLIP, model, dataset, direction, "en", k, value))
    return make_rows(records)


def import_openclip_csv(path: Path | str) -> pd.DataFrame:
    """Either open_clip CSV, told apart by its header (model/version: multilingual; name/pretrained: English)."""
    path = Path(path)
    text = _io.read_input_text(path, "open_clip CSV", max_bytes=256 << 20)
    header = text.partition("\n")[0].rstrip("\r").split(",")
    if header[:2] == ["model", "version"]:
        return import_openclip_multilingual_csv(path)
    if header[:2] == ["name", "pretrained"]:
        return import_openclip_retrieval_csv(path)
    raise DataError(f"{path}: line 1: header starts {header[:3]}; expected open_clip's 'model,version,...' "
                    "(multilingual) or 'name,pretrained,...' (English retrieval) CSV")


def fetch_openclip_reference(dest: Path | str, url: str = OPENCLIP_MULTILINGUAL_URL, timeout: float = 60) -> Path:
    """Download open_clip's published CSV (the user's explicit request only; tests never call this)."""
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / url.rsplit("/", 1)[-1]
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(temp, "wb") as handle:
            handle.write(response.read())
        temp.replace(dest)
    except OSError as error:
        temp.unlink(missing_ok=True)
        raise DataError(f"could not download {url} to {dest} ({error}); download it by hand and pass its path") \
            from error
    return dest
