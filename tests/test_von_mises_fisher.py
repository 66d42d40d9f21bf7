"""VonMisesFisher: KL vs mpmath, sampler vs the exact marginal, unbiased gradients, shapes, errors."""

from __future__ import annotations

import functools
import math

import mpmath
import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch
import torch.nn.functional as F
from torch.distributions import kl_divergence

from ccvae.distributions.hyperspherical_uniform import HypersphericalUniform, log_sphere_area
from ccvae.distributions.von_mises_fisher import (VonMisesFisher, _ReflectedSample,
                                                  implicit_w_gradient, kl_vmf_uniform,
                                                  reflect_from_e1, sample_one_minus_w)
from ccvae.distributions.vmf_svae import sample_one_minus_w_svae
from ccvae.special import iv_ratio, iv_ratio_derivative


pytestmark = pytest.mark.usefixtures("single_thread")

F64 = torch.float64
KL_DIMS = [3, 10, 50, 200, 1000]
KL_KAPPAS = [1e-3, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5]


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


# ---------------------------------------------------------------------------------------
# KL(vMF || uniform) against mpmath
# ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def kl_reference(m: int, kappa: float) -> tuple[float, float]:
    """(KL, dKL/dkappa) at 50 digits: KL = kappa A - log(Gamma(m/2) (2/kappa)^v I_v)."""
    with mpmath.workdps(50):
        v, k = mpmath.mpf(m) / 2 - 1, mpmath.mpf(kappa)
        i0, i1, i2 = (mpmath.besseli(v + j, k) for j in range(3))
        a = i1 / i0
        kl = k * a - mpmath.log(mpmath.gamma(v + 1) * (2 / k) ** v * i0)
        da = a * (i2 / i1 - a + 1 / k)  # A' = R (I_{v+2}/I_{v+1} - R + 1/x)
        return float(kl), float(k * da)


def _kl_and_grad(m: int, kappas: torch.Tensor):
    k = kappas.clone().requires_grad_()
    kl = kl_vmf_uniform(k, m)
    (g,) = torch.autograd.grad(kl.sum(), k)
    return kl.detach(), g


@pytest.mark.parametrize("m", KL_DIMS)
def test_kl_float64_matches_mpmath_in_every_cell(m):
    kl, _ = _kl_and_grad(m, torch.tensor(KL_KAPPAS, dtype=F64))
    for i, kappa in enumerate(KL_KAPPAS):
        ref = kl_reference(m, kappa)[0]
        err = abs(kl[i].item() - ref)
        assert err <= 1e-12 if ref < 1e-4 else err <= 1e-8 * ref, (m, kappa, kl[i].item(), ref)


@pytest.mark.parametrize("m", KL_DIMS)
def test_kl_and_its_gradient_in_float32(m):
    k32 = torch.tensor(KL_KAPPAS, dtype=torch.float32)
    kl, grad = _kl_and_grad(m, k32)
    assert kl.dtype == grad.dtype == torch.float32
    assert torch.isfinite(kl).all() and torch.isfinite(grad).all()
    for i in range(len(KL_KAPPAS)):
        ref, gref = kl_reference(m, float(k32[i]))  # at the float32 kappa itself
        err = abs(kl[i].item() - ref)
        assert err <= 1e-7 if ref < 1e-3 else err <= 1e-4 * ref, (m, KL_KAPPAS[i], kl[i].item(), ref)
        gerr = abs(grad[i].item() - gref)
        assert gerr <= max(0.01 * abs(gref), 1e-6), (m, KL_KAPPAS[i], grad[i].item(), gref)
        assert grad[i].item() > 0  # the KL grows with kappa


def test_kl_gradcheck_float64_across_regimes():
    for m in (2, 3, 10, 1000):
        k = torch.tensor([1e-3, 0.5, 20.0, 45.0, 300.0, 5e3], dtype=F64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda t: kl_vmf_uniform(t, m), (k,), eps=1e-6, rtol=1e-5,
                                        atol=1e-9)


def test_kl_registered_matches_entropy_and_broadcasts():
    loc = unit(torch.randn(4, 1, 10, dtype=F64))
    kappa = torch.tensor([0.5, 5.0, 50.0], dtype=F64)
    q = VonMisesFisher(loc, kappa)
    assert q.batch_shape == (4, 3)
    p = HypersphericalUniform(9, batch_shape=(4, 3), dtype=F64)
    kl = kl_divergence(q, p)
    assert kl.shape == (4, 3)
    assert torch.allclose(kl, log_sphere_area(9) - q.entropy(), rtol=1e-12)
    assert (kl > 0).all()
    with pytest.raises(ValueError, match="^p:"):
        kl_divergence(q, HypersphericalUniform(4, dtype=F64))


def test_log_prob_and_entropy_match_scipy():
    rng = np.random.default_rng(0)
    for m, kappa in [(3, 0.3), (3, 40.0), (5, 2.0), (10, 100.0), (64, 7.0)]:
        mu = rng.standard_normal(m)
        mu /= np.linalg.norm(mu)
        x = rng.standard_normal((6, m))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        x[0] = mu  # the mode itself
        ref = scipy.stats.vonmises_fisher(mu, kappa)
        q = VonMisesFisher(torch.tensor(mu), torch.tensor(kappa, dtype=F64))
        got = q.log_prob(torch.tensor(x))
        assert np.allclose(got.numpy(), ref.logpdf(x), rtol=1e-10, atol=1e-10)
        assert abs(q.entropy().item() - ref.entropy()) <= 1e-9 * max(1.0, abs(ref.entropy()))


def test_log_prob_gradcheck_and_score_has_mean_zero():
    torch.manual_seed(4)
    loc = unit(torch.randn(3, 5, dtype=F64))
    x = unit(torch.randn(3, 5, dtype=F64))
    k = torch.tensor([0.2, 7.0, 400.0], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: VonMisesFisher(loc, t).log_prob(x), (k,))
    l = loc.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: VonMisesFisher(t, k.detach(), validate_args=False).log_prob(x),
                                    (l,))
    # E[d log q / d kappa] = E[loc.z] - A_m(kappa) = 0
    q = VonMisesFisher(loc[1], torch.tensor(7.0, dtype=F64, requires_grad=True))
    z = q.sample((20000,))
    (score,) = torch.autograd.grad(q.log_prob(z).sum(), q.concentration)
    assert abs(score.item() / 20000) < 4 * (z @ loc[1]).std().item() / math.sqrt(20000)


def test_log_prob_closed_form_on_s2_at_extreme_kappa():
    # m = 3: C_3(kappa) = kappa / (4 pi sinh kappa); check in float32 at kappa = 1e5 too
    for kappa in (1e-3, 1.0, 1e5):
        loc = torch.tensor([0.0, 0.6, 0.8], dtype=F64)
        z = unit(torch.tensor([[0.1, 0.6, 0.8], [0.0, 0.6, 0.8], [1.0, 0.0, 0.0]], dtype=F64))
        log_c = math.log(kappa / (4 * math.pi)) - (kappa + math.log(-math.expm1(-2 * kappa)) - math.log(2))
        expected = log_c + kappa * (z @ loc)
        q = VonMisesFisher(loc, kappa)
        assert torch.allclose(q.log_prob(z), expected, rtol=1e-11, atol=1e-9)
        q32 = VonMisesFisher(loc.float(), kappa)
        assert torch.allclose(q32.log_prob(z[:2].float()).double(), expected[:2], rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------
# The sampler against the exact marginal of w = loc . z
# ---------------------------------------------------------------------------------------
def exact_w_cdf(m: int, kappa: float):
    """CDF of p(w) ~ exp(kappa w)(1 - w^2)^((m-3)/2), numerically in float64.

    Integrated in phi = arccos(w) (density exp(kappa (cos phi - 1)) sin^(m-2) phi, smooth
    for every m) by cumulative Simpson on 80001 points, then interpolated.
    """
    phi = np.linspace(0.0, np.pi, 80001)
    log_d = kappa * (np.cos(phi) - 1.0)
    if m > 2:
        with np.errstate(divide="ignore"):  # sin(phi) = 0 at the ends: density 0
            log_d = log_d + (m - 2) * np.log(np.sin(phi))
    dens = np.exp(log_d - log_d.max())
    upper_tail = scipy.integrate.cumulative_simpson(dens, x=phi, initial=0.0)  # P(phi' <= phi)
    upper_tail /= upper_tail[-1]

    def cdf(w):
        # P(W <= w) = P(phi' >= arccos w)
        return 1.0 - np.interp(np.arccos(np.clip(w, -1.0, 1.0)), phi, upper_tail)

    return cdf


def test_ks_harness_detects_a_biased_sampler():
    # s-vae-pytorch's sampler, which the issue reports as biased at m = 21, kappa = 15
    torch.manual_seed(0)
    w = 1.0 - sample_one_minus_w_svae(torch.full((20000,), 15.0, dtype=F64), 21).numpy()
    assert scipy.stats.kstest(w, exact_w_cdf(21, 15.0)).pvalue < 1e-10


KS_GRID = [(m, k) for m in (3, 10, 50, 200, 1000) for k in (1.0, 10.0, 100.0, 1e3, 1e4)]


@pytest.mark.parametrize("m,kappa", KS_GRID + [(2, 0.5), (2, 30.0), (21, 15.0), (200, 20.0)])
def test_w_marginal_passes_ks_against_the_exact_cdf(m, kappa):
    torch.manual_seed(1000 * m + int(kappa))
    n = 20000 if m <= 200 else 5000  # z is n x m float64; keep m = 1000 at 40 MB
    loc = unit(torch.randn(m, dtype=F64))
    z = VonMisesFisher(loc, torch.full((n,), kappa, dtype=F64)).sample()
    w = (z @ loc).numpy()
    assert scipy.stats.kstest(w, exact_w_cdf(m, kappa)).pvalue > 1e-3


@pytest.mark.parametrize("m,kappa", [(2, 0.5), (3, 2.0), (10, 100.0), (200, 20.0)])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_sampler_backends_draw_the_same_samples(m, kappa, dtype, monkeypatch):
    """numba (CPU default), numpy (CPU without numba) and torch (other devices) do the
    same arithmetic on the same torch draws. One proposal in the first round sends many
    rows to the later rounds."""
    from ccvae.distributions import von_mises_fisher as vmf

    monkeypatch.setattr(vmf, "FIRST_ROUND_PROPOSALS", 1)
    kappa_t = torch.full((20000,), kappa, dtype=dtype)
    out = {}
    for backend in ("numba", "numpy", "torch"):
        torch.manual_seed(7)
        out[backend] = sample_one_minus_w(kappa_t, m, backend=backend)
    a, b, c = out.values()
    assert a.dtype == b.dtype == c.dtype == dtype and a.shape == b.shape == c.shape == kappa_t.shape
    assert torch.allclose(a, b, rtol=1e-12, atol=0)
    assert torch.allclose(b, c, rtol=1e-12, atol=0)
    assert scipy.stats.kstest(1.0 - a.double().numpy(), exact_w_cdf(m, kappa)).pvalue > 1e-3
    with pytest.raises(ValueError, match="backend"):
        sample_one_minus_w(kappa_t, m, backend="cupy")


def test_mean_w_at_m200_kappa20_points_towards_loc():
    # the approximate-b sampler gives mean w = -0.43 here; the truth is A_200(20) = +0.099
    torch.manual_seed(0)
    loc = unit(torch.randn(200, dtype=F64))
    z = VonMisesFisher(loc, torch.full((20000,), 20.0, dtype=F64)).sample()
    w = z @ loc
    a = iv_ratio(99.0, torch.tensor(20.0, dtype=F64)).item()
    assert abs(w.mean().item() - a) < 4 * w.std().item() / math.sqrt(len(w))


@pytest.mark.parametrize("m,kappa", [(3, 1e5), (10, 1e5), (1000, 1e5)])
def test_float32_sampler_keeps_one_minus_w_at_kappa_1e5(m, kappa):
    # 1 - w ~ (m-1)/(2 kappa) ~ 1e-5 sits below float32's resolution near 1 (6e-8 relative
    # to 1 but 1e-2 relative to 1 - w), so omega must be sampled directly.
    torch.manual_seed(m)
    omega = sample_one_minus_w(torch.full((20000,), kappa, dtype=torch.float32), m)
    assert omega.dtype == torch.float32 and (omega > 0).all()
    w = 1.0 - omega.double().numpy()
    assert scipy.stats.kstest(w, exact_w_cdf(m, kappa)).pvalue > 1e-3


@pytest.mark.parametrize("m,kappa", [(3, 1.0), (3, 100.0), (10, 10.0), (50, 1.0), (50, 500.0)])
def test_orthogonal_part_is_uniform(m, kappa):
    torch.manual_seed(m + int(kappa))
    n = 20000
    loc = unit(torch.randn(m, dtype=F64))
    z = VonMisesFisher(loc, torch.full((n,), kappa, dtype=F64)).sample()
    perp = z - (z @ loc).unsqueeze(-1) * loc
    u = unit(perp)
    # a fixed direction e orthogonal to loc: e.u is the first coordinate of a uniform point
    # on S^(m-2), so (e.u + 1)/2 ~ Beta((m-2)/2, (m-2)/2)
    e = unit(torch.randn(m, dtype=F64))
    e = unit(e - (e @ loc) * loc)
    x = (u @ e).numpy()
    a = (m - 2) / 2
    assert scipy.stats.kstest((x + 1) / 2, scipy.stats.beta(a, a).cdf).pvalue > 1e-3
    # and the mean of u vanishes in every direction
    assert (u.mean(0).abs() < 5 / math.sqrt(n)).all()


def test_every_sample_has_unit_norm():
    torch.manual_seed(0)
    e1 = torch.zeros(10, dtype=F64)
    e1[0] = 1.0
    near_e1 = unit(e1 + 1e-9 * torch.randn(10, dtype=F64))
    locs = torch.stack([e1, -e1, near_e1, -near_e1, unit(torch.randn(10, dtype=F64))])
    for dtype, tol in ((F64, 1e-13), (torch.float32, 1e-6)):
        for kappa in (1e-4, 1.0, 100.0, 1e5):
            q = VonMisesFisher(locs.to(dtype), torch.tensor(kappa, dtype=dtype))
            z = q.sample((500,))
            assert z.shape == (500, 5, 10)
            assert ((z.double().norm(dim=-1) - 1).abs() <= tol).all(), (dtype, kappa)
    # the mean direction survives loc = +-e_1 (where a plain Householder reflection is 0/0)
    for loc in (e1, -e1):
        z = VonMisesFisher(loc, torch.tensor(50.0, dtype=F64)).sample((4000,))
        assert (z.mean(0) @ loc).item() > 0.9


def test_mean_matches_monte_carlo_and_mode_is_loc():
    torch.manual_seed(3)
    loc = unit(torch.randn(2, 6, dtype=F64))
    q = VonMisesFisher(loc, torch.tensor([2.0, 30.0], dtype=F64))
    z = q.sample((40000,))
    assert torch.allclose(z.mean(0), q.mean, atol=5 * 1.0 / math.sqrt(40000))
    assert torch.equal(q.mode, loc)


# ---------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("m,kappa", [(3, 2.0), (5, 2.0), (10, 5.0), (10, 20.0), (41, 10.0), (200, 100.0)])
def test_kappa_gradient_through_rsample_is_unbiased(m, kappa):
    # float32, as in training (the implicit gradient is formed in float64 internally)
    torch.manual_seed(m * 7 + int(kappa))
    n = 100000
    loc = unit(torch.randn(m))
    k = torch.full((n,), kappa, requires_grad=True)
    z = VonMisesFisher(loc, k).rsample()
    (grad,) = torch.autograd.grad((z @ loc).sum(), k)  # grad[i] = d(loc . z_i)/d kappa
    grad = grad.double()
    expected = iv_ratio_derivative(0.5 * m - 1, torch.tensor(kappa, dtype=F64)).item()  # dA_m/dkappa
    se = grad.std().item() / math.sqrt(n)
    assert abs(grad.mean().item() - expected) <= 3 * se, (grad.mean().item(), expected, se)
    # the test resolves biases of the size the issue reports for the reference sampler (13%)
    assert se < 0.03 * expected


@functools.lru_cache(maxsize=None)
def dw_dkappa_reference(m: int, kappa: float, w: float) -> float:
    """-(dF/dkappa)/p(w) at 20 digits, from dF/dkappa = int_{-1}^{w} (t - A) p(t) dt when
    w < A, and from the equal -int_{w}^{1} (t - A) p(t) dt (1 - F(w) = int_w^1 p) otherwise:
    each is the form whose integrand keeps one sign.

    mpmath's tanh-sinh quadrature in the angle phi (t = cos phi) over the whole range
    (0 to theta, or theta to pi: no window), split every 1/(4 sqrt(kappa + m)).
    """
    with mpmath.workdps(20):
        k, wm = mpmath.mpf(kappa), mpmath.mpf(w)
        v = mpmath.mpf(m) / 2 - 1
        a = mpmath.besseli(v + 1, k) / mpmath.besseli(v, k)
        th = mpmath.acos(wm)
        s_th = mpmath.sin(th)

        def integrand(phi):
            return (mpmath.cos(phi) - a) * mpmath.exp(k * (mpmath.cos(phi) - wm)
                                                      + (m - 2) * mpmath.log(mpmath.sin(phi) / s_th))

        lo, hi, sign = (th, mpmath.pi, -1) if wm < a else (mpmath.mpf(0), th, 1)
        step = 1 / (4 * mpmath.sqrt(k + m))
        n = int(min(100, (hi - lo) / step)) + 1
        return float(sign * s_th * mpmath.quad(integrand, mpmath.linspace(lo, hi, n + 1)))


@pytest.mark.parametrize("backend", ["numba", "numpy", "torch"])  # CPU default, and other devices
@pytest.mark.parametrize("m,kappa", [(2, 0.5), (3, 2.0), (4, 30.0), (10, 20.0), (41, 10.0),
                                     (200, 100.0), (1000, 1e4), (50, 1e-3)])
def test_implicit_gradient_quadrature_matches_mpmath(m, kappa, backend):
    k = torch.tensor(kappa, dtype=F64)
    a = iv_ratio(0.5 * m - 1, k).item()
    sd = math.sqrt(iv_ratio_derivative(0.5 * m - 1, k).item())
    # both sides of the mean, the bulk and the tails (4 to 6 standard deviations)
    ws = [a - 6 * sd, a - 1.5 * sd, a + 0.3 * sd, a + 2 * sd, 1 - 0.02 * (1 - a)]
    ws = [w for w in ws if -1 < w < 1]
    got = implicit_w_gradient(k.expand(len(ws)), torch.tensor([1 - w for w in ws], dtype=F64), m,
                              backend=backend)
    assert got.dtype == F64 and got.shape == (len(ws),)
    for w, g in zip(ws, got.tolist()):
        ref = dw_dkappa_reference(m, kappa, w)
        assert abs(g - ref) <= 1e-8 * abs(ref), (m, kappa, w, g, ref)


def test_implicit_gradient_backends_agree_and_unknown_one_is_refused():
    torch.manual_seed(3)
    for m in (2, 3, 10, 200):
        kappa = torch.logspace(-2, 4, 64, dtype=F64)
        omega = sample_one_minus_w(kappa, m)
        a = implicit_w_gradient(kappa, omega, m, backend="numpy")
        b = implicit_w_gradient(kappa, omega, m, backend="torch")
        c = implicit_w_gradient(kappa, omega, m, backend="numba")
        assert torch.allclose(a, b, rtol=1e-12, atol=0), m
        assert torch.allclose(a, c, rtol=1e-12, atol=0), m
    with pytest.raises(ValueError, match="backend"):
        implicit_w_gradient(kappa, omega, 10, backend="jax")


def test_compiled_quadrature_over_several_blocks_matches_numpy():
    """The compiled quadrature works in blocks of QUADRATURE_BLOCK samples (a ragged last
    one here) with vectorised sin, log and exp: to 1e-12 of numpy's array form, at every
    sample, for m = 2 (its own node loop), 3 and 41."""
    from ccvae.distributions.vmf_kernels import QUADRATURE_BLOCK

    torch.manual_seed(5)
    n = 2 * QUADRATURE_BLOCK + 37
    kappa = torch.logspace(-3, 5, n, dtype=F64)
    for m in (2, 3, 41):
        omega = sample_one_minus_w(kappa, m)
        ref = implicit_w_gradient(kappa, omega, m, backend="numpy")
        got = implicit_w_gradient(kappa, omega, m, backend="numba")
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=0)


def test_default_backend_is_numba_on_cpu_and_numpy_without_it(monkeypatch):
    from ccvae import compiled
    from ccvae.distributions import von_mises_fisher as vmf

    cpu = torch.device("cpu")
    assert vmf._backend(None, cpu) == "numba"
    assert vmf._backend(None, torch.device("meta")) == "torch"
    with pytest.raises(ValueError, match="CPU tensors only"):
        vmf._backend("numpy", torch.device("meta"))
    monkeypatch.setattr(compiled, "AVAILABLE", False)
    assert vmf._backend(None, cpu) == "numpy"
    with pytest.raises(ValueError, match="needs numba"):
        vmf._backend("numba", cpu)
    # and the distribution still samples and differentiates through numpy's forms
    torch.manual_seed(0)
    loc = F.normalize(torch.randn(64, 5), dim=-1).requires_grad_()
    kappa = torch.full((64,), 20.0, requires_grad=True)
    z = VonMisesFisher(loc, kappa).rsample()
    z.sum().backward()
    assert torch.isfinite(loc.grad).all() and torch.isfinite(kappa.grad).all()


@pytest.mark.parametrize("backend", ["numba", "numpy", "torch"])  # CPU default, and other devices
def test_loc_gradient_gradcheck_through_the_reflection(backend):
    torch.manual_seed(0)
    for m in (2, 5):
        n = 4
        omega = torch.rand(n, dtype=F64) * 1.5 + 0.01
        g = torch.randn(n, m - 1, dtype=F64)  # the node normalises it: v = g/|g|
        kappa = torch.full((n,), 3.0, dtype=F64)
        loc = unit(torch.randn(n, m, dtype=F64))
        loc[0] = -loc[0].abs()  # both branches of the reflection (loc_1 <= 0 and > 0)
        loc[1] = loc[1].abs()
        loc.requires_grad_()
        fn = lambda l: _ReflectedSample.apply(l, kappa, omega, g, m, torch.zeros(()), backend)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (loc,))
        # and the fused step equals the plain composition
        v = unit(g)
        z0 = torch.cat([(1 - omega).unsqueeze(-1),
                        torch.sqrt(omega * (2 - omega)).unsqueeze(-1) * v], -1)
        assert torch.allclose(fn(loc), reflect_from_e1(loc, z0), atol=1e-14)


@pytest.mark.parametrize("batch", [(3, 16), ()])  # a sample shape as rsample((S,)) makes; none
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("m", [2, 3, 11])
def test_reflection_node_backends_agree_in_values_and_both_gradients(m, dtype, batch):
    # numpy (the CPU default) and torch (other devices) run the same formulas
    torch.manual_seed(m)
    loc = F.normalize(torch.randn(*batch, m, dtype=dtype), dim=-1).requires_grad_()
    kappa = (torch.rand(batch, dtype=dtype) * 50 + 0.5).requires_grad_()
    omega = sample_one_minus_w(kappa, m)
    g = torch.randn(*batch, m - 1, dtype=dtype)
    one_minus_mean = VonMisesFisher(loc.detach(), kappa.detach()).bessel_terms.one_minus_ratio
    target = torch.randn(*batch, m, dtype=dtype)
    out = {}
    for backend in ("numba", "numpy", "torch"):
        z = _ReflectedSample.apply(loc, kappa, omega, g, m, one_minus_mean, backend)
        out[backend] = (z, *torch.autograd.grad((z * target).sum(), (loc, kappa)))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-13)
    for other in ("numpy", "numba"):
        for a, b in zip(out[other], out["torch"]):
            assert a.dtype == dtype and a.shape == b.shape
            torch.testing.assert_close(a, b, **tol)


def test_reflection_maps_e1_to_loc_and_is_orthogonal():
    torch.manual_seed(1)
    loc = unit(torch.randn(6, 7, dtype=F64))
    e1 = torch.zeros(6, 7, dtype=F64)
    e1[:, 0] = 1
    assert torch.allclose(reflect_from_e1(loc, e1), loc, atol=1e-15)
    x, y = torch.randn(6, 7, dtype=F64), torch.randn(6, 7, dtype=F64)
    qx, qy = reflect_from_e1(loc, x), reflect_from_e1(loc, y)
    assert torch.allclose((qx * qy).sum(-1), (x * y).sum(-1), atol=1e-13)


def test_loc_gradient_through_rsample_is_unbiased():
    # E[c . z] = A_m(kappa) (c . loc) for any loc, so its gradient in loc is A c
    torch.manual_seed(2)
    m, kappa, n = 6, 4.0, 50000
    loc = unit(torch.randn(m, dtype=F64)).requires_grad_()
    c = torch.randn(m, dtype=F64)
    z = VonMisesFisher(loc.expand(n, m), torch.tensor(kappa, dtype=F64)).rsample()
    (g,) = torch.autograd.grad((z @ c).mean(), loc)
    a = iv_ratio(0.5 * m - 1, torch.tensor(kappa, dtype=F64))
    assert torch.allclose(g, a * c, atol=0.03 * c.abs().max().item())


def test_gradients_flow_in_float32_training_step():
    torch.manual_seed(0)
    raw = torch.randn(64, 10, requires_grad=True)
    log_k = torch.randn(64, requires_grad=True)
    q = VonMisesFisher(F.normalize(raw, dim=-1), log_k.exp() * 10)
    loss = q.rsample().pow(2).sum(-1).mean() + kl_divergence(q, HypersphericalUniform(9)).mean()
    loss.backward()
    assert torch.isfinite(raw.grad).all() and torch.isfinite(log_k.grad).all()
    assert raw.grad.abs().sum() > 0 and log_k.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------
# Shapes and errors
# ---------------------------------------------------------------------------------------
def test_shapes_and_broadcasting():
    loc = unit(torch.randn(5, dtype=F64))
    q = VonMisesFisher(loc, torch.tensor([1.0, 2.0, 3.0], dtype=F64))
    assert q.batch_shape == (3,) and q.event_shape == (5,)
    assert q.rsample().shape == (3, 5)
    assert q.rsample((2, 4)).shape == (2, 4, 3, 5)
    assert q.log_prob(q.sample((7,))).shape == (7, 3)
    assert q.entropy().shape == (3,)
    assert q.mean.shape == (3, 5)
    e = q.expand((2, 3))
    assert e.batch_shape == (2, 3) and e.sample().shape == (2, 3, 5)
    q2 = VonMisesFisher(unit(torch.randn(4, 3)), 2.0)  # Python number concentration
    assert q2.batch_shape == (4,) and q2.concentration.dtype == torch.float32
    assert q2.sample().dtype == torch.float32


def test_circle_m2_samples():
    torch.manual_seed(0)
    loc = unit(torch.randn(2, dtype=F64))
    q = VonMisesFisher(loc, torch.full((5000,), 3.0, dtype=F64))
    z = q.sample()
    assert z.shape == (5000, 2) and ((z.norm(dim=-1) - 1).abs() < 1e-13).all()
    # the signed angle to loc is symmetric
    cross = loc[0] * z[:, 1] - loc[1] * z[:, 0]
    assert abs(cross.mean().item()) < 4 * cross.std().item() / math.sqrt(5000)


@pytest.mark.parametrize("loc,kappa,match", [
    (torch.tensor(1.0), 1.0, "^loc:"),
    (torch.ones(3, 1), 1.0, "^loc:"),
    (torch.ones(3, 2, dtype=torch.int64), 1.0, "^loc:"),
    (unit(torch.randn(4, 3)), torch.ones(4, 1), "^concentration:.*squeeze"),
    (unit(torch.randn(4, 3)), torch.ones(5), "^concentration:.*broadcast"),
    (unit(torch.randn(4, 3)), torch.ones(4, dtype=F64), "^concentration:.*dtype"),
])
def test_bad_shapes_raise_value_errors_naming_the_argument(loc, kappa, match):
    with pytest.raises(ValueError, match=match):
        VonMisesFisher(loc, kappa, validate_args=False)


@pytest.mark.parametrize("kappa", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_concentration_raises(kappa):
    loc = unit(torch.randn(3, 4))
    with pytest.raises(ValueError, match="^concentration:"):
        VonMisesFisher(loc, torch.tensor([1.0, kappa, 2.0]), validate_args=True)


def test_bad_loc_raises_when_validating():
    with pytest.raises(ValueError, match="^loc:.*unit-norm"):
        VonMisesFisher(torch.ones(3, 4), 1.0, validate_args=True)
    with pytest.raises(ValueError, match="^loc:.*NaN"):
        VonMisesFisher(torch.tensor([[float("nan"), 0.0, 1.0]]), 1.0, validate_args=True)
    VonMisesFisher(torch.ones(3, 4), 1.0, validate_args=False)  # no check when off
    q = VonMisesFisher(unit(torch.randn(4)), 1.0, validate_args=True)
    with pytest.raises(ValueError):
        q.log_prob(torch.ones(4))  # off the sphere


def test_rejection_loop_is_bounded():
    loc = unit(torch.randn(2, 5))
    q = VonMisesFisher(loc, torch.tensor([1.0, float("nan")]), validate_args=False)
    with pytest.raises(RuntimeError, match="concentration"):
        q.sample()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_sampling_kl_and_gradients():
    torch.manual_seed(0)
    m, kappa, n = 10, 20.0, 200000
    loc = unit(torch.randn(m, dtype=F64, device="cuda"))
    k = torch.full((n,), kappa, dtype=F64, device="cuda", requires_grad=True)
    q = VonMisesFisher(loc, k)
    z = q.rsample()
    assert scipy.stats.kstest((z @ loc).cpu().detach().numpy(), exact_w_cdf(m, kappa)).pvalue > 1e-3
    (grad,) = torch.autograd.grad((z @ loc).sum(), k)
    expected = iv_ratio_derivative(0.5 * m - 1, torch.tensor(kappa, dtype=F64)).item()
    assert abs(grad.mean().item() - expected) <= 3 * grad.std().item() / math.sqrt(n)
    kl, _ = _kl_and_grad(m, torch.tensor(KL_KAPPAS, dtype=F64, device="cuda"))
    assert torch.allclose(kl.cpu(), torch.tensor([kl_reference(m, x)[0] for x in KL_KAPPAS], dtype=F64),
                          rtol=1e-8, atol=1e-12)


def test_parameters_of_the_batch_shape_are_used_without_an_expand_node():
    # an expand to the same shape would add an autograd node per parameter per step
    loc = unit(torch.randn(4, 3)).requires_grad_()
    kappa = (torch.rand(4) + 1).requires_grad_()
    q = VonMisesFisher(loc, kappa)
    assert q.loc is loc and q.concentration is kappa
    z = q.rsample()
    assert "Expand" not in str([f for f, _ in z.grad_fn.next_functions])
    # a scalar concentration is still broadcast over the batch
    assert VonMisesFisher(loc, torch.tensor(2.0)).concentration.shape == (4,)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_a_single_distribution_samples_and_differentiates(dtype):
    # batch shape (): numpy hands back scalars, not 0-d arrays, for such inputs
    loc = torch.tensor([0.6, 0.8, 0.0], dtype=dtype, requires_grad=True)
    kappa = torch.tensor(5.0, dtype=dtype, requires_grad=True)
    q = VonMisesFisher(loc, kappa)
    z = q.rsample()
    kl = kl_divergence(q, HypersphericalUniform(2, dtype=dtype))
    assert z.shape == (3,) and kl.shape == () and z.dtype == kl.dtype == dtype
    (z.sum() + kl + q.entropy()).backward()
    assert torch.isfinite(loc.grad).all() and torch.isfinite(kappa.grad) and kappa.grad != 0


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_compiled_kl_matches_the_tensor_form(monkeypatch, dtype):
    """On CPU the KL node takes KL and dKL/dkappa from a compiled loop; without numba
    from tensor operations. From the same Bessel terms, in both regimes in one batch
    (kappa from 1e-3 to 1e5, a 2-D batch), all-series and all-asymptotic batches: the
    same values (1e-14 in float64, one float32 rounding) and gradients."""
    from ccvae import compiled
    from ccvae.distributions.von_mises_fisher import _KLVMFUniform, _vmf_bessel_terms

    for m in (3, 10, 201):
        for kappa in (torch.logspace(-3, 5, 64, dtype=dtype).reshape(8, 8),
                      torch.tensor([1e-3, 0.5, 2.0], dtype=dtype), torch.tensor([1e3, 1e5], dtype=dtype)):
            terms = _vmf_bessel_terms(kappa, m)
            results = []
            for available in (True, False):
                monkeypatch.setattr(compiled, "AVAILABLE", available)
                k = kappa.clone().requires_grad_()
                kl = _KLVMFUniform.apply(k, m, terms)
                kl.sum().backward()
                results.append((kl.detach(), k.grad))
            (kl_c, g_c), (kl_t, g_t) = results
            assert kl_c.dtype == dtype and kl_c.shape == kappa.shape
            rtol = 1e-14 if dtype == F64 else 1.2e-7
            torch.testing.assert_close(kl_c, kl_t, rtol=rtol, atol=1e-300)
            torch.testing.assert_close(g_c, g_t, rtol=rtol, atol=1e-300)
