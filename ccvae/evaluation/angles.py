"""Angular metrics for decoded torsions (QM9), on plain arrays.

All angles are in DEGREES. Inputs may be numpy arrays or torch tensors (they are
read as float64 numpy); outputs are numpy arrays, floats or dicts of them.
``mask`` arguments (bool, same shape as the angles) mark the real angle slots of a
padded batch (``Split.mask``); masked-out slots are ignored everywhere.

Definitions
-----------
circular difference
    d(a, b) = wrap(a - b) in (-180, 180]: the signed smallest rotation from b to a.
    |d| in [0, 180] is the absolute angular error (so -179 vs 179 is 2 degrees).
circular mean
    mean(theta) = atan2(sum sin theta, sum cos theta), the direction of the
    resultant vector (Mardia & Jupp 2000, sec. 2.2.1).
circular correlation (Jammalamadaka & SenGupta 2001, sec. 8.2; Jammalamadaka &
Sarma 1988)
    rho(a, b) = sum sin(a - mean a) sin(b - mean b) /
                sqrt(sum sin^2(a - mean a) * sum sin^2(b - mean b)),
    in [-1, 1]; it is invariant to rotating either sample and equals the ordinary
    correlation coefficient for small angles near their means.
trivial baseline
    predict, for every molecule, each slot's circular mean over the training split.
    Any model must beat it to have learnt something per molecule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "as_numpy",
    "wrap_degrees",
    "circular_difference",
    "absolute_angular_error",
    "angles_from_cos_sin",
    "cos_sin_from_angles",
    "angular_error_summary",
    "ErrorBins",
    "error_by_true_angle",
    "circular_mean",
    "circular_correlation",
    "circular_correlation_matrix",
    "baseline_circular_means",
    "baseline_predictions",
]


def as_numpy(a: Any, dtype: Any = np.float64) -> np.ndarray:
    """A numpy copy/view of an array or tensor (torch tensors are detached to CPU)."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=dtype)


def _mask_like(mask: Any, shape: tuple[int, ...], name: str = "mask") -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    m = as_numpy(mask, dtype=bool)
    if m.shape != shape:
        raise ValueError(f"`{name}` has shape {m.shape}, expected {shape} (one flag per angle)")
    return m


def wrap_degrees(angles: Any) -> np.ndarray:
    """Angles mapped onto (-180, 180] (-180 itself becomes +180)."""
    a = as_numpy(angles)
    wrapped = np.remainder(a + 180.0, 360.0) - 180.0  # [-180, 180)
    return np.where(wrapped <= -180.0, wrapped + 360.0, wrapped)


def circular_difference(pred: Any, true: Any) -> np.ndarray:
    """Signed circular difference wrap(pred - true) in (-180, 180], elementwise."""
    p, t = as_numpy(pred), as_numpy(true)
    if p.shape != t.shape:
        raise ValueError(f"`pred` has shape {p.shape} but `true` has shape {t.shape}")
    return wrap_degrees(p - t)


def absolute_angular_error(pred: Any, true: Any) -> np.ndarray:
    """|circular difference| in [0, 180], elementwise."""
    return np.abs(circular_difference(pred, true))


def angles_from_cos_sin(x: Any) -> np.ndarray:
    """Angles (N, K) in degrees from interleaved pairs x (N, 2K) = [c0, s0, c1, s1, ...].

    theta = atan2(s, c); the pairs need not have unit length (a decoder's raw
    output works). A (0, 0) padding pair gives atan2(0, 0) = 0: mask it out.
    """
    a = as_numpy(x)
    if a.shape[-1] % 2:
        raise ValueError(f"`x` must hold (cos, sin) pairs: last dimension {a.shape[-1]} is odd")
    pairs = a.reshape(*a.shape[:-1], a.shape[-1] // 2, 2)
    return wrap_degrees(np.degrees(np.arctan2(pairs[..., 1], pairs[..., 0])))


def cos_sin_from_angles(angles: Any) -> np.ndarray:
    """Interleaved (cos, sin) pairs (..., 2K) from angles (..., K) in degrees."""
    t = np.radians(as_numpy(angles))
    out = np.empty((*t.shape[:-1], 2 * t.shape[-1]))
    out[..., 0::2] = np.cos(t)
    out[..., 1::2] = np.sin(t)
    return out


def angular_error_summary(pred: Any, true: Any, mask: Any = None) -> dict[str, float]:
    """Mean, median, RMS and 90th percentile of |circular difference| over real slots.

    Returns {"mean_deg", "median_deg", "rms_deg", "p90_deg", "n"}; NaNs when no slot
    is real.
    """
    err = absolute_angular_error(pred, true)
    m = _mask_like(mask, err.shape)
    e = err[m]
    if e.size == 0:
        nan = float("nan")
        return {"mean_deg": nan, "median_deg": nan, "rms_deg": nan, "p90_deg": nan, "n": 0}
    return {
        "mean_deg": float(e.mean()),
        "median_deg": float(np.median(e)),
        "rms_deg": float(np.sqrt((e**2).mean())),
        "p90_deg": float(np.percentile(e, 90)),
        "n": int(e.size),
    }


@dataclass
class ErrorBins:
    """Absolute angular error grouped by the TRUE angle.

    lo, hi:      bin edges in degrees (a bin holds lo <= theta < hi; the last
                 holds theta == 180 too).
    label:       e.g. "near -180", "[-170, -150)", "near +180".
    wrap_edge:   True for the two bins at the +-180 seam (kept apart, never merged:
                 the seam is where only a spherical latent can in principle wrap).
    count, mean_deg, median_deg: per bin (NaN where empty).
    """

    lo: np.ndarray
    hi: np.ndarray
    label: list[str]
    wrap_edge: np.ndarray
    count: np.ndarray
    mean_deg: np.ndarray
    median_deg: np.ndarray

    def as_dict(self) -> dict[str, list]:
        return {
            "lo": self.lo.tolist(), "hi": self.hi.tolist(), "label": list(self.label),
            "wrap_edge": self.wrap_edge.tolist(), "count": self.count.tolist(),
            "mean_deg": self.mean_deg.tolist(), "median_deg": self.median_deg.tolist(),
        }


def _bin_edges(bin_width: float, edge_width: float) -> np.ndarray:
    if not (0 < edge_width < 180 and 0 < bin_width <= 360):
        raise ValueError(
            f"need 0 < edge_width < 180 and 0 < bin_width <= 360, got {edge_width}, {bin_width}"
        )
    inner_lo, inner_hi = -180.0 + edge_width, 180.0 - edge_width
    n_inner = max(1, int(np.ceil((inner_hi - inner_lo) / bin_width - 1e-9)))
    inner = np.linspace(inner_lo, inner_hi, n_inner + 1)
    return np.concatenate(([-180.0], inner, [180.0]))


def error_by_true_angle(
    pred: Any,
    true: Any,
    mask: Any = None,
    *,
    bin_width: float = 20.0,
    edge_width: float = 10.0,
) -> ErrorBins:
    """Absolute angular error binned by the true angle.

    Bins: [-180, -180 + edge_width) "near -180", then equal bins of about
    ``bin_width`` over the middle, then [180 - edge_width, 180] "near +180".
    """
    t = wrap_degrees(true)
    err = absolute_angular_error(pred, true)
    m = _mask_like(mask, err.shape)
    t, err = t[m], err[m]
    edges = _bin_edges(float(bin_width), float(edge_width))
    # digitize with right=False: edges[i-1] <= t < edges[i]; 180 joins the last bin.
    which = np.clip(np.digitize(t, edges[1:-1]), 0, len(edges) - 2)
    nb = len(edges) - 1
    count = np.bincount(which, minlength=nb)
    mean = np.full(nb, np.nan)
    median = np.full(nb, np.nan)
    for b in range(nb):
        sel = err[which == b]
        if sel.size:
            mean[b] = sel.mean()
            median[b] = np.median(sel)
    labels = [f"[{edges[i]:.0f}, {edges[i + 1]:.0f})" for i in range(nb)]
    labels[0], labels[-1] = "near -180", "near +180"
    wrap = np.zeros(nb, dtype=bool)
    wrap[[0, -1]] = True
    return ErrorBins(edges[:-1].copy(), edges[1:].copy(), labels, wrap, count, mean, median)


def circular_mean(angles: Any, mask: Any = None, axis: int = 0) -> np.ndarray:
    """Circular mean in degrees along ``axis`` over real slots; 0 where no slot is real
    or the resultant vanishes (atan2(0, 0) = 0: no preferred direction)."""
    t = np.radians(as_numpy(angles))
    m = _mask_like(mask, t.shape).astype(np.float64)
    s = (np.sin(t) * m).sum(axis=axis)
    c = (np.cos(t) * m).sum(axis=axis)
    return wrap_degrees(np.degrees(np.arctan2(s, c)))


def circular_correlation(a: Any, b: Any) -> float:
    """Jammalamadaka-SenGupta circular correlation of two paired samples (degrees).

    NaN when either sample has no spread about its mean (denominator 0).
    """
    x, y = np.radians(as_numpy(a).reshape(-1)), np.radians(as_numpy(b).reshape(-1))
    if x.shape != y.shape:
        raise ValueError(f"`a` and `b` must pair up: {x.size} vs {y.size} angles")
    sx = np.sin(x - np.radians(circular_mean(np.degrees(x))))
    sy = np.sin(y - np.radians(circular_mean(np.degrees(y))))
    den = np.sqrt((sx**2).sum() * (sy**2).sum())
    return float((sx * sy).sum() / den) if den > 0 else float("nan")


def circular_correlation_matrix(
    angles: Any, mask: Any = None, *, other: Any = None, other_mask: Any = None, min_count: int = 10
) -> np.ndarray:
    """Matrix of circular correlations between slots (columns) of ``angles`` (N, K).

    R[i, j] = rho(angles[:, i], other[:, j]) over the rows where both slots are
    real; ``other`` defaults to ``angles`` itself (so R is the slots' correlation
    structure; pass the reconstruction as ``other`` for true-vs-reconstructed
    cross-correlations). Each slot's circular mean is taken over all rows where it
    is real (not re-estimated per pair). Entries with fewer than ``min_count``
    shared rows, or no spread, are NaN.
    """
    a = as_numpy(angles)
    if a.ndim != 2:
        raise ValueError(f"`angles` must be (N, K), got shape {a.shape}")
    ma = _mask_like(mask, a.shape)
    if other is None:
        b, mb = a, ma
    else:
        b = as_numpy(other)
        if b.ndim != 2 or b.shape[0] != a.shape[0]:
            raise ValueError(f"`other` must be (N, K') with N = {a.shape[0]}, got {b.shape}")
        mb = _mask_like(other_mask, b.shape, "other_mask")
    fa, fb = ma.astype(np.float64), mb.astype(np.float64)
    sa = np.sin(np.radians(a - circular_mean(a, ma)[None, :])) * fa  # 0 where not real
    sb = np.sin(np.radians(b - circular_mean(b, mb)[None, :])) * fb
    num = sa.T @ sb
    den = np.sqrt((sa**2).T @ fb * (fa.T @ sb**2))  # sums over the rows shared by i and j
    count = fa.T @ fb
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    r[(den <= 0) | (count < min_count)] = np.nan
    return r


def baseline_circular_means(train_angles: Any, train_mask: Any = None) -> np.ndarray:
    """The trivial baseline: each slot's circular mean over the training split (K,)."""
    a = as_numpy(train_angles)
    if a.ndim != 2:
        raise ValueError(f"`train_angles` must be (N, K), got shape {a.shape}")
    return circular_mean(a, train_mask, axis=0)


def baseline_predictions(means: Any, n: int) -> np.ndarray:
    """The baseline's prediction for ``n`` molecules: the slot means repeated (n, K)."""
    m = as_numpy(means).reshape(1, -1)
    return np.repeat(m, int(n), axis=0)
