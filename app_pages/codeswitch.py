"""Code-switch explorer: one caption (picked from a split or typed) switched live, plus the whole split in bulk."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from csr_core.dashboard_state import Param, pick
from csr_core.uploads import new_session_dir, save_upload
from csr_core.errors import CSRError
from app_pages._ui import dataset, publish_to_url, remember, restore, seed_from_url, valid_choice

if TYPE_CHECKING:
    from csr_core.codeswitch import LanguageStats

MODES = {"bl": "BL-CS (one language)", "ml": "ML-CS (random language per word)",
         "multiword": "Multiword (phrases, longest match)", "dictionary": "Dictionary (translate-test, p = 1)"}
SOURCES = ("MUSE (local)", "Upload a file", "Download MUSE")
PAGE_SIZE = 20
BULK_LIMIT = 5000
KEYS = ("cs_dataset", "cs_split", "cs_input", "cs_filter", "cs_page", "cs_pick", "cs_custom", "cs_lex_source",
        "cs_langs", "cs_upload_lang", "cs_download_lang", "cs_mode", "cs_p", "cs_seed")
SCHEMA = {"dataset": Param("str", "flickr8k-multi30k"), "split": Param("str", "test"),
          "langs": Param("list", ["de"]), "mode": Param("str", "bl", tuple(MODES)),
          "p": Param("float", 0.5, lo=0.0, hi=1.0), "seed": Param("int", 0, lo=0), "caption": Param("int", 0, lo=0),
          "text": Param("str", "")}
restore(KEYS)
seed_from_url(SCHEMA, {"dataset": "cs_dataset", "split": "cs_split", "langs": "cs_langs", "mode": "cs_mode",
                       "p": "cs_p", "seed": "cs_seed", "caption": "cs_pick", "text": "cs_custom"})
if st.session_state.get("cs_custom") and "cs_input" not in st.session_state:
    st.session_state["cs_input"] = "my own text"  # a shared link with typed text opens on that text
for _key, _default in (("cs_p", 0.5), ("cs_seed", 0), ("cs_mode", "bl")):
    if _key not in st.session_state:
        st.session_state[_key] = _default

st.title("Code-switch explorer")
st.caption("Words of an English caption are replaced, with probability p, by translations from bilingual "
           "lexicons (Litschko et al. 2023). Stopwords may switch but are left out of the switch ratio.")


@st.cache_data(show_spinner=False)
def _datasets() -> list[dict]:
    from csr_core.datasets import list_datasets

    return [d for d in list_datasets() if d["available"] and ":" not in d["name"]]


@st.cache_data(show_spinner=False)
def _muse_langs() -> list[str]:
    from csr_core.lexicon import available_muse

    return available_muse()


@st.cache_resource(show_spinner="Loading lexicon…", max_entries=16)
def _muse(lang: str):
    from csr_core.lexicon import load_muse

    return load_muse(lang)


@st.cache_data(show_spinner=False, max_entries=16)
def _coverage(lexicon_fingerprint: str, _lexicon, captions_key: str, _captions: tuple[str, ...]) -> dict:
    cov = _lexicon.coverage(_captions, exclude_stopwords=True)
    return {"token_share": cov.token_share, "type_share": cov.type_share, "n_tokens": cov.n_tokens,
            "n_types": cov.n_types}


def _language_table(stats: list["LanguageStats"]) -> pd.DataFrame:
    """Per-language switch ratio next to the coverage that bounds it (p x coverage for BL-CS, / n for ML-CS)."""
    return pd.DataFrame({"lang": [s.lang for s in stats],
                         "switch ratio": [f"{s.switch_ratio:.1%}" for s in stats],
                         "coverage (content words)": [f"{s.coverage:.1%}" for s in stats],
                         "switched / covered / content": [f"{s.n_switched_content} / {s.n_covered} / {s.n_content}"
                                                          for s in stats]})


# ---- caption -----------------------------------------------------------------------------------------------------
col_in, col_lex = st.columns(2)
with col_in:
    st.subheader("Caption")
    infos = _datasets()
    names = [d["name"] for d in infos]
    valid_choice("cs_dataset", names, pick("flickr8k-multi30k", names))
    source = st.radio("Caption from", ("a dataset", "my own text"), key="cs_input", horizontal=True)
    captions: list[str] = []
    caption_ids: list[str] = []
    caption_rows: list[int] = []  # image row of each English caption (photo and human translations beside it)
    data = None
    ds_name = split = ""
    if names:
        d1, d2 = st.columns(2)
        ds_name = d1.selectbox("Dataset", names, key="cs_dataset")
        splits = next(d["splits"] for d in infos if d["name"] == ds_name)
        valid_choice("cs_split", splits, pick("test", splits))
        split = d2.selectbox("Split", splits, key="cs_split")
        try:
            data = dataset(ds_name, split)
            if "en" in data.languages:
                flat = data.flat("en")
                captions, caption_ids = flat.texts, flat.caption_ids
                caption_rows = [int(i) for i in flat.caption_image]
            else:
                st.warning(f"{ds_name}/{split} has no English captions to switch.")
        except CSRError as error:
            st.warning(f"{ds_name}/{split} cannot be loaded here: {error}")
    else:
        st.info("No dataset is available here (set CSR_DATA_DIR); type a caption instead.")

    text = ""
    pick_index = None
    if source == "a dataset" and captions:
        query = st.text_input("Search captions", key="cs_filter", placeholder="e.g. dog, red shirt")
        needle = query.lower()
        hits = [i for i, c in enumerate(captions) if needle in c.lower()] if needle else list(range(len(captions)))
        if not hits:
            st.warning(f"No caption contains {query!r}.")
        else:
            pages = max(1, -(-len(hits) // PAGE_SIZE))
            if st.session_state.get("cs_page", 1) > pages:
                st.session_state["cs_page"] = 1
            page = st.number_input(f"Page (of {pages}; {len(hits)} captions)", 1, pages, key="cs_page")
            shown = hits[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
            valid_choice("cs_pick", hits, shown[0])
            if st.session_state.get("cs_pick") not in shown:
                st.session_state["cs_pick"] = shown[0]
            pick_index = st.selectbox("Caption", shown, key="cs_pick",
                                      format_func=lambda i: f"{caption_ids[i]} — {captions[i]}")
            text = captions[pick_index]
    else:
        text = st.text_area("Your caption (English)", key="cs_custom",
                            placeholder="A little girl climbing into a wooden playhouse.")

# ---- lexicons ----------------------------------------------------------------------------------------------------
with col_lex:
    st.subheader("Lexicon")
    lex_source = st.radio("Lexicon source", SOURCES, key="cs_lex_source", horizontal=True)
    lexicons: dict = {}
    if lex_source == SOURCES[0]:
        available = _muse_langs()
        if not available:
            st.warning("No MUSE dictionaries found under the data folder's `muse/` or the cache; upload a file.")
        valid_choice("cs_langs", available, [lang for lang in ("de",) if lang in available])
        chosen = st.multiselect("Target languages", available, key="cs_langs")
        for lang in chosen:
            try:
                lexicons[lang] = _muse(lang)
            except CSRError as error:
                st.error(str(error))
    elif lex_source == SOURCES[1]:
        upload = st.file_uploader("Lexicon file (MUSE `src tgt`, reversed `tgt @ src`, TSV, or multiword titles)",
                                  type=["txt", "dict", "tsv", "gz"], key="cs_upload")
        tgt = st.text_input("Target language (blank: from the file name, e.g. en-de.txt)", key="cs_upload_lang")
        if upload is not None:
            from csr_core.lexicon import Lexicon

            folder = st.session_state.setdefault("_upload_dir", str(new_session_dir()))
            try:
                path = save_upload(Path(folder), upload.name, upload.getvalue())
                lexicon = Lexicon.from_file(path, "en", tgt.strip() or None)
                if lexicon.report is not None and lexicon.report.n_malformed:
                    st.warning(lexicon.report.summary())
                lexicons[lexicon.tgt] = lexicon
                st.success(f"Loaded {lexicon!r}")
            except CSRError as error:
                st.error(f"Could not use {upload.name}: {error}")
    else:
        lang = st.text_input("Language to download (EN→X)", key="cs_download_lang", placeholder="de")
        if st.button("Download MUSE dictionary", key="cs_download") and lang.strip():
            from csr_core.lexicon import download_muse

            try:
                with st.spinner("Downloading…"):
                    download_muse(lang.strip())
                _muse_langs.clear()
                st.success(f"en-{lang.strip()} is cached; pick it under 'MUSE (local)'.")
            except CSRError as error:
                st.error(str(error))

    mode = st.radio("Mode", list(MODES), key="cs_mode", format_func=MODES.get, horizontal=True)
    is_dict = mode == "dictionary"
    if is_dict:
        st.caption("Dictionary mode switches every word it can: p is 1.")
    p = st.slider("Switch probability p", 0.0, 1.0, step=0.05, key="cs_p", disabled=is_dict)
    seed = int(st.number_input("Seed", 0, 2**31 - 1, step=1, key="cs_seed"))

# ---- switching ---------------------------------------------------------------------------------------------------
switcher = None
if lexicons:
    from csr_core.codeswitch import CodeSwitcher

    langs = list(lexicons)
    if mode in ("bl", "dictionary") and len(langs) > 1:
        st.caption(f"{MODES[mode]} switches into one language: using {langs[0]} (choose ML-CS for several).")
        langs = langs[:1]
    try:
        switcher = CodeSwitcher({lang: lexicons[lang] for lang in langs}, mode=mode, p=1.0 if is_dict else p,
                                seed=seed, langs=langs)
    except CSRError as error:
        st.error(str(error))
else:
    st.info("Choose at least one lexicon to switch captions.")

from csr_core.codeswitch import bidi_isolated, lang_colors  # noqa: E402

colors = lang_colors(list(lexicons))
if switcher is not None and text.strip():
    from csr_core.codeswitch import switched_html

    result = switcher.switch(text)
    original_html, switched_text_html = switched_html(result, colors)
    left, right = st.columns(2)
    left.markdown("**Original**")
    left.html(f'<div style="font-size:1.15em;line-height:1.8">{original_html}</div>')
    right.markdown("**Code-switched**")
    right.html(f'<div style="font-size:1.15em;line-height:1.8">{switched_text_html}</div>')
    from csr_core.codeswitch import switch_facts

    facts = switch_facts(result)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Switch ratio (content words)", f"{result.switch_ratio:.0%}",
              help=f"{facts.n_switched_content} of {facts.n_content} content words; stopwords may switch too "
                   f"({facts.n_switched_words} of {facts.n_words} words in all) but are not counted")
    m2.metric("Content words switched", f"{facts.n_switched_content} / {facts.n_content}")
    m3.metric("Unchanged by the lexicon", facts.n_identity,
              help="Replacements identical to their source word (identity pairs such as rainbow → rainbow): "
                   "switched, but the caption does not change there")
    m4.metric("Phrases matched" if mode == "multiword" else "Languages used",
              facts.n_phrases if mode == "multiword" else (", ".join(result.langs_used) or "—"))
    with st.expander(f"Stopwords ({len(switcher.stopwords)}; left out of the ratio)", expanded=False):
        st.write(", ".join(sorted(switcher.stopwords)))
    st.dataframe(_language_table(switcher.language_stats([result])), key="cs_caption_langs", hide_index=True)
    legend = " ".join(f'<mark style="background:{c};padding:0 4px">{lang}</mark>' for lang, c in colors.items())
    st.html(f"<div>Colours: {legend}</div>")
elif switcher is not None:
    st.info("Pick or type a caption.")

if data is not None and pick_index is not None and caption_rows:
    from csr_core.datasets.types import PROVENANCE_LABELS

    photo_row = caption_rows[pick_index]
    st.subheader(f"Photo {data.image_ids[photo_row]} and its captions in every language")
    p1, p2 = st.columns([1, 2])
    if data.image_paths is not None and data.image_paths[photo_row].is_file():
        p1.image(str(data.image_paths[photo_row]), width=320)
    human = pd.DataFrame([{"lang": lang, "provenance": PROVENANCE_LABELS.get(data.provenance.get(lang, ""), ""),
                           "caption": bidi_isolated(caption)}
                          for lang in data.languages for caption in data.captions[lang][photo_row]])
    p2.dataframe(human, key="cs_human", hide_index=True)

# ---- lexicon statistics ------------------------------------------------------------------------------------------
if lexicons:
    st.subheader("Lexicon coverage")
    stats_rows = []
    key = f"{ds_name}/{split}/{len(captions)}"
    for lang, lexicon in lexicons.items():
        s = lexicon.stats()
        row = {"lang": lang, "lexicon": lexicon.name, "sources": s.sources, "entries": s.entries,
               "translations per word": round(s.mean_translations, 2), "identity pairs": f"{s.identity_share:.1%}",
               "max words per entry": s.max_ngram}
        if captions:
            cov = _coverage(lexicon.fingerprint, lexicon, key, tuple(captions))
            row.update({f"token coverage ({split})": f"{cov['token_share']:.1%}",
                        f"type coverage ({split})": f"{cov['type_share']:.1%}"})
        stats_rows.append(row)
    st.dataframe(pd.DataFrame(stats_rows), key="cs_lexicon_stats", hide_index=True)
    st.caption("Coverage counts content words (stopwords excluded) of the split's English captions.")

# ---- bulk --------------------------------------------------------------------------------------------------------
if switcher is not None and captions:
    st.subheader(f"Whole split: {ds_name}/{split}")
    limit = min(len(captions), BULK_LIMIT)
    if limit < len(captions):
        st.caption(f"First {limit} of {len(captions)} captions (the CLI `python -m csr_core codeswitch` does all).")
    results = switcher.switch_batch(captions[:limit])
    bulk = pd.DataFrame({
        "caption_id": caption_ids[:limit],
        "original": captions[:limit],
        "switched": [r.text for r in results],
        "switch_ratio": [round(r.switch_ratio, 3) for r in results],
        "langs": [",".join(r.langs_used) for r in results],
    })
    from csr_core.codeswitch import corpus_switch_ratio

    st.metric("Corpus switch ratio", f"{corpus_switch_ratio(results):.1%}")
    st.markdown("**Per language**")
    st.dataframe(_language_table(switcher.language_stats(results)), key="cs_split_langs", hide_index=True)
    st.dataframe(bulk.assign(switched=bulk["switched"].map(bidi_isolated)), key="cs_bulk", hide_index=True,
                 height=300)  # RTL runs isolated on screen only; the CSV keeps the text as switched
    st.download_button("CSV", bulk.to_csv(index=False).encode("utf-8"), key="cs_bulk_csv",
                       file_name=f"codeswitch_{ds_name}_{split}_{mode}_{'-'.join(lexicons)}_p{p:g}_s{seed}.csv",
                       mime="text/csv")

publish_to_url(SCHEMA, {"dataset": ds_name or None, "split": split or None,
                        "langs": st.session_state.get("cs_langs", []), "mode": mode, "p": p, "seed": seed,
                        "caption": st.session_state.get("cs_pick") if source == "a dataset" else None,
                        "text": (text or None) if source != "a dataset" else None})
remember(KEYS)
