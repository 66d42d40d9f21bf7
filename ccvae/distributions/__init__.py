"""Distributions on the latent manifolds, in the ``torch.distributions`` API.

- :class:`VonMisesFisher` on S^{m-1}: reparameterised rejection sampling with the
  exact envelope and implicit reparameterisation gradients for the concentration.
- :class:`HypersphericalUniform`: the uniform prior on S^d.
- :class:`PowerSpherical` (De Cao & Aziz 2020): a fully reparameterisable
  alternative to the vMF.
- :class:`WrappedNormal` on H^d (Nagano et al. 2019), with an exact ``log_prob``.
- :class:`SvaeVonMisesFisher`: the vMF with s-vae-pytorch's BIASED sampler and
  kappa-gradient, kept to measure what they cost; never the default.

KL(vMF || uniform) and KL(PowerSpherical || uniform) are registered with
``torch.distributions.kl_divergence`` in closed form. Wrapped normals have no
closed-form KL: use :func:`monte_carlo_kl` (the tangent-space formula is
:func:`tangent_kl_approximation`, an approximation by name).
"""

from .hyperspherical_uniform import HypersphericalUniform
from .kl import monte_carlo_kl, tangent_kl_approximation
from .power_spherical import PowerSpherical
from .vmf_svae import SvaeVonMisesFisher
from .von_mises_fisher import VonMisesFisher
from .wrapped_normal import WrappedNormal

__all__ = ["VonMisesFisher", "HypersphericalUniform", "PowerSpherical", "WrappedNormal", "SvaeVonMisesFisher",
           "monte_carlo_kl", "tangent_kl_approximation"]
