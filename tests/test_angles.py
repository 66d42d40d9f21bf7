"""Angular metrics (ccvae.evaluation.angles) against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ccvae.evaluation.angles import (
    absolute_angular_error,
    angles_from_cos_sin,
    angular_error_summary,
    baseline_circular_means,
    baseline_predictions,
    circular_correlation,
    circular_correlation_matrix,
    circular_difference,
    circular_mean,
    cos_sin_from_angles,
    error_by_true_angle,
)


def test_circular_difference_hand_values() -> None:
    pred = np.array([179.0, -179.0, 10.0, 0.0, 180.0, 90.0, 720.5])
    true = np.array([-179.0, 179.0, 350.0, 180.0, 0.0, -90.0, 0.0])
    np.testing.assert_allclose(circular_difference(pred, true), [-2.0, 2.0, 20.0, 180.0, 180.0, 180.0, 0.5])
    np.testing.assert_allclose(absolute_angular_error(pred, true), [2, 2, 20, 180, 180, 180, 0.5])
    with pytest.raises(ValueError, match="shape"):
        circular_difference(np.zeros(3), np.zeros(4))


def test_summary_uses_only_masked_slots() -> None:
    true = np.array([[10.0, 170.0, 0.0], [-170.0, 0.0, 50.0]])
    pred = np.array([[20.0, -170.0, 99.0], [170.0, 30.0, 50.0]])
    mask = np.array([[True, True, False], [True, True, True]])
    # real errors: 10, 20, 20, 30, 0 -> mean 16, median 20, rms sqrt(1800/5)
    s = angular_error_summary(pred, true, mask)
    assert s["n"] == 5
    assert s["mean_deg"] == pytest.approx(16.0)
    assert s["median_deg"] == pytest.approx(20.0)
    assert s["rms_deg"] == pytest.approx(math.sqrt((100 + 400 + 400 + 900 + 0) / 5))
    # torch tensors work the same
    t = angular_error_summary(torch.tensor(pred), torch.tensor(true), torch.tensor(mask))
    assert t["mean_deg"] == pytest.approx(16.0)
    empty = angular_error_summary(pred, true, np.zeros_like(mask))
    assert empty["n"] == 0 and math.isnan(empty["mean_deg"])
    with pytest.raises(ValueError, match="mask"):
        angular_error_summary(pred, true, mask[:, :2])


def test_cos_sin_layout_round_trip() -> None:
    angles = np.array([[0.0, 90.0, 180.0], [-90.0, 45.0, -135.0]])
    x = cos_sin_from_angles(angles)
    np.testing.assert_allclose(x[0], [1, 0, 0, 1, -1, 0], atol=1e-15)  # [c0, s0, c1, s1, ...]
    np.testing.assert_allclose(angles_from_cos_sin(x), angles, atol=1e-12)
    # unnormalised decoder outputs decode the same
    np.testing.assert_allclose(angles_from_cos_sin(3 * x), angles, atol=1e-12)
    with pytest.raises(ValueError, match="odd"):
        angles_from_cos_sin(np.zeros((2, 5)))


def test_error_by_true_angle_keeps_the_seam_bins_apart() -> None:
    true = np.array([-179.0, -175.0, 179.0, 180.0, 0.0, 5.0, -100.0])
    pred = np.array([179.0, -165.0, -179.0, 170.0, 4.0, 5.0, -100.0])
    bins = error_by_true_angle(pred, true, bin_width=20.0, edge_width=10.0)
    assert bins.label[0] == "near -180" and bins.label[-1] == "near +180"
    assert bins.wrap_edge.tolist() == [True] + [False] * (len(bins.label) - 2) + [True]
    assert bins.lo[0] == -180 and bins.hi[0] == -170 and bins.lo[-1] == 170 and bins.hi[-1] == 180
    # near -180: errors 2 (across the seam) and 10; near +180: 2 and 10
    assert bins.count[0] == 2 and bins.mean_deg[0] == pytest.approx(6.0)
    assert bins.count[-1] == 2 and bins.mean_deg[-1] == pytest.approx(6.0)
    mid = bins.label.index("[-10, 10)")
    assert bins.count[mid] == 2 and bins.mean_deg[mid] == pytest.approx(2.0)
    assert bins.count.sum() == len(true)
    assert np.isnan(bins.mean_deg[bins.count == 0]).all()
    masked = error_by_true_angle(pred, true, np.array([0, 0, 1, 1, 1, 1, 1], dtype=bool))
    assert masked.count[0] == 0 and masked.count.sum() == 5


def test_circular_mean_hand_values() -> None:
    assert circular_mean(np.array([350.0, 10.0])) == pytest.approx(0.0, abs=1e-12)
    assert circular_mean(np.array([170.0, -170.0])) == pytest.approx(180.0)
    assert circular_mean(np.array([0.0, 90.0])) == pytest.approx(45.0)
    a = np.array([[10.0, 80.0], [30.0, 100.0], [999.0, 120.0]])
    m = np.array([[1, 1], [1, 1], [0, 1]], dtype=bool)
    np.testing.assert_allclose(circular_mean(a, m, axis=0), [20.0, 100.0])


def _rho_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Jammalamadaka-SenGupta coefficient written out with Python loops."""
    ma = math.atan2(sum(math.sin(math.radians(x)) for x in a), sum(math.cos(math.radians(x)) for x in a))
    mb = math.atan2(sum(math.sin(math.radians(x)) for x in b), sum(math.cos(math.radians(x)) for x in b))
    sa = [math.sin(math.radians(x) - ma) for x in a]
    sb = [math.sin(math.radians(x) - mb) for x in b]
    return sum(x * y for x, y in zip(sa, sb)) / math.sqrt(sum(x * x for x in sa) * sum(y * y for y in sb))


def test_circular_correlation_identities_and_reference() -> None:
    rng = np.random.default_rng(0)
    a = rng.vonmises(0.5, 2.0, 300) * 180 / np.pi
    assert circular_correlation(a, a + 77.0) == pytest.approx(1.0)  # rotation invariant
    assert circular_correlation(a, -a) == pytest.approx(-1.0)
    b = a + rng.normal(0, 40, 300)
    assert circular_correlation(a, b) == pytest.approx(_rho_reference(a, b), abs=1e-12)
    assert 0.2 < circular_correlation(a, b) < 0.95
    assert math.isnan(circular_correlation(np.full(10, 30.0), a[:10]))  # no spread


def test_circular_correlation_matrix_pairwise_masked() -> None:
    rng = np.random.default_rng(1)
    n, k = 120, 4
    base = rng.vonmises(0, 1.0, n) * 180 / np.pi
    angles = np.stack([base, base + 60 + rng.normal(0, 10, n), rng.uniform(-180, 180, n), -base], axis=1)
    mask = rng.random((n, k)) < 0.85
    r = circular_correlation_matrix(angles, mask, min_count=10)
    assert r.shape == (k, k)
    np.testing.assert_allclose(r, r.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(r), 1.0, atol=1e-12)
    # Entry (i, j): rows where both are real, each slot's mean over all its real rows.
    for i in range(k):
        for j in range(k):
            both = mask[:, i] & mask[:, j]
            mi = circular_mean(angles[mask[:, i], i])
            mj = circular_mean(angles[mask[:, j], j])
            si = np.sin(np.radians(angles[both, i] - mi))
            sj = np.sin(np.radians(angles[both, j] - mj))
            assert r[i, j] == pytest.approx((si * sj).sum() / np.sqrt((si**2).sum() * (sj**2).sum()), abs=1e-12)
    assert r[0, 1] > 0.8 and r[0, 3] < -0.95 and abs(r[0, 2]) < 0.3
    sparse = circular_correlation_matrix(angles, np.zeros_like(mask))
    assert np.isnan(sparse).all()
    # true vs reconstructed cross-correlation
    cross = circular_correlation_matrix(angles, mask, other=angles[:, :2], other_mask=mask[:, :2])
    np.testing.assert_allclose(cross, r[:, :2], atol=1e-12)


def test_trivial_baseline() -> None:
    train = np.array([[350.0, 100.0], [10.0, 120.0], [0.0, 0.0]])
    mask = np.array([[1, 1], [1, 1], [1, 0]], dtype=bool)
    means = baseline_circular_means(train, mask)
    np.testing.assert_allclose(means, [0.0, 110.0], atol=1e-12)
    pred = baseline_predictions(means, 3)
    assert pred.shape == (3, 2) and np.all(pred == means)
    test = np.array([[5.0, 100.0], [-10.0, -70.0]])
    s = angular_error_summary(baseline_predictions(means, 2), test)
    assert s["mean_deg"] == pytest.approx((5 + 10 + 10 + 180) / 4)
