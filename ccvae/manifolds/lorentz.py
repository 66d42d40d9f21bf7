"""The hyperboloid (Lorentz) model of hyperbolic space H^d, curvature -1.

H^d = {x in R^(d+1) : <x, x>_L = -1, x_0 > 0} with the Minkowski product
<x, y>_L = -x_0 y_0 + sum_i x_i y_i, origin mu_0 = (1, 0, ..., 0).
Formulas (Nagano et al. 2019, "A Wrapped Normal Distribution on Hyperbolic
Space for Gradient-Based Learning", section 2 and appendix; shared/DESIGN.md):

- T_x H^d = {u : <x, u>_L = 0}; proj_x(u) = u + <x, u>_L x; g_x(u, v) = <u, v>_L
- exp_x(u) = cosh(r) x + sinh(r) u / r,  r = |u|_L = sqrt(<u, u>_L)
- a = -<x, y>_L = cosh dist(x, y)
- log_x(y) = arccosh(a) / sqrt(a^2 - 1) (y - a x)
- PT_{x->y}(v) = v + <y - a x, v>_L / (a + 1) (x + y)
- Poincare ball: p = x_{1:} / (1 + x_0);  x = ((1 + |p|^2), 2 p) / (1 - |p|^2)

Below, s = x_{1:} and t = y_{1:} are the spatial parts.

Numerics. Each guard is also commented where it acts.

1. Spatial coordinates are the representation. Far from the origin x_0 and
   |s| agree in their leading digits (x_0 ~ |s| ~ e^R / 2 at distance R), so
   every Minkowski product of points or of tangent vectors at x cancels
   numbers ~x_0^2: in float32 the plain formulas lose everything by R ~ 8
   (a 0.8 error in the distance of points 0.1 apart). s alone is well
   conditioned (a relative error eps in s moves the point by ~eps sinh(R)
   along the manifold, never off it). So: ``projx`` and ``expmap`` recompute
   x_0 = sqrt(1 + |s|^2); time components of tangent vectors are treated as
   determined by tangency (u_0 = s.u_{1:} / x_0); and the formulas below are
   rearranged so that the remaining x_0's only appear in sums of positive
   terms. With these, the float32 log-density of a wrapped normal at R = 8 is
   good to ~2e-3 nats instead of ~3 (tests/test_wrapped_normal.py).
2. a - 1 = cosh(dist) - 1 (``cosh_dist_minus_one``) comes from the identity
   (x_0 y_0)^2 - (1 + s.t)^2 = |t - s|^2 + |s ^ t|^2, not from -<x, y>_L - 1,
   which cancels (and may round below 0, where arccosh is NaN).
3. Metric of tangent vectors at x (``Lorentz.inner``): with u_par = s^.u_{1:}
   and u_perp the rest, <u, v>_L = u_perp.v_perp + u_par v_par / x_0^2; no
   cancellation. Used by ``norm``, ``expmap`` and ``transp``.
4. arccosh(1 + e) = 2 asinh(sqrt(e / 2)): exact near e = 0, where arccosh has
   an infinite derivative. With ``safe_sqrt`` its gradient at x = y is 0.
5. sinh(r)/r and r/sinh(r) use Taylor series below r = 0.01 (0/0 at r = 0);
   r/sinh(r) is written 2 r e^-r / (1 - e^-2r) beyond, which cannot
   overflow. log(sinh(r)/r) uses its own series below 0.1 and
   r - log(2r) + log1p(-e^-2r) above, which never calls sinh.
6. Overflow. Points at distance R from the origin have coordinates ~e^R / 2,
   and the formulas above form products up to ~e^(4R) R (a x_0 v_par for
   two points 2R apart and a tangent vector of length R). ``max_radius(dtype)``
   = floor(log(finfo.max) / 5) (17 in float32, 141 in float64) leaves a factor
   e^R of headroom, and every point this class returns (``projx``,
   ``expmap``, ``expmap0``, ``from_poincare``) is kept within it: a point
   beyond is pulled back along its ray (|x_{1:}| capped at sinh(max_radius)),
   and one ``expmap`` step is at most max_radius long (cosh would overflow
   float32 at r ~ 89). Within that range values and gradients are finite.
   This is no loss: a float32 point at R = 17 is only known to ~1 unit of
   distance (eps sinh(R)), and in float64 R = 141 is far beyond any use.
"""

from __future__ import annotations

import math

import torch

from .base import Manifold, check_tensor, default_rtol, even_series, safe_sqrt

__all__ = [
    "Lorentz",
    "minkowski_inner",
    "lorentz_norm",
    "cosh_dist_minus_one",
    "sinhc",
    "inv_sinhc",
    "log_sinhc",
    "max_radius",
]

#: Below this, series are used for sinh(r)/r and r/sinh(r): 1 + r^2/6 + r^4/120,
#: whose first omitted term r^6/5040 is < 2e-16 there (float64 rounding). Above
#: it the closed forms are exact in value; their autograd derivatives cancel
#: terms ~1/r, an absolute error ~eps/r (~1e-5 in float32) that only enters
#: multiplied by quantities ~r or next to O(1) terms.
_SERIES_BELOW = 0.01
#: sinh(r)/r = sum_k r^(2k) / (2k+1)!
_SINHC_COEFFS = (1.0, 1.0 / 6, 1.0 / 120)
#: log(sinh(r)/r) has its own series, used below _LOG_SERIES_BELOW = 0.1, where
#: the closed form r - log(2r) + log1p(-e^-2r) cancels by < 1e3; first omitted
#: term 2 r^10/935550 < 3e-18 there.
_LOG_SERIES_BELOW = 0.1
#: log(sinh(r)/r) / r^2 = 1/6 - r^2/180 + r^4/2835 - r^6/37800 + ...
_LOG_SINHC_COEFFS = (1.0 / 6, -1.0 / 180, 1.0 / 2835, -1.0 / 37800)


# ---------------------------------------------------------------------------
# Scalar functions
# ---------------------------------------------------------------------------
def max_radius(dtype: torch.dtype) -> float:
    """The largest distance from the origin that points keep, and the longest
    ``expmap`` step: floor(log(finfo.max) / 5) (17.0 in float32, 141.0 in float64).

    See module note 6 for why /5.
    """
    return float(math.floor(math.log(torch.finfo(dtype).max) / 5))


def _split(r: torch.Tensor, threshold: float = _SERIES_BELOW):
    """Mask and clamped copies for a two-branch function of r >= 0.

    Each branch gets an input on which it is finite (the series r <= threshold,
    the closed form r >= threshold), so the branch that ``torch.where``
    discards never puts inf/NaN into the backward pass; clamp passes no
    gradient where it clamps.
    """
    small = r < threshold
    return small, torch.clamp(r, max=threshold), torch.clamp(r, min=threshold)


def sinhc(r: torch.Tensor) -> torch.Tensor:
    """sinh(r)/r, with the Taylor series below r = 0.01 (exact, finite gradient at 0).

    Overflows like sinh for r > ~89 (float32); callers clamp r first.
    """
    small, r_small, r_big = _split(r)
    return torch.where(small, even_series(r_small, _SINHC_COEFFS), torch.sinh(r_big) / r_big)


def inv_sinhc(r: torch.Tensor) -> torch.Tensor:
    """r/sinh(r) for r >= 0: 1/series below 0.01, 2 r e^-r / (-expm1(-2r)) above.

    The second form never overflows (it underflows to 0 for huge r).
    """
    small, r_small, r_big = _split(r)
    big = 2 * r_big * torch.exp(-r_big) / -torch.expm1(-2 * r_big)
    return torch.where(small, 1 / even_series(r_small, _SINHC_COEFFS), big)


def log_sinhc(r: torch.Tensor) -> torch.Tensor:
    """log(sinh(r)/r) for r >= 0, the log-Jacobian of the wrapped normal per dimension.

    Series below 0.1 (relative accuracy ~eps). Above: r - log(2r) + log1p(-e^-2r),
    exact algebra that never overflows; near r = 0.1 its terms cancel by a
    factor ~1000, so the relative error there is ~1e3 eps while the absolute
    error (what a log-density needs) stays ~eps.
    """
    small, r_small, r_big = _split(r, _LOG_SERIES_BELOW)
    series = r_small * r_small * even_series(r_small, _LOG_SINHC_COEFFS)
    big = r_big - torch.log(2 * r_big) + torch.log1p(-torch.exp(-2 * r_big))
    return torch.where(small, series, big)


# ---------------------------------------------------------------------------
# Minkowski algebra
# ---------------------------------------------------------------------------
def minkowski_inner(u: torch.Tensor, v: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
    """<u, v>_L = -u_0 v_0 + sum_{i>=1} u_i v_i over the last axis (plain formula)."""
    uv = u * v
    return uv[..., 1:].sum(-1, keepdim=keepdim) - uv[..., :1].sum(-1, keepdim=keepdim)


def lorentz_norm(u: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
    """|u|_L = sqrt(<u, u>_L) of a space-like vector, from the plain formula.

    Rounding can make <u, u>_L slightly negative for tiny u; it is clamped at
    0, and the gradient at 0 is 0 (see ``safe_sqrt``). For a tangent vector
    at a point far from the origin prefer ``Lorentz.norm(x, u)`` (note 3).
    """
    return safe_sqrt(minkowski_inner(u, u, keepdim=keepdim))


def cosh_dist_minus_one(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """a - 1 = -<x, y>_L - 1 = cosh(dist(x, y)) - 1 >= 0 for x, y on H^d (keepdim shape).

    With Delta = t - s and x_0 = sqrt(1 + |s|^2), y_0 = sqrt(1 + |t|^2), the
    identity (x_0 y_0)^2 - (1 + s.t)^2 = |Delta|^2 + |s|^2 |t|^2 - (s.t)^2 gives

        a - 1 = x_0 y_0 - (1 + s.t) = (|Delta|^2 + |s ^ t|^2) / (x_0 y_0 + 1 + s.t).

    Where 1 + s.t >= 0 the denominator is a sum of positive terms, and
    |s ^ t| = |w| with w = |s| Delta - (Delta . s^) s (the part of Delta
    orthogonal to s, times |s|), formed without cancellation. Where
    1 + s.t < 0 (points on opposite sides of the origin; a - 1 > x_0 y_0 there),
    a - 1 = x_0 y_0 + (-s.t - 1) is itself a sum of positive terms.
    Nearby points far out keep their small a - 1 to relative ~eps x_0; the plain
    -<x, y>_L - 1 (and <x - y, x - y>_L / 2) cancel numbers ~x_0^2 there.
    """
    x0, s = x[..., :1], x[..., 1:]
    y0, t = y[..., :1], y[..., 1:]
    delta = t - s
    s_norm = torch.linalg.vector_norm(s, dim=-1, keepdim=True)
    # Guard: at s = 0 (x is the origin) s has no direction, but then
    # w = 0 whatever s_hat is. Below the smallest normal float |s| is not
    # divided by (1/|s| could overflow in the backward pass); w is ~0 there anyway.
    normal = s_norm > torch.finfo(s.dtype).tiny
    s_hat = s / torch.where(normal, s_norm, torch.ones_like(s_norm))
    w = s_norm * delta - (delta * s_hat).sum(-1, keepdim=True) * s
    st = (s * t).sum(-1, keepdim=True)
    x0y0 = x0 * y0
    one_plus_st = 1 + st
    same_side = one_plus_st >= 0
    numerator = (delta * delta).sum(-1, keepdim=True) + (w * w).sum(-1, keepdim=True)
    # Guard: the denominator of the branch not taken may cancel to ~0; it is
    # replaced so that no inf reaches autograd.
    denominator = torch.where(same_side, x0y0 + one_plus_st, torch.ones_like(st))
    # Guard: a >= 1 on H^d; rounding must not leave a - 1 < 0.
    return torch.clamp(torch.where(same_side, numerator / denominator, x0y0 - one_plus_st), min=0)


def _tangent_inner_spatial(x: torch.Tensor, u_s: torch.Tensor, v_s: torch.Tensor) -> torch.Tensor:
    """<u, v>_L of tangent vectors at x from their spatial parts (keepdim shape).

    Tangency fixes u_0 = s.u_s / x_0, so <u, v>_L = u_s.v_s - (s.u_s)(s.v_s) / x_0^2.
    For |s| < 1 that form cancels by at most a factor 2 and is used as is.
    For |s| >= 1 it is rewritten (note 3) with s^ = s/|s|, u_par = s^.u_s,
    u_perp = u_s - u_par s^ as u_perp.v_perp + u_par v_par / x_0^2.
    """
    x0, s = x[..., :1], x[..., 1:]
    s_norm = torch.linalg.vector_norm(s, dim=-1, keepdim=True)
    far = s_norm >= 1
    x0_sq = x0 * x0
    # Guard: far elements use far_form; zeroing their s here keeps the product
    # (s.u)(s.v) of the branch not taken from overflowing into the backward pass.
    s_near = torch.where(far, torch.zeros_like(s), s)
    su = (s_near * u_s).sum(-1, keepdim=True)
    sv = (s_near * v_s).sum(-1, keepdim=True)
    near_form = (u_s * v_s).sum(-1, keepdim=True) - su * sv / x0_sq
    # Guard: only far elements (|s| >= 1) divide by |s|; the others get 1.
    s_hat = s / torch.where(far, s_norm, torch.ones_like(s_norm))
    u_par = (s_hat * u_s).sum(-1, keepdim=True)
    v_par = (s_hat * v_s).sum(-1, keepdim=True)
    u_perp = u_s - u_par * s_hat
    v_perp = v_s - v_par * s_hat
    far_form = (u_perp * v_perp).sum(-1, keepdim=True) + u_par * v_par / x0_sq
    return torch.where(far, far_form, near_form)


def _exp_coefficients(r: torch.Tensor):
    """(cosh(r'), sinh(r')/r) with r' = min(r, max_radius): exp_x(u) = cosh x + coef u.

    Guard (note 6): a step longer than max_radius stops at that length along
    u; its coefficient is sinh(r_max)/r rather than sinhc of the unclamped r,
    which would overflow.
    """
    r_max = max_radius(r.dtype)
    clamped = r > r_max
    r_c = torch.clamp(r, max=r_max)
    coef = torch.where(clamped, math.sinh(r_max) / torch.clamp(r, min=r_max), sinhc(r_c))
    return torch.cosh(r_c), coef


def _with_time(x_s: torch.Tensor, cap: bool = True) -> torch.Tensor:
    """The point (sqrt(1 + |x_s|^2), x_s) of H^d above the spatial part x_s.

    Guard (note 6): with ``cap``, |x_s| is capped at sinh(max_radius), i.e. a
    point farther than max_radius from the origin is moved back along its ray
    to that distance (callers that already bound the distance skip it).
    """
    sq = (x_s * x_s).sum(-1, keepdim=True)
    if cap:
        limit = math.sinh(max_radius(x_s.dtype)) ** 2
        # factor = 1 inside the cap (clamp passes no gradient to sq there),
        # sqrt(limit / |x_s|^2) beyond it; sq >= limit > 0 under the rsqrt.
        clamped_sq = torch.clamp(sq, min=limit)
        x_s = x_s * (math.sqrt(limit) * torch.rsqrt(clamped_sq))
        sq = torch.clamp(sq, max=limit)
    return torch.cat([torch.sqrt(1 + sq), x_s], dim=-1)


class Lorentz(Manifold):
    """The hyperboloid H^dim in R^(dim+1), curvature -1, origin (1, 0, ..., 0).

    Tangent vectors passed to ``inner``, ``norm``, ``expmap`` and ``transp``
    must be tangent at their base point (use ``proju``); these maps read
    their spatial parts (module note 1).
    """

    name = "lorentz"

    @property
    def ambient_dim(self) -> int:
        return self.dim + 1

    def _fill_origin(self, x):
        x[..., 0] = 1

    def random(self, *batch_shape, std=None, dtype=None, device=None, generator=None):
        """exp_o((0, v)) with v ~ N(0, std^2 I_dim) (std = 1 by default)."""
        o = self.origin(*batch_shape, dtype=dtype, device=device)
        v = torch.randn(o.shape, dtype=o.dtype, device=o.device, generator=generator)
        v[..., 0] = 0
        return self.expmap0(v * (1.0 if std is None else std))

    def contains(self, x, rtol=None):
        """Finite, x_0 > 0 and |<x, x>_L + 1| <= rtol * max(1, x_0^2).

        The tolerance is relative to x_0^2 because the rounding error of
        <x, x>_L is (module note 1). Default rtol: ``default_rtol(x.dtype)``.
        """
        self._check("x", x)
        tol = default_rtol(x.dtype) if rtol is None else rtol
        x0 = x[..., 0]
        err = (minkowski_inner(x, x) + 1).abs()
        finite = torch.isfinite(x).all(-1)
        return finite & (x0 > 0) & (err <= tol * torch.clamp(x0 * x0, min=1.0))

    # -- projections and metric ------------------------------------------------------
    def projx(self, x):
        """(sqrt(1 + |x_{1:}|^2), x_{1:}): keeps the spatial part, recomputes x_0.

        This is the point of H^d straight "above" x (not the Minkowski-nearest
        point); it is well conditioned far from the origin (module note 1).
        """
        self._check("x", x)
        return _with_time(x[..., 1:])

    def proju(self, x, u):
        """u + <x, u>_L x (the Minkowski-orthogonal projection onto T_x, as <x, x>_L = -1).

        The plain product cancels for x far out (module note 1); where a tangent
        vector can be built by transport from the origin (``transp0``), prefer that.
        """
        self._check_all(x=x, u=u)
        return u + minkowski_inner(x, u, keepdim=True) * x

    def inner(self, x, u, v, *, keepdim=False):
        """<u, v>_L for u, v tangent at x, without cancellation far out (module note 3)."""
        self._check_all(x=x, u=u, v=v)
        out = _tangent_inner_spatial(x, u[..., 1:], v[..., 1:])
        return out if keepdim else out.squeeze(-1)

    def norm(self, x, u, *, keepdim=False):
        """|u|_L for u tangent at x; gradient 0 (not NaN) at u = 0."""
        self._check_all(x=x, u=u)
        out = safe_sqrt(_tangent_inner_spatial(x, u[..., 1:], u[..., 1:]))
        return out if keepdim else out.squeeze(-1)

    # -- exponential map -------------------------------------------------------------------
    def expmap(self, x, u):
        """exp_x(u) = cosh(r) x + sinh(r)/r u, r = |u|_L, with x_0 recomputed.

        u must be tangent at x. r is clamped at ``max_radius`` (module note 6).
        At u = 0 the result is x, with Jacobian identity on T_x.
        """
        self._check_all(x=x, u=u)
        u_s = u[..., 1:]
        r = safe_sqrt(_tangent_inner_spatial(x, u_s, u_s))
        # Only the spatial part of cosh(r) x + sinh(r)/r u is formed; x_0 of the
        # result follows from it (module note 1). (The wrapped normal's sampler fuses
        # this with the transport from the origin: ``wrapped_normal_fused``.)
        cosh_r, coef = _exp_coefficients(r)
        return _with_time(cosh_r * x[..., 1:] + coef * u_s)

    def expmap0(self, u):
        """exp_o(u) = (cosh|v|, sinh(|v|) v/|v|) for u = (0, v) tangent at the origin.

        u_0 is ignored (it is 0 in T_o); r = |v| has no cancellation.
        """
        self._check("u", u)
        v = u[..., 1:]
        _, coef = _exp_coefficients(torch.linalg.vector_norm(v, dim=-1, keepdim=True))
        # The step is clamped at max_radius, so the point is within it: no cap needed.
        return _with_time(coef * v, cap=False)

    # -- distance and logarithm --------------------------------------------------------------
    @staticmethod
    def _dist_from_am1(am1):
        """arccosh(1 + am1) as 2 asinh(sqrt(am1 / 2)) (module note 4)."""
        return 2 * torch.asinh(safe_sqrt(0.5 * am1))

    def dist(self, x, y, *, keepdim=False):
        """arccosh(-<x, y>_L), computed stably (module notes 2, 4); gradient 0 at x = y."""
        self._check_all(x=x, y=y)
        d = self._dist_from_am1(cosh_dist_minus_one(x, y))
        return d if keepdim else d.squeeze(-1)

    def dist0(self, x, *, keepdim=False):
        """dist(o, x) = asinh(|x_{1:}|): exact, because sinh(dist) = |x_{1:}| on H^d."""
        self._check("x", x)
        return torch.asinh(torch.linalg.vector_norm(x[..., 1:], dim=-1, keepdim=keepdim))

    @staticmethod
    def _time_difference(x, y):
        """y_0 - x_0 = (|t|^2 - |s|^2) / (x_0 + y_0) = (t - s).(s + t) / (x_0 + y_0).

        Recomputed from the spatial parts instead of subtracting two numbers
        that each carry rounding ~eps x_0 (module note 1). Equal on H^d.
        """
        s, t = x[..., 1:], y[..., 1:]
        return ((t - s) * (s + t)).sum(-1, keepdim=True) / (x[..., :1] + y[..., :1])

    def _log_direction(self, x, y, am1):
        """w = y - a x = (y - x) - (a - 1) x, whose Lorentz norm is sinh(dist)."""
        x0, s = x[..., :1], x[..., 1:]
        delta0 = self._time_difference(x, y)
        return torch.cat([delta0 - am1 * x0, (y[..., 1:] - s) - am1 * s], dim=-1)

    def logmap(self, x, y):
        """log_x(y) = d / sinh(d) (y - a x), d = dist(x, y), a = cosh(d).

        inv_sinhc has the series at d -> 0 (log_x(x) = 0, Jacobian identity on
        T_x) and cannot overflow for large d.
        """
        self._check_all(x=x, y=y)
        am1 = cosh_dist_minus_one(x, y)
        return inv_sinhc(self._dist_from_am1(am1)) * self._log_direction(x, y, am1)

    def _logmap_transp0back_spatial(self, x, y):
        """(spatial part of PT_{x->o}(log_x(y)), d = dist(x, y), d/sinh(d)), fused (keepdim).

        With k = d/sinh(d), Delta = y_{1:} - x_{1:} and Delta_0 = y_0 - x_0
        (``_time_difference``):
            PT_{x->o}(log_x(y))_{1:} = k (Delta - (Delta_0 + a - 1) / (1 + x_0) x_{1:}),
        which is ``transp0back(x, logmap(x, y))`` simplified by hand (the
        (a - 1) x_{1:} terms cancel algebraically instead of numerically).
        This is the tangent vector v' at which the wrapped normal's log_prob
        evaluates its Gaussian.
        """
        am1 = cosh_dist_minus_one(x, y)
        d = self._dist_from_am1(am1)
        k = inv_sinhc(d)
        x0, s = x[..., :1], x[..., 1:]
        delta0 = self._time_difference(x, y)
        return k * ((y[..., 1:] - s) - (delta0 + am1) / (1 + x0) * s), d, k

    def logmap0(self, y):
        """log_o(y) = (0, asinh(|y_{1:}|) y_{1:} / |y_{1:}|) (exact: no cancellation)."""
        self._check("y", y)
        s = y[..., 1:]
        n = torch.linalg.vector_norm(s, dim=-1, keepdim=True)
        # asinh(n)/n = d/sinh(d) with d = asinh(n): reuse the guarded inv_sinhc.
        return torch.cat([torch.zeros_like(n), inv_sinhc(torch.asinh(n)) * s], dim=-1)

    # -- parallel transport ----------------------------------------------------------------------
    def transp(self, x, y, v):
        """PT_{x->y}(v) = v + <y - a x, v>_L / (a + 1) (x + y) for v in T_x H^d.

        a + 1 = 2 + (a - 1) >= 2: no singularity anywhere. The product is the
        metric at x (module note 3); the spatial part of the result is formed
        from the formula and its time component from tangency at y,
        (y_{1:} . PT_{1:}) / y_0.
        """
        self._check_all(x=x, y=y, v=v)
        am1 = cosh_dist_minus_one(x, y)
        w = self._log_direction(x, y, am1)
        coef = _tangent_inner_spatial(x, w[..., 1:], v[..., 1:]) / (2 + am1)
        pt_s = v[..., 1:] + coef * (x[..., 1:] + y[..., 1:])
        return self._tangent_from_spatial(y, pt_s)

    @staticmethod
    def _tangent_from_spatial(y, u_s):
        """The tangent vector at y with spatial part u_s: u_0 = y_{1:}.u_s / y_0."""
        u0 = (y[..., 1:] * u_s).sum(-1, keepdim=True) / y[..., :1]
        return torch.cat([u0, u_s], dim=-1)

    def transp0(self, y, v):
        """PT_{o->y}(v) = v + (y_{1:} . v_{1:}) / (1 + y_0) (o + y) for v = (0, v_{1:})."""
        self._check_all(y=y, v=v)
        return self._transp0_spatial(y, v[..., 1:])

    def _transp0_spatial(self, y, v_s):
        """PT_{o->y}((0, v_s)) from the spatial part v_s (..., dim)."""
        y0, ys = y[..., :1], y[..., 1:]
        coef = (ys * v_s).sum(-1, keepdim=True) / (1 + y0)
        return torch.cat([coef * (1 + y0), v_s + coef * ys], dim=-1)

    def transp0back(self, x, u):
        """PT_{x->o}(u) = u - u_0 / (1 + x_0) (x + o) for u tangent at x.

        u_0 is taken from tangency, s.u_{1:} / x_0; the result has first coordinate 0.
        """
        self._check_all(x=x, u=u)
        x0, s = x[..., :1], x[..., 1:]
        u_s = u[..., 1:]
        u0 = (s * u_s).sum(-1, keepdim=True) / x0
        v_s = u_s - u0 / (1 + x0) * s
        return torch.cat([torch.zeros_like(v_s[..., :1]), v_s], dim=-1)

    # -- Poincare ball -----------------------------------------------------------------------------
    def to_poincare(self, x):
        """p = x_{1:} / (1 + x_0), a point of the open unit ball (for display)."""
        self._check("x", x)
        return x[..., 1:] / (1 + x[..., :1])

    def from_poincare(self, p):
        """x = ((1 + |p|^2), 2 p) / (1 - |p|^2), with x_0 recomputed from x_{1:}.

        Guard: 1 - |p|^2 is clamped at machine epsilon, so points on (or, by
        rounding, just outside) the unit sphere map to a far but finite point
        instead of inf. |p| > 1 is not in the ball; it is not checked here.
        """
        p = check_tensor(p, "p")
        if p.shape[-1] != self.dim:
            raise ValueError(
                f"p must have last dimension {self.dim} (Poincare ball coordinates of "
                f"H^{self.dim}), got shape {tuple(p.shape)}"
            )
        sq = (p * p).sum(-1, keepdim=True)
        denom = torch.clamp(1 - sq, min=torch.finfo(p.dtype).eps)
        return _with_time(2 * p / denom)
