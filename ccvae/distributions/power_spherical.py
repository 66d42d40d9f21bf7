r"""The Power Spherical distribution (De Cao & Aziz 2020), a fully reparameterisable vMF alternative.

On S^{m-1} in R^m, with mean direction mu and concentration kappa >= 0:

.. math:: p(x \mid \mu, \kappa) = C(\kappa, m)\, (1 + \mu^\top x)^{\kappa}, \qquad
          C(\kappa, m)^{-1} = 2^{\alpha+\beta} \pi^{\beta}
          \frac{\Gamma(\alpha)}{\Gamma(\alpha+\beta)},
          \quad \alpha = \frac{m-1}{2} + \kappa,\ \beta = \frac{m-1}{2}.

The marginal of t = mu.x is (t+1)/2 ~ Beta(alpha, beta), so sampling needs no rejection
step: t from two Gamma variates (reparameterised by torch's Gamma), v uniform on S^{m-2},
x' = (t, sqrt(1-t^2) v), then the same reflection e_1 -> mu as the vMF
(``reflect_from_e1``). Closed forms (De Cao & Aziz 2020, sec. 3):

* E[x] = (alpha - beta)/(alpha + beta) mu = kappa/(kappa + m - 1) mu;
* H = -log C - kappa (log 2 + psi(alpha) - psi(alpha + beta));
* KL(p || U(S^{m-1})) = log|S^{m-1}| - H (registered with ``register_kl``).

Unlike the vMF, kappa = 0 is allowed (it is the uniform distribution).
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Distribution, constraints
from torch.distributions.kl import register_kl

from .hyperspherical_uniform import (HypersphericalUniform, check_spherical_values, log_sphere_area,
                                     spherical_parameters, unit_vector)
from .shapes import broadcast_shapes, expand_to
from .von_mises_fisher import reflect_from_e1

__all__ = ["PowerSpherical"]

_LOG_2 = math.log(2.0)
_LOG_PI = math.log(math.pi)


class PowerSpherical(Distribution):
    r"""Power Spherical distribution PS(loc, concentration) on S^{m-1} in R^m.

    Args:
        loc: mean direction, shape (..., m) with m >= 2, unit norm along the last dim.
        concentration: kappa >= 0, shape broadcastable with ``loc.shape[:-1]`` (a Python
            number is accepted).
        validate_args: check values (kappa finite and >= 0; loc finite, unit norm within
            1e-5). Shapes are always checked. Default: torch's global setting.
    """

    arg_constraints = {"loc": unit_vector, "concentration": constraints.nonnegative}
    support = unit_vector
    has_rsample = True

    def __init__(self, loc: torch.Tensor, concentration, validate_args: bool | None = None):
        self.loc, self.concentration, batch_shape = spherical_parameters(loc, concentration)
        self.m = m = self.loc.shape[-1]
        super().__init__(batch_shape, torch.Size([m]), validate_args=False)
        if Distribution._validate_args if validate_args is None else validate_args:
            self._check_parameters()
            self._validate_args = True

    def _check_parameters(self) -> None:
        check_spherical_values(self.loc, self.concentration, allow_zero=True)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(PowerSpherical, _instance)
        batch_shape = torch.Size(batch_shape)
        new.m = self.m
        new.loc = self.loc.expand(batch_shape + (self.m,))
        new.concentration = self.concentration.expand(batch_shape)
        super(PowerSpherical, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def _alpha_beta(self) -> tuple[torch.Tensor, float]:
        beta = 0.5 * (self.m - 1)
        return self.concentration + beta, beta

    @property
    def mean(self) -> torch.Tensor:
        """E[x] = kappa/(kappa + m - 1) loc."""
        k = self.concentration
        return (k / (k + (self.m - 1))).unsqueeze(-1) * self.loc

    @property
    def mode(self) -> torch.Tensor:
        return self.loc

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        alpha, beta = self._alpha_beta
        # z = Ga/(Ga + Gb) ~ Beta(alpha, beta), t = 2z - 1. From the two Gamma variates,
        # 1 + t = 2 Ga/S and 1 - t = 2 Gb/S (S = Ga + Gb) are formed without cancellation,
        # so t near +-1 (large kappa) keeps its precision; sqrt(1 - t^2) = 2 sqrt(Ga Gb)/S.
        # torch's Gamma.rsample carries the (implicit) gradient in alpha.
        ga = torch.distributions.Gamma(alpha.expand(shape), torch.ones((), dtype=alpha.dtype,
                                       device=alpha.device), validate_args=False).rsample()
        gb = torch._standard_gamma(torch.full(shape, beta, dtype=alpha.dtype, device=alpha.device))
        total = ga + gb
        t = (ga - gb) / total
        sin_theta = 2.0 * torch.sqrt(ga * gb) / total
        g = torch.randn(shape + (self.m - 1,), dtype=self.loc.dtype, device=self.loc.device)
        # v uniform on S^{m-2}; a zero Gaussian vector has probability 0 (clamp: no 0/0).
        v = g / g.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(g.dtype).tiny)
        z0 = torch.cat([t.unsqueeze(-1), sin_theta.unsqueeze(-1) * v], dim=-1)
        return reflect_from_e1(expand_to(self.loc, shape + (self.m,)), z0)

    def log_normalizer(self) -> torch.Tensor:
        """log C(kappa, m) = -[(alpha+beta) log 2 + beta log pi + lgamma(alpha) - lgamma(alpha+beta)].

        Evaluated in float64 (lgamma(alpha) ~ kappa log kappa cancels against
        lgamma(alpha + beta)) and cast back.
        """
        beta = 0.5 * (self.m - 1)
        alpha = self.concentration.to(torch.float64) + beta
        out = -((alpha + beta) * _LOG_2 + beta * _LOG_PI + torch.lgamma(alpha)
                - torch.lgamma(alpha + beta))
        return out.to(self.concentration.dtype)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        r"""log C + kappa log(1 + loc.x); xlogy makes kappa = 0 at x = -loc give log C."""
        if self._validate_args:
            self._validate_sample(value)
        return self.log_normalizer() + torch.xlogy(self.concentration, 1.0 + (self.loc * value).sum(-1))

    def entropy(self) -> torch.Tensor:
        """H = -log C - kappa (log 2 + psi(alpha) - psi(alpha + beta)), in float64 as above."""
        beta = 0.5 * (self.m - 1)
        k = self.concentration.to(torch.float64)
        alpha = k + beta
        log_c = -((alpha + beta) * _LOG_2 + beta * _LOG_PI + torch.lgamma(alpha)
                  - torch.lgamma(alpha + beta))
        expected_log = _LOG_2 + torch.digamma(alpha) - torch.digamma(alpha + beta)
        return (-log_c - k * expected_log).to(self.concentration.dtype)

    def __repr__(self) -> str:
        return f"PowerSpherical(m={self.m}, batch_shape={tuple(self.batch_shape)})"


@register_kl(PowerSpherical, HypersphericalUniform)
def _kl_power_spherical_uniform(q: PowerSpherical, p: HypersphericalUniform) -> torch.Tensor:
    """KL(q || U(S^{m-1})) = log|S^{m-1}| - H(q)."""
    if q.event_shape != p.event_shape:
        raise ValueError(f"p: the uniform distribution is on S^{p.dim} (event shape "
                         f"{tuple(p.event_shape)}) but the Power Spherical is on S^{q.m - 1} "
                         f"(event shape {tuple(q.event_shape)})")
    kl = log_sphere_area(q.m - 1) - q.entropy()
    return expand_to(kl, broadcast_shapes(q.batch_shape, p.batch_shape))
