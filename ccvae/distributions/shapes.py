"""Shape helpers shared by the distributions."""

from __future__ import annotations

import torch


def expand_to(t: torch.Tensor, shape) -> torch.Tensor:
    """``t.expand(shape)``, or ``t`` itself when it already has that shape.

    An expand to the same shape still adds an autograd node (a view forward, a
    reduction back); on a training step's small tensors each costs a few
    microseconds, and the distributions' constructors and ``rsample`` would otherwise
    add four to six of them per step.
    """
    return t if t.shape == shape else t.expand(shape)
