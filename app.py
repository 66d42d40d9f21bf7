"""The ccvae dashboard: ``streamlit run app.py``.

Pages live in ``app_pages/`` and only draw what the ``ccvae`` package computes.
The folder is deliberately not called ``pages/``: Streamlit (1.67) treats a
``pages/`` folder beside the main script as a version-1 multipage app and runs the
first script run of a fresh server (and every deep link such as ``/molecules``)
through that folder instead of this ``st.navigation``.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="ccvae: constant-curvature VAEs", page_icon=":material/public:", layout="wide")

PAGES = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/latent_explorer.py", title="Latent explorer", icon=":material/explore:"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("app_pages/molecules.py", title="Molecules", icon=":material/science:"),
    st.Page("app_pages/elbo_tables.py", title="ELBO tables", icon=":material/table_chart:"),
    st.Page("app_pages/distributions.py", title="Distributions explainer", icon=":material/casino:"),
]

st.navigation(PAGES).run()
