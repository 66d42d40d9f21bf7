"""The post's distribution figures, made interactive (the "Distributions" page).

Each ``*_figure`` function draws samples with ``ccvae.distributions`` (or torch's
own von Mises) under a fixed seed and returns a plotly figure:

- :func:`vmf_figure`: von Mises-Fisher samples on S^2, mean direction mu, for a
  concentration kappa (the post shows kappa = 0, 1 and 100 with mu = (1, 0, 0));
  kappa = 0 is the uniform distribution on the sphere.
- :func:`von_mises_figure`: the von Mises density on the circle,
  f(theta) = exp(kappa cos(theta - mu)) / (2 pi I_0(kappa)), with a histogram of samples.
- :func:`wrapped_normal_figure`: wrapped-normal samples on H^2 shown on the
  Poincare disc, with the density drawn as contours.
- :func:`soap_bubble_figure`: norms of d-dimensional standard normal samples,
  |x| / sqrt(d), against the chi density; they concentrate at 1 as d grows (the
  "soap bubble"), so in high dimension a Gaussian looks like a sphere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from .latent_plots import sphere_wireframe

__all__ = ["vmf_samples", "vmf_figure", "von_mises_density", "von_mises_figure",
           "wrapped_normal_samples", "wrapped_normal_figure", "gaussian_norms", "scaled_chi_density",
           "soap_bubble_figure"]


def _unit(v: Sequence[float]) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=torch.float64)
    n = t.norm()
    if not torch.isfinite(n) or n == 0:
        raise ValueError(f"mu must be a non-zero finite vector, got {list(v)!r}")
    return t / n


# -- von Mises-Fisher on S^2 ---------------------------------------------------------------

def vmf_samples(kappa: float, n: int = 1000, mu: Sequence[float] = (1.0, 0.0, 0.0),
                seed: int = 0) -> np.ndarray:
    """n samples of vMF(mu, kappa) on S^2, shape (n, 3); kappa = 0 is uniform."""
    if not (isinstance(kappa, (int, float)) and math.isfinite(kappa) and kappa >= 0):
        raise ValueError(f"kappa must be a finite number >= 0, got {kappa!r}")
    mu_t = _unit(mu)
    if mu_t.numel() != 3:
        raise ValueError(f"mu must have 3 coordinates (a direction in R^3), got {mu_t.numel()}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if kappa == 0:
            from ..distributions.hyperspherical_uniform import HypersphericalUniform
            z = HypersphericalUniform(2, dtype=torch.float64).sample((n,))
        else:
            from ..distributions.von_mises_fisher import VonMisesFisher
            z = VonMisesFisher(mu_t, torch.tensor(float(kappa), dtype=torch.float64)).sample((n,))
    return z.reshape(n, 3).numpy()


def vmf_figure(kappa: float, n: int = 1000, mu: Sequence[float] = (1.0, 0.0, 0.0), seed: int = 0,
               height: int = 460) -> go.Figure:
    z = vmf_samples(kappa, n, mu, seed)
    m = _unit(mu).numpy()
    fig = go.Figure([
        go.Scatter3d(x=z[:, 0], y=z[:, 1], z=z[:, 2], mode="markers", name="samples",
                     marker=dict(size=2.5, color=z @ m, colorscale="Viridis", cmin=-1, cmax=1,
                                 colorbar=dict(title=dict(text="μ·z"), thickness=12))),
        sphere_wireframe(),
        go.Scatter3d(x=[0, 1.25 * m[0]], y=[0, 1.25 * m[1]], z=[0, 1.25 * m[2]], mode="lines+text",
                     text=["", "μ"], line=dict(color="#d62728", width=6), name="μ", hoverinfo="skip"),
    ])
    axis = dict(range=[-1.3, 1.3], showbackground=False, showticklabels=False, title="")
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=30, b=0), showlegend=False,
                      title=dict(text=f"vMF samples on S², κ = {kappa:g}", x=0.01),
                      scene=dict(xaxis=axis, yaxis=axis, zaxis=axis, aspectmode="cube"))
    return fig


# -- von Mises on the circle ------------------------------------------------------------------

def von_mises_density(theta_deg, mu_deg: float, kappa: float) -> np.ndarray:
    """f(theta) = exp(kappa cos(theta - mu)) / (2 pi I_0(kappa)) per radian.

    Computed as exp(kappa (cos(theta - mu) - 1)) / (2 pi i0e(kappa)) with the
    exponentially scaled Bessel function i0e(k) = e^-k I_0(k), which neither
    overflows for large kappa nor loses the ratio to cancellation.
    """
    from scipy.special import i0e

    if not (math.isfinite(kappa) and kappa >= 0):
        raise ValueError(f"kappa must be a finite number >= 0, got {kappa!r}")
    t = np.radians(np.asarray(theta_deg, dtype=np.float64) - mu_deg)
    return np.exp(kappa * (np.cos(t) - 1.0)) / (2 * np.pi * i0e(kappa))


def von_mises_figure(mu_deg: float = 0.0, kappa: float = 2.0, n: int = 2000, seed: int = 0,
                     height: int = 420) -> go.Figure:
    theta = np.linspace(-180, 180, 721)
    dens = von_mises_density(theta, mu_deg, kappa)
    bins = 36
    if kappa > 0:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            vm = torch.distributions.VonMises(torch.tensor(math.radians(mu_deg), dtype=torch.float64),
                                              torch.tensor(float(kappa), dtype=torch.float64))
            samples = np.degrees(vm.sample((n,)).numpy())
    else:
        samples = np.random.default_rng(seed).uniform(-180, 180, n)
    counts, edges = np.histogram(np.mod(samples + 180, 360) - 180, bins=bins, range=(-180, 180))
    width = np.radians(360 / bins)
    hist_density = counts / (n * width)  # per radian, comparable with the curve
    centres = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure([
        go.Barpolar(r=hist_density, theta=centres, width=360 / bins, name=f"{n} samples",
                    marker_color="rgba(31,119,180,0.45)"),
        go.Scatterpolar(r=dens, theta=theta, mode="lines", name="density", line=dict(color="#d62728", width=3)),
    ])
    fig.update_layout(height=height, margin=dict(l=30, r=30, t=40, b=30),
                      title=dict(text=f"von Mises on the circle, μ = {mu_deg:g}°, κ = {kappa:g}", x=0.01),
                      polar=dict(angularaxis=dict(direction="counterclockwise", rotation=0)),
                      legend=dict(orientation="h", y=-0.1))
    return fig


# -- wrapped normal on H^2 ---------------------------------------------------------------------

def _disc_mu(mu_distance: float, mu_angle_deg: float) -> torch.Tensor:
    from ..latent_tools import disc_point, disc_to_hyperboloid
    return disc_to_hyperboloid(disc_point(mu_distance, mu_angle_deg))


def wrapped_normal_samples(mu_distance: float, mu_angle_deg: float, sigma: Sequence[float] | float,
                           n: int = 1500, seed: int = 0) -> np.ndarray:
    """Samples of G(mu, diag sigma^2) on H^2 as Poincare-disc points (n, 2); mu is
    given by its hyperbolic distance from the origin and a direction angle."""
    from ..distributions.wrapped_normal import WrappedNormal
    from ..latent_tools import hyperboloid_to_disc

    mu = _disc_mu(mu_distance, mu_angle_deg)
    scale = torch.as_tensor(sigma, dtype=torch.float64).expand(2)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        z = WrappedNormal(mu, scale).sample((n,))
    return hyperboloid_to_disc(z).numpy()


def wrapped_normal_figure(mu_distance: float = 1.0, mu_angle_deg: float = 30.0,
                          sigma: Sequence[float] | float = (0.5, 0.5), n: int = 1500, seed: int = 0,
                          grid: int = 121, height: int = 480) -> go.Figure:
    """Samples and density contours of a wrapped normal on the Poincare disc.

    The contours show the density per unit *disc* area: the density w.r.t. the
    hyperbolic volume times the disc's area factor (2 / (1 - |p|^2))^2, so they
    match how crowded the drawn samples look.
    """
    from ..distributions.wrapped_normal import WrappedNormal
    from ..latent_tools import hyperboloid_to_disc

    p = wrapped_normal_samples(mu_distance, mu_angle_deg, sigma, n, seed)
    mu = _disc_mu(mu_distance, mu_angle_deg)
    scale = torch.as_tensor(sigma, dtype=torch.float64).expand(2)
    xs = np.linspace(-0.995, 0.995, grid)
    xx, yy = np.meshgrid(xs, xs)
    pts = torch.from_numpy(np.stack([xx, yy], -1))
    inside = pts.norm(dim=-1) < 0.995
    from ..latent_tools import disc_to_hyperboloid
    z = disc_to_hyperboloid(torch.where(inside[..., None], pts, torch.zeros_like(pts)))
    log_q = WrappedNormal(mu, scale).log_prob(z)
    r2 = (pts ** 2).sum(-1)
    # |p| < 0.995 inside, so 1 - |p|^2 >= 0.0099: the area factor stays finite.
    log_area = 2 * torch.log(2 / (1 - r2.clamp(max=0.995 ** 2)))
    dens = torch.where(inside, torch.exp(log_q + log_area), torch.full_like(log_q, float("nan")))
    m = hyperboloid_to_disc(mu).numpy()
    fig = go.Figure([
        go.Contour(x=xs, y=xs, z=dens.numpy(), colorscale="Blues", showscale=False, opacity=0.6,
                   contours=dict(coloring="fill", showlines=False), hoverinfo="skip", name="density"),
        go.Scatter(x=p[:, 0], y=p[:, 1], mode="markers", marker=dict(size=3, color="#1f77b4", opacity=0.6),
                   name="samples"),
        go.Scatter(x=[m[0]], y=[m[1]], mode="markers", marker=dict(symbol="x", size=12, color="#d62728"),
                   name="μ"),
    ])
    s = scale.tolist()
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), showlegend=False,
                      title=dict(text=f"wrapped normal on H², d(o, μ) = {mu_distance:g}, σ = ({s[0]:g}, {s[1]:g})", x=0.01),
                      xaxis=dict(range=[-1.05, 1.05], showgrid=False, zeroline=False),
                      yaxis=dict(range=[-1.05, 1.05], showgrid=False, zeroline=False, scaleanchor="x", scaleratio=1),
                      shapes=[dict(type="circle", xref="x", yref="y", x0=-1, y0=-1, x1=1, y1=1,
                                   line=dict(color="black", width=1.5))])
    return fig


# -- the soap bubble --------------------------------------------------------------------------------

def gaussian_norms(dim: int, n: int = 4000, seed: int = 0) -> np.ndarray:
    """|x| / sqrt(dim) for n samples x ~ N(0, I_dim)."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, int(dim), generator=g, dtype=torch.float64)
    return (x.norm(dim=1) / math.sqrt(dim)).numpy()


def scaled_chi_density(r, dim: int) -> np.ndarray:
    """Density of |x| / sqrt(d) for x ~ N(0, I_d): sqrt(d) chi_d(r sqrt(d)), with
    log chi_d(s) = (d - 1) log s - s^2 / 2 - (d/2 - 1) log 2 - log Gamma(d/2),
    evaluated in logs (the factors overflow separately for large d)."""
    from scipy.special import gammaln

    r = np.asarray(r, dtype=np.float64)
    s = r * math.sqrt(dim)
    with np.errstate(divide="ignore"):
        # (d - 1) log s at s = 0: 0 for d = 1 (s^0 = 1), -inf (density 0) for d > 1
        power = (dim - 1) * np.log(s) if dim > 1 else np.zeros_like(s)
        log_f = power - s ** 2 / 2 - (dim / 2 - 1) * math.log(2) - gammaln(dim / 2)
    return np.exp(log_f) * math.sqrt(dim)


def soap_bubble_figure(dim: int = 100, n: int = 4000, seed: int = 0, height: int = 440) -> go.Figure:
    """Left: histogram of |x|/sqrt(d) with the exact density sqrt(d) chi_d(r sqrt(d)).
    Right: two coordinates of Gaussian samples (divided by sqrt(d)) beside two
    coordinates of uniform samples on the unit sphere S^(d-1): alike for large d."""
    r = gaussian_norms(dim, n, seed)
    grid = np.linspace(0, max(2.0, float(r.max()) * 1.05), 400)
    exact = scaled_chi_density(grid, dim)
    g = torch.Generator().manual_seed(seed + 1)
    gauss = torch.randn(n, int(dim), generator=g, dtype=torch.float64) / math.sqrt(dim)
    sphere = torch.randn(n, int(dim), generator=g, dtype=torch.float64)
    sphere = sphere / sphere.norm(dim=1, keepdim=True)
    fig = make_subplots(rows=1, cols=3, column_widths=[0.46, 0.27, 0.27],
                        subplot_titles=(f"|x|/√d for x ~ N(0, I), d = {dim}", "sample A", "sample B"))
    fig.add_trace(go.Histogram(x=r, histnorm="probability density", nbinsx=60, name="samples",
                               marker_color="rgba(31,119,180,0.6)"), row=1, col=1)
    fig.add_trace(go.Scatter(x=grid, y=exact, mode="lines", name="exact (χ_d)",
                             line=dict(color="#d62728", width=2)), row=1, col=1)
    fig.add_vline(x=1.0, line=dict(color="black", dash="dot"), row=1, col=1)
    # A: the Gaussian, B: the sphere (said in the page text, as the post's puzzle).
    for col, pts in ((2, gauss), (3, sphere)):
        fig.add_trace(go.Scattergl(x=pts[:, 0].numpy(), y=pts[:, 1].numpy(), mode="markers",
                                   marker=dict(size=3, opacity=0.5), showlegend=False), row=1, col=col)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="h", y=-0.15))
    return fig
