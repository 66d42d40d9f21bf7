"""WrappedNormal on H^d and the Monte Carlo KL: exact density (quadrature and an
independent change-of-variables reference), sampling, gradients, validation,
and the KL estimators."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Independent, Normal, Poisson, kl_divergence
from torch.distributions.utils import _standard_normal

from ccvae.distributions.kl import monte_carlo_kl, tangent_kl_approximation
from ccvae.distributions.wrapped_normal import WrappedNormal
from ccvae.distributions.wrapped_normal_fused import BACKENDS
from ccvae.manifolds.lorentz import Lorentz, minkowski_inner

F64 = torch.float64


def point(values, dtype=F64):
    """exp_o((0, values)): a point of H^d at distance |values| from the origin."""
    v = torch.as_tensor(values, dtype=dtype)
    return Lorentz(v.shape[-1]).expmap0(torch.cat([torch.zeros_like(v[..., :1]), v], -1))


def gaussian_kl(sq, sp):
    """KL(N(0, diag sq^2) || N(0, diag sp^2))."""
    ratio = (sq / sp) ** 2
    return 0.5 * (ratio - 1 - torch.log(ratio)).sum(-1)


# ---------------------------------------------------------------------------
# An independent float64 reference: the sampling map written from the paper's
# formulas, and the density by the change of variables through its Jacobian.
# ---------------------------------------------------------------------------
def _mink(a, b):
    return -a[0] * b[0] + (a[1:] * b[1:]).sum()


def reference_sampling_map(mu, v):
    """v' -> exp_mu(PT_{mu0->mu}((0, v'))), straight from Nagano et al. (2019)."""
    mu0 = torch.zeros_like(mu)
    mu0[0] = 1
    vv = torch.cat([torch.zeros_like(v[:1]), v])
    a = -_mink(mu0, mu)
    u = vv + _mink(mu - a * mu0, vv) / (a + 1) * (mu0 + mu)
    r = torch.sqrt(_mink(u, u))
    return torch.cosh(r) * mu + torch.sinh(r) / r * u


def reference_log_prob(mu, scale, v):
    """log N(v'; 0, Sigma) - 1/2 log det(J^T G J), J = d z / d v', G = Minkowski metric."""
    jac = torch.func.jacrev(lambda t: reference_sampling_map(mu, t))(v)  # (d+1, d)
    metric = torch.diag(torch.tensor([-1.0] + [1.0] * (len(mu) - 1), dtype=mu.dtype))
    induced = jac.T @ metric @ jac
    log_normal = Normal(torch.zeros_like(scale), scale).log_prob(v).sum()
    return log_normal - 0.5 * torch.logdet(induced)


@pytest.mark.parametrize("d", [2, 3, 5])
def test_log_prob_matches_change_of_variables(d):
    g = torch.Generator().manual_seed(d)
    for _ in range(4):
        mu = point(torch.randn(d, generator=g, dtype=F64) * 1.5)
        scale = torch.rand(d, generator=g, dtype=F64) + 0.2
        v = torch.randn(d, generator=g, dtype=F64) * scale
        z = reference_sampling_map(mu, v)
        ours = WrappedNormal(mu, scale).log_prob(z)
        ref = reference_log_prob(mu, scale, v)
        assert torch.allclose(ours, ref, rtol=1e-10, atol=1e-10), (ours, ref)


def test_rsample_is_the_sampling_map():
    d = 3
    mu = point(torch.tensor([[0.4, -1.0, 2.0], [0.0, 0.0, 0.0]], dtype=F64))
    scale = torch.tensor([[0.3, 1.0, 2.0], [1.0, 1.0, 1.0]], dtype=F64)
    q = WrappedNormal(mu, scale)
    torch.manual_seed(0)
    z = q.rsample((5,))
    torch.manual_seed(0)
    eps = _standard_normal((5, 2, d), dtype=F64, device="cpu")
    ref = torch.stack([torch.stack([reference_sampling_map(mu[b], eps[s, b] * scale[b])
                                    for b in range(2)]) for s in range(5)])
    assert torch.allclose(z, ref, rtol=1e-12, atol=1e-12)


def test_density_integrates_to_one_in_2d():
    """Polar quadrature around loc with the Riemannian volume sinh(rho) drho dphi."""
    L = Lorentz(2)
    mu = point([1.2, -0.7])
    q = WrappedNormal(mu, torch.tensor([0.5, 1.3], dtype=F64))
    basis = L.transp0(mu, torch.tensor([[0.0, 1, 0], [0, 0, 1]], dtype=F64))  # orthonormal in T_mu
    rho = torch.linspace(0, 14, 1401, dtype=F64)
    n_phi = 128
    phi = torch.arange(n_phi, dtype=F64) * (2 * math.pi / n_phi)
    R, P = torch.meshgrid(rho, phi, indexing="ij")
    u = R[..., None] * (torch.cos(P)[..., None] * basis[0] + torch.sin(P)[..., None] * basis[1])
    density = q.log_prob(L.expmap(mu.expand_as(u), u)).exp() * torch.sinh(R)
    total = torch.trapezoid(density.sum(-1) * (2 * math.pi / n_phi), rho)
    assert abs(float(total) - 1) < 1e-4


def test_density_integrates_to_one_in_1d():
    L = Lorentz(1)
    mu = point([0.8])
    q = WrappedNormal(mu, torch.tensor([0.7], dtype=F64))
    e = L.transp0(mu, torch.tensor([0.0, 1.0], dtype=F64))
    t = torch.linspace(-12, 12, 4001, dtype=F64)
    z = L.expmap(mu.expand(len(t), 2), t[:, None] * e)  # unit speed: the volume is dt
    assert abs(float(torch.trapezoid(q.log_prob(z).exp(), t)) - 1) < 1e-8


# ---------------------------------------------------------------------------
# Shapes, samples, gradients
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "loc_shape,scale_shape,batch",
    [((3,), (2,), ()), ((4, 3), (2,), (4,)), ((3,), (5, 2), (5,)), ((4, 1, 3), (5, 2), (4, 5))],
)
def test_shapes(loc_shape, scale_shape, batch):
    loc = Lorentz(2).origin(*loc_shape[:-1])
    q = WrappedNormal(loc, torch.ones(scale_shape))
    assert q.batch_shape == batch and q.event_shape == (3,)
    z = q.rsample((7,))
    assert z.shape == (7, *batch, 3)
    assert q.log_prob(z).shape == (7, *batch)
    z2, lp = q.rsample_with_log_prob((2, 3))
    assert z2.shape == (2, 3, *batch, 3) and lp.shape == (2, 3, *batch)
    assert q.sample().shape == (*batch, 3)
    e = q.expand((6, *batch))
    assert e.batch_shape == (6, *batch) and e.rsample().shape == (6, *batch, 3)


def test_scalar_scale_and_mode():
    loc = point([0.3, 0.4])
    q = WrappedNormal(loc, 0.5)
    assert torch.equal(q.scale, torch.full((2,), 0.5, dtype=F64))
    assert q.mode is q.loc
    with pytest.raises(NotImplementedError, match="no closed-form mean"):
        q.mean
    with pytest.raises(NotImplementedError, match="no closed-form variance"):
        q.variance


def test_samples_lie_on_the_hyperboloid_and_have_finite_log_prob():
    torch.manual_seed(1)
    mu = point(torch.randn(50, 4, dtype=F64) * 2)
    q = WrappedNormal(mu, torch.rand(50, 4, dtype=F64) * 2 + 0.01)
    z = q.rsample((20,))
    rel = (minkowski_inner(z, z) + 1).abs() / z[..., 0] ** 2
    assert rel.max() < 1e-5 and (z[..., 0] > 0).all()
    assert Lorentz(4).contains(z).all()
    assert torch.isfinite(q.log_prob(z)).all()
    # the mode is the most likely point
    assert (q.log_prob(mu) >= q.log_prob(z).max(0).values).all()


def test_rsample_with_log_prob_equals_log_prob_of_rsample():
    h = torch.tensor([[0.5, -1.0, 2.0], [0.1, 0.2, 0.3]], dtype=F64, requires_grad=True)
    scale = torch.tensor([[0.2, 0.9, 1.5], [1.0, 0.1, 0.3]], dtype=F64, requires_grad=True)

    def run(fused):
        q = WrappedNormal(point(h), scale)
        torch.manual_seed(3)
        if fused:
            z, lp = q.rsample_with_log_prob((4,))
        else:
            z = q.rsample((4,))
            lp = q.log_prob(z)
        loss = (lp * torch.arange(1.0, 5.0, dtype=F64)[:, None]).sum() + z.sum()
        return lp.detach(), torch.autograd.grad(loss, [h, scale])

    lp_a, g_a = run(True)
    lp_b, g_b = run(False)
    assert torch.allclose(lp_a, lp_b, rtol=1e-11, atol=1e-11)
    for a, b in zip(g_a, g_b):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-9)


def test_at_origin_is_the_same_distribution():
    torch.manual_seed(4)
    scale = torch.rand(3, 4, dtype=F64) + 0.1
    fast = WrappedNormal.at_origin(scale)
    slow = WrappedNormal(Lorentz(4).origin(3, dtype=F64), scale)
    z = WrappedNormal(point(torch.randn(3, 4, dtype=F64)), scale).sample((10,))
    assert torch.allclose(fast.log_prob(z), slow.log_prob(z), rtol=1e-12, atol=1e-12)
    assert torch.equal(fast.loc, slow.loc)
    assert fast.expand((2, 3)).log_prob(z[:2]).shape == (2, 3)
    with pytest.raises(ValueError, match="scale must have shape"):
        WrappedNormal.at_origin(torch.tensor(1.0))


def test_gradcheck_log_prob():
    torch.manual_seed(5)
    h_loc = torch.randn(3, 3, dtype=F64, requires_grad=True)
    scale = (torch.rand(3, 3, dtype=F64) + 0.3).requires_grad_(True)
    h_z = (h_loc.detach() + 0.7 * torch.randn(3, 3, dtype=F64)).requires_grad_(True)

    def along_manifold(h_loc, scale, h_z):
        return WrappedNormal(point(h_loc), scale).log_prob(point(h_z))

    assert torch.autograd.gradcheck(along_manifold, (h_loc, scale, h_z))

    loc = point(h_loc.detach()).requires_grad_(True)
    z = point(h_z.detach()).requires_grad_(True)

    def ambient(loc, scale, z):
        return WrappedNormal(loc, scale, validate_args=False).log_prob(z)

    assert torch.autograd.gradcheck(ambient, (loc, scale, z))

    def sampled(h_loc, scale):
        torch.manual_seed(0)
        z, lp = WrappedNormal(point(h_loc), scale).rsample_with_log_prob((2,))
        return z, lp

    assert torch.autograd.gradcheck(sampled, (h_loc, scale))

    def at_origin(scale, h_z):
        return WrappedNormal.at_origin(scale).log_prob(point(h_z))

    assert torch.autograd.gradcheck(at_origin, (scale, h_z))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_gradients_finite_at_the_edges(dtype):
    h = torch.tensor([[0.0, 0.0], [1.0, -2.0], [5.0, 0.0]], dtype=dtype, requires_grad=True)
    scale = torch.tensor([[1e-8, 1e-8], [1.0, 1.0], [0.1, 3.0]], dtype=dtype, requires_grad=True)
    q = WrappedNormal(point(h, dtype), scale)
    # log_prob at the mode (r = 0), of near-exact samples (tiny scale), and sampling
    lp = q.log_prob(q.loc) + q.log_prob(q.rsample()) + q.rsample_with_log_prob()[1]
    z = q.rsample()
    grads = torch.autograd.grad(lp.sum() + z.sum(), [h, scale])
    assert torch.isfinite(lp).all() and all(torch.isfinite(g).all() for g in grads)


def test_float32_log_prob_far_from_the_origin():
    """At distance 8 the plain formulas lose the density in float32 (errors of
    several nats); ours stays within ~1e-2 of a float64 evaluation at the same points."""
    L = Lorentz(5)
    torch.manual_seed(6)
    for R, tol in [(3.0, 1e-4), (5.0, 1e-3), (8.0, 1e-2)]:
        h = torch.randn(6, dtype=F64)
        h[0] = 0
        loc = L.projx(L.expmap0(R * h / h.norm()).float())
        scale = torch.full((5,), 0.1)
        q32 = WrappedNormal(loc, scale)
        z = q32.sample((2000,))
        assert L.contains(z).all()
        q64 = WrappedNormal(L.projx(loc.double()), scale.double())
        err = (q32.log_prob(z).double() - q64.log_prob(L.projx(z.double()))).abs().max()
        assert err < tol, (R, float(err))


# ---------------------------------------------------------------------------
# Validation and error messages
# ---------------------------------------------------------------------------
def test_shape_errors_name_the_argument():
    loc = point([0.1, 0.2])
    with pytest.raises(ValueError, match=r"loc must have shape \(\.\.\., d\+1\) with d >= 1"):
        WrappedNormal(torch.tensor(1.0), torch.ones(1))
    with pytest.raises(ValueError, match=r"loc must have shape .*got shape \(4, 1\)"):
        WrappedNormal(torch.ones(4, 1), torch.ones(0))
    with pytest.raises(ValueError, match=r"scale must have shape \(\.\.\., 2\) for loc of shape \(\.\.\., 3\)"):
        WrappedNormal(loc, torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match=r"batch shapes of loc \(4, 3\) and scale \(5, 2\) do not broadcast"):
        WrappedNormal(Lorentz(2).origin(4), torch.ones(5, 2))
    with pytest.raises(ValueError, match="scale must be a tensor or a number"):
        WrappedNormal(loc, "big")
    q = WrappedNormal(loc, torch.ones(2, dtype=F64))
    with pytest.raises(ValueError, match=r"value must have last dimension 3 .*got shape \(4, 2\)"):
        q.log_prob(torch.ones(4, 2, dtype=F64))
    with pytest.raises(ValueError, match="value must be a torch.Tensor"):
        q.log_prob([1.0, 0.0, 0.0])


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_scale(bad):
    loc = point([0.1, 0.2])
    with pytest.raises(ValueError, match="scale must be positive and finite"):
        WrappedNormal(loc, torch.tensor([1.0, bad], dtype=F64), validate_args=True)
    WrappedNormal(loc, torch.tensor([1.0, bad], dtype=F64), validate_args=False)  # not checked


def test_loc_off_the_hyperboloid():
    loc = point([[0.1, 0.2], [3.0, 1.0]])
    with pytest.raises(ValueError, match=r"loc must lie on the hyperboloid .*relative tolerance 1\.5e-08"):
        WrappedNormal(loc * 1.001, torch.ones(2, dtype=F64), validate_args=True)
    with pytest.raises(ValueError, match="loc must lie on the hyperboloid"):
        WrappedNormal(-loc, torch.ones(2, dtype=F64), validate_args=True)  # lower sheet
    # rounding-level errors pass, float32 included, far out included
    WrappedNormal(loc, torch.ones(2, dtype=F64), validate_args=True)
    WrappedNormal(point(torch.tensor([[7.0, 2.0]])), torch.ones(2), validate_args=True)
    q = WrappedNormal(loc, torch.ones(2, dtype=F64), validate_args=True)
    with pytest.raises(ValueError, match="support"):
        q.log_prob(loc * 2)
    assert torch.isfinite(WrappedNormal(loc, 1.0, validate_args=False).log_prob(loc * 1.001)).all()


def test_kl_divergence_is_not_registered_as_a_value():
    q = WrappedNormal(point([0.1, 0.2]), torch.ones(2, dtype=F64))
    with pytest.raises(NotImplementedError, match="monte_carlo_kl"):
        kl_divergence(q, q)


# ---------------------------------------------------------------------------
# Monte Carlo KL and the tangent-space approximation
# ---------------------------------------------------------------------------
def _mc_with_error(q, p, n):
    """Per-sample estimates (batch of n identical copies) -> mean, standard error."""
    torch.manual_seed(7)
    per_sample = monte_carlo_kl(q.expand((n, *q.batch_shape)), p.expand((n, *p.batch_shape)))
    return per_sample.mean(0), per_sample.std(0) / math.sqrt(n)


def test_monte_carlo_kl_is_zero_for_identical_distributions():
    q = WrappedNormal(point([[1.0, -2.0, 0.5]]), torch.tensor([[0.3, 1.0, 2.0]], dtype=F64))
    assert monte_carlo_kl(q, q, n_samples=50).abs().max() < 1e-10
    z = q.sample((5,))
    assert torch.equal(monte_carlo_kl(q, q, z=z), torch.zeros(1, dtype=F64))


def test_monte_carlo_kl_matches_the_exact_kl_at_a_common_loc():
    """Same loc: both are images of Gaussians under the same bijection, so the
    KL is the Gaussian KL of the tangent-space distributions, exactly."""
    mu = point([1.5, -0.5, 1.0])
    sq = torch.tensor([0.3, 0.8, 1.2], dtype=F64)
    sp = torch.tensor([1.0, 0.5, 2.0], dtype=F64)
    q, p = WrappedNormal(mu, sq), WrappedNormal(mu, sp)
    mean, se = _mc_with_error(q, p, 20000)
    exact = gaussian_kl(sq, sp)
    assert abs(float(mean - exact)) < 4 * float(se), (mean, exact, se)
    assert float(se) < 0.02 * float(exact)  # the test has power


def test_monte_carlo_kl_is_unbiased_against_a_large_sample_reference():
    mu = point([2.0, 1.0])
    q = WrappedNormal(mu, torch.tensor([0.4, 0.7], dtype=F64))
    p = WrappedNormal.at_origin(torch.ones(2, dtype=F64))
    one_sample, se = _mc_with_error(q, p, 8000)  # means of 1-sample estimates
    torch.manual_seed(8)
    reference = monte_carlo_kl(q, p, n_samples=200000)
    assert abs(float(one_sample - reference)) < 4 * float(se)


def test_tangent_approximation_is_exact_at_the_origin_and_off_elsewhere():
    scale = torch.tensor([0.3, 0.6, 1.4], dtype=F64)
    p = WrappedNormal.at_origin(torch.ones(3, dtype=F64))
    at_origin = WrappedNormal(Lorentz(3).origin(dtype=F64), scale)
    exact = gaussian_kl(scale, torch.ones(3, dtype=F64))
    assert torch.allclose(tangent_kl_approximation(at_origin), exact, rtol=1e-14)
    mean, se = _mc_with_error(at_origin, p, 10000)
    assert abs(float(mean - exact)) < 4 * float(se)

    far = WrappedNormal(point([2.5, 0.0, 0.0]), scale)
    mean, se = _mc_with_error(far, p, 20000)
    approx = tangent_kl_approximation(far)
    # 0.5 (tr Sigma + d(mu, mu0)^2 - d - log det Sigma): d(mu, mu0) = 2.5 exactly
    assert torch.allclose(approx, exact + 0.5 * 2.5 ** 2, rtol=1e-12)
    assert abs(float(approx - mean)) > 10 * float(se), "the approximation is not the KL"
    with pytest.raises(ValueError, match="q must be a WrappedNormal"):
        tangent_kl_approximation(Normal(0.0, 1.0))


def test_monte_carlo_kl_is_generic():
    q = Independent(Normal(torch.tensor([0.5, -1.0]), torch.tensor([0.7, 1.3])), 1)
    p = Independent(Normal(torch.zeros(2), torch.ones(2)), 1)
    mean, se = _mc_with_error(q, p, 20000)
    assert abs(float(mean - kl_divergence(q, p))) < 4 * float(se)
    # no rsample: falls back to sample()
    a, b = Poisson(torch.tensor(3.0)), Poisson(torch.tensor(5.0))
    mean, se = _mc_with_error(a, b, 20000)
    assert abs(float(mean - kl_divergence(a, b))) < 4 * float(se)


def test_monte_carlo_kl_with_given_samples():
    q = WrappedNormal(point([[0.5, 0.5], [1.0, 0.0]]), torch.ones(2, 2, dtype=F64))
    p = WrappedNormal.at_origin(torch.ones(2, dtype=F64))
    z = q.sample((3, 4))
    manual = (q.log_prob(z) - p.log_prob(z)).mean((0, 1))
    assert torch.allclose(monte_carlo_kl(q, p, z=z), manual)
    assert monte_carlo_kl(q, p, z=z[0, 0]).shape == (2,)
    assert torch.allclose(monte_carlo_kl(q, p, z=z[0, 0]), q.log_prob(z[0, 0]) - p.log_prob(z[0, 0]))
    assert monte_carlo_kl(q, p, n_samples=6).shape == (2,)
    with pytest.raises(ValueError, match="pass either n_samples or z"):
        monte_carlo_kl(q, p, n_samples=2, z=z)
    with pytest.raises(ValueError, match=r"z must have shape \(\*sample_shape, 2, 3\)"):
        monte_carlo_kl(q, p, z=z[..., :2])
    for bad in [0, -1, 1.5, True]:
        with pytest.raises(ValueError, match="n_samples must be a positive integer"):
            monte_carlo_kl(q, p, n_samples=bad)
    with pytest.raises(ValueError, match="p must be a torch.distributions.Distribution"):
        monte_carlo_kl(q, "prior")
    with pytest.raises(ValueError, match="same event_shape"):
        monte_carlo_kl(q, WrappedNormal.at_origin(torch.ones(3, dtype=F64)))


# ---------------------------------------------------------------------------
# The fused autograd nodes (ccvae.distributions.wrapped_normal_fused) against the
# same maths composed from the Lorentz maps, with autograd's derivatives.
# ---------------------------------------------------------------------------
def composed_sample(loc, scale, eps):
    """(z, log q) from Lorentz.transp0 and Lorentz.expmap, the maps the fused node fuses.

    log q = log N(v) - (d-1) log(coef) with expmap's coefficient coef = sinh(r)/r
    (sinh(r_max)/r beyond the step clamp, as the sampler has always used).
    """
    from ccvae.manifolds.lorentz import _exp_coefficients

    d = eps.shape[-1]
    L = Lorentz(d)
    v = eps * scale
    u = L.transp0(loc.expand(v.shape[:-1] + (d + 1,)), torch.cat([torch.zeros_like(v[..., :1]), v], -1))
    z = L.expmap(loc.expand_as(u), u)
    coef = _exp_coefficients(torch.linalg.vector_norm(v, dim=-1))[1]
    log_q = Normal(torch.zeros_like(v), scale.expand_as(v)).log_prob(v).sum(-1) - (d - 1) * torch.log(coef)
    return z, log_q


def _grads(fn, inputs, weights):
    z, lp = fn(*inputs)
    loss = (z * weights[0]).sum() + (lp * weights[1]).sum()
    return z.detach(), lp.detach(), torch.autograd.grad(loss, [t for t in inputs if t.requires_grad])


# loc distance from the origin, and the tangent draws' typical length r = |eps * scale|:
# r < 0.01 (sinh(r)/r series), < 0.3 (D(r) series in float64), closed forms beyond,
# a step longer than max_radius(float64) = 141 (clamped), and a sample past the cap.
# (Far from the origin the composed maps lose digits that the fused node keeps: at
# distance 40 the spatial part of the transported vector cancels ~1e17 against O(1),
# so the reference is only used up to distance 8, where it is exact to ~1e-13.)
REGIMES = {
    "tiny": (0.7, 1e-4), "small": (1.5, 0.05), "moderate": (0.3, 0.6),
    "large": (3.0, 4.0), "far loc": (8.0, 1.0), "clamped step": (0.5, 300.0),
    "capped sample": (0.5, 300.0),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("regime", REGIMES)
def test_fused_sample_matches_the_composed_maps(regime, backend):
    from ccvae.distributions.wrapped_normal_fused import wrapped_normal_sample

    dist, size = REGIMES[regime]
    g = torch.Generator().manual_seed(7)
    d = 4
    direction = torch.randn(3, d, generator=g, dtype=F64)
    h = (dist * direction / direction.norm(dim=-1, keepdim=True)).requires_grad_(True)
    scale = (size * (0.5 + torch.rand(3, d, generator=g, dtype=F64))).requires_grad_(True)
    eps = torch.randn(2, 3, d, generator=g, dtype=F64)
    if regime == "capped sample":  # a clamped step outwards, along loc's direction
        eps = (size * h.detach() / h.detach().norm(dim=-1, keepdim=True) / scale.detach()).expand(2, 3, d)
    weights = (torch.randn(2, 3, d + 1, generator=g, dtype=F64), torch.randn(2, 3, generator=g, dtype=F64))
    z_a, lp_a, g_a = _grads(lambda h, s: wrapped_normal_sample(point(h), s, eps, backend), (h, scale), weights)
    z_b, lp_b, g_b = _grads(lambda h, s: composed_sample(point(h), s, eps), (h, scale), weights)
    assert torch.allclose(z_a, z_b, rtol=1e-11, atol=1e-12)
    assert torch.allclose(lp_a, lp_b, rtol=1e-11, atol=1e-11)
    for a, b in zip(g_a, g_b):
        assert torch.isfinite(a).all()
        assert torch.allclose(a, b, rtol=1e-7, atol=1e-9), (regime, (a - b).abs().max())
    if regime == "capped sample":  # the cap acted: the samples sit at max_radius
        assert torch.allclose(Lorentz(d).dist0(z_a), torch.tensor(141.0, dtype=F64))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_nodes_pass_gradcheck(backend):
    from ccvae.distributions.wrapped_normal_fused import origin_log_density, wrapped_normal_sample

    def sample(loc, scale):
        return wrapped_normal_sample(loc, scale, eps, backend)

    def density(t, scale):
        return origin_log_density(t, scale, backend)

    g = torch.Generator().manual_seed(8)
    loc = point(torch.randn(3, 3, generator=g, dtype=F64)).requires_grad_(True)
    scale = (torch.rand(3, 3, generator=g, dtype=F64) + 0.2).requires_grad_(True)
    # rows of eps at r ~ 1e-3 (series branches), ~0.2 and ~2
    eps = torch.randn(2, 3, 3, generator=g, dtype=F64) * torch.tensor([[1e-3], [0.2], [2.0]], dtype=F64)
    assert torch.autograd.gradcheck(sample, (loc, scale))
    t = (torch.randn(2, 3, 3, generator=g, dtype=F64)
         * torch.tensor([[1e-3], [0.2], [2.0]], dtype=F64)).requires_grad_(True)
    assert torch.autograd.gradcheck(density, (t, scale))
    # broadcasting: one loc for many scales, one scale for many points
    assert torch.autograd.gradcheck(sample, (loc[:1], scale))
    assert torch.autograd.gradcheck(density, (t, scale[:1]))


@pytest.mark.parametrize("n", [0.0, 1e-6, 5e-3, 0.05, 0.29, 0.31, 0.99, 1.01, 3.0, 1e4])
def test_origin_density_matches_the_general_log_prob(n):
    """Values and gradients (in z along H^d, and in scale) at every branch of r = asinh|z_{1:}|."""
    g = torch.Generator().manual_seed(9)
    direction = torch.randn(5, 3, generator=g, dtype=F64)
    h_z = (torch.asinh(torch.tensor(n, dtype=F64)) * direction / direction.norm(dim=-1, keepdim=True))
    h_z.requires_grad_(True)
    scale = (torch.rand(5, 3, generator=g, dtype=F64) + 0.3).requires_grad_(True)
    origin = Lorentz(3).origin(5, dtype=F64)
    fast = WrappedNormal.at_origin(scale).log_prob(point(h_z))
    slow = WrappedNormal(origin, scale).log_prob(point(h_z))
    assert torch.allclose(fast, slow, rtol=1e-13, atol=1e-13)
    g_fast = torch.autograd.grad(fast.sum(), [h_z, scale])
    g_slow = torch.autograd.grad(slow.sum(), [h_z, scale])
    for a, b in zip(g_fast, g_slow):
        assert torch.isfinite(a).all()
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-10), (n, (a - b).abs().max())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("r", [1e-3, 0.05, 0.29, 0.31, 0.99, 1.01, 3.0])
def test_fused_float32_gradients_match_float64(r, backend):
    """Both sides of each series/closed-form switch keep float32 gradients accurate."""
    from ccvae.distributions.wrapped_normal_fused import origin_log_density, wrapped_normal_sample

    g = torch.Generator().manual_seed(10)
    eps = torch.randn(64, 5, generator=g, dtype=F64)
    eps = eps / eps.norm(dim=-1, keepdim=True) * r
    loc64 = point(torch.randn(64, 5, generator=g, dtype=F64) * 0.5)
    scale64 = torch.ones(64, 5, dtype=F64)
    out = {}
    for dtype in (torch.float32, F64):
        loc = loc64.to(dtype).requires_grad_(True)
        scale = scale64.to(dtype).requires_grad_(True)
        z, lq = wrapped_normal_sample(loc, scale, eps.to(dtype), backend)
        lp = origin_log_density(z[..., 1:], scale, backend)
        out[dtype] = torch.autograd.grad((lq - lp).sum() + z.sum(), [loc, scale])
    for a, b in zip(out[torch.float32], out[F64]):
        err = (a.double() - b).abs().max() / b.abs().max()
        assert err < 2e-5, (r, float(err))


# r = |v| at both sides of each switch: 0, the sinh(r)/r series (< 0.01), the D(r)
# series (< 0.3 in float64, < 1 in float32), closed forms, just inside the float32
# step clamp (17) and beyond the float64 one (141).
EXPMAP_RADII = (0.0, 1e-4, 0.009, 0.011, 0.29, 0.31, 0.99, 1.01, 3.0, 16.9, 300.0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("d", [1, 2, 10])
def test_origin_expmap_node_matches_the_manifold_map(d, dtype, backend):
    from ccvae.distributions.wrapped_normal_fused import origin_expmap

    g = torch.Generator().manual_seed(11)
    direction = torch.randn(len(EXPMAP_RADII), d, generator=g, dtype=F64)
    radii = torch.tensor(EXPMAP_RADII, dtype=F64).unsqueeze(-1)
    v = (radii * direction / direction.norm(dim=-1, keepdim=True)).to(dtype).requires_grad_(True)
    ref = Lorentz(d).expmap0(torch.cat([torch.zeros_like(v[:, :1]), v], -1))
    got = origin_expmap(v, backend)
    assert got.shape == ref.shape == (len(EXPMAP_RADII), d + 1) and got.dtype == dtype
    weights = torch.randn(got.shape, generator=g, dtype=F64).to(dtype)
    (g_ref,) = torch.autograd.grad((ref * weights).sum(), v)
    (g_got,) = torch.autograd.grad((got * weights).sum(), v)
    # each row relative to its own scale (coordinates reach e^141 beyond the clamp)
    scale = (ref.detach().abs().amax(-1, keepdim=True) / radii.to(dtype).clamp_min(1)).clamp_min(1)
    tol = 1e-14 if dtype == F64 else 1e-5
    assert ((got - ref).abs() / ref.abs().clamp_min(1)).max() < 4 * tol
    assert torch.isfinite(g_got).all() and ((g_got - g_ref).abs() / scale).max() < 10 * tol


@pytest.mark.parametrize("backend", BACKENDS)
def test_origin_expmap_node_passes_gradcheck(backend):
    from ccvae.distributions.wrapped_normal_fused import origin_expmap

    g = torch.Generator().manual_seed(12)
    v = torch.randn(6, 3, generator=g, dtype=F64)
    v = v * torch.tensor([[1e-3], [0.005], [0.2], [0.5], [2.0], [30.0]], dtype=F64) / v.norm(dim=-1, keepdim=True)
    expmap = lambda v: origin_expmap(v, backend)  # noqa: E731
    assert torch.autograd.gradcheck(expmap, (v.requires_grad_(True),))
    # batched leading dimensions
    assert torch.autograd.gradcheck(expmap, (v.detach().reshape(2, 3, 3).requires_grad_(True),))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("n", [0.0, 1e-6, 5e-3, 0.05, 0.29, 0.31, 0.99, 1.01, 3.0, 1e4])
def test_origin_density_backends_agree(n, dtype):
    """The compiled loop (float64 inside) and torch's operations give the same density
    and gradients at every branch of r = asinh|t|, with broadcast scales."""
    from ccvae.distributions.wrapped_normal_fused import origin_log_density

    g = torch.Generator().manual_seed(13)
    direction = torch.randn(2, 5, 3, generator=g, dtype=F64)
    t = (n * direction / direction.norm(dim=-1, keepdim=True)).to(dtype).requires_grad_(True)
    scale = (torch.rand(5, 3, generator=g, dtype=F64) + 0.3).to(dtype).requires_grad_(True)
    out = {}
    for backend in BACKENDS:
        lp = origin_log_density(t, scale, backend)
        out[backend] = (lp, *torch.autograd.grad((lp * torch.arange(10.0).reshape(2, 5)).sum(), [t, scale]))
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == F64 else dict(rtol=2e-6, atol=1e-6)
    for a, b in zip(*out.values()):
        assert a.dtype == b.dtype == dtype and a.shape == b.shape
        torch.testing.assert_close(a, b, **tol)


def test_backend_choice_and_errors(monkeypatch):
    from ccvae import compiled
    from ccvae.distributions import wrapped_normal_fused as fused

    x = torch.ones(2, 3)
    assert fused._compiled(None, x) and not fused._compiled("torch", x)
    big = torch.ones(fused.COMPILED_MAX_ELEMENTS + 1)  # large batches: torch's operations
    assert not fused._compiled(None, big) and fused._compiled("numba", big)
    assert not fused._compiled(None, x.to(torch.bfloat16)) and not fused._compiled(None, x, x.double())
    with pytest.raises(ValueError, match="float32 or float64 CPU"):
        fused._compiled("numba", x.to(torch.bfloat16))
    with pytest.raises(ValueError, match="backend must be"):
        fused.origin_expmap(x, "cuda")
    monkeypatch.setattr(compiled, "AVAILABLE", False)  # as without numba: torch's forms
    assert not fused._compiled(None, x)
    with pytest.raises(ValueError, match="needs numba"):
        fused._compiled("numba", x)
    z = fused.origin_expmap(x.requires_grad_(True))
    z.sum().backward()
    assert torch.isfinite(x.grad).all()
