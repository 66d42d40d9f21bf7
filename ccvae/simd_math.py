r"""exp, log, log1p and sin for numba loops that the compiler vectorises.

A numba loop that calls ``math.exp`` stays scalar: LLVM has no vector form of a libm
call (numba's vector math library, Intel's SVML, is absent from the PyPI builds of
llvmlite), so every element pays a scalar call, ~6-12 ns each for exp, log and sin on
the 2-core development CPU. The functions here are written in arithmetic, bit
operations and selects only (no calls, no branches that survive if-conversion), so
a loop of them vectorises: AVX2 does four float64 lanes at once. Measured there on
20,480 values: exp 1.3 ns, log 2.5 ns, log1p 3.4 ns, sin 0.7 ns per value, against
torch's SIMD float64 kernels' 1.9 / 2.7 / - / 3.6 ns and numba's scalar libm calls
6 / 8 / - / 12 ns. The polynomials are summed by Estrin's scheme (a tree of products
of depth ~4) rather than Horner's rule (a chain of 11-12 dependent steps): such loops
are bound by that latency, and the trees made exp 1.9 -> 1.3 ns.

Use them from kernels compiled with ``ccvae.compiled.jit_vectorised`` (numpy's error
model, so that a division is not a branch that raises ZeroDivisionError, and FMA
contraction, so that each Horner step is one instruction). Importing this module
imports numba; kernel modules import it lazily, as ``ccvae.compiled`` describes.

Accuracy (float64; tests/test_simd_math.py checks these against mpmath):

* ``exp``: relative error < 1e-15 where e^x is a normal number, and within a unit of
  the last place of a subnormal result; exp(x) = inf above 709.78 and 0 below -745.2;
  NaN stays NaN. Cody & Waite's reduction x = n ln 2 + r, |r| <= ln2/2, with ln 2 split
  in two so that n ln2_hi is exact; e^r by its Taylor polynomial of degree 12
  (remainder < 1.42 (ln2/2)^13/13! = 2.4e-16 relative); 2^n from its bits, as
  2^(n - n//2) 2^(n//2), so that each factor is a normal number for every n the
  clamped input can give.
* ``log``: absolute error < 3e-16 |log y| + 2e-16 for normal and subnormal y > 0;
  log(0) = -inf, log(y < 0) = NaN, log(inf) = inf, NaN stays NaN. y = 2^e f with
  f in [sqrt(1/2), sqrt(2)), log f = 2 atanh(s), s = (f-1)/(f+1), |s| <= 0.1716, by
  its series to s^21 (remainder < s^23/23 < 1e-19).
* ``log1p``: log(1 + a) for a > -1 with the relative accuracy of log near 1: u = 1 + a
  rounded, then log(u) - ((u - 1) - a)/u (Goldberg 1991, theorem 4's correction of
  the rounding of 1 + a).
* ``sin_half_pi``: sin x for |x| <= pi/2 + 1e-6 only (no argument reduction; callers
  guarantee the range), relative error < 1e-15: Taylor to x^21, remainder
  (pi/2)^23/23! < 1e-18.
"""

from __future__ import annotations

import math

from llvmlite import ir
from numba import njit
from numba.core import types
from numba.extending import intrinsic

__all__ = ["exp", "log", "log1p", "sin_half_pi"]


@intrinsic
def _bits(typingctx, x):
    """The IEEE bits of a float64 as an int64 (a bitcast; no conversion)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _from_bits(typingctx, b):
    """The float64 whose IEEE bits are the int64 ``b``."""
    if b != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


_LN2_HI = 6.93147180369123816490e-01  # ln 2 to 32 bits: n * _LN2_HI is exact for |n| < 2^20
_LN2_LO = 1.90821492927058770002e-10  # ln 2 - _LN2_HI
_INV_LN2 = 1.4426950408889634
#: 1.5 * 2^52: adding it rounds a float of magnitude < 2^51 to an integer, which then
#: sits in the low mantissa bits (the branch-free round-to-int of SIMD math libraries;
#: AVX2 has no float64 -> int64 conversion).
_SHIFTER = 6755399441055744.0
#: exp's input clamp: beyond these the result is inf or 0 anyway, and inside them
#: n = round(x / ln 2) lies in [-1076, 1025], whose halves give normal powers of two.
_EXP_HI = 710.0
_EXP_LO = -746.0
_SQRT2 = 1.4142135623730951
_TWO52 = 4503599627370496.0  # 2^52
_TWO54 = 18014398509481984.0  # 2^54: scales a subnormal into the normal range
_MIN_NORMAL = 2.2250738585072014e-308


@njit(inline="always", error_model="numpy")
def exp(x):
    """e^x, float64, vectorisable (see the module docstring)."""
    xc = min(max(x, _EXP_LO), _EXP_HI)
    t = xc * _INV_LN2 + _SHIFTER
    n = t - _SHIFTER
    r = (xc - n * _LN2_HI) - n * _LN2_LO
    # e^r = sum_k r^k/k!, k <= 12, by Estrin's scheme (a tree of depth 4 instead of
    # Horner's chain of 12: the loop is bound by this latency, not by throughput)
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    p = ((((1.0 + r) + (0.5 + r * (1.0 / 6.0)) * r2)
          + ((1.0 / 24.0 + r * (1.0 / 120.0)) + (1.0 / 720.0 + r * (1.0 / 5040.0)) * r2) * r4)
         + (((1.0 / 40320.0 + r * (1.0 / 362880.0)) + (1.0 / 3628800.0 + r * (1.0 / 39916800.0)) * r2)
            + (1.0 / 479001600.0) * r4) * r8)
    ni = _bits(t) - _bits(_SHIFTER)  # n as an int64 (the low bits of t)
    half = ni >> 1
    result = p * _from_bits((half + 1023) << 52) * _from_bits((ni - half + 1023) << 52)
    return result if x == x else x  # NaN in, NaN out (the clamp would lose it)


@njit(inline="always", error_model="numpy")
def log(y):
    """log y, float64, vectorisable (see the module docstring)."""
    sub = y < _MIN_NORMAL
    ys = y * _TWO54 if sub else y
    b = _bits(ys)
    # the exponent as a float: its 11 bits placed under 2^52's and read as a float64
    e = _from_bits((b >> 52) | 0x4330000000000000) - _TWO52 - 1023.0
    f = _from_bits((b & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)  # mantissa in [1, 2)
    big = f > _SQRT2
    f = f * 0.5 if big else f
    e = (e + 1.0 if big else e) - (54.0 if sub else 0.0)
    s = (f - 1.0) / (f + 1.0)
    s2 = s * s
    # sum_k s2^k/(2k+1), k <= 10, by Estrin's scheme (see exp)
    s4 = s2 * s2
    s8 = s4 * s4
    p = (((1.0 + s2 * (1.0 / 3.0)) + (1.0 / 5.0 + s2 * (1.0 / 7.0)) * s4)
         + ((1.0 / 9.0 + s2 * (1.0 / 11.0)) + (1.0 / 13.0 + s2 * (1.0 / 15.0)) * s4) * s8
         + ((1.0 / 17.0 + s2 * (1.0 / 19.0)) + (1.0 / 21.0) * s4) * (s8 * s8))
    result = (2.0 * s) * p + e * _LN2_LO + e * _LN2_HI
    if y > 0.0 and y < math.inf:
        return result
    if y == 0.0:
        return -math.inf
    return y if y == math.inf else math.nan  # y < 0 or NaN


@njit(inline="always", error_model="numpy")
def log1p(a):
    """log(1 + a), float64, vectorisable, accurate for small a (module docstring)."""
    u = 1.0 + a
    log_u = log(u)
    if u == 1.0:
        return a  # a is below half an ulp of 1: log1p(a) = a to rounding
    if u > 0.0 and u < math.inf:
        return log_u - ((u - 1.0) - a) / u
    return log_u  # a = -1: -inf; a < -1: NaN; a = inf: inf; NaN


@njit(inline="always", error_model="numpy")
def sin_half_pi(x):
    """sin x for |x| <= pi/2 (no argument reduction), float64, vectorisable."""
    x2 = x * x
    # sum_k (-1)^k x2^k/(2k+1)!, k <= 10, by Estrin's scheme (see exp)
    x4 = x2 * x2
    x8 = x4 * x4
    p = (((1.0 - x2 * (1.0 / 6.0)) + (1.0 / 120.0 - x2 * (1.0 / 5040.0)) * x4)
         + ((1.0 / 362880.0 - x2 * (1.0 / 39916800.0))
            + (1.0 / 6227020800.0 - x2 * (1.0 / 1307674368000.0)) * x4) * x8
         + ((1.0 / 355687428096000.0 - x2 * (1.0 / 121645100408832000.0))
            + (1.0 / 51090942171709440000.0) * x4) * (x8 * x8))
    return x * p
