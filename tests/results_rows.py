"""Hand-made results rows for tests of the results database and the tables."""

from __future__ import annotations

import itertools
from typing import Any

_counter = itertools.count()


def make_row(dataset: str = "mnist", geometry: str = "euclidean", latent_dim: int = 2, layers: int = 1,
             seed: int = 0, elbo: float = -150.0, batch_std: float = 5.0, iwae: float | None = None,
             sweep: str = "post", epochs: int = 60, finished_at: str = "2026-11-21T20:00:00+00:00",
             binarize: str = "none", elbo_ceiling: float | None = None, **extra: Any) -> dict[str, Any]:
    """One complete row, as ccvae.sweep.execute_run returns it."""
    train = {"dataset": dataset, "geometry": geometry, "latent_dim": latent_dim, "layers": layers,
             "hidden": 128, "epochs": epochs, "seed": seed, "binarize": binarize}
    row = {
        "run_key": extra.pop("run_key", f"key{next(_counter)}"), "sweep": sweep, "dataset": dataset,
        "geometry": geometry, "latent_dim": latent_dim, "layers": layers, "hidden": [128] * layers,
        "likelihood": "bernoulli", "binarize": binarize, "seed": seed,
        "config_json": {"train": train, "eval": {"iwae_k": 500, "batch_size": 100}},
        "versions_json": {"ccvae": "test"}, "git_commit": "abc", "host": "test", "device": "cpu",
        "started_at": "2026-11-21T19:00:00+00:00", "finished_at": finished_at,
        "train_seconds": 1.0, "eval_seconds": 0.5, "epochs_run": epochs, "best_epoch": epochs,
        "stopped": "completed", "elbo": elbo, "elbo_batch_std": batch_std, "elbo_sem": batch_std / 10,
        "elbo_batch_size": 100, "recon": elbo + 5, "kl": 5.0, "iwae": iwae,
        "iwae_sem": 0.1 if iwae is not None else None, "iwae_k": 500 if iwae is not None else None,
        "iwae_examples": 10000 if iwae is not None else None, "bits_per_dim": 0.2,
        "knn_accuracy": 0.9, "n_test": 10000, "elbo_ceiling": elbo_ceiling,
        "metrics_json": {"test": {"elbo": elbo}, "history": []},
    }
    row.update(extra)
    return row
