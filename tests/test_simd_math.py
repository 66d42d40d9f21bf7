"""ccvae.simd_math: the vectorisable exp, log, log1p and sin, against mpmath."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from ccvae import compiled

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")


def _vectorised(name):
    from ccvae import simd_math
    f = getattr(simd_math, name)

    def loop(x, out):
        for i in range(x.shape[0]):
            out[i] = f(x[i])
    kernel = compiled.jit_vectorised(loop)

    def call(x):
        x = np.ascontiguousarray(x, dtype=np.float64)
        out = np.empty_like(x)
        kernel(x, out)
        return out
    return call


def _reference(fn, xs):
    with mpmath.workdps(40):
        return np.array([float(fn(mpmath.mpf(float(x)))) for x in xs])


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(20261122)


def test_exp_matches_mpmath_over_the_float64_range(rng):
    exp = _vectorised("exp")
    x = np.concatenate([rng.uniform(-708.0, 709.7, 3000), rng.uniform(-1.0, 1.0, 1000),
                        [0.0, -0.0, 1e-300, -1e-300, 0.5 * math.log(2.0), -0.5 * math.log(2.0),
                         709.78, -708.39]])
    got, ref = exp(x), _reference(mpmath.exp, x)
    assert np.all(np.isfinite(got))
    assert np.max(np.abs(got / ref - 1.0)) < 1e-15
    # subnormal results: within one unit of the last (subnormal) place
    x = rng.uniform(-745.0, -708.5, 500)
    got, ref = exp(x), _reference(mpmath.exp, x)
    assert np.max(np.abs(got - ref)) <= 5e-324


def test_exp_limits_and_nan():
    exp = _vectorised("exp")
    got = exp([710.0, 1e308, math.inf, -746.0, -1e308, -math.inf, math.nan])
    assert got[:3].tolist() == [math.inf] * 3
    assert got[3:6].tolist() == [0.0] * 3
    assert math.isnan(got[6])


def test_log_matches_mpmath_for_normal_and_subnormal_inputs(rng):
    log = _vectorised("log")
    y = np.concatenate([np.exp(rng.uniform(-708.0, 709.0, 3000)), 1.0 + rng.uniform(-1e-3, 1e-3, 500),
                        rng.uniform(0.5, 2.0, 500), [1.0, 2.0, 0.5, math.sqrt(2.0), np.nextafter(math.sqrt(2.0), 3),
                                                     2.2250738585072014e-308, 1.7976931348623157e308],
                        # subnormals: 2^-1074 to just below the smallest normal
                        [5e-324, 1e-320, 2.2250738585072009e-308]])
    got, ref = log(y), _reference(mpmath.log, y)
    assert np.all(np.abs(got - ref) <= 3e-16 * np.abs(ref) + 2e-16), np.max(np.abs(got - ref))
    assert log([1.0])[0] == 0.0


def test_log_special_values():
    log = _vectorised("log")
    got = log([0.0, -0.0, -1.0, -math.inf, math.inf, math.nan])
    assert got[0] == -math.inf and got[1] == -math.inf
    assert np.isnan(got[2]) and np.isnan(got[3]) and np.isnan(got[5])
    assert got[4] == math.inf


def test_log1p_keeps_relative_accuracy_near_zero(rng):
    log1p = _vectorised("log1p")
    a = np.concatenate([rng.uniform(-1e-3, 1e-3, 1000), np.exp(rng.uniform(-700.0, 0.0, 500)),
                        -np.exp(rng.uniform(-700.0, -1e-3, 500)), np.exp(rng.uniform(0.0, 700.0, 500)),
                        [1e-17, -1e-17, 0.0]])
    got, ref = log1p(a), _reference(mpmath.log1p, a)
    nz = ref != 0
    assert np.max(np.abs(got[nz] / ref[nz] - 1.0)) < 1e-15
    assert got[~nz].tolist() == [0.0]
    special = log1p([-1.0, -2.0, math.inf, math.nan])
    assert special[0] == -math.inf and np.isnan(special[1]) and special[2] == math.inf and np.isnan(special[3])


def test_sin_on_its_range(rng):
    sin = _vectorised("sin_half_pi")
    x = np.concatenate([rng.uniform(-math.pi / 2, math.pi / 2, 3000), np.exp(rng.uniform(-700.0, 0.0, 500)),
                        [0.0, math.pi / 2, -math.pi / 2, 1e-300]])
    got, ref = sin(x), _reference(mpmath.sin, x)
    nz = ref != 0
    assert np.max(np.abs(got[nz] / ref[nz] - 1.0)) < 1e-15
    assert got[~nz].tolist() == [0.0]
