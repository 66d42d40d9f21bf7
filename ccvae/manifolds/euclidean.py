"""Flat space R^d: the latent geometry of the ordinary (Gaussian) VAE.

Every map is the obvious one: exp_x(u) = x + u, log_x(y) = y - x, parallel
transport is the identity, and dist(x, y) = |x - y|. The class exists so that
the three geometries share one interface.
"""

from __future__ import annotations

import torch

from .base import Manifold

__all__ = ["Euclidean"]


class Euclidean(Manifold):
    """R^dim with the standard inner product; origin 0."""

    name = "euclidean"

    @property
    def ambient_dim(self) -> int:
        return self.dim

    def random(self, *batch_shape, std=None, dtype=None, device=None, generator=None):
        """Points drawn from N(0, std^2 I) (std = 1 by default)."""
        x = self.origin(*batch_shape, dtype=dtype, device=device)
        std = 1.0 if std is None else std
        return torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator) * std

    def contains(self, x, rtol=None):
        """Every finite vector is a point of R^d."""
        self._check("x", x)
        return torch.isfinite(x).all(dim=-1)

    def projx(self, x):
        self._check("x", x)
        return x

    def proju(self, x, u):
        self._check_all(x=x, u=u)
        return u

    def inner(self, x, u, v, *, keepdim=False):
        self._check_all(x=x, u=u, v=v)
        return (u * v).sum(dim=-1, keepdim=keepdim)

    def norm(self, x, u, *, keepdim=False):
        # vector_norm has a zero (sub)gradient at u = 0.
        self._check_all(x=x, u=u)
        return torch.linalg.vector_norm(u, dim=-1, keepdim=keepdim)

    def expmap(self, x, u):
        self._check_all(x=x, u=u)
        return x + u

    def logmap(self, x, y):
        self._check_all(x=x, y=y)
        return y - x

    def transp(self, x, y, v):
        self._check_all(x=x, y=y, v=v)
        shape = torch.broadcast_shapes(x.shape, y.shape, v.shape)
        return v.expand(shape)

    def dist(self, x, y, *, keepdim=False):
        # vector_norm has a zero (sub)gradient at x = y, so dist is finite to
        # differentiate there (the true derivative does not exist: |.| has a cone).
        self._check_all(x=x, y=y)
        return torch.linalg.vector_norm(y - x, dim=-1, keepdim=keepdim)

    def geodesic(self, x, y, t):
        """(1 - t) x + t y, written as x + t (y - x) (see ``Manifold.geodesic``)."""
        return super().geodesic(x, y, t)
