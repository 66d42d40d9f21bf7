"""3-D molecule views (py3Dmol) that work offline: one molecule, or a DFT structure
and its reconstruction from decoded torsions, side by side or overlaid.

A view is built with py3Dmol and turned into self-contained HTML by ``view_html``:
py3Dmol's own HTML fetches 3Dmol.js from a CDN (a blank viewer offline); here the
library from ``ccvae.viz.assets`` (npm ``3dmol``, copied by ``make assets``) is
inlined instead, or loaded from a local URL you serve (``js_url``). No CDN address
is left in the output. The HTML is a fragment for ``st.iframe`` / notebooks, or a
full page (``full_page=True``) for a file.
"""

from __future__ import annotations

import html as _html
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import py3Dmol
from rdkit import Chem

from ccvae.errors import ConfigError
from ccvae.viz.assets import inline_script

__all__ = [
    "DEFAULT_STYLE",
    "molblock",
    "molecule_view",
    "comparison_view",
    "view_html",
    "molecule_html",
    "reconstruction_html",
    "reconstruction_title",
    "write_html",
]

#: Ball-and-stick with element colours (grey carbons).
DEFAULT_STYLE: dict = {"stick": {"radius": 0.14}, "sphere": {"scale": 0.22}}
_REBUILT_STYLE: dict = {
    "stick": {"radius": 0.14, "colorscheme": "orangeCarbon"},
    "sphere": {"scale": 0.22, "colorscheme": "orangeCarbon"},
}
_GHOST_STYLE: dict = {
    "stick": {"radius": 0.10, "colorscheme": "grayCarbon", "opacity": 0.55},
    "sphere": {"scale": 0.16, "colorscheme": "grayCarbon", "opacity": 0.55},
}
# py3Dmol writes this where its HTML would load 3Dmol.js; view_html replaces it.
_JS_PLACEHOLDER = "__CCVAE_3DMOL_JS__"
_LOADER = re.compile(r"loadScriptAsync\('" + re.escape(_JS_PLACEHOLDER) + r"'\)")
_CDN_PATTERN = re.compile(r"cdn\.jsdelivr|unpkg\.com|cdnjs|3dmol\.org/build|3Dmol\.csb\.pitt\.edu", re.I)


def molblock(mol: Chem.Mol, conf_id: int = -1) -> str:
    """An MDL mol block of ``mol`` (hydrogens and 3-D coordinates kept)."""
    if mol.GetNumConformers() == 0:
        raise ConfigError("molecule view: the molecule has no 3-D conformer to show")
    return Chem.MolToMolBlock(mol, confId=conf_id, kekulize=False)


def _px(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 50 <= value <= 4000:
        raise ConfigError(f"`{name}` must be a pixel count between 50 and 4000, got {value!r}")
    return value


def molecule_view(
    mol: Chem.Mol, *, width: int = 480, height: int = 360, style: dict | None = None
) -> py3Dmol.view:
    """A py3Dmol view of one molecule (ball and stick unless ``style`` is given)."""
    view = py3Dmol.view(width=_px(width, "width"), height=_px(height, "height"), js=_JS_PLACEHOLDER)
    view.addModel(molblock(mol), "sdf")
    view.setStyle(style or DEFAULT_STYLE)
    view.zoomTo()
    return view


def comparison_view(
    original: Chem.Mol,
    rebuilt: Chem.Mol,
    *,
    mode: str = "side-by-side",
    width: int = 480,
    height: int = 360,
) -> py3Dmol.view:
    """Original and rebuilt structure in one py3Dmol view.

    mode "side-by-side": two linked viewers (rotate one, both turn), each
    ``width`` wide; "overlay": one viewer, the original as a grey ghost and the
    reconstruction with orange carbons. Superpose the structures first (the
    ``Reconstruction.mol`` of ``ccvae.chemistry.rebuild_from_torsions`` already is).
    """
    width, height = _px(width, "width"), _px(height, "height")
    a, b = molblock(original), molblock(rebuilt)
    if mode == "side-by-side":
        view = py3Dmol.view(width=2 * width, height=height, viewergrid=(1, 2), linked=True, js=_JS_PLACEHOLDER)
        view.addModel(a, "sdf", viewer=(0, 0))
        view.addModel(b, "sdf", viewer=(0, 1))
        view.setStyle(DEFAULT_STYLE, viewer=(0, 0))
        view.setStyle(_REBUILT_STYLE, viewer=(0, 1))
    elif mode == "overlay":
        view = py3Dmol.view(width=width, height=height, js=_JS_PLACEHOLDER)
        view.addModel(a, "sdf")
        view.addModel(b, "sdf")
        view.setStyle({"model": 0}, _GHOST_STYLE)
        view.setStyle({"model": 1}, _REBUILT_STYLE)
    else:
        raise ConfigError(f"`mode` must be 'side-by-side' or 'overlay', got {mode!r}")
    view.zoomTo()
    return view


def _check_local_url(js_url: str) -> None:
    parsed = urlparse(js_url)
    if parsed.scheme in ("http", "https") and parsed.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise ConfigError(
            f"`js_url` {js_url!r} is a remote address: molecule views load 3Dmol.js only "
            "from this machine (leave js_url unset to inline it)"
        )
    if parsed.scheme not in ("", "http", "https"):
        raise ConfigError(f"`js_url` {js_url!r}: use a relative path or a localhost http(s) URL")


def view_html(
    view: py3Dmol.view,
    *,
    title: str | None = None,
    captions: tuple[str, ...] | None = None,
    caption_width: int | None = None,
    js_url: str | None = None,
    full_page: bool = False,
) -> str:
    """Self-contained HTML of a py3Dmol ``view``, with no CDN address in it.

    title:    a heading above the viewer (escaped). captions: short labels above
              each viewer cell (``caption_width`` pixels each).
    js_url:   None inlines the local 3Dmol.js (about 0.5 MB; works in a sandboxed
              iframe and offline). A relative path or localhost URL loads it from
              there instead (for a page that serves the file itself).
    """
    body = view._make_html()
    if _JS_PLACEHOLDER not in body:
        raise ConfigError("view_html: the view was not created by ccvae.viz.molecules")
    if js_url is None:
        loader = inline_script()
        body = _LOADER.sub("Promise.resolve()", body)
    else:
        _check_local_url(js_url)
        loader = ""
        body = body.replace(_JS_PLACEHOLDER, js_url.replace("'", "%27"))
    head = ""
    if title:
        head += (
            '<div style="font-family:sans-serif;font-size:15px;font-weight:600;margin:4px 0">'
            f"{_html.escape(title)}</div>\n"
        )
    if captions:
        cells = "".join(
            f'<div style="width:{int(caption_width or 0)}px;text-align:center">{_html.escape(c)}</div>'
            if caption_width
            else f'<div style="margin-right:2em">{_html.escape(c)}</div>'
            for c in captions
        )
        head += f'<div style="display:flex;font-family:sans-serif;font-size:13px;color:#444">{cells}</div>\n'
    if _CDN_PATTERN.search(head + body):  # guards against a py3Dmol release that adds one
        raise RuntimeError("view_html: a CDN address is left in the molecule view HTML")
    out = loader + head + body
    if full_page:
        out = (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>'
            f"{_html.escape(title or 'molecule')}</title></head>\n"
            f'<body style="margin:0;padding:4px">\n{out}\n</body></html>\n'
        )
    return out


def molecule_html(
    mol: Chem.Mol,
    *,
    title: str | None = None,
    width: int = 480,
    height: int = 360,
    js_url: str | None = None,
    full_page: bool = False,
) -> str:
    """Offline HTML of one molecule (see ``view_html``)."""
    return view_html(
        molecule_view(mol, width=width, height=height), title=title, js_url=js_url, full_page=full_page
    )


def reconstruction_title(
    title: str | None, rmsd: float | None, n_set: int | None = None, n_ring: int | None = None
) -> str:
    """"<title> | heavy-atom RMSD 0.123 Å (12 torsions set, 6 ring torsions kept)"."""
    parts = [title] if title else []
    if rmsd is not None:
        detail = []
        if n_set is not None:
            detail.append(f"{n_set} torsions set")
        if n_ring:
            detail.append(f"{n_ring} ring torsions kept")
        parts.append(
            f"heavy-atom RMSD {float(rmsd):.3f} \u00c5" + (f" ({', '.join(detail)})" if detail else "")
        )
    return " | ".join(parts)


def reconstruction_html(
    original: Chem.Mol,
    rebuilt: Any,
    *,
    rmsd: float | None = None,
    mode: str = "side-by-side",
    title: str | None = None,
    width: int = 420,
    height: int = 340,
    js_url: str | None = None,
    full_page: bool = False,
) -> str:
    """Offline HTML comparing the DFT structure with its reconstruction.

    ``rebuilt`` is a ``Chem.Mol`` or a ``ccvae.chemistry.Reconstruction`` (whose
    RMSD and torsion counts then go into the title unless ``rmsd`` is given).
    """
    n_set = n_ring = None
    if hasattr(rebuilt, "mol") and hasattr(rebuilt, "rmsd"):
        n_set, n_ring = getattr(rebuilt, "n_set", None), getattr(rebuilt, "n_ring_skipped", None)
        rmsd = rebuilt.rmsd if rmsd is None else rmsd
        rebuilt = rebuilt.mol
    if not isinstance(rebuilt, Chem.Mol):
        raise ConfigError(f"`rebuilt` must be an RDKit Mol or a Reconstruction, got {type(rebuilt).__name__}")
    view = comparison_view(original, rebuilt, mode=mode, width=width, height=height)
    if mode == "side-by-side":
        captions, cw = ("original (DFT)", "reconstruction"), width
    else:
        captions, cw = ("grey: original (DFT)", "orange carbons: reconstruction"), None
    return view_html(
        view,
        title=reconstruction_title(title, rmsd, n_set, n_ring),
        captions=captions,
        caption_width=cw,
        js_url=js_url,
        full_page=full_page,
    )


def write_html(path: str | Path, html: str) -> Path:
    """Write HTML to ``path`` (UTF-8) and return the path."""
    p = Path(path)
    p.write_text(html, encoding="utf-8")
    return p

