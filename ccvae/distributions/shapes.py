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


def broadcast_shapes(*shapes) -> torch.Size:
    """``torch.broadcast_shapes``, with a fast path when all shapes are equal (the
    common case on a training step): torch's version is pure Python and costs
    ~11 us a call here, against well under 1 us for the comparison."""
    first = torch.Size(shapes[0])
    if all(torch.Size(s) == first for s in shapes[1:]):
        return first
    return torch.broadcast_shapes(*shapes)
