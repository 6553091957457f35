"""Streamlit glue shared by the pages: cached loaders, chart + table + CSV blocks, sticky widgets, URL state.

Everything that does not need streamlit lives in `csr_core.dashboard_state` / `csr_core.viz` (tested there).
Caches: `st.cache_data` keyed on the results store's fingerprint (a new run changes it, so pages see new rows at
once); `st.cache_resource` for immutable heavy objects (datasets, the encoder pool, lexicons).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import streamlit as st

from csr_core import viz
from csr_core.dashboard_state import EncoderPool, Job, Param, decode_params, encode_params
from csr_core.errors import CSRError
from csr_core.results import ResultsStore

# ---- results ---------------------------------------------------------------------------------------------------


def store() -> ResultsStore:
    return ResultsStore()


@st.cache_data(show_spinner=False, max_entries=8)
def _rows(root: str, fingerprint: str) -> tuple[pd.DataFrame, dict[str, str]]:
    damaged: dict[str, str] = {}
    return ResultsStore(root).load(damaged=damaged), damaged


@st.cache_data(show_spinner=False, max_entries=8)
def _runs(root: str, fingerprint: str) -> list[dict]:
    return ResultsStore(root).runs(damaged={})


@st.cache_data(show_spinner=False, max_entries=32)
def _ranks(root: str, fingerprint: str, run_id: str) -> pd.DataFrame:
    return ResultsStore(root).load_ranks(run_id)


@st.cache_data(show_spinner=False, max_entries=4)
def _experiment_report(path: str, mtime_ns: int):
    from csr_core._io import read_json_file
    from csr_core.training.design_report import from_json

    return from_json(read_json_file(path, "experiment report"))


def load_experiment_report(run_set: str = "experiment-2"):
    """The experiment's declared-test facts (written with its README by `experiment --report-only`), or None."""
    path = store().root / run_set / "report.json"
    if not path.is_file():
        return None
    try:
        return _experiment_report(str(path), path.stat().st_mtime_ns)
    except (CSRError, ValueError, KeyError, TypeError) as error:
        st.warning(f"{path} cannot be read ({error}); regenerate it with "
                   "`python -m csr_core experiment --design experiment-2 --report-only`")
        return None


def load_rows() -> pd.DataFrame | None:
    """All rows (ours + references); None after showing the error when the store is corrupt."""
    s = store()
    try:
        rows, damaged = _rows(str(s.root), s.fingerprint())
    except CSRError as error:
        st.error(f"The results folder cannot be read: {error}")
        return None
    for folder, reason in damaged.items():  # the rest still loads; each damaged run is named, never hidden
        st.warning(f"Left out `{folder}`: {reason}")
    return rows


def load_runs() -> list[dict]:
    s = store()
    try:
        return _runs(str(s.root), s.fingerprint())
    except CSRError as error:
        st.error(f"The results folder cannot be read: {error}")
        return []


def load_ranks(run_id: str) -> pd.DataFrame | None:
    """Per-query ranks of one of our runs; None (with a message) for references or unreadable files."""
    if not run_id or run_id.startswith("reference/"):
        return None
    s = store()
    try:
        return _ranks(str(s.root), s.fingerprint(), run_id)
    except CSRError as error:
        st.warning(f"Per-query ranks of {run_id} are not available: {error}")
        return None


def empty_results_message() -> None:
    root = store().root
    st.info(
        f"**No results yet** in `{root}`.\n\n"
        "- Run a small evaluation on the **Run eval** page (it lands here as soon as it finishes), or\n"
        "- from a shell: `python -m csr_core eval --model csr-mini --dataset flickr8k-multi30k`, or\n"
        "- import published reference numbers: `python -m csr_core import <file>`.\n\n"
        "Set `CSR_RESULTS_DIR` to browse another results folder."
    )
    st.page_link("app_pages/run_eval.py", label="Go to Run eval", icon="▶️")


def with_series(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(series=viz.series_labels(rows).to_numpy()) if len(rows) else rows.assign(series=[])


# ---- heavy shared objects ----------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def encoder_pool() -> EncoderPool:
    """One pool per server process; the background worker loads models through it (under its lock)."""
    return EncoderPool(max_size=2)


def _catalogue(progress, cancel) -> dict:
    from dataclasses import asdict

    from csr_core.encoders.registry import available_backends, list_offline_models, offline_reason

    return {"models": list_offline_models(), "backends": [asdict(b) for b in available_backends()],
            "offline": offline_reason() or ""}


@st.cache_resource(show_spinner=False, ttl=600)
def model_catalogue() -> Job:
    """Which models/backends run here, computed once per process on a worker (it imports torch, open_clip and
    transformers, which takes seconds): pages read its snapshot and never wait for it."""
    return Job(_catalogue, label="model catalogue").start()


@st.cache_resource(show_spinner="Loading captions…", max_entries=6)
def dataset(name: str, split: str):
    from csr_core.datasets import load_dataset

    return load_dataset(name, split=split, verify_images="exists")


def try_dataset(name: str, split: str):
    """The dataset, or None with a caption saying why (the error browser then shows ranks without captions)."""
    try:
        return dataset(name, split)
    except CSRError as error:
        st.caption(f"Captions/images of {name}/{split} are not available here ({error}).")
        return None


# ---- charts ------------------------------------------------------------------------------------------------------


def show_chart(chart: viz.Chart, key: str, filename: str, table_height: int | None = None) -> None:
    """The figure, its notes, its numbers as a table, CSV download and PNG/SVG/PDF export: every chart gets all."""
    st.plotly_chart(chart.fig, key=f"{key}_fig", width="stretch")
    for note in chart.notes:
        st.caption(note.replace("*", "\\*"))
    with st.expander("Numbers behind this chart", expanded=False):
        st.dataframe(chart.table, key=f"{key}_table", hide_index=True, height=table_height or "auto")
    c1, c2, c3, c4 = st.columns([1, 1, 1, 3])
    c1.download_button("CSV", chart.csv(), file_name=f"{filename}.csv", mime="text/csv", key=f"{key}_csv")
    fmt = c2.selectbox("Figure format", list(viz.EXPORT_FORMATS), key=f"{key}_fmt", label_visibility="collapsed",
                       help="PNG (2× scale), SVG or PDF for papers; margins grow to keep every label")
    if c3.button("Export", key=f"{key}_png", help="Render this figure with the local Chromium (kaleido)"):
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = viz.export_figure(chart.fig, Path(tmp) / f"{filename}.{fmt}", fmt=fmt)
                st.session_state[f"{key}_export"] = (fmt, path.read_bytes())
        except CSRError as error:
            st.warning(str(error))
    exported = st.session_state.get(f"{key}_export")
    if exported:
        done_fmt, data = exported
        c4.download_button(f"Download {done_fmt.upper()}", data, file_name=f"{filename}.{done_fmt}",
                           mime=viz.EXPORT_FORMATS[done_fmt], key=f"{key}_export_dl")


def notes_of(rows: pd.DataFrame) -> None:
    """Reliability notes carried by the rows (e.g. too few queries), shown once each."""
    if "note" not in rows.columns:
        return
    for note in sorted({n for n in rows["note"].astype(str) if n}):
        st.caption(f"⚠️ {note}")


# ---- widget state that survives page switches, and URL state ----------------------------------------------------


def restore(keys: Sequence[str]) -> None:
    """Widgets lose their state when their page is not shown; keep a copy under `_keep_<key>` and restore it."""
    for key in keys:
        if key not in st.session_state and f"_keep_{key}" in st.session_state:
            st.session_state[key] = st.session_state[f"_keep_{key}"]


def remember(keys: Sequence[str]) -> None:
    for key in keys:
        if key in st.session_state:
            st.session_state[f"_keep_{key}"] = st.session_state[key]


def seed_from_url(schema: Mapping[str, Param], key_of: Mapping[str, str]) -> None:
    """On a session's first visit to a page, widget defaults come from the URL (a shared link reproduces a view)."""
    marker = "_url_seeded_" + "_".join(sorted(key_of.values()))
    if st.session_state.get(marker):
        return
    st.session_state[marker] = True
    present = {name: st.query_params.get_all(name) for name in schema if name in st.query_params}
    if not present:
        return
    values, problems = decode_params(present, schema)
    for problem in problems:
        st.caption(problem)
    for name in present:
        key = key_of[name]
        if key not in st.session_state and f"_keep_{key}" not in st.session_state:
            st.session_state[key] = values[name]


def publish_to_url(schema: Mapping[str, Param], values: Mapping[str, Any]) -> None:
    """Write the page's shareable values to the URL (only when they changed, to avoid needless reruns)."""
    encoded = encode_params(values, schema)
    current = {name: st.query_params.get(name) for name in encoded}
    if current != encoded:
        st.query_params.update(encoded)


def show_run_set_in_heatmaps(run_set: str) -> None:
    """After a scratch run, the Heatmaps page includes its run set (left out by default) next to what it showed."""
    from csr_core.dashboard_state import SCRATCH_RUN_SET, run_sets

    kept = st.session_state.get("_keep_hm_run_sets")
    if kept is None:
        kept = sorted({s for s in run_sets(load_runs()).values() if s != SCRATCH_RUN_SET})
    st.session_state["_keep_hm_run_sets"] = sorted({*kept, run_set})


def valid_choice(key: str, options: Sequence[Any], default: Any = None) -> None:
    """Drop a stale widget value (e.g. a dataset that left the results) before the widget is created."""
    if key in st.session_state:
        value = st.session_state[key]
        if isinstance(value, list):
            kept = [v for v in value if v in options]
            if kept != value:
                st.session_state[key] = kept
        elif value not in options:
            del st.session_state[key]
    if key not in st.session_state and default is not None and (default in options or isinstance(default, list)):
        st.session_state[key] = default


# ---- sidebar -----------------------------------------------------------------------------------------------------


def sidebar_status() -> None:
    s = store()
    st.caption(f"Results: `{s.root}`")
    try:
        fingerprint = s.fingerprint()
        runs = _runs(str(s.root), fingerprint)
        st.caption(f"{len(runs)} run(s) · store {fingerprint[:8]}")
    except CSRError as error:
        st.caption(f"⚠️ results unreadable: {error}")
    if st.button("Reload results", key="sidebar_reload", help="Forget cached tables and read the results again"):
        st.cache_data.clear()
    st.caption(f"TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', '')}")
