"""Euclidean, Sphere and Lorentz: identities (hypothesis), geoopt and mpmath
references, edge cases near every guarded singularity, and argument errors."""

from __future__ import annotations

import math
import warnings

import mpmath as mp
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ccvae.errors import ConfigError
from ccvae.manifolds.base import safe_sqrt
from ccvae.manifolds.euclidean import Euclidean
from ccvae.manifolds.lorentz import (
    Lorentz,
    cosh_dist_minus_one,
    inv_sinhc,
    log_sinhc,
    lorentz_norm,
    max_radius,
    minkowski_inner,
    sinhc,
)
from ccvae.manifolds.sphere import Sphere, sinc

with warnings.catch_warnings():
    # geoopt (the test-only oracle) still uses the deprecated torch.jit.script.
    warnings.simplefilter("ignore", DeprecationWarning)
    import geoopt

# ... and scripts more functions on first use.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

F64 = torch.float64
F32 = torch.float32
PROPERTY = settings(max_examples=40, deadline=None, derandomize=True)


def coords(n, bound):
    return st.lists(st.floats(-bound, bound, allow_nan=False, allow_subnormal=False),
                    min_size=n, max_size=n)


def tangent_at_origin(values, dtype=F64):
    """(0, values) for the sphere and the hyperboloid; values for R^d."""
    return torch.tensor([0.0, *values], dtype=dtype)


def point(m, values, dtype=F64):
    """A point of m from intrinsic coordinates (exp at the origin)."""
    if isinstance(m, Euclidean):
        return torch.tensor(values, dtype=dtype)
    return m.expmap0(tangent_at_origin(values, dtype))


def tangent(m, x, values, dtype=F64):
    """A tangent vector at x with intrinsic coordinates ``values`` (norm = |values|)."""
    if isinstance(m, Euclidean):
        return torch.tensor(values, dtype=dtype)
    return m.transp0(x, tangent_at_origin(values, dtype))


def scale_of(m, x):
    """Size of ambient coordinates of tangent vectors at x (x_0 on the hyperboloid)."""
    return float(x[..., 0].abs()) if isinstance(m, Lorentz) else 1.0


# ---------------------------------------------------------------------------
# Property tests (float64)
# ---------------------------------------------------------------------------
# Sphere: |u| < pi keeps exp injective (logmap inverts it); Lorentz: moderate
# radii so that float64 comparisons are meaningful far from the origin.
CASES = [
    (Euclidean(3), 5.0, 5.0),
    (Sphere(1), 3.0, 1.8),
    (Sphere(3), 3.0, 1.8),
    (Lorentz(1), 4.0, 3.0),
    (Lorentz(4), 4.0, 3.0),
]


@pytest.mark.parametrize("m,point_bound,tangent_bound", CASES, ids=lambda c: repr(c))
def test_manifold_identities(m, point_bound, tangent_bound):
    d = m.dim

    @PROPERTY
    @given(coords(d, point_bound), coords(d, tangent_bound), coords(d, tangent_bound))
    def check(px, pu, pv):
        x = point(m, px)
        u = tangent(m, x, pu)
        v = tangent(m, x, pv)
        n_u = math.sqrt(sum(t * t for t in pu))
        z = m.expmap(x, u)
        tol = 1e-9 * (1 + n_u)

        # expmap stays on the manifold: Lorentz <z,z>_L = -1 to 1e-5 relative to z_0^2
        if isinstance(m, Lorentz):
            rel = abs(float(minkowski_inner(z, z)) + 1) / float(z[0]) ** 2
            assert rel < 1e-12 and z[0] > 0
        if isinstance(m, Sphere):
            assert abs(float(z.norm()) - 1) < 1e-14
        assert bool(m.contains(z))

        # |u|_x and dist(x, exp_x(u)) = |u|
        assert abs(float(m.norm(x, u)) - n_u) < tol
        assert abs(float(m.dist(x, z)) - n_u) < tol

        # logmap inverts expmap (difference measured by the metric at x)
        back = m.logmap(x, z)
        assert float(m.norm(x, back - u)) < tol

        # transport: into T_y, preserves the inner product, and is undone by transport back
        y = z
        pu_, pv_ = m.transp(x, y, u), m.transp(x, y, v)
        assert abs(float(m.inner(y, pu_, pv_)) - float(m.inner(x, u, v))) < 1e-9 * (1 + n_u) ** 2 * (
            1 + math.sqrt(sum(t * t for t in pv)))
        if isinstance(m, Lorentz):
            ortho = abs(float(minkowski_inner(y, pu_))) / (float(y[0]) * float(pu_.abs().max()) + 1)
            assert ortho < 1e-12
        if isinstance(m, Sphere):
            assert abs(float((y * pu_).sum())) < 1e-12 * (1 + n_u)
        assert float(m.norm(x, m.transp(y, x, pu_) - u)) < tol

        # log_x(y) = -PT_{y->x}(log_y(x))
        assert float(m.norm(x, m.logmap(x, y) + m.transp(y, x, m.logmap(y, x)))) < tol

        # geodesic: endpoints and constant speed
        assert torch.allclose(m.geodesic(x, y, 0.0), x, atol=1e-12 * scale_of(m, x))
        assert float(m.dist(m.geodesic(x, y, 1.0), y)) < tol
        g = m.geodesic(x, y, 0.3)
        assert abs(float(m.dist(x, g)) - 0.3 * float(m.dist(x, y))) < tol

    check()


@pytest.mark.parametrize("m", [Euclidean(2), Sphere(2), Lorentz(2)], ids=repr)
def test_proju_and_projx(m):
    torch.manual_seed(0)
    x = m.random(5, dtype=F64)
    w = torch.randn(5, m.ambient_dim, dtype=F64)
    p = m.proju(x, w)
    assert torch.allclose(m.proju(x, p), p, atol=1e-12)
    if isinstance(m, Sphere):
        assert (x * p).sum(-1).abs().max() < 1e-14
    if isinstance(m, Lorentz):
        assert minkowski_inner(x, p).abs().max() < 1e-12 * x[:, 0].max() ** 2
    # projx maps onto the manifold and fixes its points
    assert m.contains(m.projx(x + 0.3 * w)).all()
    assert torch.allclose(m.projx(x), x, atol=1e-13)


def test_origin_and_specialised_maps():
    L = Lorentz(3)
    assert L.origin(2, 3).shape == (2, 3, 4)
    assert torch.equal(L.origin((2, 3)), L.origin(2, 3))
    assert L.origin(dtype=F64).dtype == F64
    assert torch.equal(L.origin(), torch.tensor([1.0, 0, 0, 0]))
    assert torch.equal(Sphere(2).origin(), torch.tensor([1.0, 0, 0]))
    assert torch.equal(Euclidean(2).origin(4), torch.zeros(4, 2))
    torch.manual_seed(1)
    o = L.origin(6, dtype=F64)
    y = L.random(6, std=2.0, dtype=F64)
    x = L.random(6, std=2.0, dtype=F64)
    v = torch.randn(6, 4, dtype=F64)
    v[:, 0] = 0
    u = L.transp0(x, v)
    assert torch.allclose(L.expmap0(v), L.expmap(o, v), rtol=1e-13, atol=1e-13)
    assert torch.allclose(L.logmap0(y), L.logmap(o, y), rtol=1e-12, atol=1e-12)
    assert torch.allclose(L.dist0(y), L.dist(o, y), rtol=1e-13)
    assert torch.allclose(L.transp0(y, v), L.transp(o, y, v), rtol=1e-12, atol=1e-12)
    assert torch.allclose(L.transp0back(x, u), L.transp(x, o, u), rtol=1e-11, atol=1e-11)
    assert torch.allclose(L.transp0back(x, u), v, atol=1e-11)
    # the fused log map + transport used by the wrapped normal
    fused, dist, k = L._logmap_transp0back_spatial(x, y)
    assert torch.allclose(fused, L.transp0back(x, L.logmap(x, y))[:, 1:], rtol=1e-11, atol=1e-11)
    assert torch.allclose(dist.squeeze(-1), L.dist(x, y), rtol=1e-13)


# ---------------------------------------------------------------------------
# Independent references: geoopt (test-only) and mpmath
# ---------------------------------------------------------------------------
def test_lorentz_matches_geoopt():
    # geoopt.Lorentz(k) is {-x0^2 + |x|^2 = -k}, curvature -1/k: k = 1 is ours.
    G = geoopt.Lorentz(k=torch.tensor(1.0, dtype=F64))
    L = Lorentz(3)
    torch.manual_seed(2)
    x = L.random(50, std=1.5, dtype=F64)
    y = L.random(50, std=1.5, dtype=F64)
    v = torch.randn(50, 4, dtype=F64)
    v[:, 0] = 0
    u = L.transp0(x, v)
    assert G._check_point_on_manifold(x)[0] and G._check_point_on_manifold(y)[0]
    assert torch.allclose(L.dist(x, y), G.dist(x, y), rtol=1e-12)
    assert torch.allclose(L.expmap(x, u), G.expmap(x, u), rtol=1e-11, atol=1e-11)
    assert torch.allclose(L.logmap(x, y), G.logmap(x, y), rtol=1e-10, atol=1e-10)
    # geoopt transports via two log maps and dist^2 and is the less accurate one here
    assert torch.allclose(L.transp(x, y, u), G.transp(x, y, u), rtol=1e-8, atol=1e-8)
    assert torch.allclose(L.to_poincare(x),
                          geoopt.manifolds.lorentz.math.lorentz_to_poincare(x, torch.tensor(1.0, dtype=F64)))


def test_sphere_matches_geoopt():
    G = geoopt.Sphere()
    S = Sphere(4)
    torch.manual_seed(3)
    x = S.random(50, dtype=F64)
    y = S.random(50, dtype=F64)
    u = S.proju(x, torch.randn(50, 5, dtype=F64))
    assert torch.allclose(S.dist(x, y), G.dist(x, y), rtol=1e-12, atol=1e-12)
    assert torch.allclose(S.expmap(x, u), G.expmap(x, u), atol=1e-12)
    assert torch.allclose(S.logmap(x, y), G.logmap(x, y), atol=1e-12)
    # geoopt's Sphere.transp is a projection (vector transport), not parallel
    # transport; the reference is the parallel transport built from its log maps:
    # PT(v) = v - <log_x y, v> / d^2 (log_x y + log_y x).
    lxy, lyx = G.logmap(x, y), G.logmap(y, x)
    d2 = G.dist(x, y, keepdim=True) ** 2
    ref = u - (lxy * u).sum(-1, keepdim=True) / d2 * (lxy + lyx)
    assert torch.allclose(S.transp(x, y, u), ref, atol=1e-11)


def _mp_lorentz_point(x):
    """mpmath copy of a point, with x_0 recomputed from its spatial part."""
    s = [mp.mpf(float(t)) for t in x[1:]]
    return [mp.sqrt(1 + sum(t * t for t in s)), *s]


def _mp_dist(x, y):
    a = x[0] * y[0] - sum(p * q for p, q in zip(x[1:], y[1:]))
    return mp.acosh(a)


def test_lorentz_transp_matches_mpmath():
    mp.mp.dps = 50
    L = Lorentz(3)
    torch.manual_seed(4)
    x = L.random(8, std=2.0, dtype=F64)
    y = L.random(8, std=2.0, dtype=F64)
    v = torch.randn(8, 4, dtype=F64)
    v[:, 0] = 0
    u = L.transp0(x, v)
    out = L.transp(x, y, u)
    for i in range(8):
        X, Y = _mp_lorentz_point(x[i]), _mp_lorentz_point(y[i])
        U = [mp.mpf(float(t)) for t in u[i]]
        U[0] = sum(p * q for p, q in zip(X[1:], U[1:])) / X[0]  # exactly tangent
        a = X[0] * Y[0] - sum(p * q for p, q in zip(X[1:], Y[1:]))
        w = [Y[j] - a * X[j] for j in range(4)]
        c = (-w[0] * U[0] + sum(w[j] * U[j] for j in range(1, 4))) / (a + 1)
        ref = torch.tensor([float(U[j] + c * (X[j] + Y[j])) for j in range(4)], dtype=F64)
        assert torch.allclose(out[i], ref, rtol=1e-12, atol=1e-12 * float(ref.abs().max()))


def test_nearby_far_points_keep_their_distance_in_float32():
    """Two points 0.1 apart at distance 8 from the origin: the plain arccosh(-<x,y>_L)
    loses the distance in float32 (error > 0.1); ours keeps it to ~1e-4."""
    mp.mp.dps = 50
    L = Lorentz(4)
    torch.manual_seed(5)
    h = torch.randn(20, 5, dtype=F64)
    h[:, 0] = 0
    x = L.expmap0(8 * h / h.norm(dim=-1, keepdim=True))
    step = torch.randn(20, 5, dtype=F64)
    step[:, 0] = 0
    step = 0.1 * step / step.norm(dim=-1, keepdim=True)
    y = L.expmap(x, L.transp0(x, step))
    x32, y32 = L.projx(x.float()), L.projx(y.float())
    ours = L.dist(x32, y32)
    naive = torch.acosh(torch.clamp(-minkowski_inner(x32, y32), min=1))
    ref = torch.tensor([float(_mp_dist(_mp_lorentz_point(x32[i]), _mp_lorentz_point(y32[i])))
                        for i in range(20)])
    assert (ours - ref).abs().max() < 1e-3
    assert (naive - ref).abs().max() > 0.1  # what the guard buys
    # the same in float64, to near machine precision
    ref64 = torch.tensor([float(_mp_dist(_mp_lorentz_point(x[i]), _mp_lorentz_point(y[i])))
                          for i in range(20)], dtype=F64)
    assert torch.allclose(L.dist(x, y), ref64, rtol=1e-11)


def test_poincare_round_trip_and_distance():
    L = Lorentz(3)
    torch.manual_seed(6)
    x = L.random(100, std=2.0, dtype=F64)
    p = L.to_poincare(x)
    assert (p.norm(dim=-1) < 1).all()
    assert torch.allclose(L.from_poincare(p), x, rtol=1e-12, atol=1e-12)
    q = torch.randn(100, 3, dtype=F64)
    q = 0.99 * torch.rand(100, 1, dtype=F64) * q / q.norm(dim=-1, keepdim=True)
    assert torch.allclose(L.to_poincare(L.from_poincare(q)), q, atol=1e-12)
    assert L.contains(L.from_poincare(q)).all()
    # independent formula: d = arccosh(1 + 2 |p - q|^2 / ((1 - |p|^2)(1 - |q|^2)))
    p2 = L.to_poincare(x.flip(0))
    ref = torch.acosh(1 + 2 * ((p - p2) ** 2).sum(-1)
                      / ((1 - (p ** 2).sum(-1)) * (1 - (p2 ** 2).sum(-1))))
    assert torch.allclose(L.dist(x, x.flip(0)), ref, rtol=1e-9)
    assert torch.equal(L.to_poincare(L.origin()), torch.zeros(3))
    # a boundary point maps to a far but finite point
    edge = L.from_poincare(torch.tensor([1.0, 0.0, 0.0]))
    assert torch.isfinite(edge).all() and L.contains(edge)


# ---------------------------------------------------------------------------
# Scalar functions against mpmath
# ---------------------------------------------------------------------------
RADII = [0.0, 1e-20, 1e-8, 1e-3, 0.0099, 0.01, 0.0101, 0.05, 0.099, 0.1, 0.101, 0.5, 1.0, 5.0, 20.0, 80.0]


@pytest.mark.parametrize("name", ["sinhc", "inv_sinhc", "log_sinhc", "sinc"])
def test_scalar_functions_match_mpmath(name):
    mp.mp.dps = 40
    fn, ref = {
        "sinhc": (sinhc, lambda r: mp.sinh(r) / r if r else mp.mpf(1)),
        "inv_sinhc": (inv_sinhc, lambda r: r / mp.sinh(r) if r else mp.mpf(1)),
        "log_sinhc": (log_sinhc, lambda r: mp.log(mp.sinh(r) / r) if r else mp.mpf(0)),
        "sinc": (sinc, lambda r: mp.sin(r) / r if r else mp.mpf(1)),
    }[name]
    radii = [r for r in RADII if not (name == "sinc" and r > 3)]
    r = torch.tensor(radii, dtype=F64, requires_grad=True)
    val = fn(r)
    (grad,) = torch.autograd.grad(val.sum(), r)
    val = val.detach()
    for i, ri in enumerate(radii):
        want = ref(mp.mpf(ri))
        dwant = mp.diff(ref, mp.mpf(ri)) if ri else mp.mpf(0)
        got = float(val[i])
        # log_sinhc: the series is relatively exact; above 0.1 the closed form is
        # ~1e3 eps relative near 0.1 but exact in absolute terms.
        tol = 1e-13 * abs(float(want)) + (3e-16 if name == "log_sinhc" else 0) + 1e-300
        assert abs(got - float(want)) <= tol, (name, ri, got, float(want))
        assert math.isfinite(float(grad[i]))
        assert abs(float(grad[i]) - float(dwant)) <= 1e-9 * abs(float(dwant)) + 1e-12, (name, ri)
    # float32 stays finite and close where the inputs are representable
    r32 = torch.tensor(radii, dtype=F32, requires_grad=True)
    v32 = fn(r32)
    (g32,) = torch.autograd.grad(v32.sum(), r32)
    assert torch.isfinite(v32).all() and torch.isfinite(g32).all()
    assert torch.allclose(v32.double(), val, rtol=2e-6, atol=1e-7)


def test_safe_sqrt():
    s = torch.tensor([-1e-30, 0.0, 4.0], requires_grad=True)
    out = safe_sqrt(s)
    (g,) = torch.autograd.grad(out.sum(), s)
    assert out.tolist() == [0.0, 0.0, 2.0]
    assert g.tolist() == [0.0, 0.0, 0.25]


def test_lorentz_norm_and_cosh_dist():
    L = Lorentz(2)
    x = L.random(4, std=3.0, dtype=F64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(cosh_dist_minus_one(x, x), torch.zeros(4, 1, dtype=F64), atol=1e-12)
    y = L.origin(4, dtype=F64)
    assert torch.allclose(cosh_dist_minus_one(x, y).squeeze(-1), x[:, 0] - 1, rtol=1e-12)
    assert torch.allclose(cosh_dist_minus_one(x, x.flip(0)).squeeze(-1),
                          -minkowski_inner(x, x.flip(0)) - 1, rtol=1e-10)
    assert lorentz_norm(torch.tensor([0.0, 3.0, 4.0])) == 5.0


# ---------------------------------------------------------------------------
# Edges: u = 0, y = x, antipodes, far out, overflow
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("m", [Euclidean(3), Sphere(3), Lorentz(3)], ids=repr)
@pytest.mark.parametrize("dtype", [F32, F64])
def test_gradients_finite_at_coincident_points(m, dtype):
    x = m.random(4, dtype=dtype, std=1.5, generator=torch.Generator().manual_seed(7))
    eps = 1e-6 if dtype == F32 else 1e-12
    # expmap at u = 0: value x, Jacobian identity on tangent vectors
    u = torch.zeros_like(x, requires_grad=True)
    z = m.expmap(x, u)
    assert torch.allclose(z, x, atol=eps * float(x.abs().max()))
    xi = m.proju(x, torch.randn(x.shape, dtype=dtype, generator=torch.Generator().manual_seed(8)))
    (jvp,) = torch.autograd.grad(z, u, grad_outputs=torch.ones_like(z), retain_graph=True)
    assert torch.isfinite(jvp).all()
    jac = torch.func.jvp(lambda t: m.expmap(x, t), (torch.zeros_like(x),), (xi,))[1]
    assert torch.allclose(jac, xi, rtol=1e-4, atol=1e-4 * float(xi.abs().max()))
    # logmap at y = x: value 0, Jacobian identity on tangent vectors
    y = x.clone().requires_grad_(True)
    log = m.logmap(x, y)
    assert log.abs().max() <= 1e-3 if dtype == F32 else log.abs().max() < 1e-9
    (g,) = torch.autograd.grad(log.sum(), y)
    assert torch.isfinite(g).all()
    jac = torch.func.jvp(lambda t: m.logmap(x, t), (x,), (xi,))[1]
    assert torch.allclose(jac, xi, rtol=1e-3, atol=1e-3 * float(xi.abs().max()))
    # dist at x = y: 0 with a finite (zero) gradient
    y = x.clone().requires_grad_(True)
    d = m.dist(x, y)
    (g,) = torch.autograd.grad(d.sum(), y)
    assert torch.isfinite(g).all() and d.abs().max() < (1e-3 if dtype == F32 else 1e-7)
    # transport to the same point is the identity
    assert torch.allclose(m.transp(x, x, xi), xi, rtol=1e-4, atol=1e-5 * float(xi.abs().max()))


def test_sphere_antipodal_points():
    S = Sphere(2)
    torch.manual_seed(9)
    x = S.random(6, dtype=F64).requires_grad_(True)
    y = (-x).detach().requires_grad_(True)
    log = S.logmap(x, y)
    # log_x(-x) is not unique: we return pi times a fixed unit tangent
    assert torch.allclose(log.norm(dim=-1), torch.full((6,), math.pi, dtype=F64))
    assert (log * x).sum(-1).abs().max() < 1e-14
    assert torch.allclose(S.expmap(x, log), y, atol=1e-14)
    assert torch.allclose(S.dist(x, y), torch.full((6,), math.pi, dtype=F64))
    gx, gy = torch.autograd.grad(log.sum() + S.dist(x, y).sum(), [x, y])
    assert torch.isfinite(gx).all() and torch.isfinite(gy).all()
    # transport to the antipode: tangent there, norm preserved, along the same circle
    v = S.proju(x, torch.randn(6, 3, dtype=F64)).detach()
    pt = S.transp(x, y, v)
    assert (pt * y).sum(-1).abs().max() < 1e-13
    assert torch.allclose(pt.norm(dim=-1), v.norm(dim=-1))
    geo = S.geodesic(x, y, 0.5)
    assert torch.allclose(S.dist(x, geo), torch.full((6,), math.pi / 2, dtype=F64))
    # nearly antipodal points: the direction comes from y + x and the maps stay exact
    w = S.proju(x, torch.randn(6, 3, dtype=F64)).detach()
    for gap in [1e-6, 1e-9, 1e-12]:
        y2 = S.expmap(x.detach(), (math.pi - gap) * w / w.norm(dim=-1, keepdim=True))
        log2 = S.logmap(x, y2)
        assert torch.allclose(log2.norm(dim=-1), S.dist(x, y2), rtol=1e-12)
        assert torch.allclose(S.expmap(x, log2), y2, atol=1e-12)
        assert torch.allclose(S.dist(x, y2), torch.full((6,), math.pi - gap, dtype=F64), atol=1e-12)


def test_sphere_projx_of_zero_is_the_origin():
    S = Sphere(2)
    assert torch.equal(S.projx(torch.zeros(2, 3)), S.origin(2))


@pytest.mark.parametrize("dtype", [F32, F64])
def test_lorentz_far_out_is_finite(dtype):
    """Points and steps up to and beyond max_radius: finite values and gradients."""
    L = Lorentz(3)
    r_max = max_radius(dtype)
    assert r_max == (17.0 if dtype == F32 else 141.0)
    dirs = torch.tensor([[0, 1.0, 0, 0], [0, -1.0, 0, 0], [0, 0, 1.0, 0], [0, 0.6, 0.8, 0]], dtype=dtype)
    radii = [0.0, 1e-20, 3.0, r_max / 2, r_max, 3 * r_max]
    h = torch.cat([dirs * r for r in radii])
    for v_len in [0.0, 1.0, r_max, 10 * r_max]:
        hx = h.clone().requires_grad_(True)
        hy = h.flip(0).clone().requires_grad_(True)
        x, y = L.expmap0(hx), L.expmap0(hy)
        v = L.transp0(x, torch.tensor([0, 0.3, -0.5, 0.81], dtype=dtype) * v_len)
        outs = [L.dist(x, y), L.logmap(x, y), L.transp(x, y, v), L.expmap(x, v),
                L.geodesic(x, y, 0.3), L.norm(x, v), L.transp0back(x, v), L.to_poincare(x)]
        for out in outs:
            assert torch.isfinite(out).all()
            grads = torch.autograd.grad(out.sum(), [hx, hy], allow_unused=True, retain_graph=True)
            assert all(g is None or torch.isfinite(g).all() for g in grads)
        # every point returned stays within max_radius of the origin
        assert (L.dist0(L.expmap(x, v)) <= r_max * (1 + 1e-5)).all()
    assert L.dist0(L.projx(torch.tensor([0.0, 1e30, 0, 0], dtype=dtype))) <= r_max * (1 + 1e-5)
    assert L.contains(L.expmap0(torch.tensor([0.0, 1e6, 0, 0], dtype=dtype)))


def test_lorentz_float32_moderately_far_stays_on_manifold():
    L = Lorentz(5)
    torch.manual_seed(10)
    x = L.random(200, std=3.0)
    v = torch.randn(200, 6)
    v[:, 0] = 0
    z = L.expmap(x, L.transp0(x, v))
    assert L.contains(z).all()
    # float32 knows a point at distance R from the origin to ~eps * sinh(R): the
    # distance error stays at that level (0.016 at R = 14, 6e-4 at R = 10).
    bound = 1e-5 + 2 * torch.finfo(F32).eps * torch.cosh(L.dist0(x))
    assert ((L.dist(x, z) - v.norm(dim=-1)).abs() <= bound).all()


# ---------------------------------------------------------------------------
# Argument errors
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [Euclidean, Sphere, Lorentz])
@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "3", None])
def test_bad_dimension(cls, bad):
    with pytest.raises(ConfigError, match="dim must be an integer >= 1"):
        cls(bad)


def test_bad_tensor_arguments():
    L = Lorentz(2)
    x = L.origin(3)
    with pytest.raises(ValueError, match=r"u must have last dimension 3 .*got shape \(3, 2\)"):
        L.expmap(x, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="y must be a torch.Tensor"):
        L.dist(x, [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="x must have a floating-point dtype"):
        L.projx(torch.ones(3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="x must have at least one axis"):
        Sphere(1).projx(torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"batch shapes do not broadcast: x \(3, 3\), y \(4, 3\)"):
        L.logmap(x, L.origin(4))
    with pytest.raises(ValueError, match=r"p must have last dimension 2"):
        L.from_poincare(torch.zeros(3))
    with pytest.raises(ValueError, match="t must be a float or a tensor"):
        L.geodesic(x, x, "half")
    with pytest.raises(ValueError, match="batch_shape must be non-negative integers"):
        L.origin(-1)


def test_contains_rejects_points_off_the_manifold():
    L, S = Lorentz(2), Sphere(2)
    x = L.random(3, dtype=F64, generator=torch.Generator().manual_seed(11))
    assert L.contains(x).all()
    assert not L.contains(x * 1.01).any()
    assert not L.contains(-x).any()  # the lower sheet
    assert not L.contains(torch.tensor([float("nan"), 0, 0])).item()
    assert not S.contains(torch.tensor([1.01, 0, 0])).item()
    assert Euclidean(2).contains(torch.zeros(2)).item()


def test_identity_and_geodesic_batch():
    assert Lorentz(2) == Lorentz(2) and Lorentz(2) != Lorentz(3) and Lorentz(2) != Sphere(2)
    assert len({Lorentz(2), Lorentz(2), Sphere(2)}) == 2
    assert repr(Sphere(3)) == "Sphere(dim=3)"
    assert (Sphere(3).dim, Sphere(3).ambient_dim, Euclidean(3).ambient_dim) == (3, 4, 3)
    L = Lorentz(2)
    x, y = L.origin(dtype=F64), L.expmap0(torch.tensor([0, 1.0, 2.0], dtype=F64))
    path = L.geodesic(x, y, torch.linspace(0, 1, 5, dtype=F64))
    assert path.shape == (5, 3)
    assert torch.allclose(L.dist(path[:-1], path[1:]), torch.full((4,), L.dist(x, y).item() / 4, dtype=F64))
    e = Euclidean(2)
    assert torch.allclose(e.geodesic(torch.zeros(2), torch.ones(2), 0.25), torch.full((2,), 0.25))
