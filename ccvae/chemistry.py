"""RDKit structures: molecules from DFT coordinates, and rebuilt from decoded torsions.

Two jobs, both about one molecule's 3-D structure:

1. ``mol_from_xyz``: perceive bonds (connectivity, bond orders, formal charges) from
   atomic numbers and coordinates with ``rdDetermineBonds.DetermineBonds``
   (Kim & Kim 2015 bond orders). The default connect-the-dots connectivity
   wrongly bonds the close bridgehead atoms of strained bicycles (about 5 % of QM9);
   those are retried with extended-Hueckel connectivity (``useHueckel=True``). The
   DFT conformer is kept unchanged.

2. ``rebuild_from_torsions``: the per-molecule geometric error of a decoded torsion
   vector. Starting from a copy of the DFT structure, each rotatable (non-ring)
   bond b-c is turned so that its torsions take the decoded values; ring torsions
   cannot be set independently (turning one ring bond would tear the ring) so they
   keep their true values and are counted apart. The result is compared with the
   DFT structure by the heavy-atom RMSD after optimal superposition
   (``rdMolAlign.AlignMol``, Kabsch).

   Several torsions share one central bond (all a-d combinations, see
   ``ccvae.data.torsions``) but a bond has a single rotational degree of freedom.
   Turning the bond by delta changes each of its torsions by the same delta, so
   the rotation applied is the circular mean of the requested changes,
   delta = arg sum_k exp(i (theta_k_decoded - theta_k_true)), the least-squares
   choice on the circle. When decoded = true every change is 0 and the DFT
   structure comes back exactly (RMSD 0). A rotation about one non-ring bond is a
   rigid motion of the atoms on one side, so it leaves every torsion about the other
   bonds unchanged: the order in which bonds are set does not matter.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdDetermineBonds, rdMolAlign, rdMolTransforms

from ccvae.errors import DataError

__all__ = [
    "BOND_METHOD_DEFAULT",
    "BOND_METHOD_HUECKEL",
    "Reconstruction",
    "mol_from_xyz",
    "mol_from_graph",
    "heavy_atom_rmsd",
    "rebuild_from_torsions",
]

BOND_METHOD_DEFAULT = "connect-the-dots"
BOND_METHOD_HUECKEL = "hueckel"


_LIBC: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None)
    return _LIBC


@contextlib.contextmanager
def _quiet_console() -> Iterator[None]:
    """Silence C/C++ output on file descriptors 1 and 2 for the duration.

    RDKit's YAeHMOP (Hueckel) code prints '!!! Warning !!! Distance between atoms
    ... is suspicious' for every O-H bond of ~0.96 Angstrom; a featurisation of QM9
    would print thousands of them. The exception text of a real failure is kept
    by the caller, so nothing useful is lost.
    """
    libc = _libc()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in saved:
            os.dup2(devnull, fd)
        yield
    finally:
        libc.fflush(None)  # push C-level buffered output into /dev/null, not the console
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


_ELEMENT_SMILES = {1: "[H]", 6: "[C]", 7: "[N]", 8: "[O]", 9: "[F]"}


def _bare_mol(atomic_numbers: np.ndarray, positions: np.ndarray) -> Chem.Mol:
    """Unbonded atoms with the given coordinates, none with implicit hydrogens.

    QM9's elements (H, C, N, O, F) are built from a dot-separated SMILES of bracket
    atoms ("[C].[H].[H]"): RDKit parses it unsanitised about twice as fast as
    adding atoms one by one, and bracket atoms carry no implicit hydrogens, as
    wanted (every hydrogen is an explicit atom in QM9). Other elements take the
    slow path.
    """
    z = np.asarray(atomic_numbers, dtype=np.int64).reshape(-1)
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    if pos.shape[0] != z.shape[0]:
        raise DataError(
            f"mol_from_xyz: {z.shape[0]} atomic numbers but {pos.shape[0]} coordinate rows"
        )
    try:
        mol = Chem.MolFromSmiles(".".join(_ELEMENT_SMILES[int(zi)] for zi in z), sanitize=False)
    except KeyError:
        rw = Chem.RWMol()
        for zi in z:
            atom = Chem.Atom(int(zi))
            atom.SetNoImplicit(True)
            rw.AddAtom(atom)
        mol = rw.GetMol()
    if mol is None or mol.GetNumAtoms() != len(z):
        raise DataError(f"mol_from_xyz: could not create atoms from atomic numbers {z.tolist()}")
    conf = Chem.Conformer(len(z))
    conf.Set3D(True)
    conf.SetPositions(pos)
    mol.AddConformer(conf, assignId=True)
    return mol


def _perceive(mol: Chem.Mol, charge: int, hueckel: bool, stereo: bool) -> None:
    """DetermineBonds, then sanitisation (which rejects impossible valences)."""
    # embedChiral=True would sanitise and assign stereo from 3-D; we sanitise
    # ourselves and assign stereo only on request (it doubles the cost).
    rdDetermineBonds.DetermineBonds(mol, useHueckel=hueckel, charge=charge, embedChiral=False)
    Chem.SanitizeMol(mol)
    if stereo:
        Chem.AssignStereochemistryFrom3D(mol)


def mol_from_xyz(
    atomic_numbers: np.ndarray,
    positions: np.ndarray,
    *,
    charge: int = 0,
    stereo: bool = False,
    quiet: bool = True,
) -> tuple[Chem.Mol, str]:
    """An RDKit molecule (explicit H, DFT conformer) with bonds perceived from 3-D.

    Returns (mol, method) where method is ``BOND_METHOD_DEFAULT`` or, when that
    failed, ``BOND_METHOD_HUECKEL``. A perception "fails" when DetermineBonds raises
    or its result does not sanitise (e.g. a carbon with five bonds). Raises
    ``DataError`` (with both reasons) when both methods fail. ``stereo`` assigns
    chiral tags and double-bond stereo from the coordinates (not needed for
    torsions). ``quiet`` silences RDKit's log and the Hueckel code's console
    warnings.
    """
    base = _bare_mol(atomic_numbers, positions)
    mol = Chem.Mol(base)
    # RDKit logs a valence complaint for each failed attempt; the reason is kept
    # in the exception text instead.
    blocker = rdBase.BlockLogs() if quiet else None  # noqa: F841 (blocks while alive)
    try:
        _perceive(mol, int(charge), False, stereo)
        return mol, BOND_METHOD_DEFAULT
    except Exception as first:  # RDKit raises ValueError / RuntimeError variants
        reason1 = f"{type(first).__name__}: {first}"
    mol = Chem.Mol(base)
    try:
        with _quiet_console() if quiet else contextlib.nullcontext():
            _perceive(mol, int(charge), True, stereo)
        return mol, BOND_METHOD_HUECKEL
    except Exception as second:
        reason2 = f"{type(second).__name__}: {second}"
    raise DataError(
        f"bond perception failed: DetermineBonds ({reason1}); with useHueckel=True ({reason2})"
    )


_BOND_TYPES = {
    1: Chem.BondType.SINGLE,
    2: Chem.BondType.DOUBLE,
    3: Chem.BondType.TRIPLE,
    4: Chem.BondType.AROMATIC,
}
BOND_TYPE_CODES = {v: k for k, v in _BOND_TYPES.items()}


def mol_from_graph(
    atomic_numbers: np.ndarray,
    positions: np.ndarray,
    bonds: np.ndarray,
    bond_codes: np.ndarray,
    formal_charges: np.ndarray | None = None,
) -> Chem.Mol:
    """Rebuild a molecule whose bonds were perceived before (e.g. read from a cache).

    bonds: (B, 2) atom indices; bond_codes: (B,) 1 single, 2 double, 3 triple,
    4 aromatic (``BOND_TYPE_CODES``); formal_charges: (n_atoms,) or None.
    The result is sanitised, like the output of ``mol_from_xyz``.
    """
    base = _bare_mol(atomic_numbers, positions)
    rw = Chem.RWMol(base)
    if formal_charges is not None:
        for atom, q in zip(rw.GetAtoms(), np.asarray(formal_charges).reshape(-1)):
            atom.SetFormalCharge(int(q))
    for (i, j), code in zip(np.asarray(bonds).reshape(-1, 2), np.asarray(bond_codes).reshape(-1)):
        rw.AddBond(int(i), int(j), _BOND_TYPES[int(code)])
    mol = rw.GetMol()
    try:
        Chem.SanitizeMol(mol)
    except Exception as exc:
        raise DataError(f"mol_from_graph: the stored bonds do not sanitise ({exc})") from exc
    return mol


def _heavy_atoms(mol: Chem.Mol) -> list[int]:
    return [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]


def heavy_atom_rmsd(probe: Chem.Mol, reference: Chem.Mol) -> float:
    """Heavy-atom RMSD (Angstrom) after optimal superposition; moves ``probe``.

    Atoms are matched by index (the probe is a rebuilt copy of the reference, so no
    symmetry search is wanted: a swap of equivalent atoms is a real error here).
    With fewer than three heavy atoms the superposition of heavy atoms is
    ill-posed (a line can spin about itself) but their RMSD is still well defined
    after the best rigid fit; RDKit handles 1 and 2 points, we keep it.
    """
    heavy = _heavy_atoms(reference)
    if not heavy:  # e.g. H2: no heavy atom at all
        return 0.0
    return float(rdMolAlign.AlignMol(probe, reference, atomMap=[(i, i) for i in heavy]))


@dataclass
class Reconstruction:
    """Result of ``rebuild_from_torsions``.

    rmsd:           heavy-atom RMSD to the DFT structure after alignment (Angstrom).
    rmsd_all_atoms: the RMSD over all atoms, hydrogens included, after an all-atom
                    superposition (informative for molecules with few heavy atoms).
    n_set:          torsions around rotatable (non-ring) bonds, set from the decoding.
    n_ring_skipped: ring torsions, left at their true values.
    n_bonds_rotated: distinct non-ring central bonds that were turned.
    mol:            the rebuilt molecule, superposed on the DFT structure.
    """

    rmsd: float
    rmsd_all_atoms: float
    n_set: int
    n_ring_skipped: int
    n_bonds_rotated: int
    mol: Chem.Mol


def rebuild_from_torsions(
    mol: Chem.Mol, torsion_atoms: np.ndarray, angles_deg: np.ndarray, *, conf_id: int = -1
) -> Reconstruction:
    """Set decoded torsions on a copy of ``mol`` and measure the geometric error.

    mol:           molecule with its true (DFT) conformer; not modified.
    torsion_atoms: (T, 4) atom indices a, b, c, d (as ``Torsions.atoms``).
    angles_deg:    (T,) decoded angles in degrees (any real value; only the
                   direction matters).
    See the module docstring for how the torsions of one bond are combined.
    """
    quads = np.asarray(torsion_atoms, dtype=np.int64).reshape(-1, 4)
    target = np.asarray(angles_deg, dtype=np.float64).reshape(-1)
    if quads.shape[0] != target.shape[0]:
        raise ValueError(
            f"rebuild_from_torsions: {quads.shape[0]} torsions in `torsion_atoms` but "
            f"{target.shape[0]} values in `angles_deg`"
        )
    if not np.all(np.isfinite(target)):
        raise ValueError("rebuild_from_torsions: `angles_deg` contains NaN or infinity")
    n_atoms = mol.GetNumAtoms()
    if quads.size and (quads.min() < 0 or quads.max() >= n_atoms):
        raise ValueError(
            f"rebuild_from_torsions: `torsion_atoms` indexes atoms outside 0..{n_atoms - 1}"
        )
    rebuilt = Chem.Mol(mol, confId=conf_id) if conf_id != -1 else Chem.Mol(mol)
    reference = Chem.Mol(rebuilt)
    conf = rebuilt.GetConformer()

    n_set = n_ring = 0
    groups: dict[tuple[int, int], list[int]] = {}
    for k, (a, b, c, d) in enumerate(quads):
        bond = rebuilt.GetBondBetweenAtoms(int(b), int(c))
        if bond is None:
            raise ValueError(f"rebuild_from_torsions: atoms {b} and {c} are not bonded (torsion {k})")
        if bond.IsInRing():
            n_ring += 1
            continue
        n_set += 1
        # One group per bond, whichever way round its torsions are written.
        groups.setdefault((min(int(b), int(c)), max(int(b), int(c))), []).append(k)
    for ks in groups.values():
        # Changes requested for each torsion of this bond; their circular mean is
        # the single rotation that fits them best (module docstring). Reversing a
        # torsion (d-c-b-a) leaves its angle unchanged, so orientation is irrelevant.
        a0, b, c, d0 = (int(v) for v in quads[ks[0]])
        current = np.array(
            [rdMolTransforms.GetDihedralRad(conf, *(int(v) for v in quads[k])) for k in ks]
        )
        delta = np.radians(target[ks]) - current
        shift = float(np.arctan2(np.sin(delta).sum(), np.cos(delta).sum()))
        rdMolTransforms.SetDihedralRad(conf, a0, b, c, d0, float(current[0]) + shift)

    # All-atom RMSD with its own all-atom superposition (a copy, so that ``rebuilt``
    # ends up superposed on the heavy atoms, as the headline number is).
    rmsd_all = float(
        rdMolAlign.AlignMol(Chem.Mol(rebuilt), reference, atomMap=[(i, i) for i in range(n_atoms)])
    )
    rmsd = heavy_atom_rmsd(rebuilt, reference)
    return Reconstruction(
        rmsd=rmsd,
        rmsd_all_atoms=rmsd_all,
        n_set=n_set,
        n_ring_skipped=n_ring,
        n_bonds_rotated=len(groups),
        mol=rebuilt,
    )
