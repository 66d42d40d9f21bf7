"""Compare: two or three checkpoints side by side (latent scatters, reconstructions
of the same test images, metrics), to answer "which geometry is better here?"."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ccvae.dashboard import catalog
from ccvae.dashboard import explorer as ex
from ccvae.viz import latent_plots as lp
from app_pages import _common as common

#: Points per scatter on this page (three charts side by side).
POINTS = 3000

st.title("Compare checkpoints")
infos = common.list_checkpoints()
if len(infos) < 2:
    common.no_checkpoints_message() if not infos else st.info("Only one checkpoint: train another to compare.")
    st.stop()


def _default_choice() -> list[int]:
    """The 2-D checkpoints of the best-covered dataset, one per geometry (shipped first)."""
    best: list[int] = []
    for dataset in ("mnist", "lfw", "qm9", *sorted({i.dataset for i in infos})):
        picked: dict[str, int] = {}
        for k, i in enumerate(infos):
            if i.dataset == dataset and i.latent_dim == 2 and i.geometry not in picked:
                picked[i.geometry] = k
        if len(picked) > len(best):
            best = list(picked.values())
    return best[:3] if len(best) >= 2 else [0, 1]


names = [catalog.display_name(i) for i in infos]
chosen = st.multiselect("Checkpoints (2 or 3)", range(len(infos)), default=_default_choice(),
                        format_func=lambda k: names[k], max_selections=3, key="compare_pick")
if len(chosen) < 2:
    st.info("Pick at least two checkpoints.")
    st.stop()
picked = [infos[k] for k in chosen]

st.subheader("Metrics")
rows = []
for info in picked:
    t = info.test_metrics
    rows.append({"checkpoint": info.name, "dataset": info.dataset, "geometry": info.geometry,
                 "latent dim": info.latent_dim, "layers": info.model_config.get("layers"),
                 "test ELBO": t.get("elbo"), "± batch std": t.get("elbo_batch_std"),
                 "test IWAE": t.get("iwae"), "reconstruction": t.get("recon"), "KL": t.get("kl"),
                 "bits/dim": t.get("bits_per_dim"), "k-NN accuracy": t.get("knn_accuracy"),
                 "angle MAE (deg)": t.get("angle_mae_deg")})
rows = [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if not (v is None and k == "angle MAE (deg)")}
        for r in rows]
st.dataframe(rows, hide_index=True, width="stretch")
elbos = [(r.get("test ELBO"), r["checkpoint"]) for r in rows if r.get("test ELBO") is not None]
if len({i.dataset for i in picked}) == 1 and len(elbos) >= 2:
    best = max(elbos)
    st.caption(f"Highest test ELBO: **{best[1]}** ({best[0]:.2f} nats). ELBOs compare only on the same data; "
               "the ± is the spread over test batches.")

loaded = []
for info in picked:
    res = common.model_and_view(info, max_points=POINTS)
    loaded.append(res)

st.subheader("Latent spaces")
cols = st.columns(len(picked))
for col, info, res in zip(cols, picked, loaded):
    with col:
        st.markdown(f"**{info.geometry}** · {info.dataset} · d={info.latent_dim}")
        if res is None:
            continue
        model, view, data, data_error = res
        if data_error is not None or not view.n:
            st.warning(f"No test data: {data_error}")
            continue
        st.plotly_chart(ex.scatter(view, height=380, selectable=False), key=f"compare_scatter::{info.name}")
        st.caption(view.projection.describe())

st.subheader("Reconstructions of the same test images")
first = next((r for r in loaded if r is not None and r[2] is not None), None)
if first is None:
    st.info("No test data to reconstruct.")
else:
    _, view0, data0, _ = first
    c1, c2 = st.columns([1, 3])
    count = c1.slider("images", 4, 16, 8, key="compare_count")
    seed = c1.number_input("pick seed", 0, 10_000, 0, key="compare_seed")
    rows_ = np.random.default_rng(int(seed)).choice(len(data0.split), size=min(count, len(data0.split)),
                                                     replace=False)
    with c2:
        inputs = ex.to_images(view0, data0.split.x[rows_], None if data0.split.mask is None else data0.split.mask[rows_])
        scale = ex.display_scale(inputs, 64)
        common.show_image(lp.image_grid(inputs, ncols=len(rows_)), "inputs", scale=scale)
        for info, res in zip(picked, loaded):
            if res is None:
                continue
            model, view, _, _ = res
            if info.dataset != data0.dataset or model.config.input_dim != data0.split.x.shape[1]:
                st.caption(f"{info.name}: trained on {info.dataset}, not comparable here.")
                continue
            _, recons = ex.inputs_and_reconstructions(model, view, data0, rows_)
            common.show_image(lp.image_grid(recons, ncols=len(rows_)),
                              f"{info.geometry} d={info.latent_dim} — {info.name}", scale=scale)
