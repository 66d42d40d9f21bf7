"""The training loop and the end-to-end train -> checkpoint -> evaluate recipe."""

from __future__ import annotations

import math

import pytest
import torch

from ccvae import checkpoints
from ccvae.errors import ConfigError, TrainingError
from ccvae.training import TrainConfig, train
from ccvae.workflows import evaluate_bundle, train_to_checkpoint

from .conftest import GEOMETRIES


def cfg(**kw):
    base = dict(dataset="blobs", geometry="euclidean", latent_dim=2, hidden=32, layers=1, epochs=6,
                batch_size=32, lr=3e-3, seed=0)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_loss_goes_down_and_checkpoint_round_trips(geometry, blobs, tmp_path):
    epochs = []
    result, metrics = train_to_checkpoint(cfg(geometry=geometry), tmp_path / geometry, bundle=blobs,
                                          iwae_samples=20, on_epoch=epochs.append)
    losses = [r["train_loss"] for r in result.history]
    assert len(epochs) == 6 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.9 * losses[0]
    assert result.history[-1]["val_elbo"] > result.history[0]["val_elbo"]

    model, info = checkpoints.load(tmp_path / geometry)
    assert info.geometry == geometry
    assert info.config["training"]["command"].startswith(f"ccvae train --dataset blobs --geometry {geometry}")
    stored = info.test_metrics
    assert {"elbo", "elbo_batch_std", "recon", "kl", "iwae", "bits_per_dim", "knn_accuracy"} <= set(stored)
    assert stored["iwae"] >= stored["elbo"] - 1.0
    # evaluating the loaded checkpoint with the same seed reproduces the stored metrics
    again = evaluate_bundle(model, blobs, TrainConfig.from_dict(info.config["training"]), iwae_samples=20)
    for key in ("elbo", "recon", "kl", "iwae", "knn_accuracy"):
        assert again[key] == pytest.approx(stored[key], rel=1e-5, abs=1e-5), key


def test_same_seed_same_model(blobs):
    a = train(cfg(epochs=2), blobs).model
    b = train(cfg(epochs=2), blobs).model
    for (k, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), k


def test_early_stopping_and_warmup(blobs):
    result = train(cfg(epochs=50, lr=3e-2, early_stopping=2, kl_warmup_epochs=3), blobs)
    assert result.stopped == "early_stopping"
    assert 3 + 2 <= len(result.history) < 50  # patience starts counting after warm-up
    assert [r["kl_weight"] for r in result.history[:3]] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert result.best_epoch == max(result.history, key=lambda r: r["val_elbo"])["epoch"]


def test_training_steps_flush_denormals_and_the_setting_is_restored(blobs):
    from ccvae.cpu import flushing_denormals
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormals")
    seen = []
    train(cfg(epochs=1), blobs, on_batch=lambda e, i, n: seen.append(flushing_denormals()))
    assert seen and all(seen)
    assert not flushing_denormals()


def test_cancel_stops_cleanly(blobs):
    calls = []
    result = train(cfg(epochs=10), blobs, should_stop=lambda: len(calls) >= 3,
                   on_batch=lambda e, i, n: calls.append((e, i, n)))
    assert result.stopped == "cancelled" and len(result.history) == 1
    assert result.history[0]["partial_epoch"]


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(blobs, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train_to_checkpoint(cfg(epochs=1), out, bundle=blobs, iwae_samples=0)
    good = (out / "model.safetensors").read_bytes()

    from ccvae.models.vae import VAE
    real_elbo = VAE.elbo
    count = {"n": 0}

    def poisoned(self, x, n_samples=1, mask=None):
        count["n"] += 1
        t = real_elbo(self, x, n_samples, mask)
        if count["n"] > 3:
            return type(t)(t.elbo * float("nan"), t.recon * float("nan"), t.kl)
        return t

    monkeypatch.setattr(VAE, "elbo", poisoned)
    with pytest.raises(TrainingError, match="the loss became nan at epoch 1, batch 4"):
        train_to_checkpoint(cfg(epochs=3, seed=1), out, bundle=blobs, iwae_samples=0)
    assert (out / "model.safetensors").read_bytes() == good


def test_nan_in_data_is_reported(blobs):
    blobs.train.x[3, 5] = float("nan")
    with pytest.raises(ConfigError, match="training split holds NaN"):
        train(cfg(epochs=1), blobs)


@pytest.mark.parametrize("kwargs, match", [
    ({"latent_dim": 0}, "latent-dim must be a positive integer"),
    ({"geometry": "torus"}, "unknown geometry"),
    ({"lr": -1.0}, "lr must be a positive number"),
    ({"binarize": "static"}, "binarize must be"),
    ({"device": "tpu"}, "device must be auto, cpu or cuda"),
    ({"sphere_posterior": "vmf_svae"}, "needs the sphere geometry"),
    ({"geometry": "sphere", "sphere_posterior": "bingham"}, "unknown sphere posterior"),
    ({"initial_concentration": 5.0}, "initial concentration needs the sphere geometry"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        cfg(**kwargs)


def test_the_reproducing_command_names_a_non_default_sphere_posterior():
    assert "--sphere-posterior" not in cfg(geometry="sphere").cli_command()
    assert "--sphere-posterior power_spherical" in cfg(geometry="sphere",
                                                       sphere_posterior="power_spherical").cli_command()
    assert "--initial-concentration" not in cfg(geometry="sphere").cli_command()
    assert "--initial-concentration 1.7" in cfg(geometry="sphere", initial_concentration=1.7).cli_command()
