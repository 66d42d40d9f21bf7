"""Multi-layer perceptrons for the encoder and the decoder."""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError

ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


def mlp(in_dim: int, hidden: int, layers: int, out_dim: int | None = None,
        activation: str = "relu") -> nn.Sequential:
    """``layers`` hidden layers of width ``hidden`` with ``activation`` after each.

    With ``out_dim`` a final linear layer (no activation) maps to it; without it the
    network ends on the last hidden activation (an encoder trunk that latent heads
    read from). ``layers=0`` gives a single linear map (or the identity).
    """
    if activation not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if layers < 0:
        raise ConfigError(f"layers must be >= 0, got {layers}")
    if hidden < 1 and layers > 0:
        raise ConfigError(f"hidden must be >= 1, got {hidden}")
    modules: list[nn.Module] = []
    width = in_dim
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
        width = hidden
    if out_dim is not None:
        modules.append(nn.Linear(width, out_dim))
    return nn.Sequential(*modules)


def trunk_width(in_dim: int, hidden: int, layers: int) -> int:
    """Width of the features that an ``mlp(in_dim, hidden, layers)`` trunk outputs."""
    return hidden if layers > 0 else in_dim
