"""Plotly figures for the post's QM9 experiment (torsion angles through a VAE).

Every function takes plain arrays (numpy or torch; angles in DEGREES, ``mask``
flags the real slots of padded (N, K) arrays) and returns a
``plotly.graph_objects.Figure``. They compute nothing but the display summaries
named in each docstring (the metrics themselves live in
``ccvae.evaluation.angles``).

- ``loss_curves``: training curves of one or several runs;
- ``angle_error_histogram``: distribution of |circular error|;
- ``unit_circle_plot``: true and predicted angles on the unit circle, with lines
  joining each pair;
- ``error_by_angle_plot``: error against the true-angle range, the +-180 bins apart;
- ``correlation_heatmaps``: circular correlation matrices, true vs reconstructed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ccvae.evaluation.angles import (
    absolute_angular_error,
    as_numpy,
    circular_correlation_matrix,
    error_by_true_angle,
    wrap_degrees,
)

__all__ = [
    "loss_curves",
    "angle_error_histogram",
    "unit_circle_plot",
    "error_by_angle_plot",
    "correlation_heatmaps",
]

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _flat(angles: Any, mask: Any) -> np.ndarray:
    a = as_numpy(angles)
    if mask is None:
        return a.reshape(-1)
    m = as_numpy(mask, dtype=bool)
    if m.shape != a.shape:
        raise ValueError(f"`mask` has shape {m.shape}, expected {a.shape}")
    return a[m]


def _runs(x: Any) -> dict[str, Any]:
    """A single run (array / list) or a mapping name -> run, as a dict."""
    if isinstance(x, Mapping):
        if not x:
            raise ValueError("no runs given")
        return dict(x)
    return {"": x}


def loss_curves(
    histories: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Mapping[str, Any]]],
    metrics: Sequence[str] = ("train_loss", "val_elbo"),
    *,
    title: str = "Training curves",
) -> go.Figure:
    """One panel per metric, one line per run, against ``epoch``.

    histories: a training history (list of per-epoch dicts, as
    ``ccvae.training`` records them: "epoch", "train_loss", "val_elbo", ...) or a
    mapping run name -> history (e.g. {"E-VAE": ..., "S-VAE": ..., "H-VAE": ...}).
    Metrics missing from a history are skipped for that run.
    """
    runs = _runs(histories)
    metrics = list(metrics)
    if not metrics:
        raise ValueError("`metrics` must name at least one history key")
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics)
    for r, (name, hist) in enumerate(runs.items()):
        hist = list(hist)
        epochs = [h.get("epoch", i + 1) for i, h in enumerate(hist)]
        for c, key in enumerate(metrics):
            pts = [(e, h[key]) for e, h in zip(epochs, hist) if h.get(key) is not None]
            if not pts:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                    name=name or key, legendgroup=name or key, showlegend=c == 0,
                    line={"color": _COLOURS[r % len(_COLOURS)]},
                ),
                row=1, col=c + 1,
            )
            fig.update_xaxes(title_text="epoch", row=1, col=c + 1)
    fig.update_layout(title=title, height=360)
    return fig


def angle_error_histogram(
    pred: Any, true: Any, mask: Any = None, *, bin_width: float = 5.0, title: str = "Absolute angular error"
) -> go.Figure:
    """Histogram of |circular difference| (degrees, 0..180) over real slots.

    ``pred``/``true`` may be arrays or mappings run name -> array (same ``true`` and
    ``mask`` for all runs); the mean and median go into each trace name.
    """
    fig = go.Figure()
    for r, (name, p) in enumerate(_runs(pred).items()):
        err = _flat(absolute_angular_error(p, true), mask)
        label = f"{name + ': ' if name else ''}mean {err.mean():.1f}\u00b0, median {np.median(err):.1f}\u00b0" \
            if err.size else (name or "no angles")
        fig.add_trace(go.Histogram(
            x=err, name=label, xbins={"start": 0, "end": 180, "size": bin_width},
            histnorm="probability", opacity=0.6, marker_color=_COLOURS[r % len(_COLOURS)],
        ))
    fig.update_layout(
        title=title, barmode="overlay", xaxis_title="|error| (degrees)",
        yaxis_title="fraction of angles", xaxis_range=[0, 180], height=380,
    )
    return fig


def unit_circle_plot(
    true: Any,
    pred: Any,
    mask: Any = None,
    *,
    max_points: int = 400,
    seed: int = 0,
    title: str = "True (o) vs predicted (x) angles on the unit circle",
) -> go.Figure:
    """True angles on the unit circle (radius 1) and predictions just inside (radius
    0.85), with a grey line joining each pair. At most ``max_points`` pairs, drawn
    at random with ``seed`` (the full set is unreadable)."""
    t, p = _flat(true, mask), _flat(pred, mask)
    if t.shape != p.shape:
        raise ValueError(f"`true` and `pred` differ in shape: {t.shape} vs {p.shape}")
    if t.size > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(t.size, max_points, replace=False))
        t, p = t[keep], p[keep]
    tr, pr = np.radians(wrap_degrees(t)), np.radians(wrap_degrees(p))
    r_true, r_pred = 1.0, 0.85
    xt, yt = r_true * np.cos(tr), r_true * np.sin(tr)
    xp, yp = r_pred * np.cos(pr), r_pred * np.sin(pr)
    # One trace of segments separated by None (fast for hundreds of lines).
    lx = np.stack([xt, xp, np.full_like(xt, np.nan)], axis=1).reshape(-1)
    ly = np.stack([yt, yp, np.full_like(yt, np.nan)], axis=1).reshape(-1)
    circle = np.linspace(0, 2 * np.pi, 361)
    err = absolute_angular_error(p, t)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=np.cos(circle), y=np.sin(circle), mode="lines",
                             line={"color": "#bbbbbb", "width": 1}, hoverinfo="skip", showlegend=False))
    fig.add_trace(go.Scatter(x=lx, y=ly, mode="lines", line={"color": "rgba(100,100,100,0.35)", "width": 1},
                             hoverinfo="skip", name="pairs"))
    fig.add_trace(go.Scatter(x=xt, y=yt, mode="markers", name="true", marker={"symbol": "circle", "size": 6,
                             "color": _COLOURS[0]}, customdata=np.stack([t, p, err], 1),
                             hovertemplate="true %{customdata[0]:.1f}\u00b0<br>pred %{customdata[1]:.1f}\u00b0"
                                           "<br>|err| %{customdata[2]:.1f}\u00b0<extra></extra>"))
    fig.add_trace(go.Scatter(x=xp, y=yp, mode="markers", name="predicted", marker={"symbol": "x", "size": 6,
                             "color": _COLOURS[1]}, customdata=np.stack([t, p, err], 1),
                             hovertemplate="true %{customdata[0]:.1f}\u00b0<br>pred %{customdata[1]:.1f}\u00b0"
                                           "<br>|err| %{customdata[2]:.1f}\u00b0<extra></extra>"))
    for ang, txt in ((0, "0\u00b0"), (90, "90\u00b0"), (180, "\u00b1180\u00b0"), (-90, "-90\u00b0")):
        fig.add_annotation(x=1.15 * np.cos(np.radians(ang)), y=1.15 * np.sin(np.radians(ang)), text=txt,
                           showarrow=False)
    fig.update_layout(title=title, height=480, width=520,
                      xaxis={"visible": False, "range": [-1.3, 1.3]},
                      yaxis={"visible": False, "range": [-1.3, 1.3], "scaleanchor": "x", "scaleratio": 1})
    return fig


def error_by_angle_plot(
    pred: Any,
    true: Any,
    mask: Any = None,
    *,
    bin_width: float = 20.0,
    edge_width: float = 10.0,
    statistic: str = "mean",
    title: str = "Error by true angle (the \u00b1180\u00b0 bins apart)",
) -> go.Figure:
    """Bar chart of the mean (or median) |error| per true-angle bin
    (``ccvae.evaluation.angles.error_by_true_angle``); the two bins at the +-180
    seam are outlined in black. ``pred`` may map run names to arrays."""
    if statistic not in ("mean", "median"):
        raise ValueError(f"`statistic` must be 'mean' or 'median', got {statistic!r}")
    fig = go.Figure()
    for r, (name, p) in enumerate(_runs(pred).items()):
        bins = error_by_true_angle(p, true, mask, bin_width=bin_width, edge_width=edge_width)
        y = bins.mean_deg if statistic == "mean" else bins.median_deg
        fig.add_trace(go.Bar(
            x=bins.label, y=y, name=name or f"{statistic} |error|",
            marker={"color": _COLOURS[r % len(_COLOURS)],
                    "line": {"color": ["black" if w else "rgba(0,0,0,0)" for w in bins.wrap_edge], "width": 2}},
            customdata=bins.count, hovertemplate="%{x}: %{y:.1f}\u00b0 (n = %{customdata})<extra></extra>",
        ))
    fig.update_layout(title=title, barmode="group", xaxis_title="true angle (degrees)",
                      yaxis_title=f"{statistic} |error| (degrees)", height=400)
    return fig


def correlation_heatmaps(
    true: Any,
    pred: Any,
    mask: Any = None,
    *,
    max_slots: int | None = 40,
    min_count: int = 10,
    title: str = "Circular correlation between torsion slots",
) -> go.Figure:
    """Two heatmaps side by side: the circular correlation matrix
    (Jammalamadaka-SenGupta) of the true angles and of the reconstructed ones,
    over the first ``max_slots`` slots. Cells with fewer than ``min_count``
    molecules sharing both slots are blank."""
    t, p = as_numpy(true), as_numpy(pred)
    if t.ndim != 2 or t.shape != p.shape:
        raise ValueError(f"`true` and `pred` must be (N, K) of equal shape, got {t.shape}, {p.shape}")
    m = None if mask is None else as_numpy(mask, dtype=bool)
    k = t.shape[1] if max_slots is None else min(int(max_slots), t.shape[1])
    t, p = t[:, :k], p[:, :k]
    m = None if m is None else m[:, :k]
    r_true = circular_correlation_matrix(t, m, min_count=min_count)
    r_pred = circular_correlation_matrix(p, m, min_count=min_count)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("true", "reconstructed"), horizontal_spacing=0.08)
    for c, r in enumerate((r_true, r_pred)):
        fig.add_trace(go.Heatmap(z=r, zmin=-1, zmax=1, colorscale="RdBu", reversescale=True,
                                 showscale=c == 1, colorbar={"title": "\u03c1"},
                                 hovertemplate="slot %{y} vs %{x}: \u03c1 = %{z:.2f}<extra></extra>"),
                      row=1, col=c + 1)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{c + 1 if c else ''}", row=1, col=c + 1)
        fig.update_xaxes(title_text="slot", row=1, col=c + 1)
    fig.update_layout(title=title, height=460)
    return fig
