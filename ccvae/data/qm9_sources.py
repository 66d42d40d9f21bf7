"""Where QM9 comes from: the CSVs of PyPI ``qm9pack`` or PyTorch Geometric's raw files.

Both sources give, per molecule, the QM9 index (1..133,885), atomic numbers and
DFT coordinates (Angstrom), and for qm9pack the SMILES. Reading is split in two so
that parsing can run in worker processes:

- ``scan_source`` reads the files and returns one raw byte record per molecule
  (a CSV line, or an SDF block) with its QM9 index, cheaply;
- ``parse_record`` turns one raw record into a ``RawMolecule``.

qm9pack (130,831 molecules, the 3,054 "uncharacterized" ones already removed):
    ``<site-packages>/qm9pack/data/qm9_part{1,2,3}.csv``, found with
    ``importlib.util.find_spec`` WITHOUT importing qm9pack (its loader imports
    ``pkg_resources``, which newer setuptools no longer ship). One molecule per line;
    columns used: Index, SMILES, Elements (``['C','H',...]``), XYZ_Ang (nested
    lists). Five coordinate strings are not valid JSON (numbers written ``0.``), so
    coordinates are parsed by splitting on commas, never with ``json``.

PyTorch Geometric raw QM9 (``<root>/raw/``):
    ``gdb9.sdf`` (133,885 molecules; title line ``gdb_<index>``), ``gdb9.sdf.csv``
    (regression targets: not needed here) and ``uncharacterized.txt`` (the 3,054
    molecules that failed the QM9 consistency check; PyG skips them, and so do we:
    9 header lines, then one line per molecule whose first field is its index, then
    2 footer lines). Only the atom block of the SDF is read: bonds are perceived
    from the coordinates exactly as for qm9pack, so both sources featurise alike.
"""

from __future__ import annotations

import csv
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ccvae.errors import DataError

__all__ = [
    "QM9_FULL_SIZE",
    "RawMolecule",
    "QM9Source",
    "find_qm9pack_data_dir",
    "resolve_source",
    "scan_source",
    "parse_record",
    "read_uncharacterized",
]

#: Molecules in QM9 after removing the 3,054 uncharacterized ones.
QM9_FULL_SIZE = 130_831

_CSV_NAMES = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
_SYMBOL_Z = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
_CSV_COLUMNS = ("Index", "SMILES", "Elements", "XYZ_Ang")


@dataclass
class RawMolecule:
    """One molecule as read from the source: index, SMILES (None if the source has
    none), atomic numbers (n,) and DFT coordinates (n, 3) in Angstrom."""

    index: int
    smiles: str | None
    z: np.ndarray
    pos: np.ndarray


@dataclass
class QM9Source:
    """A located QM9 source.

    kind:   "qm9pack-csv" or "pyg-raw-sdf".
    root:   the folder it was found in.
    files:  the files its content depends on (the cache key covers them).
    uncharacterized: PyG's list of molecules to skip (None: none given).
    """

    kind: str
    root: Path
    files: list[Path]
    uncharacterized: Path | None = None

    def describe(self) -> str:
        if self.kind == "qm9pack-csv":
            return f"QM9 DFT geometries from the CSV files of the PyPI package qm9pack ({self.root})"
        extra = "" if self.uncharacterized else " (no uncharacterized.txt: nothing skipped)"
        return f"QM9 DFT geometries from PyTorch Geometric raw files ({self.root}){extra}"


def find_qm9pack_data_dir() -> Path:
    """The ``data/`` folder of the installed ``qm9pack``, found without importing it."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "QM9: the PyPI package `qm9pack` is not installed. Install it "
            "(`pip install qm9pack`, it is in requirements.txt) or pass `data_dir` "
            "pointing at PyTorch Geometric's QM9 folder (with raw/gdb9.sdf)."
        )
    for loc in spec.submodule_search_locations:
        data = Path(loc) / "data"
        if all((data / n).is_file() for n in _CSV_NAMES):
            return data
    raise DataError(
        f"QM9: qm9pack is installed at {list(spec.submodule_search_locations)} but its "
        f"data/ folder lacks {', '.join(_CSV_NAMES)}; reinstall it (`pip install "
        "--force-reinstall qm9pack`)."
    )


def _csv_source(folder: Path) -> QM9Source | None:
    parts = sorted(folder.glob("qm9_part*.csv"))
    if not parts:
        return None
    return QM9Source("qm9pack-csv", folder, parts)


def _sdf_source(folder: Path) -> QM9Source | None:
    for cand in (folder / "raw", folder):
        sdf = cand / "gdb9.sdf"
        if sdf.is_file():
            unchar = cand / "uncharacterized.txt"
            files = [sdf] + ([unchar] if unchar.is_file() else [])
            return QM9Source("pyg-raw-sdf", cand, files, unchar if unchar.is_file() else None)
    return None


def resolve_source(data_dir: str | Path | None) -> QM9Source:
    """Locate QM9: qm9pack when ``data_dir`` is None, else a folder holding either
    PyG's raw files (``gdb9.sdf`` in it or in ``raw/``) or qm9pack-style
    ``qm9_part*.csv`` files, or the path of a ``gdb9.sdf`` file itself."""
    if data_dir is None:
        src = _csv_source(find_qm9pack_data_dir())
        assert src is not None
        return src
    path = Path(data_dir).expanduser()
    if path.is_file():
        if path.name.endswith(".sdf"):
            unchar = path.parent / "uncharacterized.txt"
            files = [path] + ([unchar] if unchar.is_file() else [])
            return QM9Source("pyg-raw-sdf", path.parent, files, unchar if unchar.is_file() else None)
        raise DataError(f"QM9: `data_dir` {path} is a file but not an .sdf file")
    if not path.is_dir():
        raise DataError(f"QM9: `data_dir` {path} does not exist")
    src = _sdf_source(path) or _csv_source(path)
    if src is None:
        raise DataError(
            f"QM9: `data_dir` {path} holds neither PyTorch Geometric raw files "
            "(raw/gdb9.sdf, raw/uncharacterized.txt) nor qm9pack CSVs (qm9_part*.csv). "
            "Leave `data_dir` unset to read the installed qm9pack."
        )
    return src


def read_uncharacterized(path: Path) -> set[int]:
    """QM9 indices listed in PyG's ``uncharacterized.txt`` (lines 10 .. -3)."""
    lines = Path(path).read_text().split("\n")[9:-2]
    out: set[int] = set()
    for k, line in enumerate(lines, start=10):
        if not line.strip():
            continue
        head = line.split()[0]
        if not head.isdigit():
            raise DataError(
                f"QM9: {path} line {k}: expected a molecule index first, got {head!r} "
                "(is this PyG's uncharacterized.txt?)"
            )
        out.add(int(head))
    return out


def _scan_csv(src: QM9Source) -> tuple[np.ndarray, list[bytes], list[int]]:
    indices: list[int] = []
    records: list[bytes] = []
    header_ref: list[str] | None = None
    for path in src.files:
        data = path.read_bytes()
        lines = data.split(b"\n")
        header = next(csv.reader([lines[0].decode("utf-8", "replace")]))
        missing = [c for c in _CSV_COLUMNS if c not in header]
        if missing or header[:2] != ["XYZ_file", "Index"]:
            raise DataError(
                f"QM9: {path} is not a qm9pack CSV (header lacks {missing or 'XYZ_file,Index'})"
            )
        if header_ref is None:
            header_ref = header
        elif header != header_ref:
            raise DataError(f"QM9: {path} has different columns from {src.files[0]}")
        for line in lines[1:]:
            if not line.strip():
                continue
            # The first field (the xyz file name) holds no comma, the second is Index.
            try:
                indices.append(int(line.split(b",", 2)[1]))
            except (IndexError, ValueError) as exc:
                raise DataError(f"QM9: {path}: malformed line {line[:60]!r}") from exc
            records.append(line)
    assert header_ref is not None
    cols = [header_ref.index(c) for c in _CSV_COLUMNS]
    return np.asarray(indices, dtype=np.int64), records, cols

_TITLE_INDEX = re.compile(rb"gdb_?(\d+)")


def _scan_sdf(src: QM9Source) -> tuple[np.ndarray, list[bytes]]:
    sdf = src.files[0]
    data = sdf.read_bytes().replace(b"\r\n", b"\n")
    blocks = [b for b in data.split(b"$$$$\n") if b.strip()]
    if blocks and blocks[-1].rstrip().endswith(b"$$$$"):
        blocks[-1] = blocks[-1].rstrip()[:-4]
    skip = read_uncharacterized(src.uncharacterized) if src.uncharacterized else set()
    indices: list[int] = []
    records: list[bytes] = []
    for pos, block in enumerate(blocks):
        title = block.split(b"\n", 1)[0].strip()
        m = _TITLE_INDEX.fullmatch(title)
        idx = int(m.group(1)) if m else pos + 1  # PyG numbers molecules by position
        if idx in skip:
            continue
        indices.append(idx)
        records.append(block)
    return np.asarray(indices, dtype=np.int64), records


def scan_source(src: QM9Source) -> tuple[np.ndarray, list[bytes], list[int] | None]:
    """Read the source: (QM9 indices int64 (M,), one raw record per molecule,
    CSV column positions or None). Raises ``DataError`` on duplicate indices."""
    if src.kind == "qm9pack-csv":
        idx, recs, layout = _scan_csv(src)
    elif src.kind == "pyg-raw-sdf":
        idx, recs = _scan_sdf(src)
        layout: list[int] | None = None
    else:  # pragma: no cover - QM9Source is built here only
        raise DataError(f"QM9: unknown source kind {src.kind!r}")
    if len(idx) == 0:
        raise DataError(f"QM9: no molecules found in {', '.join(map(str, src.files))}")
    uniq, counts = np.unique(idx, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"QM9: duplicate molecule indices in the source, e.g. {uniq[counts > 1][:5].tolist()}")
    return idx, recs, layout


def _parse_csv(record: bytes, layout: list[int]) -> RawMolecule:
    row = next(csv.reader([record.decode("utf-8")]))
    i_idx, i_smi, i_el, i_xyz = layout
    symbols = [s.strip().strip("'\"") for s in row[i_el].strip().strip("[]").split(",")]
    try:
        z = np.array([_SYMBOL_Z[s] for s in symbols], dtype=np.int64)
    except KeyError as exc:
        raise DataError(f"QM9 molecule {row[i_idx]}: unknown element {exc.args[0]!r}") from exc
    # Not json: five QM9 rows hold numbers like "0." (module docstring).
    flat = row[i_xyz].replace("[", " ").replace("]", " ").split(",")
    try:
        pos = np.array([float(v) for v in flat], dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"QM9 molecule {row[i_idx]}: unreadable coordinates ({exc})") from exc
    if pos.size != 3 * z.size:
        raise DataError(
            f"QM9 molecule {row[i_idx]}: {z.size} elements but {pos.size} coordinate values"
        )
    return RawMolecule(int(row[i_idx]), row[i_smi], z, pos.reshape(-1, 3))


def _parse_sdf(record: bytes, index: int) -> RawMolecule:
    lines = record.decode("utf-8", "replace").split("\n")
    try:
        n_atoms = int(lines[3][0:3])
        z = np.empty(n_atoms, dtype=np.int64)
        pos = np.empty((n_atoms, 3), dtype=np.float64)
        for k in range(n_atoms):
            parts = lines[4 + k].split()
            pos[k] = (float(parts[0]), float(parts[1]), float(parts[2]))
            z[k] = _SYMBOL_Z[parts[3]]
    except (IndexError, ValueError, KeyError) as exc:
        raise DataError(f"QM9 molecule {index}: unreadable SDF atom block ({exc!r})") from exc
    return RawMolecule(index, None, z, pos)


def parse_record(record: bytes, index: int, layout: list[int] | None) -> RawMolecule:
    """Parse one raw record from ``scan_source`` (CSV line when ``layout`` is given)."""
    if layout is not None:
        return _parse_csv(record, layout)
    return _parse_sdf(record, index)
