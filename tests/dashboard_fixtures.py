"""Checkpoints for the dashboard tests (AppTest and browser).

The tests run against the shipped checkpoints in ``<repo>/checkpoints`` (or the
folder named by ``CCVAE_TEST_CHECKPOINTS``). Where none are shipped yet, small ones
are trained once per test session into a temporary folder: LFW (real data, loads
in a fraction of a second) for the three geometries in 2-D and a 3-D hyperbolic
latent (to exercise the projections), plus a tiny QM9 model when QM9 is available.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from ccvae.checkpoints import list_checkpoints

REPO = Path(__file__).resolve().parents[1]


def shipped_root() -> Path | None:
    env = os.environ.get("CCVAE_TEST_CHECKPOINTS", "").strip()
    root = Path(env) if env else REPO / "checkpoints"
    return root if list_checkpoints(root) else None


@functools.cache
def trained_root() -> Path:
    from ccvae.data.registry import load_dataset
    from ccvae.training import TrainConfig
    from ccvae.workflows import train_to_checkpoint

    root = Path(tempfile.mkdtemp(prefix="ccvae-dashboard-ckpts-"))
    atexit.register(shutil.rmtree, root, True)
    bundle = load_dataset("lfw", seed=0)
    for geometry, dim in [("euclidean", 2), ("sphere", 2), ("hyperbolic", 2), ("hyperbolic", 3)]:
        cfg = TrainConfig(dataset="lfw", geometry=geometry, latent_dim=dim, hidden=16, layers=1, epochs=1,
                          batch_size=64, max_examples=300, seed=0)
        train_to_checkpoint(cfg, root / f"lfw-{geometry}-d{dim}", bundle=bundle, iwae_samples=4)
    try:
        qm9 = load_dataset("qm9", seed=0, max_molecules=300, progress=False)
    except Exception:  # noqa: BLE001 - QM9 is optional for the fallback set
        return root
    # Trained and saved without the test evaluation: the page needs weights and data only.
    from ccvae import checkpoints
    from ccvae.training import train
    from ccvae.workflows import data_provenance

    cfg = TrainConfig(dataset="qm9", geometry="hyperbolic", latent_dim=2, hidden=32, layers=1, epochs=2,
                      batch_size=64, seed=0, dataset_options={"max_molecules": 300})
    result = train(cfg, qm9)
    checkpoints.save(root / "qm9-hyperbolic-d2", result.model,
                     training={**cfg.to_dict(), "command": cfg.cli_command()}, data=data_provenance(qm9),
                     metrics={"history": result.history, "best_epoch": result.best_epoch, "status": "done"})
    return root


def warm_data_caches(root: Path) -> None:
    """Featurise QM9 once, before any page runs under a timeout.

    On a fresh machine the first load of the full QM9 set featurises all
    130,831 molecules (about a minute on 2 cores) and caches them on disk; the
    pages and the browser then reload the cache in a second or two.
    """
    from ccvae.dashboard.catalog import load_bundle

    for info in list_checkpoints(root):
        if info.dataset == "qm9":
            load_bundle(info)


@pytest.fixture(scope="session")
def dashboard_checkpoints() -> Path:
    """The folder of checkpoints the dashboard tests run against."""
    root = shipped_root() or trained_root()
    warm_data_caches(root)
    return root
