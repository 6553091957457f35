"""CSR Lab dashboard: `streamlit run dashboard.py` (or `make run`)."""

import streamlit as st

st.set_page_config(page_title="CSR Lab", layout="wide")
st.title("CSR Lab")
st.write("Code-switched cross-lingual image-text retrieval. Pages arrive with the dashboard issue.")
