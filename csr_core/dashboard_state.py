"""Streamlit-free helpers behind the dashboard pages (so they are unit-testable and never touch `st.*`).

- `Job`: a callable run on a daemon thread; progress, ETA, cancel and outcome live in plain locked fields that a
  polling fragment reads. The worker never calls streamlit.
- `EncoderPool`: loaded encoders shared by a server process (the page wraps one pool in `st.cache_resource`);
  loading happens under a lock, on the worker thread, never during a rerun.
- `Param` / `decode_params` / `encode_params`: the shareable part of a page's state in its URL query string.
- `save_upload`: uploads land in a per-session temp folder with name, type and size checks; they are read as
  bytes/text only (never executed, imported or unpickled).
- `query_table`: the per-query error browser (the close-vs-distant statistic lives in `csr_core.analysis`).
"""

from __future__ import annotations

import math
import re
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from csr_core.errors import CancelledError
from csr_core.settings import get_setting

# ---- background jobs ---------------------------------------------------------------------------------------------
ProgressFn = Callable[[str, int, int], None]
JobTarget = Callable[[ProgressFn, threading.Event], Any]
RUNNING, DONE, FAILED, CANCELLED, PENDING = "running", "done", "failed", "cancelled", "pending"


@dataclass(frozen=True)
class JobSnapshot:
    """A consistent copy of a job's state, safe to render from the script thread."""

    label: str
    status: str
    stage: str
    done: int
    total: int
    elapsed_s: float
    stage_eta_s: float | None
    stages_done: tuple[str, ...]
    result: Any = None
    error: str = ""
    cancel_requested: bool = False

    @property
    def active(self) -> bool:
        return self.status in (PENDING, RUNNING)

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0


class Job:
    """Runs `target(progress, cancel_event)` on a daemon thread. `progress(stage, done, total)` may be called
    from the target; it raises CancelledError once `cancel()` was asked, so long work stops between batches."""

    def __init__(self, target: JobTarget, label: str = "job", clock: Callable[[], float] = time.monotonic):
        self.label = label
        self.cancel_event = threading.Event()
        self._target = target
        self._clock = clock
        self._lock = threading.Lock()
        self._status = PENDING
        self._stage = ""
        self._done = 0
        self._total = 0
        self._started: float | None = None
        self._finished: float | None = None
        self._stage_started: float | None = None
        self._stage_first: tuple[float, int] | None = None
        self._stages_done: list[str] = []
        self._result: Any = None
        self._error = ""
        self.traceback = ""
        self._thread: threading.Thread | None = None

    def start(self) -> "Job":
        with self._lock:
            if self._thread is not None:
                raise RuntimeError(f"job {self.label!r} was already started")
            self._started = self._clock()
            self._status = RUNNING
            self._thread = threading.Thread(target=self._run, name=f"csr-job-{self.label}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            result = self._target(self.progress, self.cancel_event)
        except CancelledError as error:
            self._finish(CANCELLED, error=str(error))
        except BaseException as error:  # the page must show any failure, not a dead thread
            self.traceback = traceback.format_exc()
            self._finish(FAILED, error=f"{type(error).__name__}: {error}")
        else:
            if self.cancel_event.is_set():
                # finished anyway (the cancel came after the last check): keep the result, say so
                self._finish(DONE, result=result, error="cancel came too late: the job had already finished")
            else:
                self._finish(DONE, result=result)

    def _finish(self, status: str, result: Any = None, error: str = "") -> None:
        with self._lock:
            self._status, self._result, self._error = status, result, error
            self._finished = self._clock()
            if self._stage and (not self._stages_done or self._stages_done[-1] != self._stage):
                if status == DONE:
                    self._stages_done.append(self._stage)

    def progress(self, stage: str, done: int, total: int) -> None:
        """Record progress; a new stage label starts a new ETA clock. Raises CancelledError after cancel()."""
        if self.cancel_event.is_set():
            raise CancelledError(f"{self.label}: cancelled")
        now = self._clock()
        with self._lock:
            if stage != self._stage:
                if self._stage:
                    self._stages_done.append(self._stage)
                self._stage, self._stage_started, self._stage_first = stage, now, None
            if self._stage_first is None:
                self._stage_first = (now, int(done))
            self._done, self._total = int(done), int(total)

    def cancel(self) -> None:
        self.cancel_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (tests, CLI); True when it ended."""
        if self._thread is None:
            return False
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            now = self._finished if self._finished is not None else self._clock()
            elapsed = 0.0 if self._started is None else max(0.0, now - self._started)
            eta = None
            if self._status == RUNNING and self._stage_first is not None and self._total > 0:
                t0, d0 = self._stage_first
                rate_done = self._done - d0
                spent = now - t0
                if rate_done > 0 and spent > 0:
                    eta = spent / rate_done * max(0, self._total - self._done)
            return JobSnapshot(self.label, self._status, self._stage, self._done, self._total, elapsed, eta,
                               tuple(self._stages_done), self._result, self._error, self.cancel_event.is_set())


def format_duration(seconds: float | None) -> str:
    """'—' for unknown, '42 s', '3 min 05 s', '1 h 02 min'."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


# ---- encoders ----------------------------------------------------------------------------------------------------
class EncoderPool:
    """At most `max_size` loaded encoders, least recently used evicted; loads are serialised by one lock so two
    sessions asking for the same model load it once."""

    def __init__(self, loader: Callable[[str], Any] | None = None, max_size: int = 2):
        self._loader = loader
        self._max = max(1, int(max_size))
        self._lock = threading.Lock()
        self._items: OrderedDict[str, Any] = OrderedDict()

    def get(self, name: str) -> Any:
        with self._lock:
            if name in self._items:
                self._items.move_to_end(name)
                return self._items[name]
            loader = self._loader
            if loader is None:
                from csr_core.encoders.registry import load_encoder

                loader = load_encoder
            encoder = loader(name)
            self._items[name] = encoder
            while len(self._items) > self._max:
                self._items.popitem(last=False)
            return encoder

    def names(self) -> list[str]:
        with self._lock:
            return list(self._items)


# ---- query parameters --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """One shareable setting: kind is str | int | float | bool | list (comma-separated strings)."""

    kind: str
    default: Any
    choices: tuple[Any, ...] | None = None
    lo: float | None = None
    hi: float | None = None


def _parse(raw: str, spec: Param) -> Any:
    if spec.kind == "str":
        value: Any = raw
    elif spec.kind == "int":
        value = int(raw)
    elif spec.kind == "float":
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError("not finite")
    elif spec.kind == "bool":
        low = raw.strip().lower()
        if low not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError("not a boolean")
        value = low in ("1", "true", "yes")
    elif spec.kind == "list":
        value = [part for part in (p.strip() for p in raw.split(",")) if part]
    else:
        raise ValueError(f"unknown kind {spec.kind}")
    if spec.kind in ("int", "float"):
        if spec.lo is not None and value < spec.lo or spec.hi is not None and value > spec.hi:
            raise ValueError(f"outside [{spec.lo}, {spec.hi}]")
    if spec.choices is not None:
        items = value if spec.kind == "list" else [value]
        if any(item not in spec.choices for item in items):
            raise ValueError(f"not one of {list(spec.choices)}")
    return value


def decode_params(raw: Mapping[str, Any], schema: Mapping[str, Param]) -> tuple[dict[str, Any], list[str]]:
    """Values for every schema key (defaults where absent or invalid) and a list of what was ignored and why."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, spec in schema.items():
        if name not in raw:
            values[name] = spec.default
            continue
        text = raw[name]
        if isinstance(text, (list, tuple)):
            text = text[-1] if text else ""
        try:
            values[name] = _parse(str(text), spec)
        except (ValueError, TypeError) as error:
            problems.append(f"URL parameter {name}={text!r} ignored ({error})")
            values[name] = spec.default
    return values, problems


def encode_params(values: Mapping[str, Any], schema: Mapping[str, Param]) -> dict[str, str]:
    """Strings for the URL; keys outside the schema are left out, floats use the shortest exact form."""
    out: dict[str, str] = {}
    for name, spec in schema.items():
        if name not in values or values[name] is None:
            continue
        value = values[name]
        if spec.kind == "list":
            out[name] = ",".join(str(v) for v in value)
        elif spec.kind == "bool":
            out[name] = "1" if value else "0"
        elif spec.kind == "float":
            out[name] = repr(float(value))
        else:
            out[name] = str(value)
    return out


def pick(value: Any, options: Sequence[Any], default: Any = None) -> Any:
    """`value` when it is one of `options`, else `default` (else the first option, else None)."""
    if value in options:
        return value
    if default in options:
        return default
    return options[0] if len(options) else None


# ---- per-query error browser -------------------------------------------------------------------------------------
def query_table(ranks: pd.DataFrame, dataset: Any | None, *, setting: str, direction: str, lang: str,
                doc_lang: str | None = None, k: int = 10, cs_mode: str = "", cs_langs: str = "",
                cs_p: float | None = None) -> pd.DataFrame:
    """Per-query ranks of one heatmap cell joined with what the query was: caption text and image file.

    Columns: query_id, rank, hit (rank <= k), caption, image (path or ""), sorted worst first. `lang` is the
    caption-side language (doc_lang for i2t); `dataset` (an ImageTextSet of the run's split) may be None when the
    data is not available here, leaving caption/image empty.
    """
    spec = get_setting(setting)
    mask = spec.cell_mask(ranks, direction=direction, lang=lang, doc_lang=doc_lang, cs_mode=cs_mode,
                          cs_langs=cs_langs, cs_p=cs_p)
    cell = ranks.loc[mask]
    part = cell[["query_id", "rank"]].copy()
    part["rank"] = part["rank"].astype(int)
    part["hit"] = part["rank"] <= int(k)
    captions: list[str] = []
    images: list[str] = []
    index = {image_id: row for row, image_id in enumerate(dataset.image_ids)} if dataset is not None else {}
    pooled = spec.pooled_queries and direction == "t2i"  # each query of a pooled set has its own language
    for image_id, own_lang, j in zip(cell["image_id"], cell["caption_lang"], cell["caption_index"]):
        caption, image = "", ""
        caption_lang = own_lang if pooled else spec.caption_lang(lang)
        row = index.get(image_id)
        if row is not None and dataset is not None:
            per_image = dataset.captions.get(caption_lang, [[]] * len(dataset.image_ids))[row]
            if 0 <= j < len(per_image):
                caption = per_image[int(j)]
            elif j < 0 and per_image:
                caption = per_image[0]  # image query: show its first caption in that language
            if dataset.image_paths is not None:
                image = str(dataset.image_paths[row])
        captions.append(caption)
        images.append(image)
    part["caption"] = captions
    part["image"] = images
    return part.sort_values(["rank", "query_id"], ascending=[False, True]).reset_index(drop=True)




# ---- seed pooling ------------------------------------------------------------------------------------------------
_SEED = re.compile(r"/s(\d+)(?=\+top\d+$|$)")
_NOT_KEYS = ("run_id", "seed", "value", "n_queries", "ci_low", "ci_high", "note", "model", "series")


def pool_seeds(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of trained models that differ only in their seed → one row per arm: the mean over the seeds, their sd
    (`value_sd`) and count (`n_seeds`), and a note naming them, so a page shows arms, not runs.

    csr-mini names carry the seed (`csr-mini:en/s3+top2`); a pooled row is named `csr-mini:en/s*+top2`, has seed -1
    and the first seed's run_id (a drill-down opens that seed's queries). Its `ci_low`/`ci_high` stay empty: the
    spread of seeds is not a CI; the report's two-level (seed × photo) bootstrap is the inference, and per-seed CIs
    remain in the unpooled view. Rows of a model with one seed pass through unchanged; rows differing in any other
    column (a page's `run_set`, K, language...) never pool, so a scratch run never joins a published arm.
    """
    if rows.empty:
        return rows.assign(value_sd=pd.Series(dtype=float), n_seeds=pd.Series(dtype=int))
    model = rows["model"].astype(str)
    frame = rows.assign(_arm_model=model.str.replace(_SEED, "/s*", regex=True),
                        _seed=model.str.extract(_SEED, expand=False))
    keys = [c for c in rows.columns if c not in _NOT_KEYS] + ["_arm_model"]
    n_seeds = frame.groupby(keys, dropna=False, sort=False)["_seed"].transform("nunique")
    single = (n_seeds <= 1).to_numpy()
    kept = rows[single].assign(value_sd=float("nan"), n_seeds=1)
    multi = frame[~single]
    if multi.empty:
        return kept
    pooled = multi.groupby(keys, dropna=False, sort=False).agg(
        value=("value", "mean"), value_sd=("value", "std"), n_seeds=("_seed", "nunique"),
        n_queries=("n_queries", "first"), run_id=("run_id", "min"),
        seeds=("_seed", lambda s: ",".join(sorted(set(s), key=int))),
        notes=("note", lambda s: "; ".join(sorted({str(x) for x in s if x})))).reset_index()
    pooled["note"] = [f"mean of {n} seeds ({seeds}), sd {sd:.1f}" + (f"; {notes}" if notes else "")
                      for n, seeds, sd, notes in zip(pooled["n_seeds"], pooled["seeds"], pooled["value_sd"],
                                                     pooled["notes"])]
    pooled = pooled.assign(model=pooled["_arm_model"], seed=-1, ci_low=float("nan"), ci_high=float("nan"))
    columns = [*rows.columns, "value_sd", "n_seeds"]
    return pd.concat([kept[columns], pooled[[c for c in columns if c in pooled.columns]]], ignore_index=True)


SCRATCH_RUN_SET = "scratch"
UNLABELLED_RUN_SET = "(no run set)"


def run_sets(manifests: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """run_id → the run set its params name (the experiment's, `scratch` for the Run/Fine-tuning pages' quick runs);
    runs from before run sets existed are `UNLABELLED_RUN_SET`. Pages filter by it so scratch runs never mix into
    published evidence unless chosen."""
    return {str(m["run_id"]): str((m.get("params") or {}).get("run_set") or UNLABELLED_RUN_SET) for m in manifests}
