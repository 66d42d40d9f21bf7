"""Observation models p(x | z): the decoder outputs their parameters.

Every likelihood returns ``log p(x|z)`` summed over the data dimensions, in nats,
so ELBOs are per-example sums as the post reports them.

- ``bernoulli``: the post's "BCE" likelihood on images scaled to [0, 1]. On
  continuous (non-binarised) pixels it is not a normalised density, but it is the
  quantity the post's ELBO tables use, and the one we compare with them.
- ``continuous_bernoulli``: Loaiza-Ganem & Cunningham (2019), the properly
  normalised density on [0, 1] with the same parameter.
- ``gaussian``: N(x; mu, sigma^2) with one learned sigma shared by all pixels
  (the "optimal sigma" VAE of Rybkin et al. 2021), for faces.
- ``von_mises``: for angles given as (cos, sin) pairs (QM9 torsions). Each decoded
  pair is normalised to the unit circle, and
  log p = kappa cos(theta - theta') - log(2 pi I_0(kappa)) per real angle.
  Up to that affine map this is the post's masked cosine-similarity loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError


class Likelihood(nn.Module):
    """Base class: ``log_prob(params, x, mask)`` and ``mean(params)``."""

    name = "base"
    #: whether the ELBO under this likelihood is the one in the post's tables.
    comparable_to_post = False

    def log_prob(self, params: torch.Tensor, x: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class BernoulliLikelihood(Likelihood):
    name = "bernoulli"
    comparable_to_post = True

    def log_prob(self, params, x, mask=None):
        # -BCE with logits, stable for any logit; x may be continuous in [0, 1].
        x = x.expand_as(params)
        return -F.binary_cross_entropy_with_logits(params, x, reduction="none").sum(-1)

    def mean(self, params):
        return torch.sigmoid(params)


def _log_cb_normaliser(logits: torch.Tensor) -> torch.Tensor:
    """log C(lambda) of the continuous Bernoulli, lambda = sigmoid(logits).

    C(lambda) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda), which is 0/0 at
    lambda = 1/2. In terms of the logit l: 1 - 2 lambda = -tanh(l/2) and
    artanh(1 - 2 lambda) = -l/2, so C = l / tanh(l/2). Near l = 0 we use the series
    l / tanh(l/2) = 2 (1 + l^2/12 - l^4/720 + ...); |l| < 1e-2 keeps the truncation
    error below 1e-12 relative, and away from 0 the closed form has no cancellation.
    """
    small = logits.abs() < 1e-2
    safe = torch.where(small, torch.ones_like(logits), logits)
    exact = torch.log(safe / torch.tanh(safe / 2))
    l2 = logits * logits
    series = math.log(2.0) + torch.log1p(l2 / 12 - l2 * l2 / 720)
    return torch.where(small, series, exact)


class ContinuousBernoulliLikelihood(Likelihood):
    name = "continuous_bernoulli"

    def log_prob(self, params, x, mask=None):
        x = x.expand_as(params)
        bce = -F.binary_cross_entropy_with_logits(params, x, reduction="none")
        return (bce + _log_cb_normaliser(params)).sum(-1)

    def mean(self, params):
        # E[x] = lambda/(2 lambda - 1) + 1/(2 artanh(1 - 2 lambda)); with the logit
        # l this is sigmoid(l)/(2 sigmoid(l) - 1) - 1/l ... which -> 1/2 at l = 0.
        # Near l = 0 use the series 1/2 + l/12 (error O(l^3), < 1e-7 for |l| < 1e-2).
        small = params.abs() < 1e-2
        safe = torch.where(small, torch.ones_like(params), params)
        lam = torch.sigmoid(safe)
        exact = lam / (2 * lam - 1) - 1 / safe
        return torch.where(small, 0.5 + params / 12, exact).clamp(0, 1)


class GaussianLikelihood(Likelihood):
    """N(x; mu, sigma^2), mu = sigmoid(params), one learned log sigma for all pixels."""

    name = "gaussian"

    def __init__(self, init_log_sigma: float = math.log(0.1)):
        super().__init__()
        self.log_sigma = nn.Parameter(torch.tensor(float(init_log_sigma)))

    def log_prob(self, params, x, mask=None):
        mu = torch.sigmoid(params)
        # sigma >= 1e-3: below a thousandth of the pixel range the density rewards
        # memorising quantisation noise and the loss can run off to +inf.
        log_sigma = self.log_sigma.clamp(min=math.log(1e-3))
        z = (x - mu) / log_sigma.exp()
        return (-0.5 * z * z - log_sigma - 0.5 * math.log(2 * math.pi)).sum(-1)

    def mean(self, params):
        return torch.sigmoid(params)


class VonMisesAngleLikelihood(Likelihood):
    """Independent von Mises per angle, on inputs laid out as [cos0, sin0, cos1, ...]."""

    name = "von_mises"

    def __init__(self, concentration: float = 4.0):
        super().__init__()
        if not concentration > 0:
            raise ConfigError(f"angle concentration must be > 0, got {concentration}")
        self.concentration = float(concentration)

    @staticmethod
    def unit_pairs(params: torch.Tensor) -> torch.Tensor:
        """(..., 2K) -> (..., K, 2) unit vectors. The 1e-6 floor on the norm keeps
        the division finite when the decoder outputs (0, 0); such an angle is then
        read as theta = 0 with a tiny but finite gradient."""
        pairs = params.unflatten(-1, (-1, 2))
        return pairs / pairs.norm(dim=-1, keepdim=True).clamp_min(1e-6)

    def cosine(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """cos(theta - theta') per angle slot, shape (..., K)."""
        return (self.unit_pairs(params) * x.unflatten(-1, (-1, 2))).sum(-1)

    def log_prob(self, params, x, mask=None):
        k = self.concentration
        # log I_0(k) = log(i0e(k)) + k, exact for any k > 0 (i0e never underflows).
        log_norm = math.log(2 * math.pi) + math.log(torch.special.i0e(torch.tensor(k)).item()) + k
        per_angle = k * self.cosine(params, x) - log_norm
        if mask is not None:
            per_angle = per_angle * mask.to(per_angle.dtype)
        return per_angle.sum(-1)

    def mean(self, params):
        return self.unit_pairs(params).flatten(-2)


LIKELIHOODS = {
    "bernoulli": BernoulliLikelihood,
    "continuous_bernoulli": ContinuousBernoulliLikelihood,
    "gaussian": GaussianLikelihood,
    "von_mises": VonMisesAngleLikelihood,
}


def make_likelihood(name: str, **kwargs) -> Likelihood:
    if name not in LIKELIHOODS:
        raise ConfigError(f"unknown likelihood {name!r}; choose one of {sorted(LIKELIHOODS)}")
    return LIKELIHOODS[name](**kwargs)
