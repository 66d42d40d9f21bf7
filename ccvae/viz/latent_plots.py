"""Plotly figures and image mosaics for latent spaces and training runs.

Figures take plain arrays (display coordinates from :mod:`ccvae.latent_tools`,
labels, decoded outputs) and return ``plotly.graph_objects.Figure`` objects or
numpy images; they never compute geometry themselves and never import streamlit.

Scatter layout (every latent scatter built here):

- trace 0 (``DATA_TRACE``) holds the data points, one point per row of the input
  in the same order, so a selection's ``point_index`` on trace 0 is the row index;
- later traces are decorations (wireframe, paths, cursor, highlights);
- labels become one discrete colour scale on trace 0 (not one trace per class),
  which keeps point indices simple and the JSON small for 10,000 points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly import colors as pcolors

__all__ = [
    "DATA_TRACE",
    "latent_scatter",
    "sphere_wireframe",
    "selected_indices",
    "image_grid",
    "outputs_to_images",
    "angle_tiles",
    "as_uint8",
    "training_curves",
    "discrete_colorscale",
]

#: Index of the data trace in every latent scatter.
DATA_TRACE = 0

_PATH_COLOURS = ("#d62728", "#111111", "#ff7f0e", "#9467bd")
_WIRE_COLOUR = "#c4c4c4"  # gl3d lines ignore alpha blending: a light solid grey


def _np(a) -> np.ndarray:
    if a is None:
        return None
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def discrete_colorscale(n: int) -> list[list]:
    """A stepwise colour scale with n flat bands (for integer labels 0..n-1 with
    cmin = -0.5, cmax = n - 0.5)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    palette = pcolors.qualitative.Plotly if n <= 10 else pcolors.qualitative.Dark24 if n <= 24 \
        else pcolors.qualitative.Alphabet
    scale = []
    for i in range(n):
        c = palette[i % len(palette)]
        scale += [[i / n, c], [(i + 1) / n, c]]
    return scale


def sphere_wireframe(n_lat: int = 7, n_lon: int = 12, points: int = 73) -> go.Scatter3d:
    """A faint latitude/longitude wireframe of the unit sphere as one 3-D line trace."""
    xs, ys, zs = [], [], []
    t = np.linspace(0, 2 * np.pi, points)
    for lat in np.linspace(-np.pi / 2, np.pi / 2, n_lat + 2)[1:-1]:
        xs += list(np.cos(lat) * np.cos(t)) + [None]
        ys += list(np.cos(lat) * np.sin(t)) + [None]
        zs += list(np.full_like(t, np.sin(lat))) + [None]
    half = np.linspace(-np.pi / 2, np.pi / 2, points // 2 + 1)
    for lon in np.linspace(0, 2 * np.pi, n_lon, endpoint=False):
        xs += list(np.cos(half) * np.cos(lon)) + [None]
        ys += list(np.cos(half) * np.sin(lon)) + [None]
        zs += list(np.sin(half)) + [None]
    return go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", line=dict(color=_WIRE_COLOUR, width=1),
                        hoverinfo="skip", showlegend=False, name="wireframe")


def _latlon(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sphere points (..., 3) -> (lat, lon) degrees; the convention of ccvae.latent_tools."""
    lat = np.degrees(np.arctan2(p[..., 2], np.hypot(p[..., 0], p[..., 1])))
    lon = np.degrees(np.arctan2(p[..., 1], p[..., 0]))
    return lat, lon


def _map_line(p: np.ndarray) -> tuple[list, list]:
    """A path on the sphere as (lon, lat) lists, broken where it crosses lon = +-180."""
    lat, lon = _latlon(p)
    xs, ys = [float(lon[0])], [float(lat[0])]
    for i in range(1, len(lon)):
        if abs(lon[i] - lon[i - 1]) > 180:
            xs.append(None)
            ys.append(None)
        xs.append(float(lon[i]))
        ys.append(float(lat[i]))
    return xs, ys


def _marker(labels, label_names, continuous: bool, label_title: str, size: float) -> dict:
    if labels is None:
        return dict(size=size, color="#1f77b4", opacity=0.75)
    labels = _np(labels)
    if continuous or label_names is None:
        return dict(size=size, color=labels, colorscale="Viridis", opacity=0.8,
                    colorbar=dict(title=dict(text=label_title), thickness=12))
    n = max(len(label_names), int(labels.max()) + 1 if labels.size else 1)
    names = list(label_names) + [str(i) for i in range(len(label_names), n)]
    return dict(size=size, color=labels, colorscale=discrete_colorscale(n), cmin=-0.5,
                cmax=n - 0.5, opacity=0.8,
                colorbar=dict(title=dict(text=label_title), tickvals=list(range(n)),
                              ticktext=names, thickness=12, len=0.9))


def latent_scatter(coords, display: str, *, labels=None, label_names: Sequence[str] | None = None,
                   label_title: str = "label", continuous: bool = False,
                   hover_text: Sequence[str] | None = None, paths: Sequence[Mapping[str, Any]] = (),
                   cursor=None, highlight: Sequence[int] | None = None, sphere_view: str = "globe",
                   title: str | None = None, height: int = 520, marker_size: float | None = None,
                   selectable: bool = True) -> go.Figure:
    """The scatter of latent points in their display space.

    coords:   (N, 2) plane or disc coordinates, or (N, 3) points of S^2.
    display:  "plane", "sphere" or "disc" (``ccvae.latent_tools.DISPLAY_SPACE``).
    labels:   (N,) integer classes (with ``label_names``) or a continuous value
              (``continuous=True``), shown as colours.
    paths:    dicts with "points" ((M, 2|3) display coordinates of a dense polyline),
              optional "markers" ((K, 2|3) points to number along it) and "name".
    cursor:   one display point drawn as a star.
    highlight: row indices to ring (the current selection).
    sphere_view: "globe" (3-D sphere with a wireframe) or "map" (longitude/latitude
              plane, which supports box and lasso selection; 3-D plots do not).
    """
    coords = _np(coords)
    if display not in ("plane", "sphere", "disc"):
        raise ValueError(f"display must be plane, sphere or disc, got {display!r}")
    want = 3 if display == "sphere" else 2
    if coords.ndim != 2 or coords.shape[1] != want:
        raise ValueError(f"coords must have shape (N, {want}) for the {display}, got {coords.shape}")
    if sphere_view not in ("globe", "map"):
        raise ValueError(f"sphere_view must be 'globe' or 'map', got {sphere_view!r}")
    n = coords.shape[0]
    size = marker_size or (3 if n > 3000 else 5 if n > 500 else 7)
    marker = _marker(labels, label_names, continuous, label_title, size)
    text = list(hover_text) if hover_text is not None else None
    hover = "%{text}<extra>#%{customdata}</extra>" if text is not None else "#%{customdata}<extra></extra>"
    index = np.arange(n)
    globe = display == "sphere" and sphere_view == "globe"
    fig = go.Figure()

    if globe:
        fig.add_trace(go.Scatter3d(x=coords[:, 0], y=coords[:, 1], z=coords[:, 2], mode="markers",
                                   marker={**marker, "size": max(1.5, size * 0.6)}, text=text,
                                   customdata=index, hovertemplate=hover, name="test points",
                                   showlegend=False))
        fig.add_trace(sphere_wireframe())
    else:
        if display == "sphere":
            lat, lon = _latlon(coords)
            x, y = lon, lat
        else:
            x, y = coords[:, 0], coords[:, 1]
        fig.add_trace(go.Scattergl(x=x, y=y, mode="markers", marker=marker, text=text,
                                   customdata=index, hovertemplate=hover, name="test points",
                                   showlegend=False))

    # Decorations on a 2-D plot are WebGL traces too: plotly draws its WebGL canvas
    # over the SVG layer, so SVG markers would hide under 10,000 data points.
    flat = go.Scattergl

    def add_points(p: np.ndarray, **kw):
        p = _np(p)
        if globe:
            fig.add_trace(go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], **kw))
        elif display == "sphere":
            lat, lon = _latlon(p)
            fig.add_trace(flat(x=lon, y=lat, **kw))
        else:
            fig.add_trace(flat(x=p[:, 0], y=p[:, 1], **kw))

    if highlight is not None and len(highlight):
        h = np.asarray(list(highlight), dtype=int)
        h = h[(h >= 0) & (h < n)]
        if h.size:
            add_points(coords[h], mode="markers", name="selected", hoverinfo="skip",
                       marker=dict(size=size + 6 if not globe else 5, color="rgba(0,0,0,0)",
                                   line=dict(color="black", width=2)), showlegend=False)

    for k, path in enumerate(paths):
        pts = _np(path["points"])
        colour = path.get("color", _PATH_COLOURS[k % len(_PATH_COLOURS)])
        name = path.get("name", f"path {k + 1}")
        if globe:
            fig.add_trace(go.Scatter3d(x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], mode="lines",
                                       line=dict(color=colour, width=6), name=name, hoverinfo="skip"))
        elif display == "sphere":
            xs, ys = _map_line(pts)
            fig.add_trace(flat(x=xs, y=ys, mode="lines", line=dict(color=colour, width=3),
                               name=name, hoverinfo="skip"))
        else:
            fig.add_trace(flat(x=pts[:, 0], y=pts[:, 1], mode="lines",
                               line=dict(color=colour, width=3), name=name, hoverinfo="skip"))
        if path.get("markers") is not None:
            m = _np(path["markers"])
            labels_ = [str(i + 1) for i in range(len(m))]
            add_points(m, mode="markers+text", text=labels_, textposition="top center",
                       marker=dict(size=7 if not globe else 4, color=colour), name=f"{name} steps",
                       hoverinfo="skip", showlegend=False)

    if cursor is not None:
        c = _np(cursor).reshape(1, -1)
        add_points(c, mode="markers", name="cursor", hoverinfo="skip",
                   marker=dict(symbol="diamond" if globe else "star", size=8 if globe else 16,
                               color="#ffd700", line=dict(color="black", width=1.5)))

    layout: dict[str, Any] = dict(height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                                  legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
                                  uirevision=display + sphere_view)
    if title:
        layout["title"] = dict(text=title, x=0.01)
    if globe:
        axis = dict(range=[-1.1, 1.1], showbackground=False, showgrid=False, zeroline=False,
                    showticklabels=False, title="")
        layout["scene"] = dict(xaxis=axis, yaxis=axis, zaxis=axis, aspectmode="cube",
                               camera=dict(eye=dict(x=1.2, y=0.75, z=0.55)))
    elif display == "sphere":
        layout["xaxis"] = dict(range=[-180, 180], title="longitude (deg)", dtick=60, zeroline=False)
        layout["yaxis"] = dict(range=[-90, 90], title="latitude (deg)", dtick=30, zeroline=False,
                               scaleanchor="x", scaleratio=1)
    elif display == "disc":
        layout["xaxis"] = dict(range=[-1.05, 1.05], zeroline=False, showgrid=False, title="")
        layout["yaxis"] = dict(range=[-1.05, 1.05], zeroline=False, showgrid=False, title="",
                               scaleanchor="x", scaleratio=1)
        layout["shapes"] = [dict(type="circle", xref="x", yref="y", x0=-1, y0=-1, x1=1, y1=1,
                                 line=dict(color="black", width=1.5), layer="below")]
    else:
        layout["yaxis"] = dict(scaleanchor="x", scaleratio=1, zeroline=False)
        layout["xaxis"] = dict(zeroline=False)
    if selectable and not globe:
        # clicking selects a point (Streamlit sets clickmode event+select for
        # "points"); pan keeps a single click a click, the modebar has box/lasso.
        layout["dragmode"] = "pan"
    fig.update_layout(**layout)
    return fig


def selected_indices(event: Mapping[str, Any] | None) -> list[int]:
    """Row indices of the data points selected in a latent scatter.

    ``event`` is what ``st.plotly_chart(..., on_select="rerun")`` returns (or its
    plain-dict form): ``{"selection": {"points": [{"curve_number", "point_index", ...}],
    "point_indices": [...]}}``. Only points of the data trace count (decorations such
    as paths or the cursor are ignored); order of first appearance is kept.
    """
    if not event:
        return []
    selection = event.get("selection") if isinstance(event, Mapping) else getattr(event, "selection", None)
    if not selection:
        return []
    points = selection.get("points") or []
    out: list[int] = []
    seen = set()
    if points:
        for p in points:
            if p.get("curve_number", DATA_TRACE) != DATA_TRACE:
                continue
            idx = p.get("point_index", p.get("point_number"))
            if idx is None or idx in seen:
                continue
            seen.add(int(idx))
            out.append(int(idx))
        return out
    for idx in selection.get("point_indices") or []:
        if idx not in seen:
            seen.add(int(idx))
            out.append(int(idx))
    return out


# -- images ------------------------------------------------------------------------------

def image_grid(images, ncols: int | None = None, valid=None, pad: int = 1,
               pad_value: float = 1.0) -> np.ndarray:
    """Tile images into one mosaic, row-major.

    images: (N, H, W) grey or (N, H, W, 3) colour, in [0, 1].
    ncols:  images per row (default: a near-square layout). A decode grid of
            R x C cells is passed as N = R * C images with ``ncols=C``.
    valid:  optional boolean mask (N,): invalid cells are left blank (``pad_value``).
    Returns float32 (rows*(H+pad)-pad, ncols*(W+pad)-pad[, 3]).
    """
    flat = _np(images).astype(np.float32)
    if flat.ndim not in (3, 4) or (flat.ndim == 4 and flat.shape[-1] != 3):
        raise ValueError(f"images must have shape (N, H, W) or (N, H, W, 3), got {flat.shape}")
    if len(flat) == 0:
        raise ValueError("image_grid needs at least one image")
    cols = int(ncols) if ncols else int(np.ceil(np.sqrt(len(flat))))
    if cols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    rows = int(np.ceil(len(flat) / cols))
    mask = np.ones(len(flat), dtype=bool)
    if valid is not None:
        v = _np(valid).astype(bool).reshape(-1)
        if v.size != len(flat):
            raise ValueError(f"valid must have one entry per image ({len(flat)}), got {v.size}")
        mask = v
    h, w = flat.shape[1:3]
    extra = flat.shape[3:]
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, *extra), pad_value, dtype=np.float32)
    for i in range(len(flat)):
        if not mask[i]:
            continue
        r, c = divmod(i, cols)
        out[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = flat[i]
    return np.clip(out, 0.0, 1.0)


def angle_tiles(angles_deg, cell: int = 4) -> np.ndarray:
    """Angles (N, K) in degrees as square colour tiles (N, s*cell, s*cell, 3), s = ceil(sqrt(K)).

    Slot k sits at row k // s, column k % s; its colour is a cyclic hue (red at 0 deg,
    yellow 60, green 120, cyan 180, blue 240, magenta 300, back to red), so angles
    near -180 and +180 get the same colour. NaN (padding) and unused cells are white.
    """
    a = _np(angles_deg).astype(np.float64)
    if a.ndim == 1:
        a = a[None]
    n, k = a.shape
    side = max(1, int(np.ceil(np.sqrt(k))))
    full = np.full((n, side * side), np.nan)
    full[:, :k] = a
    hue = np.mod(np.nan_to_num(full), 360.0) / 60.0
    x = 1 - np.abs(np.mod(hue, 2) - 1)
    zero, one = np.zeros_like(hue), np.ones_like(hue)
    sector = np.floor(hue).astype(int) % 6
    r = np.choose(sector, [one, x, zero, zero, x, one])
    g = np.choose(sector, [x, one, one, x, zero, zero])
    b = np.choose(sector, [zero, zero, x, one, one, x])
    rgb = np.stack([r, g, b], axis=-1) * 0.85 + 0.1
    rgb[np.isnan(full)] = 1.0
    rgb = rgb.reshape(n, side, side, 3)
    rgb = np.repeat(np.repeat(rgb, cell, axis=1), cell, axis=2)
    return rgb.astype(np.float32)


def as_uint8(image, scale: int = 1) -> np.ndarray:
    """A [0, 1] float image as uint8, optionally enlarged ``scale`` times by pixel
    repetition (crisp pixels instead of the browser's blur)."""
    a = np.clip(_np(image).astype(np.float32), 0.0, 1.0)
    if scale > 1:
        a = np.repeat(np.repeat(a, scale, axis=0), scale, axis=1)
    return (a * 255 + 0.5).astype(np.uint8)


def outputs_to_images(x, input_shape: Sequence[int], likelihood: str = "bernoulli",
                      mask=None) -> np.ndarray:
    """Model inputs or decoded means -> displayable images.

    Images (``input_shape`` of length 2) are reshaped and clipped to [0, 1]. Angle
    data (``likelihood == "von_mises"``: [cos0, sin0, cos1, ...]) become
    :func:`angle_tiles`; ``mask`` (N, K) blanks padded angle slots.
    """
    x = _np(x).astype(np.float32)
    if x.ndim == 1:
        x = x[None]
    if likelihood == "von_mises":
        pairs = x.reshape(x.shape[0], -1, 2)
        angles = np.degrees(np.arctan2(pairs[..., 1], pairs[..., 0]))
        if mask is not None:
            angles = np.where(_np(mask).astype(bool), angles, np.nan)
        return angle_tiles(angles)
    shape = tuple(int(s) for s in input_shape)
    if len(shape) < 2:
        side = int(round(np.sqrt(x.shape[-1])))
        shape = (side, x.shape[-1] // side) if side * (x.shape[-1] // side) == x.shape[-1] else (1, x.shape[-1])
    return np.clip(x.reshape(x.shape[0], *shape), 0.0, 1.0)


# -- training curves ------------------------------------------------------------------------

def training_curves(history: Sequence[Mapping[str, Any]], title: str | None = None,
                    height: int = 420) -> go.Figure:
    """Per-epoch ELBO (train and validation), reconstruction and KL.

    ``history`` holds epoch records as the training loop writes them (keys
    epoch, train_elbo, val_elbo, train_recon, val_recon, train_kl, val_kl).
    """
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("ELBO (nats, higher is better)", "KL term (nats)"),
                        horizontal_spacing=0.12)
    epochs = [r.get("epoch") for r in history]
    series = [("train_elbo", "train ELBO", 1, "#1f77b4", "solid"),
              ("val_elbo", "validation ELBO", 1, "#1f77b4", "dash"),
              ("train_recon", "train reconstruction", 1, "#2ca02c", "solid"),
              ("train_kl", "train KL", 2, "#d62728", "solid"),
              ("val_kl", "validation KL", 2, "#d62728", "dash")]
    for key, name, col, colour, dash in series:
        ys = [r.get(key) for r in history]
        if all(v is None for v in ys):
            continue
        fig.add_trace(go.Scatter(x=epochs, y=ys, mode="lines+markers", name=name,
                                 line=dict(color=colour, dash=dash)), row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=60 if title else 40, b=10),
                      legend=dict(orientation="h", y=-0.2), title=title)
    return fig
