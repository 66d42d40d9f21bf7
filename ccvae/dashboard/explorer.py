"""What the Latent explorer and Compare pages compute, as plain functions.

A :class:`LatentView` bundles one checkpoint's encoded test set with its
geometry-aware projection (``ccvae.latent_tools``). The other functions answer the
page's questions (what does this cursor point decode to, the decode-grid mosaic,
the geodesic between two test points, inputs beside reconstructions), each
returning arrays ready for ``st.image`` or ``ccvae.viz.latent_plots``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import latent_tools as lt
from ..viz import latent_plots as lp
from .catalog import EvalData, encode, reconstruct


@dataclass
class LatentView:
    """One checkpoint's test set in latent space, ready to draw.

    latents:  (N, ambient) float64 posterior locations (empty when no data).
    coords:   (N, 2|3) display coordinates (``projection.to_display(latents)``).
    labels:   (N,) colour values, or None; ``continuous`` says how to colour them.
    rows:     (N,) row of each point in the evaluation split.
    """

    geometry: str
    latent_dim: int
    projection: lt.Projection
    latents: torch.Tensor
    coords: np.ndarray
    rows: np.ndarray
    labels: np.ndarray | None = None
    label_names: list[str] | None = None
    label_title: str = "label"
    continuous: bool = False
    hover: list[str] | None = None
    input_shape: tuple[int, ...] = ()
    likelihood: str = "bernoulli"
    notes: list[str] = field(default_factory=list)

    @property
    def display(self) -> str:
        return self.projection.display

    @property
    def n(self) -> int:
        return int(self.coords.shape[0])


def build_view(model, data: EvalData | None, max_points: int | None = None) -> LatentView:
    """Encode (up to ``max_points`` of) the test split and fit the display projection.

    Without data the view is empty and uses ``latent_tools.axis_projection``, so the
    cursor and the decode grid still work.
    """
    cfg = model.config
    geometry, dim = cfg.geometry, cfg.latent_dim
    likelihood = cfg.likelihood
    if data is None or len(data.split) == 0:
        proj = lt.axis_projection(geometry, dim)
        return LatentView(geometry, dim, proj, torch.zeros(0, model.latent.ambient_dim, dtype=torch.float64),
                          np.zeros((0, proj.display_dim)), np.zeros(0, dtype=int),
                          input_shape=tuple(cfg.input_shape), likelihood=likelihood)
    split = data.split
    n = len(split) if max_points is None else min(len(split), int(max_points))
    z = encode(model, split.x[:n]).double()
    proj = lt.fit_projection(z, geometry)
    coords = proj.to_display(z).numpy()
    labels = None if split.y is None else split.y[:n].numpy()
    continuous = data.dataset == "qm9"
    label_title = data.extras.get("label", "label") if continuous else (
        "person" if data.dataset == "lfw" else "digit" if data.dataset == "mnist" else "label")
    names = data.label_names
    hover = None
    if labels is not None:
        if names and not continuous:
            hover = [f"{label_title}: {names[int(l)] if int(l) < len(names) else l}" for l in labels]
        else:
            hover = [f"{label_title}: {l}" for l in labels]
    return LatentView(geometry, dim, proj, z, coords, np.arange(n), labels, names, label_title,
                      continuous, hover, tuple(data.input_shape), likelihood, list(data.notes))


def scatter(view: LatentView, **kw) -> Any:
    """The latent scatter of a view (``latent_plots.latent_scatter`` with its labels)."""
    return lp.latent_scatter(view.coords, view.display, labels=view.labels, label_names=view.label_names,
                             label_title=view.label_title, continuous=view.continuous,
                             hover_text=view.hover, **kw)


def to_images(view: LatentView, x, mask=None) -> np.ndarray:
    """Inputs or decoded outputs of this view's model as displayable images."""
    return lp.outputs_to_images(x, view.input_shape, view.likelihood, mask=mask)


def display_scale(images: np.ndarray, target: int = 84) -> int:
    """Pixel repetition that shows one image at least ``target`` pixels tall."""
    h = int(images.shape[1]) if images.ndim >= 3 else int(images.shape[0])
    return max(1, -(-int(target) // max(h, 1)))  # ceil: at least ``target`` pixels


def paired_mosaic(inputs: np.ndarray, recons: np.ndarray, per_row: int = 12) -> np.ndarray:
    """Inputs and their reconstructions in one mosaic: each block of ``per_row``
    examples is a row of inputs with the row of their reconstructions beneath it,
    so each input sits directly above its reconstruction."""
    if inputs.shape != recons.shape:
        raise ValueError(f"inputs {inputs.shape} and reconstructions {recons.shape} differ in shape")
    n = len(inputs)
    cols = min(per_row, n)
    blocks, valid = [], []
    for start in range(0, n, cols):
        for src in (inputs, recons):
            chunk = src[start:start + cols]
            pad = cols - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.ones((pad, *chunk.shape[1:]), dtype=chunk.dtype)])
            blocks.append(chunk)
            valid += [True] * (cols - pad) + [False] * pad
    return lp.image_grid(np.concatenate(blocks), ncols=cols, valid=np.array(valid))


def cursor_defaults(view: LatentView) -> tuple[float, float]:
    """Where the cursor starts: the middle of the data on the plane, else (0, 0)
    (the sphere's origin e_0 at latitude/longitude 0, the disc's centre)."""
    if view.display == "plane" and view.n:
        c = np.median(view.coords, axis=0)
        return float(c[0]), float(c[1])
    return 0.0, 0.0


# -- the cursor -------------------------------------------------------------------------------

def cursor_point(view: LatentView, a: float, b: float) -> torch.Tensor:
    """The display point of the cursor controls: (x, y) on the plane, (latitude,
    longitude) in degrees on the sphere, (hyperbolic distance from the origin, angle
    in degrees) on the disc."""
    if view.display == "plane":
        return torch.tensor([float(a), float(b)], dtype=torch.float64)
    if view.display == "sphere":
        return lt.latlon_to_sphere(a, b)
    return lt.disc_point(a, b)


def cursor_controls_for(view: LatentView, row: int) -> tuple[float, float]:
    """The cursor controls that put the cursor on test point ``row`` (the inverse of
    :func:`cursor_point`): (x, y); (latitude, longitude); (hyperbolic distance from the
    origin, direction), the distance being 2 artanh |p| on the disc."""
    if not 0 <= int(row) < view.n:
        raise ValueError(f"row must be a test point index in 0..{view.n - 1}, got {row}")
    p = torch.as_tensor(view.coords[int(row)], dtype=torch.float64)
    if view.display == "plane":
        return float(p[0]), float(p[1])
    if view.display == "sphere":
        lat, lon = lt.sphere_to_latlon(p)
        return float(lat), float(lon)
    # a point drawn on (or, by rounding, beyond) the rim has no finite distance: cap it
    r = float(p.norm().clamp(max=lt.MAX_DISC_RADIUS))
    return 2.0 * float(np.arctanh(r)), float(np.degrees(np.arctan2(float(p[1]), float(p[0]))))


def decode_display(model, view: LatentView, p) -> tuple[torch.Tensor, np.ndarray]:
    """Latent point(s) and decoded image(s) at display point(s) ``p`` (..., 2|3)."""
    z = view.projection.from_display(p)
    x = lt.decode_points(model, z)
    lead = x.shape[:-1]
    images = to_images(view, x.reshape(-1, x.shape[-1]))
    return z, images.reshape(*lead, *images.shape[1:])


def nearest(view: LatentView, z: torch.Tensor, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Rows and geodesic distances of the k test points nearest to latent point z."""
    if view.n == 0:
        return np.zeros(0, dtype=int), np.zeros(0)
    idx, dist = lt.nearest_points(view.geometry, z, view.latents, k)
    return idx.numpy(), dist.numpy()


# -- the decode grid ------------------------------------------------------------------------------

def grid_mosaic(model, view: LatentView, n: int = 15, radius: float = 0.95) -> tuple[np.ndarray, lt.Grid]:
    """Decode an n x n grid of the display space and tile it into one mosaic image:
    uniform on the plane (over the data's extent), latitude/longitude on the sphere,
    uniform over the Poincare disc (cells outside the disc left blank)."""
    grid = lt.default_grid(view.display, n, view.coords if view.n else None, radius=radius)
    rows, cols = grid.shape
    flat = grid.points.reshape(rows * cols, -1)
    valid = grid.valid.reshape(-1)
    # cells outside the disc are blank: decode a harmless point (the origin) there
    flat = torch.where(valid[:, None], flat, torch.zeros_like(flat))
    if view.display == "sphere":
        flat = torch.where(valid[:, None], flat, torch.tensor([1.0, 0.0, 0.0], dtype=flat.dtype))
    _, images = decode_display(model, view, flat)
    return lp.image_grid(images, ncols=cols, valid=valid.numpy()), grid


# -- geodesic interpolation ----------------------------------------------------------------------

@dataclass
class Interpolation:
    """A geodesic between two test points: the dense path and the decoded steps."""

    a: int
    b: int
    path_display: np.ndarray   # (dense, 2|3) for drawing on the scatter
    steps_display: np.ndarray  # (steps, 2|3) the decoded points
    steps_latent: torch.Tensor  # (steps, ambient)
    images: np.ndarray          # (steps, H, W[, 3])
    length: float               # geodesic distance between the end points


def interpolate(model, view: LatentView, a: int, b: int, steps: int = 10, dense: int = 96) -> Interpolation:
    """The geodesic from test point ``a`` to ``b`` in the latent manifold (a straight
    line, a great circle, a hyperbolic geodesic), decoded at ``steps`` points. For
    latents of more than 2 dimensions the path is the true geodesic in the latent
    space, drawn through the projection."""
    if view.n == 0:
        raise ValueError("interpolation needs encoded test points")
    for name, i in (("a", a), ("b", b)):
        if not 0 <= int(i) < view.n:
            raise ValueError(f"{name} must be a test point index in 0..{view.n - 1}, got {i}")
    za, zb = view.latents[int(a)], view.latents[int(b)]
    path = lt.geodesic_path(view.geometry, za, zb, dense)
    pts = lt.geodesic_path(view.geometry, za, zb, steps)
    x = lt.decode_points(model, pts)
    m = lt.manifold_for(view.geometry, view.latent_dim)
    length = float(m.dist(za, zb))
    return Interpolation(int(a), int(b), view.projection.to_display(path).numpy(),
                         view.projection.to_display(pts).numpy(), pts, to_images(view, x), length)


# -- selections ------------------------------------------------------------------------------------

def inputs_and_reconstructions(model, view: LatentView, data: EvalData, rows) -> tuple[np.ndarray, np.ndarray]:
    """Images of the chosen test rows and of their reconstructions (decoded posterior
    locations), in the same order."""
    rows = np.asarray(list(rows), dtype=int)
    if rows.size == 0:
        raise ValueError("rows must name at least one test example")
    if rows.min() < 0 or rows.max() >= len(data.split):
        raise ValueError(f"rows must be in 0..{len(data.split) - 1}")
    x = data.split.x[torch.as_tensor(rows)]
    mask = None if data.split.mask is None else data.split.mask[torch.as_tensor(rows)]
    rec = reconstruct(model, x)
    return to_images(view, x, mask), to_images(view, rec, mask)


def label_of(view: LatentView, row: int) -> str:
    """The label of one test row as text (class name or value)."""
    if view.labels is None or not 0 <= row < view.n:
        return ""
    v = view.labels[row]
    if view.label_names and not view.continuous and int(v) < len(view.label_names):
        return f"{view.label_title} {view.label_names[int(v)]}"
    return f"{view.label_title} {v}"
