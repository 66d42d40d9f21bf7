"""QM9 metrics of a trained VAE: angular errors, the trivial baseline beside them,
and the geometric error of molecules rebuilt from decoded torsions.

Reconstructions decode the posterior location (the latent mean), so the numbers
measure the learned code, not sampling noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.base import DatasetBundle, Split
from ..models import VAE
from .angles import (angles_from_cos_sin, angular_error_summary, baseline_circular_means,
                     baseline_predictions, circular_correlation_matrix, error_by_true_angle)


def correlation_structure(true: np.ndarray, pred: np.ndarray, mask: np.ndarray,
                          slots: int = 24) -> dict[str, float]:
    """How well the reconstruction keeps the angles' circular correlations.

    Over the first ``slots`` positions: the mean per-slot circular correlation of
    true with reconstructed angles (the diagonal of the cross matrix), and the mean
    absolute difference between the true and the reconstructed slot-by-slot
    correlation matrices (off-diagonal entries both defined).
    """
    k = min(slots, true.shape[1])
    t, p, m = true[:, :k], pred[:, :k], mask[:, :k]
    cross = np.diag(circular_correlation_matrix(t, m, other=p, other_mask=m))
    r_true = circular_correlation_matrix(t, m)
    r_pred = circular_correlation_matrix(p, m)
    off = ~np.eye(k, dtype=bool) & np.isfinite(r_true) & np.isfinite(r_pred)
    return {"circular_corr_true_vs_pred": float(np.nanmean(cross)) if np.isfinite(cross).any() else float("nan"),
            "correlation_structure_mad": float(np.abs(r_true - r_pred)[off].mean()) if off.any() else float("nan"),
            "correlation_slots": k}


@torch.no_grad()
def decode_angles(model: VAE, x: torch.Tensor, device: str | torch.device = "cpu",
                  batch_size: int = 4096) -> np.ndarray:
    """Decoded torsion angles (N, K) in degrees, from each input's posterior location."""
    model.eval()
    outs = []
    for i in range(0, x.shape[0], batch_size):
        xb = x[i:i + batch_size].to(device).to(next(model.parameters()).dtype)
        z = model.latent.location(model.encode(xb))
        outs.append(model.decode_mean(z).double().cpu().numpy())
    return angles_from_cos_sin(np.concatenate(outs, 0) if outs else np.zeros((0, x.shape[1])))


def true_angles(split: Split) -> np.ndarray:
    return angles_from_cos_sin(split.x.double().numpy())


def baseline_angles(bundle: DatasetBundle, n: int) -> np.ndarray:
    """The trivial baseline: each slot's circular mean over the training split."""
    means = baseline_circular_means(true_angles(bundle.train), bundle.train.mask.numpy())
    return baseline_predictions(means, n)


def rmsd_sample(bundle: DatasetBundle, split: Split, predicted: np.ndarray, n: int = 50,
                seed: int = 0) -> dict[str, float]:
    """Heavy-atom RMSD (Å) of molecules rebuilt from ``predicted`` torsions.

    Ring torsions keep their true values (see ``ccvae.chemistry``). ``n`` test
    molecules with at least one non-ring torsion are drawn in a fixed seeded
    order (each rebuild costs ~1 ms), the same molecules for model and baseline.
    """
    from ..chemistry import rebuild_from_torsions
    from ..data.qm9 import get_molecule

    rng = np.random.default_rng(seed)
    rmsds = []
    # Molecules whose torsions are all in rings cannot move (RMSD = 0 exactly);
    # they are skipped so the statistic measures molecules the decoder can change.
    for row in rng.permutation(len(split)):
        if len(rmsds) >= n:
            break
        mol = get_molecule(int(split.index[row]), source=bundle)
        t = mol.torsions
        k = min(len(t), predicted.shape[1])
        if k == 0 or bool(np.all(t.in_ring[:k])):
            continue
        rec = rebuild_from_torsions(mol.mol, t.atoms[:k], predicted[row, :k])
        rmsds.append(rec.rmsd)
    arr = np.asarray(rmsds)
    return {"median": float(np.median(arr)) if arr.size else float("nan"),
            "mean": float(arr.mean()) if arr.size else float("nan"), "n": int(arr.size)}


def angle_metrics(model: VAE, bundle: DatasetBundle, test: Split, *, device: str | torch.device = "cpu",
                  rmsd_molecules: int = 50, seed: int = 0) -> dict[str, Any]:
    """Flat metrics for metrics.json: model and baseline side by side."""
    true = true_angles(test)
    mask = test.mask.numpy()
    pred = decode_angles(model, test.x, device=device)
    base = baseline_angles(bundle, len(test))
    ours, triv = angular_error_summary(pred, true, mask), angular_error_summary(base, true, mask)
    out: dict[str, Any] = {
        "angle_mae_deg": ours["mean_deg"], "angle_median_deg": ours["median_deg"],
        "angle_rms_deg": ours["rms_deg"],
        "baseline_angle_mae_deg": triv["mean_deg"], "baseline_angle_median_deg": triv["median_deg"],
        "n_angles": ours["n"],
    }
    out.update(correlation_structure(true, pred, mask))
    bins = error_by_true_angle(pred, true, mask)
    out["angle_error_by_true_angle"] = {"lo": list(map(float, bins.lo)), "hi": list(map(float, bins.hi)),
                                        "label": list(bins.label), "mean_deg": [float(v) for v in bins.mean_deg],
                                        "count": [int(c) for c in bins.count]}
    if rmsd_molecules and bundle.extras.get("arrays") is not None:
        r = rmsd_sample(bundle, test, pred, n=rmsd_molecules, seed=seed)
        b = rmsd_sample(bundle, test, base, n=rmsd_molecules, seed=seed)
        out.update({"rmsd_median_A": r["median"], "rmsd_mean_A": r["mean"],
                    "baseline_rmsd_median_A": b["median"], "baseline_rmsd_mean_A": b["mean"],
                    "rmsd_molecules": r["n"]})
    return out
