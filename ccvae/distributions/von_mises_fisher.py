r"""The von Mises-Fisher distribution on S^{m-1} in R^m, with unbiased reparameterised samples.

Density with respect to the surface measure (Mardia & Jupp 2000, sec. 9.3):

.. math:: q(z \mid \mu, \kappa) = C_m(\kappa)\, e^{\kappa \mu^\top z}, \qquad
          C_m(\kappa) = \frac{\kappa^{m/2-1}}{(2\pi)^{m/2} I_{m/2-1}(\kappa)}.

Sampling (Wood 1994, as in Davidson et al. 2018), for z' around e_1:

1. ``w = e_1 . z'`` from its marginal :math:`p(w) \propto e^{\kappa w}(1-w^2)^{(m-3)/2}`
   on [-1, 1], by rejection from a transformed Beta((m-1)/2, (m-1)/2) proposal with the
   exact envelope parameter :math:`b = (m-1) / (2\kappa + \sqrt{4\kappa^2 + (m-1)^2})`
   (the stable form of Wood's :math:`(-2\kappa + \sqrt{4\kappa^2+(m-1)^2})/(m-1)`; no
   large-kappa approximation, which would bias the samples when m is not << kappa).
   The sampler returns omega = 1 - w directly (see ``sample_one_minus_w``), so w keeps
   its precision at large kappa, where 1 - w ~ (m-1)/(2 kappa) is below float32's
   resolution of numbers near 1.
2. ``v`` uniform on S^{m-2} (a normalised Gaussian vector), z' = (w, sqrt(1-w^2) v).
3. An orthogonal map Q with Q e_1 = loc (``reflect_from_e1``): z = Q z'.

Gradients. With respect to ``loc`` they flow through Q. With respect to ``concentration``
they flow through w by *implicit reparameterisation* (Figurnov et al. 2018): with F the
CDF of p(w; kappa), the accepted w satisfies F(w; kappa) = u for a kappa-free u, hence

.. math:: \frac{dw}{d\kappa} = -\frac{\partial F(w;\kappa)/\partial\kappa}{p(w;\kappa)},
          \qquad \frac{\partial F}{\partial \kappa}(w) = \int_{-1}^{w} (t - A_m(\kappa))\,
          p(t;\kappa)\, dt,

with :math:`A_m = E[w] = I_{m/2}(\kappa)/I_{m/2-1}(\kappa)`. This is the exact gradient
of the sample path, so any loss built on ``rsample()`` gets an unbiased kappa gradient
with no correction term (``implicit_w_gradient`` gives the quadrature).

The KL to the uniform distribution on the sphere (registered with ``register_kl``),

.. math:: KL(q \,\|\, U(S^{m-1})) = \kappa A_m(\kappa) + \log C_m(\kappa) + \log|S^{m-1}|
          = \kappa A_m(\kappa) - \log\!\big(\Gamma(m/2)\,(2/\kappa)^{m/2-1} I_{m/2-1}(\kappa)\big),

is evaluated by ``kl_vmf_uniform`` without cancellation (small kappa: both terms from the
Bessel power series; large kappa: as -kappa (1 - A_m) - log(I e^{-kappa}) + ...), with
the analytic gradient dKL/dkappa = kappa A_m'(kappa).

Implementation notes. Every m >= 2 is supported (m = 2 is the circle; v is then a random
sign). The rejection rounds do their arithmetic in float64 whatever the sample dtype
(see ``_random_draws``). The sampler and the kappa-gradient quadrature are elementwise
float64 work without autograd: on CPU tensors compiled per-sample loops do it
(``vmf_kernels``, with numba; numpy's array forms where numba is missing, or for the
quadrature at large batches), elsewhere torch; the array formulas are written once for
numpy and torch, and the random draws are torch's in every case.
Steps 2-3 are one autograd node with a hand-written backward
(``_ReflectedSample``), whose arithmetic is also compiled (or numpy's) on CPU. A
distribution evaluates the Bessel quantities of its concentration once and shares them
between the KL, the entropy and the kappa gradient of ``rsample``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.distributions import Distribution, constraints
from torch.distributions.kl import register_kl

from .. import compiled
from ..special import BesselTerms, bessel_terms, iv_ratio, log_ive
from .hyperspherical_uniform import (HypersphericalUniform, check_spherical_values, log_sphere_area,
                                     spherical_parameters, unit_vector)
from .shapes import broadcast_shapes, expand_to

__all__ = [
    "VonMisesFisher",
    "kl_vmf_uniform",
    "sample_one_minus_w",
    "implicit_w_gradient",
    "reflect_from_e1",
]

#: Proposals per sample in the first rejection round. A proposal is accepted with
#: probability >= 0.65 * 0.95 (Wood's step times the Gamma step) for every (m, kappa),
#: so a sample is left without one with probability < 0.38^8 = 4e-4, and a batch of
#: 1024 needs a second round about a third of the time (much less at kappa << m).
#: Typical acceptance is about 0.7 (measured 0.70-0.79 at m = 3-50, kappa = 5-500), so
#: fewer proposals make second rounds the rule: with 2, every batch of 128 needed one.
#: Every backend uses the same count, so a torch seed gives the same samples on each.
FIRST_ROUND_PROPOSALS = 8
#: Proposals per left-over sample in later rounds (left-overs are few).
LATER_ROUND_PROPOSALS = 32
#: Hard bound on rejection rounds, after which a RuntimeError is raised. For finite
#: parameters the chance of reaching it is < 0.38^(8 + 8*32) ~ 1e-110; in practice it
#: is only reached with NaN/inf parameters and argument validation turned off.
MAX_REJECTION_ROUNDS = 9
#: Gauss-Legendre nodes of the implicit-gradient quadrature. Measured worst relative
#: error against mpmath over m in {2, 3, 4, 10, 41, 200, 1000}, kappa in [1e-3, 1e5] and
#: samples from -6 to +4 standard deviations and up to 1 - 1e-4 (1 - A): 3.4e-12 with
#: 20 nodes (7.5e-9 with 16, too close to the 1e-8 the tests demand; 4.7e-13 with 24).
QUADRATURE_NODES = 20
#: The quadrature window drops the integrand where it is below e^-40 (4e-18) of its
#: value at the sample and at the mode: a relative truncation error below 1e-16.
QUADRATURE_LOG_DROP = 40.0
#: Smallest positive normal float64: the floor of 1 - w in the quadrature (w = 1 exactly
#: has probability 0; it keeps log(1 - w) finite if rounding produces it).
_FLOAT64_TINY = torch.finfo(torch.float64).tiny
#: Gaussian estimates of the window, in units of the mode's curvature radius sigma:
#: the log density falls like a Gaussian of that sigma to the left, and at worst like
#: one of sqrt(2) sigma to the right (large kappa: -kappa phi^2/2 + (m-2) log phi).
#: These only seed the Newton step that places the cut, so they need not be exact.
WINDOW_LEFT_SIGMAS = 9.0
WINDOW_RIGHT_SIGMAS = 14.0


# -------------------------------------------------------------------------------------
# Step 1: the marginal of w = e_1 . z', sampled as omega = 1 - w.
# -------------------------------------------------------------------------------------
def _random_draws(shape, dtype, device, xp=torch):
    """(normals, uniforms) of shape (2, *shape), as float64 arrays of ``xp`` (torch, or
    numpy for CPU tensors).

    They are drawn by torch's generator whatever ``xp`` is (so ``torch.manual_seed``
    decides the samples), in float32 when the sample is float32 or narrower (torch
    draws float32 normals about five times faster than float64 ones on CPU) and in
    float64 otherwise; the arithmetic of the round is float64 either way.
    """
    draws = _torch_draws(shape, dtype, device)
    if xp is torch:
        return tuple(t.to(torch.float64) for t in draws)
    return tuple(t.numpy().astype(np.float64) for t in draws)


def _torch_draws(shape, dtype, device):
    """torch's (normals, uniforms) of shape (2, *shape), float32 unless ``dtype`` is
    float64 (see ``_random_draws``)."""
    rdtype = torch.float64 if dtype == torch.float64 else torch.float32
    return (torch.randn((2, *shape), dtype=rdtype, device=device),
            torch.rand((2, *shape), dtype=rdtype, device=device))


def _beta_numerators(m: int, normals, u, xp=torch):
    r"""(P, M, valid): eps = P/(P+M) ~ Beta((m-1)/2, (m-1)/2) where ``valid`` (None: all).

    Only eps/(1 - eps) = P/M enters Wood's w, so the common factor of P and M is never
    formed; both are positive and computed without cancellation. M = None means 1.
    ``normals`` (2, ...) and ``u`` (...) are standard normal and uniform draws, arrays
    of ``xp`` (torch or numpy).

    * m = 2: the arcsine law, eps = sin^2(h), h = (pi/2) U: P = tan^2(h), M = 1.
    * m = 3: Beta(1, 1): P = U, M = 1 - U.
    * m >= 4: 2 eps - 1 = g/r, the first coordinate of a uniform point on S^{m-1}
      (density proportional to (1 - x^2)^{(m-3)/2}), with g ~ N(0,1),
      r = sqrt(g^2 + chi^2_{m-1}), chi^2_{m-1} = 2 Gamma((m-1)/2): P = r + g, M = r - g,
      one of which is r + |g| and the other chi^2/(r + |g|).
      Gamma(alpha) by Marsaglia & Tsang (2000), un-looped: with d = alpha - 1/3,
      c = 1/sqrt(9d), a = 1 + c g', the proposal d a^3 is accepted when
      log U' < g'^2/2 + d (1 - a^3 + 3 log a); a <= 0 gives log a = NaN and the
      comparison False (rejected). The caller drops proposals whose Gamma step was
      rejected, so the kept ones are exactly Gamma distributed.
    """
    if m == 2:
        t = xp.tan(u * (0.5 * math.pi))
        return t * t, None, None
    if m == 3:
        return u, 1.0 - u, None
    d = 0.5 * (m - 1) - 1.0 / 3.0
    g_gamma, g = normals[0], normals[1]
    a = g_gamma * (1.0 / math.sqrt(9.0 * d)) + 1.0
    a3 = a * a * a
    # accept iff log U' - g'^2/2 < d (1 - a^3 + 3 log a); a <= 0 makes log(a) NaN: rejected
    valid = xp.log(u) - 0.5 * g_gamma * g_gamma < (xp.log(a) * 3.0 - a3 + 1.0) * d
    chi2 = a3 * (2.0 * d)
    big = xp.sqrt(chi2 + g * g) + xp.abs(g)
    small = chi2 / big
    # P = big, M = small where g > 0, the other way round where g < 0 (at g = 0 the two
    # are equal up to rounding).
    pos = g > 0
    return xp.where(pos, big, small), xp.where(pos, small, big), valid


def _first_accepted(omega, accept, xp=torch):
    """Each row's first accepted proposal (any rule that ignores the proposals' values
    is exact, since they are i.i.d.) and whether the row has one; torch or numpy."""
    if xp is torch:
        # max over the proposals gives both "any accepted" and the first accepted index
        # (torch has no argmax of booleans).
        any_accepted, first = accept.to(torch.uint8).max(-1, keepdim=True)
        return omega.gather(-1, first).squeeze(-1), any_accepted.squeeze(-1).bool()
    first = accept.argmax(-1)
    return np.take_along_axis(omega, first[:, None], -1)[:, 0], accept.any(-1)


def _wood_round(m: int, params: tuple, n_prop: int, dtype: torch.dtype, device, xp=torch):
    """One vectorised round, ``n_prop`` proposals per element: (omega, accepted_any).

    ``params`` are float64 per-element arrays of ``xp`` of shape (n, 1): kappa, 2b, b,
    delta0 = 1 - x0, 1 - delta0, and kappa delta0 - (m-1) log(delta0 (2 - delta0)), the
    last term being (m-1) log(1 - x0^2). ``dtype`` decides the random draws'
    precision (``_random_draws``). omega is float64.
    """
    kappa, two_b, b, delta0, one_minus_delta0, offset = params
    normals, uniforms = _random_draws((kappa.shape[0], n_prop), dtype, device, xp)
    p, mm, valid = _beta_numerators(m, normals, uniforms[0], xp)
    # w = (1 - (1+b) eps)/(1 - (1-b) eps), so 1 - w = 2 b eps/((1 - eps) + b eps) = 2bP/(M + bP).
    omega = two_b * p / ((1.0 if mm is None else mm) + b * p)
    # Wood's test  kappa w + (m-1) log(1 - x0 w) - c >= log U, c = kappa x0 + (m-1) log(1 - x0^2),
    # rewritten in omega and delta0 so that nothing of size kappa cancels:
    #   kappa delta0 - (m-1) log(delta0 (2 - delta0)) - kappa omega
    #     + (m-1) log(delta0 + omega (1 - delta0)) >= log U.
    log_ratio = xp.log(delta0 + omega * one_minus_delta0) * float(m - 1) + (offset - kappa * omega)
    accept = xp.log(uniforms[1]) <= log_ratio
    if valid is not None:
        accept &= valid
    return _first_accepted(omega, accept, xp)


def sample_one_minus_w(kappa: torch.Tensor, m: int, backend: str | None = None) -> torch.Tensor:
    r"""Draw omega = 1 - w, w ~ p(w) proportional to exp(kappa w) (1 - w^2)^{(m-3)/2} on [-1, 1].

    Wood's (1994) rejection sampler with the exact envelope parameter
    b = (m-1)/(2 kappa + sqrt(4 kappa^2 + (m-1)^2)), x0 = (1-b)/(1+b), vectorised: every
    element gets ``FIRST_ROUND_PROPOSALS`` proposals at once and keeps its first accepted
    one; the few elements left without are gathered and retried with
    ``LATER_ROUND_PROPOSALS`` each. One host synchronisation per round (usually one in
    all); ``RuntimeError`` after ``MAX_REJECTION_ROUNDS``. Same shape and dtype as
    ``kappa``; no autograd (``VonMisesFisher.rsample`` attaches the gradient).

    ``backend`` (``"numba"``, ``"numpy"`` or ``"torch"``): what does the arithmetic, as
    in ``implicit_w_gradient``. The default on CPU is the compiled loop
    (``vmf_kernels.wood_round``; numpy's ~60 array operations where numba is missing),
    elsewhere torch. The random draws are torch's in every case, and every backend
    takes each row's first accepted proposal, so the same seed gives the same samples.
    """
    name = _backend(backend, kappa.device)
    if name == "numba":
        with torch.no_grad():
            return _sample_compiled(kappa, m)
    xp = np if name == "numpy" else torch
    with torch.no_grad(), np.errstate(all="ignore"):  # IEEE results as torch's: NaN is rejected
        k = kappa.detach().reshape(-1, 1).to(torch.float64)
        if xp is np:
            k = k.cpu().numpy()
        mm1 = float(m - 1)
        b = mm1 / (2.0 * k + xp.sqrt(4.0 * k * k + mm1 * mm1))
        delta0 = 2.0 * b / (1.0 + b)  # 1 - x0, x0 = (1 - b)/(1 + b)
        offset = k * delta0 - mm1 * xp.log(delta0 * (2.0 - delta0))
        params = (k, 2.0 * b, b, delta0, 1.0 - delta0, offset)
        omega, done = _wood_round(m, params, FIRST_ROUND_PROPOSALS, kappa.dtype, kappa.device, xp)
        for _ in range(MAX_REJECTION_ROUNDS - 1):
            if bool(done.all()):
                break
            todo = xp.where(~done)[0]
            om, ok = _wood_round(m, tuple(t[todo] for t in params), LATER_ROUND_PROPOSALS,
                                 kappa.dtype, kappa.device, xp)
            omega[todo] = xp.where(ok, om, omega[todo])
            done[todo] = ok
        else:
            if not bool(done.all()):
                raise _sampler_exhausted()
        if xp is np:
            omega = torch.from_numpy(omega).to(kappa.device)
        return omega.reshape(kappa.shape).to(kappa.dtype)


def _sample_compiled(kappa: torch.Tensor, m: int) -> torch.Tensor:
    """``sample_one_minus_w`` by the compiled rounds, for a CPU ``kappa``; omega in
    kappa's dtype and shape. The draws are torch's (float32 unless kappa is float64),
    as for the other backends, and the arithmetic float64."""
    work = kappa.dtype if kappa.dtype in (torch.float32, torch.float64) else torch.float64
    k = kappa.detach().reshape(-1).to(work).contiguous()
    out = torch.empty_like(k)
    omega, done = out.numpy(), np.zeros(k.shape[0], dtype=bool)
    rows, n_prop = np.arange(k.shape[0]), FIRST_ROUND_PROPOSALS
    for _ in range(MAX_REJECTION_ROUNDS):
        normals, uniforms = (t.numpy() for t in _torch_draws((rows.shape[0], n_prop), kappa.dtype, "cpu"))
        _kernels().wood_round(k.numpy(), normals, uniforms, m, rows, omega, done)
        if done.all():
            return out.reshape(kappa.shape).to(kappa.dtype)
        rows, n_prop = np.flatnonzero(~done), LATER_ROUND_PROPOSALS
    raise _sampler_exhausted()


def _kernels():
    """The compiled kernels' module, imported on first use (it imports numba)."""
    from . import vmf_kernels
    return vmf_kernels


def _sampler_exhausted() -> RuntimeError:
    return RuntimeError(
        "VonMisesFisher: the rejection sampler left samples without an accepted "
        f"proposal after {MAX_REJECTION_ROUNDS} rounds; concentration must be finite "
        "and > 0 (argument validation may be turned off)")


BACKENDS = ("numba", "numpy", "torch")


def _backend(backend: str | None, device: torch.device) -> str:
    """The backend's name: as given, or by default "numba" for CPU tensors (numpy where
    numba is not installed) and "torch" elsewhere."""
    if backend is None:
        if device.type != "cpu":
            return "torch"
        return "numba" if compiled.available() else "numpy"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    if backend == "numba" and not compiled.available():
        raise ValueError("backend 'numba' needs numba, which is not installed (pip install numba)")
    if backend != "torch" and device.type != "cpu":
        raise ValueError(f"backend {backend!r} runs on CPU tensors only, got a {device.type} tensor")
    return backend


# -------------------------------------------------------------------------------------
# Step 1b: implicit reparameterisation gradient of w with respect to kappa.
# -------------------------------------------------------------------------------------
_GL_CACHE: dict[tuple, tuple] = {}


def _gauss_legendre(n: int, device: torch.device, xp=torch):
    """Nodes and weights on [-1, 1], float64 (Golub & Welsch 1969: eigen-decomposition
    of the Jacobi matrix of the Legendre recurrence), as torch tensors on ``device`` or
    numpy arrays (``xp``), cached."""
    key = (n, device, xp is np)
    if key not in _GL_CACHE:
        k = torch.arange(1, n, dtype=torch.float64)
        off = k / torch.sqrt(4.0 * k * k - 1.0)
        nodes, vecs = torch.linalg.eigh(torch.diag(off, 1) + torch.diag(off, -1))
        nodes, weights = nodes.to(device), (2.0 * vecs[0] ** 2).to(device)
        _GL_CACHE[key] = (nodes.numpy(), weights.numpy()) if xp is np else (nodes, weights)
    return _GL_CACHE[key]


def implicit_w_gradient(kappa: torch.Tensor, omega: torch.Tensor, m: int,
                        one_minus_mean: torch.Tensor | None = None,
                        backend: str | None = None) -> torch.Tensor:
    r"""dw/dkappa at the sample w = 1 - omega (float64 tensors of one shape; float64 out).

    ``one_minus_mean``: 1 - A_m(kappa), if already known (else computed).
    ``backend``: ``"numpy"`` or ``"torch"``, the library that does the arithmetic; by
    default numpy for CPU tensors and torch on other devices. The formula is written
    once (``_implicit_w_gradient``) with the functions both libraries share. About 100
    elementwise operations on (nodes x samples) arrays make it up; at the batch sizes of
    a training step each costs torch ~4 us of dispatch whatever its size and numpy ~1 us
    (measured at 128 samples: 411 us in torch, 110 us in numpy, the same values to
    1e-15; at 1024 samples 423 us and 407 us), while on a GPU torch keeps the work there.

    dw/dkappa = -(dF/dkappa)/p(w). With t = cos(phi), theta = arccos(w), and p(w)
    moved inside the integral:

    .. math:: \frac{dw}{d\kappa} = \sin\theta \int_{\text{side}} |\cos\phi - A|\,
              e^{\Lambda(\phi) - \Lambda(\theta)} d\phi, \qquad
              \Lambda(\phi) = \kappa\cos\phi + (m-2)\log\sin\phi,

    Lambda being the log density of the angle, smooth on (0, pi) for every m (in t the
    integrand has a (1-t^2)^{(m-3)/2} endpoint singularity). Because
    int_{-1}^{1} (t - A) p(t) dt = 0 the side can be chosen so that t - A keeps one sign
    on it: phi in [0, theta] if w >= A, else [theta, pi]. The integrand is then positive
    and unimodal (no cancellation).

    Window. In u = 1 - cos(phi) the drop of the log density below its mode u*,
    Delta(u) = kappa (u - u*) - (m-2)/2 log(u (2-u) / (u* (2-u*))), is convex, so one
    Newton step towards Delta = level, from a start on the far side of the mode, lands
    at or beyond the true crossing. The level is ``QUADRATURE_LOG_DROP`` plus the drop
    at the sample; the start is the Gaussian estimate mode -/+ (9 | 14) sigma, or the
    sample itself if that is further out. Then ``QUADRATURE_NODES``-point
    Gauss-Legendre in phi on [cut, theta] or [theta, cut]. Measured relative error
    < 1e-8 against mpmath (m in [2, 1000], kappa in [1e-3, 1e5], samples from the
    1e-4 to the 1 - 1e-4 quantile; tests/test_von_mises_fisher.py).
    """
    if one_minus_mean is None:
        one_minus_mean = bessel_terms(0.5 * m - 1.0, kappa.detach().to(torch.float64),
                                      ratio=True).one_minus_ratio
    name = _backend(backend, kappa.device)
    if name == "torch":
        return _dw_dkappa(name, kappa, omega, m, one_minus_mean)
    out = _dw_dkappa(name, kappa, omega.detach().cpu().numpy(), m, one_minus_mean)
    return torch.from_numpy(np.asarray(out)).to(kappa.device)


def _dw_dkappa(backend: str, kappa: torch.Tensor, omega, m: int, one_minus_mean: torch.Tensor):
    """``implicit_w_gradient`` with omega (any float dtype) a torch tensor for the torch
    backend and a numpy array otherwise, and the result a float64 array of the same
    library and shape; ``kappa`` and ``one_minus_mean`` are tensors that broadcast to it.
    The compiled loop (``vmf_kernels.dw_dkappa``) is the fastest form at every size
    (measured at m = 10, kappa = 100: 128 samples 0.06 against numpy's 0.23 ms, 1024
    0.27 against 0.64 ms, 16384 4.0 against 7.7 ms)."""
    shape = omega.shape
    xp = torch if backend == "torch" else np

    def flat64(t):  # the quadrature below is laid out (nodes, n) on flat float64 arrays
        t = t.detach().to(torch.float64).expand(shape).reshape(-1)
        return t if xp is torch else t.cpu().numpy()

    nodes, weights = _gauss_legendre(QUADRATURE_NODES, kappa.device, xp)
    if backend == "numba":
        def flat(t):  # float32 or float64 as it is (the kernel reads it as float64)
            t = t.detach().expand(shape).reshape(-1)
            return (t if t.dtype in (torch.float32, torch.float64) else t.to(torch.float64)).numpy()
        out = np.empty(omega.size)
        omega = omega if omega.dtype in (np.float32, np.float64) else omega.astype(np.float64)
        _kernels().dw_dkappa(flat(kappa), np.ascontiguousarray(omega).reshape(-1),
                              flat(one_minus_mean), m, nodes, weights,
                              (QUADRATURE_LOG_DROP, WINDOW_LEFT_SIGMAS, WINDOW_RIGHT_SIGMAS), out)
        return out.reshape(shape)
    if xp is torch:
        return _implicit_w_gradient(torch, flat64(kappa), omega.reshape(-1).to(torch.float64),
                                    flat64(one_minus_mean), m, nodes, weights).reshape(shape)
    # IEEE semantics as in torch: log(0) = -inf and the like without warnings (the
    # values they reach are replaced by torch.where-style selects, as below).
    with np.errstate(all="ignore"):
        return _implicit_w_gradient(np, flat64(kappa), omega.reshape(-1).astype(np.float64),
                                    flat64(one_minus_mean), m, nodes, weights).reshape(shape)


def _sin_in_place(u) -> None:
    """u = sin(u) for a float64 numpy array or torch tensor, with torch's kernel either
    way: numpy's float64 sine has no vectorised path on this project's CPUs and was
    4-6x slower (3.7 against 13.7 us for the 2,560 quadrature values of a 128-sample
    batch, 47 against 276 us for 20,480). It is the largest elementwise operation of
    the quadrature; ``torch.from_numpy`` shares the buffer."""
    t = torch.from_numpy(u) if isinstance(u, np.ndarray) else u
    torch.sin(t, out=t)


def _implicit_w_gradient(xp, k, omega, one_minus_mean, m: int, nodes, weights):
    """``implicit_w_gradient`` on flat float64 arrays of one library ``xp`` (numpy or
    torch), with only the functions and in-place forms (``out=``, ``*=``) both offer."""
    upper = omega <= one_minus_mean  # w >= A: integrate over [0, theta]
    # w = 1 exactly has probability 0; the clamp keeps log(u) finite if rounding makes it.
    u_w = xp.clip(omega, _FLOAT64_TINY, None)  # u at the sample is omega
    sin2_w = u_w * (2.0 - u_w)  # sin^2(theta)
    theta = 2.0 * xp.arcsin(xp.clip(xp.sqrt(0.5 * u_w), None, 1.0))
    h = 0.5 * (m - 2)
    if m > 2:
        # Mode of Lambda, kappa sin^2(phi) = (m-2) cos(phi), in the stable root form
        # cos(phi*) = 2 kappa/((m-2) + sqrt((m-2)^2 + 4 kappa^2)), u* = 1 - cos(phi*).
        mm2 = float(m - 2)
        root = xp.sqrt(4.0 * k * k + mm2 * mm2)
        inv = 1.0 / (root + mm2)
        cos_mode = 2.0 * k * inv
        u_mode = (mm2 + mm2 * mm2 / (root + 2.0 * k)) * inv
        log_sin2_mode = xp.log(u_mode * (2.0 - u_mode))
        sigma = 1.0 / xp.sqrt(k * (cos_mode + 1.0 / cos_mode))  # 1/sqrt(-Lambda''(phi*))
        phi_mode = 2.0 * xp.arcsin(xp.sqrt(0.5 * u_mode))
        log_sin2_w = xp.log(sin2_w)

        def drop(u, log_sin2):  # Delta(u)
            return k * (u - u_mode) - h * (log_sin2 - log_sin2_mode)

        def slope(u, log_sin2):  # Delta'(u)
            return k - mm2 * (1.0 - u) / xp.exp(log_sin2)
        drop_w = drop(u_w, log_sin2_w)
    else:  # the circle: Lambda = kappa cos(phi), mode at phi = 0, Delta(u) = kappa u
        sigma, phi_mode = 1.0 / xp.sqrt(k), 0.0
        drop_w = k * u_w
    level = drop_w + QUADRATURE_LOG_DROP
    start = xp.where(upper, xp.minimum(phi_mode - WINDOW_LEFT_SIGMAS * sigma, theta),
                     xp.maximum(phi_mode + WINDOW_RIGHT_SIGMAS * sigma, theta))
    inside = (start > 0) & (start < math.pi)  # else the window reaches phi = 0 or pi
    s0 = xp.sin(0.5 * start)
    u0 = 2.0 * s0 * s0
    if m > 2:
        log_sin2_0 = xp.log(u0 * (2.0 - u0))
        u_cut = u0 + (level - drop(u0, log_sin2_0)) / slope(u0, log_sin2_0)
    else:
        u_cut = level / k
    cut = 2.0 * xp.arcsin(xp.clip(xp.sqrt(0.5 * xp.clip(u_cut, 0.0, 2.0)), None, 1.0))
    # or 0 / pi (not bool * pi: torch would make that float32, numpy float64)
    cut = xp.where(inside, cut, xp.where(upper, xp.zeros_like(cut), xp.full_like(cut, math.pi)))
    lo = xp.where(upper, xp.minimum(cut, theta), theta)
    hi = xp.where(upper, theta, xp.maximum(cut, theta))

    # The (nodes, n) work below is laid out nodes-first, so that every per-sample
    # quantity broadcasts along the contiguous dimension (a (n, 1) operand against
    # (n, nodes) takes CPU kernels off their vectorised path), and runs in place in two
    # buffers: fresh allocations of this size each cost page faults when the allocator
    # returns memory to the system between calls.
    quarter = 0.25 * (hi - lo)
    # psi = phi/2 at the nodes; u = 1 - cos(phi) = 2 sin^2(psi) stays accurate near 0.
    u = nodes[:, None] * quarter
    u += 0.25 * (hi + lo)
    _sin_in_place(u)
    u *= u
    u *= 2.0
    # log f = Lambda(phi) - Lambda(theta) = kappa (u_w - u) + (m-2)/2 log(sin^2 phi / sin^2 theta),
    # with no O(kappa) cancellation near phi, theta ~ 0.
    log_f = u_w - u
    log_f *= k
    work = 2.0 - u
    if m > 2:
        work *= u
        xp.log(work, out=work)
        work -= log_sin2_w
        work *= h
        log_f += work
    # exp(+-700) stays inside float64's normal range (and out of the slow subnormal path
    # of exp); only a sample in an e^-700 tail could reach the upper clamp, and values
    # below e^-700 of the sample's density are negligible against the integral.
    xp.clip(log_f, -700.0, 700.0, out=log_f)
    xp.exp(log_f, out=log_f)
    xp.subtract(one_minus_mean, u, out=work)
    xp.abs(work, out=work)
    work *= log_f  # |cos phi - A| e^(log f)
    return xp.sqrt(sin2_w) * (2.0 * quarter) * (weights @ work)


# -------------------------------------------------------------------------------------
# Step 3: an orthogonal map taking e_1 to loc.
# -------------------------------------------------------------------------------------
def reflect_from_e1(loc: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""Apply an orthogonal Q with Q e_1 = loc to x (last dimension), differentiably.

    The Householder reflection H_u = I - 2 u u^T / |u|^2 with u = e_1 - loc maps e_1 to
    loc, but |u| -> 0 as loc -> e_1 (0/0). So the reflection is chosen per row:

    * loc_1 <= 0: Q = H_u,  u = e_1 - loc, |u|^2 = 2 (1 - loc_1) >= 2;
    * loc_1 > 0:  Q = -H_u, u = e_1 + loc, |u|^2 = 2 (1 + loc_1) > 2  (H_u e_1 = -loc).

    In both |u|^2 / 2 = 1 + |loc_1| >= 1, so no guard constant is needed. Any Q with
    Q e_1 = loc gives the same distribution for a z' whose law is invariant under the
    rotations that fix e_1 (as the vMF's and the Power Spherical's are). With s = +-1:
    Q x = -s x + s (u . x) u / (1 + |loc_1|),  u = e_1 + s loc.
    """
    loc1 = loc[..., :1]
    s = torch.where(loc1 > 0, 1.0, -1.0).to(loc.dtype)
    u = torch.cat([loc1 * s + 1.0, loc[..., 1:] * s], dim=-1)
    scaled_u = u * (s / (1.0 + loc1.abs()))
    return (u * x).sum(-1, keepdim=True) * scaled_u - s * x


def _rowdot(a, b):
    """Row-wise dot product over the last dimension, kept as a size-1 dimension (torch
    or numpy arrays alike)."""
    return (a * b).sum(-1)[..., None]


def _reflect_forward(xp, loc, omega, g, tiny: float):
    r"""Steps 2-3 on arrays of ``xp`` (torch or numpy) of one dtype: v = g/|g|, z0 =
    (1 - omega, sqrt(omega (2 - omega)) v) and z = Q(loc) z0 (``reflect_from_e1``).

    Returns z and the intermediates the backward pass reuses. ``tiny`` is the dtype's
    smallest normal number: a zero Gaussian vector g has probability 0 and the clamp
    only avoids 0/0; sqrt(1 - w^2) = sqrt(omega (2 - omega)) is exact near w = 1 and
    omega > 0 unless a float32 proposal rounds to 0 at astronomical kappa, where the
    clamp keeps 1/sin_theta finite in the backward pass.
    """
    cat = torch.cat if xp is torch else np.concatenate
    v = g / xp.clip(xp.sqrt(_rowdot(g, g)), tiny, None)
    sin_theta = xp.sqrt(xp.clip(omega * (2.0 - omega), tiny, None))
    z0 = cat([(1.0 - omega)[..., None], sin_theta[..., None] * v], -1)
    loc1 = loc[..., :1]
    one = xp.ones_like(loc1)  # the sign s as an array of loc's dtype, for both libraries
    s = xp.where(loc1 > 0, one, -one)
    u = cat([loc1 * s + 1.0, loc[..., 1:] * s], -1)
    c = 1.0 / (1.0 + xp.abs(loc1))
    alpha = _rowdot(u, z0)
    return (s * c * alpha) * u - s * z0, (v, sin_theta, z0, s, u, c, alpha)


def _reflect_backward(saved, omega, grad, need_loc: bool, need_omega: bool):
    """dL/dloc and dL/domega of ``_reflect_forward`` (formulas in ``_ReflectedSample``)."""
    v, sin_theta, z0, s, u, c, alpha = saved
    beta = _rowdot(u, grad)
    grad_loc = d_omega = None
    if need_loc:
        grad_loc = c * (beta * z0 + alpha * grad)
        grad_loc[..., :1] -= c * c * alpha * beta
    if need_omega:
        g0 = s * (c * beta * u - grad)
        d_omega = (g0[..., 1:] * v).sum(-1) * (1.0 - omega) / sin_theta - g0[..., 0]
    return grad_loc, d_omega


class _ReflectedSample(torch.autograd.Function):
    r"""z = Q(loc) z0, z0 = (1 - omega, sqrt(omega (2 - omega)) v), v = g/|g|: steps 2-3
    in one node.

    Gradients (hand-written, so that the step is one autograd node instead of a dozen):
    with s, u, c = 1/(1 + |loc_1|) as in ``reflect_from_e1``, alpha = u.z0, beta = u.G
    for the incoming gradient G, z = s c alpha u - s z0 gives

    * dL/dz0 = s (c beta u - G);
    * dL/dloc = c (beta z0 + alpha G) - c^2 alpha beta e_1;
    * dL/domega = -dL/dz0_1 + (dL/dz0_{2:} . v) (1 - omega)/sqrt(omega (2 - omega)),
      then dL/dkappa = -dL/domega * dw/dkappa (``implicit_w_gradient``).

    ``backend`` as in ``sample_one_minus_w``: by default, for float32/float64 CPU
    tensors, compiled loops (``vmf_kernels.reflect_forward`` and ``reflect_backward``,
    which recompute the forward's intermediates; float64 arithmetic) or, without numba,
    numpy's ~40 array operations forward and back (each ~1 us at a training batch,
    against ~4 us of torch dispatch); torch otherwise. The array formulas are written
    once (``_reflect_forward``, ``_reflect_backward``).
    """

    @staticmethod
    def forward(ctx, loc, kappa, omega, g, m, one_minus_mean, backend=None):
        name = _backend(backend, loc.device)
        if loc.dtype not in (torch.float32, torch.float64):
            name = "torch"  # numpy and numba have no bfloat16
        tiny = torch.finfo(loc.dtype).tiny
        ctx.m, ctx.backend, ctx.tiny = m, name, tiny
        ctx.save_for_backward(kappa, one_minus_mean)
        if name == "numba":
            # flat (rows, m) views, or copies where loc was expanded along a sample shape
            arrays = (loc.detach().reshape(-1, m).numpy(), omega.reshape(-1).numpy(),
                      g.reshape(-1, m - 1).numpy())
            z = np.empty(arrays[0].shape, dtype=arrays[0].dtype)
            _kernels().reflect_forward(*arrays, tiny, z)
            ctx.arrays, ctx.omega = arrays, omega.numpy()
            return torch.from_numpy(z).reshape(loc.shape)
        xp = torch if name == "torch" else np
        arrays = (loc, omega, g) if xp is torch else (loc.detach().numpy(), omega.numpy(), g.numpy())
        z, saved = _reflect_forward(xp, *arrays, tiny)
        ctx.saved, ctx.omega = saved, arrays[1]
        return z if xp is torch else torch.from_numpy(np.asarray(z))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        kappa, one_minus_mean = ctx.saved_tensors
        name, omega = ctx.backend, ctx.omega
        need_loc, need_kappa = ctx.needs_input_grad[:2]
        xp = torch if name == "torch" else np
        if name == "numba":
            loc, flat_omega, g = ctx.arrays
            grad_loc, d_omega = np.empty_like(loc), np.empty(flat_omega.shape[0])
            _kernels().reflect_backward(loc, flat_omega, g, grad.reshape(loc.shape).contiguous().numpy(),
                                         ctx.tiny, grad_loc, d_omega)
            grad_loc = grad_loc.reshape(grad.shape) if need_loc else None
            d_omega = d_omega.reshape(omega.shape)
        else:
            grad_loc, d_omega = _reflect_backward(ctx.saved, omega, grad if xp is torch else grad.numpy(),
                                                  need_loc, need_kappa)
        grad_kappa = None
        if need_kappa:
            dw = _dw_dkappa(name, kappa.detach(), omega, ctx.m, one_minus_mean.expand(kappa.shape))
            grad_kappa = (-d_omega * dw).astype(omega.dtype) if xp is np else -d_omega * dw.to(d_omega.dtype)
        if xp is np:
            # np.asarray: numpy returns scalars, not 0-d arrays, for a batch of shape ()
            grad_loc, grad_kappa = (None if a is None else torch.from_numpy(np.asarray(a))
                                    for a in (grad_loc, grad_kappa))
        return grad_loc, grad_kappa, None, None, None, None, None


# -------------------------------------------------------------------------------------
# KL to the uniform distribution.
# -------------------------------------------------------------------------------------
def _kl_and_gradient(kappa64: torch.Tensor, m: int, t: BesselTerms):
    """KL(vMF || U) and dKL/dkappa in float64 from Bessel terms of v = m/2-1 at kappa."""
    v = 0.5 * m - 1.0
    # Series regime (kappa < 30 or kappa^2/4 <= 8 m/2): kappa A - log(Gamma(v+1) (2/k)^v I_v),
    # both terms ~kappa^2/m at small kappa and computed with full relative accuracy.
    # Elsewhere the same expression with the two O(kappa) parts cancelled analytically:
    #   -kappa (1 - A) - log(I_v e^-kappa) + v log(kappa/2) - lgamma(v+1).
    kl_small = kl_large = None
    if t.log_normalised is not None:
        kl_small = kappa64 * t.ratio - t.log_normalised
    if t.log_ive is not None:
        kl_large = (torch.log(0.5 * kappa64) * v - kappa64 * t.one_minus_ratio - t.log_ive
                    - math.lgamma(v + 1.0))
    if kl_small is None or kl_large is None:
        kl = kl_large if kl_small is None else kl_small
    else:
        kl = torch.where(t.small, kl_small, kl_large)
    # dKL/dkappa = A + kappa A' - A = kappa A'(kappa) (d/dkappa of the log term is A).
    return kl, kappa64 * t.ratio_derivative


def _kl_and_gradient_compiled(kappa: torch.Tensor, m: int, t: BesselTerms):
    """``_kl_and_gradient`` by the compiled loop ``vmf_kernels.kl_and_gradient`` for a
    float32/float64 CPU ``kappa``: (KL in kappa's dtype, dKL/dkappa in float64), each
    one pass instead of ~10 tensor operations (and no float64 copy of kappa)."""
    flat = kappa.detach().reshape(-1)
    n = flat.shape[0]
    kl, dkl = np.empty(n, dtype=flat.numpy().dtype), np.empty(n)
    ratio = t.ratio.reshape(-1).numpy()
    # a regime that no element is in has no array; the kernel never reads it
    log_norm = ratio if t.log_normalised is None else t.log_normalised.reshape(-1).numpy()
    log_ive = ratio if t.log_ive is None else t.log_ive.reshape(-1).numpy()
    _kernels().kl_and_gradient(flat.numpy(), 0.5 * m - 1.0, math.lgamma(0.5 * m), t.small.reshape(-1).numpy(),
                               log_norm, log_ive, ratio, t.one_minus_ratio.reshape(-1).numpy(),
                               t.ratio_derivative.reshape(-1).numpy(), kl, dkl)
    return torch.from_numpy(kl).reshape(kappa.shape), torch.from_numpy(dkl).reshape(kappa.shape)


class _KLVMFUniform(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kappa, m, terms):
        if (kappa.device.type == "cpu" and kappa.dtype in (torch.float32, torch.float64)
                and terms.small.device.type == "cpu" and compiled.available()):
            kl, dkl = _kl_and_gradient_compiled(kappa, m, terms)
        else:
            kl, dkl = _kl_and_gradient(kappa.detach().to(torch.float64), m, terms)
            kl = kl.to(kappa.dtype)
        ctx.save_for_backward(dkl)
        return kl

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (dkl,) = ctx.saved_tensors
        return grad * dkl.to(grad.dtype), None, None


def _vmf_bessel_terms(kappa: torch.Tensor, m: int) -> BesselTerms:
    """Everything the vMF needs of I_{m/2-1} at kappa, float64, in one evaluation."""
    return bessel_terms(0.5 * m - 1.0, kappa.detach().to(torch.float64), log_normalised=True,
                        log_ive=True, derivative=True, native_logs=True)


def kl_vmf_uniform(concentration: torch.Tensor, m: int) -> torch.Tensor:
    r"""KL(vMF(., kappa) || U(S^{m-1})) = kappa A_m - log(Gamma(m/2) (2/kappa)^{m/2-1} I_{m/2-1}).

    Elementwise in ``concentration`` (kappa > 0); about 1e-15 relative error in float64 for
    m in [2, 1000] and kappa in [1e-4, 1e5], and the correctly rounded value in float32.
    Differentiable: dKL/dkappa = kappa A_m'(kappa), from ``iv_ratio_derivative``'s
    cancellation-free formula.
    """
    return _KLVMFUniform.apply(concentration, m, _vmf_bessel_terms(concentration, m))


# -------------------------------------------------------------------------------------
# The distribution.
# -------------------------------------------------------------------------------------
class VonMisesFisher(Distribution):
    r"""von Mises-Fisher distribution vMF(loc, concentration) on S^{m-1} in R^m.

    Args:
        loc: mean direction, shape (..., m) with m >= 2, unit norm along the last dim.
        concentration: kappa > 0, shape broadcastable with ``loc.shape[:-1]`` (a Python
            number is accepted).
        validate_args: check values: kappa finite and > 0, loc finite with unit norm
            within 1e-5 (float32/64). Shapes are always checked. Default: torch's global
            setting (on unless Python runs with -O).

    ``rsample`` is reparameterised in both parameters (implicit reparameterisation of w
    for kappa; module docstring). ``log_prob``, ``entropy``, ``mean``, ``mode`` are
    closed form, and ``kl_divergence(vmf, HypersphericalUniform(m-1))`` is registered.
    The Bessel quantities of kappa are computed once per instance, on first use.
    """

    arg_constraints = {"loc": unit_vector, "concentration": constraints.positive}
    support = unit_vector
    has_rsample = True

    def __init__(self, loc: torch.Tensor, concentration, validate_args: bool | None = None):
        self.loc, self.concentration, batch_shape = spherical_parameters(loc, concentration)
        self.m = m = self.loc.shape[-1]
        self._terms: BesselTerms | None = None
        super().__init__(batch_shape, torch.Size([m]), validate_args=False)
        if Distribution._validate_args if validate_args is None else validate_args:
            self._check_parameters()
            self._validate_args = True

    def _check_parameters(self) -> None:
        check_spherical_values(self.loc, self.concentration, allow_zero=False)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(VonMisesFisher, _instance)
        batch_shape = torch.Size(batch_shape)
        new.m = self.m
        new.loc = self.loc.expand(batch_shape + (self.m,))
        new.concentration = self.concentration.expand(batch_shape)
        new._terms = None
        super(VonMisesFisher, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def bessel_terms(self) -> BesselTerms:
        """float64 Bessel quantities of I_{m/2-1} at the concentration (cached)."""
        if self._terms is None:
            self._terms = _vmf_bessel_terms(self.concentration, self.m)
        return self._terms

    # -- moments -------------------------------------------------------------------
    @property
    def mean(self) -> torch.Tensor:
        """E[z] = A_m(kappa) loc."""
        return iv_ratio(0.5 * self.m - 1.0, self.concentration).unsqueeze(-1) * self.loc

    @property
    def mode(self) -> torch.Tensor:
        return self.loc

    # -- sampling ------------------------------------------------------------------
    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        kappa = expand_to(self.concentration, shape)
        omega = sample_one_minus_w(kappa, self.m)
        # a Gaussian vector, normalised in the node: v = g/|g| uniform on S^{m-2}
        g = torch.randn(shape + (self.m - 1,), dtype=self.loc.dtype, device=self.loc.device)
        loc = expand_to(self.loc, shape + (self.m,))
        if kappa.requires_grad and torch.is_grad_enabled():
            one_minus_mean = self.bessel_terms.one_minus_ratio
        else:  # not needed: the gradient in kappa is not asked for
            one_minus_mean = omega.new_zeros(())
        return _ReflectedSample.apply(loc, kappa, omega, g, self.m, one_minus_mean)

    # -- densities -----------------------------------------------------------------
    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        r"""log C_m(kappa) + kappa loc.z, computed as log(C_m e^kappa) - kappa |z - loc|^2 / 2.

        For unit vectors kappa (loc.z - 1) = -kappa |z - loc|^2/2; the second form keeps
        its relative precision when z is near loc, where a large kappa puts it, and
        log(C_m e^kappa) = v log kappa - (v+1) log 2 pi - log(I_v(kappa) e^-kappa) has no
        O(kappa) cancellation.
        """
        if self._validate_args:
            self._validate_sample(value)
        v = 0.5 * self.m - 1.0
        k = self.concentration
        log_c_plus_k = v * torch.log(k) - (v + 1.0) * math.log(2.0 * math.pi) - log_ive(v, k)
        return log_c_plus_k - k * (0.5 * ((value - self.loc) ** 2).sum(-1))

    def entropy(self) -> torch.Tensor:
        """H = log|S^{m-1}| - KL(q || uniform on S^{m-1})."""
        kl = _KLVMFUniform.apply(self.concentration, self.m, self.bessel_terms)
        return log_sphere_area(self.m - 1) - kl

    def __repr__(self) -> str:
        return f"VonMisesFisher(m={self.m}, batch_shape={tuple(self.batch_shape)})"


@register_kl(VonMisesFisher, HypersphericalUniform)
def _kl_vmf_hyperspherical_uniform(q: VonMisesFisher, p: HypersphericalUniform) -> torch.Tensor:
    if q.event_shape != p.event_shape:
        raise ValueError(f"p: the uniform distribution is on S^{p.dim} (event shape "
                         f"{tuple(p.event_shape)}) but the vMF is on S^{q.m - 1} (event shape "
                         f"{tuple(q.event_shape)})")
    kl = _KLVMFUniform.apply(q.concentration, q.m, q.bessel_terms)
    return expand_to(kl, broadcast_shapes(q.batch_shape, p.batch_shape))
