"""Run eval: configure an evaluation, run it in a background worker (progress, ETA, cancel), land rows in results/.

The worker thread never calls streamlit: it loads the encoder through the shared pool and reports progress into
a `csr_core.dashboard_state.Job`; a fragment polls that job every second, so the page stays responsive.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from csr_core import viz
from csr_core.dashboard_state import Job, format_duration, pick
from csr_core.errors import CSRError
from csr_core.settings import CODE_SWITCHED_SETTINGS, IMAGE_SETTINGS, SETTING_NAMES
from app_pages._ui import (dataset, encoder_pool, model_catalogue, remember, restore, show_run_set_in_heatmaps,
                       store, valid_choice)

KEYS = ("run_model", "run_model_custom", "run_dataset", "run_split", "run_langs", "run_settings", "run_ks",
        "run_max_images", "run_seed", "run_cs_modes", "run_cs_ps", "run_cs_langs", "run_resamples", "run_arm")
restore(KEYS)

st.title("Run eval")
st.caption("Runs in a background worker: the page stays usable, other pages show the rows as soon as the run is "
           "written. Nothing is written if you cancel.")


@st.cache_data(show_spinner=False)
def _datasets() -> list[dict]:
    from csr_core.datasets import list_datasets

    return [d for d in list_datasets() if d["available"] and ":" not in d["name"]]


@st.cache_data(show_spinner=False)
def _muse_langs() -> list[str]:
    from csr_core.lexicon import available_muse

    return available_muse()


# ---- what can run here -------------------------------------------------------------------------------------------
catalogue = model_catalogue()
snap = catalogue.snapshot()
models: list[str] = []
if snap.status == "done":
    models = list(snap.result["models"])
    with st.expander("What can run here", expanded=not models):
        st.dataframe(pd.DataFrame(snap.result["backends"]), key="run_backends", hide_index=True)
        if snap.result.get("offline"):
            st.caption(f"Offline: {snap.result['offline']}. Only models already on this machine are offered.")
        if st.button("Check again", key="run_recheck"):
            model_catalogue.clear()
            st.rerun()
    if not models:
        st.info("No pretrained model is on this machine yet (no csr-mini heads, no cached open_clip / Hugging Face "
                "weights). Type a model name below, e.g. `open_clip-config:/path/tiny.json` (random weights, for "
                "a quick check) or `hf:/path/to/clip-folder`.")
elif snap.status == "failed":
    st.warning(f"Listing the local models failed: {snap.error}. Type a model name below.")
else:
    st.caption("Checking which models can run here… (type a name below meanwhile)")

# ---- the form ----------------------------------------------------------------------------------------------------
infos = _datasets()
names = [d["name"] for d in infos]
if not names:
    st.error("No dataset is available here: set CSR_DATA_DIR to the folder holding flickr8k/, multi30k/ …")
    st.stop()

m1, m2 = st.columns(2)
if models:
    valid_choice("run_model", models, models[0])
    m1.selectbox("Model (runs here)", models, key="run_model")
custom = m2.text_input("…or a model name", key="run_model_custom",
                       placeholder="open_clip:ViT-B-32/openai, hf:/folder, open_clip-config:/x.json")
model = custom.strip() or st.session_state.get("run_model", "")

d1, d2, d3 = st.columns(3)
valid_choice("run_dataset", names, pick("flickr8k-multi30k", names))
ds_name = d1.selectbox("Dataset", names, key="run_dataset")
splits = next(d["splits"] for d in infos if d["name"] == ds_name)
valid_choice("run_split", splits, pick("test", splits))
split = d2.selectbox("Split", splits, key="run_split")
try:
    data = dataset(ds_name, split)
except CSRError as error:
    st.error(f"{ds_name}/{split} cannot be loaded: {error}")
    st.stop()
st.caption(f"{len(data)} images · languages {', '.join(data.languages)}" + (" · text-only here" if data.text_only
                                                                             else ""))
if split != "test":
    st.warning(f"You are evaluating on the **{split}** split. Models fine-tuned here (csr-mini arms) were trained "
               "on the train photos and chose their best step on val, so their numbers there are not test numbers; "
               "the leakage guard refuses heads trained on the photos you evaluate. Use `test` for anything you "
               "compare with published results.")
valid_choice("run_langs", data.languages, [lang for lang in ("en", "de", "fr", "cs") if lang in data.languages])
langs = st.multiselect("Languages", data.languages, key="run_langs")
allowed = [s for s in SETTING_NAMES if not (data.text_only and s in IMAGE_SETTINGS)]
if data.text_only:
    st.caption(f"{ds_name} has no images here, so only the cross-lingual (text → text) setting can run.")
valid_choice("run_settings", allowed, ["monolingual"] if "monolingual" in allowed else allowed[:1])
settings = st.multiselect("Settings", allowed, key="run_settings")

o1, o2, o3, o4 = st.columns(4)
valid_choice("run_ks", [1, 5, 10, 20, 50], [1, 5, 10])
ks = o1.multiselect("K", [1, 5, 10, 20, 50], key="run_ks")
st.session_state.setdefault("run_max_images", min(100, len(data)))
max_images = int(o2.number_input("Images (0 = all)", 0, len(data), step=10, key="run_max_images"))
st.session_state.setdefault("run_seed", 0)
seed = int(o3.number_input("Seed", 0, 2**31 - 1, key="run_seed"))
st.session_state.setdefault("run_resamples", 1000)
resamples = int(o4.number_input("Bootstrap resamples", 100, 10000, step=100, key="run_resamples"))
arm = st.text_input("Training arm label (blank for zero-shot)", key="run_arm")

cs_modes: list[str] = []
cs_ps: list[float] = []
cs_langs: list[str] = []
code_switched = [s for s in settings if s in CODE_SWITCHED_SETTINGS]
if code_switched:
    with st.expander("Code-switched queries", expanded=True):
        valid_choice("run_cs_modes", ["bl", "ml", "multiword", "dictionary"], ["bl"])
        cs_modes = st.multiselect("Modes", ["bl", "ml", "multiword", "dictionary"], key="run_cs_modes")
        valid_choice("run_cs_ps", [0.0, 0.25, 0.5, 0.75, 1.0], [0.0, 0.5, 1.0])
        cs_ps = st.multiselect("p", [0.0, 0.25, 0.5, 0.75, 1.0], key="run_cs_ps")
        muse = _muse_langs()
        targets = [lang for lang in langs if lang != "en"]
        valid_choice("run_cs_langs", muse, [lang for lang in targets if lang in muse])
        cs_langs = st.multiselect("Switch into (MUSE lexicons found here)", muse, key="run_cs_langs")

job: Job | None = st.session_state.get("run_job")
busy = job is not None and job.snapshot().active
problems = []
if not model:
    problems.append("choose or type a model")
if not langs:
    problems.append("pick at least one language")
if not settings:
    problems.append("pick at least one setting")
if not ks:
    problems.append("pick at least one K")
if code_switched and not (cs_modes and cs_ps and cs_langs):
    problems.append("code-switched queries need modes, p values and target languages")
if problems:
    st.caption("To start: " + "; ".join(problems) + ".")
start = st.button("Start evaluation", key="run_start", type="primary", disabled=busy or bool(problems))

if start and not busy and not problems:
    from csr_core.evaluate import EvalConfig, run_evaluation

    try:
        from csr_core.encoders.registry import check_model_paths, parse_model_name

        check_model_paths(parse_model_name(model))  # refused here, before a job starts (opt-in: CSR_MODEL_DIRS)
        config = EvalConfig(model=model, dataset=ds_name, split=split, langs=langs, settings=settings, ks=sorted(ks),
                            seed=seed, cs_modes=cs_modes or ("bl",), cs_ps=sorted(cs_ps) or (0.0,),
                            cs_langs=cs_langs or None, max_images=max_images or None, train_arm=arm.strip(),
                            n_resamples=resamples, run_set="scratch")  # never mixed into an experiment's evidence
    except CSRError as error:
        st.error(str(error))
    else:
        pool = encoder_pool()
        results = store()

        def work(progress, cancel):
            progress("load model", 0, 1)
            encoder = pool.get(config.model)
            progress("load model", 1, 1)
            return run_evaluation(config, encoder=encoder, store=results, progress=progress, cancel=cancel)

        job = Job(work, label=f"{viz.short_model(model)} on {ds_name}/{split}").start()
        st.session_state["run_job"] = job
        st.session_state.pop("run_job_seen", None)


# ---- progress (polled by a fragment; the worker never touches streamlit) ----------------------------------------
def progress_panel() -> None:
    job: Job | None = st.session_state.get("run_job")
    if job is None:
        st.caption("No evaluation started in this session.")
        return
    snap = job.snapshot()
    st.markdown(f"**{snap.label}** — {snap.status}")
    if snap.active:
        text = f"{snap.stage or 'starting'}: {snap.done}/{snap.total}" if snap.total else (snap.stage or "starting")
        st.progress(snap.fraction, text=text)
        st.caption(f"Elapsed {format_duration(snap.elapsed_s)} · this stage ~{format_duration(snap.stage_eta_s)} "
                   f"left · {len(snap.stages_done)} stage(s) done")
        if snap.cancel_requested:
            st.caption("Cancelling after the current batch…")
        elif st.button("Cancel", key="run_cancel"):
            job.cancel()
            st.caption("Cancelling after the current batch…")
        return
    if st.session_state.get("run_job_seen") is not job:
        st.session_state["run_job_seen"] = job
        st.rerun()  # once: refresh the whole page (Start button, sidebar counts)
    if snap.status == "done":
        outcome = snap.result
        st.success(f"Run `{outcome.run_id}` written: {len(outcome.rows)} rows, {len(outcome.ranks)} per-query ranks, "
                   f"in {format_duration(snap.elapsed_s)}.")
        for note in outcome.notes:
            st.caption(note)
        if snap.error:
            st.caption(snap.error)
        shown = outcome.rows[outcome.rows["metric"] == "recall"][["setting", "query_lang", "doc_lang", "direction",
                                                                   "k", "value", "ci_low", "ci_high", "n_queries"]]
        st.dataframe(shown, key="run_result_rows", hide_index=True)
        if st.session_state.get("_run_shown_in_heatmaps") != outcome.run_id:  # once per run: the user may undo it
            st.session_state["_run_shown_in_heatmaps"] = outcome.run_id
            show_run_set_in_heatmaps("scratch")  # a scratch run: shown there when asked for, never by default
        st.page_link("app_pages/heatmaps.py", label="See it in the heatmaps", icon="🟥")
    elif snap.status == "cancelled":
        st.warning(f"Cancelled after {format_duration(snap.elapsed_s)}: {snap.error}")
    else:
        st.error(f"The evaluation failed: {snap.error}")


active = job is not None and job.snapshot().active
st.subheader("Progress")
st.fragment(progress_panel, run_every=1.0 if active else None)()
remember(KEYS)
