"""QM9 torsion angles: a PyG dataset, the padded (cos, sin) view for the VAE, and look-ups.

The post's molecular experiment compresses each QM9 molecule's torsion angles.
This module serves them three ways, all from one featurisation
(``ccvae.data.qm9_featurise``, cached on disk):

- ``QM9Torsions``: a ``torch_geometric.data.InMemoryDataset`` of ``TorsionData``
  graphs (``z``, ``pos``, ``edge_index``, ``bond_type``, ``torsion_index``
  [4, T], ``torsion_angle`` in degrees, ``torsion_in_ring``, ``smiles``,
  ``qm9_index``);
- ``load_qm9``: a ``DatasetBundle`` with the fixed-length view an MLP VAE eats;
- ``get_molecule``: one molecule by QM9 index or SMILES, with its RDKit structure.

Padded view (``load_qm9``)
--------------------------
K = ``max_torsions`` (default: the largest torsion count among the molecules
loaded). Molecule n with torsions theta_0..theta_{T-1} in canonical order
(``ccvae.data.torsions``) becomes

    x[n]    = [cos theta_0, sin theta_0, cos theta_1, sin theta_1, ..., 0, 0]  (2K,)
    mask[n] = [True] * min(T, K) + [False] * (K - min(T, K))                   (K,)

i.e. INTERLEAVED pairs: slot k lives in columns 2k (cos) and 2k+1 (sin); padding
is (0, 0), which is not on the unit circle, and is masked out. Molecules with
more than K torsions keep their first K (counted in ``extras["n_truncated"]``).
Molecules without any torsion (methane, water, ...) carry no signal: they are
left out of the splits and listed in ``extras["no_torsion_indices"]``. Molecules
whose bonds could not be perceived are listed in ``extras["failures"]``.
``y`` is the number of heavy atoms (a label for colouring latent plots) and
``index`` the QM9 index (1..133,885).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from rdkit import Chem, rdBase
from torch_geometric.data import Data, InMemoryDataset

from ccvae.data.base import DatasetBundle, Split
from ccvae.data.qm9_featurise import (
    QM9Arrays,
    cache_file,
    featurise_records,
    load_or_build,
)
from ccvae.data.qm9_sources import QM9_FULL_SIZE, QM9Source, resolve_source, scan_source
from ccvae.data.splits import random_split, split_sizes
from ccvae.data.torsions import FEATURISER_VERSION, Torsions
from ccvae.errors import ConfigError, DataError

__all__ = [
    "QM9_MAX_INDEX",
    "TorsionData",
    "QM9Torsions",
    "QM9Molecule",
    "load_qm9_arrays",
    "load_qm9",
    "padded_angles",
    "get_molecule",
    "find_smiles",
]

#: QM9 numbers its molecules 1..133,885 (3,054 of them are "uncharacterized").
QM9_MAX_INDEX = 133_885


# ---- loading the featurised arrays ------------------------------------------------


def _check_positive_int(name: str, value: Any, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"`{name}` must be a positive integer or None, got {value!r}")
    return int(value)


def _subset_rows(all_indices: np.ndarray, max_molecules: int, seed: int) -> np.ndarray:
    """The QM9 indices of a seeded random subset of ``all_indices`` (sorted).

    Drawn from the sorted list of every molecule in the source (featurised or
    not), so the same (source, max_molecules, seed) picks the same molecules
    whether they come from the cache or are featurised on the spot.
    """
    ordered = np.sort(np.asarray(all_indices, dtype=np.int64))
    # seed + a constant: the subset draw should not reuse the split's stream.
    rng = np.random.default_rng([int(seed), 0x51B5E7])
    take = np.sort(rng.permutation(len(ordered))[: min(max_molecules, len(ordered))])
    return ordered[take]


def load_qm9_arrays(
    data_dir: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    max_molecules: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = True,
    use_cache: bool = True,
) -> tuple[QM9Arrays, dict]:
    """Featurised QM9 molecules (see ``qm9_featurise.QM9Arrays``) and provenance info.

    With ``max_molecules`` a seeded random subset is returned: taken from the cache
    when one is there, else only those molecules are featurised (fast; nothing is
    written to the cache). ``info`` holds the source, cache path and subset flags.
    """
    max_molecules = _check_positive_int("max_molecules", max_molecules)
    src = resolve_source(data_dir)
    cached = use_cache and cache_file(src, cache_dir).exists()
    if max_molecules is None or cached:
        arrays, info = load_or_build(
            src, cache_dir=cache_dir, workers=workers, progress=progress, use_cache=use_cache
        )
        n_source = arrays.n_records
        if max_molecules is not None and max_molecules < n_source:
            every = np.concatenate([arrays.index, arrays.failed_index])
            wanted = _subset_rows(every, max_molecules, seed)
            rows = np.flatnonzero(np.isin(arrays.index, wanted))
            failed = np.isin(arrays.failed_index, wanted)
            arrays = arrays.select(rows)
            arrays.failed_index = arrays.failed_index[failed]
            arrays.failed_smiles = [s for s, f in zip(arrays.failed_smiles, failed) if f]
            arrays.failed_reason = [s for s, f in zip(arrays.failed_reason, failed) if f]
            arrays.n_records = len(wanted)
    else:
        indices, records, layout = scan_source(src)
        n_source = len(indices)
        if max_molecules >= n_source:  # "at most" more than there are: the full, cached set
            del records
            arrays, info = load_or_build(
                src, cache_dir=cache_dir, workers=workers, progress=progress, use_cache=use_cache
            )
        else:
            info = {"cache_path": None, "from_cache": False, "rebuilt_reason": None}
            wanted = _subset_rows(indices, max_molecules, seed)
            pick = np.flatnonzero(np.isin(indices, wanted))
            indices, records = indices[pick], [records[i] for i in pick]
            arrays = featurise_records(records, indices, layout, workers=workers, progress=progress)
    info.update(
        source=src,
        n_source=int(n_source),
        is_subset=arrays.n_records < n_source,
    )
    return arrays, info


# ---- the PyG dataset --------------------------------------------------------------


class TorsionData(Data):
    """A QM9 molecule graph with its torsions.

    ``torsion_index`` [4, T] holds atom numbers, so batching shifts it by the
    number of atoms like ``edge_index``; ``qm9_index`` [1] is an identifier and is
    never shifted (plain ``Data`` would shift any key containing "index").
    """

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "qm9_index":
            return 0
        return super().__inc__(key, value, *args, **kwargs)

    def __cat_dim__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "qm9_index":
            return 0
        return super().__cat_dim__(key, value, *args, **kwargs)


def _edge_index(arrays: QM9Arrays) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Both directions of every bond, molecule by molecule: (edge_index [2, 2B],
    bond_type [2B], edge slices [M+1]). Molecule m's edges are its bonds i->j
    followed by the same bonds j->i."""
    bp = arrays.bond_ptr
    n_bonds = len(arrays.bond_code)
    mol_of = np.repeat(np.arange(len(arrays)), np.diff(bp))
    k = np.arange(n_bonds)
    fwd = k + bp[mol_of]  # bond k's slot among 2 B edges
    rev = k + bp[mol_of + 1]
    ei = np.empty((2, 2 * n_bonds), dtype=np.int64)
    ei[0, fwd], ei[1, fwd] = arrays.bonds[:, 0], arrays.bonds[:, 1]
    ei[0, rev], ei[1, rev] = arrays.bonds[:, 1], arrays.bonds[:, 0]
    bt = np.empty(2 * n_bonds, dtype=np.int64)
    bt[fwd] = bt[rev] = arrays.bond_code
    return torch.from_numpy(ei), torch.from_numpy(bt), torch.from_numpy(2 * bp)


class QM9Torsions(InMemoryDataset):
    """QM9 molecules with their torsions, as a PyG ``InMemoryDataset``.

    Each item is a ``TorsionData`` with
      z [n] int64 atomic numbers, pos [n, 3] float32 DFT coordinates (Angstrom),
      edge_index [2, 2B] bonds in both directions, bond_type [2B] (1 single,
      2 double, 3 triple, 4 aromatic), torsion_index [4, T] canonical torsions
      (``ccvae.data.torsions``), torsion_angle [T] float32 degrees in (-180, 180],
      torsion_in_ring [T] bool, smiles (str), qm9_index [1] int64.

    Arguments are those of ``load_qm9_arrays``; ``heavy_atoms_only`` keeps only the
    torsions between heavy atoms (all atoms stay in the graph). Items are built
    lazily from one set of concatenated tensors, so construction is fast even for
    all 130,831 molecules. ``self.arrays`` keeps the featurised arrays, and
    ``self.info`` the provenance (source, cache, failures).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        *,
        heavy_atoms_only: bool = False,
        seed: int = 0,
        max_molecules: int | None = None,
        cache_dir: str | os.PathLike | None = None,
        workers: int | None = None,
        progress: bool = True,
        transform: Any = None,
        arrays: QM9Arrays | None = None,
    ) -> None:
        super().__init__(root=None, transform=transform, log=False)
        if arrays is None:
            arrays, info = load_qm9_arrays(
                data_dir, seed=seed, max_molecules=max_molecules, cache_dir=cache_dir,
                workers=workers, progress=progress,
            )
        else:
            info = {"source": None, "is_subset": None}
        self.arrays = arrays
        self.info = info
        self.heavy_atoms_only = bool(heavy_atoms_only)
        self._data, self.slices = self._collated(arrays, self.heavy_atoms_only)

    @staticmethod
    def _collated(arrays: QM9Arrays, heavy: bool) -> tuple[TorsionData, dict[str, torch.Tensor]]:
        keep = arrays.tors_heavy if heavy else np.ones(len(arrays.tors_angle), dtype=bool)
        counts = arrays.torsion_counts(heavy)
        tors_slices = torch.from_numpy(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
        edge_index, bond_type, edge_slices = _edge_index(arrays)
        atom_slices = torch.from_numpy(arrays.atom_ptr.astype(np.int64))
        m = len(arrays)
        data = TorsionData(
            z=torch.from_numpy(arrays.z.astype(np.int64)),
            pos=torch.from_numpy(arrays.pos.astype(np.float32)),
            edge_index=edge_index,
            bond_type=bond_type,
            torsion_index=torch.from_numpy(arrays.tors_atoms[keep].astype(np.int64).T.copy()),
            torsion_angle=torch.from_numpy(arrays.tors_angle[keep].astype(np.float32)),
            torsion_in_ring=torch.from_numpy(arrays.tors_ring[keep].copy()),
            smiles=list(arrays.smiles),
            qm9_index=torch.from_numpy(arrays.index.astype(np.int64)),
        )
        slices = {
            "z": atom_slices,
            "pos": atom_slices,
            "edge_index": edge_slices,
            "bond_type": edge_slices,
            "torsion_index": tors_slices,
            "torsion_angle": tors_slices,
            "torsion_in_ring": tors_slices,
            "smiles": torch.arange(m + 1),
            "qm9_index": torch.arange(m + 1),
        }
        return data, slices

    def row_of(self, qm9_index: int) -> int | None:
        """Position in this dataset of the molecule with that QM9 index, or None."""
        return self.arrays.row_of(qm9_index)


# ---- the padded fixed-length view ---------------------------------------------------


def padded_angles(
    arrays: QM9Arrays, k: int, *, heavy_atoms_only: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x float32 (M, 2K) interleaved cos/sin, mask bool (M, K), counts int64 (M,))
    for every molecule of ``arrays`` (layout: module docstring). ``counts`` are the
    torsion counts before truncation to K."""
    k = int(k)
    m = len(arrays)
    keep = arrays.tors_heavy if heavy_atoms_only else np.ones(len(arrays.tors_angle), dtype=bool)
    counts = arrays.torsion_counts(heavy_atoms_only)
    mol_of = np.repeat(np.arange(m), np.diff(arrays.tors_ptr))[keep]
    starts = np.concatenate([[0], np.cumsum(counts)])[:-1]
    slot = np.arange(int(keep.sum())) - starts[mol_of]
    theta = np.radians(arrays.tors_angle[keep])
    fits = slot < k
    x = np.zeros((m, 2 * k), dtype=np.float32)
    mask = np.zeros((m, k), dtype=bool)
    rows, cols = mol_of[fits], slot[fits]
    x[rows, 2 * cols] = np.cos(theta[fits])
    x[rows, 2 * cols + 1] = np.sin(theta[fits])
    mask[rows, cols] = True
    return x, mask, counts


def _heavy_atom_counts(arrays: QM9Arrays) -> np.ndarray:
    c = np.concatenate([[0], np.cumsum(arrays.z > 1, dtype=np.int64)])
    return c[arrays.atom_ptr[1:]] - c[arrays.atom_ptr[:-1]]


def load_qm9(
    data_dir: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    heavy_atoms_only: bool = False,
    max_molecules: int | None = None,
    max_torsions: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = True,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> DatasetBundle:
    """QM9 torsions as a ``DatasetBundle`` for the MLP VAE (layout: module docstring).

    data_dir:         None for the installed qm9pack; or a folder with PyTorch
                      Geometric's raw QM9 files (``raw/gdb9.sdf``) or qm9pack CSVs.
    seed:             seeds the train/val/test split and the ``max_molecules`` draw.
    heavy_atoms_only: torsions between heavy atoms only (else hydrogens included).
    max_molecules:    a seeded random subset of this many molecules (fast: only
                      they are featurised when no cache exists); ``is_subset`` True.
    max_torsions:     K, the number of angle slots (None: the largest count loaded).
    cache_dir:        featurisation cache (default ``$CCVAE_CACHE/qm9`` or
                      ``~/.cache/ccvae/qm9``).
    workers:          featurising processes (None: all CPUs available; 0: none).
    fractions:        train/val/test fractions.

    ``extras`` holds: ``max_torsions`` (K), ``layout``, ``heavy_atoms_only``,
    ``featuriser_version``, ``n_failed`` and ``failures`` (QM9 index, SMILES,
    reason), ``n_hueckel`` (bonds found only by the Hueckel retry),
    ``no_torsion_indices``, ``n_truncated`` / ``truncated_indices``, ``cache`` info
    and ``arrays`` (the ``QM9Arrays`` of every molecule loaded, torsion-less ones
    included; not JSON: for ``get_molecule(..., source=bundle)`` and structure
    rebuilding).
    """
    max_torsions = _check_positive_int("max_torsions", max_torsions)
    if len(fractions) != 3:
        raise ConfigError(f"`fractions` must be (train, val, test), got {fractions!r}")
    split_sizes(1, fractions)  # validates the fractions (ConfigError)
    arrays, info = load_qm9_arrays(
        data_dir, seed=seed, max_molecules=max_molecules, cache_dir=cache_dir,
        workers=workers, progress=progress,
    )
    counts_all = arrays.torsion_counts(heavy_atoms_only)
    no_torsions = arrays.index[counts_all == 0]
    kept = arrays.select(np.flatnonzero(counts_all > 0))
    if len(kept) == 0:
        raise DataError(
            f"QM9: none of the {len(arrays)} molecules loaded has a "
            f"{'heavy-atom ' if heavy_atoms_only else ''}torsion; load more molecules "
            "(`max_molecules`)"
        )
    counts = kept.torsion_counts(heavy_atoms_only)
    k = int(max_torsions) if max_torsions is not None else int(counts.max())
    x, mask, _ = padded_angles(kept, k, heavy_atoms_only=heavy_atoms_only)
    y = _heavy_atom_counts(kept)
    index = kept.index

    train_rows, val_rows, test_rows = random_split(len(kept), fractions, seed)

    def split(rows: np.ndarray) -> Split:
        return Split(
            x=torch.from_numpy(x[rows]),
            y=torch.from_numpy(y[rows].astype(np.int64)),
            index=torch.from_numpy(index[rows].astype(np.int64)),
            mask=torch.from_numpy(mask[rows]),
        )

    src: QM9Source = info["source"]
    truncated = kept.index[counts > k]
    failures = [
        {"index": int(i), "smiles": s, "reason": r}
        for i, s, r in zip(arrays.failed_index, arrays.failed_smiles, arrays.failed_reason)
    ]
    what = "heavy-atom torsions" if heavy_atoms_only else "torsions (hydrogens included)"
    subset = f"a seeded random subset of {arrays.n_records:,} of " if info["is_subset"] else ""
    description = (
        f"{subset}{src.describe()}: {what} of {len(kept):,} molecules as (cos, sin) pairs, "
        f"K = {k} slots"
    )
    notes = []
    if failures:
        notes.append(f"{len(failures)} molecule(s) failed bond perception")
    if len(no_torsions):
        notes.append(f"{len(no_torsions)} without torsions left out")
    if len(truncated):
        notes.append(f"{len(truncated)} truncated to K")
    if notes:
        description += " (" + "; ".join(notes) + ")"
    return DatasetBundle(
        name="qm9",
        source=f"{src.kind}:{src.root}",
        description=description,
        is_subset=bool(info["is_subset"]),
        input_shape=(k, 2),
        label_names=[str(n) for n in range(int(y.max()) + 1)],
        train=split(train_rows),
        val=split(val_rows),
        test=split(test_rows),
        seed=seed,
        root=src.root,
        extras={
            "max_torsions": k,
            "layout": "interleaved: x[:, 2k] = cos(theta_k), x[:, 2k+1] = sin(theta_k); "
            "padding (0, 0) where mask[:, k] is False",
            "angle_units": "degrees in (-180, 180] (x holds their cos and sin)",
            "label": "number of heavy atoms",
            "heavy_atoms_only": bool(heavy_atoms_only),
            "featuriser_version": FEATURISER_VERSION,
            "source_kind": src.kind,
            "n_source": info["n_source"],
            "n_failed": len(failures),
            "failures": failures,
            "n_hueckel": int((arrays.bond_method == 1).sum()),
            "no_torsion_indices": no_torsions.astype(np.int64).tolist(),
            "n_truncated": int(len(truncated)),
            "truncated_indices": truncated.astype(np.int64).tolist(),
            "cache": {k_: info.get(k_) for k_ in ("cache_path", "from_cache", "rebuilt_reason")},
            "arrays": arrays,
        },
    )


# ---- one molecule -----------------------------------------------------------------


@dataclass
class QM9Molecule:
    """One QM9 molecule.

    index:      QM9 index (1..133,885).
    smiles:     the source's SMILES (qm9pack) or RDKit's (SDF source).
    mol:        RDKit molecule, explicit hydrogens, DFT conformer, perceived bonds.
    torsions:   canonical torsions (heavy-atom only if asked for).
    bond_method: "connect-the-dots" or "hueckel" (bond perception that worked).
    """

    index: int
    smiles: str
    mol: Chem.Mol
    torsions: Torsions
    bond_method: str

    @property
    def n_torsions(self) -> int:
        return len(self.torsions)

    def require_torsions(self) -> Torsions:
        """The torsions, or a ``DataError`` saying plainly that there are none."""
        if len(self.torsions) == 0:
            raise DataError(
                f"QM9 molecule {self.index} ({self.smiles}) has no torsions: it has no "
                "chain of four bonded atoms with a rotatable middle bond, so there are no "
                "angles to encode or rebuild"
            )
        return self.torsions

    def padded(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """This molecule's (x (2K,), mask (K,)) in the layout of ``load_qm9``."""
        k = int(k)
        theta = np.radians(self.torsions.angles[:k])
        x = np.zeros(2 * k, dtype=np.float32)
        x[0 : 2 * len(theta) : 2] = np.cos(theta)
        x[1 : 2 * len(theta) : 2] = np.sin(theta)
        mask = np.zeros(k, dtype=bool)
        mask[: len(theta)] = True
        return x, mask


def _arrays_of(source: Any) -> tuple[QM9Arrays | None, bool]:
    """(arrays, heavy_atoms_only default) from a bundle, a QM9Torsions or QM9Arrays."""
    if source is None:
        return None, False
    if isinstance(source, QM9Arrays):
        return source, False
    if isinstance(source, QM9Torsions):
        return source.arrays, source.heavy_atoms_only
    if isinstance(source, DatasetBundle):
        arrays = source.extras.get("arrays")
        if not isinstance(arrays, QM9Arrays):
            raise DataError(f"dataset {source.name!r} carries no QM9 molecules (extras['arrays'])")
        return arrays, bool(source.extras.get("heavy_atoms_only", False))
    raise ConfigError(
        f"`source` must be a QM9 DatasetBundle, QM9Torsions or QM9Arrays, got {type(source).__name__}"
    )


def canonical_query_smiles(smiles: str) -> str | None:
    """The look-up key of a user's SMILES, or None when RDKit cannot parse it."""
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    return Chem.MolToSmiles(mol, isomericSmiles=False)


def _smiles_keys(arrays: QM9Arrays) -> dict[str, list[int]]:
    cache = getattr(arrays, "_exact_smiles", None)
    if cache is None:
        cache = {}
        for row, s in enumerate(arrays.smiles):
            cache.setdefault(s, []).append(row)
        arrays._exact_smiles = cache  # type: ignore[attr-defined]
    return cache


def _formula_rows(arrays: QM9Arrays, query: Chem.Mol) -> np.ndarray:
    """Rows whose element counts (H, C, N, O, F) equal the query molecule's."""
    want = np.zeros(10, dtype=np.int64)
    for atom in query.GetAtoms():
        if atom.GetAtomicNum() < 10:
            want[atom.GetAtomicNum()] += 1
        want[1] += atom.GetTotalNumHs()
    table = getattr(arrays, "_formula_table", None)
    if table is None:
        m = len(arrays)
        mol_of = np.repeat(np.arange(m), np.diff(arrays.atom_ptr))
        table = np.zeros((m, 10), dtype=np.int64)
        np.add.at(table, (mol_of, np.minimum(arrays.z.astype(np.int64), 9)), 1)
        arrays._formula_table = table  # type: ignore[attr-defined]
    return np.flatnonzero((table == want).all(axis=1))


def find_smiles(arrays: QM9Arrays, smiles: str) -> list[int]:
    """Rows of ``arrays`` whose molecule matches ``smiles``.

    First an exact match of the stored SMILES string; else RDKit canonical SMILES
    without stereo, compared only against molecules with the same formula (fast,
    no need to canonicalise all 130k). Raises ``DataError`` for an unparsable SMILES.
    """
    if not isinstance(smiles, str) or not smiles.strip():
        raise DataError(f"SMILES must be a non-empty string, got {smiles!r}")
    smiles = smiles.strip()
    exact = _smiles_keys(arrays).get(smiles)
    if exact:
        return list(exact)
    key = canonical_query_smiles(smiles)
    if key is None:
        raise DataError(f"SMILES {smiles!r} could not be parsed by RDKit: check its syntax")
    with rdBase.BlockLogs():
        query = Chem.AddHs(Chem.MolFromSmiles(smiles))
    hits = []
    for row in _formula_rows(arrays, query).tolist():
        if canonical_query_smiles(arrays.smiles[row]) == key:
            hits.append(row)
    return hits


def _molecule_at(arrays: QM9Arrays, row: int, heavy_atoms_only: bool) -> QM9Molecule:
    return QM9Molecule(
        index=int(arrays.index[row]),
        smiles=arrays.smiles[row],
        mol=arrays.mol(row),
        torsions=arrays.torsions(row, heavy_atoms_only),
        bond_method="hueckel" if arrays.bond_method[row] == 1 else "connect-the-dots",
    )


def get_molecule(
    index: int | None = None,
    *,
    smiles: str | None = None,
    source: Any = None,
    heavy_atoms_only: bool | None = None,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> QM9Molecule:
    """One molecule by QM9 index or by SMILES (give exactly one).

    source: a QM9 ``DatasetBundle`` (from ``load_qm9``), ``QM9Torsions`` or
    ``QM9Arrays`` to look in; None loads the whole featurised dataset (from the
    cache: the first call may featurise everything). With several molecules of
    the same SMILES without stereo (stereoisomers), the lowest QM9 index is returned.
    ``heavy_atoms_only`` defaults to the source's setting.

    Raises ``DataError`` with a plain message for an index or SMILES that is not in
    the data (and why, where known). A molecule without torsions is returned (see
    ``QM9Molecule.require_torsions`` for the message).
    """
    if (index is None) == (smiles is None):
        raise ConfigError("get_molecule: give exactly one of `index` or `smiles`")
    arrays, heavy_default = _arrays_of(source)
    if arrays is None:
        arrays, _ = load_qm9_arrays(data_dir, cache_dir=cache_dir, progress=progress)
    heavy = heavy_default if heavy_atoms_only is None else bool(heavy_atoms_only)
    where = f"this dataset of {len(arrays):,} molecules"

    if index is not None:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise DataError(f"QM9 index must be an integer, got {index!r}")
        index = int(index)
        row = arrays.row_of(index)
        if row is not None:
            return _molecule_at(arrays, row, heavy)
        if not 1 <= index <= QM9_MAX_INDEX:
            raise DataError(
                f"QM9 index {index} does not exist: QM9 numbers its molecules 1 to {QM9_MAX_INDEX:,}"
            )
        hit = np.flatnonzero(arrays.failed_index == index)
        if hit.size:
            j = int(hit[0])
            raise DataError(
                f"QM9 molecule {index} ({arrays.failed_smiles[j]}) could not be featurised: "
                f"{arrays.failed_reason[j]}"
            )
        if arrays.n_records < QM9_FULL_SIZE:
            raise DataError(
                f"QM9 index {index} is not in {where} (a subset: load without "
                "`max_molecules` to reach every molecule)"
            )
        raise DataError(
            f"QM9 index {index} is not in {where}: it is one of the 3,054 molecules QM9 "
            "marks 'uncharacterized' (their DFT geometry does not match their SMILES)"
        )

    rows = find_smiles(arrays, smiles)  # type: ignore[arg-type]
    if not rows:
        key = canonical_query_smiles(smiles)  # type: ignore[arg-type]
        raise DataError(
            f"no molecule with SMILES {smiles!r} (canonical {key!r}) in {where}; QM9 holds "
            "only molecules of up to 9 heavy atoms C, N, O, F"
        )
    best = min(rows, key=lambda r: int(arrays.index[r]))
    return _molecule_at(arrays, best, heavy)
