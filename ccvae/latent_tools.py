"""Pure maths behind the latent explorer: 2-D views of latent spaces, decode grids,
geodesic interpolation and the latent cursor.

Everything here is torch (float64 inside where precision matters) and knows nothing
about plotly or streamlit; ``ccvae.viz.latent_plots`` draws the results and the
dashboard pages only wire widgets to these functions.

Display spaces
--------------
Each geometry is shown in the space where its 2-D version lives:

===========  ==========  ===================================================
geometry     display     display coordinates
===========  ==========  ===================================================
euclidean    ``plane``   (x, y) in R^2
sphere       ``sphere``  (x0, x1, x2) on S^2 in R^3; latitude/longitude for maps
hyperbolic   ``disc``    Poincare disc p = x_{1:} / (1 + x_0), |p| < 1
===========  ==========  ===================================================

Latents with more than 2 dimensions (geometry-aware projections)
-----------------------------------------------------------------
A :class:`Projection` maps latent points to the display space and *lifts* display
points back to latent points (so the cursor and the decode grid also work for
10-D latents). Each one is exact on a 2-D totally geodesic submanifold:

- Euclidean R^d: principal component analysis. The display is the plane through
  the data mean spanned by the two leading principal axes; the lift is
  ``mean + p C``.
- Sphere S^d in R^(d+1): PCA of the ambient coordinates, *uncentred* (the
  eigenvectors of the second-moment matrix Z^T Z / N), keeping three axes, and the
  projected points renormalised onto S^2. The three axes span a linear subspace
  through the sphere's centre, so it cuts S^d in a great 2-sphere: the lift
  s -> s C is exact and lands on S^d, and great circles of the display are great
  circles of S^d. (Centring first would pick an affine subspace that misses the
  centre; renormalising onto it has no inverse.)
- Hyperbolic H^d (Lorentz model): the log map at the origin o = (1, 0, ..., 0)
  turns each point into a tangent vector v in T_o H^d = R^d; uncentred PCA of those
  vectors keeps two axes; the exp map at the origin of H^2 puts the projected
  vectors back on the hyperboloid, shown on the Poincare disc. The origin (the
  prior's mean) stays at the centre of the disc and distances *from the origin*
  are those of the projected tangent vectors. The lift is
  ``exp_o(C^T log_o(x))``, onto the totally geodesic H^2 through o spanned by C.

2-D latents use the identity (no projection): the scatter shows the latent space
itself.

Conventions
-----------
- Latitude/longitude on S^2 (degrees): lat = atan2(x2, sqrt(x0^2 + x1^2)),
  lon = atan2(x1, x0). The sphere's origin e_0 = (1, 0, 0) is (lat 0, lon 0).
- A point of the disc given by its hyperbolic distance d from the origin and a
  direction angle a has Poincare radius tanh(d / 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import ConfigError

__all__ = [
    "DISPLAY_SPACE",
    "Projection",
    "fit_projection",
    "axis_projection",
    "latlon_to_sphere",
    "sphere_to_latlon",
    "disc_point",
    "disc_to_hyperboloid",
    "hyperboloid_to_disc",
    "Grid",
    "plane_grid",
    "sphere_grid",
    "disc_grid",
    "default_grid",
    "plane_extent",
    "geodesic_path",
    "decode_points",
    "nearest_points",
    "manifold_for",
]

#: The display space of each geometry.
DISPLAY_SPACE = {"euclidean": "plane", "sphere": "sphere", "hyperbolic": "disc"}

#: Guard for renormalising a projected sphere point: a latent point orthogonal to
#: the 3-D principal subspace projects to 0 and has no direction. 1e-12 only avoids
#: 0/0 (such a point is drawn at an arbitrary place); real data never lands there.
_NORM_FLOOR = 1e-12

#: Largest Poincare radius the grid and the cursor use. At |p| = 0.999 the point is
#: at hyperbolic distance 2 artanh(0.999) = 7.6 from the origin, far beyond any
#: posterior mean a trained VAE uses, and 1 - |p|^2 = 2e-3 keeps the map back to
#: the hyperboloid well conditioned in float32.
MAX_DISC_RADIUS = 0.999


def _check_geometry(geometry: str) -> str:
    if geometry not in DISPLAY_SPACE:
        raise ConfigError(
            f"geometry must be one of {', '.join(DISPLAY_SPACE)}, got {geometry!r}")
    return geometry


def manifold_for(geometry: str, dim: int):
    """The ``ccvae.manifolds`` object of a geometry and intrinsic dimension."""
    _check_geometry(geometry)
    if geometry == "euclidean":
        from .manifolds.euclidean import Euclidean
        return Euclidean(dim)
    if geometry == "sphere":
        from .manifolds.sphere import Sphere
        return Sphere(dim)
    from .manifolds.lorentz import Lorentz
    return Lorentz(dim)


def _as_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if not x.is_floating_point():
        x = x.double()
    return x


# -- sphere and disc coordinates ----------------------------------------------------

def latlon_to_sphere(lat_deg, lon_deg) -> torch.Tensor:
    """(lat, lon) in degrees -> (cos lat cos lon, cos lat sin lon, sin lat) on S^2."""
    lat = torch.deg2rad(torch.as_tensor(lat_deg, dtype=torch.float64))
    lon = torch.deg2rad(torch.as_tensor(lon_deg, dtype=torch.float64))
    lat, lon = torch.broadcast_tensors(lat, lon)
    return torch.stack([torch.cos(lat) * torch.cos(lon), torch.cos(lat) * torch.sin(lon),
                        torch.sin(lat)], dim=-1)


def sphere_to_latlon(s) -> tuple[torch.Tensor, torch.Tensor]:
    """Points of S^2 in R^3 -> (lat, lon) in degrees.

    lat = atan2(x2, hypot(x0, x1)) rather than asin(x2): asin loses half the digits
    near the poles and needs |x2| <= 1, which rounding can break.
    """
    s = _as_tensor(s, "s")
    if s.shape[-1] != 3:
        raise ValueError(f"s must have last dimension 3 (points of S^2 in R^3), got shape {tuple(s.shape)}")
    lat = torch.atan2(s[..., 2], torch.hypot(s[..., 0], s[..., 1]))
    lon = torch.atan2(s[..., 1], s[..., 0])
    return torch.rad2deg(lat), torch.rad2deg(lon)


def disc_point(distance, angle_deg) -> torch.Tensor:
    """The Poincare-disc point at hyperbolic distance ``distance`` from the origin in
    direction ``angle_deg``: radius tanh(distance / 2) (curvature -1)."""
    d = torch.as_tensor(distance, dtype=torch.float64)
    if (d < 0).any():
        raise ValueError(f"distance must be >= 0, got {distance!r}")
    a = torch.deg2rad(torch.as_tensor(angle_deg, dtype=torch.float64))
    d, a = torch.broadcast_tensors(d, a)
    r = torch.tanh(d / 2)
    return torch.stack([r * torch.cos(a), r * torch.sin(a)], dim=-1)


def disc_to_hyperboloid(p) -> torch.Tensor:
    """Poincare disc -> H^2 in the Lorentz model (``Lorentz.from_poincare``)."""
    p = _as_tensor(p, "p")
    if p.shape[-1] != 2:
        raise ValueError(f"p must have last dimension 2 (Poincare disc coordinates), got shape {tuple(p.shape)}")
    if (p.norm(dim=-1) >= 1).any():
        raise ValueError("p must lie inside the unit disc (|p| < 1)")
    return manifold_for("hyperbolic", 2).from_poincare(p)


def hyperboloid_to_disc(x) -> torch.Tensor:
    """H^2 (Lorentz, in R^3) -> Poincare disc (``Lorentz.to_poincare``)."""
    x = _as_tensor(x, "x")
    return manifold_for("hyperbolic", 2).to_poincare(x)


# -- projections -------------------------------------------------------------------------

@dataclass(frozen=True)
class Projection:
    """A map from latent points (ambient coordinates) to the display space, and back.

    geometry:   "euclidean", "sphere" or "hyperbolic".
    latent_dim: intrinsic dimension d of the latent manifold.
    components: (k, n) orthonormal rows (k = 2, or 3 for the sphere; n = d, or d + 1
                for the sphere), or None for a 2-D latent (identity).
    center:     the data mean (Euclidean PCA only), else None.
    explained:  the share of the variance (Euclidean) or of the second moment
                (sphere: of |z|^2; hyperbolic: of |log_o z|^2) each kept axis holds.
    """

    geometry: str
    latent_dim: int
    components: torch.Tensor | None = None
    center: torch.Tensor | None = None
    explained: tuple[float, ...] = field(default_factory=tuple)

    @property
    def display(self) -> str:
        return DISPLAY_SPACE[self.geometry]

    @property
    def display_dim(self) -> int:
        """Number of display coordinates: 3 on the sphere, else 2."""
        return 3 if self.display == "sphere" else 2

    @property
    def is_identity(self) -> bool:
        return self.components is None

    @property
    def ambient_dim(self) -> int:
        return self.latent_dim + (0 if self.geometry == "euclidean" else 1)

    def describe(self) -> str:
        """One sentence for the page: which projection, and how much it keeps."""
        if self.is_identity:
            return {"plane": "2-D Euclidean latent shown as it is (no projection).",
                    "sphere": "S^2 latent shown as it is on the sphere (no projection).",
                    "disc": "H^2 latent shown on the Poincare disc (no projection)."}[self.display]
        if not self.explained:
            return (f"{self.latent_dim}-D {self.geometry} latent shown on its first coordinate "
                    "axes (no test data to fit a projection).")
        kept = sum(self.explained)
        if self.geometry == "euclidean":
            return (f"{self.latent_dim}-D Euclidean latent projected by PCA onto its two leading "
                    f"principal axes ({kept:.0%} of the variance).")
        if self.geometry == "sphere":
            return (f"S^{self.latent_dim} latent: uncentred PCA of the ambient coordinates onto 3 axes "
                    f"({kept:.0%} of the second moment), renormalised onto S^2 (a great 2-sphere of "
                    f"S^{self.latent_dim}).")
        return (f"H^{self.latent_dim} latent: log map at the origin, uncentred PCA of the tangent "
                f"vectors onto 2 axes ({kept:.0%} of the squared distance to the origin), exp map "
                f"onto H^2, shown on the Poincare disc.")

    # -- forward: latent -> display -----------------------------------------------
    def _check_latent(self, z) -> torch.Tensor:
        z = _as_tensor(z, "z")
        if z.shape[-1] != self.ambient_dim:
            raise ValueError(
                f"z must have last dimension {self.ambient_dim} (ambient coordinates of the "
                f"{self.latent_dim}-D {self.geometry} latent), got shape {tuple(z.shape)}")
        return z

    def to_display(self, z) -> torch.Tensor:
        """Latent points (..., ambient) -> display coordinates (..., 2 or 3), float64."""
        z = self._check_latent(z).double()
        if self.geometry == "euclidean":
            if self.is_identity:
                return z
            return (z - self.center) @ self.components.T
        if self.geometry == "sphere":
            y = z if self.is_identity else z @ self.components.T
            return y / y.norm(dim=-1, keepdim=True).clamp_min(_NORM_FLOOR)
        if self.is_identity:
            return hyperboloid_to_disc(z)
        big = manifold_for("hyperbolic", self.latent_dim)
        v = big.logmap0(z)[..., 1:]                       # T_o H^d, spatial coordinates
        w = v @ self.components.T                          # the kept principal axes
        small = manifold_for("hyperbolic", 2)
        x = small.expmap0(torch.cat([torch.zeros_like(w[..., :1]), w], dim=-1))
        return small.to_poincare(x)

    # -- backward: display -> latent ------------------------------------------------
    def from_display(self, p) -> torch.Tensor:
        """Display coordinates -> latent points (..., ambient), float64.

        plane: (x, y); sphere: unit vectors in R^3; disc: points with |p| < 1.
        ``to_display(from_display(p)) == p`` up to rounding.
        """
        p = _as_tensor(p, "p").double()
        if p.shape[-1] != self.display_dim:
            raise ValueError(
                f"p must have last dimension {self.display_dim} ({self.display} coordinates), "
                f"got shape {tuple(p.shape)}")
        if self.geometry == "euclidean":
            return p if self.is_identity else self.center + p @ self.components
        if self.geometry == "sphere":
            s = p / p.norm(dim=-1, keepdim=True).clamp_min(_NORM_FLOOR)
            if self.is_identity:
                return s
            z = s @ self.components
            # exact for orthonormal rows; renormalise away the rounding.
            return z / z.norm(dim=-1, keepdim=True).clamp_min(_NORM_FLOOR)
        x = disc_to_hyperboloid(p)
        if self.is_identity:
            return x
        small = manifold_for("hyperbolic", 2)
        w = small.logmap0(x)[..., 1:]
        v = w @ self.components
        big = manifold_for("hyperbolic", self.latent_dim)
        return big.expmap0(torch.cat([torch.zeros_like(v[..., :1]), v], dim=-1))


def _principal_axes(m: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k leading eigenvectors (rows) and eigenvalues of a symmetric PSD matrix,
    with a deterministic sign: each row's largest-magnitude entry is positive."""
    vals, vecs = torch.linalg.eigh(m)                 # ascending
    order = torch.argsort(vals, descending=True)[:k]
    # a PSD matrix's zero eigenvalues come out as tiny negatives (rounding): clamp at 0
    vals, rows = vals[order].clamp_min(0), vecs[:, order].T.contiguous()
    pivot = rows.abs().argmax(dim=1)
    signs = torch.sign(rows[torch.arange(k), pivot])
    signs[signs == 0] = 1
    return rows * signs[:, None], vals


def fit_projection(z, geometry: str) -> Projection:
    """The geometry-aware projection of latent points ``z`` (N, ambient) for display.

    Identity for 2-D latents; PCA variants for more dimensions (module docstring).
    """
    _check_geometry(geometry)
    z = _as_tensor(z, "z").double()
    if z.dim() != 2:
        raise ValueError(f"z must have shape (N, ambient_dim), got {tuple(z.shape)}")
    dim = z.shape[1] - (0 if geometry == "euclidean" else 1)
    if dim < 1:
        raise ValueError(f"z has {z.shape[1]} coordinates: too few for a {geometry} latent")
    if dim <= 2:
        if dim < 2:
            raise ValueError(f"a {dim}-D {geometry} latent has no 2-D view; the explorer needs latent_dim >= 2")
        return Projection(geometry, dim)
    if z.shape[0] < 1:
        raise ValueError("fit_projection needs at least one latent point")
    n = z.shape[0]
    if geometry == "euclidean":
        center = z.mean(0)
        c = z - center
        cov = c.T @ c / n
        rows, vals = _principal_axes(cov, 2)
        # identical points: zero variance; tiny keeps the shares finite (they are 0)
        total = torch.trace(cov).clamp_min(torch.finfo(torch.float64).tiny)
        return Projection(geometry, dim, rows, center, tuple((vals / total).tolist()))
    if geometry == "sphere":
        second = z.T @ z / n
        rows, vals = _principal_axes(second, 3)
        # unit vectors: the trace is exactly 1 up to rounding; the floor is never active
        total = torch.trace(second).clamp_min(torch.finfo(torch.float64).tiny)
        return Projection(geometry, dim, rows, None, tuple((vals / total).tolist()))
    v = manifold_for("hyperbolic", dim).logmap0(z)[:, 1:]
    second = v.T @ v / n
    rows, vals = _principal_axes(second, 2)
    # all points at the origin: total 0; tiny keeps the shares finite (they are 0).
    total = torch.trace(second).clamp_min(torch.finfo(torch.float64).tiny)
    return Projection(geometry, dim, rows, None, tuple((vals / total).tolist()))


def axis_projection(geometry: str, dim: int) -> Projection:
    """The projection onto the first coordinate axes, for when there are no data to
    fit one: identity for 2-D latents; else the plane of the first two axes (R^d),
    the great 2-sphere of the first three ambient axes (S^d), or the H^2 of the
    first two tangent axes at the origin (H^d)."""
    _check_geometry(geometry)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 2:
        raise ValueError(f"dim must be an integer >= 2, got {dim!r}")
    dim = int(dim)
    if dim == 2:
        return Projection(geometry, 2)
    if geometry == "euclidean":
        return Projection(geometry, dim, torch.eye(dim, dtype=torch.float64)[:2],
                          torch.zeros(dim, dtype=torch.float64))
    if geometry == "sphere":
        return Projection(geometry, dim, torch.eye(dim + 1, dtype=torch.float64)[:3])
    return Projection(geometry, dim, torch.eye(dim, dtype=torch.float64)[:2])


# -- decode grids ------------------------------------------------------------------------

@dataclass(frozen=True)
class Grid:
    """Display points laid out as a rows x cols mosaic.

    points:  (rows, cols, display_dim) display coordinates (top row first).
    valid:   (rows, cols) bool; False for cells outside the disc (left blank).
    row_values, col_values: what each row and column stands for (axis ticks).
    row_label, col_label:   their names, e.g. "latitude (deg)".
    """

    points: torch.Tensor
    valid: torch.Tensor
    row_values: torch.Tensor
    col_values: torch.Tensor
    row_label: str
    col_label: str

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.points.shape[0]), int(self.points.shape[1])


def _check_n(n: int, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"{name} must be an integer >= 2, got {n!r}")
    return int(n)


def plane_grid(n: int, x_range: tuple[float, float] = (-3.0, 3.0),
               y_range: tuple[float, float] | None = None) -> Grid:
    """A uniform n x n grid on the plane: columns left to right in x, rows top to
    bottom in y (descending), so the mosaic reads like the scatter plot."""
    n = _check_n(n, "n")
    y_range = x_range if y_range is None else y_range
    for name, (lo, hi) in (("x_range", x_range), ("y_range", y_range)):
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"{name} must be (low, high) with low < high, got {(lo, hi)!r}")
    xs = torch.linspace(x_range[0], x_range[1], n, dtype=torch.float64)
    ys = torch.linspace(y_range[1], y_range[0], n, dtype=torch.float64)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    pts = torch.stack([xx, yy], dim=-1)
    return Grid(pts, torch.ones(n, n, dtype=torch.bool), ys, xs, "y", "x")


def sphere_grid(n_lat: int, n_lon: int | None = None) -> Grid:
    """A latitude/longitude grid on S^2 at cell centres: rows from north to south,
    columns from longitude -180 to 180. Cell centres keep the rows off the poles,
    where every longitude is the same point."""
    n_lat = _check_n(n_lat, "n_lat")
    n_lon = n_lat if n_lon is None else _check_n(n_lon, "n_lon")
    lats = 90.0 - (torch.arange(n_lat, dtype=torch.float64) + 0.5) * 180.0 / n_lat
    lons = -180.0 + (torch.arange(n_lon, dtype=torch.float64) + 0.5) * 360.0 / n_lon
    la, lo = torch.meshgrid(lats, lons, indexing="ij")
    pts = latlon_to_sphere(la, lo)
    return Grid(pts, torch.ones(n_lat, n_lon, dtype=torch.bool), lats, lons,
                "latitude (deg)", "longitude (deg)")


def disc_grid(n: int, radius: float = 0.95) -> Grid:
    """A uniform n x n grid over the square [-radius, radius]^2 of the Poincare disc;
    cells outside the disc of that radius are marked invalid (drawn blank)."""
    n = _check_n(n, "n")
    if not 0 < radius <= MAX_DISC_RADIUS:
        raise ValueError(f"radius must be in (0, {MAX_DISC_RADIUS}], got {radius!r}")
    xs = torch.linspace(-radius, radius, n, dtype=torch.float64)
    ys = torch.linspace(radius, -radius, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    pts = torch.stack([xx, yy], dim=-1)
    # a small tolerance keeps the four axis end points (|p| = radius exactly) in.
    valid = pts.norm(dim=-1) <= radius * (1 + 1e-9)
    return Grid(pts, valid, ys, xs, "disc y", "disc x")


def plane_extent(coords, quantile: float = 0.01, margin: float = 0.1) -> tuple[tuple[float, float], tuple[float, float]]:
    """x and y ranges that cover the middle (1 - 2 quantile) of 2-D points, plus a margin.

    Falls back to the prior's +-3 when there are no points.
    """
    if coords is None or len(coords) == 0:
        return (-3.0, 3.0), (-3.0, 3.0)
    c = _as_tensor(coords, "coords").double()
    lo = torch.quantile(c, quantile, dim=0)
    hi = torch.quantile(c, 1 - quantile, dim=0)
    # all points equal along an axis: a zero span would make a slider with min == max;
    # 1e-6 gives a tiny but valid range around them
    span = (hi - lo).clamp_min(1e-6)
    lo, hi = lo - margin * span, hi + margin * span
    return (lo[0].item(), hi[0].item()), (lo[1].item(), hi[1].item())


def default_grid(display: str, n: int, coords=None, radius: float = 0.95) -> Grid:
    """The decode grid of a display space: uniform on the plane (over the data's
    extent), latitude/longitude on the sphere, uniform over the Poincare disc."""
    if display == "plane":
        xr, yr = plane_extent(coords)
        return plane_grid(n, xr, yr)
    if display == "sphere":
        return sphere_grid(n, n)
    if display == "disc":
        return disc_grid(n, radius)
    raise ValueError(f"display must be plane, sphere or disc, got {display!r}")


# -- paths, decoding, neighbours ---------------------------------------------------------

def geodesic_path(geometry: str, a, b, n: int) -> torch.Tensor:
    """n points along the geodesic from latent point a to latent point b (inclusive):
    a straight line in R^d, a great circle on S^d, a hyperbolic geodesic on H^d.

    a, b: (ambient,) latent points. Returns (n, ambient) float64.
    """
    a = _as_tensor(a, "a").double()
    b = _as_tensor(b, "b").double()
    if a.dim() != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be single latent points of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    dim = a.shape[0] - (0 if geometry == "euclidean" else 1)
    m = manifold_for(geometry, dim)
    t = torch.linspace(0, 1, int(n), dtype=torch.float64)
    return m.geodesic(a, b, t)


@torch.no_grad()
def decode_points(model, z, batch_size: int = 4096) -> torch.Tensor:
    """The decoder's mean output (images in [0, 1], or unit (cos, sin) pairs) at latent
    points z (..., ambient). Returns float32 (..., input_dim)."""
    z = _as_tensor(z, "z")
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    device = param.device if param is not None else "cpu"
    lead = z.shape[:-1]
    flat = z.reshape(-1, z.shape[-1]).to(dtype=dtype, device=device)
    out = [model.decode_mean(flat[i:i + batch_size]) for i in range(0, flat.shape[0], batch_size)]
    y = torch.cat(out, 0) if out else flat.new_zeros((0, model.config.input_dim))
    return y.float().cpu().reshape(*lead, -1)


def nearest_points(geometry: str, point, latents, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices and geodesic distances of the k latent points nearest to ``point``."""
    point = _as_tensor(point, "point").double()
    latents = _as_tensor(latents, "latents").double()
    if latents.dim() != 2 or latents.shape[-1] != point.shape[-1]:
        raise ValueError(f"latents must have shape (N, {point.shape[-1]}), got {tuple(latents.shape)}")
    dim = latents.shape[1] - (0 if geometry == "euclidean" else 1)
    d = manifold_for(geometry, dim).dist(point.expand_as(latents), latents)
    k = min(int(k), latents.shape[0])
    res = torch.topk(d, k, largest=False)
    return res.indices, res.values
