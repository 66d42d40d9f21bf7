"""The ``Manifold`` interface shared by Euclidean, Sphere and Lorentz, plus the
argument checks and the two numerical helpers (a square root with a safe
gradient, an even power series) that the concrete geometries use.

Conventions (see ``shared/DESIGN.md``, "Geometry conventions"):

- points and tangent vectors are stored in ambient coordinates: the last axis
  of every tensor has length ``ambient_dim``; all leading axes are batch axes
  and broadcast as in torch;
- ``dim`` is the intrinsic dimension (S^2 and H^2 have ``dim == 2`` and
  ``ambient_dim == 3``);
- ``origin()`` is the base point of the priors: 0 in R^d, e_0 = (1, 0, ..., 0)
  on the sphere and on the hyperboloid.

Every public method checks the *shapes* of its tensor arguments (free: no
device sync) and raises ``ValueError`` naming the argument. Values (is a point
really on the manifold?) are not checked in the hot path; ``contains`` does it
on request, with a documented tolerance.
"""

from __future__ import annotations

import abc
import numbers
from typing import Sequence

import torch

from ..errors import ConfigError

__all__ = ["Manifold", "safe_sqrt", "even_series", "default_rtol"]


# ---------------------------------------------------------------------------
# Numerical helpers
# ---------------------------------------------------------------------------
def safe_sqrt(s: torch.Tensor) -> torch.Tensor:
    """sqrt(max(s, 0)) whose gradient is 0 (not inf or NaN) where s <= 0.

    Norms of tangent vectors are square roots of inner products that are 0 at
    u = 0 and may round to tiny negatives. d sqrt(s)/ds = 1/(2 sqrt(s)) is
    infinite at 0, and inf * 0 = NaN in the chain rule. Every function of a
    norm used in this package (cos, cosh, sin(r)/r, sinh(r)/r, asinh) is even
    in r, so its true derivative at r = 0 is 0, which is exactly what a zero
    gradient of the norm there gives.
    """
    positive = s > 0
    root = torch.sqrt(torch.where(positive, s, torch.ones_like(s)))
    return torch.where(positive, root, torch.zeros_like(s))


def even_series(x: torch.Tensor, coefficients: Sequence[float]) -> torch.Tensor:
    """sum_k c_k x^(2k) by Horner's rule in x^2 (c_0 first; at least two coefficients)."""
    x2 = x * x
    result = x2 * coefficients[-1] + coefficients[-2]
    for c in reversed(coefficients[:-2]):
        result = result * x2 + c
    return result


def default_rtol(dtype: torch.dtype) -> float:
    """Tolerance of ``contains``: sqrt(machine epsilon) of the dtype.

    3.5e-4 in float32 and 1.5e-8 in float64: loose enough for every point
    that the maps here return (their rounding error is a small multiple of eps),
    tight enough to catch a point that is off the manifold for real.
    """
    return float(torch.finfo(dtype).eps) ** 0.5


# ---------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------
def check_dim(dim: object, name: str = "dim", minimum: int = 1) -> int:
    """An integer >= ``minimum`` (numpy integers accepted; bools and floats refused)."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {dim!r}")
    dim = int(dim)
    if dim < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {dim}")
    return dim


def check_tensor(value: object, name: str) -> torch.Tensor:
    """A floating-point torch tensor with at least one axis."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not (value.is_floating_point() or value.is_complex()):
        raise ValueError(f"{name} must have a floating-point dtype, got {value.dtype}")
    if value.is_complex():
        raise ValueError(f"{name} must be real, got {value.dtype}")
    if value.dim() == 0:
        raise ValueError(f"{name} must have at least one axis (the coordinates), got a scalar")
    return value


def broadcast_batch(**tensors: torch.Tensor) -> torch.Size:
    """The broadcast batch shape (all axes but the last) of named tensors."""
    try:
        return torch.broadcast_shapes(*(t.shape[:-1] for t in tensors.values()))
    except RuntimeError:
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in tensors.items())
        raise ValueError(f"batch shapes do not broadcast: {shapes}") from None


def _batch_shape_arg(batch_shape: tuple) -> tuple[int, ...]:
    """Accept ``origin(2, 3)`` and ``origin((2, 3))`` / ``origin(torch.Size(...))``."""
    if len(batch_shape) == 1 and isinstance(batch_shape[0], (tuple, list, torch.Size)):
        batch_shape = tuple(batch_shape[0])
    for n in batch_shape:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"batch_shape must be non-negative integers, got {batch_shape!r}")
    return tuple(batch_shape)


# ---------------------------------------------------------------------------
# The interface
# ---------------------------------------------------------------------------
class Manifold(abc.ABC):
    """A Riemannian manifold embedded in R^ambient_dim.

    Subclasses implement the exact maps below. All maps act on the last axis
    and broadcast over the others.
    """

    name: str = "manifold"

    def __init__(self, dim: int):
        self.dim = check_dim(dim)

    # -- sizes -----------------------------------------------------------------
    @property
    @abc.abstractmethod
    def ambient_dim(self) -> int:
        """Length of the last axis of points and tangent vectors."""

    # -- argument checks ---------------------------------------------------------
    def _check(self, name: str, value: object) -> torch.Tensor:
        value = check_tensor(value, name)
        if value.shape[-1] != self.ambient_dim:
            raise ValueError(
                f"{name} must have last dimension {self.ambient_dim} (ambient coordinates of "
                f"{self!r}), got shape {tuple(value.shape)}"
            )
        return value

    def _check_all(self, **tensors: object) -> None:
        for name, value in tensors.items():
            self._check(name, value)
        if len(tensors) > 1:
            broadcast_batch(**tensors)  # type: ignore[arg-type]

    # -- points ------------------------------------------------------------------
    def origin(self, *batch_shape: int, dtype: torch.dtype | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
        """The base point, repeated over ``batch_shape``: shape (*batch_shape, ambient_dim)."""
        shape = _batch_shape_arg(batch_shape)
        x = torch.zeros(*shape, self.ambient_dim, dtype=dtype, device=device)
        self._fill_origin(x)
        return x

    def _fill_origin(self, x: torch.Tensor) -> None:
        """Write the origin into a zero tensor (default: it is 0)."""

    @abc.abstractmethod
    def random(self, *batch_shape: int, std: float | None = None, dtype: torch.dtype | None = None,
               device: torch.device | str | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Random points (for tests and demos); see each subclass for the law."""

    @abc.abstractmethod
    def contains(self, x: torch.Tensor, rtol: float | None = None) -> torch.Tensor:
        """Boolean tensor (batch shape): is each x on the manifold, to tolerance?"""

    # -- the maps -----------------------------------------------------------------
    @abc.abstractmethod
    def projx(self, x: torch.Tensor) -> torch.Tensor:
        """A point of the manifold near x (the nearest one where that is defined)."""

    @abc.abstractmethod
    def proju(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Orthogonal projection of an ambient vector u onto T_x M."""

    @abc.abstractmethod
    def inner(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor, *,
              keepdim: bool = False) -> torch.Tensor:
        """Riemannian metric g_x(u, v) of tangent vectors u, v at x."""

    def norm(self, x: torch.Tensor, u: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        """|u|_x = sqrt(g_x(u, u)), with a zero (not NaN) gradient at u = 0."""
        return safe_sqrt(self.inner(x, u, u, keepdim=keepdim))

    @abc.abstractmethod
    def expmap(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """exp_x(u): follow the geodesic from x with initial velocity u for time 1."""

    @abc.abstractmethod
    def logmap(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log_x(y): the tangent vector at x with exp_x(log_x(y)) = y and |log_x(y)| = dist(x, y)."""

    @abc.abstractmethod
    def transp(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Parallel transport of v in T_x M to T_y M along the geodesic from x to y."""

    @abc.abstractmethod
    def dist(self, x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        """Geodesic distance."""

    # -- derived maps (subclasses may specialise them) -----------------------------
    def geodesic(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """The point at fraction t of the geodesic from x (t = 0) to y (t = 1).

        ``t`` is a float or a tensor broadcastable with the batch shape of x and y
        (one t per point; a trailing axis is added here). For n points along one
        geodesic pass ``t = torch.linspace(0, 1, n)`` and x, y of shape (ambient_dim,).
        Values of t outside [0, 1] extrapolate along the same geodesic.
        """
        self._check_all(x=x, y=y)
        if not isinstance(t, torch.Tensor):
            if isinstance(t, bool) or not isinstance(t, (int, float)):
                raise ValueError(f"t must be a float or a tensor, got {type(t).__name__}")
            t = torch.tensor(float(t), dtype=x.dtype, device=x.device)
        u = self.logmap(x, y)
        return self.expmap(x, t.to(u.dtype).unsqueeze(-1) * u)

    def _origin_like(self, x: torch.Tensor) -> torch.Tensor:
        return self.origin(dtype=x.dtype, device=x.device)

    def expmap0(self, u: torch.Tensor) -> torch.Tensor:
        """exp_o(u) for u in the tangent space at the origin."""
        self._check("u", u)
        return self.expmap(self._origin_like(u), u)

    def logmap0(self, y: torch.Tensor) -> torch.Tensor:
        """log_o(y)."""
        self._check("y", y)
        return self.logmap(self._origin_like(y), y)

    def dist0(self, x: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        """dist(origin, x)."""
        self._check("x", x)
        return self.dist(self._origin_like(x), x, keepdim=keepdim)

    def transp0(self, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Parallel transport of v from T_o M to T_y M."""
        self._check_all(y=y, v=v)
        return self.transp(self._origin_like(y), y, v)

    def transp0back(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Parallel transport of u from T_x M back to T_o M."""
        self._check_all(x=x, u=u)
        return self.transp(x, self._origin_like(x), u)

    # -- identity ---------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.dim == self.dim  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.dim))
