"""Seeded, deterministic train/validation/test splits, as index arrays.

The same ``(n, fractions, seed)`` gives the same split on any machine:

* randomness comes only from ``numpy.random.default_rng(seed)`` (PCG64 seeded through
  SeedSequence, whose bit stream numpy keeps fixed across platforms and versions);
* a permutation is ``argsort(rng.random(n), kind="stable")`` rather than
  ``rng.permutation``, so it depends only on that bit stream and not on the shuffle
  algorithm of one numpy release (ties between 53-bit floats are practically
  impossible; the stable sort would break them by position anyway);
* split sizes are rounded by the largest-remainder rule with ties to the earlier part,
  so the sizes always add up to ``n``;
* every returned index array is sorted, so each split keeps the source order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ccvae.errors import ConfigError

# Fractions are floats from a user; they must add up to 1 up to this rounding slack.
_FRACTION_SUM_TOL = 1e-6


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_fractions(fractions: Sequence[float]) -> list[float]:
    fr = [float(f) for f in fractions]
    if len(fr) == 0 or any(not math.isfinite(f) or f < 0 for f in fr):
        raise ConfigError(f"fractions must be non-negative numbers, got {list(fractions)!r}")
    if abs(sum(fr) - 1.0) > _FRACTION_SUM_TOL:
        raise ConfigError(f"fractions must add up to 1, got {fr!r} (sum {sum(fr):.6g})")
    return fr


def split_sizes(n: int, fractions: Sequence[float]) -> list[int]:
    """Sizes ``n * f`` rounded by the largest-remainder rule so that they sum to ``n``.

    Each part gets ``floor(n * f)``; the leftover items go one each to the parts with
    the largest fractional remainders, earlier parts first on ties.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError(f"n must be a non-negative integer, got {n!r}")
    fr = _check_fractions(fractions)
    exact = [n * f for f in fr]
    sizes = [int(math.floor(e)) for e in exact]
    leftover = int(n) - sum(sizes)
    # sorted() is stable, so equal remainders keep their order (earlier part first)
    order = sorted(range(len(fr)), key=lambda i: -(exact[i] - sizes[i]))
    for i in order[:leftover]:
        sizes[i] += 1
    return sizes


def seeded_permutation(n: int, seed: int) -> np.ndarray:
    """A permutation of ``0..n-1`` that depends only on ``seed`` (see the module notes)."""
    rng = np.random.default_rng(_check_seed(seed))
    return np.argsort(rng.random(int(n)), kind="stable").astype(np.int64)


def random_split(n: int, fractions: Sequence[float], seed: int) -> tuple[np.ndarray, ...]:
    """Split ``range(n)`` into ``len(fractions)`` disjoint sorted index arrays."""
    sizes = split_sizes(n, fractions)
    perm = seeded_permutation(n, seed)
    bounds = np.cumsum([0] + sizes)
    return tuple(np.sort(perm[bounds[i] : bounds[i + 1]]) for i in range(len(sizes)))


def holdout_split(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``size`` random items of ``range(n)``: returns ``(rest, held_out)``, sorted."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 0 <= size <= n:
        raise ConfigError(f"the held-out size must be an integer in [0, {n}], got {size!r}")
    perm = seeded_permutation(n, seed)
    return np.sort(perm[size:]), np.sort(perm[:size])


def stratified_split(
    labels: np.ndarray | Sequence[int], fractions: Sequence[float], seed: int
) -> tuple[np.ndarray, ...]:
    """Split so that every class is divided in the given fractions.

    Classes are visited in sorted label order; each gets its own seeded permutation
    from one generator, and :func:`split_sizes` of its count. Returns one sorted index
    array (into ``labels``) per fraction.
    """
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ConfigError(f"labels must be one-dimensional, got shape {y.shape}")
    fr = _check_fractions(fractions)
    rng = np.random.default_rng(_check_seed(seed))
    parts: list[list[np.ndarray]] = [[] for _ in fr]
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        members = members[np.argsort(rng.random(members.size), kind="stable")]
        bounds = np.cumsum([0] + split_sizes(members.size, fr))
        for i in range(len(fr)):
            parts[i].append(members[bounds[i] : bounds[i + 1]])
    return tuple(
        np.sort(np.concatenate(p)).astype(np.int64) if p else np.zeros(0, np.int64)
        for p in parts
    )
