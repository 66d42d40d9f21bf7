r"""The wrapped normal's sampling map, its log density at the origin, and the
exponential map at the origin that places its mean, each as one autograd node with a
hand-written backward.

The map (Nagano et al. 2019, Algorithm 1) takes a tangent draw v' at the origin of H^d
to the point

.. math:: z = \exp_\mu(\mathrm{PT}_{\mu_0\to\mu}(0, v')), \qquad
          \log\det = (d-1)\log\frac{\sinh r}{r}, \quad r = |v'|.

Written out on the spatial parts (the representation of ``ccvae.manifolds.lorentz``,
module note 1), with mu = (mu_0, m):

.. math:: a = \frac{m\cdot v'}{1+\mu_0}, \qquad u = v' + a\,m \quad (\text{PT's spatial part}),

          x = \cosh(r)\, m + \frac{\sinh r}{r}\, u = (\cosh r + s\,a)\, m + s\, v',
          \qquad s = \frac{\sinh r}{r},

          z = (\sqrt{1+|x|^2},\; x).

Composed from the manifold's maps and autograd, these cost a hyperbolic VAE step
about 250 tensor operations (most of them in the backward pass), each a few
microseconds on a CPU whatever its size; as two nodes, 39 + 42 (sample and log q,
forward + backward) and 23 + 26 (the prior's density). The sample's backward, with
g_x the gradient reaching x and g_q the one reaching log q:

.. math:: g_x = g_{z,1:} + g_{z,0}\, x / z_0,

          g_m = (\cosh r + s a)\, g_x + s\,(m\cdot g_x)\, v' / (1 + \mu_0),
          \qquad g_{\mu_0} = -s\,(m\cdot g_x)\, a / (1 + \mu_0),

          g_{v'} = s\, g_x + s\,(m\cdot g_x)\, m / (1 + \mu_0)
                   + \big[\sinh(r)/r\,(m\cdot g_x) + D(r)\,(u\cdot g_x)
                   - (d-1)\, g_q\, D(r)/s\big]\, v',

          g_\sigma = \textstyle\sum g_{v'}\,\epsilon - g_q/\sigma \quad (v' = \epsilon\sigma;
          \ \log q = -|\epsilon|^2/2 - \sum\log\sigma - \tfrac d2 \log 2\pi - (d-1)\log s),

where D(r) = s'(r)/r = (cosh r - s)/r^2. Each derivative term is a function of r
times v', so r = 0 needs no special case: D(0) = 1/3.

Numerics (each guard is also commented where it acts):

1. s = sinh(r)/r: the series 1 + r^2/6 + r^4/120 below r = 0.01 (0/0 at r = 0), as
   ``ccvae.manifolds.lorentz.sinhc``.
2. D(r) = (cosh r - sinh(r)/r)/r^2 cancels like 3 eps/r^2 near 0; below
   ``D_SERIES_BELOW`` (0.3 in float64, 1 in float32) its Taylor series
   sum_k 2k/(2k+1)! r^(2k-2) is used instead, to 6 terms (first omitted term
   < 1e-17 relative at r = 0.3 and < 3e-11 at r = 1): relative error ~4e-15 in
   float64 and ~3e-7 in float32 on both sides of the switch.
3. The step length is clamped at ``max_radius(dtype)`` (module note 6 of lorentz):
   beyond it cosh(r) is frozen and s = sinh(r_max)/r, so d cosh/dr = 0 and
   D = -s/r^2 there.
4. A sample farther than ``max_radius`` from the origin is pulled back along its ray
   (|x| capped at sinh(max_radius)), as ``_with_time`` does; its gradient is then
   projected orthogonally to x and scaled by the cap factor.

The prior's density. For G(mu0, diag sigma^2) at z with spatial part t, n = |t|,
r = dist(mu0, z) = asinh(n), v' = log_mu0(z)_{1:} = k t with k = r/n = 1/s(r):

.. math:: \log p(z) = F(t, \sigma) - \sum\log\sigma - \tfrac d2\log 2\pi, \qquad
          F = -\tfrac12 k^2 Q + (d-1)\log k, \quad Q = \sum_i t_i^2/\sigma_i^2,

          \partial F/\partial t = -k^2\, t/\sigma^2 + (-k Q + (d-1)/k)\, E\, t, \qquad
          \partial F/\partial \sigma = k^2\, t^2/\sigma^3,

with E = k'(n)/n. Written in n, E = (1/sqrt(1+n^2) - asinh(n)/n)/n^2 cancels and its
series converges slowly; in r it is E = -D(r) k^3 / cosh(r), with the same D as above
(n = sinh r, dk/dn = (dk/dr)/cosh r, sinh r - r cosh r = -r^3 D(r)): no cancellation.

The mean's exp map at the origin, z = exp_o((0, v)) = (sqrt(1 + |x|^2), x) with
x = s(r) v, r = |v| (``origin_expmap``, the hyperbolic encoder's last step), has
dx/dv = s I + D(r) v v^T, so its backward is g_v = s g_x' + D(r) (v . g_x') v with
g_x' = g_x + g_0 x / z_0: the same D and the same guards (notes 1-3).

All three nodes are differentiable once (``once_differentiable``, as the vMF's
sampling node): a second derivative through them raises instead of returning a
wrong value.

Backends. On CPU, for float32/float64 tensors of up to ``COMPILED_MAX_ELEMENTS``
elements and where numba imports, each node's forward and backward run as compiled
loops over rows (``wrapped_normal_kernels``, the same formulas and guards in float64),
instead of the 20-40 torch operations written below, which run everywhere else (GPU,
other dtypes, large batches, no numba) and are the reference the tests compare the
loops against. ``backend="torch"`` or ``"numba"`` picks one.

``tests/test_wrapped_normal.py`` checks values and gradients against the composed
manifold maps (float64, every branch) and with ``torch.autograd.gradcheck``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import compiled
from ..manifolds.base import even_series
from ..manifolds.lorentz import _SERIES_BELOW as SINHC_SERIES_BELOW
from ..manifolds.lorentz import _SINHC_COEFFS, max_radius
from .shapes import broadcast_shapes

__all__ = ["wrapped_normal_sample", "origin_log_density", "origin_expmap", "D_SERIES_BELOW", "BACKENDS"]

_LOG_2PI = math.log(2 * math.pi)

#: Below this r, D(r) = (cosh r - sinh(r)/r)/r^2 is its Taylor series (note 2), per
#: dtype: where 3 eps/r^2 (the closed form's cancellation) is down to ~4e-15 in float64
#: and ~2e-7 in float32 (other dtypes compute in float32 or wider).
D_SERIES_BELOW = {torch.float64: 0.3, torch.float32: 1.0}
#: D(r) = sum_{k>=1} 2k/(2k+1)! r^(2k-2): 1/3, 1/30, 1/840, 1/45360, 1/3991680, 1/518918400.
_D_COEFFS = tuple(2 * k / math.factorial(2 * k + 1) for k in range(1, 7))


BACKENDS = ("numba", "torch")
#: Up to this many elements (rows x d) the compiled loops run by default; above it
#: torch's vectorised operations are faster, their per-operation cost spread over the
#: batch while the loops call scalar libm (a log per coordinate). The sample + log q +
#: prior density + backward step on the development CPU, torch's time over the loops':
#: 1.49x at 128 x 9, 1.14x at 128 x 49, 1.24x at 512 x 9, 0.98x at 1024 x 9, 0.94x at
#: 512 x 19, 0.67x at 1024 x 49.
COMPILED_MAX_ELEMENTS = 8192


def _compiled(backend: str | None, *tensors: torch.Tensor) -> bool:
    """Whether the node runs its compiled loops: for ``backend`` None, on float32/float64
    CPU tensors of one dtype, of at most ``COMPILED_MAX_ELEMENTS`` elements, where numba
    imports; "numba" insists (ValueError where it cannot), "torch" declines."""
    if backend not in (None, *BACKENDS):
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    if backend == "torch":
        return False
    dtype = tensors[0].dtype
    fits = (dtype in (torch.float32, torch.float64)
            and all(t.device.type == "cpu" and t.dtype == dtype for t in tensors))
    if backend == "numba":
        if not fits:
            raise ValueError("backend 'numba' needs float32 or float64 CPU tensors of one dtype")
        if not compiled.available():
            raise ValueError("backend 'numba' needs numba, which is not installed (pip install numba)")
        return True
    return fits and max(t.numel() for t in tensors) <= COMPILED_MAX_ELEMENTS and compiled.available()


def _kernels():
    """The compiled kernels' module, imported on first use (it imports numba)."""
    from . import wrapped_normal_kernels
    return wrapped_normal_kernels


def _rows(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """t broadcast to ``shape`` + its last dimension, as contiguous (rows, features)."""
    return t.detach().expand(*shape, t.shape[-1]).reshape(-1, t.shape[-1]).contiguous()


def _where_small(r: torch.Tensor, below: float, series, closed: torch.Tensor) -> torch.Tensor:
    """closed, with series() where r < below; the series is only built if some r is.

    One host check instead of the ~10 tensor operations of a series that no element
    uses (most draws have r ~ sqrt(d) scale). The closed form's 0/0 at r = 0 is
    discarded by torch.where; these helpers run inside autograd Functions, so no NaN
    can reach a gradient.
    """
    small = r < below
    if not bool(small.any()):
        return closed
    return torch.where(small, series(), closed)


def _sinhc(r: torch.Tensor, sinh_r: torch.Tensor) -> torch.Tensor:
    """s = sinh(r)/r from r and sinh(r) (or sinh(r_max) beyond the clamp); note 1, with
    the series and switch point of ``ccvae.manifolds.lorentz.sinhc``."""
    return _where_small(r, SINHC_SERIES_BELOW, lambda: even_series(r, _SINHC_COEFFS), sinh_r / r)


def _d_of_r(r: torch.Tensor, r2: torch.Tensor, cosh_r: torch.Tensor, s: torch.Tensor):
    """D(r) = (cosh r - sinh(r)/r)/r^2 = s'(r)/r (note 2)."""
    return _where_small(r, D_SERIES_BELOW.get(r.dtype, 1.0), lambda: even_series(r, _D_COEFFS),
                        (cosh_r - s) / r2)


class _WrappedNormalSample(torch.autograd.Function):
    """(z, log q(z)) for loc (..., d+1) on H^d, scale (..., d) and standard normal eps."""

    @staticmethod
    def forward(ctx, loc, scale, eps, backend=None):
        d = eps.shape[-1]
        r_max = max_radius(eps.dtype)
        ctx.compiled = _compiled(backend, loc, scale, eps)
        if ctx.compiled:
            shape = eps.shape[:-1]
            rows = (_rows(loc, shape), _rows(scale, shape), _rows(eps, shape))
            z = np.empty((rows[0].shape[0], d + 1), dtype=rows[0].numpy().dtype)
            log_q = np.empty(rows[0].shape[0], dtype=z.dtype)
            _kernels().sample_forward(*(t.numpy() for t in rows), r_max, z, log_q)
            ctx.rows, ctx.shapes = rows, (loc.shape, scale.shape)
            return torch.from_numpy(z).reshape(*shape, d + 1), torch.from_numpy(log_q).reshape(shape)
        v = eps * scale
        y0, m = loc[..., :1], loc[..., 1:]
        r = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
        r_c = r.clamp(max=r_max)  # note 3
        cosh_r = torch.cosh(r_c)
        s = _sinhc(r, torch.sinh(r_c))
        inv_1py0 = 1.0 / (1.0 + y0)  # 1 + mu_0 >= 2 on H^d
        a = (m * v).sum(-1, keepdim=True) * inv_1py0
        coef_m = torch.addcmul(cosh_r, s, a)
        x = torch.addcmul(coef_m * m, s, v)
        sq = (x * x).sum(-1, keepdim=True)
        limit_sq = math.sinh(r_max) ** 2
        capped = sq > limit_sq  # note 4
        any_capped = bool(capped.any())
        cap = None
        if any_capped:
            cap = torch.where(capped, torch.rsqrt(sq) * math.sqrt(limit_sq), torch.ones_like(sq))
            x = x * cap
            sq = sq.clamp(max=limit_sq)
        z0 = torch.sqrt(sq + 1.0)
        # log q = log N(v; 0, diag scale^2) - (d-1) log s, with v = eps * scale exactly:
        # -|eps|^2/2 - sum log scale - d/2 log 2 pi.
        log_q = (eps * eps).sum(-1, keepdim=True).mul_(-0.5).sub_(torch.log(scale).sum(-1, keepdim=True))
        log_q = log_q - (0.5 * d * _LOG_2PI)
        if d > 1:
            log_q = log_q.sub_(torch.log(s), alpha=d - 1)
        ctx.save_for_backward(loc, scale, eps, v, r, r_c, s, cosh_r, a, inv_1py0, coef_m, x, z0, cap)
        ctx.any_capped = any_capped
        return torch.cat([z0, x], dim=-1), log_q.squeeze(-1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_z, grad_log_q):
        if ctx.compiled:
            loc, scale, eps = (t.numpy() for t in ctx.rows)
            grad_loc, grad_scale = np.empty_like(loc), np.empty_like(scale)
            _kernels().sample_backward(loc, scale, eps, _rows(grad_z, grad_z.shape[:-1]).numpy(),
                                       grad_log_q.detach().reshape(-1).contiguous().numpy(),
                                       max_radius(grad_z.dtype), grad_loc, grad_scale)
            shape = grad_z.shape[:-1]
            return (_reduced(grad_loc, shape, ctx.shapes[0]) if ctx.needs_input_grad[0] else None,
                    _reduced(grad_scale, shape, ctx.shapes[1]) if ctx.needs_input_grad[1] else None,
                    None, None)
        loc, scale, eps, v, r, r_c, s, cosh_r, a, inv_1py0, coef_m, x, z0, cap = ctx.saved_tensors
        d = eps.shape[-1]
        m = loc[..., 1:]
        grad_log_q = grad_log_q.unsqueeze(-1)
        # z0 = sqrt(1 + |x|^2): dz0/dx = x / z0.
        g_x = torch.addcmul(grad_z[..., 1:], grad_z[..., :1], x / z0)
        if ctx.any_capped:  # note 4: x = c x_raw / |x_raw|; g_raw = c (g - x^ (x^.g))
            x_hat = x * torch.rsqrt((x * x).sum(-1, keepdim=True))
            proj = g_x - (x_hat * g_x).sum(-1, keepdim=True) * x_hat
            g_x = torch.where(cap < 1.0, proj * cap, g_x)
        m_g = (m * g_x).sum(-1, keepdim=True)
        s_mg = s * m_g * inv_1py0
        grad_loc = grad_scale = None
        if ctx.needs_input_grad[1]:
            u_g = (v * g_x).sum(-1, keepdim=True).addcmul_(a, m_g)  # u = v + a m
            # D(r) = s'(r)/r (note 2), and d cosh(r)/dr / r = s; beyond the clamp (note 3)
            # cosh is constant and s = sinh(r_max)/r, so these become 0 and -s/r^2.
            r2 = r * r
            d_r = _d_of_r(r, r2, cosh_r, s)
            dcosh_over_r = s
            clamped = r > r_c
            if bool(clamped.any()):
                d_r = torch.where(clamped, -s / r2, d_r)
                dcosh_over_r = torch.where(clamped, torch.zeros_like(s), s)
            radial = dcosh_over_r * m_g + d_r * u_g
            if d > 1:  # the -(d-1) log s term of log q
                radial = radial - (d - 1) * d_r / s * grad_log_q
            grad_v = torch.addcmul(s * g_x, s_mg, m).addcmul_(radial, v)
            # v = eps * scale, and d log q / d scale = -1/scale (eps held fixed)
            grad_scale = (grad_v * eps - grad_log_q / scale).sum_to_size(scale.shape)
        if ctx.needs_input_grad[0]:
            grad_m = torch.addcmul(coef_m * g_x, s_mg, v)
            grad_y0 = -s_mg * a
            grad_loc = torch.cat([grad_y0, grad_m], dim=-1).sum_to_size(loc.shape)
        return grad_loc, grad_scale, None, None


def _reduced(grad_rows: np.ndarray, shape: torch.Size, target: torch.Size) -> torch.Tensor:
    """A kernel's per-row gradient (rows, k), reshaped to ``shape`` + (k,) and summed
    over the dimensions along which the parameter (of shape ``target``) was broadcast."""
    return torch.from_numpy(grad_rows).reshape(*shape, grad_rows.shape[-1]).sum_to_size(target)


def wrapped_normal_sample(loc: torch.Tensor, scale: torch.Tensor, eps: torch.Tensor,
                          backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, log q(z)) for z = exp_loc(PT_{mu0->loc}((0, eps * scale))), in one autograd node.

    ``loc`` (..., d+1) on H^d and ``scale`` (..., d) broadcast against the standard
    normal draws ``eps`` (..., d), which fix the shape: z is (..., d+1) and log q, the
    wrapped normal's log density at z, (...). Differentiable in loc (its time
    coordinate included, as the formulas use it) and scale (module docstring); eps
    is a fixed draw and gets no gradient. ``backend``: see the module docstring.
    """
    return _WrappedNormalSample.apply(loc, scale, eps, backend)


class _OriginLogDensity(torch.autograd.Function):
    """log p(z) = F(t, sigma) - sum log sigma - d/2 log 2 pi of G(mu0, diag sigma^2)."""

    @staticmethod
    def forward(ctx, t, scale, backend=None):
        d = t.shape[-1]
        ctx.compiled = _compiled(backend, t, scale)
        if ctx.compiled:
            shape = broadcast_shapes(t.shape, scale.shape)[:-1]
            rows = (_rows(t, shape), _rows(scale, shape))
            out = np.empty(rows[0].shape[0], dtype=rows[0].numpy().dtype)
            _kernels().origin_log_density_forward(*(r.numpy() for r in rows), out)
            ctx.rows, ctx.shapes = rows, (t.shape, scale.shape)
            return torch.from_numpy(out).reshape(shape)
        n = torch.linalg.vector_norm(t, dim=-1, keepdim=True)
        r = torch.asinh(n)  # dist(mu0, z), exact: sinh(dist) = |t| on H^d
        k = 1.0 / _sinhc(r, n)  # r/n, with the series at n -> 0
        t_over_var = t / (scale * scale)
        q = (t * t_over_var).sum(-1, keepdim=True)
        ctx.save_for_backward(t, scale, r, n, k, t_over_var, q)
        out = (k * k * q).mul_(-0.5).sub_(torch.log(scale).sum(-1, keepdim=True))
        out = out - (0.5 * d * _LOG_2PI)
        if d > 1:
            out = out.add_(torch.log(k), alpha=d - 1)
        return out.squeeze(-1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        if ctx.compiled:
            t, scale = (r.numpy() for r in ctx.rows)
            grad_t, grad_scale = np.empty_like(t), np.empty_like(scale)
            _kernels().origin_log_density_backward(t, scale, grad.detach().reshape(-1).contiguous().numpy(),
                                                   grad_t, grad_scale)
            return (_reduced(grad_t, grad.shape, ctx.shapes[0]) if ctx.needs_input_grad[0] else None,
                    _reduced(grad_scale, grad.shape, ctx.shapes[1]) if ctx.needs_input_grad[1] else None,
                    None)
        t, scale, r, n, k, t_over_var, q = ctx.saved_tensors
        d = t.shape[-1]
        grad = grad.unsqueeze(-1)
        k2 = k * k
        grad_t = grad_scale = None
        if ctx.needs_input_grad[0]:
            cosh_r = torch.sqrt(n * n + 1.0)
            e = -_d_of_r(r, r * r, cosh_r, 1.0 / k) * (k2 * k) / cosh_r  # k'(n)/n
            radial = (d - 1) / k - k * q
            grad_t = torch.addcmul(-k2 * t_over_var, radial * e, t).mul_(grad)
            grad_t = grad_t.sum_to_size(t.shape)
        if ctx.needs_input_grad[1]:
            # d/d scale of -k^2 Q/2 - sum log scale: k^2 t^2/scale^3 - 1/scale
            grad_scale = ((k2 * t_over_var * t_over_var * scale - 1.0 / scale) * grad
                          ).sum_to_size(scale.shape)
        return grad_t, grad_scale, None


def origin_log_density(t: torch.Tensor, scale: torch.Tensor, backend: str | None = None) -> torch.Tensor:
    """log density of G(mu0, diag scale^2) at z = (., t) on H^d, in one autograd node.

    ``t`` (..., d) is the spatial part of z, ``scale`` (..., d) broadcasts with it:
    -|log_mu0(z)_{1:} / scale|^2 / 2 - (d-1) log(sinh r / r) - sum log scale - d/2 log 2 pi.
    ``backend``: see the module docstring.
    """
    return _OriginLogDensity.apply(t, scale, backend)


class _OriginExpmap(torch.autograd.Function):
    r"""z = exp_o((0, v)) = (sqrt(1 + |x|^2), x), x = s(r) v, s = sinh(r)/r, r = |v|.

    The same values as ``Lorentz.expmap0`` (its step clamp, note 3, and its time
    coordinate from |x|), as one node instead of about 25 operations forward and as
    many back. Backward, with g = (g_0, g_x): g_x' = g_x + g_0 x / z_0 and, since
    dx/dv = s I + D(r) v v^T (D = s'(r)/r, note 2; -s/r^2 beyond the clamp),
    g_v = s g_x' + D(r) (v . g_x') v.
    """

    @staticmethod
    def forward(ctx, v, backend=None):
        r_max = max_radius(v.dtype)
        ctx.compiled = _compiled(backend, v)
        if ctx.compiled:
            rows = _rows(v, v.shape[:-1])
            z = np.empty((rows.shape[0], v.shape[-1] + 1), dtype=rows.numpy().dtype)
            _kernels().origin_expmap_forward(rows.numpy(), r_max, z)
            ctx.rows = rows
            return torch.from_numpy(z).reshape(*v.shape[:-1], v.shape[-1] + 1)
        r = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
        r_c = r.clamp(max=r_max)  # note 3
        s = _sinhc(r, torch.sinh(r_c))  # note 1; sinh(r_max)/r beyond the clamp
        x = s * v
        z0 = torch.sqrt((x * x).sum(-1, keepdim=True) + 1.0)
        ctx.save_for_backward(v, r, r_c, s, x, z0)
        return torch.cat([z0, x], dim=-1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        if ctx.compiled:
            v = ctx.rows.numpy()
            grad_v = np.empty_like(v)
            _kernels().origin_expmap_backward(v, _rows(grad, grad.shape[:-1]).numpy(),
                                              max_radius(grad.dtype), grad_v)
            return torch.from_numpy(grad_v).reshape(*grad.shape[:-1], v.shape[-1]), None
        v, r, r_c, s, x, z0 = ctx.saved_tensors
        g_x = torch.addcmul(grad[..., 1:], grad[..., :1], x / z0)  # z0 = sqrt(1 + |x|^2)
        r2 = r * r
        d_r = _d_of_r(r, r2, torch.cosh(r_c), s)
        clamped = r > r_c
        if bool(clamped.any()):  # s = sinh(r_max)/r there: s'(r)/r = -s/r^2
            d_r = torch.where(clamped, -s / r2, d_r)
        return torch.addcmul(s * g_x, d_r * (v * g_x).sum(-1, keepdim=True), v), None


def origin_expmap(v: torch.Tensor, backend: str | None = None) -> torch.Tensor:
    """exp_o((0, v)) on H^d for spatial tangent coordinates ``v`` (..., d), in one
    autograd node: (..., d+1), equal to ``Lorentz(d).expmap0`` of (0, v) with its
    clamp at ``max_radius``. ``backend``: see the module docstring."""
    return _OriginExpmap.apply(v, backend)
