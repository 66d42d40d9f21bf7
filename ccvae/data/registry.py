"""Datasets by name: ``load_dataset("mnist")``, and which source each would use.

``DATASETS`` maps a name to its loader. Every loader takes ``data_dir`` (a keyword, None
for "find it") and returns a :class:`ccvae.data.base.DatasetBundle`. QM9 is registered
through a lazy wrapper, so importing this module (or loading MNIST) never imports
``ccvae.data.qm9`` or RDKit.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ccvae.data.base import DatasetBundle
from ccvae.data.lfw import lfw_source_info, load_lfw
from ccvae.data.mnist import load_mnist, mnist_source_info
from ccvae.data.paths import SourceInfo
from ccvae.errors import DataError


def _load_qm9(data_dir: str | os.PathLike | None = None, **kwargs: Any) -> DatasetBundle:
    """Import ``ccvae.data.qm9`` (and so RDKit) only when QM9 is asked for."""
    from ccvae.data.qm9 import load_qm9

    _check_options("qm9", load_qm9, kwargs)
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    return load_qm9(**kwargs)


def _qm9_source_info(data_dir: str | os.PathLike | None = None) -> SourceInfo:
    """QM9's source, without importing ccvae.data.qm9 or RDKit.

    Asks ``ccvae.data.qm9_sources.resolve_source`` (file names only, no RDKit). Where
    that module is missing, only checks that the ``qm9pack`` package is installed
    (``find_spec`` reads no module).
    """
    try:
        from ccvae.data.qm9_sources import resolve_source
    except ImportError:
        resolve_source = None
    if resolve_source is not None:
        try:
            src = resolve_source(data_dir)
        except DataError as e:
            return SourceInfo("qm9", "unavailable", None, None, str(e))
        kind = "package" if src.kind == "qm9pack-csv" else "data_dir"
        return SourceInfo("qm9", kind, src.root, False, src.describe())
    spec = importlib.util.find_spec("qm9pack")
    if spec is None:
        return SourceInfo(
            "qm9", "unavailable", None, None, "QM9 needs the qm9pack package, which is not installed"
        )
    where = Path(spec.origin).parent if spec.origin else None
    return SourceInfo("qm9", "package", where, False, "QM9 molecules from the qm9pack package")


Loader = Callable[..., DatasetBundle]

DATASETS: dict[str, Loader] = {
    "mnist": load_mnist,
    "lfw": load_lfw,
    "qm9": _load_qm9,
}

_SOURCE_PROBES: dict[str, Callable[..., SourceInfo]] = {
    "mnist": mnist_source_info,
    "lfw": lfw_source_info,
    "qm9": _qm9_source_info,
}


def _known() -> str:
    return ", ".join(sorted(DATASETS))


def get_loader(name: str) -> Loader:
    """The loader registered under ``name`` (case and surrounding spaces ignored)."""
    key = str(name).strip().lower() if isinstance(name, str) else None
    if key not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known datasets: {_known()}")
    return DATASETS[key]


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, **kwargs: Any) -> DatasetBundle:
    """Load dataset ``name`` with its loader: ``load_dataset("mnist", seed=1)``."""
    loader = get_loader(name)
    _check_options(str(name).strip().lower(), loader, kwargs)
    return loader(data_dir=data_dir, **kwargs)


def _check_options(name: str, loader: Loader, options: dict) -> None:
    """DataError naming any option ``loader`` does not take (a loader that takes
    ``**kwargs`` checks its own, as ``_load_qm9`` does)."""
    params = inspect.signature(loader).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(options) - set(params))
    if unknown:
        accepted = sorted(k for k, p in params.items() if k != "data_dir" and p.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY))
        raise DataError(f"unknown data option {', '.join(map(repr, unknown))} for {name}; "
                        f"its options are: {', '.join(accepted)}")


def available_sources(data_dir: str | os.PathLike | None = None) -> dict[str, SourceInfo]:
    """For each registered dataset, the source its loader would use now and whether it
    is a subset, found from file names only: nothing is read, nothing downloaded.

    A probe that fails reports ``kind="unavailable"`` with the reason instead of raising,
    so a dashboard can always show the table.
    """
    out: dict[str, SourceInfo] = {}
    for name in sorted(DATASETS):
        probe = _SOURCE_PROBES.get(name)
        if probe is None:
            out[name] = SourceInfo(name, "unknown", None, None, "no source probe registered")
            continue
        try:
            out[name] = probe(data_dir)
        except Exception as e:  # noqa: BLE001 - a status table must not crash the page
            out[name] = SourceInfo(name, "unavailable", None, None, f"{type(e).__name__}: {e}")
    return out
