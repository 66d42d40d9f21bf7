"""Test-set metrics of a trained VAE.

- ELBO: the mean per-example ELBO (nats, summed over data dimensions) and its
  uncertainty "across batches" as the post reports it: the standard deviation of
  the per-batch mean ELBO over fixed-size test batches (``batch_size``, recorded).
  The standard error of the mean over examples is reported too.
- recon / kl: the two ELBO terms.
- IWAE: the importance-weighted bound with k samples (Burda et al. 2016), the
  usual log-likelihood estimate (k = 500 for reporting), with its standard error.
- bits/dim: -log p(x) / (D ln 2), from the IWAE estimate when computed, else the ELBO.
- k-NN accuracy: a k-nearest-neighbour classifier on the posterior locations,
  with the geometry's geodesic distance, trained on (a sample of) the training split.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..data.base import Split
from ..models import VAE


def _chunks(split: Split, batch_size: int):
    for start in range(0, len(split), batch_size):
        sl = slice(start, start + batch_size)
        yield split.x[sl], None if split.mask is None else split.mask[sl]


def binarize_fixed(split: Split, seed: int = 0) -> Split:
    """One fixed Bernoulli draw of every pixel (the test set of dynamically binarised MNIST)."""
    g = torch.Generator().manual_seed(seed)
    return Split(torch.bernoulli(split.x, generator=g), split.y, split.index, split.mask)


@torch.no_grad()
def elbo_statistics(model: VAE, split: Split, batch_size: int = 100, n_samples: int = 1,
                    device: str | torch.device = "cpu") -> dict[str, float]:
    model.eval()
    elbos, recons, kls = [], [], []
    for x, mask in _chunks(split, batch_size):
        t = model.elbo(x.to(device), n_samples=n_samples, mask=None if mask is None else mask.to(device))
        elbos.append(t.elbo.double().cpu())
        recons.append(t.recon.double().cpu())
        kls.append(t.kl.double().cpu())
    per_example = torch.cat(elbos)
    batch_means = torch.stack([e.mean() for e in elbos])
    n = per_example.numel()
    return {
        "elbo": per_example.mean().item(),
        "elbo_batch_std": batch_means.std().item() if len(batch_means) > 1 else 0.0,
        "elbo_sem": (per_example.std() / math.sqrt(n)).item() if n > 1 else 0.0,
        "elbo_batch_size": batch_size,
        "recon": torch.cat(recons).mean().item(),
        "kl": torch.cat(kls).mean().item(),
        "n_examples": n,
    }


@torch.no_grad()
def iwae_statistics(model: VAE, split: Split, k: int = 500, batch_size: int = 100,
                    device: str | torch.device = "cpu", progress: bool = False) -> dict[str, float]:
    model.eval()
    values = []
    chunks = list(_chunks(split, batch_size))
    if progress:
        from tqdm.auto import tqdm
        chunks = tqdm(chunks, desc=f"IWAE k={k}", unit="batch", leave=False)
    for x, mask in chunks:
        values.append(model.iwae(x.to(device), k=k, mask=None if mask is None else mask.to(device)).double().cpu())
    v = torch.cat(values)
    return {"iwae": v.mean().item(),
            "iwae_sem": (v.std() / math.sqrt(v.numel())).item() if v.numel() > 1 else 0.0,
            "iwae_k": k}


@torch.no_grad()
def bernoulli_elbo_ceiling(split: Split) -> float:
    """The highest mean ELBO any model can reach on ``split`` under a Bernoulli (BCE)
    likelihood: minus the mean over examples of the summed binary entropies of the
    pixel intensities, -sum_i H(x_i) with H(x) = -x log x - (1-x) log(1-x).

    Why: the reconstruction term E_q[log p(x|z)] = -sum_i BCE(p_i, x_i) is at most
    -sum_i H(x_i) (BCE(p, x) = H(x) + KL(Bern(x) || Bern(p)) >= H(x)), and the KL term
    is >= 0. For binary images the ceiling is 0; grey images pay their entropy.
    0 log 0 is taken as 0 (xlogy), so exact 0 and 1 pixels cost nothing.
    """
    x = split.x.double().reshape(len(split), -1)
    h = -(torch.special.xlogy(x, x) + torch.special.xlogy(1 - x, 1 - x))
    return -h.sum(dim=1).mean().item()


@torch.no_grad()
def knn_accuracy(model: VAE, train: Split, test: Split, k: int = 5, max_reference: int = 10000,
                 seed: int = 0, device: str | torch.device = "cpu") -> float:
    """Accuracy of a k-NN vote on posterior locations with geodesic distances."""
    if train.y is None or test.y is None:
        raise ValueError("k-NN accuracy needs labelled data")
    g = torch.Generator().manual_seed(seed)
    ref = torch.randperm(len(train), generator=g)[:max_reference]
    z_ref = model.latent_means(train.x[ref].to(device))
    y_ref = train.y[ref].to(device)
    z_test = model.latent_means(test.x.to(device))
    manifold = model.manifold
    n_classes = int(max(y_ref.max().item(), test.y.max().item())) + 1
    correct = 0
    for start in range(0, z_test.shape[0], 512):
        zt = z_test[start:start + 512]
        d = manifold.dist(zt[:, None, :], z_ref[None, :, :])
        nn_idx = d.topk(min(k, z_ref.shape[0]), dim=1, largest=False).indices
        votes = torch.zeros(zt.shape[0], n_classes, device=zt.device)
        votes.scatter_add_(1, y_ref[nn_idx], torch.ones_like(nn_idx, dtype=votes.dtype))
        correct += (votes.argmax(1).cpu() == test.y[start:start + 512]).sum().item()
    return correct / z_test.shape[0]


def evaluate(model: VAE, test: Split, *, train: Split | None = None, iwae_samples: int = 500,
             iwae_examples: int | None = None, batch_size: int = 100, knn_k: int = 5,
             float64: bool = False, seed: int = 0,
             device: str | torch.device = "cpu", progress: bool = False) -> dict[str, Any]:
    """All test metrics in one flat dict (what goes into metrics.json ``test``).

    ``iwae_examples`` limits the IWAE estimate (the costly one: k decoder passes per
    example) to the first n test examples; the ELBO always uses the whole split. The
    number used is recorded as ``iwae_examples``.
    """
    torch.manual_seed(seed)
    if float64:
        model = model.double()
        test = Split(test.x.double(), test.y, test.index, test.mask)
        if train is not None:
            train = Split(train.x.double(), train.y, train.index, train.mask)
    out: dict[str, Any] = elbo_statistics(model, test, batch_size=batch_size, device=device)
    dims = model.config.input_dim
    log_px = out["elbo"]
    if iwae_samples:
        if iwae_examples is not None and iwae_examples < 1:
            raise ValueError(f"iwae_examples must be >= 1, got {iwae_examples}")
        iwae_split = test.head(iwae_examples)
        out.update(iwae_statistics(model, iwae_split, k=iwae_samples, batch_size=batch_size,
                                   device=device, progress=progress))
        out["iwae_examples"] = len(iwae_split)
        log_px = out["iwae"]
    out["bits_per_dim"] = -log_px / (dims * math.log(2))
    if model.config.likelihood == "bernoulli":
        out["elbo_ceiling"] = bernoulli_elbo_ceiling(test)
    out["bits_per_dim_from"] = "iwae" if iwae_samples else "elbo"
    if train is not None and train.y is not None and test.y is not None:
        out["knn_accuracy"] = knn_accuracy(model, train, test, k=knn_k, seed=seed, device=device)
        out["knn_k"] = knn_k
    out["float64"] = float64
    out["seed"] = seed
    return out
