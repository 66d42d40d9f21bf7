"""Labeled Faces in the Wild (Huang, Ramesh, Berg and Learned-Miller 2007), offline first.

The setting of the write-up: people with at least 70 images, the funneled faces cropped
by scikit-learn's default slice ``(70:195, 78:172)``, resized by 0.4 and made grey, so
1,288 images of 50x37 pixels of 7 people.

Sources, in order (``load_lfw``):

1. ``data_dir`` (``--data-dir``), else ``$CCVAE_DATA``: a ``.npz`` file with ``images``,
   ``target``, ``target_names`` (or a folder holding ``lfw_people_min<N>.npz`` directly
   or in ``lfw/``), or scikit-learn's ``lfw_home`` layout (the folder itself, or a folder
   holding ``lfw_home/``), read with ``fetch_lfw_people(..., download_if_missing=False)``;
2. ``<repo>/../shared/data/lfw/lfw_people_min70.npz``;
3. scikit-learn's own data home (``$SCIKIT_LEARN_DATA`` or ``~/scikit_learn_data``) when it
   already holds ``lfw_home``;
4. ``skimage.data.lfw_subset()``: 100 face and 100 non-face crops of 25x25 pixels, with
   the labels face / non-face, marked as a subset.

Splits are stratified by class and seeded (70/15/15 by default). ``Split.index`` is the
row in the source arrays (the npz, scikit-learn's returned order, or skimage's array).
"""

from __future__ import annotations

import os
import re
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ccvae.data.base import DatasetBundle, Split
from ccvae.data.paths import SourceInfo, shared_data_dir, user_data_dir
from ccvae.data.splits import stratified_split
from ccvae.errors import ConfigError, DataError

LFW_NPZ_NAME = "lfw_people_min70.npz"
NPZ_KEYS = ("images", "target", "target_names")
# scikit-learn's default crop of the 250x250 funneled images: (rows, columns)
LFW_SLICE = (slice(70, 195), slice(78, 172))
# fetch_lfw_people refuses to run without these three files in lfw_home
LFW_PAIRS_FILES = ("pairsDevTrain.txt", "pairsDevTest.txt", "pairs.txt")
SKIMAGE_LABELS = ["face", "non-face"]
_NPZ_MIN_RE = re.compile(r"lfw_people_min(\d+)\.npz$")


def lfw_image_shape(resize: float | None) -> tuple[int, int]:
    """(height, width) that ``fetch_lfw_people`` gives with the default slice:
    ``int(resize * 125), int(resize * 94)``; 0.4 gives (50, 37)."""
    h = LFW_SLICE[0].stop - LFW_SLICE[0].start
    w = LFW_SLICE[1].stop - LFW_SLICE[1].start
    if resize is None:
        return h, w
    return int(float(resize) * h), int(float(resize) * w)


def _check_settings(min_faces_per_person: int, resize: float | None) -> None:
    if (
        isinstance(min_faces_per_person, bool)
        or not isinstance(min_faces_per_person, (int, np.integer))
        or min_faces_per_person < 0
    ):
        raise ConfigError(
            f"min_faces_per_person must be a non-negative integer, got {min_faces_per_person!r}"
        )
    if resize is not None and not (isinstance(resize, (int, float)) and 0 < resize <= 1):
        raise ConfigError(f"resize must be a number in (0, 1] or None, got {resize!r}")


# --------------------------------------------------------------------------- npz


def read_lfw_npz(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read an npz with ``images`` (N, H, W), ``target`` (N,), ``target_names`` (K,).

    Returns float32 images in [0, 1] (uint8 and 0..255 float images are divided by
    255), int64 targets and the names as a list of str. Raises :class:`DataError` naming
    the file when it is not a readable npz, lacks a key, or the arrays disagree.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in NPZ_KEYS if k not in z.files]
            if missing:
                raise DataError(
                    f"{path} lacks the array(s) {', '.join(missing)}; an LFW npz must hold "
                    f"{', '.join(NPZ_KEYS)} (as fetch_lfw_people returns them)."
                )
            images, target, names = (z[k] for k in NPZ_KEYS)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(
            f"{path} is not a readable npz file or is truncated ({type(e).__name__}: {e}). "
            "Copy it again (its MD5 is in shared/data/lfw/SOURCE.md)."
        ) from None
    if images.ndim != 3 or target.ndim != 1 or names.ndim != 1 or len(images) != len(target):
        raise DataError(
            f"{path}: images {images.shape}, target {target.shape} and target_names "
            f"{names.shape} do not fit together; expected (N, H, W), (N,), (K,)."
        )
    if not np.issubdtype(target.dtype, np.integer) or (
        target.size and (target.min() < 0 or target.max() >= len(names))
    ):
        raise DataError(f"{path}: target must hold integers in 0..{len(names) - 1}")
    if images.dtype == np.uint8 or (images.size and float(images.max()) > 1.0):
        x = images.astype(np.float32) / np.float32(255.0)
    else:
        x = images.astype(np.float32)
    return x, target.astype(np.int64), [str(n) for n in names]


class _SettingMismatch(DataError):
    """An intact npz made with other settings than the ones asked for."""


def _npz_min_faces(path: Path) -> int | None:
    m = _NPZ_MIN_RE.search(path.name)
    return int(m.group(1)) if m else None


def find_lfw_npz(root: str | os.PathLike, min_faces_per_person: int = 70) -> Path | None:
    """The LFW npz under ``root``: ``root`` itself when it is a file, else a
    ``lfw_people*.npz`` in ``root`` or ``root/lfw``. Among several, the one made with the
    largest minimum N (``lfw_people_min<N>.npz``) not above ``min_faces_per_person``;
    when none fits, the first one (loading it then says why it does not fit)."""
    root = Path(root)
    if root.is_file():
        return root
    found = [
        p
        for folder in (root, root / "lfw")
        if folder.is_dir()
        for p in sorted(folder.glob("lfw_people*.npz"))
    ]
    fitting = [(_npz_min_faces(p) or 0, p) for p in found]
    fitting = [(n, p) for n, p in fitting if n <= min_faces_per_person]
    if fitting:
        return max(fitting, key=lambda t: t[0])[1]
    return found[0] if found else None


def _filter_people(
    images: np.ndarray, target: np.ndarray, names: list[str], min_faces: int, where: Path
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Keep people with at least ``min_faces`` images; relabel 0..K-1 in name order.
    Returns the images, targets, names and the kept source rows."""
    counts = np.bincount(target, minlength=len(names))
    keep_class = np.flatnonzero(counts >= min_faces)
    if keep_class.size == 0:
        raise DataError(
            f"{where}: no person has {min_faces} or more images (the most is "
            f"{int(counts.max()) if counts.size else 0}); lower min_faces_per_person."
        )
    rows = np.flatnonzero(np.isin(target, keep_class))
    relabel = np.full(len(names), -1, dtype=np.int64)
    relabel[keep_class] = np.arange(keep_class.size)
    return images[rows], relabel[target[rows]], [names[c] for c in keep_class], rows


# ---------------------------------------------------------------------- lfw_home


def find_lfw_home(root: str | os.PathLike) -> Path | None:
    """``root`` when it is an ``lfw_home`` folder (it holds ``lfw_funneled/``), else
    ``root/lfw_home`` or ``root/lfw/lfw_home`` when they exist; None otherwise."""
    root = Path(root)
    for candidate in (root, root / "lfw_home", root / "lfw" / "lfw_home"):
        if (candidate / "lfw_funneled").is_dir() or (
            candidate.name == "lfw_home" and candidate.is_dir()
        ):
            return candidate
    return None


def read_lfw_home(
    lfw_home: str | os.PathLike, min_faces_per_person: int = 70, resize: float | None = 0.4
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read scikit-learn's ``lfw_home`` with ``fetch_lfw_people(download_if_missing=False)``.

    Returns float32 grey images in [0, 1] of :func:`lfw_image_shape`, int64 targets and
    the names. scikit-learn caches its result with joblib inside ``lfw_home``.
    """
    lfw_home = Path(lfw_home)
    missing = [f for f in LFW_PAIRS_FILES if not (lfw_home / f).is_file()]
    if not (lfw_home / "lfw_funneled").is_dir():
        missing.insert(0, "lfw_funneled/")
    if missing:
        raise DataError(
            f"{lfw_home} is not a complete scikit-learn lfw_home: it lacks "
            f"{', '.join(missing)}. fetch_lfw_people needs the funneled images in "
            "lfw_funneled/<Person_Name>/ and the three pairs files."
        )
    from sklearn.datasets import fetch_lfw_people

    try:
        bunch = fetch_lfw_people(
            data_home=str(lfw_home.parent),
            download_if_missing=False,
            min_faces_per_person=int(min_faces_per_person),
            resize=resize,
        )
    except (OSError, ValueError, RuntimeError) as e:
        # ValueError: "min_faces_per_person=... is too restrictive"; OSError: unreadable
        # JPEG or a missing file; RuntimeError: a JPEG that decodes to nothing.
        raise DataError(
            f"scikit-learn could not read LFW from {lfw_home} with "
            f"min_faces_per_person={min_faces_per_person}, resize={resize}: {e}"
        ) from None
    images = np.asarray(bunch.images, dtype=np.float32)
    return images, np.asarray(bunch.target, dtype=np.int64), [str(n) for n in bunch.target_names]


def sklearn_data_home() -> Path:
    """scikit-learn's data home (``$SCIKIT_LEARN_DATA`` or ``~/scikit_learn_data``),
    computed without ``sklearn.datasets.get_data_home``, which creates the folder."""
    return Path(os.environ.get("SCIKIT_LEARN_DATA", "~/scikit_learn_data")).expanduser()


# ----------------------------------------------------------------------- bundles


def _bundle(
    images: np.ndarray,
    target: np.ndarray,
    names: list[str],
    *,
    seed: int,
    fractions: Sequence[float],
    source: str,
    description: str,
    is_subset: bool,
    root: Path | None,
    rows: np.ndarray | None = None,
    extras: dict | None = None,
) -> DatasetBundle:
    n = len(images)
    rows = np.arange(n) if rows is None else rows
    flat = np.ascontiguousarray(images, dtype=np.float32).reshape(n, -1)
    parts = stratified_split(target, fractions, seed)

    def split(idx: np.ndarray) -> Split:
        return Split(
            x=torch.from_numpy(flat[idx].copy()),
            y=torch.from_numpy(target[idx].astype(np.int64)),
            index=torch.from_numpy(rows[idx].astype(np.int64)),
        )

    return DatasetBundle(
        name="lfw",
        source=source,
        description=description,
        is_subset=is_subset,
        input_shape=tuple(int(s) for s in images.shape[1:]),
        label_names=list(names),
        train=split(parts[0]),
        val=split(parts[1]),
        test=split(parts[2]),
        seed=seed,
        root=root,
        extras={"index_space": "rows of the source arrays", **(extras or {})},
    )


def _people_description(n: int, k: int, min_faces: int, shape: tuple[int, ...], where: str) -> str:
    return (
        f"LFW people with at least {min_faces} images ({n} funneled grey faces of "
        f"{k} people, {shape[0]}x{shape[1]}) {where}"
    )


def _from_npz(
    path: Path, kind: str, min_faces: int, resize: float | None, seed: int, fractions
) -> DatasetBundle:
    images, target, names = read_lfw_npz(path)
    stored_min = _npz_min_faces(path)
    if stored_min is not None and min_faces < stored_min:
        raise _SettingMismatch(
            f"{path} only holds people with at least {stored_min} images, but "
            f"min_faces_per_person={min_faces} was asked; use an lfw_home for that setting."
        )
    if resize is not None and images.shape[1:] != lfw_image_shape(resize):
        raise _SettingMismatch(
            f"{path} holds {images.shape[1]}x{images.shape[2]} images, but resize={resize} "
            f"gives {lfw_image_shape(resize)[0]}x{lfw_image_shape(resize)[1]}; use the "
            "npz's own setting (resize=0.4 for lfw_people_min70.npz) or an lfw_home."
        )
    images, target, names, rows = _filter_people(images, target, names, min_faces, path)
    return _bundle(
        images,
        target,
        names,
        seed=seed,
        fractions=fractions,
        source=f"npz:{path}",
        description=_people_description(len(images), len(names), min_faces, images.shape[1:], f"from {path}"),
        is_subset=False,
        root=path,
        rows=rows,
        extras={"source_kind": kind},
    )


def _from_lfw_home(
    lfw_home: Path, kind: str, min_faces: int, resize: float | None, seed: int, fractions
) -> DatasetBundle:
    images, target, names = read_lfw_home(lfw_home, min_faces, resize)
    return _bundle(
        images,
        target,
        names,
        seed=seed,
        fractions=fractions,
        source=f"sklearn-lfw_home:{lfw_home}",
        description=_people_description(
            len(images), len(names), min_faces, images.shape[1:],
            f"read by scikit-learn from {lfw_home}",
        ),
        is_subset=False,
        root=lfw_home,
        extras={"source_kind": kind},
    )


def _from_skimage(seed: int, fractions, reasons: list[str]) -> DatasetBundle:
    from skimage.data import lfw_subset

    images = np.asarray(lfw_subset())
    if images.dtype == np.uint8 or (images.size and float(images.max()) > 1.0):
        images = images.astype(np.float32) / np.float32(255.0)
    images = images.astype(np.float32)
    # skimage documents the order: the first 100 are faces, the next 100 non-faces
    half = len(images) // 2
    target = np.concatenate([np.zeros(half, np.int64), np.ones(len(images) - half, np.int64)])
    return _bundle(
        images,
        target,
        SKIMAGE_LABELS,
        seed=seed,
        fractions=fractions,
        source="skimage-lfw_subset",
        description=(
            "a 200-image SUBSET from skimage.data.lfw_subset(): 100 LFW face crops and "
            "100 non-face background crops, 25x25 grey, labelled face / non-face (not the "
            "LFW people set; the 1,288-face LFW data was not found)"
        ),
        is_subset=True,
        root=None,
        extras={"source_kind": "skimage", "fallback_reasons": list(reasons)},
    )


def load_lfw(
    data_dir: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    min_faces_per_person: int = 70,
    resize: float | None = 0.4,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    use_sklearn_home: bool = True,
    allow_subset: bool = True,
) -> DatasetBundle:
    """Load LFW people as a :class:`DatasetBundle` (flattened float32 in [0, 1]).

    data_dir:  an npz file, or a folder with an LFW npz or an ``lfw_home``; it must hold
               one. None: ``$CCVAE_DATA``, the shared npz, scikit-learn's data home, then
               the skimage subset, in that order.
    seed:      seeds the stratified split.
    min_faces_per_person, resize: scikit-learn's settings (the write-up's 70 and 0.4).
               An npz is used only when it matches them (its image size, and the N in
               ``lfw_people_min<N>.npz``); people below the minimum are dropped.
    fractions: train/validation/test fractions, stratified by person.
    use_sklearn_home: look in scikit-learn's default data home.
    allow_subset: fall back to the skimage face/non-face subset; False raises instead.
    """
    _check_settings(min_faces_per_person, resize)
    args = (min_faces_per_person, resize, seed, fractions)
    reasons: list[str] = []

    def from_root(root: Path, kind: str) -> DatasetBundle | None:
        """Load from a user folder/file; None when it holds no LFW."""
        npz = find_lfw_npz(root, min_faces_per_person)
        home = find_lfw_home(root) if root.is_dir() else None
        if npz is not None:
            try:
                return _from_npz(npz, kind, *args)
            except _SettingMismatch as e:
                if home is None:
                    raise
                reasons.append(str(e))  # the lfw_home beside it can give these settings
        if home is not None:
            return _from_lfw_home(home, kind, *args)
        return None

    # 1. an explicit file or folder, or $CCVAE_DATA
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not root.exists():
            raise DataError(
                f"data path {root} does not exist: pass an LFW npz, or a folder that holds "
                "lfw_people_min70.npz or scikit-learn's lfw_home, or leave --data-dir out."
            )
        bundle = from_root(root, "data_dir")
        if bundle is None:
            raise DataError(
                f"no LFW data under {root}: expected an npz with images, target and "
                "target_names (lfw_people_min70.npz, directly or in lfw/), or scikit-learn's "
                "lfw_home folder (with lfw_funneled/ and the pairs files)."
            )
        return bundle
    env_root = user_data_dir()
    if env_root is not None:
        if not env_root.exists():
            raise DataError(
                f"CCVAE_DATA={env_root} does not exist: point it at a folder that holds "
                "the data, or unset it."
            )
        bundle = from_root(env_root, "data_dir")
        if bundle is not None:
            return bundle
        reasons.append(f"CCVAE_DATA={env_root} holds no LFW data")
        warnings.warn(f"CCVAE_DATA={env_root} holds no LFW data; trying other sources")

    # 2. the shared npz
    shared = shared_data_dir() / "lfw" / LFW_NPZ_NAME
    if shared.is_file():
        try:
            return _from_npz(shared, "shared", *args)
        except _SettingMismatch as e:
            reasons.append(str(e))  # a setting the shared file cannot give
    else:
        reasons.append(f"no shared file at {shared}")

    # 3. scikit-learn's data home
    if use_sklearn_home:
        home = sklearn_data_home() / "lfw_home"
        if (home / "lfw_funneled").is_dir():
            return _from_lfw_home(home, "sklearn_home", *args)
        reasons.append(f"no lfw_home in scikit-learn's data home {home.parent}")

    # 4. the skimage subset
    if not allow_subset:
        raise DataError(
            "LFW people was not found: "
            + "; ".join(reasons)
            + ". Pass lfw_people_min70.npz or an lfw_home folder as --data-dir (or set "
            "CCVAE_DATA), or allow the skimage subset."
        )
    return _from_skimage(seed, fractions, reasons)


def lfw_source_info(
    data_dir: str | os.PathLike | None = None, min_faces_per_person: int = 70
) -> SourceInfo:
    """Which source :func:`load_lfw` would use, from file names only (no reading)."""

    def probe(root: Path, kind: str) -> SourceInfo | None:
        npz = find_lfw_npz(root, min_faces_per_person) if root.exists() else None
        if npz is not None:
            return SourceInfo("lfw", kind, npz, False, f"LFW people from {npz}")
        home = find_lfw_home(root) if root.is_dir() else None
        if home is not None:
            return SourceInfo("lfw", kind, home, False, f"LFW people read by scikit-learn from {home}")
        return None

    if data_dir is not None:
        root = Path(data_dir).expanduser()
        return probe(root, "data_dir") or SourceInfo(
            "lfw", "unavailable", root, None, f"no LFW data under {root}"
        )
    env_root = user_data_dir()
    if env_root is not None and (info := probe(env_root, "data_dir")) is not None:
        return info
    shared = shared_data_dir() / "lfw" / LFW_NPZ_NAME
    if shared.is_file() and min_faces_per_person >= 70:
        return SourceInfo("lfw", "shared", shared, False, f"LFW people (>= 70 images each) from {shared}")
    home = sklearn_data_home() / "lfw_home"
    if (home / "lfw_funneled").is_dir():
        return SourceInfo("lfw", "sklearn_home", home, False, f"LFW people read by scikit-learn from {home}")
    return SourceInfo(
        "lfw",
        "skimage",
        None,
        True,
        "no LFW people data: the skimage 200-image face / non-face subset (25x25)",
    )
