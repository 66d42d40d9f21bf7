"""LFW: the shared npz, scikit-learn's lfw_home layout, the skimage fallback, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ccvae.data.lfw import LFW_PAIRS_FILES, lfw_image_shape, load_lfw, read_lfw_npz
from ccvae.data.paths import shared_data_dir
from ccvae.errors import ConfigError, DataError

# shared/data/lfw/SOURCE.md
NAMES = ["Ariel Sharon", "Colin Powell", "Donald Rumsfeld", "George W Bush",
         "Gerhard Schroeder", "Hugo Chavez", "Tony Blair"]
COUNTS = [77, 236, 121, 530, 109, 71, 144]
SHARED_NPZ = shared_data_dir() / "lfw" / "lfw_people_min70.npz"


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No CCVAE_DATA, no shared folder, an empty scikit-learn data home."""
    monkeypatch.delenv("CCVAE_DATA", raising=False)
    monkeypatch.setenv("CCVAE_SHARED", str(tmp_path / "no-shared"))
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "sklearn-home"))
    return tmp_path


def write_npz(path: Path, n_per_class=(6, 4, 10), shape=(50, 37), seed=0, **override) -> dict:
    rng = np.random.default_rng(seed)
    target = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)]).astype(np.int64)
    rng.shuffle(target)
    arrays = {
        "images": rng.integers(0, 256, (len(target), *shape), dtype=np.uint8),
        "target": target,
        "target_names": np.array([f"Person {c}" for c in range(len(n_per_class))]),
    }
    arrays.update(override)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return arrays


# ----------------------------------------------------------------- shared npz


@pytest.fixture(scope="module")
def real_lfw():
    if not SHARED_NPZ.is_file():
        pytest.skip(f"the shared LFW npz is not at {SHARED_NPZ}")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("CCVAE_DATA", raising=False)
        return load_lfw(seed=0)


def test_real_lfw_counts_and_provenance(real_lfw):
    b = real_lfw
    assert b.source == f"npz:{SHARED_NPZ}" and b.is_subset is False
    assert b.extras["source_kind"] == "shared"
    assert b.label_names == NAMES
    assert b.input_shape == (50, 37) == lfw_image_shape(0.4)
    assert len(b.train) + len(b.val) + len(b.test) == 1288
    all_y = torch.cat([b.train.y, b.val.y, b.test.y])
    assert torch.bincount(all_y).tolist() == COUNTS
    assert sorted(torch.cat([b.train.index, b.val.index, b.test.index]).tolist()) == list(range(1288))
    assert "1288" in b.description and "7 people" in b.description


def test_real_lfw_split_is_stratified(real_lfw):
    for split, fraction in ((real_lfw.train, 0.7), (real_lfw.val, 0.15), (real_lfw.test, 0.15)):
        counts = torch.bincount(split.y, minlength=7).numpy()
        # largest-remainder rounding: within one image of the exact share, per person
        assert np.all(np.abs(counts - fraction * np.array(COUNTS)) <= 1)


def test_real_lfw_pixels_are_the_npz_over_255(real_lfw):
    with np.load(SHARED_NPZ) as z:
        images, target = z["images"], z["target"]
    rows = real_lfw.test.index.numpy()
    x = real_lfw.test.x.numpy()
    assert x.dtype == np.float32 and x.shape == (len(rows), 50 * 37)
    np.testing.assert_allclose(x, images[rows].reshape(len(rows), -1) / 255.0, atol=1e-7, rtol=0)
    np.testing.assert_array_equal(real_lfw.test.y.numpy(), target[rows])
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_real_lfw_split_is_deterministic(real_lfw):
    again = load_lfw(SHARED_NPZ, seed=0)
    assert torch.equal(again.test.index, real_lfw.test.index)
    assert torch.equal(again.train.x, real_lfw.train.x)
    other = load_lfw(SHARED_NPZ, seed=1)
    assert not torch.equal(other.test.index, real_lfw.test.index)


def test_real_lfw_stricter_minimum_drops_people():
    if not SHARED_NPZ.is_file():
        pytest.skip("no shared LFW npz")
    b = load_lfw(SHARED_NPZ, min_faces_per_person=100)
    kept = [n for n, c in zip(NAMES, COUNTS) if c >= 100]
    assert b.label_names == kept
    all_y = torch.cat([b.train.y, b.val.y, b.test.y])
    assert torch.bincount(all_y).tolist() == [c for c in COUNTS if c >= 100]


def test_npz_cannot_give_other_settings():
    if not SHARED_NPZ.is_file():
        pytest.skip("no shared LFW npz")
    with pytest.raises(DataError, match=r"resize=0.5 gives 62x47"):
        load_lfw(SHARED_NPZ, resize=0.5)
    with pytest.raises(DataError, match=r"at least 70 images, but min_faces_per_person=20"):
        load_lfw(SHARED_NPZ, min_faces_per_person=20)


# ---------------------------------------------------------------- user npz


def test_user_npz_in_folder(isolated):
    arrays = write_npz(isolated / "data" / "lfw" / "lfw_people_min2.npz")
    b = load_lfw(isolated / "data", min_faces_per_person=5)
    # person 1 has only 4 images: dropped; labels renumbered 0..1
    assert b.label_names == ["Person 0", "Person 2"]
    assert torch.bincount(torch.cat([b.train.y, b.val.y, b.test.y])).tolist() == [6, 10]
    rows = b.train.index.numpy()
    np.testing.assert_allclose(
        b.train.x.numpy(), arrays["images"][rows].reshape(len(rows), -1) / 255.0, atol=1e-7, rtol=0
    )
    names = np.array(["Person 0", "Person 1", "Person 2"])
    assert [b.label_names[y] for y in b.train.y.tolist()] == names[arrays["target"][rows]].tolist()


def test_env_points_at_npz(isolated, monkeypatch):
    path = isolated / "mine.npz"
    write_npz(path)
    monkeypatch.setenv("CCVAE_DATA", str(path))
    b = load_lfw(min_faces_per_person=0)
    assert b.source == f"npz:{path}" and b.extras["source_kind"] == "data_dir"
    assert len(b.train) + len(b.val) + len(b.test) == 20


def test_npz_missing_key(isolated):
    path = isolated / "bad.npz"
    np.savez(path, images=np.zeros((2, 50, 37), np.uint8), target=np.zeros(2, np.int64))
    with pytest.raises(DataError, match=r"bad.npz lacks the array\(s\) target_names"):
        read_lfw_npz(path)


def test_npz_truncated(isolated):
    path = isolated / "lfw_people_min70.npz"
    write_npz(path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match=r"not a readable npz file or is truncated"):
        load_lfw(path)


def test_npz_bad_target(isolated):
    path = isolated / "t.npz"
    write_npz(path, target=np.full(20, 7, np.int64))
    with pytest.raises(DataError, match=r"target must hold integers in 0..2"):
        read_lfw_npz(path)


def test_missing_paths_and_bad_settings(isolated, monkeypatch):
    with pytest.raises(DataError, match=r"does not exist.*--data-dir"):
        load_lfw(isolated / "nowhere")
    empty = isolated / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=f"no LFW data under {empty}"):
        load_lfw(empty)
    monkeypatch.setenv("CCVAE_DATA", str(isolated / "typo"))
    with pytest.raises(DataError, match="CCVAE_DATA"):
        load_lfw()
    with pytest.raises(ConfigError, match="resize"):
        load_lfw(resize=0)
    with pytest.raises(ConfigError, match="min_faces_per_person"):
        load_lfw(min_faces_per_person=-1)


# ------------------------------------------------------------ sklearn lfw_home


def make_lfw_home(root: Path, people: dict[str, int], seed: int = 0) -> dict[str, list[Path]]:
    """A tiny lfw_home as fetch_lfw_people expects it: 250x250 RGB JPEGs in
    lfw_funneled/<Person_Name>/<Person_Name>_000k.jpg and the three pairs files."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    home = root / "lfw_home"
    files: dict[str, list[Path]] = {}
    for person, n in people.items():
        folder = home / "lfw_funneled" / person
        folder.mkdir(parents=True)
        for k in range(1, n + 1):
            # smooth random pictures, so the JPEG keeps them recognisable
            small = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
            img = Image.fromarray(small).resize((250, 250), Image.BILINEAR)
            path = folder / f"{person}_{k:04d}.jpg"
            img.save(path, quality=95)
            files.setdefault(person, []).append(path)
    for name in LFW_PAIRS_FILES:
        (home / name).write_text("1\n")
    return files


def expected_face(path: Path, resize: float = 0.4) -> np.ndarray:
    """scikit-learn's documented recipe: crop rows 70:195, columns 78:172, resize,
    scale to [0, 1], average the colour channels."""
    from PIL import Image

    h, w = int(resize * 125), int(resize * 94)
    with Image.open(path) as img:
        face = np.asarray(img.crop((78, 70, 172, 195)).resize((w, h)), dtype=np.float32) / 255.0
    return face.mean(axis=2)


def test_lfw_home_is_read_with_sklearn(isolated):
    files = make_lfw_home(isolated / "data", {"Ada_Lovelace": 3, "Alan_Turing": 4, "Grace_Hopper": 1})
    b = load_lfw(isolated / "data", min_faces_per_person=3)
    home = isolated / "data" / "lfw_home"
    assert b.source == f"sklearn-lfw_home:{home}" and b.is_subset is False
    assert b.label_names == ["Ada Lovelace", "Alan Turing"]  # Grace Hopper has too few
    assert b.input_shape == (50, 37)
    x = torch.cat([b.train.x, b.val.x, b.test.x]).numpy()
    y = torch.cat([b.train.y, b.val.y, b.test.y]).numpy()
    assert len(x) == 7 and np.bincount(y).tolist() == [3, 4]
    # every loaded face is the expected picture of its labelled person
    for person, label in (("Ada_Lovelace", 0), ("Alan_Turing", 1)):
        for path in files[person]:
            want = expected_face(path).reshape(-1)
            match = np.flatnonzero(np.abs(x - want).max(axis=1) < 1e-5)
            assert match.size == 1, path
            assert y[match[0]] == label


def test_lfw_home_found_in_sklearn_data_home(isolated):
    make_lfw_home(isolated / "sklearn-home", {"A_B": 2, "C_D": 2})
    b = load_lfw(min_faces_per_person=2)
    assert b.extras["source_kind"] == "sklearn_home"
    assert b.label_names == ["A B", "C D"]


def test_incomplete_lfw_home(isolated):
    make_lfw_home(isolated / "data", {"A_B": 2})
    (isolated / "data" / "lfw_home" / "pairs.txt").unlink()
    with pytest.raises(DataError, match=r"not a complete scikit-learn lfw_home: it lacks pairs.txt"):
        load_lfw(isolated / "data", min_faces_per_person=1)


def test_lfw_home_minimum_too_high(isolated):
    make_lfw_home(isolated / "data", {"A_B": 2})
    with pytest.raises(DataError, match=r"min_faces_per_person=70.*too restrictive"):
        load_lfw(isolated / "data")


# ---------------------------------------------------------- skimage fallback


def test_skimage_fallback_is_a_labelled_subset(isolated):
    b = load_lfw(seed=0)
    assert b.source == "skimage-lfw_subset" and b.is_subset is True
    assert "SUBSET" in b.description and "face / non-face" in b.description
    assert b.label_names == ["face", "non-face"] and b.input_shape == (25, 25)
    assert (len(b.train), len(b.val), len(b.test)) == (140, 30, 30)
    for split, n in ((b.train, 70), (b.val, 15), (b.test, 15)):
        assert torch.bincount(split.y).tolist() == [n, n]
        assert split.x.dtype == torch.float32 and split.x.shape[1] == 625
        assert 0.0 <= float(split.x.min()) and float(split.x.max()) <= 1.0
    # skimage lists the 100 faces first
    assert bool((b.train.y == (b.train.index >= 100).long()).all())
    assert any("no shared file" in r for r in b.extras["fallback_reasons"])


def test_no_lfw_without_subset_says_what_to_do(isolated):
    with pytest.raises(DataError, match=r"LFW people was not found.*--data-dir"):
        load_lfw(allow_subset=False)


def test_shared_npz_used_by_default_over_sklearn_home(isolated, monkeypatch):
    shared = isolated / "shared"
    write_npz(shared / "data" / "lfw" / "lfw_people_min70.npz", n_per_class=(70, 72))
    monkeypatch.setenv("CCVAE_SHARED", str(shared))
    make_lfw_home(isolated / "sklearn-home", {"A_B": 2})
    b = load_lfw()
    assert b.extras["source_kind"] == "shared"
    # a setting the shared npz cannot give falls through to scikit-learn's home
    b = load_lfw(min_faces_per_person=2)
    assert b.extras["source_kind"] == "sklearn_home"
