"""Structures from coordinates, and rebuilt from decoded torsions (ccvae.chemistry)."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem, rdMolTransforms

from ccvae.chemistry import (
    BOND_METHOD_DEFAULT,
    BOND_METHOD_HUECKEL,
    heavy_atom_rmsd,
    mol_from_graph,
    mol_from_xyz,
    rebuild_from_torsions,
)
from ccvae.data.qm9_sources import find_qm9pack_data_dir, parse_record
from ccvae.data.torsions import featurise_torsions, wrap_degrees
from ccvae.errors import DataError


def embedded(smiles: str, seed: int = 1) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    return mol


def qm9_raw(index: int, part: int = 1):
    """One molecule read straight from qm9pack's CSV number ``part`` (part 1 holds
    indices up to about 43,000)."""
    import csv

    lines = (find_qm9pack_data_dir() / f"qm9_part{part}.csv").read_bytes().split(b"\n")
    cols = next(csv.reader([lines[0].decode()]))
    layout = [cols.index(c) for c in ("Index", "SMILES", "Elements", "XYZ_Ang")]
    for line in lines[1:]:
        if line and int(line.split(b",", 2)[1]) == index:
            return parse_record(line, index, layout)
    raise AssertionError(index)


def kabsch_rmsd(p: np.ndarray, q: np.ndarray) -> float:
    """Independent reference: RMSD after optimal rotation (Kabsch, with reflection fix)."""
    p, q = p - p.mean(0), q - q.mean(0)
    u, _, vt = np.linalg.svd(p.T @ q)
    d = np.sign(np.linalg.det(u @ vt))
    r = u @ np.diag([1, 1, d]) @ vt
    return float(np.sqrt(((p @ r - q) ** 2).sum(1).mean()))


# ---- bond perception ---------------------------------------------------------------


def test_mol_from_xyz_perceives_bonds_and_keeps_coordinates() -> None:
    ref = embedded("CC(=O)NC")
    z = [a.GetAtomicNum() for a in ref.GetAtoms()]
    pos = ref.GetConformer().GetPositions()
    mol, method = mol_from_xyz(z, pos)
    assert method == BOND_METHOD_DEFAULT
    assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == Chem.MolToSmiles(Chem.MolFromSmiles("CC(=O)NC"))
    np.testing.assert_array_equal(mol.GetConformer().GetPositions(), pos)


def test_hueckel_retry_for_a_strained_bicycle_and_quiet_console(capfd) -> None:
    raw = qm9_raw(105)  # C1C2CC1C2: connect-the-dots bonds the two bridgeheads
    mol, method = mol_from_xyz(raw.z, raw.pos)
    assert method == BOND_METHOD_HUECKEL
    assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == Chem.CanonSmiles("C1C2CC1C2")
    out, err = capfd.readouterr()
    assert "Warning" not in out + err and "valence" not in out + err


def test_bond_perception_failure_names_both_attempts() -> None:
    # One of the two QM9 molecules that no method can bond (a nitrogen with no
    # valid valence either way).
    raw = qm9_raw(133831, part=3)
    with pytest.raises(DataError, match="bond perception failed: DetermineBonds .*useHueckel=True"):
        mol_from_xyz(raw.z, raw.pos)
    with pytest.raises(DataError, match="2 atomic numbers but 1 coordinate rows"):
        mol_from_xyz([6, 1], [[0, 0, 0]])


def test_mol_from_graph_round_trip_with_charges() -> None:
    ref = embedded("C[NH3+].[O-]C=O")  # charged atoms survive the round trip
    bonds = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in ref.GetBonds()])
    codes = np.array([{1.0: 1, 2.0: 2, 3.0: 3, 1.5: 4}[b.GetBondTypeAsDouble()] for b in ref.GetBonds()])
    charges = np.array([a.GetFormalCharge() for a in ref.GetAtoms()])
    mol = mol_from_graph([a.GetAtomicNum() for a in ref.GetAtoms()], ref.GetConformer().GetPositions(),
                         bonds, codes, charges)
    assert Chem.MolToSmiles(mol) == Chem.MolToSmiles(ref)


# ---- rebuilding from torsions ------------------------------------------------------


@pytest.mark.parametrize("smiles", ["CCCC", "CC(O)C1CC(N)C(=O)C1", "OCC(=O)NC", "CC1(C)CC1C=O"])
def test_true_torsions_give_the_structure_back(smiles: str) -> None:
    mol = embedded(smiles)
    t = featurise_torsions(mol)
    r = rebuild_from_torsions(mol, t.atoms, t.angles)
    assert r.rmsd < 1e-6 and r.rmsd_all_atoms < 1e-6
    assert r.n_set + r.n_ring_skipped == len(t)
    assert r.n_ring_skipped == int(t.in_ring.sum())
    assert r.n_bonds_rotated == len({tuple(sorted(q[1:3])) for q, ring in zip(t.atoms.tolist(), t.in_ring) if not ring})
    # The input is left untouched.
    assert featurise_torsions(mol).angles.tolist() == t.angles.tolist()


def test_true_torsions_on_qm9_molecules_from_the_featuriser() -> None:
    for index in (14, 2000, 30000):
        raw = qm9_raw(index)
        mol, _ = mol_from_xyz(raw.z, raw.pos)
        t = featurise_torsions(mol)
        assert rebuild_from_torsions(mol, t.atoms, t.angles).rmsd < 1e-6


def test_setting_one_bond_moves_only_that_bond_and_rings_keep_true_values() -> None:
    mol = embedded("CC(O)C1CC(N)C(=O)C1")
    t = featurise_torsions(mol)
    free = [k for k in range(len(t)) if not t.in_ring[k] and t.heavy[k]]  # moves heavy atoms
    bond = {int(t.atoms[free[0], 1]), int(t.atoms[free[0], 2])}
    on_bond = np.array([{int(q[1]), int(q[2])} == bond for q in t.atoms])
    target = t.angles.copy()
    target[on_bond] += 40.0
    target[t.in_ring] += 90.0  # ring torsions are not set: these values are ignored
    r = rebuild_from_torsions(mol, t.atoms, target)
    conf = r.mol.GetConformer()
    got = np.array([rdMolTransforms.GetDihedralDeg(conf, *map(int, q)) for q in t.atoms])
    np.testing.assert_allclose(wrap_degrees(got - t.angles)[on_bond], 40.0, atol=1e-6)
    np.testing.assert_allclose(wrap_degrees(got - t.angles)[~on_bond], 0.0, atol=1e-6)
    assert r.rmsd > 0.01
    # The reported RMSD is the heavy-atom Kabsch RMSD (independent numpy reference).
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    ref = kabsch_rmsd(r.mol.GetConformer().GetPositions()[heavy], mol.GetConformer().GetPositions()[heavy])
    assert r.rmsd == pytest.approx(ref, abs=1e-6)
    allref = kabsch_rmsd(r.mol.GetConformer().GetPositions(), mol.GetConformer().GetPositions())
    assert r.rmsd_all_atoms == pytest.approx(allref, abs=1e-6)


def test_inconsistent_torsions_of_one_bond_use_their_circular_mean() -> None:
    mol = embedded("CC")  # nine H-C-C-H torsions, one bond
    t = featurise_torsions(mol)
    # Symmetric about 40 degrees; two point the opposite way (-140), which shortens
    # the resultant but does not turn it: the circular mean is exactly 40 (an
    # arithmetic mean of the raw numbers would be 38.9 or 40 + 80 / 9, not 40).
    shifts = np.array([30, 50, 40, 35, 45, 40, -140, 220, 40], dtype=float)
    r = rebuild_from_torsions(mol, t.atoms, t.angles + shifts)
    conf = r.mol.GetConformer()
    got = np.array([rdMolTransforms.GetDihedralDeg(conf, *map(int, q)) for q in t.atoms])
    np.testing.assert_allclose(wrap_degrees(got - t.angles), 40.0, atol=1e-6)
    assert r.n_bonds_rotated == 1 and r.rmsd == pytest.approx(0.0, abs=1e-6)  # two heavy atoms
    assert r.rmsd_all_atoms > 0.1


def test_molecule_without_torsions_rebuilds_to_itself() -> None:
    mol = embedded("C")
    r = rebuild_from_torsions(mol, np.zeros((0, 4), dtype=int), np.zeros(0))
    assert r.rmsd == 0.0 and r.n_set == 0 and r.n_ring_skipped == 0


def test_rebuild_input_errors() -> None:
    mol = embedded("CCCC")
    t = featurise_torsions(mol)
    with pytest.raises(ValueError, match="27 torsions .* 26 values"):
        rebuild_from_torsions(mol, t.atoms, t.angles[:-1])
    with pytest.raises(ValueError, match="NaN"):
        rebuild_from_torsions(mol, t.atoms, np.full(len(t), np.nan))
    with pytest.raises(ValueError, match="outside"):
        rebuild_from_torsions(mol, t.atoms + 100, t.angles)
    with pytest.raises(ValueError, match="not bonded"):
        rebuild_from_torsions(mol, np.array([[0, 1, 3, 2]]), np.array([10.0]))


def test_heavy_atom_rmsd_is_zero_for_a_rigid_motion() -> None:
    mol = embedded("CC(O)C=O")
    moved = Chem.Mol(mol)
    conf = moved.GetConformer()
    rot = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=float)
    conf.SetPositions(mol.GetConformer().GetPositions() @ rot.T + [1.0, 2.0, 3.0])
    assert heavy_atom_rmsd(moved, mol) < 1e-6  # RDKit sums squares: ~1e-7 rounding floor
