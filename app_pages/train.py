"""Train: start a background training run and follow it. The run is a subprocess
(``ccvae.jobs``) whose state lives in its run folder, so leaving this page, or
restarting the dashboard, loses nothing."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from ccvae import jobs
from ccvae.dashboard import catalog
from ccvae.data.registry import DATASETS
from ccvae.errors import CCVAEError
from ccvae.models import GEOMETRIES
from ccvae.models.latent import INITIAL_CONCENTRATION, SPHERE_POSTERIOR_LABELS
from ccvae.training import DEFAULT_LIKELIHOOD, TrainConfig, likelihoods_for
from ccvae.viz.latent_plots import training_curves
from app_pages import _common as common

#: Runs at once from this page: the machine's cores are better spent on one run.
MAX_ACTIVE = 1

st.title("Train a model")
st.caption(f"Runs are written to `{common.relpath(catalog.runs_root())}` (env `CCVAE_RUNS`); a finished "
           "run appears in the checkpoint list and in the explorer.")

with st.expander("New training run", expanded=True):
    c = st.columns(4)
    dataset = c[0].selectbox("dataset", sorted(DATASETS), index=sorted(DATASETS).index("mnist")
                             if "mnist" in DATASETS else 0, key="train_dataset")
    geometry = c[1].selectbox("geometry", list(GEOMETRIES), key="train_geometry",
                              help="euclidean: Gaussian on R^d; sphere: vMF on S^d; hyperbolic: wrapped normal on H^d")
    latent_dim = c[2].number_input("latent dimension", min_value=0, max_value=512, value=2, step=1,
                                   key="train_latent_dim", help="2 means R², S² or H²")
    likelihoods = ["default"] + list(likelihoods_for(dataset))  # only those that fit its data
    likelihood = c[3].selectbox("likelihood", likelihoods, key="train_likelihood",
                                format_func=lambda l: f"default ({DEFAULT_LIKELIHOOD.get(dataset, 'bernoulli')})"
                                if l == "default" else l)
    c = st.columns(4)
    layers = c[0].number_input("hidden layers", min_value=0, max_value=8, value=2, key="train_layers")
    hidden = c[1].number_input("layer width", min_value=1, max_value=4096, value=256, key="train_hidden")
    epochs = c[2].number_input("epochs", min_value=1, max_value=1000, value=10, key="train_epochs")
    seed = c[3].number_input("seed", min_value=0, max_value=2**31 - 1, value=0, key="train_seed")
    c = st.columns(4)
    lr = c[0].number_input("learning rate", min_value=1e-6, max_value=1.0, value=1e-3, format="%.0e",
                           key="train_lr")
    batch = c[1].number_input("batch size", min_value=1, max_value=8192, value=128, key="train_batch")
    max_examples = c[2].number_input("training examples (0 = all)", min_value=0, value=0, step=1000,
                                     key="train_max_examples", help="a quick run on the first N examples")
    iwae = c[3].number_input("IWAE samples for the test score", min_value=0, max_value=5000, value=100,
                             key="train_iwae", help="0 skips the importance-weighted bound")
    sphere_posterior, initial_concentration = "vmf", INITIAL_CONCENTRATION
    if geometry == "sphere":
        c = st.columns(2)
        sphere_posterior = c[0].selectbox(
            "sphere posterior", list(SPHERE_POSTERIOR_LABELS), key="train_sphere_posterior",
            format_func=SPHERE_POSTERIOR_LABELS.get,
            help="The family of q(z|x) on the sphere. The s-vae sampler is kept to measure what its "
                 "bias costs (Davidson et al.'s published S-VAE numbers used it); it is not for real use.")
        initial_concentration = c[1].number_input(
            "initial concentration κ", min_value=1.01, max_value=1e5, value=INITIAL_CONCENTRATION,
            key="train_initial_kappa",
            help="κ of a fresh encoder. The default 10 gives informative samples from the first step; "
                 "s-vae-pytorch's encoders start near 1.7.")
    options = {}
    if dataset == "qm9":
        options["max_molecules"] = int(st.number_input(
            "QM9 molecules (a seeded random subset; 0 = all 130,831)", min_value=0, value=5000, step=1000,
            key="train_qm9_molecules")) or None
        options = {k: v for k, v in options.items() if v is not None}
    if st.button("Start training", type="primary", key="train_start"):
        try:
            cfg = TrainConfig(dataset=dataset, geometry=geometry, latent_dim=int(latent_dim),
                              hidden=int(hidden), layers=int(layers),
                              likelihood=None if likelihood == "default" else likelihood,
                              epochs=int(epochs), batch_size=int(batch), lr=float(lr), seed=int(seed),
                              max_examples=int(max_examples) or None, dataset_options=options,
                              sphere_posterior=sphere_posterior,
                              initial_concentration=float(initial_concentration))
            job = jobs.start_job(cfg, catalog.runs_root(), iwae_samples=int(iwae), max_active=MAX_ACTIVE)
        except CCVAEError as e:
            common.error("Cannot start training", e)
        else:
            st.session_state["train_job"] = str(job.path)
            st.success(f"Started {job.job_id}. It runs in the background: you can leave this page.")
            st.caption(f"Same as `{cfg.cli_command()}`")

all_jobs = jobs.list_jobs(catalog.runs_root())
any_active = any(j.active for j in all_jobs)


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "?"


@st.fragment(run_every=1.0 if any_active else None)
def runs_panel() -> None:
    runs = jobs.list_jobs(catalog.runs_root())
    if any_active and not any(j.active for j in runs):
        st.rerun()  # the last run ended: redraw the page once and stop polling
    if not runs:
        st.info("No training runs yet.")
        return
    current = st.session_state.get("train_job")
    paths = [str(j.path) for j in runs]
    default = paths.index(current) if current in paths else next(
        (i for i, j in enumerate(runs) if j.active), 0)
    idx = st.selectbox("Run", range(len(runs)), index=default, key="train_run_pick",
                       format_func=lambda i: f"{runs[i].label} — {runs[i].state}")
    job = runs[int(idx)]
    st.session_state["train_job"] = str(job.path)
    icon = {"done": ":material/check_circle:", "cancelled": ":material/stop_circle:",
            "failed": ":material/error:"}.get(job.state, ":material/hourglass_top:")
    st.markdown(f"{icon} **{job.state}** · started {_when(job.created)} · "
                f"{job.config.get('dataset')} · {job.config.get('geometry')} d={job.config.get('latent_dim')} · "
                f"{job.config.get('layers')}×{job.config.get('hidden')} · {job.config.get('epochs')} epochs")
    if job.active:
        label = (f"epoch {job.epoch or 0}/{job.n_epochs}, batch {job.batch or 0}/{job.n_batches or '?'}"
                 if job.epoch else "loading data…")
        st.progress(job.fraction, text=label)
        if st.button("Cancel", key=f"cancel::{job.job_id}", disabled=job.state == "cancelling"):
            jobs.cancel_job(job.path)
            st.rerun(scope="fragment")
        if job.state == "cancelling":
            st.caption("Stopping after the current batch; the best model so far is kept.")
    if job.error:
        common.error("Training failed", job.error)
    if job.history:
        st.plotly_chart(training_curves(job.history), key=f"curves::{job.job_id}::{len(job.history)}")
    if job.test:
        t = job.test
        m = st.columns(4)
        m[0].metric("test ELBO", f"{t.get('elbo', float('nan')):.2f}")
        m[1].metric("test IWAE", f"{t['iwae']:.2f}" if "iwae" in t else "—")
        m[2].metric("KL", f"{t.get('kl', float('nan')):.2f}")
        m[3].metric("k-NN accuracy", f"{t['knn_accuracy']:.3f}" if "knn_accuracy" in t else "—")
    if job.checkpoint is not None and not job.active:
        st.caption(f"Checkpoint: `{common.relpath(job.checkpoint)}` — open it in the Latent explorer.")
    with st.expander("Log"):
        try:
            log = (job.path / jobs.LOG_FILE).read_text(errors="replace")[-4000:]
        except OSError:
            log = ""
        st.code(log or "(empty)", language=None)
    st.markdown("**All runs**")
    st.dataframe([{"run": j.job_id, "state": j.state, "dataset": j.config.get("dataset"),
                   "geometry": j.config.get("geometry"), "latent dim": j.config.get("latent_dim"),
                   "epochs": f"{len(j.history)}/{j.n_epochs}",
                   "val ELBO": round(j.history[-1]["val_elbo"], 2) if j.history else None,
                   "test ELBO": round(j.test["elbo"], 2) if j.test and "elbo" in j.test else None}
                  for j in runs], hide_index=True, width="stretch")


st.subheader("Runs")
runs_panel()
