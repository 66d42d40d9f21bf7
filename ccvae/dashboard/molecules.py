"""What the Molecules page computes: encode one QM9 molecule's torsions, decode them,
rebuild the 3-D structure from the decoded angles, and the per-angle errors.

The structure rebuild is ``ccvae.chemistry.rebuild_from_torsions`` (rotatable bonds
set to the decoded torsions, ring torsions kept, heavy-atom RMSD after alignment);
the angle arithmetic is ``ccvae.evaluation.angles``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..evaluation.angles import absolute_angular_error, angles_from_cos_sin
from .catalog import EvalData


@dataclass
class MoleculeReconstruction:
    """One molecule through the VAE.

    molecule:   the ``ccvae.data.qm9.QM9Molecule`` (RDKit mol with its DFT conformer).
    true_deg:   (n,) its torsions (the first n = min(T, K) that the model sees).
    pred_deg:   (n,) the decoded torsions.
    error_deg:  (n,) |circular difference|.
    rebuilt:    ``ccvae.chemistry.Reconstruction`` (rmsd, n_set, n_ring_skipped, mol).
    in_test:    whether the molecule is in the checkpoint's test split.
    n_truncated: torsions beyond the model's K slots (kept at their true values).
    """

    molecule: Any
    true_deg: np.ndarray
    pred_deg: np.ndarray
    error_deg: np.ndarray
    rebuilt: Any
    in_test: bool
    n_truncated: int

    def table(self) -> list[dict[str, Any]]:
        """The per-angle error table: atoms (a-b-c-d with elements), true, decoded, error."""
        mol = self.molecule.mol
        t = self.molecule.torsions
        rows = []
        for k in range(len(self.true_deg)):
            a, b, c, d = (int(i) for i in t.atoms[k])
            sym = lambda i: f"{mol.GetAtomWithIdx(i).GetSymbol()}{i}"
            rows.append({"slot": k, "atoms": "-".join(sym(i) for i in (a, b, c, d)),
                         "true (deg)": round(float(self.true_deg[k]), 1),
                         "decoded (deg)": round(float(self.pred_deg[k]), 1),
                         "|error| (deg)": round(float(self.error_deg[k]), 1),
                         "ring bond": bool(t.in_ring[k]), "heavy atoms": bool(t.heavy[k])})
        return rows


def qm9_bundle(data: EvalData):
    if data.dataset != "qm9" or data.bundle is None or "arrays" not in data.extras:
        raise DataError("the Molecules page needs a checkpoint trained on QM9")
    return data.bundle


def test_molecule_index(data: EvalData, row: int) -> int:
    """The QM9 index of test row ``row``."""
    if not 0 <= int(row) < len(data.split):
        raise ConfigError(f"test molecule must be in 0..{len(data.split) - 1}, got {row}")
    return int(data.split.index[int(row)])


def find_molecule(data: EvalData, *, qm9_index: int | None = None, smiles: str | None = None):
    """A molecule of the checkpoint's data by QM9 index or SMILES (DataError if absent)."""
    from ..data.qm9 import get_molecule

    bundle = qm9_bundle(data)
    if smiles is not None:
        smiles = smiles.strip()
        if not smiles:
            raise DataError("type a SMILES string, e.g. CCO")
        return get_molecule(smiles=smiles, source=bundle)
    return get_molecule(index=int(qm9_index), source=bundle)


@torch.no_grad()
def reconstruct(model, data: EvalData, molecule) -> MoleculeReconstruction:
    """Encode the molecule's torsions (posterior location), decode, rebuild the structure."""
    from ..chemistry import rebuild_from_torsions

    torsions = molecule.require_torsions()
    k = int(data.extras.get("max_torsions", model.config.input_dim // 2))
    x, mask = molecule.padded(k)
    xt = torch.from_numpy(x)[None].to(next(model.parameters()).dtype)
    decoded = model.decode_mean(model.latent_means(xt)).float().cpu().numpy()[0]
    pred_all = angles_from_cos_sin(decoded)
    n = int(mask.sum())
    true = np.asarray(torsions.angles[:n], dtype=np.float64)
    pred = np.asarray(pred_all[:n], dtype=np.float64)
    err = absolute_angular_error(pred, true)
    rebuilt = rebuild_from_torsions(molecule.mol, torsions.atoms[:n], pred)
    in_test = bool((data.split.index == int(molecule.index)).any())
    return MoleculeReconstruction(molecule, true, pred, err, rebuilt, in_test, len(torsions) - n)


@torch.no_grad()
def test_set_angles(model, data: EvalData, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true, decoded, mask) angles in degrees, (N, K) each, for the whole test split."""
    qm9_bundle(data)
    x = data.split.x
    out = []
    for i in range(0, x.shape[0], batch_size):
        xb = x[i:i + batch_size].to(next(model.parameters()).dtype)
        out.append(model.decode_mean(model.latent_means(xb)).float().cpu())
    decoded = torch.cat(out).numpy() if out else np.zeros_like(x.numpy())
    mask = data.split.mask.numpy().astype(bool)
    return angles_from_cos_sin(x.numpy()), angles_from_cos_sin(decoded), mask
