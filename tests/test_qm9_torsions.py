"""The torsion featuriser (ccvae.data.torsions) against hand counts and RDKit."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem, rdMolTransforms

from ccvae.chemistry import mol_from_xyz
from ccvae.data.torsions import (
    dihedral_angles_deg,
    featurise_torsions,
    featurise_torsions_batch,
    torsion_paths,
    wrap_degrees,
)

# SMILES -> (torsions with hydrogens, heavy-atom torsions, ring torsions), counted by hand:
# every a-b-c-d over a bond b-c with a in N(b)-{c}, d in N(c)-{b}, a != d, b and c
# neither terminal nor linear (sp with two neighbours).
HAND_COUNTS = {
    "C": (0, 0, 0),  # methane: no bond with two non-terminal atoms
    "O": (0, 0, 0),  # water
    "C#C": (0, 0, 0),  # acetylene: linear
    "CC#CC": (0, 0, 0),  # 2-butyne: every central bond touches a linear carbon
    "CC#N": (0, 0, 0),  # acetonitrile
    "CC": (9, 0, 0),  # ethane: 3 x 3 H-C-C-H
    "CCO": (12, 0, 0),  # ethanol: C-C 3 x 3, C-O 3 x 1
    "CCCC": (27, 1, 0),  # butane: three bonds x 9; one C-C-C-C
    "OC=O": (2, 0, 0),  # formic acid: (O=, H)-C-O-H
    "C1CC1": (24, 0, 24),  # cyclopropane: 3 bonds x (9 - 1 for a == d)
    "c1ccccc1": (24, 6, 24),  # benzene: 6 bonds x 2 x 2, all in the ring
    "C=CC#N": (4, 0, 0),  # acrylonitrile: C=C gives H,H x H,C; C-C(#N) is linear
}


def embedded(smiles: str, seed: int = 7) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    return mol


def independent_paths(mol: Chem.Mol, heavy_only: bool = False) -> set[tuple[int, int, int, int]]:
    """Torsion paths enumerated the plain way (RDKit bond and neighbour loops),
    each path stored in its lexicographically smaller orientation."""
    sp = Chem.rdchem.HybridizationType.SP
    out = set()
    for bond in mol.GetBonds():
        b, c = bond.GetBeginAtom(), bond.GetEndAtom()
        if any(x.GetDegree() == 2 and x.GetHybridization() == sp for x in (b, c)):
            continue
        for a in b.GetNeighbors():
            for d in c.GetNeighbors():
                ai, bi, ci, di = a.GetIdx(), b.GetIdx(), c.GetIdx(), d.GetIdx()
                if ai == ci or di == bi or ai == di:
                    continue
                if heavy_only and min(x.GetAtomicNum() for x in (a, b, c, d)) == 1:
                    continue
                q = (ai, bi, ci, di)
                out.add(min(q, q[::-1]))
    return out


def as_set(atoms: np.ndarray) -> set[tuple[int, ...]]:
    return {min(tuple(map(int, q)), tuple(map(int, q[::-1]))) for q in atoms}


@pytest.mark.parametrize("smiles", sorted(HAND_COUNTS))
def test_counts_paths_and_angles_match_hand_and_rdkit(smiles: str) -> None:
    mol = embedded(smiles)
    t = featurise_torsions(mol)
    n_all, n_heavy, n_ring = HAND_COUNTS[smiles]
    assert len(t) == n_all
    assert int(t.heavy.sum()) == n_heavy
    assert int(t.in_ring.sum()) == n_ring
    assert as_set(t.atoms) == independent_paths(mol)
    heavy = featurise_torsions(mol, heavy_atoms_only=True)
    assert as_set(heavy.atoms) == independent_paths(mol, heavy_only=True)
    conf = mol.GetConformer()
    for q, angle, ring in zip(t.atoms, t.angles, t.in_ring):
        ref = rdMolTransforms.GetDihedralDeg(conf, *map(int, q))
        assert abs(wrap_degrees(angle - ref)) < 1e-8
        assert -180.0 < angle <= 180.0
        bond = mol.GetBondBetweenAtoms(int(q[1]), int(q[2]))
        assert bond is not None and bond.IsInRing() == ring


def test_heavy_view_is_the_heavy_subsequence() -> None:
    mol = embedded("CC(O)C1CC(N)C(=O)C1")
    full = featurise_torsions(mol)
    heavy = featurise_torsions(mol, heavy_atoms_only=True)
    np.testing.assert_array_equal(heavy.atoms, full.atoms[full.heavy])
    np.testing.assert_array_equal(heavy.angles, full.angles[full.heavy])
    assert 0 < len(heavy) < len(full)


def _hooh(h2: tuple[float, float, float]) -> Chem.Mol:
    """H-O-O-H with O-O along +z, the first H along +x: the dihedral is fixed by h2."""
    z = np.array([8, 8, 1, 1])
    pos = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.45], [0.95, 0.0, -0.3], h2])
    mol, _ = mol_from_xyz(z, pos)
    return mol


@pytest.mark.parametrize(
    "h2, expected",
    [
        ((0.0, 0.95, 1.75), 90.0),  # looking along O1 -> O2 (+z), x turns clockwise onto y
        ((0.0, -0.95, 1.75), -90.0),
        ((-0.95, 0.0, 1.75), 180.0),  # trans: +180, never -180
        ((0.95, 0.0, 1.75), 0.0),  # cis
    ],
)
def test_hand_checked_hydrogen_peroxide_dihedral(h2, expected) -> None:
    t = featurise_torsions(_hooh(h2))
    assert len(t) == 1
    assert t.angles[0] == pytest.approx(expected, abs=1e-9)
    assert abs(wrap_degrees(t.angles[0] - rdMolTransforms.GetDihedralDeg(_hooh(h2).GetConformer(), *map(int, t.atoms[0])))) < 1e-9


@pytest.mark.parametrize("smiles", ["CC(O)C1CC(N)C(=O)C1", "CCCC", "OCC(=O)NC", "c1ccccc1O", "CC1(C)CC1C#N", "FC(F)C=CO"])
def test_canonical_order_is_stable_under_renumbering(smiles: str) -> None:
    mol = embedded(smiles, seed=3)
    ref = featurise_torsions(mol)
    elements = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    rng = np.random.default_rng(11)
    for _ in range(4):
        perm = rng.permutation(mol.GetNumAtoms()).tolist()
        other = Chem.RenumberAtoms(mol, perm)  # new atom i is old atom perm[i]
        t = featurise_torsions(other)
        assert len(t) == len(ref)
        # Same angle at every position (the geometry is the same, only numbering moved).
        np.testing.assert_allclose(t.angles, ref.angles, atol=1e-9)
        # The same kind of torsion at every position: same elements in the same places.
        old_atoms = np.asarray(perm)[t.atoms]
        np.testing.assert_array_equal(elements[old_atoms], elements[ref.atoms])
        np.testing.assert_array_equal(t.in_ring, ref.in_ring)


def test_batch_equals_one_by_one() -> None:
    mols = [embedded(s, seed=5) for s in ("CCO", "C", "c1ccccc1O", "CC#N", "CCCC")]
    batch = featurise_torsions_batch(mols)
    assert batch.counts.tolist() == [len(featurise_torsions(m)) for m in mols]
    for got, m in zip(batch.split(), mols):
        one = featurise_torsions(m)
        np.testing.assert_array_equal(got.atoms, one.atoms)
        np.testing.assert_array_equal(got.angles, one.angles)


def test_geometric_linear_fallback_without_hybridisation() -> None:
    # An unsanitised copy has no perceived hybridisation: linearity comes from the
    # geometry (two neighbours at >= 150 degrees), with the same result.
    mol = embedded("CC#CC")
    raw = Chem.RWMol()
    for atom in mol.GetAtoms():
        raw.AddAtom(Chem.Atom(atom.GetAtomicNum()))
    for bond in mol.GetBonds():
        raw.AddBond(bond.GetBeginAtomIdx(), bond.GetEndAtomIdx(), Chem.BondType.SINGLE)
    bare = raw.GetMol()
    bare.AddConformer(Chem.Conformer(mol.GetConformer()), assignId=True)
    assert bare.GetAtomWithIdx(1).GetHybridization() == Chem.rdchem.HybridizationType.UNSPECIFIED
    assert len(torsion_paths(bare)[0]) == 0
    assert len(featurise_torsions(embedded("CCCC"))) == 27


def test_dihedral_formula_matches_rdkit_on_random_points() -> None:
    rng = np.random.default_rng(0)
    pos = rng.normal(size=(40, 3)) * 2
    quads = np.array([rng.choice(40, 4, replace=False) for _ in range(200)])
    mol = Chem.RWMol()
    for _ in range(40):
        mol.AddAtom(Chem.Atom(6))
    conf = Chem.Conformer(40)
    conf.SetPositions(pos)
    ref = np.array([rdMolTransforms.GetDihedralDeg(conf, *map(int, q)) for q in quads])
    got = dihedral_angles_deg(pos, quads)
    assert np.all(np.abs(wrap_degrees(got - ref)) < 1e-8)
    assert np.all((got > -180) & (got <= 180))


def test_wrap_degrees_half_open_interval() -> None:
    np.testing.assert_array_equal(
        wrap_degrees(np.array([-180.0, 180.0, 540.0, -190.0, 190.0, 0.0, -0.0, 359.0])),
        np.array([180.0, 180.0, 180.0, 170.0, -170.0, 0.0, 0.0, -1.0]),
    )


def test_molecule_without_conformer_is_rejected() -> None:
    with pytest.raises(ValueError, match="conformer"):
        featurise_torsions(Chem.AddHs(Chem.MolFromSmiles("CCO")))


def test_no_torsions_is_an_empty_result_not_an_error() -> None:
    t = featurise_torsions(embedded("C"))
    assert len(t) == 0 and t.atoms.shape == (0, 4) and t.angles.shape == (0,)
