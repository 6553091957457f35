"""CSR Lab core: code-switching, datasets, encoders, retrieval metrics and the results store.

Never imports streamlit: every computation a page shows is reachable from Python and the CLI.
"""

__version__ = "0.1.0"
