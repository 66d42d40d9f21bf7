r"""The uniform distribution on the unit sphere S^dim in R^(dim+1).

It is the prior of the hyperspherical VAE (Davidson et al. 2018). Its density with
respect to the surface measure is 1/|S^dim|, with the surface area

.. math:: |S^{d}| = \frac{2\pi^{(d+1)/2}}{\Gamma((d+1)/2)}.

Samples are normalised standard Gaussian vectors (Muller 1959), which are uniform
because the Gaussian is rotation invariant.

This module also defines ``unit_vector``, the constraint "unit norm along the last
dimension" that the spherical distributions use as their support.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Distribution, constraints

from .shapes import broadcast_shapes, expand_to

__all__ = ["HypersphericalUniform", "log_sphere_area", "unit_vector", "UnitVector"]


def log_sphere_area(dim: int) -> float:
    r"""log |S^dim| = log 2 + ((dim+1)/2) log(pi) - lgamma((dim+1)/2), S^dim in R^(dim+1)."""
    half = 0.5 * (dim + 1)
    return math.log(2.0) + half * math.log(math.pi) - math.lgamma(half)


def unit_norm_tolerance(dtype: torch.dtype) -> float:
    """How far |x| may be from 1 and still count as on the sphere.

    1e-5 for float32/float64 (a float32 vector normalised by torch is within ~1e-7;
    the margin also accepts vectors normalised in float32 and then cast to float64);
    100 machine epsilons for the half-precision types.
    """
    return max(1e-5, 100.0 * torch.finfo(dtype).eps)


class UnitVector(constraints.Constraint):
    """Vectors (last dimension) of unit Euclidean norm, within ``unit_norm_tolerance``."""

    is_discrete = False
    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        tol = unit_norm_tolerance(value.dtype)
        return ((value.norm(dim=-1) - 1.0).abs() <= tol) & torch.isfinite(value).all(-1)

    def __repr__(self) -> str:
        return "UnitVector()"


unit_vector = UnitVector()


def _shape_tuple(name: str, shape) -> torch.Size:
    try:
        return torch.Size(shape)
    except TypeError as exc:
        raise ValueError(f"{name}: expected a tuple of ints, got {shape!r}") from exc



def spherical_parameters(loc, concentration) -> tuple[torch.Tensor, torch.Tensor, torch.Size]:
    """Check and broadcast (loc, concentration) of a distribution on S^{m-1}.

    loc: floating tensor (..., m), m >= 2; concentration: a number or a tensor
    broadcastable with loc.shape[:-1], of loc's dtype. Returns the expanded
    (loc, concentration) and the batch shape. Shapes are always checked; values
    are left to ``validate_args``. A concentration of shape (B, 1) against a batch
    of B is refused: it would silently broadcast to (B, B).
    """
    if not isinstance(loc, torch.Tensor) or not torch.is_floating_point(loc):
        raise ValueError("loc: expected a floating-point tensor of shape (..., m)")
    if loc.dim() < 1 or loc.shape[-1] < 2:
        raise ValueError(f"loc: expected shape (..., m) with m >= 2, got {tuple(loc.shape)}")
    if not isinstance(concentration, torch.Tensor):
        concentration = torch.as_tensor(concentration, dtype=loc.dtype, device=loc.device)
    if not torch.is_floating_point(concentration):
        concentration = concentration.to(loc.dtype)
    if concentration.dtype != loc.dtype:
        raise ValueError(f"concentration: dtype {concentration.dtype} differs from loc's "
                         f"{loc.dtype}")
    batch = loc.shape[:-1]
    if len(batch) >= 1 and batch[-1] != 1 and concentration.shape == batch + (1,):
        raise ValueError(
            f"concentration: shape {tuple(concentration.shape)} would broadcast with loc's "
            f"batch shape {tuple(batch)} to {tuple(batch) + (batch[-1],)}; use "
            "concentration.squeeze(-1)")
    try:
        batch_shape = broadcast_shapes(batch, concentration.shape)
    except RuntimeError as exc:
        raise ValueError(f"concentration: shape {tuple(concentration.shape)} does not "
                         f"broadcast with loc's batch shape {tuple(batch)}") from exc
    m = loc.shape[-1]
    return expand_to(loc, batch_shape + (m,)), expand_to(concentration, batch_shape), batch_shape


def check_spherical_values(loc: torch.Tensor, concentration: torch.Tensor, *,
                           allow_zero: bool) -> None:
    """Value checks behind ``validate_args``: finite concentration (> 0, or >= 0
    when ``allow_zero``), finite loc of unit norm within ``unit_norm_tolerance``."""
    k = concentration
    bad = ~(torch.isfinite(k) & ((k >= 0) if allow_zero else (k > 0)))
    if bool(bad.any()):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"concentration: expected finite values {bound}, got "
                         f"{k[bad].reshape(-1)[0].item()} ({int(bad.sum())} bad entries)")
    if not bool(torch.isfinite(loc).all()):
        raise ValueError("loc: contains NaN or inf")
    if loc.numel():
        tol = unit_norm_tolerance(loc.dtype)
        dev = (loc.norm(dim=-1) - 1.0).abs().max().item()
        if dev > tol:
            raise ValueError(f"loc: expected unit-norm vectors along the last dimension "
                             f"(| |loc| - 1 | <= {tol:g}), found a deviation of {dev:.3g}; "
                             "normalise loc first")

class HypersphericalUniform(Distribution):
    r"""Uniform distribution on S^dim, the unit sphere in R^(dim+1).

    Args:
        dim: the sphere's dimension (>= 1); samples have ``event_shape == (dim+1,)``.
        batch_shape: batch shape of the distribution.
        dtype, device: of the samples (default: torch's default dtype, CPU).

    ``log_prob(x) = -log|S^dim|`` for every x on the sphere, ``entropy() = log|S^dim|``.
    ``rsample`` has no parameters to differentiate; it equals ``sample``.
    """

    arg_constraints: dict = {}
    support = unit_vector
    has_rsample = True

    def __init__(self, dim: int, batch_shape=(), dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None, validate_args: bool | None = None):
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim: expected an int >= 1 (S^dim in R^(dim+1)), got {dim!r}")
        dtype = torch.get_default_dtype() if dtype is None else dtype
        if not dtype.is_floating_point:
            raise ValueError(f"dtype: expected a floating-point dtype, got {dtype}")
        self.dim = dim
        self.dtype = dtype
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self._log_area = log_sphere_area(dim)
        super().__init__(_shape_tuple("batch_shape", batch_shape), torch.Size([dim + 1]),
                         validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(HypersphericalUniform, _instance)
        new.dim, new.dtype, new.device, new._log_area = self.dim, self.dtype, self.device, self._log_area
        super(HypersphericalUniform, new).__init__(_shape_tuple("batch_shape", batch_shape),
                                                   self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> torch.Tensor:
        return torch.zeros(self.batch_shape + self.event_shape, dtype=self.dtype, device=self.device)

    @property
    def mode(self) -> torch.Tensor:
        # Every point is a mode; torch's convention for "no unique mode" is NaN.
        return torch.full(self.batch_shape + self.event_shape, float("nan"), dtype=self.dtype,
                          device=self.device)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(_shape_tuple("sample_shape", sample_shape))
        g = torch.randn(shape, dtype=self.dtype, device=self.device)
        # A zero Gaussian vector has probability 0 (and about 2^-32*(dim+1) per sample
        # in float32); the clamp only keeps that event from producing NaN.
        return g / g.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(self.dtype).tiny)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        shape = torch.broadcast_shapes(value.shape[:-1], self.batch_shape)
        return torch.full(shape, -self._log_area, dtype=self.dtype, device=self.device)

    def entropy(self) -> torch.Tensor:
        return torch.full(self.batch_shape, self._log_area, dtype=self.dtype, device=self.device)

    def __repr__(self) -> str:
        return f"HypersphericalUniform(dim={self.dim}, batch_shape={tuple(self.batch_shape)})"
