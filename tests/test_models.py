"""The VAE: shapes, objectives, likelihoods and configuration errors."""

from __future__ import annotations

import math

import pytest
import torch

from ccvae.errors import ConfigError
from ccvae.models import VAE, ModelConfig
from ccvae.models.likelihoods import (ContinuousBernoulliLikelihood, VonMisesAngleLikelihood,
                                      _log_cb_normaliser)

from .conftest import GEOMETRIES


def make(geometry, latent_dim=2, **kw):
    torch.manual_seed(0)
    return VAE(ModelConfig(input_dim=64, geometry=geometry, latent_dim=latent_dim, hidden=32, layers=2,
                           input_shape=(8, 8), **kw))


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("latent_dim", [2, 5])
def test_shapes_and_manifold(geometry, latent_dim):
    model = make(geometry, latent_dim)
    x = torch.rand(7, 64)
    q = model.encode(x)
    assert q.batch_shape == (7,)
    ambient = latent_dim + (geometry != "euclidean")
    assert q.event_shape == (ambient,)
    z = q.rsample((3,))
    assert z.shape == (3, 7, ambient)
    if geometry == "sphere":
        torch.testing.assert_close(z.norm(dim=-1), torch.ones(3, 7), atol=1e-5, rtol=0)
    if geometry == "hyperbolic":
        minkowski = -z[..., 0] ** 2 + (z[..., 1:] ** 2).sum(-1)
        torch.testing.assert_close(minkowski, -torch.ones(3, 7), atol=1e-3, rtol=1e-4)
    assert model.decode(z).shape == (3, 7, 64)
    t = model.elbo(x, n_samples=4)
    for term in t:
        assert term.shape == (7,) and torch.isfinite(term).all()
    torch.testing.assert_close(t.elbo, t.recon - t.kl)
    assert (t.kl > -1e-3).all() if geometry != "hyperbolic" else True
    # images may come unflattened
    assert model.elbo(torch.rand(7, 8, 8)).elbo.shape == (7,)
    assert model.latent_means(x).shape == (7, ambient)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_iwae_bounds_the_elbo(geometry):
    """Averaged over data, IWAE_k >= ELBO (Burda et al. 2016), and IWAE_1 is an ELBO estimate."""
    model = make(geometry)
    torch.manual_seed(1)
    x = (torch.rand(64, 64) > 0.5).float()
    elbo = model.elbo(x, n_samples=200).elbo.mean()
    iwae = model.iwae(x, k=200, chunk=64).mean()
    assert iwae >= elbo - 0.05
    iwae1 = model.iwae(x, k=1).mean()
    assert abs(iwae1 - elbo) < 0.05 * abs(elbo)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_backward_reaches_every_parameter(geometry):
    model = make(geometry)
    x = torch.rand(16, 64)
    (-model.elbo(x).elbo.mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_bernoulli_matches_manual_bce():
    model = make("euclidean")
    logits = torch.randn(5, 64)
    x = torch.rand(5, 64)
    manual = (x * torch.log(torch.sigmoid(logits)) + (1 - x) * torch.log(1 - torch.sigmoid(logits))).sum(-1)
    torch.testing.assert_close(model.likelihood.log_prob(logits, x), manual, rtol=1e-5, atol=1e-4)


def test_continuous_bernoulli_is_normalised():
    """The density integrates to 1 over [0, 1] for logits near and far from 0."""
    lik = ContinuousBernoulliLikelihood()
    xs = torch.linspace(0, 1, 20001, dtype=torch.float64)
    for logit in [-8.0, -1.0, -1e-3, 0.0, 2e-3, 0.5, 6.0]:
        l = torch.full((xs.numel(), 1), logit, dtype=torch.float64)
        dens = lik.log_prob(l, xs[:, None]).exp()
        assert abs(torch.trapezoid(dens, xs).item() - 1) < 1e-6, logit
    # the series branch joins the closed form continuously
    a = _log_cb_normaliser(torch.tensor([0.00999999], dtype=torch.float64))
    b = _log_cb_normaliser(torch.tensor([0.01000001], dtype=torch.float64))
    assert abs(a - b) < 1e-9


def test_von_mises_angle_likelihood():
    lik = VonMisesAngleLikelihood(concentration=3.0)
    theta = torch.tensor([[0.3, -2.0, 3.1]])
    x = torch.stack([theta.cos(), theta.sin()], -1).flatten(-2)
    params = torch.stack([(theta + 0.5).cos(), (theta + 0.5).sin()], -1).flatten(-2) * 7.0  # any norm
    mask = torch.tensor([[True, True, False]])
    log_i0 = math.log(torch.special.i0(torch.tensor(3.0)).item())
    expected = 2 * (3.0 * math.cos(0.5) - math.log(2 * math.pi) - log_i0)
    assert lik.log_prob(params, x, mask).item() == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(lik.mean(params).unflatten(-1, (-1, 2)).norm(dim=-1), torch.ones(1, 3))


@pytest.mark.parametrize("kwargs, match", [
    ({"geometry": "torus"}, "unknown geometry 'torus'"),
    ({"latent_dim": 0}, "latent_dim must be a positive integer"),
    ({"likelihood": "poisson"}, "unknown likelihood 'poisson'"),
    ({"layers": -1}, "layers must be a non-negative integer"),
    ({"geometry": "sphere", "sphere_posterior": "bingham"}, "unknown sphere posterior 'bingham'"),
    ({"sphere_posterior": "power_spherical"}, "needs the sphere geometry, not 'euclidean'"),
    ({"geometry": "sphere", "initial_concentration": 1.0}, "initial concentration must be a number above 1"),
    ({"geometry": "sphere", "initial_concentration": float("nan")}, "initial concentration must be"),
    ({"initial_concentration": 3.0}, "initial concentration needs the sphere geometry"),
])
def test_config_errors(kwargs, match):
    base = dict(input_dim=64, geometry="euclidean", latent_dim=2)
    base.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**base)


def test_wrong_input_shapes_are_named():
    model = make("euclidean")
    with pytest.raises(ValueError, match="x must have 64 features"):
        model.encode(torch.rand(3, 10))
    with pytest.raises(ValueError, match="z must have 2 ambient coordinates"):
        model.decode(torch.rand(3, 3))


def test_config_round_trip():
    c = ModelConfig(input_dim=64, geometry="sphere", latent_dim=3, input_shape=(8, 8))
    assert ModelConfig.from_dict(c.to_dict()) == c
    ps = ModelConfig(input_dim=64, geometry="sphere", latent_dim=3, sphere_posterior="power_spherical")
    assert ModelConfig.from_dict(ps.to_dict()) == ps
    # checkpoints written before the setting existed load with the vMF
    old = {k: v for k, v in c.to_dict().items() if k != "sphere_posterior"}
    assert ModelConfig.from_dict(old).sphere_posterior == "vmf"
    with pytest.raises(ConfigError, match="unknown model settings: bogus"):
        ModelConfig.from_dict({**c.to_dict(), "bogus": 1})


def test_per_layer_widths_are_mirrored_in_the_decoder():
    model = VAE(ModelConfig(input_dim=784, geometry="euclidean", latent_dim=10, hidden=[256, 128], layers=2))
    enc = [m.out_features for m in model.encoder if isinstance(m, torch.nn.Linear)]
    dec = [m.out_features for m in model.decoder if isinstance(m, torch.nn.Linear)]
    assert enc == [256, 128] and dec == [128, 256, 784]
    with pytest.raises(ConfigError, match="2 hidden widths"):
        ModelConfig(input_dim=784, hidden=[256, 128], layers=3)


def test_sphere_encoder_starts_at_an_informative_concentration():
    """A fresh sphere head starts at kappa = INITIAL_CONCENTRATION for zero features
    (softplus(bias) + floor), so the decoder sees informative samples from the start."""
    from ccvae.models.latent import INITIAL_CONCENTRATION, SphereLatent

    q = SphereLatent(16, 2).posterior(torch.zeros(3, 16))
    assert torch.allclose(q.concentration, torch.full((3,), INITIAL_CONCENTRATION), rtol=1e-6)
    # s-vae-pytorch's starting point, softplus(0) + 1
    q = SphereLatent(16, 2, initial_concentration=1.0 + math.log(2.0)).posterior(torch.zeros(3, 16))
    assert torch.allclose(q.concentration, torch.full((3,), 1.0 + math.log(2.0)), rtol=1e-6)


@pytest.mark.parametrize("posterior, cls_name", [("vmf", "VonMisesFisher"), ("vmf_svae", "SvaeVonMisesFisher"),
                                                 ("power_spherical", "PowerSpherical")])
def test_sphere_posterior_families_train_end_to_end(posterior, cls_name):
    from ccvae.models.latent import SPHERE_POSTERIOR_LABELS, SPHERE_POSTERIORS

    assert SPHERE_POSTERIOR_LABELS.keys() == SPHERE_POSTERIORS.keys()
    model = make("sphere", latent_dim=4, sphere_posterior=posterior)
    x = torch.rand(16, 64)
    q = model.encode(x)
    assert type(q).__name__ == cls_name and q.event_shape == (5,)
    t = model.elbo(x)
    assert torch.isfinite(t.elbo).all() and (t.kl > -1e-4).all()
    (-t.elbo.mean()).backward()
    head = model.latent.concentration_head.weight.grad
    assert head is not None and torch.isfinite(head).all() and head.abs().sum() > 0
    assert torch.isfinite(model.iwae(x, k=8)).all()
