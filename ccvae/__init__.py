"""ccvae: constant-curvature variational autoencoders.

Subpackages, in the order data flows through them:

- ``ccvae.data``          datasets (MNIST, LFW, QM9 torsions) with provenance
- ``ccvae.manifolds``     Euclidean, Sphere and Lorentz (hyperboloid) geometry
- ``ccvae.special``       stable log-Bessel functions for the vMF
- ``ccvae.distributions`` vMF, uniform on the sphere, wrapped normal, KL terms
- ``ccvae.models``        the VAE with a pluggable latent geometry
- ``ccvae.training``      the training loop
- ``ccvae.evaluation``    ELBO, IWAE, bits/dim, k-NN, angular errors
- ``ccvae.checkpoints``   atomic, safe checkpoint directories
- ``ccvae.viz``           plotly figures and 3-D molecule views

The package never imports streamlit: pages call it and draw.
"""

__version__ = "0.1.0"
