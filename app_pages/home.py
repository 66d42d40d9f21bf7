"""Home: what the project does, which data are here, and every checkpoint."""

from __future__ import annotations

import streamlit as st

from ccvae.dashboard import catalog
from ccvae.data.registry import available_sources
from app_pages import _common as common

st.title("Constant-curvature VAEs")
st.markdown(
    "Variational autoencoders whose latent space is **flat** (Gaussian posterior on R^d), "
    "**spherical** (von Mises-Fisher posterior on S^d, uniform prior) or **hyperbolic** "
    "(wrapped normal on H^d, Lorentz model), trained on MNIST digits, LFW faces and QM9 "
    "molecular torsion angles. Browse their latent spaces, decode any latent point, compare "
    "the geometries, train new models and see the distributions behind them.")

c = st.columns(4)
c[0].page_link("app_pages/latent_explorer.py", label="Explore a latent space", icon=":material/explore:")
c[1].page_link("app_pages/compare.py", label="Compare geometries", icon=":material/compare:")
c[2].page_link("app_pages/train.py", label="Train a model", icon=":material/model_training:")
c[3].page_link("app_pages/distributions.py", label="The distributions", icon=":material/casino:")

st.subheader("Data sources")
rows = []
for name, src in available_sources().items():
    subset = {True: "yes (a subset)", False: "no (full dataset)", None: "unknown until loaded"}[src.is_subset]
    rows.append({"dataset": name, "available": src.kind != "unavailable", "source": src.kind,
                 "subset": subset, "details": src.description})
st.dataframe(rows, hide_index=True, width="stretch")
st.caption("Nothing is downloaded by the dashboard: it reads the local copies listed here.")

st.subheader("Checkpoints")
infos = common.list_checkpoints()
if not infos:
    common.no_checkpoints_message()
else:
    st.dataframe(catalog.checkpoint_rows(infos), hide_index=True, width="stretch",
                 column_config={"path": st.column_config.TextColumn("path", width="small")})
    st.caption(f"Shipped checkpoints: `{common.relpath(catalog.checkpoints_root())}` "
               f"(env `CCVAE_CHECKPOINTS`); runs started here: `{common.relpath(catalog.runs_root())}`. "
               "ELBO and IWAE are per-example test values in nats (higher is better).")
