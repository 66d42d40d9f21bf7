"""ELBO tables: this project's test ELBOs, from the results database, beside the post's
published MNIST and LFW tables; then IWAE log-likelihoods under Davidson et al.'s
protocol beside their published values."""

from __future__ import annotations

import streamlit as st

from ccvae import reference_results as ref
from ccvae import tables
from ccvae.dashboard import results_view as rv
from ccvae.results_db import ResultsDB, ResultsDBError

st.title("ELBO tables")

# -- where the results come from ------------------------------------------------------------
path = rv.results_db_path()
try:
    db: ResultsDB | None = ResultsDB(path, create=False)
except ResultsDBError as exc:
    db = None
    # A missing file is the normal state before the first sweep; anything else is a fault.
    if path.exists():
        st.error(f"{exc}. Only the published values are shown.")
    else:
        st.info(f"{exc}. Only the published values are shown.")

if db is not None:
    sweeps = db.sweeps()
    st.markdown(f"Results database: `{path}` (set `{rv.ENV_RESULTS_DB}` to read another file).")
    if sweeps:
        with st.expander(f"{len(sweeps)} sweep(s) in it", expanded=False):
            st.dataframe([{"dataset": d, "sweep": s, "runs": n} for d, s, n in sweeps], hide_index=True)
    else:
        st.info("The results database holds no runs yet: only the published values are shown.")

# -- the post's ELBO table ------------------------------------------------------------------
st.header("Test ELBO beside the post's tables")
st.markdown(
    f"Test ELBO per example in nats (higher is better) ± the spread of the per-batch mean over test "
    f"batches, by latent dimension D and number of hidden layers L; our cells come from sweep "
    f"`{tables.ELBO_SWEEP}`. With several seeds a cell is their mean, its ± adds the spread "
    "over seeds in quadrature, and (n=…) counts them. **★** marks the best geometry of each row, "
    "separately for ours and for the post's.")

dataset = st.radio("Dataset", ["mnist", "lfw"], horizontal=True, format_func=str.upper, key="elbo_dataset")
rows = rv.elbo_table_rows(db, dataset)
has_ours = any(r["ours"] for r in rows)
only_ours = st.toggle("Only rows with our results", value=False, key="elbo_only_ours", disabled=not has_ours)
if only_ours:
    rows = [r for r in rows if r["ours"]]

values, styles = rv.elbo_frame(rows)
st.dataframe(values.style.apply(lambda _: styles, axis=None), hide_index=True, width="stretch",
             column_config={f"{g} ({w})": st.column_config.TextColumn(f"{g} · {w}")
                            for g in ref.GEOMETRIES for w in ("ours", "post")})
st.caption(f"Green: ours significantly better than the post; red: significantly worse. Significant "
           f"means |ours − post| > {tables.SIGNIFICANCE_Z:g} × combined spread, the combined spread "
           "being √(ours² + post²) of the two ± values.")
summary = rv.elbo_summary(rows)
if summary:
    st.markdown(f"**{summary}**")
elif db is not None:
    st.info(f"No {dataset.upper()} runs in sweep `{tables.ELBO_SWEEP}` yet: only the post's "
            f"values are shown. Run `ccvae sweep --dataset {dataset}` to fill the grid.")

ceiling = tables.elbo_ceiling(db, dataset) if db is not None and dataset == "lfw" else None
if ceiling is not None:
    st.warning(rv.ceiling_note(ceiling, dataset), icon=":material/warning:")

if db is not None:
    st.download_button("Download this table (CSV)", tables.render(db, dataset, "elbo", "csv"),
                       file_name=f"elbo-{dataset}.csv", mime="text/csv", key="elbo_csv")

with st.expander("How the post's tables were read"):
    for note in ref.READING_NOTES:
        st.markdown(f"- {note}")
    st.markdown("- The post's MNIST runs used 128 hidden units per layer; compare like with like.")

# -- IWAE under Davidson et al.'s protocol --------------------------------------------------
st.header("IWAE log-likelihood under Davidson et al.'s protocol")
st.markdown(f"MNIST test log-likelihood in nats (higher is better), estimated with importance "
            f"sampling. Each cell comes from our sweep `{tables.IWAE_SWEEPS[0]}` (the protocol with the "
            f"authors' code's KL warm-up and batch size) or, where that has not run yet, from "
            f"`{tables.IWAE_SWEEPS[1]}` (the protocol as the paper states it); the caption says which. "
            f"Our ± is the spread over "
            f"seeds with several seeds, else the standard error over test images; Davidson et al.'s is "
            f"their s.d. over runs. **✓** (green) marks our cells that reproduce theirs: within "
            f"{tables.IWAE_TOLERANCE:g} nat(s), or better.")
iwae = rv.iwae_table_rows(db)
iwae_values, iwae_styles = rv.iwae_frame(iwae)
st.dataframe(iwae_values.style.apply(lambda _: iwae_styles, axis=None), hide_index=True, width="stretch",
             column_config={f"{g} (ours)": st.column_config.TextColumn(f"{g} · ours")
                            for g in ref.GEOMETRIES})
training = tables.training_note(iwae)
if training:
    st.caption(training + " Cells that trained for different lengths are not like for like.")
revisions = tables.protocol_note(iwae)
if revisions:
    st.caption(revisions)
if db is not None:
    st.download_button("Download this table (CSV)", tables.render(db, "mnist", "iwae", "csv"),
                       file_name="iwae-davidson-mnist.csv", mime="text/csv", key="iwae_csv")
st.markdown(f"**Protocol.** {ref.DAVIDSON_2018_PROTOCOL}")
st.caption(ref.DAVIDSON_2018_CITATION)

st.subheader("Does an exact vMF sampler change the verdict at d ≥ 20?")
verdict = rv.exact_sampler_verdict(iwae)
if verdict:
    st.markdown("Davidson et al.'s vMF sampler approximates its envelope parameter for large κ; ours "
                "samples the vMF exactly. Under their protocol:\n\n" + "\n".join(f"- {v}" for v in verdict))
else:
    st.markdown("Not known yet: the protocol sweep has not been run (it needs both the Euclidean and the "
                "sphere VAE at d = 20 and d = 40). Run it with `ccvae sweep --protocol davidson --workers 2`.")

ablation = tables.sampler_ablation_rows(db) if db is not None else []
if ablation:
    st.markdown("**The sampler alone.** The same protocol, seed and epoch cap, with the sphere trained once "
                "with our exact sampler and once with s-vae-pytorch's (`--sphere-posterior vmf_svae`: its "
                "approximate envelope above κ = 10 and its κ-gradient without the correction term):\n\n"
                + "\n".join(f"- {v}" for v in rv.sampler_ablation_verdict(ablation)))
    st.markdown(tables.render(db, "mnist", "sampler", "markdown"))

st.subheader("Nagano et al. 2019")
st.markdown(f"**Protocol.** {ref.NAGANO_2019_PROTOCOL}")
if not ref.NAGANO_2019:
    st.markdown("Nagano et al.'s numbers are **not shown**: they could not be verified against the paper "
                "offline, and an unverified number is worse than a missing one.")
st.caption(ref.NAGANO_2019_CITATION)
