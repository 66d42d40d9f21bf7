r"""Stable modified Bessel functions of the first kind, for the von Mises-Fisher.

Public functions (all pure torch, CPU and CUDA, float32 and float64, differentiable
in ``x``; the order ``v`` is a constant, never differentiated):

``log_iv(v, x)``             :math:`\log I_v(x)`
``iv_ratio(v, x)``           :math:`R_v(x) = I_{v+1}(x) / I_v(x)`
``log_ive(v, x)``            :math:`\log I_v(x) - x` (log of the exponentially scaled
                             Bessel function), formed without the O(x) cancellation.
``log_iv_normalised(v, x)``  :math:`\log\big(\Gamma(v+1)\,(2/x)^v\, I_v(x)\big)`, which
                             is 0 at x = 0 and grows like x^2 / (4(v+1)) without
                             the cancellation of ``log_iv(v, x) - v log(x/2) + lgamma(v+1)``.
``iv_ratio_derivative(v, x)``  :math:`R_v'(x) = 1 - R_v^2 - (2v+1) R_v / x`, evaluated
                             without the catastrophic cancellation of that formula at
                             large x (where R_v' ~ (2v+1)/(2x^2)).

The vMF on S^{m-1} uses v = m/2 - 1; :math:`A_m(\kappa) = R_{m/2-1}(\kappa)` is its
mean resultant length and ``iv_ratio_derivative`` its variance along ``loc``.

Method
------
Everything is computed internally in float64 and cast back to the input's dtype
(float32 inputs therefore get float64-accurate values, rounded once). Two regimes,
selected per element with ``torch.where`` (no host synchronisation on CUDA; on CPU a
regime that no element needs is skipped):

1. **Power series** (Abramowitz & Stegun 9.6.10), used where it converges within
   ``SERIES_TERMS`` terms to double precision:

   .. math:: I_v(x) = \frac{(x/2)^v}{\Gamma(v+1)} \sum_{k\ge 0}
             \frac{(x^2/4)^k}{k!\,(v+1)_k}.

   All terms are positive, so the sum has no cancellation, and writing it as
   ``1 + S1`` gives the normalised log as ``log1p(S1)`` exactly (no cancellation as
   x -> 0). The ratio is ``x / (2(v+1)) * S_{v+1} / S_v``, and R/x is available
   without a division by x (so R' is finite at x = 0).
   Used where ``x < SERIES_X_MAX`` or ``x^2/4 <= SERIES_Y_PER_ORDER * (v+1)``.
   Truncation bound: term k is at most ``c^k / k!`` with ``c = x^2/(4(v+1))`` (as
   (v+1)_k >= (v+1)^k), and the first 48 terms leave < 1e-17 for c <= 8. For
   x < 30 and small v the neglected terms are < 1e-16 of the sum (checked against
   mpmath in tests/test_special.py).

2. **Uniform asymptotic (Debye) expansion** (A&S 9.7.7; DLMF 10.41.3) elsewhere,
   i.e. where x >= SERIES_X_MAX. With s = sqrt(v^2 + x^2), p = v/s:

   .. math:: \log I_v(x) = s + v \log\frac{x}{v+s} - \tfrac12\log(2\pi s)
             + \log \sum_k \frac{U_k(p)}{v^k}.

   Since U_k(p) = p^k Q_k(p^2) with polynomials Q_k, the sum is
   :math:`\sum_k s^{-k} Q_k(v^2/s^2)`: an expansion in 1/s, valid for every v >= 0
   (it reduces to Hankel's expansion at v = 0) as long as s is large. The ratio comes
   from the companion expansion of I_v' (DLMF 10.41.4, polynomials V_k):

   .. math:: R_v(x) = \frac{I_v'(x)}{I_v(x)} - \frac{v}{x}
             = \frac{1}{x}\Big(s\,\frac{1 + \tau + D}{1 + \tau} - v\Big),
             \qquad 1 - R_v(x) = \frac{v - (s - x) - s D/(1+\tau)}{x},

   with :math:`\tau = \sum_{k\ge1} U_k(p)/v^k` and :math:`D = \sum_{k\ge1}
   (V_k - U_k)(p)/v^k` (both evaluated directly, D ~ -x^2/(2 s^3) < 0), so
   1 - R (~ (2v+1)/(2x) at large x) is a sum of two positive terms and keeps full
   relative precision; s - x = v^2/(s+x). The U_k and V_k are generated exactly
   (rational arithmetic) at import from U_{k+1} = p^2(1-p^2)U_k'/2
   + (1/8) int_0^p (1-5t^2) U_k(t) dt and V_k = U_k + p(p^2-1)(U_{k-1}/2 + p U_{k-1}').
   With s >= 30 and k <= 15 the first neglected terms are < 1.5e-17 (max over p of
   |Q_16| is 6.3e6, at p = 0: 6.3e6/30^16) and < 3e-17 for D. The exponentially small
   second exponential of I_v (relative size e^{-2s}) is below 1e-26 there. The scaled
   log keeps s - x = v^2/(s+x) and v log(x/(v+s)) = -v log1p((v + v^2/(s+x))/x), so
   ``log I_v(x) - x`` has no O(x) cancellation either.

``iv_ratio_derivative`` uses R' = delta (2 - delta) - (2v+1)(1 - delta)/x with
delta = 1 - R in the asymptotic regime. Its remaining relative error is about
x * 3e-16 (3e-11 measured at x = 1e5), from the cancellation between 2 delta and
(2v+1)/x; the power-series regime uses 1 - R^2 - (2v+1) (R/x) with R/x from the
series.

Domain: v >= 0 (``ValueError`` otherwise), x >= 0 and finite. Like the functions
in ``torch.special`` the tensor argument is not checked (that would force a
device-to-host copy): a negative or NaN x gives NaN. At x = 0: log I_0 = 0,
log I_v = -inf for v > 0, R_v = 0, R_v' = 1/(2(v+1)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from . import compiled

__all__ = [
    "log_iv",
    "iv_ratio",
    "log_iv_normalised",
    "log_ive",
    "iv_ratio_derivative",
    "bessel_terms",
    "BesselTerms",
    "SERIES_X_MAX",
    "SERIES_TERMS",
    "SERIES_Y_PER_ORDER",
    "DEBYE_TERMS",
]

#: Below this x the power series is used for every order (see module docstring).
#: The asymptotic expansion needs s = sqrt(v^2 + x^2) >= 30 for its 16 terms.
SERIES_X_MAX = 30.0
#: Number of power-series terms after the leading 1 (k = 1..SERIES_TERMS).
SERIES_TERMS = 48
#: The series is also used where x^2/4 <= SERIES_Y_PER_ORDER * (v + 1): there its
#: k-th term is below 8^k/k!, and 8^49/49! < 1e-18.
SERIES_Y_PER_ORDER = 8.0
#: Terms k = 0..DEBYE_TERMS-1 of the uniform asymptotic expansions of I_v and I_v'.
DEBYE_TERMS = 16



# ---------------------------------------------------------------------------------
# Debye polynomials, generated exactly once at import.
# ---------------------------------------------------------------------------------
def _debye_polynomials(n_terms: int) -> tuple[list[list[Fraction]], list[list[Fraction]]]:
    """Coefficients (in powers of p) of U_0..U_{n-1} and V_0..V_{n-1}, exact rationals.

    DLMF 10.41.9-10: U_{k+1}(p) = 1/2 p^2 (1-p^2) U_k'(p) + 1/8 int_0^p (1 - 5t^2) U_k(t) dt,
    U_0 = 1; V_k(p) = U_k(p) + p (p^2 - 1) (U_{k-1}(p)/2 + p U_{k-1}'(p)), V_0 = 1.
    (V_k are the polynomials of the expansion of I_v'.)
    """

    def trim(poly):
        while poly and poly[-1] == 0:
            poly.pop()
        return poly

    us = [[Fraction(1)]]
    for _ in range(n_terms - 1):
        u = us[-1]
        new = [Fraction(0)] * (len(u) + 3)
        for i in range(1, len(u)):  # 1/2 p^2 (1 - p^2) U_k'
            new[i + 1] += i * u[i] / 2
            new[i + 3] -= i * u[i] / 2
        for i, c in enumerate(u):  # 1/8 int_0^p (1 - 5t^2) U_k
            new[i + 1] += c / (8 * (i + 1))
            new[i + 3] -= 5 * c / (8 * (i + 3))
        us.append(trim(new))
    vs = [[Fraction(1)]]
    for k in range(1, n_terms):
        prev = us[k - 1]
        inner = [Fraction(0)] * (len(prev) + 1)  # U_{k-1}/2 + p U_{k-1}'
        for i, c in enumerate(prev):
            inner[i] += c / 2 + i * c
        new = list(us[k]) + [Fraction(0)] * (len(inner) + 3 - len(us[k]))
        for i, c in enumerate(inner):  # + (p^3 - p) * inner
            new[i + 3] += c
            new[i + 1] -= c
        vs.append(trim(new))
    return us, vs


def _debye_matrix(n_terms: int) -> list[list[float]]:
    """Rows k = 1..n-1 of [C_U | C_D], with
    U_k(p)/v^k = s^{-k} sum_j C_U[k][j] q^j and (V_k - U_k)(p)/v^k = s^{-k} sum_j C_D[k][j] q^j,
    p = v/s, q = p^2 (U_k and V_k are p^k times a polynomial in p^2 of degree k)."""

    def row(poly, k):
        out = [0.0] * n_terms
        for i, c in enumerate(poly):
            if c != 0:
                assert i >= k and (i - k) % 2 == 0  # only p^k, p^(k+2), ..., p^(3k)
                out[(i - k) // 2] = float(c)
        return out

    us, vs = _debye_polynomials(n_terms)
    mat = []
    for k in range(1, n_terms):
        diff = [(vs[k][i] if i < len(vs[k]) else 0) - (us[k][i] if i < len(us[k]) else 0)
                for i in range(max(len(us[k]), len(vs[k])))]
        mat.append(row(us[k], k) + row(diff, k))
    return mat


_DEBYE_MATRIX = _debye_matrix(DEBYE_TERMS)
_TWO_PI = 2.0 * math.pi


class _Order:
    """Constants of one order v on one device (cached for Python-number orders).

    ``v`` is a float, or a float64 tensor already broadcast to x's shape.
    """

    def __init__(self, v, device: torch.device):
        tensor = isinstance(v, torch.Tensor)
        self.v = v
        self.w = v + 1.0
        self.two_v_plus_1 = 2.0 * v + 1.0
        self.lgamma_v1 = torch.lgamma(v + 1.0) if tensor else math.lgamma(v + 1.0)
        self.v_t = v if tensor else torch.tensor(v, dtype=torch.float64, device=device)
        # The series is used where y = x^2/4 <= y_small (besides x < SERIES_X_MAX), and
        # its input is clamped to y_cap so that the branch torch.where discards never
        # overflows.
        self.y_small = SERIES_Y_PER_ORDER * (v + 1.0)
        self.y_cap = (torch.clamp(self.y_small, min=0.25 * SERIES_X_MAX**2) if tensor
                      else max(self.y_small, 0.25 * SERIES_X_MAX**2))
        k = torch.arange(1, SERIES_TERMS + 1, dtype=torch.float64, device=device)
        vv = v.unsqueeze(-1) if tensor else v
        # 1/(k (v+k)) and 1/(k (v+1+k)): the series' term ratios, divided by y.
        self.inv_den = torch.stack([1.0 / (k * (vv + k)), 1.0 / (k * (vv + 1.0 + k))], dim=-2)
        self.debye_c = torch.tensor(_DEBYE_MATRIX, dtype=torch.float64, device=device)


_ORDER_CACHE: dict[tuple[float, torch.device], _Order] = {}


def _order(v, device: torch.device) -> _Order:
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:  # per-element orders, already checked and broadcast
            return _Order(v, device)
        if v.requires_grad:
            raise ValueError("v: the Bessel order is not differentiable; pass a constant")
        v = v.item()
    v = float(v)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"v: the Bessel order must be finite and >= 0, got {v}")
    key = (v, device)
    order = _ORDER_CACHE.get(key)
    if order is None:
        if len(_ORDER_CACHE) > 256:  # orders come from a handful of dimensions
            _ORDER_CACHE.clear()
        order = _ORDER_CACHE[key] = _Order(v, device)
    return order


# ---------------------------------------------------------------------------------
# The uniform asymptotic expansion (float64 in, float64 out, no autograd).
# ---------------------------------------------------------------------------------
def _debye_tails(o: _Order, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(tau, D) at s = sqrt(v^2 + x^2) >= 30, q = v^2/s^2:

    tau = sum_{k>=1} U_k(p)/v^k = sum_{k>=1} s^{-k} Q^U_k(q)   (I_v's sum is 1 + tau),
    D = sum_{k>=1} (V_k - U_k)(p)/v^k                          (I_v''s sum is 1 + tau + D),
    each evaluated directly (D ~ -x^2/(2 s^3) is not formed as a difference).
    """
    t = 1.0 / s
    q = (o.v * t) ** 2
    n = DEBYE_TERMS - 1
    t_pow = torch.cumprod(t.unsqueeze(-1).expand(*t.shape, n), -1)  # s^{-k}, k = 1..n
    q_pow = torch.cumprod(q.unsqueeze(-1).expand(*q.shape, n), -1)  # q^j, j = 1..n
    p = (t_pow @ o.debye_c).unflatten(-1, (2, n + 1))  # [..., (U, D), j = 0..n]
    both = p[..., 0] + (p[..., 1:] * q_pow.unsqueeze(-2)).sum(-1)
    return both[..., 0], both[..., 1]


@dataclass
class BesselTerms:
    """float64 quantities for one (v, x); fields not requested are None.

    ``small`` marks the power-series regime (x < 30 or x^2/4 <= 8(v+1)), where
    ``log_normalised`` is computed directly; elsewhere ``log_ive`` is.
    """

    small: torch.Tensor
    log_normalised: torch.Tensor | None = None  # log(Gamma(v+1) (2/x)^v I_v(x))
    log_ive: torch.Tensor | None = None  # log I_v(x) - x
    log_iv: torch.Tensor | None = None  # log I_v(x)
    ratio: torch.Tensor | None = None  # R = I_{v+1}/I_v
    one_minus_ratio: torch.Tensor | None = None  # 1 - R
    ratio_derivative: torch.Tensor | None = None  # dR/dx


def _pick(small: torch.Tensor, any_small: bool, all_small: bool, a, b):
    """where(small, a, b) without computing the branch that no element uses."""
    if all_small:
        return a
    if not any_small:
        return b
    return torch.where(small, a, b)


def bessel_terms(v, x: torch.Tensor, *, log_normalised: bool = False, log_ive: bool = False,
                 log_iv: bool = False, ratio: bool = False, derivative: bool = False,
                 native_logs: bool = False, backend: str | None = None) -> BesselTerms:
    """Evaluate the requested Bessel quantities in float64 (no autograd).

    ``x`` must be a float64 tensor; ``v`` a number or a tensor broadcastable to it.
    ``derivative`` implies ``ratio`` (which returns ``ratio`` and ``one_minus_ratio``).
    ``native_logs``: fill ``log_normalised`` only where ``small`` and ``log_ive`` only
    elsewhere (the other entries are unspecified), skipping the conversions between them;
    for callers that pick per element with ``torch.where(small, ...)``.
    This is the engine behind the public functions and the vMF. On CPU a branch
    (series or asymptotic) that no element needs is skipped, at the cost of two cheap
    host reads; on other devices both are computed and merged with ``torch.where``
    (no synchronisation).

    ``backend``: with ``native_logs``, a Python-number order and float64 CPU ``x``, the
    default (None or "numba") is the compiled loop of ``special_kernels`` where numba
    imports (one pass instead of ~30 tensor operations; the same regimes and
    coefficients); "torch" keeps the tensor operations below, which every other
    request uses.
    """
    if backend not in (None, "numba", "torch"):
        raise ValueError(f"backend must be 'numba' or 'torch', got {backend!r}")
    if (native_logs and backend != "torch" and not isinstance(v, torch.Tensor)
            and x.device.type == "cpu" and x.dtype == torch.float64 and compiled.available()):
        return _bessel_terms_compiled(_order(v, x.device), x, log_normalised, log_ive, ratio or derivative,
                                      derivative)
    if backend == "numba":
        raise ValueError("backend 'numba' needs native_logs, a number as the order, float64 CPU x and numba")
    if isinstance(v, torch.Tensor) and v.numel() != 1:  # per-element orders
        if v.requires_grad:
            raise ValueError("v: the Bessel order is not differentiable; pass a constant")
        v, x = torch.broadcast_tensors(v.to(dtype=torch.float64, device=x.device), x)
        if not bool(((v >= 0) & torch.isfinite(v)).all()):
            raise ValueError("v: the Bessel order must be finite and >= 0")
    o = _order(v, x.device)
    v = o.v
    ratio = ratio or derivative
    need_log = log_normalised or log_ive or log_iv
    y = 0.25 * x * x
    small = (x < SERIES_X_MAX) | (y <= o.y_small)
    if x.device.type == "cpu":
        any_small = bool(small.any())
        all_small = any_small and bool(small.all())
    else:
        any_small, all_small = True, False
    out = BesselTerms(small=small)
    log_norm_s = r_s = omr_s = der_s = None
    log_ive_d = r_d = omr_d = der_d = None

    if any_small:  # power series, on y clamped into its region
        y_s = y if all_small else torch.clamp(y, max=o.y_cap)
        if ratio:
            sums = torch.cumprod(y_s.unsqueeze(-1).unsqueeze(-1) * o.inv_den, -1).sum(-1)
            s_v, s_w = sums[..., 0], sums[..., 1]
        else:
            s_v = torch.cumprod(y_s.unsqueeze(-1) * o.inv_den[..., 0, :], -1).sum(-1)
        log_norm_s = torch.log1p(s_v)
        if ratio:
            r_over_x = (1.0 + s_w) / ((1.0 + s_v) * (2.0 * o.w))  # R/x, finite at x = 0
            r_s = r_over_x * (x if all_small else 2.0 * torch.sqrt(y_s))
            omr_s = 1.0 - r_s
            if derivative:
                der_s = 1.0 - r_s * r_s - o.two_v_plus_1 * r_over_x
    if not all_small:  # uniform asymptotic expansion, on x >= SERIES_X_MAX
        x_d = x if not any_small else torch.clamp(x, min=SERIES_X_MAX)
        s = torch.hypot(o.v_t, x_d)
        tau, d_sum = _debye_tails(o, s)
        s_plus_x = s + x_d
        s_minus_x = v * v / s_plus_x
        if ratio:
            # R = I_v'/I_v - v/x = (s (1 + tau + D)/(1 + tau) - v)/x (DLMF 10.41.3-4), so
            # 1 - R = [v - (s - x) - s D/(1 + tau)]/x, two positive terms (D < 0).
            omr_d = (v - s_minus_x - s * d_sum / (1.0 + tau)) / x_d
            r_d = 1.0 - omr_d
            if derivative:
                der_d = omr_d * (2.0 - omr_d) - o.two_v_plus_1 * r_d / x_d
        if need_log:
            # log I_v(x) - x = (s - x) + v log(x/(v+s)) - log(2 pi s)/2 + log(1 + tau),
            # with v log(x/(v+s)) = -v log1p((v + s - x)/x).
            log_ive_d = (s_minus_x - v * torch.log1p((v + s_minus_x) / x_d)
                         - 0.5 * torch.log(_TWO_PI * s) + torch.log1p(tau))

    if need_log and not native_logs:
        # log((x/2)^v / Gamma(v+1)); xlogy gives 0 for v = 0 at x = 0 (I_0(0) = 1).
        log_pref = torch.xlogy(o.v_t, 0.5 * x) - o.lgamma_v1
        if log_normalised:
            # In the asymptotic regime x >= 30 and x^2/4 > 8(v+1), so log_normalised is
            # at least ~8 and this subtraction keeps ~1e-13 relative accuracy (the
            # rounding of lgamma(v+1); checked at v = 499 in the tests).
            out.log_normalised = _pick(small, any_small, all_small, log_norm_s,
                                       None if all_small else log_ive_d + x - log_pref)
        if log_ive:
            out.log_ive = _pick(small, any_small, all_small,
                                None if not any_small else log_norm_s + log_pref - x, log_ive_d)
        if log_iv:
            out.log_iv = _pick(small, any_small, all_small,
                               None if not any_small else log_norm_s + log_pref,
                               None if all_small else log_ive_d + x)
    if native_logs:
        out.log_normalised, out.log_ive = log_norm_s, log_ive_d
    if ratio:
        out.ratio = _pick(small, any_small, all_small, r_s, r_d)
        out.one_minus_ratio = _pick(small, any_small, all_small, omr_s, omr_d)
        if derivative:
            out.ratio_derivative = _pick(small, any_small, all_small, der_s, der_d)
    return out


def _bessel_terms_compiled(o: _Order, x: torch.Tensor, log_normalised: bool, log_ive: bool,
                           ratio: bool, derivative: bool) -> BesselTerms:
    """``bessel_terms`` with ``native_logs`` by ``special_kernels.bessel_terms_native``."""
    from .special_kernels import bessel_terms_native

    flat = x.detach().reshape(-1).contiguous().numpy()
    small = np.empty(flat.shape[0], dtype=bool)
    out = np.empty((5, flat.shape[0]))  # log_normalised, log_ive, R, 1 - R, R'
    n_small = bessel_terms_native(flat, float(o.v), o.inv_den.numpy(), o.debye_c.numpy(), SERIES_X_MAX,
                                  float(o.y_small), small, *out)
    any_small, all_small = n_small > 0, n_small == flat.shape[0]
    out = torch.from_numpy(out)
    if x.dim() != 1:
        out = out.reshape(5, *x.shape)
    log_norm, log_ive_t, r, omr, der = out  # (views; x's shape)
    return BesselTerms(
        small=torch.from_numpy(small).reshape(x.shape),
        log_normalised=log_norm if log_normalised and any_small else None,
        log_ive=log_ive_t if log_ive and not all_small else None,
        ratio=r if ratio else None, one_minus_ratio=omr if ratio else None,
        ratio_derivative=der if derivative else None)


# ---------------------------------------------------------------------------------
# Autograd wrappers.
# ---------------------------------------------------------------------------------
def _prepare(x) -> tuple[torch.Tensor, torch.dtype]:
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x, dtype=torch.get_default_dtype())
    if not torch.is_floating_point(x):
        raise ValueError(f"x: expected a floating-point tensor, got dtype {x.dtype}")
    return x, x.dtype


def _domain(x: torch.Tensor) -> torch.Tensor:
    """x as float64, with NaN where x < 0 (outside the domain), as torch.special does."""
    x = x.detach().to(torch.float64)
    return torch.where(x >= 0, x, float("nan"))


class _LogIv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, v):
        t = bessel_terms(v, _domain(x), log_iv=True)
        ctx.v = v
        ctx.save_for_backward(x)
        return t.log_iv.to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        v = ctx.v
        # d/dx log I_v(x) = R_v(x) + v/x (A&S 9.6.26); v/x is taken as 0 for v = 0.
        v_t = torch.as_tensor(v, dtype=x.dtype, device=x.device)
        v_over_x = torch.where(v_t == 0, torch.zeros_like(x), v_t / x)
        return grad * (iv_ratio(v, x) + v_over_x), None


class _LogIvNormalised(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, v):
        t = bessel_terms(v, _domain(x), log_normalised=True)
        ctx.v = v
        ctx.save_for_backward(x)
        return t.log_normalised.to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        # d/dx [log I_v(x) - v log x] = R_v(x).
        return grad * iv_ratio(ctx.v, x), None


class _LogIve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, v):
        t = bessel_terms(v, _domain(x), log_ive=True, ratio=True)
        ctx.v = v
        ctx.save_for_backward(x, t.one_minus_ratio)
        return t.log_ive.to(x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, one_minus_ratio = ctx.saved_tensors
        # d/dx (log I_v(x) - x) = R_v + v/x - 1 = v/x - (1 - R_v); v/x is 0 for v = 0.
        x64 = x.to(torch.float64)
        v = torch.as_tensor(ctx.v, dtype=torch.float64, device=x.device)
        v_over_x = torch.where(v == 0, torch.zeros_like(x64), v / x64)
        return grad * (v_over_x - one_minus_ratio).to(grad.dtype), None


class _IvRatio(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, v):
        t = bessel_terms(v, _domain(x), derivative=True)
        ctx.save_for_backward(t.ratio_derivative)
        return t.ratio.to(x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (der,) = ctx.saved_tensors
        return grad * der.to(grad.dtype), None


def log_iv(v, x: torch.Tensor) -> torch.Tensor:
    r"""log I_v(x), the log of the modified Bessel function of the first kind.

    ``v`` >= 0 (number or tensor, broadcast with ``x``), not differentiated.
    Gradient: d/dx log I_v(x) = I_{v+1}(x)/I_v(x) + v/x (twice differentiable).
    """
    x, _ = _prepare(x)
    return _LogIv.apply(x, v)


def log_iv_normalised(v, x: torch.Tensor) -> torch.Tensor:
    r"""log(Gamma(v+1) (2/x)^v I_v(x)) = log of the series sum_k (x^2/4)^k/(k!(v+1)_k).

    Equals 0 at x = 0 and x^2/(4(v+1)) + O(x^4) near it, with full relative
    accuracy (no cancellation). Gradient: I_{v+1}(x)/I_v(x).
    """
    x, _ = _prepare(x)
    return _LogIvNormalised.apply(x, v)


def log_ive(v, x: torch.Tensor) -> torch.Tensor:
    r"""log I_v(x) - x = log of ``scipy.special.ive``, finite where I_v overflows.

    Gradient: v/x - (1 - I_{v+1}(x)/I_v(x)), formed in float64 (once differentiable).
    """
    x, _ = _prepare(x)
    return _LogIve.apply(x, v)


def iv_ratio(v, x: torch.Tensor) -> torch.Tensor:
    r"""R_v(x) = I_{v+1}(x) / I_v(x), in [0, 1).

    Gradient: R' = 1 - R^2 - (2v+1) R/x (A&S 9.6.26), evaluated stably
    (see ``iv_ratio_derivative``); once differentiable.
    """
    x, _ = _prepare(x)
    return _IvRatio.apply(x, v)


def iv_ratio_derivative(v, x: torch.Tensor) -> torch.Tensor:
    r"""dR_v/dx = 1 - R^2 - (2v+1) R/x, formed without cancellation (not differentiable).

    For the vMF with v = m/2-1 this is dA_m/dkappa = Var(loc . z).
    """
    x, dtype = _prepare(x)
    with torch.no_grad():
        return bessel_terms(v, _domain(x), derivative=True).ratio_derivative.to(dtype)
