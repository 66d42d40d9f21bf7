"""Datasets, offline-first, each returned as a :class:`DatasetBundle` that says
where it came from and whether it is a subset.

``load_dataset(name, data_dir=None, **options)`` is the one entry point;
``available_sources()`` tells, without loading anything, which source each
dataset would use. QM9 (RDKit) is imported only when asked for.
"""

from .base import DatasetBundle, Split
from .lfw import load_lfw
from .mnist import load_mnist
from .paths import SourceInfo
from .registry import DATASETS, available_sources, load_dataset

__all__ = ["DatasetBundle", "Split", "SourceInfo", "DATASETS", "available_sources", "load_dataset",
           "load_mnist", "load_lfw"]
