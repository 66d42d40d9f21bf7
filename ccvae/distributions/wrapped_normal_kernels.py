r"""Compiled (numba) CPU kernels for the wrapped normal's three fused nodes.

The sampling map with log q, the log density at the origin and the exponential map at
the origin (``wrapped_normal_fused``, whose module docstring derives every formula and
numbered guard used here, and whose torch forms stay the reference the tests compare
against), each forward and backward as one loop over rows instead of 20-40 torch
operations. Rows are flat: every argument has been broadcast to the same leading
shape and reshaped to (rows, features) by the caller, which also reduces the
gradients of broadcast parameters.

All arithmetic is float64 whatever the arrays' dtype (float32 results are rounded
once, at the store), so the series switches are float64's (``D`` below 0.3, sinh(r)/r
below ``SINHC_SERIES_BELOW``); the step clamp and the sample cap (notes 3 and 4) are
the dtype's, passed in by the caller as ``r_max``, so that values agree with the torch
forms.

The backward kernels recompute the forward's intermediates from the inputs (a few
flops per coordinate) rather than saving a dozen arrays.
"""

from __future__ import annotations

import math

import numpy as np

from ..compiled import kernel

__all__ = ["sample_forward", "sample_backward", "origin_log_density_forward",
           "origin_log_density_backward", "origin_expmap_forward", "origin_expmap_backward"]

_f64 = np.float64  # numba's float() keeps a float32 a float32; np.float64 widens
_LOG_2PI = math.log(2.0 * math.pi)
#: sinh(r)/r by its series 1 + r^2/6 + r^4/120 below this (note 1; as
#: ``ccvae.manifolds.lorentz``: the first omitted term is r^6/5040 < 2e-16 at 0.01).
SINHC_SERIES_BELOW = 0.01
#: D(r) = (cosh r - sinh(r)/r)/r^2 by its Taylor series below this (note 2, float64's
#: switch: the closed form's 3 eps/r^2 cancellation is ~4e-15 there).
D_SERIES_BELOW = 0.3


@kernel
def _sinhc(r, sinh_r):
    """sinh(r)/r from r and sinh(r) (or sinh(r_max) beyond the clamp); note 1."""
    if r < SINHC_SERIES_BELOW:
        r2 = r * r
        return 1.0 + r2 * (1.0 / 6.0 + r2 * (1.0 / 120.0))
    return sinh_r / r


@kernel
def _d_of_r(r, cosh_r, s):
    """D(r) = (cosh r - s)/r^2 = s'(r)/r, by its series sum_k 2k/(2k+1)! r^(2k-2) to six
    terms below ``D_SERIES_BELOW`` (note 2)."""
    if r < D_SERIES_BELOW:
        r2 = r * r
        return (1.0 / 3.0 + r2 * (1.0 / 30.0 + r2 * (1.0 / 840.0 + r2 * (
            1.0 / 45360.0 + r2 * (1.0 / 3991680.0 + r2 * (1.0 / 518918400.0))))))
    return (cosh_r - s) / (r * r)


# The jitted helpers above are called from other kernels, which need the compiled
# dispatchers themselves; ``_helpers`` compiles them once on first use.
def _helpers():
    return _sinhc._compiled or _compile(_sinhc), _d_of_r._compiled or _compile(_d_of_r)


def _compile(k):
    k(1.0, 1.0, 1.0) if k is _d_of_r else k(1.0, 1.0)
    return k._compiled
