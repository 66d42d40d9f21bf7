r"""The von Mises-Fisher with s-vae-pytorch's sampler: a BIASED reference, for ablations.

Davidson et al. (2018) published their S-VAE results with the sampler of their code
(s-vae-pytorch, ``VonMisesFisher.__sample_w_rej``). It differs from this package's exact
sampler (``von_mises_fisher``) in two ways, both reproduced here so that their effect on
a trained model can be measured on its own (``--sphere-posterior vmf_svae``):

1. **The envelope.** Wood's parameter b is replaced, for kappa > 10, by its large-kappa
   approximation b_app = (m-1)/(4 kappa), blended linearly with the exact
   b = (m-1)/(2 kappa + c), c = sqrt(4 kappa^2 + (m-1)^2), over 10 <= kappa <= 11, while
   the acceptance test keeps the exact c:

   .. math:: a = \tfrac14 (m - 1 + 2\kappa + c), \quad d = \frac{4ab}{1+b} - (m-1)\log(m-1),
             \quad t = \frac{2ab}{1 - (1-b)\,\epsilon}, \quad
             \text{accept if } (m-1)\log t - t + d > \log U,

   with eps ~ Beta((m-1)/2, (m-1)/2) and w = (1 - (1+b) eps)/(1 - (1-b) eps). With the
   exact b this is Wood's test; with b_app the "envelope" no longer bounds the target,
   and the accepted w do not follow p(w) whenever m is not much smaller than kappa (at
   m = 200, kappa = 20 their mean is about -0.43; the true mean is A_200(20) = +0.099).
2. **The kappa-gradient.** The accepted eps is held fixed and the gradient flows
   through w(eps, b(kappa)) only: the reparameterisation part of Naesseth et al.'s
   (2017) estimator without its correction term. Below kappa = 10 that costs a few
   percent (13 % at m = 5, kappa = 2). Inside the blend, 10 < kappa < 11, db/dkappa
   also carries the jump b_app - b_true, and d E[w]/d kappa has the wrong sign and is
   large (-1.6 times the true value at m = 21, kappa = 10.2; -11 times at m = 41);
   above it, b_app's slope overstates it (about 2 times at m = 41, kappa = 12).

For m = 3, s-vae uses the exact inverse CDF, w = 1 + log(U + (1-U) e^{-2 kappa})/kappa,
reparameterised through kappa, which is unbiased; so is this class there.

Everything else is this package's exact maths: ``log_prob``, ``entropy``, the KL to the
uniform distribution (inherited from ``VonMisesFisher``; ``register_kl`` dispatch
finds it through the subclass), and the reflection e_1 -> loc. The rejection rounds run
in float64 in omega = 1 - w (2 b eps / (1 - (1-b) eps), no cancellation), so the only
differences from the exact sampler are the two above. Never the default.
"""

from __future__ import annotations

import math

import torch

from .von_mises_fisher import (MAX_REJECTION_ROUNDS, VonMisesFisher, _beta_numerators, _random_draws,
                               reflect_from_e1)

__all__ = ["SvaeVonMisesFisher", "svae_envelope", "sample_one_minus_w_svae"]

#: Proposals per sample per round (s-vae draws 20 at a time, too).
SVAE_PROPOSALS = 20
#: s-vae's blend from the exact b to b_app runs over kappa in [10, 11].
SVAE_BLEND_START = 10.0


def svae_envelope(kappa: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """s-vae's (b, a, d) for the concentration ``kappa`` (differentiable in kappa)."""
    mm1 = float(m - 1)
    c = torch.sqrt(4.0 * kappa * kappa + mm1 * mm1)
    b_true = mm1 / (2.0 * kappa + c)  # = (-2 kappa + c)/(m-1), without its cancellation
    b_app = mm1 / (4.0 * kappa)
    s = (kappa - SVAE_BLEND_START).clamp(0.0, 1.0)
    b = b_app * s + b_true * (1.0 - s)
    a = (mm1 + 2.0 * kappa + c) / 4.0
    d = 4.0 * a * b / (1.0 + b) - mm1 * math.log(mm1)
    return b, a, d


def sample_one_minus_w_svae(kappa: torch.Tensor, m: int) -> torch.Tensor:
    """omega = 1 - w from s-vae's sampler, float64, differentiable in ``kappa`` the way
    s-vae's is (through b with the accepted eps held fixed; through U for m = 3).

    ``kappa`` is any shape; the result has its shape. Vectorised: ``SVAE_PROPOSALS``
    proposals per element and round, the first accepted one kept; a RuntimeError after
    ``MAX_REJECTION_ROUNDS`` rounds (an approximate envelope accepts less often).
    """
    k = kappa.reshape(-1).to(torch.float64)
    if m == 3:
        u = torch.rand_like(k)
        # 1 - w = -log(U + (1 - U) e^{-2 kappa}) / kappa
        return (-torch.log(u + (1.0 - u) * torch.exp(-2.0 * k)) / k).reshape(kappa.shape)
    b, a, d = svae_envelope(k, m)
    with torch.no_grad():
        bd, ad, dd = (t.detach().unsqueeze(-1) for t in (b, a, d))
        eps = torch.full_like(k, float("nan"))
        todo = torch.arange(k.shape[0], device=k.device)
        for _ in range(MAX_REJECTION_ROUNDS):
            normals, uniforms = _random_draws((todo.shape[0], SVAE_PROPOSALS), kappa.dtype, k.device)
            p, mm, valid = _beta_numerators(m, normals, uniforms[0])
            e = p / (p + (1.0 if mm is None else mm))  # Beta((m-1)/2, (m-1)/2)
            bt, at, dt = bd[todo], ad[todo], dd[todo]
            t = 2.0 * at * bt / (1.0 - (1.0 - bt) * e)
            accept = (float(m - 1) * torch.log(t) - t + dt) > torch.log(uniforms[1])
            if valid is not None:
                accept &= valid
            any_accepted, first = accept.to(torch.uint8).max(-1, keepdim=True)
            got = any_accepted.squeeze(-1).bool()
            eps[todo[got]] = e.gather(-1, first).squeeze(-1)[got]
            todo = todo[~got]
            if todo.numel() == 0:
                break
        else:
            raise RuntimeError("SvaeVonMisesFisher: the rejection sampler left samples without an "
                               f"accepted proposal after {MAX_REJECTION_ROUNDS} rounds")
    # 1 - w = 2 b eps / (1 - (1 - b) eps): the gradient reaches kappa through b only.
    return (2.0 * b * eps / (1.0 - (1.0 - b) * eps)).reshape(kappa.shape)


class SvaeVonMisesFisher(VonMisesFisher):
    """``VonMisesFisher`` whose ``rsample`` is s-vae-pytorch's biased sampler (module
    docstring). Densities, entropy and the KL are the exact ones. For ablations only."""

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(SvaeVonMisesFisher, _instance)
        return super().expand(batch_shape, _instance=new)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        kappa = self.concentration.expand(shape)
        omega = sample_one_minus_w_svae(kappa, self.m).to(self.loc.dtype)
        g = torch.randn(shape + (self.m - 1,), dtype=self.loc.dtype, device=self.loc.device)
        v = g / g.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(g.dtype).tiny)  # 0/0 guard
        # sqrt(1 - w^2) = sqrt(omega (2 - omega)); tiny keeps its gradient finite at omega = 0
        sin_theta = torch.sqrt((omega * (2.0 - omega)).clamp_min(torch.finfo(omega.dtype).tiny))
        z0 = torch.cat([(1.0 - omega).unsqueeze(-1), sin_theta.unsqueeze(-1) * v], dim=-1)
        return reflect_from_e1(self.loc.expand(shape + (self.m,)), z0)

    def __repr__(self) -> str:
        return f"SvaeVonMisesFisher(m={self.m}, batch_shape={tuple(self.batch_shape)})"
