"""KL divergences without a closed form.

- ``monte_carlo_kl(q, p)``: the unbiased estimate mean_s [log q(z_s) - log p(z_s)],
  z_s ~ q, for any pair of distributions on the same space with exact
  ``log_prob`` (and ``rsample`` for gradients). This is the KL term of the
  hyperbolic VAE (shared/DESIGN.md: "Estimate it by Monte Carlo from the two
  exact log densities").
- ``tangent_kl_approximation(q)``: 0.5 (tr Sigma + d(mu, mu0)^2 - d - log det Sigma)
  for a ``WrappedNormal`` q against the prior G(mu0, I). It is only an
  APPROXIMATION of KL(G(mu, Sigma) || G(mu0, I)): it is the Gaussian KL
  between the tangent-space pictures of the two distributions and ignores the
  (sinh r / r)^(d-1) volume change of both densities. It is exact when mu is
  the origin (both distributions are then images of Gaussians under the same
  bijection exp_mu0) and drifts away from the true KL as mu moves out. Never
  used by default.
"""

from __future__ import annotations

import numbers

import torch
from torch.distributions import Distribution

from .wrapped_normal import WrappedNormal

__all__ = ["monte_carlo_kl", "tangent_kl_approximation"]


def monte_carlo_kl(q: Distribution, p: Distribution, n_samples: int = 1,
                   z: torch.Tensor | None = None) -> torch.Tensor:
    """Monte Carlo estimate of KL(q || p) = E_q[log q(z) - log p(z)].

    Args:
        q, p: distributions over the same space (same event shape, and the
            same base measure for their densities); their batch shapes broadcast.
        n_samples: number of samples drawn from q (with ``rsample`` when q has
            it, so the estimate is differentiable in q's parameters; with
            ``rsample_with_log_prob`` when q has that, which gives log q(z)
            without recomputing it from z).
        z: samples to use instead of drawing, shape (*S, *q.batch_shape,
            *q.event_shape), e.g. the ones the reconstruction term already used;
            the mean is taken over the leading sample axes S (none: a single
            sample). Leave ``n_samples`` at 1 when passing z.

    Returns:
        The estimate, shape broadcast(q.batch_shape, p.batch_shape). It is
        unbiased; its standard error falls like 1/sqrt(number of samples), and
        it is exactly 0 when q and p are the same distribution.
    """
    if not isinstance(q, Distribution):
        raise ValueError(f"q must be a torch.distributions.Distribution, got {type(q).__name__}")
    if not isinstance(p, Distribution):
        raise ValueError(f"p must be a torch.distributions.Distribution, got {type(p).__name__}")
    if q.event_shape != p.event_shape:
        raise ValueError(
            f"q and p must have the same event_shape, got {tuple(q.event_shape)} "
            f"and {tuple(p.event_shape)}"
        )
    if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    if z is None:
        shape = (int(n_samples),)
        if hasattr(q, "rsample_with_log_prob"):
            # Same value and gradients as log q(rsample()), without inverting the
            # sampling map (see WrappedNormal.rsample_with_log_prob).
            z, log_q = q.rsample_with_log_prob(shape)
            return (log_q - p.log_prob(z)).mean(0)
        z = q.rsample(shape) if q.has_rsample else q.sample(shape)
        sample_dims = 1
    else:
        if n_samples != 1:
            raise ValueError("pass either n_samples or z, not both")
        if not isinstance(z, torch.Tensor):
            raise ValueError(f"z must be a torch.Tensor, got {type(z).__name__}")
        trailing = q.batch_shape + q.event_shape
        sample_dims = z.dim() - len(trailing)
        if sample_dims < 0 or z.shape[sample_dims:] != trailing:
            raise ValueError(
                f"z must have shape (*sample_shape, {', '.join(map(str, trailing))}) "
                f"(q.batch_shape + q.event_shape), got {tuple(z.shape)}"
            )
    log_ratio = q.log_prob(z) - p.log_prob(z)
    if sample_dims == 0:
        return log_ratio
    return log_ratio.mean(dim=tuple(range(sample_dims)))


def tangent_kl_approximation(q: WrappedNormal) -> torch.Tensor:
    """APPROXIMATION of KL(G(mu, Sigma) || G(mu0, I)) on H^d:

        0.5 * (tr Sigma + dist(mu, mu0)^2 - d - log det Sigma).

    This is the KL between N(log_mu0(mu), Sigma) and N(0, I) in the tangent space
    at the origin, i.e. it treats the wrapped normal as if exp were an
    isometry. Exact only at mu = mu0; see the module notes. Use
    ``monte_carlo_kl`` for an unbiased estimate of the true KL. Shape q.batch_shape.
    """
    if not isinstance(q, WrappedNormal):
        raise ValueError(f"q must be a WrappedNormal, got {type(q).__name__}")
    var = q.scale * q.scale
    dist0 = q.manifold.dist0(q.loc)
    d = q.manifold.dim
    return 0.5 * (var.sum(-1) + dist0 * dist0 - d - torch.log(var).sum(-1))
