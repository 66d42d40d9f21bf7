"""HypersphericalUniform and PowerSpherical: densities, samples, entropies, KL, gradients, errors."""

from __future__ import annotations

import math

import pytest
import scipy.stats
import torch
from torch.distributions import kl_divergence

from ccvae.distributions.hyperspherical_uniform import HypersphericalUniform, log_sphere_area
from ccvae.distributions.power_spherical import PowerSpherical


pytestmark = pytest.mark.usefixtures("single_thread")

F64 = torch.float64


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


# ---------------------------------------------------------------------------------------
# HypersphericalUniform
# ---------------------------------------------------------------------------------------
def test_sphere_areas():
    assert math.isclose(math.exp(log_sphere_area(1)), 2 * math.pi, rel_tol=1e-14)
    assert math.isclose(math.exp(log_sphere_area(2)), 4 * math.pi, rel_tol=1e-14)
    assert math.isclose(math.exp(log_sphere_area(3)), 2 * math.pi**2, rel_tol=1e-14)
    # |S^d| = 2 pi |S^(d-2)| / (d-1)
    for d in (4, 9, 50, 999):
        assert math.isclose(log_sphere_area(d), math.log(2 * math.pi / (d - 1)) + log_sphere_area(d - 2),
                            rel_tol=1e-12)


def test_uniform_shapes_density_entropy_and_mean():
    u = HypersphericalUniform(2, batch_shape=(3,), dtype=F64)
    assert u.batch_shape == (3,) and u.event_shape == (3,)
    x = u.sample((5,))
    assert x.shape == (5, 3, 3) and x.dtype == F64
    assert ((x.norm(dim=-1) - 1).abs() < 1e-14).all()
    assert torch.allclose(u.log_prob(x), torch.full((5, 3), -math.log(4 * math.pi), dtype=F64))
    assert torch.allclose(u.entropy(), torch.full((3,), math.log(4 * math.pi), dtype=F64))
    assert torch.equal(u.mean, torch.zeros(3, 3, dtype=F64))
    assert u.expand((2, 3)).sample().shape == (2, 3, 3)
    assert HypersphericalUniform(4).sample().dtype == torch.get_default_dtype()


@pytest.mark.parametrize("dim", [1, 2, 9, 99])
def test_uniform_samples_are_uniform(dim):
    torch.manual_seed(dim)
    n = 20000
    x = HypersphericalUniform(dim, dtype=F64).sample((n,))
    # first coordinate: (x_1 + 1)/2 ~ Beta(dim/2, dim/2); second moments I/(dim+1)
    a = dim / 2
    assert scipy.stats.kstest((x[:, 0].numpy() + 1) / 2, scipy.stats.beta(a, a).cdf).pvalue > 1e-3
    cov = x.T @ x / n
    tol = 6 / math.sqrt(n) / (dim + 1) ** 0.5
    assert torch.allclose(cov, torch.eye(dim + 1, dtype=F64) / (dim + 1), atol=tol)


@pytest.mark.parametrize("kwargs,match", [
    (dict(dim=0), "^dim:"), (dict(dim=2.0), "^dim:"), (dict(dim=True), "^dim:"),
    (dict(dim=2, batch_shape="ab"), "^batch_shape:"), (dict(dim=2, dtype=torch.int64), "^dtype:"),
])
def test_uniform_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HypersphericalUniform(**kwargs)


def test_uniform_rejects_points_off_the_sphere_when_validating():
    u = HypersphericalUniform(2, validate_args=True)
    with pytest.raises(ValueError):
        u.log_prob(torch.tensor([1.0, 1.0, 0.0]))


# ---------------------------------------------------------------------------------------
# PowerSpherical
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("m,kappa", [(2, 1.0), (3, 0.0), (3, 5.0), (10, 20.0)])
def test_power_spherical_density_integrates_to_one(m, kappa):
    torch.manual_seed(0)
    q = PowerSpherical(unit(torch.randn(m, dtype=F64)), torch.tensor(kappa, dtype=F64))
    x = HypersphericalUniform(m - 1, dtype=F64).sample((200000,))
    mass = (q.log_prob(x) + log_sphere_area(m - 1)).exp()  # p(x) |S| under the uniform
    assert abs(mass.mean().item() - 1) <= 5 * mass.std().item() / math.sqrt(len(mass)) + 1e-12


def test_power_spherical_log_prob_closed_form_on_s2():
    # m = 3: C^-1 = 2^(kappa+2) pi Gamma(kappa+1)/Gamma(kappa+2) = 2^(kappa+2) pi/(kappa+1)
    loc = torch.tensor([0.0, 0.0, 1.0], dtype=F64)
    x = unit(torch.tensor([[0.3, 0.4, 0.5], [0.0, 0.0, -1.0], [0.0, 0.0, 1.0]], dtype=F64))
    for kappa in (0.0, 2.5, 300.0):
        q = PowerSpherical(loc, torch.tensor(kappa, dtype=F64))
        log_c = math.log(kappa + 1) - (kappa + 2) * math.log(2) - math.log(math.pi)
        dot = x @ loc
        expected = log_c + torch.xlogy(torch.tensor(kappa, dtype=F64), 1 + dot)
        assert torch.allclose(q.log_prob(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("m,kappa", [(2, 3.0), (3, 1.0), (10, 50.0), (200, 1e4)])
def test_power_spherical_marginal_and_orthogonal_part(m, kappa):
    torch.manual_seed(m)
    n = 20000
    loc = unit(torch.randn(m, dtype=F64))
    z = PowerSpherical(loc, torch.full((n,), kappa, dtype=F64)).sample()
    assert ((z.norm(dim=-1) - 1).abs() < 1e-12).all()
    t = (z @ loc).numpy()
    beta = (m - 1) / 2
    assert scipy.stats.kstest((t + 1) / 2, scipy.stats.beta(beta + kappa, beta).cdf).pvalue > 1e-3
    if m > 2:
        u = unit(z - torch.from_numpy(t).unsqueeze(-1) * loc)
        e = unit(torch.randn(m, dtype=F64))
        e = unit(e - (e @ loc) * loc)
        a = (m - 2) / 2
        assert scipy.stats.kstest(((u @ e).numpy() + 1) / 2, scipy.stats.beta(a, a).cdf).pvalue > 1e-3


def test_power_spherical_mean_entropy_and_kl():
    torch.manual_seed(1)
    loc = unit(torch.randn(2, 5, dtype=F64))
    kappa = torch.tensor([0.7, 40.0], dtype=F64)
    q = PowerSpherical(loc, kappa)
    z = q.sample((100000,))
    assert torch.allclose(z.mean(0), q.mean, atol=0.015)
    h_mc = -q.log_prob(z).mean(0)
    assert torch.allclose(h_mc, q.entropy(), atol=0.02)
    p = HypersphericalUniform(4, batch_shape=(2,), dtype=F64)
    kl = kl_divergence(q, p)
    assert torch.allclose(kl, log_sphere_area(4) - q.entropy()) and (kl > 0).all()
    zero = PowerSpherical(loc, torch.zeros(2, dtype=F64))
    assert torch.allclose(kl_divergence(zero, p), torch.zeros(2, dtype=F64), atol=1e-12)
    with pytest.raises(ValueError, match="^p:"):
        kl_divergence(q, HypersphericalUniform(2, dtype=F64))


def test_power_spherical_entropy_float32_at_large_kappa():
    loc = unit(torch.randn(10))
    h32 = PowerSpherical(loc, torch.tensor(1e5)).entropy()
    h64 = PowerSpherical(loc.double(), torch.tensor(1e5, dtype=F64)).entropy()
    assert h32.dtype == torch.float32
    assert abs(h32.item() - h64.item()) <= 1e-5 * abs(h64.item())


def test_power_spherical_kappa_gradient_is_unbiased():
    # E[loc . z] = kappa/(kappa + m - 1), so d/dkappa = (m-1)/(kappa + m - 1)^2
    torch.manual_seed(2)
    m, kappa, n = 8, 5.0, 100000
    loc = unit(torch.randn(m, dtype=F64))
    k = torch.full((n,), kappa, dtype=F64, requires_grad=True)
    z = PowerSpherical(loc, k).rsample()
    (g,) = torch.autograd.grad((z @ loc).sum(), k)
    expected = (m - 1) / (kappa + m - 1) ** 2
    assert abs(g.mean().item() - expected) <= 3 * g.std().item() / math.sqrt(n)


def test_power_spherical_gradcheck_of_log_prob_and_kl():
    loc = unit(torch.randn(3, 4, dtype=F64))
    x = unit(torch.randn(3, 4, dtype=F64))
    k = torch.tensor([0.1, 3.0, 80.0], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: PowerSpherical(loc, t).log_prob(x), (k,))
    p = HypersphericalUniform(3, batch_shape=(3,), dtype=F64)
    assert torch.autograd.gradcheck(lambda t: kl_divergence(PowerSpherical(loc, t), p), (k,))


def test_power_spherical_shapes():
    q = PowerSpherical(unit(torch.randn(6)), torch.tensor([1.0, 2.0]))
    assert q.batch_shape == (2,) and q.event_shape == (6,)
    assert q.rsample((3,)).shape == (3, 2, 6)
    assert q.log_prob(q.sample((4,))).shape == (4, 2)
    assert q.expand((5, 2)).sample().shape == (5, 2, 6)
    assert torch.equal(q.mode, q.loc)


@pytest.mark.parametrize("loc,kappa,match", [
    (torch.tensor(1.0), 1.0, "^loc:"),
    (torch.ones(3, 1), 1.0, "^loc:"),
    (unit(torch.randn(4, 3)), torch.ones(4, 1), "^concentration:"),
    (unit(torch.randn(4, 3)), torch.ones(5), "^concentration:"),
])
def test_power_spherical_bad_shapes(loc, kappa, match):
    with pytest.raises(ValueError, match=match):
        PowerSpherical(loc, kappa, validate_args=False)


def test_power_spherical_bad_values():
    loc = unit(torch.randn(2, 3))
    with pytest.raises(ValueError, match="^concentration:"):
        PowerSpherical(loc, torch.tensor([1.0, -0.5]), validate_args=True)
    with pytest.raises(ValueError, match="^concentration:"):
        PowerSpherical(loc, torch.tensor([1.0, float("nan")]), validate_args=True)
    with pytest.raises(ValueError, match="^loc:"):
        PowerSpherical(torch.ones(2, 3), 1.0, validate_args=True)
    PowerSpherical(loc, torch.tensor([0.0, 1.0]), validate_args=True)  # kappa = 0 is allowed
