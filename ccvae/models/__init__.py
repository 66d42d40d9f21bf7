"""VAE models: encoder/decoder networks, latent geometries and likelihoods."""

from .latent import GEOMETRIES, SPHERE_POSTERIORS, Latent, make_latent
from .likelihoods import LIKELIHOODS, Likelihood, make_likelihood
from .vae import VAE, ElboTerms, ModelConfig

__all__ = ["VAE", "ModelConfig", "ElboTerms", "GEOMETRIES", "LIKELIHOODS", "SPHERE_POSTERIORS", "Latent",
           "Likelihood", "make_latent", "make_likelihood"]
