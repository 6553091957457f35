"""CSR Lab dashboard: `streamlit run dashboard.py` (or `make run`).

A router only: every page is one file in `app_pages/` (thin: widgets → csr_core calls → csr_core.viz figures).
Page titles and URL paths are stable (the browser suite and benchmarks address pages by them).

The folder is deliberately not named `pages/`: Streamlit still treats a `pages/` folder beside the entry script as
a legacy multipage app until st.navigation has run once, so a fresh server's first request to /heatmaps (and every
AppTest run) would execute the page file without this router, and a hand-over rerun would drop button clicks.
"""

import os

import streamlit as st

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

st.set_page_config(page_title="CSR Lab", page_icon="🔀", layout="wide")

# (file, title, url_path, icon): url paths are part of the public interface (shareable links).
PAGES = (
    ("app_pages/overview.py", "Overview", "overview", "🏠"),
    ("app_pages/codeswitch.py", "Code-switch explorer", "codeswitch", "🔀"),
    ("app_pages/heatmaps.py", "R@K heatmaps", "heatmaps", "🟥"),
    ("app_pages/gaps.py", "Gaps vs typology", "gaps", "📐"),
    ("app_pages/run_eval.py", "Run eval", "run", "▶️"),
    ("app_pages/finetune.py", "Fine-tuning", "finetune", "🎯"),
)

# The default page is served at the root ("" path) and Streamlit answers its own url path with "Page not found", so
# it is registered under an internal path and `/overview` (shared links, bookmarks) is a hidden alias of the same file.
navigation = st.navigation(
    [st.Page(path, title=title, url_path="home" if url == "overview" else url, icon=icon, default=(url == "overview"))
     for path, title, url, icon in PAGES]
    + [st.Page(PAGES[0][0], title=PAGES[0][1], url_path="overview", icon=PAGES[0][3], visibility="hidden")]
)

with st.sidebar:
    from app_pages._ui import sidebar_status

    sidebar_status()

navigation.run()
