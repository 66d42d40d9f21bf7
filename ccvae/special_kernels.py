r"""Compiled (numba) CPU kernel for ``special.bessel_terms``'s vMF request.

The von Mises-Fisher asks ``bessel_terms`` for everything at once (log of the
normalised series where it converges, log I_v e^-x elsewhere, R_v, 1 - R_v and R_v')
at one order v, once per training step. In torch that is ~30 float64 operations of a
few microseconds each on a batch of 128; here it is one loop over the elements with
the same two regimes, the same series (``SERIES_TERMS`` terms, ratios from the
precomputed 1/(k (v+k)) and 1/(k (v+1+k))) and the same Debye polynomials (the exact
rational coefficients of ``special._DEBYE_MATRIX``, row k evaluated by Horner's rule
in q = v^2/s^2 up to its degree k), so values agree with the torch form to rounding
(the sums are accumulated in another order). See ``special``'s module docstring for
the derivations and truncation bounds.

Importing this module imports numba; ``special`` imports it where the kernel is about
to run, after ``ccvae.compiled.available()``.
"""

from __future__ import annotations

import math

from .compiled import jit

__all__ = ["bessel_terms_native"]

_TWO_PI = 2.0 * math.pi


@jit
def bessel_terms_native(x, v, inv_den, debye, series_x_max, y_small, small, log_normalised, log_ive,
                        ratio, one_minus_ratio, ratio_derivative):
    """Fill the outputs (float64, x's length; ``small`` bool) as ``bessel_terms(v, x,
    log_normalised=True, log_ive=True, derivative=True, native_logs=True)`` does:
    ``log_normalised`` where ``small``, ``log_ive`` elsewhere (0 in the other entries).

    ``inv_den`` (2, SERIES_TERMS): 1/(k (v+k)) and 1/(k (v+1+k)); ``debye``
    (DEBYE_TERMS - 1, 2 DEBYE_TERMS): rows k = 1.. of [C_U | C_D].
    """
    w = v + 1.0
    two_v_plus_1 = 2.0 * v + 1.0
    n_series = inv_den.shape[1]
    n_debye = debye.shape[1] // 2
    for i in range(x.shape[0]):
        xi = x[i]
        y = 0.25 * xi * xi
        if xi < series_x_max or y <= y_small:  # power series (A&S 9.6.10)
            small[i] = True
            term_v = 1.0
            term_w = 1.0
            s_v = 0.0
            s_w = 0.0
            for k in range(n_series):
                term_v *= y * inv_den[0, k]
                term_w *= y * inv_den[1, k]
                s_v += term_v
                s_w += term_w
            log_normalised[i] = math.log1p(s_v)
            log_ive[i] = 0.0
            r_over_x = (1.0 + s_w) / ((1.0 + s_v) * (2.0 * w))  # R/x, finite at x = 0
            r = r_over_x * xi
            ratio[i] = r
            one_minus_ratio[i] = 1.0 - r
            ratio_derivative[i] = 1.0 - r * r - two_v_plus_1 * r_over_x
        else:  # uniform asymptotic (Debye) expansion, s = sqrt(v^2 + x^2) >= 30
            small[i] = False
            s = math.hypot(v, xi)
            t = 1.0 / s
            q = (v * t) * (v * t)
            tau = 0.0
            d_sum = 0.0
            t_k = 1.0
            for k in range(debye.shape[0]):  # row k holds s^-(k+1) terms, degree k+1 in q
                t_k *= t
                poly_u = 0.0
                poly_d = 0.0
                for j in range(min(k + 1, n_debye - 1), -1, -1):
                    poly_u = poly_u * q + debye[k, j]
                    poly_d = poly_d * q + debye[k, n_debye + j]
                term_u = t_k * poly_u
                term_d = t_k * poly_d
                tau += term_u
                d_sum += term_d
                # Stop once both terms are below 1e-17 of their sums: for s >= 30 and
                # k <= 15 the terms shrink by at least 4x a step (worst case p = 0,
                # Hankel's ratio (2k+1)^2/(8(k+1) s) <= 1/4), so the rest adds less
                # than a third of the last term. The tensor form sums all 15; the two
                # differ by < 1e-17 relative.
                if abs(term_u) < 1e-17 * abs(1.0 + tau) and abs(term_d) < 1e-17 * abs(d_sum):
                    break
            s_minus_x = v * v / (s + xi)
            omr = (v - s_minus_x - s * d_sum / (1.0 + tau)) / xi
            one_minus_ratio[i] = omr
            ratio[i] = 1.0 - omr
            ratio_derivative[i] = omr * (2.0 - omr) - two_v_plus_1 * (1.0 - omr) / xi
            log_ive[i] = (s_minus_x - v * math.log1p((v + s_minus_x) / xi)
                          - 0.5 * math.log(_TWO_PI * s) + math.log1p(tau))
            log_normalised[i] = 0.0
