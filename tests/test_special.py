"""ccvae.special against mpmath (float64 references at 30 digits), plus gradients and edges."""

from __future__ import annotations

import functools
import math

import mpmath
import pytest
import torch

from ccvae.special import (SERIES_X_MAX, bessel_terms, iv_ratio, iv_ratio_derivative, log_iv,
                           log_iv_normalised, log_ive)


pytestmark = pytest.mark.usefixtures("single_thread")

# Orders v = m/2 - 1 for m = 2, 3, 10, 50, 200, 1000, plus 1 and 30.5 (near the 30 switch).
ORDERS = [0.0, 0.5, 1.0, 4.0, 24.0, 30.5, 99.0, 499.0]
# x from 1e-4 to 1e5, plus both sides of every regime switch: x = 30 (all orders) and
# x = sqrt(32 (v+1)) (the series bound for large orders: 56.6 at v = 99, 126.5 at v = 499).
XS = sorted(set([10.0 ** (e / 3.0) for e in range(-12, 16)]
                + [29.9, 30.0, 30.1, 56.5, 56.7, 126.4, 126.6, 200.0, 700.0]))


@functools.lru_cache(maxsize=None)
def reference(v: float, x: float) -> dict[str, float]:
    """log I_v, I_{v+1}/I_v, the normalised log, d/dx of the ratio; 30-digit mpmath."""
    with mpmath.workdps(30):
        xm, vm = mpmath.mpf(x), mpmath.mpf(v)
        i0, i1, i2 = (mpmath.besseli(vm + j, xm) for j in range(3))
        r = i1 / i0
        return {
            "log_iv": float(mpmath.log(i0)),
            "log_ive": float(mpmath.log(i0) - xm),
            "ratio": float(r),
            "one_minus_ratio": float(1 - r),
            "log_normalised": float(mpmath.log(mpmath.gamma(vm + 1) * (2 / xm) ** vm * i0)),
            # R' = R (I_{v+2}/I_{v+1} - R + 1/x): no cancellation at 30 digits
            "derivative": float(r * (i2 / i1 - r + 1 / xm)),
        }


def _table(name: str) -> torch.Tensor:
    return torch.tensor([[reference(v, x)[name] for x in XS] for v in ORDERS], dtype=torch.float64)


def _rel_err(got: torch.Tensor, ref: torch.Tensor, floor: float) -> torch.Tensor:
    return (got - ref).abs() / ref.abs().clamp_min(floor)


@pytest.fixture(scope="module")
def grid():
    v = torch.tensor(ORDERS, dtype=torch.float64).unsqueeze(-1)
    x = torch.tensor(XS, dtype=torch.float64).expand(len(ORDERS), -1)
    return v, x


@pytest.mark.parametrize("fn,name,tol", [
    (log_iv, "log_iv", 1e-12),
    (log_ive, "log_ive", 1e-12),
    (iv_ratio, "ratio", 1e-13),
    (log_iv_normalised, "log_normalised", 1e-12),
    (iv_ratio_derivative, "derivative", 1e-9),
])
def test_float64_matches_mpmath_on_the_grid(grid, fn, name, tol):
    v, x = grid
    # a per-element order tensor exercises the general path; rows also go one by one
    # below through the cached scalar path
    got = fn(v, x)
    ref = _table(name)
    # log values pass through 0 (e.g. log I_0 near x = 2.2): compare those absolutely
    floor = 1.0 if name.startswith("log_i") and name != "log_normalised" else 1e-300
    err = _rel_err(got, ref, floor)
    assert float(err.max()) <= tol, (name, float(err.max()))
    for i, order in enumerate(ORDERS):
        row = fn(order, x[i])
        assert torch.equal(row, got[i]) or float(_rel_err(row, ref[i], floor).max()) <= tol


def test_one_minus_ratio_keeps_relative_accuracy_at_large_x(grid):
    v, x = grid
    t = bessel_terms(v, x, ratio=True)
    err = _rel_err(t.one_minus_ratio, _table("one_minus_ratio"), 1e-300)
    assert float(err.max()) <= 1e-12


def test_normalised_log_has_no_cancellation_near_zero():
    # KL at m = 1000, kappa = 1e-3 is ~5e-10: the normalised log must keep its digits.
    x = torch.tensor([1e-6, 1e-4, 1e-3, 1e-2], dtype=torch.float64)
    for v in (0.0, 0.5, 499.0):
        ref = torch.tensor([reference(v, float(xi))["log_normalised"] for xi in x], dtype=torch.float64)
        got = log_iv_normalised(v, x)
        assert float(_rel_err(got, ref, 1e-300).max()) <= 1e-13
        # and it goes to zero like x^2 / (4 (v + 1))
        assert torch.allclose(got[:1], x[:1] ** 2 / (4 * (v + 1)), rtol=1e-9, atol=0)


@pytest.mark.parametrize("fn,name", [(log_iv, "log_iv"), (iv_ratio, "ratio"),
                                     (log_iv_normalised, "log_normalised"), (log_ive, "log_ive")])
def test_float32_is_the_rounded_float64_value(grid, fn, name):
    v, x = grid
    x32 = x.to(torch.float32)
    got = fn(v, x32)
    assert got.dtype == torch.float32
    # reference at the float32 input itself
    ref = torch.tensor([[reference(vv, float(xx))[name] for xx in x32[0]] for vv in ORDERS],
                       dtype=torch.float64)
    floor = 1.0 if name in ("log_iv", "log_ive") else 1e-30
    err = _rel_err(got.to(torch.float64), ref, floor)
    assert float(err.max()) <= 1.2e-7  # one float32 rounding (6e-8) plus slack


def test_large_x_beyond_the_grid_stays_finite_and_accurate():
    x = torch.tensor([1e6, 1e8], dtype=torch.float64)
    for v in (0.0, 499.0):
        ref = [reference(v, float(xi)) for xi in x]
        assert torch.allclose(log_ive(v, x), torch.tensor([r["log_ive"] for r in ref], dtype=torch.float64),
                              rtol=1e-12)
        omr = bessel_terms(v, x, ratio=True).one_minus_ratio
        assert torch.allclose(omr, torch.tensor([r["one_minus_ratio"] for r in ref], dtype=torch.float64),
                              rtol=1e-12)
        der = iv_ratio_derivative(v, x)
        # the documented residual cancellation: about x * 2.2e-16 relative
        assert torch.allclose(der, torch.tensor([r["derivative"] for r in ref], dtype=torch.float64),
                              rtol=1e-6)


def test_values_at_zero():
    z = torch.zeros(3, dtype=torch.float64)
    assert torch.equal(log_iv(0.0, z), torch.zeros(3, dtype=torch.float64))
    assert torch.isneginf(log_iv(1.5, z)).all()
    assert torch.equal(iv_ratio(4.0, z), torch.zeros(3, dtype=torch.float64))
    assert torch.equal(log_iv_normalised(4.0, z), torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(iv_ratio_derivative(4.0, z), torch.full((3,), 1 / 10.0, dtype=torch.float64))
    # the gradient of the ratio at 0 is finite (no R/x division)
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    iv_ratio(4.0, x).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([0.1], dtype=torch.float64))


# points in both regimes, away from x = 0 where the derivative of log I_v blows up
GRAD_X = [1e-3, 0.5, 5.0, 29.0, 31.0, 100.0, 1e3]


@pytest.mark.parametrize("v", [0.0, 0.5, 4.0, 99.0])
@pytest.mark.parametrize("fn", [log_iv, iv_ratio, log_iv_normalised, log_ive])
def test_gradcheck(fn, v):
    x = torch.tensor(GRAD_X, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: fn(v, t), (x,), eps=1e-6, atol=1e-7, rtol=1e-6)


def test_gradients_match_the_analytic_formulas():
    x = torch.tensor([0.3, 7.0, 45.0, 3e4], dtype=torch.float64, requires_grad=True)
    for v in (0.0, 24.0):
        (g,) = torch.autograd.grad(log_iv(v, x).sum(), x)
        assert torch.allclose(g, iv_ratio(v, x) + v / x, rtol=1e-13)
        (g,) = torch.autograd.grad(iv_ratio(v, x).sum(), x)
        r = iv_ratio(v, x)
        assert torch.allclose(g, 1 - r * r - (2 * v + 1) * r / x, rtol=1e-7)


def test_log_iv_is_twice_differentiable():
    x = torch.tensor([0.7, 12.0, 60.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: log_iv(4.0, t), (x,))


def test_shapes_dtypes_and_broadcasting():
    x = torch.rand(2, 3, 4, dtype=torch.float32) * 50
    assert log_iv(1.0, x).shape == (2, 3, 4) and log_iv(1.0, x).dtype == torch.float32
    v = torch.tensor([0.0, 1.0, 2.0, 3.0])
    out = iv_ratio(v, x)
    assert out.shape == (2, 3, 4)
    for j in range(4):
        assert torch.allclose(out[..., j], iv_ratio(float(j), x[..., j]))
    assert log_iv(0.5, torch.tensor(2.0, dtype=torch.float64)).shape == ()
    # a Python number for x uses the default dtype
    assert log_iv(0.5, 2.0).dtype == torch.get_default_dtype()


def test_closed_forms_for_half_integer_orders():
    # I_{1/2}(x) = sqrt(2/(pi x)) sinh x, I_{3/2}/I_{1/2} = coth x - 1/x
    x = torch.tensor([1e-3, 0.1, 3.0, 40.0, 300.0], dtype=torch.float64)
    expected = 0.5 * torch.log(2 / (math.pi * x)) + x + torch.log(-torch.expm1(-2 * x)) - math.log(2)
    assert torch.allclose(log_iv(0.5, x), expected, rtol=1e-13)
    assert torch.allclose(iv_ratio(0.5, x), 1 / torch.tanh(x) - 1 / x, rtol=1e-9)


def test_regimes_agree_at_the_switch():
    # both sides of x = SERIES_X_MAX give continuous values
    for v in (0.0, 4.0, 24.0):
        x = torch.tensor([SERIES_X_MAX * (1 - 1e-12), SERIES_X_MAX], dtype=torch.float64)
        assert torch.allclose(log_iv(v, x)[0], log_iv(v, x)[1], rtol=1e-12)
        assert torch.allclose(iv_ratio(v, x)[0], iv_ratio(v, x)[1], rtol=1e-12)


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf")])
def test_bad_order_raises_naming_v(bad):
    with pytest.raises(ValueError, match="^v:"):
        log_iv(bad, torch.ones(2))
    with pytest.raises(ValueError, match="^v:"):
        iv_ratio(torch.tensor([1.0, bad]), torch.ones(2))


def test_differentiable_order_and_integer_x_are_rejected():
    with pytest.raises(ValueError, match="^v:"):
        log_iv(torch.tensor([1.0, 2.0], requires_grad=True), torch.ones(2))
    with pytest.raises(ValueError, match="^x:"):
        log_iv(1.0, torch.ones(2, dtype=torch.int64))


def test_out_of_domain_x_gives_nan_like_torch_special():
    out = iv_ratio(1.0, torch.tensor([-1.0, float("nan"), 2.0], dtype=torch.float64))
    assert torch.isnan(out[:2]).all() and torch.isfinite(out[2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x = torch.logspace(-4, 5, 50, dtype=torch.float64)
    for fn in (log_iv, iv_ratio, log_iv_normalised, log_ive, iv_ratio_derivative):
        for v in (0.0, 4.0, 499.0):
            assert torch.allclose(fn(v, x.cuda()).cpu(), fn(v, x), rtol=1e-13, atol=0)


@pytest.mark.parametrize("v", [0.0, 0.5, 1.0, 4.0, 4.5, 24.5, 99.0, 499.0])
def test_compiled_native_terms_match_the_tensor_form(v):
    """The vMF's request (native_logs) runs a compiled loop on CPU; it uses the same
    regimes, series and Debye coefficients as the tensor operations, so both agree to
    rounding (R' to the ~x * 3e-16 its own formula allows at large x)."""
    x = torch.cat([torch.tensor([0.0, 1e-300]), torch.logspace(-4, 5, 501),
                   torch.tensor([SERIES_X_MAX * (1 - 1e-15), SERIES_X_MAX, 2.0 * math.sqrt(8.0 * (v + 1))]),
                   ]).to(torch.float64).reshape(2, -1)  # any shape
    kw = dict(log_normalised=True, log_ive=True, derivative=True, native_logs=True)
    a = bessel_terms(v, x, backend="numba", **kw)
    b = bessel_terms(v, x, backend="torch", **kw)
    assert torch.equal(a.small, b.small) and a.small.any() and (~a.small).any() == (b.log_ive is not None)
    sm = a.small
    torch.testing.assert_close(a.log_normalised[sm], b.log_normalised[sm], rtol=1e-14, atol=1e-300)
    if b.log_ive is not None:
        torch.testing.assert_close(a.log_ive[~sm], b.log_ive[~sm], rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(a.ratio, b.ratio, rtol=1e-14, atol=1e-300)
    torch.testing.assert_close(a.one_minus_ratio, b.one_minus_ratio, rtol=1e-13, atol=1e-300)
    # R' = 1 - R^2 - (2v+1) R/x cancels: in the series regime between terms of size 1
    # (absolute), in the asymptotic one between terms ~(2v+1)/x times larger than R'
    # (relative; the module docstring measures 3e-11 at x = 1e5), so the two summation
    # orders differ by that much
    err = (a.ratio_derivative - b.ratio_derivative).abs()
    assert (err[sm] <= 4e-15).all()
    assert (err[~sm] <= 1e-10 * b.ratio_derivative[~sm].abs()).all()
    assert a.ratio.shape == x.shape and a.small.dtype == torch.bool


def test_compiled_backend_is_only_for_the_native_request():
    x = torch.rand(4, dtype=torch.float64)
    with pytest.raises(ValueError, match="needs native_logs"):
        bessel_terms(1.0, x, ratio=True, backend="numba")
    with pytest.raises(ValueError, match="backend must be"):
        bessel_terms(1.0, x, native_logs=True, backend="cupy")
    # a float32 x, or per-element orders, take the tensor path even by default
    t = bessel_terms(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64), x, ratio=True, native_logs=True)
    assert t.ratio.shape == (4,)
