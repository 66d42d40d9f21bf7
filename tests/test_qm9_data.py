"""QM9 loading: qm9pack CSVs, PyG raw SDF files, the cache, the padded view, look-ups."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem

import ccvae.data.qm9 as qm9
import ccvae.data.torsions as torsions_mod
from ccvae.data.qm9 import QM9Torsions, get_molecule, load_qm9, load_qm9_arrays
from ccvae.data.qm9_featurise import cache_file, load_or_build
from ccvae.data.qm9_sources import find_qm9pack_data_dir, parse_record, resolve_source
from ccvae.errors import ConfigError, DataError

# Small molecules 1..20 (1-6 have no torsion; 4 is acetylene, whose coordinates are
# written "0." in qm9pack, not valid JSON), 14 = ethanol, 105 needs the Hueckel
# retry, 133831 fails bond perception either way, and a few larger molecules.
SMALL_INDICES = list(range(1, 21)) + [105, 2000, 50000, 133831]


def _rows_by_index(indices: list[int]) -> tuple[bytes, dict[int, bytes]]:
    """Header line and the raw qm9pack CSV lines of the given QM9 indices."""
    wanted = set(indices)
    found: dict[int, bytes] = {}
    header = b""
    for part in sorted(find_qm9pack_data_dir().glob("qm9_part*.csv")):
        lines = part.read_bytes().split(b"\n")
        header = lines[0]
        for line in lines[1:]:
            if line:
                idx = int(line.split(b",", 2)[1])
                if idx in wanted:
                    found[idx] = line
    assert set(found) == wanted
    return header, found


@pytest.fixture(scope="module")
def qm9_rows() -> tuple[bytes, dict[int, bytes]]:
    return _rows_by_index(SMALL_INDICES)


def write_csv_source(folder: Path, rows: tuple[bytes, dict[int, bytes]], indices: list[int]) -> Path:
    header, lines = rows
    folder.mkdir(parents=True, exist_ok=True)
    body = b"\n".join([header] + [lines[i] for i in indices]) + b"\n"
    (folder / "qm9_part1.csv").write_bytes(body)
    return folder


@pytest.fixture
def small_csv(tmp_path: Path, qm9_rows) -> Path:
    return write_csv_source(tmp_path / "csv", qm9_rows, SMALL_INDICES)


def _load(data_dir: Path, cache: Path, **kw):
    return load_qm9(data_dir, cache_dir=cache, workers=0, progress=False, **kw)


# ---- qm9pack CSV path -------------------------------------------------------------


def test_qm9pack_subset_padded_view(tmp_path: Path) -> None:
    b = load_qm9(max_molecules=60, seed=3, cache_dir=tmp_path, workers=0, progress=False)
    assert b.name == "qm9" and b.is_subset
    assert b.extras["n_source"] == 130_831
    k = b.extras["max_torsions"]
    assert b.input_shape == (k, 2) and b.input_dim == 2 * k
    n = len(b.train) + len(b.val) + len(b.test)
    assert n == 60 - len(b.extras["no_torsion_indices"]) - b.extras["n_failed"]
    idx = torch.cat([b.train.index, b.val.index, b.test.index])
    assert len(set(idx.tolist())) == n
    for split in (b.train, b.val, b.test):
        assert split.x.dtype == torch.float32 and split.mask.dtype == torch.bool
        assert split.x.shape == (len(split), 2 * k) and split.mask.shape == (len(split), k)
        norms = split.x.view(len(split), k, 2).norm(dim=-1)
        assert torch.allclose(norms[split.mask], torch.ones(int(split.mask.sum())), atol=1e-6)
        assert torch.all(norms[~split.mask] == 0)
        # masks are prefixes: slots 0..T-1 are real
        assert torch.all(split.mask[:, :-1] | ~split.mask[:, 1:])
    assert k == max(int(s.mask.sum(1).max()) for s in (b.train, b.val, b.test) if len(s))
    # No cache is written for a subset featurised on the spot.
    assert b.extras["cache"]["cache_path"] is None and not list(tmp_path.glob("*.npz"))

    # The interleaved layout against the molecule itself, and y = heavy atoms.
    for row in range(3):
        mol = get_molecule(int(b.train.index[row]), source=b)
        t = mol.torsions
        x = b.train.x[row].numpy()
        np.testing.assert_allclose(x[0 : 2 * len(t) : 2], np.cos(np.radians(t.angles)), atol=1e-6)
        np.testing.assert_allclose(x[1 : 2 * len(t) : 2], np.sin(np.radians(t.angles)), atol=1e-6)
        assert int(b.train.y[row]) == mol.mol.GetNumHeavyAtoms()
        assert int(b.train.mask[row].sum()) == len(t)

    same = load_qm9(max_molecules=60, seed=3, cache_dir=tmp_path, workers=0, progress=False)
    assert torch.equal(same.train.index, b.train.index) and torch.equal(same.test.x, b.test.x)
    other = load_qm9(max_molecules=60, seed=4, cache_dir=tmp_path, workers=0, progress=False)
    assert set(other.train.index.tolist()) != set(b.train.index.tolist())


def test_csv_parsing_handles_non_json_coordinates(qm9_rows) -> None:
    header, lines = qm9_rows
    import csv

    cols = next(csv.reader([header.decode()]))
    layout = [cols.index(c) for c in ("Index", "SMILES", "Elements", "XYZ_Ang")]
    raw = parse_record(lines[4], 4, layout)  # acetylene: "[[0.5995394918,0.,1.],...]"
    assert raw.smiles == "C#C" and raw.z.tolist() == [6, 6, 1, 1]
    np.testing.assert_allclose(raw.pos[0], [0.5995394918, 0.0, 1.0])
    np.testing.assert_allclose(raw.pos[3], [1.6616385861, 0.0, 1.0])


def test_small_csv_source_failures_hueckel_and_no_torsions(tmp_path: Path, small_csv: Path) -> None:
    b = _load(small_csv, tmp_path / "cache")
    ex = b.extras
    assert not b.is_subset and ex["n_source"] == len(SMALL_INDICES)
    assert ex["n_failed"] == 1 and ex["failures"][0]["index"] == 133831
    assert "bond perception failed" in ex["failures"][0]["reason"]
    assert ex["n_hueckel"] >= 1  # molecule 105
    assert {1, 2, 3, 4, 5, 6} <= set(ex["no_torsion_indices"])
    kept = set(torch.cat([b.train.index, b.val.index, b.test.index]).tolist())
    assert 105 in kept and 14 in kept and 1 not in kept and 133831 not in kept
    assert "failed bond perception" in b.description and "without torsions" in b.description
    # The failure is reported by index, SMILES and reason.
    with pytest.raises(DataError, match=r"133831 .*could not be featurised"):
        get_molecule(133831, source=b)


def test_truncation_and_heavy_atoms_only(tmp_path: Path, small_csv: Path) -> None:
    b = _load(small_csv, tmp_path / "cache", max_torsions=5)
    assert b.extras["max_torsions"] == 5 and b.train.x.shape[1] == 10
    counts = b.extras["arrays"].torsion_counts()
    assert b.extras["n_truncated"] == int((counts > 5).sum()) > 0
    assert int(torch.cat([b.train.mask, b.val.mask, b.test.mask]).sum(1).max()) == 5
    heavy = _load(small_csv, tmp_path / "cache", heavy_atoms_only=True)
    full = _load(small_csv, tmp_path / "cache")
    assert heavy.extras["max_torsions"] < full.extras["max_torsions"]
    assert heavy.extras["heavy_atoms_only"] is True
    n_heavy = len(heavy.train) + len(heavy.val) + len(heavy.test)
    assert n_heavy < len(full.train) + len(full.val) + len(full.test)


def test_only_torsionless_molecules_is_a_clear_error(tmp_path: Path, qm9_rows) -> None:
    folder = write_csv_source(tmp_path / "tiny", qm9_rows, [1, 2, 3, 4, 5, 6])
    with pytest.raises(DataError, match="none of the 6 molecules"):
        _load(folder, tmp_path / "cache")


# ---- cache -------------------------------------------------------------------------


def test_cache_is_reused_invalidated_by_version_and_rebuilt_when_corrupt(
    tmp_path: Path, small_csv: Path, monkeypatch
) -> None:
    cache = tmp_path / "cache"
    src = resolve_source(small_csv)
    first, info = load_or_build(src, cache_dir=cache, workers=0, progress=False)
    path = Path(info["cache_path"])
    assert path.exists() and not info["from_cache"]
    again, info2 = load_or_build(src, cache_dir=cache, workers=0, progress=False)
    assert info2["from_cache"]
    np.testing.assert_array_equal(again.tors_angle, first.tors_angle)
    assert again.smiles == first.smiles and again.failed_reason == first.failed_reason

    # A new featuriser version: a new key, a rebuild, and the stale file goes.
    monkeypatch.setattr(torsions_mod, "FEATURISER_VERSION", torsions_mod.FEATURISER_VERSION + 1)
    new_path = cache_file(src, cache)
    assert new_path != path
    _, info3 = load_or_build(src, cache_dir=cache, workers=0, progress=False)
    assert not info3["from_cache"] and new_path.exists() and not path.exists()

    # Corrupt files (garbage, then a truncated copy) are detected and rebuilt.
    good = new_path.read_bytes()
    for damaged in (b"this is not a zip file", good[: len(good) // 2]):
        new_path.write_bytes(damaged)
        with pytest.warns(RuntimeWarning, match="rebuilding"):
            rebuilt, info4 = load_or_build(src, cache_dir=cache, workers=0, progress=False)
        assert not info4["from_cache"] and info4["rebuilt_reason"]
        np.testing.assert_array_equal(rebuilt.tors_angle, first.tors_angle)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert load_or_build(src, cache_dir=cache, workers=0, progress=False)[1]["from_cache"]


def test_a_changed_source_file_invalidates_the_cache(tmp_path: Path, qm9_rows) -> None:
    folder = write_csv_source(tmp_path / "csv", qm9_rows, [7, 8, 13, 14])
    cache = tmp_path / "cache"
    a, _ = load_qm9_arrays(folder, cache_dir=cache, workers=0, progress=False)
    write_csv_source(folder, qm9_rows, [7, 8, 13, 14, 2000])
    b, info = load_qm9_arrays(folder, cache_dir=cache, workers=0, progress=False)
    assert not info["from_cache"] and len(b) == len(a) + 1


def test_workers_give_the_same_result_as_in_process(tmp_path: Path, small_csv: Path) -> None:
    from ccvae.data.qm9_featurise import featurise_records
    from ccvae.data.qm9_sources import scan_source

    idx, recs, layout = scan_source(resolve_source(small_csv))
    one = featurise_records(recs, idx, layout, workers=0, progress=False)
    two = featurise_records(recs, idx, layout, workers=2, progress=False, chunk_size=5)
    np.testing.assert_array_equal(one.index, two.index)
    np.testing.assert_array_equal(one.tors_atoms, two.tors_atoms)
    np.testing.assert_array_equal(one.tors_angle, two.tors_angle)
    np.testing.assert_array_equal(one.failed_index, two.failed_index)


# ---- PyG raw SDF path --------------------------------------------------------------


def write_pyg_raw(root: Path, rows, indices: list[int], skip: list[int]) -> Path:
    """A miniature of PyTorch Geometric's raw/ folder: gdb9.sdf (molecules titled
    gdb_<index>), gdb9.sdf.csv and uncharacterized.txt (9 header lines, one line per
    skipped molecule with its index first, 2 footer lines)."""
    import csv as _csv

    header, lines = rows
    cols = next(_csv.reader([header.decode()]))
    layout = [cols.index(c) for c in ("Index", "SMILES", "Elements", "XYZ_Ang")]
    raw = root / "raw"
    raw.mkdir(parents=True)
    writer = Chem.SDWriter(str(raw / "gdb9.sdf"))
    for i in indices:
        rec = parse_record(lines[i], i, layout)
        rw = Chem.RWMol()
        for z in rec.z:
            rw.AddAtom(Chem.Atom(int(z)))
        mol = rw.GetMol()
        conf = Chem.Conformer(len(rec.z))
        conf.SetPositions(rec.pos)
        mol.AddConformer(conf)
        mol.SetProp("_Name", f"gdb_{i}")
        writer.write(mol)
    writer.close()
    (raw / "gdb9.sdf.csv").write_text("mol_id,A,B,C\n" + "".join(f"gdb_{i},0,0,0\n" for i in indices))
    head = "".join(f"header line {k}\n" for k in range(9))
    body = "".join(f"  {i}   {100000 + i}  C  0.1  0.2\n" for i in skip)
    (raw / "uncharacterized.txt").write_text(head + body + "footer\n")
    return root


def test_pyg_raw_sdf_source(tmp_path: Path, qm9_rows) -> None:
    indices = [7, 13, 14, 15, 105, 2000]
    root = write_pyg_raw(tmp_path / "pyg", qm9_rows, indices, skip=[15])
    src = resolve_source(root)
    assert src.kind == "pyg-raw-sdf" and src.uncharacterized is not None
    sdf, _ = load_qm9_arrays(root, cache_dir=tmp_path / "c1", workers=0, progress=False)
    assert sdf.index.tolist() == [7, 13, 14, 105, 2000]  # 15 is "uncharacterized"
    assert sdf.smiles[sdf.row_of(14)] == "CCO"  # written by RDKit from perceived bonds
    csv_dir = write_csv_source(tmp_path / "csv", qm9_rows, [7, 13, 14, 105, 2000])
    ref, _ = load_qm9_arrays(csv_dir, cache_dir=tmp_path / "c2", workers=0, progress=False)
    # Same molecules, same torsions (the SDF rounds coordinates to 1e-4 Angstrom).
    np.testing.assert_array_equal(sdf.tors_ptr, ref.tors_ptr)
    diff = torsions_mod.wrap_degrees(sdf.tors_angle - ref.tors_angle)
    assert np.abs(diff).max() < 0.5
    b = _load(root, tmp_path / "c1")
    assert b.extras["source_kind"] == "pyg-raw-sdf" and b.source.startswith("pyg-raw-sdf:")
    # The .sdf file itself is accepted too.
    assert resolve_source(root / "raw" / "gdb9.sdf").kind == "pyg-raw-sdf"


def test_bad_uncharacterized_file_is_reported(tmp_path: Path, qm9_rows) -> None:
    root = write_pyg_raw(tmp_path / "pyg", qm9_rows, [7, 14], skip=[])
    (root / "raw" / "uncharacterized.txt").write_text("".join(f"h{k}\n" for k in range(9)) + "oops 1 2\nend\n\n")
    with pytest.raises(DataError, match="uncharacterized.txt line 10"):
        load_qm9_arrays(root, cache_dir=tmp_path / "c", workers=0, progress=False)


@pytest.mark.parametrize("bad", ["missing", "empty", "textfile"])
def test_bad_data_dir(tmp_path: Path, bad: str) -> None:
    if bad == "missing":
        path = tmp_path / "nope"
    elif bad == "empty":
        path = tmp_path
    else:
        path = tmp_path / "x.txt"
        path.write_text("hi")
    with pytest.raises(DataError, match="data_dir"):
        load_qm9(path, progress=False)


@pytest.mark.parametrize("kw", [{"max_molecules": 0}, {"max_torsions": -1}, {"max_molecules": 2.5}])
def test_bad_arguments(kw) -> None:
    with pytest.raises(ConfigError):
        load_qm9(progress=False, **kw)


# ---- the PyG dataset ---------------------------------------------------------------


def test_inmemory_dataset_items_and_batching(tmp_path: Path, small_csv: Path) -> None:
    from torch_geometric.loader import DataLoader

    ds = QM9Torsions(small_csv, cache_dir=tmp_path / "c", workers=0, progress=False)
    assert len(ds) == len(SMALL_INDICES) - 1  # one failure
    ethanol = ds[ds.row_of(14)]
    assert ethanol.smiles == "CCO" and ethanol.qm9_index.tolist() == [14]
    assert ethanol.z.tolist()[:3] == [6, 6, 8] and ethanol.pos.shape == (9, 3)
    assert ethanol.edge_index.shape == (2, 16)  # 8 bonds, both directions
    assert ethanol.torsion_index.shape == (4, 12) and ethanol.torsion_angle.shape == (12,)
    assert torch.all(ethanol.torsion_angle > -180) and torch.all(ethanol.torsion_angle <= 180)
    # Each edge is a bond of the molecule, and each torsion a path along edges.
    edges = set(map(tuple, ethanol.edge_index.T.tolist()))
    for a, b, c, d in ethanol.torsion_index.T.tolist():
        assert {(a, b), (b, c), (c, d)} <= edges
    heavy = QM9Torsions(small_csv, heavy_atoms_only=True, cache_dir=tmp_path / "c", workers=0, progress=False)
    assert heavy[heavy.row_of(14)].torsion_index.shape == (4, 0)

    sub = ds[ds.row_of(13) : ds.row_of(13) + 4]  # propane, ethanol, ... : all have torsions
    batch = next(iter(DataLoader(sub, batch_size=4)))
    assert batch.num_graphs == 4
    assert batch.qm9_index.tolist() == [13, 14, 15, 16]  # identifiers are never shifted
    assert int(batch.torsion_index.max()) < batch.num_nodes
    first, second = sub[0], sub[1]
    shift, off = int(first.z.numel()), int(first.torsion_index.shape[1])
    n1 = second.torsion_index.shape[1]
    assert torch.equal(batch.torsion_index[:, off : off + n1], second.torsion_index + shift)


# ---- look-ups ----------------------------------------------------------------------


def test_get_molecule_by_index_and_smiles(tmp_path: Path, small_csv: Path) -> None:
    b = _load(small_csv, tmp_path / "c")
    m = get_molecule(14, source=b)
    assert m.index == 14 and m.smiles == "CCO" and m.n_torsions == 12
    assert m.mol.GetNumAtoms() == 9 and Chem.MolToSmiles(Chem.RemoveHs(m.mol)) == "CCO"
    for spelling in ("CCO", "OCC", "C(O)C", "[H]OC([H])([H])C"):
        assert get_molecule(smiles=spelling, source=b).index == 14
    x, mask = m.padded(20)
    assert mask.sum() == 12 and x.shape == (40,)
    assert get_molecule(105, source=b).bond_method == "hueckel"


def test_get_molecule_clear_errors(tmp_path: Path, small_csv: Path, monkeypatch) -> None:
    b = _load(small_csv, tmp_path / "c")
    with pytest.raises(DataError, match="QM9 index 0 does not exist"):
        get_molecule(0, source=b)
    with pytest.raises(DataError, match="200000 does not exist"):
        get_molecule(200_000, source=b)
    with pytest.raises(DataError, match="must be an integer"):
        get_molecule("14", source=b)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="not in this dataset .*subset"):
        get_molecule(21, source=b)
    # Against a full-size dataset, a missing index is one of QM9's uncharacterized.
    monkeypatch.setattr(qm9, "QM9_FULL_SIZE", 5)
    with pytest.raises(DataError, match="uncharacterized"):
        get_molecule(21, source=b)
    with pytest.raises(DataError, match="could not be parsed"):
        get_molecule(smiles="C1CC", source=b)
    with pytest.raises(DataError, match="no molecule with SMILES 'CCCCCCCCCCCC'"):
        get_molecule(smiles="CCCCCCCCCCCC", source=b)
    with pytest.raises(DataError, match="non-empty string"):
        get_molecule(smiles="  ", source=b)
    with pytest.raises(ConfigError, match="exactly one"):
        get_molecule(14, smiles="CCO", source=b)


def test_molecule_without_torsions_is_reported_as_such(tmp_path: Path, small_csv: Path) -> None:
    arrays, _ = load_qm9_arrays(small_csv, cache_dir=tmp_path / "c", workers=0, progress=False)
    methane = get_molecule(1, source=arrays)
    assert methane.smiles == "C" and methane.n_torsions == 0
    with pytest.raises(DataError, match=r"QM9 molecule 1 \(C\) has no torsions"):
        methane.require_torsions()
    # Also through a bundle, which leaves such molecules out of its splits.
    b = _load(small_csv, tmp_path / "c")
    assert get_molecule(1, source=b).n_torsions == 0


def test_subset_is_the_same_from_the_cache_or_featurised_on_the_spot(tmp_path: Path, small_csv: Path) -> None:
    full_cache, no_cache = tmp_path / "full", tmp_path / "none"
    load_qm9_arrays(small_csv, cache_dir=full_cache, workers=0, progress=False)  # writes the cache
    a, ia = load_qm9_arrays(small_csv, max_molecules=9, seed=5, cache_dir=full_cache, workers=0, progress=False)
    b, ib = load_qm9_arrays(small_csv, max_molecules=9, seed=5, cache_dir=no_cache, workers=0, progress=False)
    assert ia["from_cache"] and not ib["from_cache"] and not list(no_cache.glob("*"))
    assert ia["is_subset"] and ib["is_subset"]
    assert a.n_records == b.n_records == 9
    np.testing.assert_array_equal(a.index, b.index)
    np.testing.assert_array_equal(a.failed_index, b.failed_index)
    np.testing.assert_array_equal(a.tors_angle, b.tors_angle)
    np.testing.assert_array_equal(a.tors_ptr, b.tors_ptr)
