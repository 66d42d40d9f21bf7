"""Latent geometries: one class per manifold, one file each.

``Euclidean(d)`` is R^d; ``Sphere(d)`` is S^d in R^(d+1); ``Lorentz(d)`` is the
hyperboloid H^d in R^(d+1) with curvature -1. All share the API of
:class:`~ccvae.manifolds.base.Manifold` (origin, expmap, logmap, transp, dist,
proju, projx, inner, geodesic).
"""

from .base import Manifold
from .euclidean import Euclidean
from .lorentz import Lorentz
from .sphere import Sphere

MANIFOLDS = {"euclidean": Euclidean, "sphere": Sphere, "hyperbolic": Lorentz}

__all__ = ["Manifold", "Euclidean", "Sphere", "Lorentz", "MANIFOLDS"]
