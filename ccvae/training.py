"""The training loop: Adam on the negative ELBO, seeded, with per-epoch callbacks.

The CLI, the dashboard's Train page and the sweeps all call :func:`train`.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import torch

from .cpu import flush_denormals
from .data.base import DatasetBundle, Split
from .errors import ConfigError, TrainingError
from .models import GEOMETRIES, LIKELIHOODS, VAE, ModelConfig
from .models.latent import INITIAL_CONCENTRATION, check_sphere_settings

#: The likelihoods that fit each dataset's values, its default first: pixel
#: intensities in [0, 1] for the images, which get the post's BCE unless another is
#: chosen (so ELBOs compare with its tables), and (cos, sin) pairs of dihedral angles
#: for QM9, which get the von Mises angle likelihood (the post's cosine-similarity
#: loss). No pixel likelihood reads angles, and the angle likelihood reads no pixels.
#: Dynamic binarisation resamples pixels, so it applies to the images only.
DATASET_LIKELIHOODS = {"mnist": ("bernoulli", "continuous_bernoulli", "gaussian"),
                       "lfw": ("bernoulli", "continuous_bernoulli", "gaussian"),
                       "qm9": ("von_mises",)}
DEFAULT_LIKELIHOOD = {dataset: fits[0] for dataset, fits in DATASET_LIKELIHOODS.items()}
BINARIZABLE = ("mnist", "lfw")


def likelihoods_for(dataset: str) -> tuple[str, ...]:
    """The likelihoods a run on ``dataset`` may use (all of them for a dataset not listed
    in ``DATASET_LIKELIHOODS``)."""
    return DATASET_LIKELIHOODS.get(dataset, tuple(LIKELIHOODS))


@dataclass
class TrainConfig:
    """Every setting of a training run; stored in the checkpoint so it can be redone."""

    dataset: str = "mnist"
    geometry: str = "euclidean"
    latent_dim: int = 2
    hidden: int | list[int] = 256
    layers: int = 2
    likelihood: str | None = None
    activation: str = "relu"
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    kl_warmup_epochs: int = 0
    early_stopping: int | None = None
    max_examples: int | None = None
    binarize: str = "none"
    data_dir: str | None = None
    dataset_options: dict = field(default_factory=dict)
    #: the sphere's posterior family (models.SPHERE_POSTERIORS); only "vmf" elsewhere
    sphere_posterior: str = "vmf"
    #: the sphere encoder's concentration at initialisation (models.latent.INITIAL_CONCENTRATION)
    initial_concentration: float = INITIAL_CONCENTRATION

    def __post_init__(self):
        if self.geometry not in GEOMETRIES:
            raise ConfigError(f"unknown geometry {self.geometry!r}; choose one of {', '.join(GEOMETRIES)}")
        check_sphere_settings(self.geometry, self.sphere_posterior, self.initial_concentration)
        if self.likelihood is None:
            self.likelihood = DEFAULT_LIKELIHOOD.get(self.dataset, "bernoulli")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"unknown likelihood {self.likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")
        fits = likelihoods_for(self.dataset)
        if self.likelihood not in fits:
            raise ConfigError(f"likelihood {self.likelihood!r} does not apply to {self.dataset}; "
                              f"choose one of {', '.join(fits)}")
        if self.binarize != "none" and self.dataset in DATASET_LIKELIHOODS and self.dataset not in BINARIZABLE:
            raise ConfigError(f"binarize {self.binarize!r} applies to images ({', '.join(BINARIZABLE)}), "
                              f"not to {self.dataset}")
        if isinstance(self.hidden, (list, tuple)):
            self.hidden = [int(h) for h in self.hidden]
            self.layers = len(self.hidden)
            if any(h < 1 for h in self.hidden):
                raise ConfigError(f"hidden widths must be positive integers, got {self.hidden}")
        positive = {"latent_dim": self.latent_dim, "epochs": self.epochs, "batch_size": self.batch_size}
        if not isinstance(self.hidden, list):
            positive["hidden"] = self.hidden
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if not isinstance(self.layers, int) or self.layers < 0:
            raise ConfigError(f"layers must be a non-negative integer, got {self.layers!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if self.kl_warmup_epochs < 0:
            raise ConfigError(f"kl-warmup-epochs must be >= 0, got {self.kl_warmup_epochs}")
        if self.early_stopping is not None and self.early_stopping < 1:
            raise ConfigError(f"early-stopping patience must be >= 1, got {self.early_stopping}")
        if self.max_examples is not None and self.max_examples < 1:
            raise ConfigError(f"max-examples must be >= 1, got {self.max_examples}")
        if self.binarize not in ("none", "dynamic"):
            raise ConfigError(f"binarize must be 'none' or 'dynamic', got {self.binarize!r}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def cli_command(self, out: str | Path | None = None) -> str:
        """The ``ccvae train`` command line that reproduces this run."""
        hidden = ",".join(map(str, self.hidden)) if isinstance(self.hidden, list) else self.hidden
        parts = ["ccvae train", f"--dataset {self.dataset}", f"--geometry {self.geometry}",
                 f"--latent-dim {self.latent_dim}", f"--hidden {hidden}",
                 f"--layers {self.layers}", f"--likelihood {self.likelihood}",
                 f"--epochs {self.epochs}", f"--batch-size {self.batch_size}", f"--lr {self.lr:g}",
                 f"--seed {self.seed}"]
        if self.activation != "relu":
            parts.append(f"--activation {self.activation}")
        if self.kl_warmup_epochs:
            parts.append(f"--kl-warmup-epochs {self.kl_warmup_epochs}")
        if self.early_stopping:
            parts.append(f"--early-stopping {self.early_stopping}")
        if self.max_examples:
            parts.append(f"--max-examples {self.max_examples}")
        if self.binarize != "none":
            parts.append(f"--binarize {self.binarize}")
        if self.sphere_posterior != "vmf":
            parts.append(f"--sphere-posterior {self.sphere_posterior}")
        if self.initial_concentration != INITIAL_CONCENTRATION:
            parts.append(f"--initial-concentration {self.initial_concentration:g}")
        for key, value in sorted(self.dataset_options.items()):
            parts.append(f"--data-option {key}={value}")
        if out is not None:
            parts.append(f"--out {out}")
        return " ".join(parts)


@dataclass
class TrainResult:
    model: VAE
    history: list[dict[str, Any]]
    best_epoch: int
    stopped: str  # "completed", "early_stopping" or "cancelled"
    seconds: float


def resolve_device(device: str) -> torch.device:
    """``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:N]"`` as a torch device;
    ConfigError for anything else, or for CUDA on a machine without it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        if device != "cpu" and not device.startswith("cuda"):
            raise ValueError(device)
        resolved = torch.device(device)
    except (ValueError, RuntimeError):
        raise ConfigError(f"device must be auto, cpu or cuda[:N], got {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for, but no CUDA device is available")
    return resolved


def model_config_for(cfg: TrainConfig, bundle: DatasetBundle) -> ModelConfig:
    return ModelConfig(input_dim=bundle.input_dim, geometry=cfg.geometry, latent_dim=cfg.latent_dim,
                       hidden=cfg.hidden, layers=cfg.layers, likelihood=cfg.likelihood,
                       activation=cfg.activation, input_shape=tuple(bundle.input_shape),
                       sphere_posterior=cfg.sphere_posterior,
                       initial_concentration=cfg.initial_concentration)


def _check_finite_data(split: Split, name: str) -> None:
    if not torch.isfinite(split.x).all():
        raise ConfigError(f"the {name} split holds NaN or infinite values; check the data source")


def _batches(split: Split, batch_size: int, generator: torch.Generator | None):
    n = len(split)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield split.x[idx], (split.mask[idx] if split.mask is not None else None)


def _limit(split: Split, n: int | None) -> Split:
    if n is None or n >= len(split):
        return split
    return Split(split.x[:n], None if split.y is None else split.y[:n], split.index[:n],
                 None if split.mask is None else split.mask[:n])


@torch.no_grad()
def validation_terms(model: VAE, split: Split, batch_size: int = 1000,
                     device: torch.device | str = "cpu") -> dict[str, float]:
    """Mean ELBO, reconstruction and KL over a split (one sample of z per example)."""
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64)
    for x, mask in _batches(split, batch_size, None):
        x = x.to(device)
        t = model.elbo(x, mask=None if mask is None else mask.to(device))
        totals += torch.stack([t.elbo.sum(), t.recon.sum(), t.kl.sum()]).double().cpu()
    totals /= max(len(split), 1)
    return {"elbo": totals[0].item(), "recon": totals[1].item(), "kl": totals[2].item()}


def make_optimiser(params, lr: float, device: torch.device | str = "cpu") -> torch.optim.Adam:
    """Adam with torch's fused kernel on CPU and CUDA: one pass over all parameters
    instead of ~10 small operations per tensor. Same update rule; measured on the
    784-256-128 MLP VAE (B = 100, one thread): optimiser step 1.37 -> 0.51 ms, whole
    training step 5.0 -> 3.9 ms. Other devices get the plain implementation."""
    fused = torch.device(device).type in ("cpu", "cuda")
    return torch.optim.Adam(params, lr=lr, fused=fused or None)


def train(cfg: TrainConfig, bundle: DatasetBundle, *,
          on_epoch: Callable[[dict], None] | None = None,
          on_batch: Callable[[int, int, int], None] | None = None,
          should_stop: Callable[[], bool] | None = None,
          save_best: Callable[[VAE, list[dict], int], None] | None = None,
          progress: bool = False) -> TrainResult:
    """Train a VAE on ``bundle`` with the settings in ``cfg``.

    on_epoch(record)        after every epoch, with train and validation terms.
    on_batch(epoch, i, n)   after every batch (for progress bars).
    should_stop()           polled after each batch; True cancels cleanly.
    save_best(model, history, epoch)  called whenever validation ELBO improves,
                            so the last good checkpoint is always on disk.

    A non-finite loss raises :class:`TrainingError` at once; the best model saved
    so far is left untouched.
    """
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    train_split = _limit(bundle.train, cfg.max_examples)
    val_split = _limit(bundle.val, None if cfg.max_examples is None else max(cfg.max_examples // 5, 100))
    if len(train_split) == 0:
        raise ConfigError(f"the {bundle.name} training split is empty")
    _check_finite_data(train_split, "training")
    train_split = Split(train_split.x.to(device), train_split.y, train_split.index,
                        None if train_split.mask is None else train_split.mask.to(device))

    model = VAE(model_config_for(cfg, bundle)).to(device)
    optimiser = make_optimiser(model.parameters(), cfg.lr, device)
    generator = torch.Generator().manual_seed(cfg.seed)
    binarize_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)

    history: list[dict[str, Any]] = []
    best_elbo, best_epoch, best_state, bad_epochs = -math.inf, 0, None, 0
    stopped = "completed"
    n_batches = math.ceil(len(train_split) / cfg.batch_size)
    start_time = time.perf_counter()

    epochs = range(1, cfg.epochs + 1)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.epochs * n_batches, unit="batch", dynamic_ncols=True,
                   desc=f"{cfg.geometry} {cfg.dataset} d={cfg.latent_dim}")
    # Subnormal floats appear as training goes on and slow CPU steps by up to ~1.6x
    # (ccvae.cpu.flush_denormals); they are flushed to zero while training.
    with flush_denormals():
        try:
            for epoch in epochs:
                model.train()
                beta = 1.0 if cfg.kl_warmup_epochs == 0 else min(1.0, epoch / cfg.kl_warmup_epochs)
                t0 = time.perf_counter()
                sums = torch.zeros(4, dtype=torch.float64, device=device)
                seen = 0
                cancelled = False
                for i, (x, mask) in enumerate(_batches(train_split, cfg.batch_size, generator)):
                    if cfg.binarize == "dynamic":
                        x = torch.bernoulli(x, generator=binarize_gen)
                    terms = model.elbo(x, mask=mask)
                    loss = -(terms.recon - beta * terms.kl).mean()
                    if not torch.isfinite(loss):
                        raise TrainingError(
                            f"the loss became {loss.item()} at epoch {epoch}, batch {i + 1}; training "
                            "stopped. Try a lower --lr"
                            + (" or KL warm-up" if cfg.kl_warmup_epochs == 0 else "")
                            + ". The last good checkpoint (if any) is intact.")
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    b = x.shape[0]
                    sums += torch.stack([loss.detach() * b, terms.elbo.detach().sum(),
                                         terms.recon.detach().sum(), terms.kl.detach().sum()]).double()
                    seen += b
                    if bar is not None:
                        bar.update(1)
                    if on_batch is not None:
                        on_batch(epoch, i + 1, n_batches)
                    if should_stop is not None and should_stop():
                        cancelled = True
                        break
                sums = (sums / max(seen, 1)).tolist()
                val = validation_terms(model, val_split, device=device)
                record = {
                    "epoch": epoch, "train_loss": sums[0], "train_elbo": sums[1], "train_recon": sums[2],
                    "train_kl": sums[3], "val_elbo": val["elbo"], "val_recon": val["recon"],
                    "val_kl": val["kl"], "kl_weight": beta, "seconds": time.perf_counter() - t0,
                    "partial_epoch": cancelled,
                }
                history.append(record)
                if bar is not None:
                    bar.set_postfix(val_elbo=f"{val['elbo']:.2f}", kl=f"{val['kl']:.2f}")
                if on_epoch is not None:
                    on_epoch(record)
                if not math.isfinite(val["elbo"]):
                    raise TrainingError(
                        f"the validation ELBO became {val['elbo']} at epoch {epoch}; training stopped. "
                        "The last good checkpoint (if any) is intact.")
                if val["elbo"] > best_elbo:
                    best_elbo, best_epoch, bad_epochs = val["elbo"], epoch, 0
                    best_state = copy.deepcopy(model.state_dict())
                    if save_best is not None:
                        save_best(model, history, epoch)
                elif epoch > cfg.kl_warmup_epochs:
                    # Patience counts only once the KL weight is 1: during warm-up the
                    # true ELBO may dip while the model learns to use its latent.
                    bad_epochs += 1
                if cancelled:
                    stopped = "cancelled"
                    break
                if cfg.early_stopping is not None and bad_epochs >= cfg.early_stopping:
                    stopped = "early_stopping"
                    break
        finally:
            if bar is not None:
                bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model, history, best_epoch, stopped, time.perf_counter() - start_time)
