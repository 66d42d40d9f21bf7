"""The unit sphere S^d = {x in R^(d+1) : |x| = 1}: the latent geometry of the
hyperspherical (von Mises-Fisher) VAE.

Formulas (unit sphere, curvature +1, origin e_0 = (1, 0, ..., 0)):

- g_x(u, v) = u . v on T_x S^d = {u : x . u = 0}; proj_x(u) = u - (x . u) x
- exp_x(u) = cos(|u|) x + sin(|u|) u / |u|
- dist(x, y) = theta = 2 atan2(|x - y|, |x + y|)
- log_x(y) = theta / sin(theta) (y - (x . y) x)
- parallel transport along the geodesic x -> y:
  PT(v) = v - (y . v) / (1 + x . y) (x + y)

Numerics (each guard also appears at the line it protects):

- theta = 2 atan2(|x - y|, |x + y|) instead of arccos(x . y). arccos loses half
  the digits near theta = 0 (arccos(1 - e) ~ sqrt(2e)) and near pi, and its
  derivative is infinite at both ends. The chord form is accurate everywhere;
  its gradient is finite (zero) at x = y because vector_norm has a zero
  subgradient at 0.
- For unit vectors 1 - x.y = |x - y|^2 / 2 and 1 + x.y = |x + y|^2 / 2 exactly,
  so the tangent direction y - (x.y) x is formed as (y - x) + |x-y|^2/2 x for
  theta <= pi/2 and as (y + x) - |x+y|^2/2 x beyond: neither cancels.
- sin(t)/t uses its Taylor series for t < 0.1 (0/0 at t = 0, and the autograd
  derivative cos(t)/t - sin(t)/t^2 overflows as t -> 0).
- Antipodal points (y = -x): every great circle through x reaches y, so
  log_x(y) is not unique. ``logmap`` returns pi * w for a fixed, deterministic
  unit tangent w (x's least-aligned basis axis, projected onto T_x): it has the
  right length pi and exp_x of it is -x, so ``expmap(x, logmap(x, y)) == y``
  and ``dist == |logmap|`` still hold. ``transp`` and ``geodesic`` use the same
  great circle. Nearly antipodal points take their direction from y + x,
  which is what the data determine (to rounding).
"""

from __future__ import annotations

import math

import torch

from .base import Manifold, default_rtol, even_series

__all__ = ["Sphere", "sinc"]

#: Below this the series is used for sin(t)/t. The first omitted term,
#: t^10/11!, is < 3e-18 there: below float64 rounding.
_SERIES_BELOW = 0.1
#: sin(t)/t = sum_k (-1)^k t^(2k) / (2k+1)!
_SINC_COEFFS = (1.0, -1.0 / 6, 1.0 / 120, -1.0 / 5040, 1.0 / 362880)


def sinc(t: torch.Tensor) -> torch.Tensor:
    """sin(t)/t (unnormalised), exact at t = 0 and with finite gradients there.

    Both branches are evaluated on clamped inputs so that the branch not taken
    never produces inf/NaN (which ``torch.where`` would leak into gradients).
    """
    small = t.abs() < _SERIES_BELOW
    t_small = torch.where(small, t, torch.zeros_like(t))
    t_big = torch.where(small, torch.ones_like(t), t)
    return torch.where(small, even_series(t_small, _SINC_COEFFS), torch.sin(t_big) / t_big)


class Sphere(Manifold):
    """S^dim embedded in R^(dim+1), radius 1."""

    name = "sphere"

    @property
    def ambient_dim(self) -> int:
        return self.dim + 1

    def _fill_origin(self, x):
        x[..., 0] = 1

    def random(self, *batch_shape, std=None, dtype=None, device=None, generator=None):
        """Uniform points (std=None), or exp_o(u) with u ~ N(0, std^2 I) on T_o S^d."""
        o = self.origin(*batch_shape, dtype=dtype, device=device)
        g = torch.randn(o.shape, dtype=o.dtype, device=o.device, generator=generator)
        if std is None:
            return self.projx(g)
        g[..., 0] = 0
        return self.expmap(o, std * g)

    def contains(self, x, rtol=None):
        """| |x|^2 - 1 | <= rtol (default: ``default_rtol(x.dtype)``)."""
        self._check("x", x)
        tol = default_rtol(x.dtype) if rtol is None else rtol
        return ((x * x).sum(-1) - 1).abs() <= tol

    # -- projections and metric ------------------------------------------------------
    def projx(self, x):
        """x / |x|. The zero vector is equidistant from every point; it maps to the origin."""
        self._check("x", x)
        n = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        zero = n == 0
        # Guard: 0/0 at x = 0. The replaced denominator is never used for output.
        out = x / torch.where(zero, torch.ones_like(n), n)
        return torch.where(zero, self._origin_like(x).expand_as(x), out)

    def proju(self, x, u):
        self._check_all(x=x, u=u)
        return u - (x * u).sum(-1, keepdim=True) * x

    def inner(self, x, u, v, *, keepdim=False):
        self._check_all(x=x, u=u, v=v)
        return (u * v).sum(dim=-1, keepdim=keepdim)

    def norm(self, x, u, *, keepdim=False):
        self._check_all(x=x, u=u)
        return torch.linalg.vector_norm(u, dim=-1, keepdim=keepdim)

    # -- exponential and logarithm ------------------------------------------------------
    def expmap(self, x, u):
        """cos(|u|) x + sin(|u|)/|u| u, renormalised to |.| = 1.

        u must be tangent at x (use ``proju``). The final division by the norm
        only removes rounding drift (it is 1 to ~eps) so that long chains of
        maps stay on the sphere.
        """
        self._check_all(x=x, u=u)
        theta = torch.linalg.vector_norm(u, dim=-1, keepdim=True)
        z = torch.cos(theta) * x + sinc(theta) * u
        return z / torch.linalg.vector_norm(z, dim=-1, keepdim=True)

    def _chords(self, x, y):
        """a = |x - y|, b = |x + y| (a^2 + b^2 = 4) and theta = 2 atan2(a, b)."""
        a = torch.linalg.vector_norm(x - y, dim=-1, keepdim=True)
        b = torch.linalg.vector_norm(x + y, dim=-1, keepdim=True)
        return a, b, 2 * torch.atan2(a, b)

    def _direction(self, x, y, a, b):
        """y - (x.y) x without cancellation, and whether theta <= pi/2 ("near")."""
        near = a <= b
        dir_near = (y - x) + (0.5 * a * a) * x  # 1 - x.y = a^2/2
        dir_far = (y + x) - (0.5 * b * b) * x   # 1 + x.y = b^2/2
        return torch.where(near, dir_near, dir_far), near

    def _fallback_direction(self, x):
        """A unit tangent at x for antipodal points: the basis axis least aligned
        with x, projected onto T_x x (its squared norm 1 - x_j^2 >= 1/2 since
        x_j^2 <= 1/(dim+1) <= 1/2 for the smallest |x_j|)."""
        j = x.abs().argmin(dim=-1, keepdim=True)
        e = torch.zeros_like(x).scatter_(-1, j, 1.0)
        w = e - x.gather(-1, j) * x
        return w / torch.linalg.vector_norm(w, dim=-1, keepdim=True)

    def _unit_direction_far(self, x, dir_, near):
        """dir/|dir| for theta > pi/2, falling back to a fixed axis where dir == 0
        (exactly antipodal points). Elements with theta <= pi/2 get a finite dummy."""
        n = torch.linalg.vector_norm(dir_, dim=-1, keepdim=True)
        # Guard: |dir| below the smallest normal number means y = -x to rounding.
        degenerate = n < torch.finfo(x.dtype).tiny
        use = ~near & ~degenerate
        e = dir_ / torch.where(use, n, torch.ones_like(n))
        x_b, e = torch.broadcast_tensors(x, e)
        return torch.where(degenerate & ~near, self._fallback_direction(x_b), e)

    def logmap(self, x, y):
        """theta / sin(theta) (y - (x.y) x), with theta = dist(x, y).

        theta <= pi/2: dir / sinc(theta) (sinc >= 2/pi there, series near 0, so
        log_x(x) = 0 with Jacobian identity). theta > pi/2: theta * dir/|dir|,
        which gives |log| = theta exactly even where sin(theta) is tiny.
        Antipodal y = -x: pi times a fixed unit tangent (see module notes).
        """
        self._check_all(x=x, y=y)
        a, b, theta = self._chords(x, y)
        dir_, near = self._direction(x, y, a, b)
        # Guard: clamp theta to <= pi/2 inside the near formula so that the
        # branch not taken never divides by sinc(pi) = 0.
        u_near = dir_ / sinc(torch.clamp(theta, max=math.pi / 2))
        u_far = theta * self._unit_direction_far(x, dir_, near)
        return torch.where(near, u_near, u_far)

    def dist(self, x, y, *, keepdim=False):
        """2 atan2(|x - y|, |x + y|) in [0, pi] (see module notes)."""
        self._check_all(x=x, y=y)
        _, _, theta = self._chords(x, y)
        return theta if keepdim else theta.squeeze(-1)

    # -- parallel transport -----------------------------------------------------------------
    def transp(self, x, y, v):
        """Parallel transport of v in T_x S^d to T_y S^d along the shorter great circle.

        theta <= pi/2: v - (y.v)/(1 + x.y) (x + y), with 1 + x.y = b^2/2 >= 1.
        theta > pi/2: with e the unit direction of log_x(y),
        v + (e.v) ((cos theta - 1) e - sin theta x), cos theta - 1 = -a^2/2 and
        sin theta = a b / 2; this form stays exact at the antipode, where it
        transports along the same great circle that ``logmap`` picks.
        v must be tangent at x.
        """
        self._check_all(x=x, y=y, v=v)
        a, b, _ = self._chords(x, y)
        dir_, near = self._direction(x, y, a, b)
        # Guard: 1 + x.y -> 0 at the antipode; that element uses the far branch,
        # and the denominator is replaced by 1 there so no inf reaches autograd.
        one_plus_c = torch.where(near, 0.5 * b * b, torch.ones_like(b))
        pt_near = v - (y * v).sum(-1, keepdim=True) / one_plus_c * (x + y)
        e = self._unit_direction_far(x, dir_, near)
        ev = (e * v).sum(-1, keepdim=True)
        pt_far = v + ev * (-(0.5 * a * a) * e - (0.5 * a * b) * x)
        return torch.where(near, pt_near, pt_far)
