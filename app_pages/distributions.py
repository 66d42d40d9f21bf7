"""Distributions explainer: the post's figures, made interactive."""

from __future__ import annotations

import streamlit as st

from ccvae.errors import CCVAEError
from ccvae.viz import explainer
from app_pages import _common as common


@st.cache_data(show_spinner=False, max_entries=64)
def vmf(kappa: float, n: int, seed: int):
    return explainer.vmf_figure(kappa, n=n, seed=seed)


@st.cache_data(show_spinner=False, max_entries=64)
def von_mises(mu: float, kappa: float, seed: int):
    return explainer.von_mises_figure(mu, kappa, seed=seed)


@st.cache_data(show_spinner=False, max_entries=64)
def wrapped(distance: float, angle: float, s1: float, s2: float, seed: int):
    return explainer.wrapped_normal_figure(distance, angle, (s1, s2), seed=seed)


@st.cache_data(show_spinner=False, max_entries=32)
def bubble(dim: int, seed: int):
    return explainer.soap_bubble_figure(dim, seed=seed)


st.title("The distributions behind the latent spaces")
tabs = st.tabs(["von Mises-Fisher on S²", "von Mises on the circle", "Wrapped normal on H²", "The soap bubble"])

with tabs[0]:
    st.markdown(
        "The von Mises-Fisher density on the sphere S^{m-1} ⊂ R^m is "
        "C_m(κ) exp(κ μᵀz), C_m(κ) = κ^{m/2-1} / ((2π)^{m/2} I_{m/2-1}(κ)). κ = 0 is the uniform "
        "distribution; as κ grows the samples gather around μ (the post shows κ = 0, 1 and 100 with "
        "μ = (1, 0, 0)). The samples come from the VAE's own sampler.")
    c1, c2 = st.columns([1, 3])
    preset = c1.radio("κ preset", ["0", "1", "100", "custom"], index=1, key="vmf_preset", horizontal=True)
    kappa = float(preset) if preset != "custom" else c1.slider("κ", 0.0, 200.0, 10.0, 0.5, key="vmf_kappa")
    n = c1.slider("samples", 100, 5000, 1000, 100, key="vmf_n")
    seed = c1.number_input("seed", 0, 10_000, 0, key="vmf_seed")
    try:
        c2.plotly_chart(vmf(kappa, int(n), int(seed)), key="vmf_chart")
    except (CCVAEError, ValueError, ImportError) as e:
        common.error("Cannot sample the vMF", e)

with tabs[1]:
    st.markdown(
        "On the circle (m = 2) the vMF is the von Mises density exp(κ cos(θ − μ)) / (2π I₀(κ)). κ acts "
        "like an inverse variance: the density depends only on the angle to μ.")
    c1, c2 = st.columns([1, 3])
    mu = c1.slider("μ (deg)", -180.0, 180.0, 0.0, 1.0, key="vm_mu")
    kappa_vm = c1.slider("κ", 0.0, 50.0, 2.0, 0.1, key="vm_kappa")
    c2.plotly_chart(von_mises(mu, kappa_vm, 0), key="vm_chart")

with tabs[2]:
    st.markdown(
        "The wrapped normal G(μ, Σ) on the hyperboloid (Nagano et al. 2019): draw v ~ N(0, Σ) in the "
        "tangent space at the origin, carry it to μ by parallel transport, and follow the geodesic "
        "(exp map). Shown on the Poincaré disc; contours are the density per unit disc area. Far from "
        "the origin the same Σ looks smaller on the disc: hyperbolic space has more room there.")
    c1, c2 = st.columns([1, 3])
    distance = c1.slider("μ: distance from the origin", 0.0, 4.0, 1.0, 0.05, key="wn_distance")
    angle = c1.slider("μ: direction (deg)", -180.0, 180.0, 30.0, 1.0, key="wn_angle")
    s1 = c1.slider("σ₁", 0.05, 2.0, 0.5, 0.05, key="wn_s1")
    s2 = c1.slider("σ₂", 0.05, 2.0, 0.5, 0.05, key="wn_s2")
    try:
        c2.plotly_chart(wrapped(distance, angle, s1, s2, 0), key="wn_chart")
    except (CCVAEError, ValueError, ImportError) as e:
        common.error("Cannot sample the wrapped normal", e)

with tabs[3]:
    st.markdown(
        "In high dimension the norm of a standard normal vector concentrates: |x|/√d → 1 with spread "
        "about 1/√(2d). The Gaussian prior then puts almost all its mass on a thin shell — a 'soap "
        "bubble' — and looks like a uniform distribution on a sphere. The post's puzzle: of the two "
        "right-hand panels (two coordinates each), one is Gaussian and one is uniform on S^{d-1}; for "
        "large d you cannot tell which. (A is the Gaussian, divided by √d; B is the sphere.)")
    dim = st.select_slider("dimension d", [1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000], value=100, key="bubble_d")
    st.plotly_chart(bubble(int(dim), 0), key="bubble_chart")
