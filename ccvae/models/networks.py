"""Multi-layer perceptrons for the encoder and the decoder."""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError

ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


def mlp(in_dim: int, widths: list[int], out_dim: int | None = None,
        activation: str = "relu") -> nn.Sequential:
    """Hidden layers of the given ``widths``, each followed by ``activation``.

    With ``out_dim`` a final linear layer (no activation) maps to it; without it the
    network ends on the last hidden activation (an encoder trunk that latent heads
    read from). No widths gives a single linear map (or the identity).
    """
    if activation not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    modules: list[nn.Module] = []
    width = in_dim
    for w in widths:
        modules += [nn.Linear(width, w), ACTIVATIONS[activation]()]
        width = w
    if out_dim is not None:
        modules.append(nn.Linear(width, out_dim))
    return nn.Sequential(*modules)


def trunk_width(in_dim: int, widths: list[int]) -> int:
    """Width of the features that an ``mlp(in_dim, widths)`` trunk outputs."""
    return widths[-1] if widths else in_dim
