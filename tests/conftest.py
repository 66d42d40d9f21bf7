"""Shared fixtures: small synthetic datasets so model tests need no files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ccvae.data.base import DatasetBundle, Split

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CCVAE_SHARED", REPO.parent / "shared")) / "data"

GEOMETRIES = ["euclidean", "sphere", "hyperbolic"]


def make_blobs_bundle(n: int = 400, dim: int = 64, n_classes: int = 4, seed: int = 0) -> DatasetBundle:
    """Binary-ish 'images' from a few prototypes: easy for a VAE to learn, labelled."""
    g = torch.Generator().manual_seed(seed)
    prototypes = (torch.rand(n_classes, dim, generator=g) > 0.5).float()
    y = torch.randint(0, n_classes, (n,), generator=g)
    flip = torch.rand(n, dim, generator=g) < 0.05
    x = torch.where(flip, 1 - prototypes[y], prototypes[y]) * 0.9 + 0.05
    idx = torch.arange(n)
    a, b = int(n * 0.7), int(n * 0.85)
    split = lambda s: Split(x[s], y[s], idx[s])
    return DatasetBundle(name="blobs", source="synthetic", description="synthetic test blobs",
                         is_subset=False, input_shape=(8, 8), label_names=[str(i) for i in range(n_classes)],
                         train=split(slice(0, a)), val=split(slice(a, b)), test=split(slice(b, n)), seed=seed)


@pytest.fixture
def blobs() -> DatasetBundle:
    return make_blobs_bundle()


@pytest.fixture(scope="module")
def single_thread():
    """Run a module's tensor work on one thread, then restore the setting.

    On a small shared machine torch's intra-op threads wait on each other whenever
    another process holds a core (a 100k-element multiply took 8 ms instead of
    0.03 ms). The results do not depend on the thread count. Use it with
    ``pytestmark = pytest.mark.usefixtures("single_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
