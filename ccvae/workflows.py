"""End-to-end recipes shared by the CLI, the dashboard and the sweeps:
load data -> train -> evaluate -> write a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from . import checkpoints
from .data.base import DatasetBundle
from .evaluation.metrics import binarize_fixed, evaluate
from .models import VAE
from .training import TrainConfig, TrainResult, train


def data_provenance(bundle: DatasetBundle) -> dict[str, Any]:
    """What a checkpoint records about the data it was trained on."""
    return {"name": bundle.name, "source": bundle.source, "description": bundle.description,
            "is_subset": bundle.is_subset, "input_shape": list(bundle.input_shape),
            "label_names": bundle.label_names, "split_seed": bundle.seed,
            "n_train": len(bundle.train), "n_val": len(bundle.val), "n_test": len(bundle.test),
            "root": str(bundle.root) if bundle.root else None}


def evaluate_bundle(model: VAE, bundle: DatasetBundle, cfg: TrainConfig, *, iwae_samples: int = 500,
                    iwae_examples: int | None = None, batch_size: int = 100, float64: bool = False, max_examples: int | None = None,
                    device: str | torch.device = "cpu", progress: bool = False) -> dict[str, Any]:
    """Test metrics for ``model`` on ``bundle``'s test split, as the training run saw the data."""
    test = bundle.test.head(max_examples)
    if cfg.binarize == "dynamic":
        test = binarize_fixed(test, seed=cfg.seed)
    train_ref = bundle.train if bundle.train.y is not None else None
    metrics = evaluate(model, test, train=train_ref, iwae_samples=iwae_samples,
                       iwae_examples=iwae_examples, batch_size=batch_size,
                       float64=float64, seed=cfg.seed, device=device, progress=progress)
    if bundle.name == "qm9":
        from .evaluation.qm9 import angle_metrics
        metrics.update(angle_metrics(model, bundle, test, device=device))
    model.float()
    return metrics


def train_to_checkpoint(cfg: TrainConfig, out: str | Path, *, bundle: DatasetBundle | None = None,
                        iwae_samples: int = 100, on_epoch: Callable[[dict], None] | None = None,
                        on_batch: Callable[[int, int, int], None] | None = None,
                        should_stop: Callable[[], bool] | None = None,
                        progress: bool = False) -> tuple[TrainResult, dict[str, Any]]:
    """Train, evaluate on the test split and write the checkpoint ``out``.

    The best model so far is saved after every improving epoch, so a crash or a
    cancel leaves the last good checkpoint in place.
    """
    from .data.registry import load_dataset

    out = Path(out)
    if bundle is None:
        bundle = load_dataset(cfg.dataset, cfg.data_dir, seed=cfg.seed, **cfg.dataset_options)
    training = {**cfg.to_dict(), "command": cfg.cli_command(out)}
    data = data_provenance(bundle)

    def save_best(model, history, epoch):
        checkpoints.save(out, model, training=training, data=data,
                         metrics={"history": history, "best_epoch": epoch, "status": "training"})

    result = train(cfg, bundle, on_epoch=on_epoch, on_batch=on_batch, should_stop=should_stop,
                   save_best=save_best, progress=progress)
    device = next(result.model.parameters()).device
    test = evaluate_bundle(result.model, bundle, cfg, iwae_samples=iwae_samples, device=device,
                           progress=progress)
    metrics = {"history": result.history, "best_epoch": result.best_epoch, "stopped": result.stopped,
               "train_seconds": round(result.seconds, 2), "status": "done", "test": test}
    checkpoints.save(out, result.model, training=training, data=data, metrics=metrics)
    return result, metrics
