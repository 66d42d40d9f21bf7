"""The variational autoencoder with a pluggable latent geometry."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import NamedTuple

import torch
from torch import nn
from torch.distributions import Distribution

from ..errors import ConfigError
from .latent import GEOMETRIES, INITIAL_CONCENTRATION, Latent, check_sphere_settings, make_latent
from .likelihoods import LIKELIHOODS, Likelihood, make_likelihood
from .networks import mlp, trunk_width


@dataclass
class ModelConfig:
    """Everything needed to rebuild a VAE (it goes into a checkpoint's config.json)."""

    input_dim: int
    geometry: str = "euclidean"
    latent_dim: int = 2
    hidden: int | list[int] = 256
    layers: int = 2
    likelihood: str = "bernoulli"
    activation: str = "relu"
    input_shape: tuple[int, ...] = ()
    likelihood_kwargs: dict = field(default_factory=dict)
    #: the sphere's posterior family (``latent.SPHERE_POSTERIORS``); "vmf" elsewhere
    sphere_posterior: str = "vmf"
    #: the sphere's concentration for zero encoder features at initialisation
    initial_concentration: float = INITIAL_CONCENTRATION

    def __post_init__(self):
        if self.geometry not in GEOMETRIES:
            raise ConfigError(
                f"unknown geometry {self.geometry!r}; choose one of {', '.join(GEOMETRIES)}")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(
                f"unknown likelihood {self.likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")
        check_sphere_settings(self.geometry, self.sphere_posterior, self.initial_concentration)
        for name in ("input_dim", "latent_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.layers, int) or self.layers < 0:
            raise ConfigError(f"layers must be a non-negative integer, got {self.layers!r}")
        if isinstance(self.hidden, (list, tuple)):
            self.hidden = [int(h) for h in self.hidden]
            if any(h < 1 for h in self.hidden):
                raise ConfigError(f"hidden widths must be positive integers, got {self.hidden}")
            if self.layers != len(self.hidden):
                raise ConfigError(f"{len(self.hidden)} hidden widths {self.hidden} but layers={self.layers}")
        elif not isinstance(self.hidden, int) or self.hidden < 1:
            raise ConfigError(f"hidden must be a positive integer, got {self.hidden!r}")
        self.input_shape = tuple(int(s) for s in self.input_shape) or (self.input_dim,)

    @property
    def widths(self) -> list[int]:
        """Encoder hidden widths; the decoder mirrors them (e.g. 784-256-128 / 128-256-784)."""
        return list(self.hidden) if isinstance(self.hidden, list) else [self.hidden] * self.layers

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown model settings: {', '.join(sorted(unknown))}")
        return cls(**d)


class ElboTerms(NamedTuple):
    """Per-example terms, each of shape (batch,): elbo = recon - kl."""

    elbo: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor


class VAE(nn.Module):
    """x -> MLP encoder -> q(z|x) on the latent manifold -> z -> MLP decoder -> p(x|z)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.encoder = mlp(c.input_dim, c.widths, activation=c.activation)
        self.latent: Latent = make_latent(c.geometry, trunk_width(c.input_dim, c.widths), c.latent_dim,
                                          sphere_posterior=c.sphere_posterior,
                                          initial_concentration=c.initial_concentration)
        self.decoder = mlp(self.latent.ambient_dim, c.widths[::-1], c.input_dim, activation=c.activation)
        self.likelihood: Likelihood = make_likelihood(c.likelihood, **c.likelihood_kwargs)

    @classmethod
    def from_config(cls, config: ModelConfig | dict) -> "VAE":
        if isinstance(config, dict):
            config = ModelConfig.from_dict(config)
        return cls(config)

    @property
    def geometry(self) -> str:
        return self.config.geometry

    @property
    def manifold(self):
        return self.latent.manifold

    # -- the three maps ------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
        shape = self.config.input_shape
        if len(shape) > 1 and tuple(x.shape[-len(shape):]) == shape:
            x = x.flatten(-len(shape))  # images may come unflattened
        if x.shape[-1] != self.config.input_dim:
            raise ValueError(
                f"x must have {self.config.input_dim} features (or shape {self.config.input_shape}), "
                f"got shape {tuple(x.shape)}")
        return x

    def encode(self, x: torch.Tensor) -> Distribution:
        """The posterior q(z|x), with batch shape x.shape[:-1]."""
        x = self._check_input(x)
        return self.latent.posterior(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Likelihood parameters (e.g. Bernoulli logits) for latent points z."""
        if z.shape[-1] != self.latent.ambient_dim:
            raise ValueError(
                f"z must have {self.latent.ambient_dim} ambient coordinates for a "
                f"{self.config.latent_dim}-D {self.geometry} latent, got shape {tuple(z.shape)}")
        return self.decoder(z)

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """The expected observation under p(x|z): an image in [0, 1], or unit (cos, sin) pairs."""
        return self.likelihood.mean(self.decode(z))

    def forward(self, x: torch.Tensor) -> dict:
        """One stochastic pass: posterior, a sample, and the decoded mean."""
        q = self.encode(x)
        z = q.rsample()
        return {"posterior": q, "z": z, "params": self.decode(z)}

    # -- objectives ----------------------------------------------------------
    def elbo(self, x: torch.Tensor, n_samples: int = 1, mask: torch.Tensor | None = None) -> ElboTerms:
        """Per-example ELBO = E_q[log p(x|z)] - KL(q || p), with n_samples draws of z."""
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        x = self._check_input(x)
        q = self.encode(x)
        z, kl = self.latent.sample_and_kl(q, n_samples)
        recon = self.likelihood.log_prob(self.decode(z), x, mask).mean(0)
        return ElboTerms(recon - kl, recon, kl)

    @torch.no_grad()
    def iwae(self, x: torch.Tensor, k: int = 500, mask: torch.Tensor | None = None,
             chunk: int = 100) -> torch.Tensor:
        """Importance-weighted bound log (1/k) sum_s p(x, z_s)/q(z_s|x), per example.

        It is the IWAE bound of Burda et al. (2016); with k = 500 it is the usual
        estimate of log p(x). Samples are drawn ``chunk`` at a time to bound memory.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        x = self._check_input(x)
        q = self.encode(x)
        p = self.latent.prior(q.batch_shape, like=self.latent.location(q))
        parts = []
        for start in range(0, k, chunk):
            s = min(chunk, k - start)
            z = q.sample((s,))
            log_w = self.likelihood.log_prob(self.decode(z), x, mask) + p.log_prob(z) - q.log_prob(z)
            parts.append(log_w)
        log_w = torch.cat(parts, 0)
        return torch.logsumexp(log_w, 0) - math.log(k)

    @torch.no_grad()
    def latent_means(self, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
        """The posterior locations of many inputs (points on the latent manifold)."""
        out = [self.latent.location(self.encode(x[i:i + batch_size]))
               for i in range(0, x.shape[0], batch_size)]
        return torch.cat(out, 0) if out else x.new_zeros((0, self.latent.ambient_dim))
