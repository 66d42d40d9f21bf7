"""Latent geometries: how encoder features become q(z|x), what the prior is, and
how the KL term is computed. One class per geometry.

===========  ==================  =====================  ==========================
geometry     posterior q(z|x)    prior p(z)             KL(q || p)
===========  ==================  =====================  ==========================
euclidean    N(mu, diag s^2)     N(0, I)                closed form
sphere       vMF(mu, kappa)      uniform on S^d         closed form (registered)
             (or another SPHERE_POSTERIORS family)
hyperbolic   WrappedNormal(mu,s) WrappedNormal(o, I)    Monte Carlo, exact log q - log p
===========  ==================  =====================  ==========================

``latent_dim`` is always the dimension of the manifold: a 2-D sphere is S^2 in R^3
and a 2-D hyperbolic latent is H^2 in R^3. The decoder reads the ambient
coordinates (``ambient_dim``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, Independent, Normal, kl_divergence

from ..distributions.hyperspherical_uniform import HypersphericalUniform
from ..distributions.power_spherical import PowerSpherical
from ..distributions.vmf_svae import SvaeVonMisesFisher
from ..distributions.von_mises_fisher import VonMisesFisher
from ..distributions.wrapped_normal import WrappedNormal
from ..distributions.wrapped_normal_fused import origin_expmap
from ..errors import ConfigError
from ..manifolds import Euclidean, Lorentz, Manifold, Sphere

#: Floor on the posterior std of the Gaussian and wrapped normal. Below it
#: log det Sigma -> -inf and the KL gradient explodes; 1e-4 is far below any
#: scale a trained VAE uses (typically 1e-2 .. 1).
MIN_SCALE = 1e-4
#: Floor on the vMF concentration, as in Davidson et al.'s reference code:
#: a posterior with kappa < 1 is almost uniform and carries next to no
#: information, and the floor keeps early training away from that plateau.
MIN_CONCENTRATION = 1.0
#: The vMF concentration a fresh encoder starts at (the head's bias is set so that
#: softplus(bias) + MIN_CONCENTRATION = INITIAL_CONCENTRATION; its weights start as
#: usual). With the default bias (0), kappa starts near 1.7: on S^2 that posterior
#: is almost uniform (mean cosine 0.46), the decoder learns to ignore z before the
#: encoder can sharpen it, and on LFW 10 of 20 sphere cells collapsed (KL < 0.2
#: nats, ELBO -1253 against -1220 for the plane). Starting at kappa = 10 (mean
#: cosine 0.9 on S^2) the 2-D, 2-layer LFW model reached -1221.6 instead of -1249.5.
INITIAL_CONCENTRATION = 10.0


class Latent(nn.Module):
    """Base class. Subclasses set ``geometry`` and implement the hooks."""

    geometry = "base"
    closed_form_kl = True

    def __init__(self, in_features: int, dim: int):
        super().__init__()
        if int(dim) != dim or dim < 1:
            raise ConfigError(f"latent_dim must be a positive integer, got {dim!r}")
        self.dim = int(dim)
        self.in_features = in_features
        self.manifold = self.manifold_cls(self.dim)

    def _tangent_gaussian_heads(self) -> None:
        """Linear heads for a location (in R^dim) and a positive diagonal scale."""
        self.loc_head = nn.Linear(self.in_features, self.dim)
        self.scale_head = nn.Linear(self.in_features, self.dim)

    #: the manifold class; an instance of dimension ``dim`` is built once, in __init__.
    manifold_cls: type[Manifold] = Euclidean

    @property
    def ambient_dim(self) -> int:
        """Coordinates of a latent point (what the decoder reads)."""
        return self.manifold.ambient_dim

    # -- to implement -------------------------------------------------------
    def posterior(self, h: torch.Tensor) -> Distribution:
        raise NotImplementedError

    def prior(self, batch_shape: torch.Size, like: torch.Tensor) -> Distribution:
        raise NotImplementedError

    def location(self, q: Distribution) -> torch.Tensor:
        """The point on the manifold that summarises q: its mode (the Normal's and
        wrapped normal's mean, the vMF's mean direction). The latent explorer and
        k-NN read these."""
        raise NotImplementedError

    # -- shared --------------------------------------------------------------
    def sample_and_kl(self, q: Distribution, n_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n_samples`` reparameterised draws z (S, *batch, ambient) and KL(q || prior)."""
        z = q.rsample((n_samples,))
        return z, self.kl(q, z)

    def kl(self, q: Distribution, z: torch.Tensor | None = None) -> torch.Tensor:
        """KL(q || prior), shape q.batch_shape.

        Closed form where it exists; otherwise the Monte Carlo estimate
        mean_s [log q(z_s) - log p(z_s)] on the samples ``z`` (S, *batch, ambient)
        that the reconstruction term used (unbiased, and exact in expectation).
        """
        p = self.prior(q.batch_shape, like=self.location(q))
        if self.closed_form_kl:
            return kl_divergence(q, p)
        if z is None:
            z = q.rsample((1,))
        return (q.log_prob(z) - p.log_prob(z)).mean(0)


class EuclideanLatent(Latent):
    geometry = "euclidean"
    manifold_cls = Euclidean

    def __init__(self, in_features: int, dim: int):
        super().__init__(in_features, dim)
        self._tangent_gaussian_heads()


    def posterior(self, h):
        loc = self.loc_head(h)
        scale = F.softplus(self.scale_head(h)) + MIN_SCALE
        return Independent(Normal(loc, scale, validate_args=False), 1, validate_args=False)

    def prior(self, batch_shape, like):
        zeros = like.new_zeros((*batch_shape, self.dim))
        return Independent(Normal(zeros, torch.ones_like(zeros), validate_args=False), 1,
                           validate_args=False)

    def location(self, q):
        return q.base_dist.loc


#: The sphere's posterior families, by the name a config stores. Each has a closed-form
#: KL to the uniform prior (registered), so the ELBO's KL term is exact for all three.
SPHERE_POSTERIORS = {
    # the von Mises-Fisher with this package's exact sampler and unbiased kappa-gradients
    "vmf": VonMisesFisher,
    # the same density with s-vae-pytorch's BIASED sampler and kappa-gradient, to
    # measure what they cost (Davidson et al.'s published S-VAE numbers used it)
    "vmf_svae": SvaeVonMisesFisher,
    # De Cao & Aziz (2020): no rejection step, reparameterised through Beta variates
    "power_spherical": PowerSpherical,
}


#: How a person reads each name (dashboard menus).
SPHERE_POSTERIOR_LABELS = {
    "vmf": "von Mises-Fisher (exact sampler)",
    "vmf_svae": "von Mises-Fisher, s-vae's biased sampler (ablation)",
    "power_spherical": "Power Spherical (De Cao & Aziz 2020)",
}


def check_sphere_settings(geometry: str, name: str,
                           initial_concentration: float = INITIAL_CONCENTRATION) -> None:
    """ConfigError unless ``name`` is a known sphere posterior and
    ``initial_concentration`` a number above ``MIN_CONCENTRATION``, and unless both are
    at their defaults off the sphere."""
    if name not in SPHERE_POSTERIORS:
        raise ConfigError(f"unknown sphere posterior {name!r}; choose one of {', '.join(SPHERE_POSTERIORS)}")
    if name != "vmf" and geometry != "sphere":
        raise ConfigError(f"sphere posterior {name!r} needs the sphere geometry, not {geometry!r}")
    k0 = initial_concentration
    if isinstance(k0, bool) or not isinstance(k0, (int, float)) or not MIN_CONCENTRATION < k0 < 1e6:
        raise ConfigError(f"initial concentration must be a number above {MIN_CONCENTRATION:g} (the floor) "
                          f"and below 1e6, got {k0!r}")
    if k0 != INITIAL_CONCENTRATION and geometry != "sphere":
        raise ConfigError(f"an initial concentration needs the sphere geometry, not {geometry!r}")


class SphereLatent(Latent):
    """vMF posterior on S^d (in R^{d+1}), uniform prior; or another family of
    ``SPHERE_POSTERIORS`` with the same (loc, concentration) parameters."""

    geometry = "sphere"
    manifold_cls = Sphere

    def __init__(self, in_features: int, dim: int, posterior: str = "vmf",
                 initial_concentration: float = INITIAL_CONCENTRATION):
        super().__init__(in_features, dim)
        check_sphere_settings(self.geometry, posterior, initial_concentration)
        self.posterior_cls = SPHERE_POSTERIORS[posterior]
        self.loc_head = nn.Linear(in_features, dim + 1)
        self.concentration_head = nn.Linear(in_features, 1)
        with torch.no_grad():  # softplus^-1(k) = log(expm1(k)), see INITIAL_CONCENTRATION
            self.concentration_head.bias.fill_(math.log(math.expm1(initial_concentration - MIN_CONCENTRATION)))

    def posterior(self, h):
        raw = self.loc_head(h)
        # 1e-12 only guards 0/0 for an all-zero output; any real direction is
        # normalised exactly.
        loc = raw / torch.linalg.vector_norm(raw, dim=-1, keepdim=True).clamp_min(1e-12)
        kappa = F.softplus(self.concentration_head(h)).squeeze(-1) + MIN_CONCENTRATION
        return self.posterior_cls(loc, kappa, validate_args=False)

    def prior(self, batch_shape, like):
        return HypersphericalUniform(self.dim, batch_shape=batch_shape, dtype=like.dtype,
                                     device=like.device, validate_args=False)

    def location(self, q):
        return q.loc


class HyperbolicLatent(Latent):
    """Wrapped normal on H^d (Lorentz model in R^{d+1}); prior at the origin.

    The encoder outputs a tangent vector v at the origin; mu = exp_o((0, v)).
    """

    geometry = "hyperbolic"
    manifold_cls = Lorentz
    closed_form_kl = False

    def __init__(self, in_features: int, dim: int):
        super().__init__(in_features, dim)
        self._tangent_gaussian_heads()


    def posterior(self, h):
        # exp at the origin (no general transport needed), as one autograd node: the
        # same values as self.manifold.expmap0 of (0, v)
        loc = origin_expmap(self.loc_head(h))
        scale = F.softplus(self.scale_head(h)) + MIN_SCALE
        return WrappedNormal(loc, scale, validate_args=False)

    def prior(self, batch_shape, like):
        # at_origin: the same G(mu0, I), with a log_prob that skips the general log map.
        return WrappedNormal.at_origin(like.new_ones((*batch_shape, self.dim)), validate_args=False)

    def sample_and_kl(self, q, n_samples):
        # log q(z) comes with the draw (no inverse of the sampling map): same values
        # and gradients as q.log_prob(q.rsample()), at a fraction of the cost.
        z, log_q = q.rsample_with_log_prob((n_samples,))
        p = self.prior(q.batch_shape, like=q.loc)
        return z, (log_q - p.log_prob(z)).mean(0)

    def location(self, q):
        return q.loc


GEOMETRIES = {
    "euclidean": EuclideanLatent,
    "sphere": SphereLatent,
    "hyperbolic": HyperbolicLatent,
}


def make_latent(geometry: str, in_features: int, dim: int, sphere_posterior: str = "vmf",
                initial_concentration: float = INITIAL_CONCENTRATION) -> Latent:
    if geometry not in GEOMETRIES:
        raise ConfigError(
            f"unknown geometry {geometry!r}; choose one of {', '.join(GEOMETRIES)}")
    if geometry == "sphere":  # SphereLatent checks its own settings
        return SphereLatent(in_features, dim, posterior=sphere_posterior,
                            initial_concentration=initial_concentration)
    check_sphere_settings(geometry, sphere_posterior, initial_concentration)  # defaults only, here
    return GEOMETRIES[geometry](in_features, dim)
