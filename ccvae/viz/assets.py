"""Front-end files served from the package, never from a CDN.

3Dmol.js (the molecule viewer behind py3Dmol) comes from the npm package
``3dmol`` (version pinned in ``package.json``); ``make assets`` (run by
``make setup``/``make run``/``make test``) copies its ``build/3Dmol-min.js`` to
``ccvae/viz/static/3Dmol-min.js``. Views inline that file into their HTML, so
they work offline and inside a sandboxed iframe (``st.iframe`` srcdoc).
"""

from __future__ import annotations

import functools
from pathlib import Path

from ccvae.errors import CCVAEError

__all__ = [
    "THREEDMOL_FILE",
    "AssetMissingError",
    "static_dir",
    "three_dmol_js_path",
    "three_dmol_js",
    "inline_script",
]

THREEDMOL_FILE = "3Dmol-min.js"


class AssetMissingError(CCVAEError):
    """A front-end file that the set-up step should have put in place is missing."""


def static_dir() -> Path:
    """``ccvae/viz/static``: where ``make assets`` puts front-end files."""
    return Path(__file__).resolve().parent / "static"


def three_dmol_js_path() -> Path:
    """Path of the local 3Dmol.js; ``AssetMissingError`` telling how to get it."""
    path = static_dir() / THREEDMOL_FILE
    if not path.is_file() or path.stat().st_size == 0:
        raise AssetMissingError(
            f"3Dmol.js is missing ({path}): run `make assets` in the repository root "
            "(it installs the npm package `3dmol` and copies build/3Dmol-min.js there). "
            "Molecule views never load it from a CDN."
        )
    return path


@functools.lru_cache(maxsize=2)
def _read(path: str, mtime_ns: int) -> str:
    del mtime_ns  # part of the cache key only: a replaced file is read again
    text = Path(path).read_text(encoding="utf-8")
    # Inside an inline <script>, the character sequence "</script" would end the
    # element early; the minified library has none today, but escape it anyway
    # ("<\/script" means the same inside JavaScript strings and regexes).
    return text.replace("</script", "<\\/script")


def three_dmol_js() -> str:
    """The text of the local 3Dmol.js, safe to put inside a <script> element."""
    path = three_dmol_js_path()
    return _read(str(path), path.stat().st_mtime_ns)


def inline_script() -> str:
    """A <script> element that defines ``$3Dmol`` from the local 3Dmol.js.

    3Dmol.js is a UMD bundle: on a page where an AMD loader (``define.amd``, as in
    Jupyter) is present it would register itself as a module instead of the
    ``$3Dmol`` global that py3Dmol's code calls. ``define`` is hidden while the
    library runs and restored after.
    """
    return (
        "<script>var __ccvae_define = window.define; window.define = undefined;</script>\n"
        f"<script>\n{three_dmol_js()}\n</script>\n"
        "<script>window.define = __ccvae_define;</script>\n"
    )
