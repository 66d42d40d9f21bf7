r"""Compiled (numba) CPU kernels for the wrapped normal's three fused nodes.

The sampling map with log q, the log density at the origin and the exponential map at
the origin (``wrapped_normal_fused``, whose module docstring derives every formula and
the numbered guards used here, and whose torch forms stay the reference the tests
compare against), each forward and backward as one loop over rows instead of 20-40
torch operations of a few microseconds each. Rows are flat: the caller broadcasts
every argument to one leading shape, reshapes it to (rows, features), and reduces the
gradients of broadcast parameters.

All arithmetic is float64 whatever the arrays' dtype (float32 results are rounded
once, at the store), so the series switches are float64's (note 2: D below
``D_SERIES_BELOW`` = 0.3; note 1: sinh(r)/r below 0.01); the step clamp and the sample
cap (notes 3 and 4) are the dtype's, passed in as ``r_max``, so that the values agree
with the torch forms. The backward kernels recompute the forward's intermediates from
the inputs (a few flops per coordinate) instead of saving a dozen arrays.

Importing this module imports numba; ``wrapped_normal_fused`` imports it where a kernel
is about to run, after ``ccvae.compiled.available()``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..compiled import jit
from ..manifolds.lorentz import _SERIES_BELOW as SINHC_SERIES_BELOW
from ..manifolds.lorentz import _SINHC_COEFFS
from .wrapped_normal_fused import _D_COEFFS
from .wrapped_normal_fused import D_SERIES_BELOW as _D_SERIES_BELOW

__all__ = ["sample_forward", "sample_backward", "origin_log_density_forward",
           "origin_log_density_backward", "origin_expmap_forward", "origin_expmap_backward"]

_f64 = np.float64  # numba's float() keeps a float32 a float32; np.float64 widens
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
#: Note 2: D(r) = (cosh r - sinh(r)/r)/r^2 by its Taylor series below float64's switch
#: (the loops compute in float64). Note 1's sinh(r)/r series and switch are
#: ``ccvae.manifolds.lorentz``'s. The series' coefficients, highest first, for Horner.
D_SERIES_BELOW = _D_SERIES_BELOW[torch.float64]
_D_HORNER = tuple(reversed(_D_COEFFS))
_SINHC_HORNER = tuple(reversed(_SINHC_COEFFS))


@jit
def _sinhc(r, sinh_r):
    """sinh(r)/r from r and sinh(r), or sinh(r_max) beyond the clamp (note 1)."""
    if r < SINHC_SERIES_BELOW:
        r2 = r * r
        total = 0.0
        for c in _SINHC_HORNER:
            total = total * r2 + c
        return total
    return sinh_r / r


@jit
def _d_of_r(r, cosh_r, s):
    """D(r) = (cosh r - s)/r^2 = s'(r)/r; below ``D_SERIES_BELOW`` its series
    sum_k 2k/(2k+1)! r^(2k-2) to six terms (note 2)."""
    if r < D_SERIES_BELOW:
        r2 = r * r
        total = 0.0
        for c in _D_HORNER:
            total = total * r2 + c
        return total
    return (cosh_r - s) / (r * r)


@jit
def _sample_row(loc, scale, eps, i, r_max, v, x):
    """The forward quantities of one row of the sampling map: fills v (d,) and x (d,)
    (capped) and returns (r, r_c, s, cosh_r, a, inv_1py0, coef_m, z0, cap)."""
    d = eps.shape[1]
    r2 = 0.0
    m_v = 0.0
    for j in range(d):
        v[j] = _f64(eps[i, j]) * _f64(scale[i, j])
        r2 += v[j] * v[j]
        m_v += _f64(loc[i, j + 1]) * v[j]
    r = math.sqrt(r2)
    r_c = min(r, r_max)  # note 3
    cosh_r = math.cosh(r_c)
    s = _sinhc(r, math.sinh(r_c))
    inv_1py0 = 1.0 / (1.0 + _f64(loc[i, 0]))  # 1 + mu_0 >= 2 on H^d
    a = m_v * inv_1py0
    coef_m = cosh_r + s * a
    sq = 0.0
    for j in range(d):
        x[j] = coef_m * _f64(loc[i, j + 1]) + s * v[j]
        sq += x[j] * x[j]
    limit = math.sinh(r_max)
    cap = 1.0
    if sq > limit * limit:  # note 4: pull the sample back along its ray
        cap = limit / math.sqrt(sq)
        for j in range(d):
            x[j] *= cap
        sq = limit * limit
    return r, r_c, s, cosh_r, a, inv_1py0, coef_m, math.sqrt(sq + 1.0), cap


@jit
def sample_forward(loc, scale, eps, r_max, z, log_q):
    """z (rows, d+1) and log q (rows,) of ``_WrappedNormalSample.forward``."""
    rows, d = eps.shape
    v = np.empty(d)
    x = np.empty(d)
    for i in range(rows):
        r, r_c, s, cosh_r, a, inv_1py0, coef_m, z0, cap = _sample_row(loc, scale, eps, i, r_max, v, x)
        z[i, 0] = z0
        total = 0.0
        for j in range(d):
            z[i, j + 1] = x[j]
            e = _f64(eps[i, j])
            total += -0.5 * e * e - math.log(_f64(scale[i, j]))
        total -= d * _HALF_LOG_2PI
        if d > 1:
            total -= (d - 1) * math.log(s)
        log_q[i] = total


@jit
def sample_backward(loc, scale, eps, grad_z, grad_log_q, r_max, grad_loc, grad_scale):
    """Gradients of ``_WrappedNormalSample`` with respect to loc (rows, d+1) and scale
    (rows, d), unreduced (module docstring of ``wrapped_normal_fused``)."""
    rows, d = eps.shape
    v = np.empty(d)
    x = np.empty(d)
    g_x = np.empty(d)
    inv_scale = np.empty(d)
    for i in range(rows):
        for j in range(d):
            inv_scale[j] = 1.0 / _f64(scale[i, j])
        r, r_c, s, cosh_r, a, inv_1py0, coef_m, z0, cap = _sample_row(loc, scale, eps, i, r_max, v, x)
        g0_over_z0 = _f64(grad_z[i, 0]) / z0
        for j in range(d):  # z0 = sqrt(1 + |x|^2): dz0/dx = x / z0
            g_x[j] = _f64(grad_z[i, j + 1]) + g0_over_z0 * x[j]
        if cap < 1.0:  # note 4: x = c x_raw/|x_raw|, g_raw = c (g - x^ (x^.g))
            proj = 0.0
            norm2 = 0.0
            for j in range(d):
                proj += x[j] * g_x[j]
                norm2 += x[j] * x[j]
            proj /= norm2
            for j in range(d):
                g_x[j] = (g_x[j] - proj * x[j]) * cap
        m_g = 0.0
        v_g = 0.0
        for j in range(d):
            m_g += _f64(loc[i, j + 1]) * g_x[j]
            v_g += v[j] * g_x[j]
        s_mg = s * m_g * inv_1py0
        g_q = _f64(grad_log_q[i])
        u_g = v_g + a * m_g  # u = v + a m
        if r > r_c:  # note 3: cosh frozen, s = sinh(r_max)/r
            d_r = -s / (r * r)
            dcosh_over_r = 0.0
        else:
            d_r = _d_of_r(r, cosh_r, s)
            dcosh_over_r = s
        radial = dcosh_over_r * m_g + d_r * u_g
        if d > 1:  # the -(d-1) log s term of log q
            radial -= (d - 1) * d_r / s * g_q
        grad_loc[i, 0] = -s_mg * a
        for j in range(d):
            m_j = _f64(loc[i, j + 1])
            grad_v = s * g_x[j] + s_mg * m_j + radial * v[j]
            # v = eps * scale, and d log q / d scale = -1/scale (eps held fixed)
            grad_scale[i, j] = grad_v * _f64(eps[i, j]) - g_q * inv_scale[j]
            grad_loc[i, j + 1] = coef_m * g_x[j] + s_mg * v[j]


@jit
def _log_density_row(t, scale, i):
    """(n, r, k, q) of one row: n = |t|, r = asinh(n), k = r/n, q = sum t^2/scale^2."""
    d = t.shape[1]
    n2 = 0.0
    q = 0.0
    for j in range(d):
        tj = _f64(t[i, j])
        inv = 1.0 / _f64(scale[i, j])
        n2 += tj * tj
        q += tj * tj * inv * inv
    n = math.sqrt(n2)
    r = math.asinh(n)  # dist(mu0, z), exact: sinh(dist) = |t| on H^d
    return n, r, 1.0 / _sinhc(r, n), q


@jit
def origin_log_density_forward(t, scale, out):
    """log p(z) (rows,) of ``_OriginLogDensity.forward``."""
    rows, d = t.shape
    for i in range(rows):
        n, r, k, q = _log_density_row(t, scale, i)
        total = -0.5 * k * k * q - d * _HALF_LOG_2PI
        for j in range(d):
            total -= math.log(_f64(scale[i, j]))
        if d > 1:
            total += (d - 1) * math.log(k)
        out[i] = total


@jit
def origin_log_density_backward(t, scale, grad, grad_t, grad_scale):
    """Unreduced gradients of ``_OriginLogDensity`` in t and scale (rows, d)."""
    rows, d = t.shape
    for i in range(rows):
        n, r, k, q = _log_density_row(t, scale, i)
        g = _f64(grad[i])
        k2 = k * k
        cosh_r = math.sqrt(n * n + 1.0)
        e = -_d_of_r(r, cosh_r, 1.0 / k) * (k2 * k) / cosh_r  # k'(n)/n
        radial = (d - 1) / k - k * q
        radial_e = radial * e
        for j in range(d):
            tj = _f64(t[i, j])
            inv = 1.0 / _f64(scale[i, j])
            t_over_var = tj * inv * inv
            grad_t[i, j] = (-k2 * t_over_var + radial_e * tj) * g
            grad_scale[i, j] = (k2 * t_over_var * tj - 1.0) * inv * g


@jit
def _expmap_row(v, i, r_max):
    """(r, r_c, s) of one row of the exp map at the origin (notes 1 and 3)."""
    r2 = 0.0
    for j in range(v.shape[1]):
        r2 += _f64(v[i, j]) * _f64(v[i, j])
    r = math.sqrt(r2)
    r_c = min(r, r_max)
    return r, r_c, _sinhc(r, math.sinh(r_c))


@jit
def origin_expmap_forward(v, r_max, z):
    """z = exp_o((0, v)) (rows, d+1) of ``_OriginExpmap.forward``."""
    rows, d = v.shape
    for i in range(rows):
        r, r_c, s = _expmap_row(v, i, r_max)
        sq = 0.0
        for j in range(d):
            x = s * _f64(v[i, j])
            z[i, j + 1] = x
            sq += x * x
        z[i, 0] = math.sqrt(sq + 1.0)


@jit
def origin_expmap_backward(v, grad, r_max, grad_v):
    """g_v = s g_x' + D(r) (v . g_x') v, g_x' = g_x + g_0 x / z_0 (rows, d)."""
    rows, d = v.shape
    for i in range(rows):
        r, r_c, s = _expmap_row(v, i, r_max)
        g0_s_over_z0 = _f64(grad[i, 0]) * s / math.sqrt(s * s * r * r + 1.0)  # |x| = s r
        v_g = 0.0
        for j in range(d):
            vj = _f64(v[i, j])
            v_g += vj * (_f64(grad[i, j + 1]) + g0_s_over_z0 * vj)
        d_r = -s / (r * r) if r > r_c else _d_of_r(r, math.cosh(r_c), s)
        radial = d_r * v_g
        for j in range(d):
            vj = _f64(v[i, j])
            grad_v[i, j] = s * (_f64(grad[i, j + 1]) + g0_s_over_z0 * vj) + radial * vj
