r"""Compiled (numba) CPU kernels for the von Mises-Fisher's elementwise float64 work.

The formulas are those of ``von_mises_fisher`` (whose docstrings derive them and whose
numpy/torch forms stay the reference the tests compare against); here they run as one
loop per sample instead of one array operation per step. At a training batch
(128 samples) each numpy operation costs ~1 us whatever its size and the sampler, the
quadrature and the reflection node are 40-100 such operations each, so the loops win
(measured on the 2-core development CPU, B = 128, m = 11, kappa = 500: sampler
137 -> 55 us with torch's draws, quadrature kernel 140 -> 74 us, reflection forward
41 -> 5 us). The quadrature's nodes, 20 per sample, run in ``ccvae.simd_math``'s
branch-free sin, log and exp, which LLVM vectorises (about 10 ns per node against
~29 ns with libm's scalar calls), so the loop also beats numpy's SIMD array form at
large batches and is used at every size.

Importing this module imports numba: ``von_mises_fisher`` imports it where a kernel
is about to run, after ``ccvae.compiled.available()``, and uses the numpy forms where
numba cannot be imported. Each kernel is compiled on its first use (2.3 s for all four
on the development machine) and cached on disk (0.6 s to load them in a new process);
see ``ccvae.compiled``.

Every function writes into output arrays the caller allocates, and all arithmetic is
float64 whatever the arrays' dtype (float32 samples are rounded once, at the store).
"""

from __future__ import annotations

import math

import numpy as np

from .. import simd_math
from ..compiled import jit, jit_vectorised
from .von_mises_fisher import _FLOAT64_TINY  # the floor of 1 - w

__all__ = ["wood_round", "dw_dkappa", "reflect_forward", "reflect_backward", "kl_and_gradient"]

#: Element reads go through np.float64: numba's float() keeps a float32 a float32 (so
#: its arithmetic would be float32, not the float64 the numpy forms do).
_f64 = np.float64




@jit
def wood_round(kappa, normals, uniforms, m, rows, omega, done):
    """One rejection round of ``von_mises_fisher._wood_round`` for the elements ``rows``
    (int64 indices), row by row.

    ``kappa`` (n,) and ``omega`` (n,) float32 or float64; ``normals`` and ``uniforms``
    (2, len(rows), P) torch's draws (float32 or float64). Each row takes its first
    accepted proposal, as the vectorised round does (so both give the same sample from
    the same draws), and stops there. Writes ``omega[i]`` = 1 - w (computed in float64,
    rounded once to omega's dtype) and ``done[i]`` = True for rows with an accepted
    proposal, and leaves the others untouched. NaN parameters are never accepted
    (every comparison with NaN is False).
    """
    n_prop = normals.shape[2]
    mm1 = _f64(m - 1)
    d = 0.5 * (m - 1) - 1.0 / 3.0  # Marsaglia & Tsang's Gamma((m-1)/2) step
    c = 1.0 / math.sqrt(9.0 * d) if m > 3 else 0.0
    for r in range(rows.shape[0]):
        i = rows[r]
        k = _f64(kappa[i])
        b = mm1 / (2.0 * k + math.sqrt(4.0 * k * k + mm1 * mm1))
        delta0 = 2.0 * b / (1.0 + b)
        offset = k * delta0 - mm1 * math.log(delta0 * (2.0 - delta0))
        for j in range(n_prop):
            u0 = _f64(uniforms[0, r, j])
            if m == 2:  # the arcsine law
                t = math.tan(u0 * (0.5 * math.pi))
                p = t * t
                q = 1.0
            elif m == 3:  # Beta(1, 1)
                p = u0
                q = 1.0 - u0
            else:
                g_gamma = _f64(normals[0, r, j])
                g = _f64(normals[1, r, j])
                a = g_gamma * c + 1.0
                if not a > 0.0:
                    continue
                a3 = a * a * a
                if not math.log(u0) - 0.5 * g_gamma * g_gamma < (math.log(a) * 3.0 - a3 + 1.0) * d:
                    continue
                chi2 = a3 * (2.0 * d)
                big = math.sqrt(chi2 + g * g) + abs(g)
                small = chi2 / big
                if g > 0:
                    p, q = big, small
                else:
                    p, q = small, big
            om = 2.0 * b * p / (q + b * p)
            log_ratio = math.log(delta0 + om * (1.0 - delta0)) * mm1 + (offset - k * om)
            if math.log(_f64(uniforms[1, r, j])) <= log_ratio:
                omega[i] = om
                done[i] = True
                break


#: Samples per block of ``dw_dkappa``: its per-sample values (seven float64 arrays of
#: this length, 14 KB) stay in the L1 cache while the node loop passes over them 20 times.
QUADRATURE_BLOCK = 256


@jit_vectorised
def _node_terms(x_j, w_j, h, count, k, u_w, log_sin2_w, oma, quarter, middle, total):
    """``dw_dkappa``'s node j across a block (m > 2): total += w_j |1 - A - u| f(u)."""
    for r in range(count):
        s = simd_math.sin_half_pi(x_j * quarter[r] + middle[r])  # psi = phi/2 in [0, pi/2]
        u = 2.0 * s * s  # u = 1 - cos(phi) = 2 sin^2(psi)
        log_f = k[r] * (u_w[r] - u) + h * (simd_math.log(u * (2.0 - u)) - log_sin2_w[r])
        log_f = min(max(log_f, -700.0), 700.0)
        total[r] += w_j * abs(oma[r] - u) * simd_math.exp(log_f)


@jit_vectorised
def _node_terms_circle(x_j, w_j, count, k, u_w, oma, quarter, middle, total):
    """``_node_terms`` for m = 2 (no sin^(m-2) factor)."""
    for r in range(count):
        s = simd_math.sin_half_pi(x_j * quarter[r] + middle[r])
        u = 2.0 * s * s
        log_f = min(max(k[r] * (u_w[r] - u), -700.0), 700.0)
        total[r] += w_j * abs(oma[r] - u) * simd_math.exp(log_f)


@jit_vectorised
def dw_dkappa(kappa, omega, one_minus_mean, m, nodes, weights, window, out):
    """``von_mises_fisher._implicit_w_gradient`` on flat arrays of one length (float32 or
    float64, read as float64), dw/dkappa into ``out`` (float64). The same window (a
    Newton step from a Gaussian estimate to where the integrand has fallen by
    e^-log_drop) and Gauss-Legendre rule in phi, with the same clamps. ``window`` is (log_drop, left_sigmas, right_sigmas), the constants
    ``von_mises_fisher`` documents.

    Block by block of ``QUADRATURE_BLOCK`` samples: first each sample's window and
    constants (a dozen scalar calls per sample, libm's asin among them), then the
    nodes, node by node across the block, in ``simd_math``'s branch-free sin, log and
    exp, a loop LLVM vectorises (m = 10, 20 nodes x 1024 samples: about 0.17 ms, and
    0.27 ms with the setup, against 0.45 ms for the node loop with libm's scalar calls
    and 0.64 ms for numpy's array form).
    """
    log_drop, left_sigmas, right_sigmas = window
    h = 0.5 * (m - 2)
    mm2 = _f64(m - 2)
    n = omega.shape[0]
    size = min(n, QUADRATURE_BLOCK)
    k_b, u_w_b, log_sin2_w_b, oma_b = np.empty(size), np.empty(size), np.empty(size), np.empty(size)
    quarter_b, middle_b, total_b = np.empty(size), np.empty(size), np.empty(size)
    for first in range(0, n, size):
        count = min(size, n - first)
        for r in range(count):
            i = first + r
            k = _f64(kappa[i])
            oma = _f64(one_minus_mean[i])
            om = _f64(omega[i])
            upper = om <= oma  # w >= A: integrate over [0, theta]
            u_w = max(om, _FLOAT64_TINY)
            sin2_w = u_w * (2.0 - u_w)
            theta = 2.0 * math.asin(min(math.sqrt(0.5 * u_w), 1.0))
            if m > 2:
                root = math.sqrt(4.0 * k * k + mm2 * mm2)
                inv = 1.0 / (root + mm2)
                cos_mode = 2.0 * k * inv
                u_mode = (mm2 + mm2 * mm2 / (root + 2.0 * k)) * inv
                log_sin2_mode = simd_math.log(u_mode * (2.0 - u_mode))
                sigma = 1.0 / math.sqrt(k * (cos_mode + 1.0 / cos_mode))
                phi_mode = 2.0 * math.asin(math.sqrt(0.5 * u_mode))
                log_sin2_w = simd_math.log(sin2_w)
                drop_w = k * (u_w - u_mode) - h * (log_sin2_w - log_sin2_mode)
            else:  # the circle
                sigma = 1.0 / math.sqrt(k)
                phi_mode = u_mode = log_sin2_mode = log_sin2_w = 0.0
                drop_w = k * u_w
            level = drop_w + log_drop
            if upper:
                start = min(phi_mode - left_sigmas * sigma, theta)
            else:
                start = max(phi_mode + right_sigmas * sigma, theta)
            if 0.0 < start < math.pi:
                s0 = simd_math.sin_half_pi(0.5 * start)
                u0 = 2.0 * s0 * s0
                if m > 2:
                    log_sin2_0 = simd_math.log(u0 * (2.0 - u0))
                    drop_0 = k * (u0 - u_mode) - h * (log_sin2_0 - log_sin2_mode)
                    slope_0 = k - mm2 * (1.0 - u0) / simd_math.exp(log_sin2_0)
                    u_cut = u0 + (level - drop_0) / slope_0
                else:
                    u_cut = level / k
                cut = 2.0 * math.asin(min(math.sqrt(0.5 * min(max(u_cut, 0.0), 2.0)), 1.0))
            else:  # the window reaches phi = 0 or pi
                cut = 0.0 if upper else math.pi
            if upper:
                lo, hi = min(cut, theta), theta
            else:
                lo, hi = theta, max(cut, theta)
            k_b[r] = k
            u_w_b[r] = u_w
            log_sin2_w_b[r] = log_sin2_w
            oma_b[r] = oma
            quarter_b[r] = 0.25 * (hi - lo)
            middle_b[r] = 0.25 * (hi + lo)
            total_b[r] = 0.0
        for j in range(nodes.shape[0]):
            if m > 2:
                _node_terms(nodes[j], weights[j], h, count, k_b, u_w_b, log_sin2_w_b, oma_b, quarter_b,
                            middle_b, total_b)
            else:
                _node_terms_circle(nodes[j], weights[j], count, k_b, u_w_b, oma_b, quarter_b, middle_b,
                                   total_b)
        for r in range(count):
            u_w = u_w_b[r]
            out[first + r] = math.sqrt(u_w * (2.0 - u_w)) * (2.0 * quarter_b[r]) * total_b[r]


@jit
def reflect_forward(loc, omega, g, tiny, z):
    """``von_mises_fisher._reflect_forward`` row by row: z = Q(loc) z0 into ``z``
    (n, m), from ``loc`` (n, m), ``omega`` (n,) and ``g`` (n, m - 1)."""
    n, m = loc.shape
    for i in range(n):
        norm2 = 0.0
        for j in range(m - 1):
            norm2 += _f64(g[i, j]) * _f64(g[i, j])
        sin_theta = math.sqrt(max(_f64(omega[i]) * (2.0 - _f64(omega[i])), tiny))
        r = sin_theta / max(math.sqrt(norm2), tiny)  # z0_{2:} = r g = sin(theta) v
        loc1 = _f64(loc[i, 0])
        s = 1.0 if loc1 > 0 else -1.0
        z00 = 1.0 - _f64(omega[i])
        alpha = (loc1 * s + 1.0) * z00  # u . z0, u = (s loc_1 + 1, s loc_{2:})
        for j in range(1, m):
            alpha += _f64(loc[i, j]) * s * r * _f64(g[i, j - 1])
        coef = s * alpha / (1.0 + abs(loc1))
        z[i, 0] = coef * (loc1 * s + 1.0) - s * z00
        for j in range(1, m):
            z[i, j] = coef * (_f64(loc[i, j]) * s) - s * r * _f64(g[i, j - 1])


@jit
def reflect_backward(loc, omega, g, grad, tiny, grad_loc, d_omega):
    """``von_mises_fisher._reflect_backward`` row by row, recomputing the forward
    intermediates: dL/dloc into ``grad_loc`` (n, m) and dL/domega into ``d_omega`` (n,)
    (float64)."""
    n, m = loc.shape
    for i in range(n):
        norm2 = 0.0
        for j in range(m - 1):
            norm2 += _f64(g[i, j]) * _f64(g[i, j])
        inv_norm = 1.0 / max(math.sqrt(norm2), tiny)
        om = _f64(omega[i])
        sin_theta = math.sqrt(max(om * (2.0 - om), tiny))
        loc1 = _f64(loc[i, 0])
        s = 1.0 if loc1 > 0 else -1.0
        c = 1.0 / (1.0 + abs(loc1))
        u0 = loc1 * s + 1.0
        z00 = 1.0 - om
        alpha = u0 * z00
        beta = u0 * _f64(grad[i, 0])
        for j in range(1, m):
            uj = _f64(loc[i, j]) * s
            alpha += uj * sin_theta * _f64(g[i, j - 1]) * inv_norm
            beta += uj * _f64(grad[i, j])
        # dL/dloc = c (beta z0 + alpha G) - c^2 alpha beta e_1
        grad_loc[i, 0] = c * (beta * z00 + alpha * _f64(grad[i, 0])) - c * c * alpha * beta
        # dL/dz0 = s (c beta u - G); dL/domega = (dL/dz0_{2:} . v)(1 - omega)/sin(theta) - dL/dz0_1
        dot = 0.0
        for j in range(1, m):
            v_j = _f64(g[i, j - 1]) * inv_norm
            grad_loc[i, j] = c * (beta * sin_theta * v_j + alpha * _f64(grad[i, j]))
            dot += s * (c * beta * _f64(loc[i, j]) * s - _f64(grad[i, j])) * v_j
        d_omega[i] = dot * z00 / sin_theta - s * (c * beta * u0 - _f64(grad[i, 0]))


@jit_vectorised
def kl_and_gradient(kappa, v, lgamma_v1, small, log_normalised, log_ive, ratio, one_minus_ratio,
                    ratio_derivative, kl, dkl):
    """``von_mises_fisher._kl_and_gradient`` element by element: KL(vMF || U) into ``kl``
    (kappa's dtype, rounded once) and dKL/dkappa = kappa R' into ``dkl`` (float64), from
    the Bessel terms of v = m/2 - 1 (``lgamma_v1`` = lgamma(v + 1)): kappa R - log of the
    normalised series where ``small``, else -kappa (1 - R) - log(I_v e^-kappa)
    + v log(kappa/2) - lgamma(v + 1) (``log_normalised`` is read only where ``small``,
    ``log_ive`` only elsewhere)."""
    for i in range(kappa.shape[0]):
        k = _f64(kappa[i])
        if small[i]:
            kl[i] = k * ratio[i] - log_normalised[i]
        else:
            kl[i] = simd_math.log(0.5 * k) * v - k * one_minus_ratio[i] - log_ive[i] - lgamma_v1
        dkl[i] = k * ratio_derivative[i]
