"""ELBO tables: this project's test ELBOs beside the post's published MNIST and LFW
tables (latent dimension x hidden layers x geometry), best cell per row marked."""

from __future__ import annotations

import streamlit as st

from ccvae import reference_results as ref
from app_pages import _common as common

st.title("ELBO tables")
st.markdown(
    "Test ELBO per example in nats (higher is better) ± the spread of the per-batch mean over "
    "test batches, by latent dimension and number of hidden layers. **★** marks the best "
    "geometry of each row, separately for our results and for the post's.")

dataset = st.radio("Dataset", ["mnist", "lfw"], horizontal=True, format_func=str.upper, key="elbo_dataset")
infos = common.list_checkpoints()
rows = ref.comparison_rows(dataset, infos)
ours = ref.project_cells(infos, dataset)
only_ours = st.toggle("Only rows with our results", value=False, key="elbo_only_ours",
                      disabled=not ours)
if only_ours:
    rows = [r for r in rows if (r["latent dim"], r["layers"]) in ours]

geoms = ref.GEOMETRIES
order = ["latent dim", "layers"] + [f"{g} ({w})" for w in ("ours", "post") for g in geoms]
st.dataframe([{k: r[k] for k in order} for r in rows], hide_index=True, width="stretch",
             column_config={f"{g} (ours)": st.column_config.TextColumn(f"{g} · ours") for g in geoms}
             | {f"{g} (post)": st.column_config.TextColumn(f"{g} · post") for g in geoms})

n_ours = sum(len(v) for v in ours.values())
if n_ours:
    st.caption(f"Our cells: the test ELBO of {n_ours} checkpoint cell(s) found here (the sweep issue will "
               "fill the whole grid). Where several checkpoints share a cell, the best is shown.")
    with st.expander("Which checkpoint fills each of our cells"):
        st.dataframe([{"latent dim": k[0], "layers": k[1], "geometry": g, "checkpoint": c["name"],
                       "checkpoints in this cell": c["n"]}
                      for k, row in sorted(ours.items()) for g, c in row.items()], hide_index=True)
else:
    st.info(f"No {dataset.upper()} checkpoints with the post's Bernoulli (BCE) likelihood yet: only the "
            "post's values are shown. Train some on the Train page.")

with st.expander("How the post's tables were read"):
    for note in ref.READING_NOTES:
        st.markdown(f"- {note}")
    st.markdown("- The post's MNIST runs used 128 hidden units per layer; compare like with like.")
