"""The wrapped normal on hyperbolic space (Nagano et al. 2019, "A Wrapped Normal
Distribution on Hyperbolic Space for Gradient-Based Learning", ICML; their
"pseudo-hyperbolic Gaussian" G(mu, Sigma)), on the Lorentz model H^d.

Sampling (their Algorithm 1), with Sigma = diag(scale^2):

    v' ~ N(0, Sigma) in R^d,  v = (0, v') in T_{mu0} H^d,
    u = PT_{mu0 -> mu}(v) in T_mu H^d,  z = exp_mu(u).

Density (their eq. 6 and Appendix A.3): the map v' -> z is a bijection of R^d
onto H^d whose Jacobian determinant with respect to the Riemannian volume is
(sinh r / r)^(d-1), r = |u|_L = |v'| (parallel transport is an isometry, and
exp_mu stretches the d-1 directions orthogonal to u by sinh(r)/r). So

    log p(z) = log N(v'; 0, Sigma) - (d - 1) log(sinh r / r),
    v = PT_{mu -> mu0}(log_mu(z)),  r = dist(mu, z).

The density is with respect to the Riemannian volume of H^d (so that
``monte_carlo_kl`` of two wrapped normals is a true KL on H^d).

For a VAE step: ``WrappedNormal.at_origin(ones)`` is the prior G(mu0, I) with a
cheaper ``log_prob``, and ``rsample_with_log_prob`` returns samples together
with their exact log density, read off the Gaussian draw instead of inverting
the sampling map (same values and gradients as ``log_prob(rsample())``).
Both, and the prior's ``log_prob``, are single autograd nodes with hand-written
backward passes (``wrapped_normal_fused``): a VAE step spends ~130 tensor
operations on them instead of ~300.

KL divergences. KL(G(mu, Sigma) || G(mu0, I)) has no closed form; see
``ccvae.distributions.kl``: ``monte_carlo_kl`` (unbiased, from these exact log
densities) and ``tangent_kl_approximation`` (a named approximation).
``torch.distributions.kl_divergence`` of two wrapped normals deliberately
raises ``NotImplementedError`` pointing there instead of returning a
stochastic estimate: users of ``kl_divergence`` expect a deterministic, exact
value.
"""

from __future__ import annotations


import torch
from torch.distributions import Distribution, constraints, register_kl
from torch.distributions.utils import _standard_normal

from ..manifolds.base import default_rtol
from ..manifolds.lorentz import Lorentz, minkowski_inner
from .shapes import broadcast_shapes, expand_to
from .wrapped_normal_fused import _LOG_2PI, origin_log_density, wrapped_normal_sample

__all__ = ["WrappedNormal", "OnHyperboloid", "on_hyperboloid"]

class OnHyperboloid(constraints.Constraint):
    """Points of H^d in R^(d+1): x_0 > 0 and |<x, x>_L + 1| <= rtol max(1, x_0^2).

    The tolerance is relative to x_0^2 because the rounding error of <x, x>_L
    grows like x_0^2 eps (``Lorentz.contains``); the default rtol is
    sqrt(eps) of the dtype (3.5e-4 in float32, 1.5e-8 in float64), far above
    the error of any point that ``rsample`` or ``Lorentz`` maps return, and
    far below what a point that is really off the hyperboloid shows.
    """

    event_dim = 1

    def __init__(self, rtol: float | None = None):
        self.rtol = rtol
        super().__init__()

    def check(self, value: torch.Tensor) -> torch.Tensor:
        tol = default_rtol(value.dtype) if self.rtol is None else self.rtol
        x0 = value[..., 0]
        err = (minkowski_inner(value, value) + 1).abs()
        finite = torch.isfinite(value).all(-1)
        return finite & (x0 > 0) & (err <= tol * torch.clamp(x0 * x0, min=1.0))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rtol={self.rtol})"


on_hyperboloid = OnHyperboloid()


def _as_float_tensor(value: object, name: str) -> torch.Tensor:
    if isinstance(value, (bool,)) or not isinstance(value, (torch.Tensor, int, float)):
        raise ValueError(f"{name} must be a tensor or a number, got {type(value).__name__}")
    t = torch.as_tensor(value)
    if not t.is_floating_point():
        if t.is_complex():
            raise ValueError(f"{name} must be real, got {t.dtype}")
        t = t.to(torch.get_default_dtype())
    return t


class WrappedNormal(Distribution):
    """Wrapped normal G(loc, diag(scale^2)) on H^d (Lorentz model).

    Args:
        loc: (..., d+1) points of H^d (d >= 1); the mode of the distribution.
        scale: (..., d) standard deviations in the tangent space at the origin
            (> 0, finite), or a number used for every dimension.
        validate_args: torch.distributions convention (None: the global default).
            When on, ``scale`` must be positive and finite and ``loc`` on the
            hyperboloid (see ``OnHyperboloid`` for the tolerance), and values
            given to ``log_prob`` must lie on it. Shapes are always checked.

    ``batch_shape`` is the broadcast of loc.shape[:-1] and scale.shape[:-1];
    ``event_shape`` is (d+1,).
    """

    arg_constraints = {"loc": on_hyperboloid, "scale": constraints.positive}
    support = on_hyperboloid
    has_rsample = True

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor | float,
                 validate_args: bool | None = None):
        loc = _as_float_tensor(loc, "loc")
        scale = _as_float_tensor(scale, "scale")
        if loc.dim() == 0 or loc.shape[-1] < 2:
            raise ValueError(
                "loc must have shape (..., d+1) with d >= 1 (a point of H^d in R^(d+1)), "
                f"got shape {tuple(loc.shape)}"
            )
        d = loc.shape[-1] - 1
        if scale.dim() == 0:
            scale = scale.expand(d)
        if scale.shape[-1] != d:
            raise ValueError(
                f"scale must have shape (..., {d}) for loc of shape (..., {d + 1}) "
                f"(one std per tangent dimension of H^{d}), got shape {tuple(scale.shape)}"
            )
        try:
            batch_shape = broadcast_shapes(loc.shape[:-1], scale.shape[:-1])
        except RuntimeError:
            raise ValueError(
                f"batch shapes of loc {tuple(loc.shape)} and scale {tuple(scale.shape)} "
                "do not broadcast"
            ) from None
        dtype = torch.promote_types(loc.dtype, scale.dtype)
        self.loc = expand_to(loc.to(dtype), (*batch_shape, d + 1))
        self.scale = expand_to(scale.to(dtype=dtype, device=loc.device), (*batch_shape, d))
        self.manifold = Lorentz(d)

        validate = Distribution._validate_args if validate_args is None else bool(validate_args)
        if validate:
            self._check_parameters()
        # Our own checks above give the clearer messages; torch's generic pass
        # would repeat them, so it is skipped and the flag set afterwards.
        super().__init__(batch_shape, torch.Size([d + 1]), validate_args=False)
        self._validate_args = validate

    def _check_parameters(self) -> None:
        scale_ok = torch.isfinite(self.scale) & (self.scale > 0)
        if not bool(scale_ok.all()):
            bad = self.scale[~scale_ok]
            raise ValueError(
                "scale must be positive and finite; found invalid values "
                f"{bad.flatten()[:5].tolist()}"
            )
        loc_ok = on_hyperboloid.check(self.loc)
        if not bool(loc_ok.all()):
            bad = self.loc[~loc_ok]
            err = (minkowski_inner(bad, bad) + 1).abs().flatten()[:3].tolist()
            raise ValueError(
                "loc must lie on the hyperboloid <x, x>_L = -1, x_0 > 0 "
                f"(relative tolerance {on_hyperboloid.rtol or default_rtol(self.loc.dtype):.1e} "
                f"of max(1, x_0^2)); found points with |<x, x>_L + 1| = {err} "
                "(Lorentz(d).projx maps a point onto it)"
            )

    # -- summaries ---------------------------------------------------------------
    @property
    def mode(self) -> torch.Tensor:
        """loc: both N(v') and (sinh r / r)^-(d-1) are largest at v' = 0.

        loc is also the Frechet mean: the distribution is invariant under the
        geodesic symmetry through loc (v' -> -v'), an isometry whose only fixed
        point is loc, and the Frechet mean on H^d is unique.
        """
        return self.loc

    @property
    def mean(self) -> torch.Tensor:
        raise NotImplementedError(
            "WrappedNormal has no closed-form mean in ambient coordinates (it would lie "
            "off H^d); .loc is its mode and its Riemannian (Frechet) mean"
        )

    @property
    def variance(self) -> torch.Tensor:
        raise NotImplementedError(
            "WrappedNormal has no closed-form variance; .scale is the std in the tangent "
            "space at the origin"
        )

    @classmethod
    def at_origin(cls, scale: torch.Tensor, validate_args: bool | None = None) -> "WrappedNormal":
        """G(mu0, diag(scale^2)) centred at the origin of H^d, d = scale.shape[-1].

        The same distribution as ``WrappedNormal(origin, scale)``, but ``log_prob``
        knows that loc is the origin and skips the general log map: with
        n = |z_{1:}|, r = dist(mu0, z) = asinh(n) and v' = r z_{1:} / n
        (exact, ~2.5x fewer tensor operations). Use it for the prior G(mu0, I).
        """
        scale = _as_float_tensor(scale, "scale")
        if scale.dim() == 0:
            raise ValueError("scale must have shape (..., d) to define the dimension d of H^d, "
                             "got a scalar")
        d = scale.shape[-1]
        if d < 1:
            raise ValueError(f"scale must have a last dimension d >= 1, got shape {tuple(scale.shape)}")
        loc = Lorentz(d).origin(dtype=scale.dtype, device=scale.device)
        new = cls(loc, scale, validate_args=validate_args)
        new._at_origin = True
        return new

    _at_origin = False

    # -- sampling ------------------------------------------------------------------
    def _standard_normal(self, sample_shape) -> torch.Tensor:
        """eps ~ N(0, I) of shape sample + batch + (d,)."""
        shape = self._extended_shape(sample_shape)[:-1] + (self.manifold.dim,)
        return _standard_normal(shape, dtype=self.loc.dtype, device=self.loc.device)

    def rsample(self, sample_shape: torch.Size | tuple = torch.Size()) -> torch.Tensor:
        """Reparameterised samples, shape sample_shape + batch_shape + (d+1,).

        z = exp_mu(PT_{mu0->mu}((0, eps * scale))), r = |eps * scale| = |u|_L exactly
        (PT is an isometry): one autograd node (``wrapped_normal_fused``).
        """
        return wrapped_normal_sample(self.loc, self.scale, self._standard_normal(sample_shape))[0]

    def rsample_with_log_prob(self, sample_shape: torch.Size | tuple = torch.Size()
                              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, log_prob(z)) for reparameterised samples z, without inverting the sampling map.

        For z = f_theta(eps) the log density is known from eps directly:
            log q(z) = log N(eps * scale; 0, Sigma) - (d-1) log(sinh r / r),  r = |eps * scale|,
        and as a function of the parameters (eps fixed) it is the same function
        as ``log_prob(rsample())``, so gradients are identical. It is exact and
        cheaper (no log map), the form a VAE's Monte Carlo KL wants.
        """
        return wrapped_normal_sample(self.loc, self.scale, self._standard_normal(sample_shape))

    def sample(self, sample_shape: torch.Size | tuple = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    # -- density ---------------------------------------------------------------------
    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log N(v'; 0, Sigma) - (d-1) log(sinh r / r), density w.r.t. the volume of H^d.

        v' = PT_{mu->mu0}(log_mu(z))_{1:} and r = dist(mu, z) (fused and stable:
        ``Lorentz._logmap_transp0back_spatial``). log(sinh r / r) is taken as
        -log(r / sinh r) of the factor the log map already computed: absolute
        error ~eps, which is what a log density needs.
        """
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"value must be a torch.Tensor, got {type(value).__name__}")
        if value.dim() == 0 or value.shape[-1] != self.manifold.dim + 1:
            raise ValueError(
                f"value must have last dimension {self.manifold.dim + 1} (points of "
                f"H^{self.manifold.dim}), got shape {tuple(value.shape)}"
            )
        if self._validate_args:
            self._validate_sample(value)
        d = self.manifold.dim
        if self._at_origin:
            # dist(mu0, z) = asinh(|z_{1:}|) and log_mu0(z) = r z_{1:} / |z_{1:}|; the
            # transport from mu0 to itself is the identity. One autograd node.
            return origin_log_density(value[..., 1:], self.scale)
        v, r, k = self.manifold._logmap_transp0back_spatial(self.loc, value)
        log_normal = (
            -0.5 * ((v / self.scale) ** 2).sum(-1)
            - torch.log(self.scale).sum(-1)
            - 0.5 * d * _LOG_2PI
        )
        if d == 1:
            return log_normal
        return log_normal + (d - 1) * torch.log(k.squeeze(-1))

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(WrappedNormal, _instance)
        batch_shape = torch.Size(batch_shape)
        d = self.manifold.dim
        new.loc = self.loc.expand(*batch_shape, d + 1)
        new.scale = self.scale.expand(*batch_shape, d)
        new.manifold = self.manifold
        new._at_origin = self._at_origin
        super(WrappedNormal, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new


@register_kl(WrappedNormal, WrappedNormal)
def _kl_wrapped_normal(p: WrappedNormal, q: WrappedNormal) -> torch.Tensor:
    """Not registered as a value: KL between wrapped normals has no closed form."""
    raise NotImplementedError(
        "KL(WrappedNormal || WrappedNormal) has no closed form. Use "
        "ccvae.distributions.kl.monte_carlo_kl(q, p, n_samples=...) for an unbiased "
        "Monte Carlo estimate from the exact log densities, or "
        "ccvae.distributions.kl.tangent_kl_approximation(q) for the tangent-space "
        "approximation against G(mu0, I)."
    )
