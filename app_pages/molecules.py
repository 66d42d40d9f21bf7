"""Molecules (QM9): a test molecule and its reconstruction from decoded torsions in
interactive 3-D (py3Dmol, 3Dmol.js served from the package, no CDN), the RMSD,
the per-angle errors and the post's QM9 plots for the checkpoint."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ccvae.dashboard import molecules as mol_tools
from ccvae.errors import CCVAEError
from app_pages import _common as common

st.title("Molecules (QM9)")
info = common.pick_checkpoint("QM9 checkpoint", key="mol_checkpoint", predicate=lambda i: i.dataset == "qm9")
if info is None:
    st.info("No checkpoint trained on QM9 yet. Train one on the Train page (dataset qm9) or with "
            "`python -m ccvae train --dataset qm9 --geometry hyperbolic --latent-dim 10 "
            "--data-option max_molecules=20000 --out checkpoints/qm9-hyperbolic-d10`.")
    st.stop()

key = common.stamp(info)
try:
    model, _ = common.load_model(str(info.path), key)
    data = common.load_eval_data(str(info.path), key)
    mol_tools.qm9_bundle(data)
except CCVAEError as e:
    common.error(f"Cannot open {info.name}", e)
    st.stop()

st.caption(f"{info.geometry} latent, dimension {info.latent_dim} · {len(data.split):,} test molecules · "
           f"{data.description}")

how = st.radio("Pick a molecule", ["by test index", "by SMILES", "at random"], horizontal=True, key="mol_how")
c1, c2 = st.columns([1, 2])
molecule = None
try:
    if how == "by test index":
        row = c1.number_input("test molecule #", 0, len(data.split) - 1, 0, key="mol_row")
        molecule = mol_tools.find_molecule(data, qm9_index=mol_tools.test_molecule_index(data, int(row)))
    elif how == "by SMILES":
        smiles = c1.text_input("SMILES", value=st.session_state.get("mol_smiles_default", "CCO"), key="mol_smiles",
                               help="any molecule of the checkpoint's data; stereo-free SMILES match all stereoisomers")
        molecule = mol_tools.find_molecule(data, smiles=smiles)
    else:
        if c1.button("Another random molecule", key="mol_random"):
            st.session_state["mol_seed"] = int(st.session_state.get("mol_seed", 0)) + 1
        rng = np.random.default_rng(int(st.session_state.get("mol_seed", 0)))
        row = int(rng.integers(len(data.split)))
        molecule = mol_tools.find_molecule(data, qm9_index=mol_tools.test_molecule_index(data, row))
    result = mol_tools.reconstruct(model, data, molecule)
except CCVAEError as e:
    common.error("Cannot show this molecule", e)
    st.stop()

with c2:
    st.markdown(f"**QM9 #{molecule.index}** `{molecule.smiles}` · {molecule.n_torsions} torsions"
                + ("" if result.in_test else " · *not in the test split*"))
m = st.columns(5)
m[0].metric("heavy-atom RMSD", f"{result.rebuilt.rmsd:.3f} Å")
m[1].metric("all-atom RMSD", f"{result.rebuilt.rmsd_all_atoms:.3f} Å")
m[2].metric("mean |angle error|", f"{result.error_deg.mean():.1f}°" if result.error_deg.size else "—")
m[3].metric("torsions set", f"{result.rebuilt.n_set}")
m[4].metric("ring torsions kept", f"{result.rebuilt.n_ring_skipped}")
if result.n_truncated:
    st.caption(f"{result.n_truncated} torsion(s) beyond the model's slots keep their true values.")

mode = st.radio("View", ["side-by-side", "overlay"], horizontal=True, key="mol_mode")
from ccvae.viz.molecules import reconstruction_html  # noqa: E402 - RDKit/py3Dmol only on this page

html = reconstruction_html(molecule.mol, result.rebuilt, mode=mode, title=f"QM9 #{molecule.index}",
                           width=420 if mode == "side-by-side" else 640, height=360)
st.iframe(html, height=430)
st.caption("Drag to rotate (the two views turn together), scroll to zoom. Rebuilt: every rotatable "
           "bond turned to the decoded torsions; ring torsions stay at their true values.")

st.subheader("Per-angle errors")
st.dataframe(result.table(), hide_index=True, width="stretch", height=min(400, 35 * (len(result.true_deg) + 1)))

st.subheader("The post's QM9 plots for this checkpoint")
from ccvae.viz import qm9_plots  # noqa: E402


@st.cache_data(show_spinner="Decoding the test molecules…", max_entries=8)
def _test_angles(path: str, key: str):
    m, _ = common.load_model(path, key)
    return mol_tools.test_set_angles(m, common.load_eval_data(path, key))


true, pred, mask = _test_angles(str(info.path), key)
history = info.metrics.get("history") or []
name = f"{info.geometry} d={info.latent_dim}"
plots = st.tabs(["Angular error", "Unit circle", "Error by true angle", "Correlations", "Training curves"])
with plots[0]:
    st.plotly_chart(qm9_plots.angle_error_histogram({name: pred}, true, mask), key="qm9_hist")
with plots[1]:
    st.plotly_chart(qm9_plots.unit_circle_plot(true, pred, mask), key="qm9_circle")
with plots[2]:
    st.plotly_chart(qm9_plots.error_by_angle_plot({name: pred}, true, mask), key="qm9_by_angle")
with plots[3]:
    st.plotly_chart(qm9_plots.correlation_heatmaps(true, pred, mask), key="qm9_corr")
with plots[4]:
    if history:
        st.plotly_chart(qm9_plots.loss_curves({name: history}), key="qm9_loss")
    else:
        st.info("This checkpoint records no training history.")
st.caption(f"Over the {len(true):,} test molecules of this checkpoint; angles in degrees, padding slots ignored.")
