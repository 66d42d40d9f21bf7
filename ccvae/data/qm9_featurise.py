"""Featurise QM9 in worker processes, and keep the result in one compact on-disk cache.

``featurise_records`` turns raw source records (``qm9_sources``) into a
``QM9Arrays``: every molecule's atoms, perceived bonds and canonical torsions, as
a few concatenated arrays with offsets (CSR layout), never one Python object per
molecule. ``load_or_build`` wraps it with the cache.

Cache
-----
- Location: ``cache_dir`` argument, else ``$CCVAE_CACHE/qm9``, else
  ``~/.cache/ccvae/qm9``.
- Key: SHA-256 of the cache format, ``FEATURISER_VERSION`` and, for each source file,
  its resolved path, size and modification time (nanoseconds). Any change of
  the files or of the featuriser gives a new key, hence a rebuild; the stale file of
  the same source is then deleted.
- Format: one uncompressed ``.npz`` of plain arrays (strings joined by newlines
  into one byte array), written to a temporary file and renamed (atomic), so
  an interrupted write never leaves a half file under the real name.
- Loading checks the stored versions and every array's shape and offsets; a
  file that fails (truncated, garbage, wrong version) is reported with a warning
  and rebuilt.

Failures
--------
A molecule whose bonds cannot be perceived even with the Hueckel retry is not
featurised; it is listed in ``QM9Arrays.failed_*`` (index, SMILES, reason), and
loaders report the count. Molecules whose bonds needed the Hueckel retry are
flagged (``bond_method == 1``).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rdkit import Chem, rdBase

from ccvae.chemistry import BOND_METHOD_HUECKEL, mol_from_graph, mol_from_xyz
from ccvae.cpu import usable_cores
from ccvae.data import torsions as _torsions
from ccvae.data.qm9_sources import QM9Source, parse_record, scan_source
from ccvae.errors import DataError

__all__ = [
    "CACHE_FORMAT",
    "QM9Arrays",
    "default_cache_dir",
    "cache_file",
    "featurise_records",
    "save_arrays",
    "load_arrays",
    "load_or_build",
]

#: Layout version of the cache file itself (the featuriser has its own version).
CACHE_FORMAT = 1

_STR_FIELDS = ("smiles", "failed_smiles", "failed_reason")


def default_cache_dir() -> Path:
    """``$CCVAE_CACHE/qm9`` if CCVAE_CACHE is set, else ``~/.cache/ccvae/qm9``."""
    env = os.environ.get("CCVAE_CACHE")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "ccvae"
    return base / "qm9"


@dataclass
class QM9Arrays:
    """Featurised molecules in CSR layout: molecule m owns atoms
    ``atom_ptr[m]:atom_ptr[m+1]``, bonds ``bond_ptr[m]:...`` and torsions
    ``tors_ptr[m]:...``. Atom numbers inside bonds and torsions are local to the
    molecule (0-based). Torsions are in canonical order (``ccvae.data.torsions``),
    hydrogens included; ``tors_heavy`` marks the heavy-atom subsequence.
    """

    index: np.ndarray  # int64 (M,) QM9 index
    smiles: list[str]  # source SMILES (qm9pack) or RDKit's from the perceived bonds (SDF)
    bond_method: np.ndarray  # uint8 (M,) 0 = connect-the-dots, 1 = Hueckel retry
    atom_ptr: np.ndarray  # int64 (M+1,)
    z: np.ndarray  # uint8 (A,)
    pos: np.ndarray  # float64 (A, 3) Angstrom, DFT
    charge: np.ndarray  # int8 (A,) formal charges from bond perception
    bond_ptr: np.ndarray  # int64 (M+1,)
    bonds: np.ndarray  # uint8 (B, 2)
    bond_code: np.ndarray  # uint8 (B,) 1 single, 2 double, 3 triple, 4 aromatic
    tors_ptr: np.ndarray  # int64 (M+1,)
    tors_atoms: np.ndarray  # uint8 (T, 4)
    tors_angle: np.ndarray  # float64 (T,) degrees in (-180, 180]
    tors_heavy: np.ndarray  # bool (T,)
    tors_ring: np.ndarray  # bool (T,)
    failed_index: np.ndarray  # int64 (F,)
    failed_smiles: list[str]
    failed_reason: list[str]
    n_records: int = 0  # molecules read from the source (featurised + failed)
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.index.shape[0])

    # ---- per-molecule access -------------------------------------------------
    def row_of(self, qm9_index: int) -> int | None:
        """Row of the molecule with this QM9 index, or None."""
        pos = int(np.searchsorted(self.index, qm9_index))
        if pos < len(self.index) and int(self.index[pos]) == int(qm9_index):
            return pos
        return None

    def torsion_counts(self, heavy_atoms_only: bool = False) -> np.ndarray:
        """int64 (M,) number of torsions per molecule."""
        if not heavy_atoms_only:
            return np.diff(self.tors_ptr)
        c = np.concatenate([[0], np.cumsum(self.tors_heavy, dtype=np.int64)])
        return c[self.tors_ptr[1:]] - c[self.tors_ptr[:-1]]

    def torsions(self, row: int, heavy_atoms_only: bool = False) -> _torsions.Torsions:
        s, e = int(self.tors_ptr[row]), int(self.tors_ptr[row + 1])
        t = _torsions.Torsions(
            self.tors_atoms[s:e].astype(np.int64),
            self.tors_angle[s:e].copy(),
            self.tors_heavy[s:e].copy(),
            self.tors_ring[s:e].copy(),
        )
        return t.subset(t.heavy) if heavy_atoms_only else t

    def atoms(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        s, e = int(self.atom_ptr[row]), int(self.atom_ptr[row + 1])
        return self.z[s:e].astype(np.int64), self.pos[s:e].copy()

    def mol(self, row: int) -> Chem.Mol:
        """The RDKit molecule (explicit H, DFT conformer, perceived bonds)."""
        z, pos = self.atoms(row)
        s, e = int(self.bond_ptr[row]), int(self.bond_ptr[row + 1])
        a0 = int(self.atom_ptr[row])
        return mol_from_graph(
            z, pos, self.bonds[s:e], self.bond_code[s:e], self.charge[a0 : a0 + len(z)]
        )

    def select(self, rows: np.ndarray) -> QM9Arrays:
        """A new QM9Arrays with the molecules at ``rows`` (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)

        def take(ptr: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
            counts = (ptr[1:] - ptr[:-1])[rows]
            new_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            # Element e of the output comes from ptr[row] + (e - new_ptr[row's slot]).
            flat = np.arange(int(new_ptr[-1]), dtype=np.int64) + np.repeat(ptr[rows] - new_ptr[:-1], counts)
            return (new_ptr, *(a[flat] for a in arrays))

        atom_ptr, z, pos, charge = take(self.atom_ptr, self.z, self.pos, self.charge)
        bond_ptr, bonds, bond_code = take(self.bond_ptr, self.bonds, self.bond_code)
        tors_ptr, ta, tg, th, tr = take(
            self.tors_ptr, self.tors_atoms, self.tors_angle, self.tors_heavy, self.tors_ring
        )
        return QM9Arrays(
            index=self.index[rows],
            smiles=[self.smiles[r] for r in rows],
            bond_method=self.bond_method[rows],
            atom_ptr=atom_ptr, z=z, pos=pos, charge=charge,
            bond_ptr=bond_ptr, bonds=bonds, bond_code=bond_code,
            tors_ptr=tors_ptr, tors_atoms=ta, tors_angle=tg, tors_heavy=th, tors_ring=tr,
            failed_index=self.failed_index.copy(),
            failed_smiles=list(self.failed_smiles),
            failed_reason=list(self.failed_reason),
            n_records=self.n_records,
            meta=dict(self.meta),
        )


# ---- featurising ---------------------------------------------------------------


def _bond_arrays(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray]:
    """(bonds uint8 (B, 2) with i < j, codes uint8 (B,)) from the bond-order
    adjacency matrix (1, 1.5 aromatic, 2, 3): much faster than iterating bonds."""
    bo = Chem.GetAdjacencyMatrix(mol, useBO=True)
    i, j = np.nonzero(bo)
    upper = i < j
    i, j = i[upper], j[upper]
    order = bo[i, j]
    codes = np.where(order == 1.5, 4, np.rint(order)).astype(np.uint8)
    return np.stack([i, j], axis=1).astype(np.uint8), codes


def _featurise_chunk(args: tuple[list[bytes], np.ndarray, list[int] | None]) -> dict:
    """Worker: parse and featurise one chunk of raw records into flat arrays."""
    records, indices, layout = args
    out: dict[str, list] = {k: [] for k in (
        "index", "smiles", "bond_method", "n_atoms", "z", "pos", "charge",
        "n_bonds", "bonds", "bond_code", "n_tors", "tors_atoms", "tors_angle", "tors_heavy",
        "tors_ring", "failed_index", "failed_smiles", "failed_reason",
    )}
    blocker = rdBase.BlockLogs()  # RDKit's valence complaints on failed perceptions
    mols, raws = [], []
    for record, idx in zip(records, indices):
        raw = parse_record(record, int(idx), layout)
        try:
            mol, method = mol_from_xyz(raw.z, raw.pos)
        except DataError as exc:
            out["failed_index"].append(raw.index)
            out["failed_smiles"].append(raw.smiles or "")
            out["failed_reason"].append(str(exc).replace("\n", " "))
            continue
        mols.append(mol)
        raws.append(raw)
        out["index"].append(raw.index)
        # The SDF source has no SMILES: write RDKit's from the perceived bonds.
        smiles = raw.smiles if raw.smiles is not None else Chem.MolToSmiles(Chem.RemoveHs(mol, sanitize=False))
        out["smiles"].append(smiles)
        out["bond_method"].append(1 if method == BOND_METHOD_HUECKEL else 0)
        out["n_atoms"].append(len(raw.z))
        out["z"].append(raw.z.astype(np.uint8))
        out["pos"].append(raw.pos)
        charge = np.zeros(len(raw.z), dtype=np.int8)
        for i in np.flatnonzero(raw.z > 1).tolist():  # heavy atoms first (cheap) ...
            charge[i] = mol.GetAtomWithIdx(i).GetFormalCharge()
        if int(charge.sum()) != Chem.GetFormalCharge(mol):  # ... all atoms if an H is charged
            charge[:] = [a.GetFormalCharge() for a in mol.GetAtoms()]
        out["charge"].append(charge)
        bonds, codes = _bond_arrays(mol)
        out["n_bonds"].append(len(codes))
        out["bonds"].append(bonds)
        out["bond_code"].append(codes)
    del blocker
    tors = _torsions.featurise_torsions_batch(mols, atomic_numbers=[r.z for r in raws])
    out["n_tors"] = [tors.counts]
    out["tors_atoms"] = [tors.atoms.astype(np.uint8)]
    out["tors_angle"] = [tors.angles]
    out["tors_heavy"] = [tors.heavy]
    out["tors_ring"] = [tors.in_ring]

    def cat(key: str, dtype, shape_tail: tuple[int, ...] = ()) -> np.ndarray:
        parts = out[key]
        return np.concatenate(parts).astype(dtype) if parts else np.zeros((0, *shape_tail), dtype=dtype)

    return {
        "index": np.asarray(out["index"], dtype=np.int64),
        "smiles": out["smiles"],
        "bond_method": np.asarray(out["bond_method"], dtype=np.uint8),
        "n_atoms": np.asarray(out["n_atoms"], dtype=np.int64),
        "z": cat("z", np.uint8),
        "pos": cat("pos", np.float64, (3,)),
        "charge": cat("charge", np.int8),
        "n_bonds": np.asarray(out["n_bonds"], dtype=np.int64),
        "bonds": cat("bonds", np.uint8, (2,)),
        "bond_code": cat("bond_code", np.uint8),
        "n_tors": cat("n_tors", np.int64),
        "tors_atoms": cat("tors_atoms", np.uint8, (4,)),
        "tors_angle": cat("tors_angle", np.float64),
        "tors_heavy": cat("tors_heavy", bool),
        "tors_ring": cat("tors_ring", bool),
        "failed_index": np.asarray(out["failed_index"], dtype=np.int64),
        "failed_smiles": out["failed_smiles"],
        "failed_reason": out["failed_reason"],
    }


def _ptr(counts: list[np.ndarray]) -> np.ndarray:
    c = np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(c)]).astype(np.int64)


def featurise_records(
    records: Sequence[bytes],
    indices: np.ndarray,
    layout: list[int] | None,
    *,
    workers: int | None = None,
    progress: bool = True,
    chunk_size: int = 500,
) -> QM9Arrays:
    """Parse and featurise raw records (``qm9_sources.scan_source``).

    workers: processes to use (None: the CPUs this process may run on; 0 or 1: in
    this process). Small inputs (< 2 chunks) always run in this process, since
    starting workers would cost more than it saves. Workers are forked (they run
    only RDKit and numpy, never torch), chunked by ``chunk_size`` molecules, and a
    tqdm bar counts molecules.
    """
    from tqdm.auto import tqdm

    indices = np.asarray(indices, dtype=np.int64)
    if len(records) != len(indices):
        raise ValueError("featurise_records: `records` and `indices` differ in length")
    n_workers = usable_cores() if workers is None else int(workers)
    if n_workers < 0:
        raise ValueError(f"featurise_records: `workers` must be >= 0, got {workers}")
    tasks = [
        (list(records[s : s + chunk_size]), indices[s : s + chunk_size], layout)
        for s in range(0, len(records), chunk_size)
    ]
    bar = tqdm(total=len(records), desc="Featurising QM9", unit="mol", disable=not progress, file=sys.stderr)
    results: list[dict] = []
    try:
        if n_workers <= 1 or len(tasks) < 2:
            for t in tasks:
                results.append(_featurise_chunk(t))
                bar.update(len(t[0]))
        else:
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            with mp.get_context(method).Pool(min(n_workers, len(tasks))) as pool:
                for res in pool.imap(_featurise_chunk, tasks):
                    results.append(res)
                    bar.update(len(res["index"]) + len(res["failed_index"]))
    finally:
        bar.close()

    def cat(key: str) -> np.ndarray:
        return np.concatenate([r[key] for r in results]) if results else np.zeros(0)

    def cat_list(key: str) -> list[str]:
        return [s for r in results for s in r[key]]

    arrays = QM9Arrays(
        index=cat("index").astype(np.int64),
        smiles=cat_list("smiles"),
        bond_method=cat("bond_method").astype(np.uint8),
        atom_ptr=_ptr([r["n_atoms"] for r in results]),
        z=cat("z").astype(np.uint8),
        pos=cat("pos").reshape(-1, 3).astype(np.float64),
        charge=cat("charge").astype(np.int8),
        bond_ptr=_ptr([r["n_bonds"] for r in results]),
        bonds=cat("bonds").reshape(-1, 2).astype(np.uint8),
        bond_code=cat("bond_code").astype(np.uint8),
        tors_ptr=_ptr([r["n_tors"] for r in results]),
        tors_atoms=cat("tors_atoms").reshape(-1, 4).astype(np.uint8),
        tors_angle=cat("tors_angle").astype(np.float64),
        tors_heavy=cat("tors_heavy").astype(bool),
        tors_ring=cat("tors_ring").astype(bool),
        failed_index=cat("failed_index").astype(np.int64),
        failed_smiles=cat_list("failed_smiles"),
        failed_reason=cat_list("failed_reason"),
        n_records=len(records),
        meta={"featuriser_version": _torsions.FEATURISER_VERSION, "cache_format": CACHE_FORMAT},
    )
    order = np.argsort(arrays.index, kind="stable")
    if not np.array_equal(order, np.arange(len(order))):
        arrays = arrays.select(order)  # keep rows sorted by QM9 index (row_of bisects)
    return arrays


# ---- cache -----------------------------------------------------------------------


def _source_fingerprint(src: QM9Source) -> list[dict]:
    out = []
    for f in src.files:
        st = f.stat()
        out.append({"path": str(f.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


def cache_file(src: QM9Source, cache_dir: str | Path | None = None) -> Path:
    """Where the cache of ``src`` lives for the current featuriser (see module doc)."""
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    fp = _source_fingerprint(src)
    src_id = hashlib.sha256(json.dumps([d["path"] for d in fp]).encode()).hexdigest()[:12]
    key = hashlib.sha256(
        json.dumps(
            {
                "cache_format": CACHE_FORMAT,
                "featuriser_version": _torsions.FEATURISER_VERSION,
                "kind": src.kind,
                "files": fp,
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    return folder / f"qm9-{src_id}-{key}.npz"


def _join(strings: list[str]) -> np.ndarray:
    for s in strings:
        if "\n" in s:
            raise ValueError(f"cannot store a string with a newline: {s[:40]!r}")
    return np.frombuffer("\n".join(strings).encode("utf-8"), dtype=np.uint8)


def _split(buf: np.ndarray, n: int) -> list[str]:
    if n == 0:
        return []
    out = buf.tobytes().decode("utf-8").split("\n")
    if len(out) != n:
        raise ValueError(f"string field holds {len(out)} entries, expected {n}")
    return out


_ARRAY_FIELDS = (
    "index", "bond_method", "atom_ptr", "z", "pos", "charge", "bond_ptr", "bonds", "bond_code",
    "tors_ptr", "tors_atoms", "tors_angle", "tors_heavy", "tors_ring", "failed_index",
)


def save_arrays(arrays: QM9Arrays, path: Path) -> None:
    """Write ``arrays`` to ``path`` atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {k: getattr(arrays, k) for k in _ARRAY_FIELDS}
    for k in _STR_FIELDS:
        payload[k] = _join(getattr(arrays, k))
    meta = dict(arrays.meta, n_records=arrays.n_records, n=len(arrays), n_failed=len(arrays.failed_index))
    payload["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **payload)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class CorruptCacheError(DataError):
    """A cache file that cannot be read back or fails its consistency checks."""


def load_arrays(path: Path) -> QM9Arrays:
    """Read a cache file; raise ``CorruptCacheError`` when it is damaged or stale."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in (*_ARRAY_FIELDS, *_STR_FIELDS, "meta")}
        meta = json.loads(data.pop("meta").tobytes().decode())
        n, nf = int(meta["n"]), int(meta["n_failed"])
        strings = {
            "smiles": _split(data.pop("smiles"), n),
            "failed_smiles": _split(data.pop("failed_smiles"), nf),
            "failed_reason": _split(data.pop("failed_reason"), nf),
        }
    except Exception as exc:  # zip, npy, json, unicode and key errors alike
        raise CorruptCacheError(f"unreadable QM9 cache {path}: {type(exc).__name__}: {exc}") from exc
    if meta.get("featuriser_version") != _torsions.FEATURISER_VERSION or meta.get("cache_format") != CACHE_FORMAT:
        raise CorruptCacheError(f"QM9 cache {path} was written by another featuriser version")
    arrays = QM9Arrays(
        **data, **strings, n_records=int(meta["n_records"]),
        meta={k: meta[k] for k in ("featuriser_version", "cache_format") if k in meta},
    )
    _check_consistent(arrays, path)
    return arrays


def _check_consistent(a: QM9Arrays, path: Path) -> None:
    n = len(a)
    problems = []
    for name, ptr, total in (
        ("atom_ptr", a.atom_ptr, len(a.z)),
        ("bond_ptr", a.bond_ptr, len(a.bonds)),
        ("tors_ptr", a.tors_ptr, len(a.tors_angle)),
    ):
        if ptr.shape != (n + 1,) or ptr[0] != 0 or ptr[-1] != total or (np.diff(ptr) < 0).any():
            problems.append(name)
    if a.pos.shape != (len(a.z), 3) or len(a.charge) != len(a.z):
        problems.append("pos/charge")
    if a.bonds.shape != (len(a.bond_code), 2):
        problems.append("bonds")
    t = len(a.tors_angle)
    if a.tors_atoms.shape != (t, 4) or len(a.tors_heavy) != t or len(a.tors_ring) != t:
        problems.append("torsions")
    if len(a.bond_method) != n or (np.diff(a.index) <= 0).any():
        problems.append("index")
    if t and not (np.all(a.tors_angle > -180.0) and np.all(a.tors_angle <= 180.0)):
        problems.append("angles")
    if problems:
        raise CorruptCacheError(f"QM9 cache {path} is inconsistent ({', '.join(problems)})")


def load_or_build(
    src: QM9Source,
    *,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
    use_cache: bool = True,
) -> tuple[QM9Arrays, dict]:
    """All molecules of ``src``, featurised, from the cache when it is valid.

    Returns (arrays, info) with info = {"cache_path", "from_cache", "rebuilt_reason"}.
    """
    path = cache_file(src, cache_dir)
    info: dict = {"cache_path": str(path) if use_cache else None, "from_cache": False, "rebuilt_reason": None}
    if use_cache and path.exists():
        try:
            arrays = load_arrays(path)
            info["from_cache"] = True
            return arrays, info
        except CorruptCacheError as exc:
            warnings.warn(f"{exc}; rebuilding it", RuntimeWarning, stacklevel=2)
            info["rebuilt_reason"] = str(exc)
    indices, records, layout = scan_source(src)
    arrays = featurise_records(records, indices, layout, workers=workers, progress=progress)
    del records
    if use_cache:
        save_arrays(arrays, path)
        prefix = path.name.rsplit("-", 1)[0] + "-"
        for stale in path.parent.glob(f"{prefix}*.npz"):  # older versions of this source
            if stale != path:
                stale.unlink(missing_ok=True)
    return arrays, info
