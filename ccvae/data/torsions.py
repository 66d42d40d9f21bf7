"""Proper torsion (dihedral) angles of one molecule, in a canonical order.

This is the featuriser behind the QM9 experiment of the post: each molecule becomes
the list of its torsion angles theta, which the VAE sees as (cos theta, sin theta)
pairs.

Definitions
-----------
Proper torsion
    A path of four distinct bonded atoms a-b-c-d. Its angle is the dihedral angle
    between the planes (a, b, c) and (b, c, d), with the IUPAC sign convention
    (positive = clockwise rotation of a onto d looking along b -> c), the same as
    ``rdkit.Chem.rdMolTransforms.GetDihedralDeg``::

        v1 = b - a,  v2 = c - b,  v3 = d - c
        theta = atan2(|v2| v1 . (v2 x v3), (v1 x v2) . (v2 x v3))

    reported in degrees in the half-open interval (-180, 180] (``wrap_degrees``).

Which torsions (all a-d combinations)
    Every bond b-c whose two atoms both have another neighbour (a "non-terminal"
    bond) contributes ALL combinations a in N(b) minus {c}, d in N(c) minus {b},
    a != d, with hydrogens included by default. This is what the post feeds its VAEs
    ("all the angles"), and it reproduces the counts in DESIGN.md on QM9: median 52
    torsions per molecule, 6.8 M in total (heavy atoms only: median 16). We do not
    keep one canonical a-d choice per bond: the several torsions of one bond are
    redundant for a rigid rotation, but they carry the local geometry (e.g. the
    three H-C-C-H angles of a methyl rotor) and that is the signal the post studies.

    Two kinds of path are left out, because their angle is not defined:

    - a == d (a three-membered ring a-b-c-a is not a torsion);
    - b or c is a linear atom: exactly two neighbours and sp-hybridised (alkyne and
      nitrile carbons, allene centres, ...). Then a-b-c or b-c-d is collinear and
      the dihedral is pure numerical noise of the DFT geometry. On molecules without
      perceived hybridisation (no bond orders) the fallback rule is geometric: two
      neighbours at an angle >= ``LINEAR_ANGLE_DEG``.
      This removes a few percent of QM9's paths (about 5 % of molecules contain
      a nitrile or alkyne).

``heavy_atoms_only=True`` keeps only the torsions whose four atoms are all heavy
(not hydrogen): the bond b-c must then have a heavy neighbour on each side.

Canonical order
---------------
Torsion i must mean the same kind of torsion whatever the atom numbering of the
input. Each torsion gets the key

    (r[b], r[c], r[a], r[d], theta)

where r are RDKit's canonical atom ranks WITHOUT tie breaking
(``Chem.CanonicalRankAtoms(mol, breakTies=False, includeChirality=False)``: atoms
that are symmetry-equivalent in the molecular graph share a rank), and each
torsion is first oriented (a-b-c-d or d-c-b-a, which have the same angle) so that
(r[b], r[c], r[a], r[d]) is the smaller tuple. Torsions are sorted by this key.
Torsions of the same kind in the graph (e.g. the nine H-C-C-H of ethane) tie on
the ranks and are ordered by their angle; tie-broken ranks (``breakTies=True``)
would instead depend on the input numbering. Every part of the key is invariant
under renumbering, so the angle sequence is too (tested with
``Chem.RenumberAtoms``). The heavy-atom list is the heavy subsequence of the full
list, so both views share one order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rdkit import Chem

__all__ = [
    "FEATURISER_VERSION",
    "LINEAR_ANGLE_DEG",
    "Torsions",
    "dihedral_angles_deg",
    "wrap_degrees",
    "torsion_paths",
    "TorsionBatch",
    "featurise_torsions",
    "featurise_torsions_batch",
]

#: Bump whenever anything that changes the featurised output changes (which
#: torsions, their order, the angle convention, the bond perception). The on-disk
#: QM9 cache key includes it, so a bump invalidates every cache.
FEATURISER_VERSION = 1

#: Fallback linearity rule (only for atoms whose hybridisation RDKit has not
#: perceived): an atom with two neighbours whose bond angle is at least this is
#: treated as linear. On a 3,000-molecule QM9 sample every sp atom sits at >= 150
#: degrees (99 % at >= 175) and no other atom with two neighbours exceeds 140.
LINEAR_ANGLE_DEG = 150.0


@dataclass(frozen=True)
class Torsions:
    """The torsions of one molecule, in canonical order.

    atoms:   int64 (T, 4) atom indices (a, b, c, d) of each torsion, oriented as in
             the canonical key (see the module docstring).
    angles:  float64 (T,) dihedral angles in degrees, in (-180, 180].
    heavy:   bool (T,) all four atoms are heavy (not hydrogen).
    in_ring: bool (T,) the central bond b-c is in a ring (such a torsion cannot be
             set independently; see ``ccvae.chemistry``).
    """

    atoms: np.ndarray
    angles: np.ndarray
    heavy: np.ndarray
    in_ring: np.ndarray

    def __len__(self) -> int:
        return int(self.angles.shape[0])

    def subset(self, keep: np.ndarray) -> Torsions:
        """The torsions where the boolean ``keep`` is True, order preserved."""
        keep = np.asarray(keep, dtype=bool)
        return Torsions(self.atoms[keep], self.angles[keep], self.heavy[keep], self.in_ring[keep])


def wrap_degrees(angles: np.ndarray) -> np.ndarray:
    """Map angles in degrees onto the half-open interval (-180, 180].

    -180 itself (which ``arctan2`` can return, for a -0.0 sine) becomes +180, so
    that each direction has exactly one representation.
    """
    a = np.asarray(angles, dtype=np.float64)
    wrapped = np.remainder(a + 180.0, 360.0) - 180.0  # [-180, 180)
    return np.where(wrapped <= -180.0, wrapped + 360.0, wrapped)


def dihedral_angles_deg(pos: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """Dihedral angles (degrees, in (-180, 180]) of the atom quadruples ``quads``.

    pos:   (n_atoms, 3) coordinates.
    quads: (T, 4) integer atom indices a, b, c, d.

    theta = atan2(|v2| v1 . (v2 x v3), (v1 x v2) . (v2 x v3)) with v1 = b - a,
    v2 = c - b, v3 = d - c (IUPAC sign, as RDKit's ``GetDihedralDeg``). The atan2
    form needs no clamp (an arccos of a normalised dot product loses precision near
    0 and 180 degrees and needs clipping to [-1, 1]). A collinear a-b-c gives
    atan2(0, 0) = 0: callers exclude linear atoms beforehand (``torsion_paths``).
    """
    pos = np.asarray(pos, dtype=np.float64)
    quads = np.asarray(quads, dtype=np.int64).reshape(-1, 4)
    if quads.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    p = pos[quads.T]  # (4, T, 3): coordinates of a, b, c, d
    v1 = (p[1] - p[0]).T  # (3, T): rows x, y, z (cheap row-wise algebra below)
    v2 = (p[2] - p[1]).T
    v3 = (p[3] - p[2]).T
    # n1 = v1 x v2 and n2 = v2 x v3, written out (np.cross is slow on small inputs).
    n1 = (v1[1] * v2[2] - v1[2] * v2[1], v1[2] * v2[0] - v1[0] * v2[2], v1[0] * v2[1] - v1[1] * v2[0])
    n2 = (v2[1] * v3[2] - v2[2] * v3[1], v2[2] * v3[0] - v2[0] * v3[2], v2[0] * v3[1] - v2[1] * v3[0])
    y = np.sqrt(v2[0] ** 2 + v2[1] ** 2 + v2[2] ** 2) * (v1[0] * n2[0] + v1[1] * n2[1] + v1[2] * n2[2])
    x = n1[0] * n2[0] + n1[1] * n2[1] + n1[2] * n2[2]
    return wrap_degrees(np.degrees(np.arctan2(y, x)))


def _is_linear(mol: Chem.Mol, i: int, nbrs: list[int], pos: np.ndarray) -> bool:
    """Atom i (with exactly the two neighbours ``nbrs``) is linear: see module doc."""
    hyb = mol.GetAtomWithIdx(i).GetHybridization()
    if hyb == Chem.rdchem.HybridizationType.SP:
        return True
    if hyb not in (Chem.rdchem.HybridizationType.UNSPECIFIED, Chem.rdchem.HybridizationType.OTHER):
        return False
    u = pos[nbrs[0]] - pos[i]
    v = pos[nbrs[1]] - pos[i]
    denom = float(np.linalg.norm(u) * np.linalg.norm(v))
    if denom == 0.0:  # coincident atoms: no direction, call it not linear
        return False
    # clip: rounding can push a normalised dot product just past -1.
    angle = np.degrees(np.arccos(np.clip(float(u @ v) / denom, -1.0, 1.0)))
    return bool(angle >= LINEAR_ANGLE_DEG)


@dataclass
class _Graph:
    """What the featuriser needs from one molecule (all indices local)."""

    bonds: np.ndarray  # int64 (B, 2), i < j
    linear: np.ndarray  # bool (n,)
    ring_bonds: np.ndarray  # int64 (R, 2) consecutive atoms of SSSR rings
    ranks: np.ndarray  # int64 (n,) canonical ranks without tie breaking
    heavy: np.ndarray  # bool (n,)
    pos: np.ndarray  # float64 (n, 3)


def _graph_of(mol: Chem.Mol, conf_id: int, atomic_numbers: np.ndarray | None) -> _Graph:
    if mol.GetNumConformers() == 0:
        raise ValueError("featurise_torsions: `mol` has no conformer (3-D coordinates needed)")
    n = mol.GetNumAtoms()
    pos = np.asarray(mol.GetConformer(conf_id).GetPositions(), dtype=np.float64).reshape(n, 3)
    rows, cols = np.nonzero(Chem.GetAdjacencyMatrix(mol))
    upper = rows < cols
    rows, cols = rows[upper], cols[upper]
    bonds = np.stack((rows, cols), axis=1).astype(np.int64)
    deg = np.bincount(bonds.reshape(-1), minlength=n)
    linear = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(deg == 2).tolist():
        nbrs = np.concatenate((cols[rows == i], rows[cols == i])).tolist()
        linear[i] = _is_linear(mol, i, nbrs, pos)
    # Ring bonds: consecutive atoms of the SSSR rings (every ring bond lies in one).
    rings = mol.GetRingInfo().AtomRings()
    ring_bonds = np.array(
        [(ring[k - 1], ring[k]) for ring in rings for k in range(len(ring))], dtype=np.int64
    ).reshape(-1, 2)
    if mol.NeedsUpdatePropertyCache():  # an unsanitised input: ranking needs valences
        mol.UpdatePropertyCache(strict=False)
    ranks = np.array(
        list(Chem.CanonicalRankAtoms(mol, breakTies=False, includeChirality=False)), dtype=np.int64
    )
    if atomic_numbers is None:
        atomic_numbers = [mol.GetAtomWithIdx(i).GetAtomicNum() for i in range(n)]
    heavy = np.asarray(atomic_numbers).reshape(-1) > 1
    return _Graph(bonds, linear, ring_bonds, ranks.reshape(n), heavy, pos)


def _enumerate_paths(n_atoms: int, bonds: np.ndarray, linear: np.ndarray) -> np.ndarray:
    """All paths a-b-c-d (a != d) over bonds b-c whose atoms are non-terminal and not
    linear: int64 (T, 4). ``bonds`` (B, 2) may hold several molecules at once (a
    block-diagonal graph), which is how the batch featuriser runs it."""
    if len(bonds) == 0:
        return np.zeros((0, 4), dtype=np.int64)
    src = np.concatenate((bonds[:, 0], bonds[:, 1]))
    dst = np.concatenate((bonds[:, 1], bonds[:, 0]))
    by_src = np.argsort(src, kind="stable")
    nbr = dst[by_src]  # neighbours of atom i: nbr[ptr[i]:ptr[i+1]]
    deg = np.bincount(src, minlength=n_atoms)
    ptr = np.concatenate(([0], np.cumsum(deg)))
    B, C = bonds[:, 0], bonds[:, 1]
    sel = (deg[B] > 1) & (deg[C] > 1) & ~linear[B] & ~linear[C]
    B, C = B[sel], C[sel]
    # Every (a, d) combination per central bond: combination t of bond k takes the
    # (t // deg c)-th neighbour of b and the (t % deg c)-th neighbour of c.
    n_c = deg[C]
    count = deg[B] * n_c
    k = np.repeat(np.arange(B.size), count)
    t = np.arange(k.size) - np.repeat(np.cumsum(count) - count, count)
    a = nbr[ptr[B[k]] + t // n_c[k]]
    d = nbr[ptr[C[k]] + t % n_c[k]]
    b, c = B[k], C[k]
    keep = (a != c) & (d != b) & (a != d)
    return np.stack((a, b, c, d), axis=1)[keep]


def torsion_paths(mol: Chem.Mol, *, conf_id: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """All proper torsion paths a-b-c-d of ``mol`` (hydrogens included), unordered.

    Returns (quads int64 (T, 4), in_ring bool (T,)). Excludes a == d and paths whose
    b or c is a linear atom (module docstring); conformer ``conf_id`` serves only
    the geometric fallback of the linearity rule.
    """
    g = _graph_of(mol, conf_id, None)
    quads = _enumerate_paths(len(g.linear), g.bonds, g.linear)
    return quads, _in_ring(quads, g.ring_bonds, len(g.linear))


def _in_ring(quads: np.ndarray, ring_bonds: np.ndarray, n_atoms: int) -> np.ndarray:
    """Whether each torsion's central bond b-c is a ring bond."""
    if len(ring_bonds) == 0 or len(quads) == 0:
        return np.zeros(len(quads), dtype=bool)
    lo, hi = np.minimum(ring_bonds[:, 0], ring_bonds[:, 1]), np.maximum(ring_bonds[:, 0], ring_bonds[:, 1])
    codes = lo * n_atoms + hi
    b, c = quads[:, 1], quads[:, 2]
    return np.isin(np.minimum(b, c) * n_atoms + np.maximum(b, c), codes)


@dataclass(frozen=True)
class TorsionBatch:
    """Canonical torsions of several molecules, concatenated.

    counts: int64 (M,) torsions per molecule; the others as in ``Torsions``, with
    atom indices local to each molecule, molecules one after the other.
    """

    counts: np.ndarray
    atoms: np.ndarray
    angles: np.ndarray
    heavy: np.ndarray
    in_ring: np.ndarray

    def split(self) -> list[Torsions]:
        cuts = np.cumsum(self.counts)[:-1]
        return [
            Torsions(a, g, h, r)
            for a, g, h, r in zip(
                np.split(self.atoms, cuts),
                np.split(self.angles, cuts),
                np.split(self.heavy, cuts),
                np.split(self.in_ring, cuts),
            )
        ]


def featurise_torsions_batch(
    mols: list[Chem.Mol],
    *,
    conf_id: int = -1,
    atomic_numbers: list[np.ndarray] | None = None,
) -> TorsionBatch:
    """The canonical torsions (hydrogens included) of each molecule in ``mols``.

    Same result as ``featurise_torsions`` on each molecule (which calls this with
    one molecule), but the path enumeration, dihedral angles and sorting run once
    over the block-diagonal graph of all molecules: per-molecule work is only
    what needs RDKit (bonds, rings, hybridisation, canonical ranks). Sorting key
    per torsion: (molecule, canonical rank key, angle), see the module docstring.
    """
    graphs = [
        _graph_of(m, conf_id, None if atomic_numbers is None else atomic_numbers[i])
        for i, m in enumerate(mols)
    ]
    sizes = np.array([len(g.linear) for g in graphs], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(sizes)))
    n_total = int(offsets[-1])
    if not graphs or n_total == 0:
        z = np.zeros(0, dtype=bool)
        return TorsionBatch(np.zeros(len(graphs), dtype=np.int64), np.zeros((0, 4), dtype=np.int64),
                            np.zeros(0), z, z.copy())
    bonds = np.concatenate([g.bonds + o for g, o in zip(graphs, offsets[:-1])])
    rings = np.concatenate([g.ring_bonds + o for g, o in zip(graphs, offsets[:-1])])
    linear = np.concatenate([g.linear for g in graphs])
    ranks = np.concatenate([g.ranks for g in graphs])
    heavy_atom = np.concatenate([g.heavy for g in graphs])
    pos = np.concatenate([g.pos for g in graphs])
    mol_of_atom = np.repeat(np.arange(len(graphs)), sizes)

    quads = _enumerate_paths(n_total, bonds, linear)
    angles = dihedral_angles_deg(pos, quads)
    in_ring = _in_ring(quads, rings, n_total)
    # Canonical key (module docstring): the tuple (r_b, r_c, r_a, r_d) encoded as one
    # integer in base n > every rank (it orders exactly like the tuple; int64
    # holds n^4 for n < 55,000), for a-b-c-d and for d-c-b-a; keep the smaller.
    r = ranks[quads]
    n = int(ranks.max()) + 1 if ranks.size else 1
    fwd = ((r[:, 1] * n + r[:, 2]) * n + r[:, 0]) * n + r[:, 3]
    rev = ((r[:, 2] * n + r[:, 1]) * n + r[:, 3]) * n + r[:, 0]
    oriented = np.where((rev < fwd)[:, None], quads[:, ::-1], quads)
    mol_id = mol_of_atom[quads[:, 1]]
    # np.lexsort sorts by the LAST key first: molecule, then key, then angle.
    order = np.lexsort((angles, np.minimum(fwd, rev), mol_id))
    atoms = oriented[order]
    mol_id = mol_id[order]
    local = atoms - offsets[mol_id][:, None]
    return TorsionBatch(
        counts=np.bincount(mol_id, minlength=len(graphs)).astype(np.int64),
        atoms=local.astype(np.int64),
        angles=angles[order],
        heavy=heavy_atom[atoms].all(axis=1),
        in_ring=in_ring[order],
    )


def featurise_torsions(
    mol: Chem.Mol,
    *,
    heavy_atoms_only: bool = False,
    conf_id: int = -1,
    atomic_numbers: np.ndarray | None = None,
) -> Torsions:
    """The canonical torsions of ``mol`` with angles from conformer ``conf_id``.

    ``mol`` must carry explicit hydrogens as atoms (as QM9 molecules built from
    coordinates do) and a conformer. A molecule without any torsion (methane,
    water, acetylene, ...) gives an empty ``Torsions``; it is not an error here.
    ``atomic_numbers`` (n_atoms,) may be passed when already known (saves a loop
    over the atoms).
    """
    batch = featurise_torsions_batch(
        [mol], conf_id=conf_id, atomic_numbers=None if atomic_numbers is None else [atomic_numbers]
    )
    out = batch.split()[0]
    return out.subset(out.heavy) if heavy_atoms_only else out
