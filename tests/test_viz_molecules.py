"""Offline 3-D molecule views (ccvae.viz.molecules / assets) and the QM9 plotly figures."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

import ccvae.viz.assets as assets
from ccvae.chemistry import rebuild_from_torsions
from ccvae.data.torsions import featurise_torsions
from ccvae.errors import CCVAEError, ConfigError
from ccvae.viz.molecules import molecule_html, reconstruction_html, view_html
from ccvae.viz.qm9_plots import (
    angle_error_histogram,
    correlation_heatmaps,
    error_by_angle_plot,
    loss_curves,
    unit_circle_plot,
)

CDN = re.compile(r"cdn\.jsdelivr|unpkg\.com|cdnjs|3dmol\.org|3Dmol\.csb\.pitt\.edu|googleapis", re.I)


@pytest.fixture(scope="module")
def butanol() -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles("CCC(O)C"))
    AllChem.EmbedMolecule(mol, randomSeed=2)
    return mol


def library_text() -> str:
    return assets.three_dmol_js_path().read_text(encoding="utf-8")


def outside_library(html: str) -> str:
    """The HTML with the inlined 3Dmol.js removed (its own strings name data
    services such as RCSB, which it contacts only when asked to download)."""
    lib = library_text()
    assert lib in html
    return html.replace(lib, "")


def test_view_inlines_the_local_3dmol_and_names_no_cdn(butanol) -> None:
    html = molecule_html(butanol, title="2-butanol")
    rest = outside_library(html)
    assert "$3Dmol.createViewer" in rest and "2-butanol" in rest
    assert not CDN.search(html)
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.I)
    assert "loadScriptAsync('" not in rest  # py3Dmol's CDN loader call is gone
    assert "http://" not in rest and "https://" not in rest
    assert Chem.MolToMolBlock(butanol).splitlines()[3][:30] in rest.replace("\\n", "\n")


def test_reconstruction_side_by_side_and_overlay(butanol) -> None:
    t = featurise_torsions(butanol)
    rec = rebuild_from_torsions(butanol, t.atoms, t.angles + 30.0)
    side = reconstruction_html(butanol, rec, title="QM9 42 CCC(O)C")
    rest = outside_library(side)
    assert f"RMSD {rec.rmsd:.3f} \u00c5" in rest and f"{rec.n_set} torsions set" in rest
    assert "createViewerGrid" in rest and "original (DFT)" in rest and "reconstruction" in rest
    assert rest.count("M  END") == 2
    overlay = reconstruction_html(butanol, rec.mol, rmsd=0.5, mode="overlay")
    rest = outside_library(overlay)
    assert "RMSD 0.500" in rest and "createViewerGrid" not in rest and rest.count("M  END") == 2
    assert '"model": 1' in rest
    assert not CDN.search(side + overlay)
    page = reconstruction_html(butanol, rec, full_page=True)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_titles_are_escaped(butanol) -> None:
    html = molecule_html(butanol, title="<script>alert(1)</script>")
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html


def test_local_js_url_instead_of_inlining(butanol) -> None:
    html = molecule_html(butanol, js_url="/app/static/3Dmol-min.js")
    assert "loadScriptAsync('/app/static/3Dmol-min.js')" in html
    assert library_text()[:2000] not in html
    assert molecule_html(butanol, js_url="http://localhost:8501/app/static/3Dmol-min.js")
    for remote in ("https://cdn.jsdelivr.net/npm/3dmol/build/3Dmol-min.js", "ftp://x/3Dmol.js"):
        with pytest.raises(ConfigError, match="js_url"):
            molecule_html(butanol, js_url=remote)


def test_bad_arguments(butanol) -> None:
    with pytest.raises(ConfigError, match="mode"):
        reconstruction_html(butanol, butanol, mode="sideways")
    with pytest.raises(ConfigError, match="width"):
        molecule_html(butanol, width=10)
    with pytest.raises(ConfigError, match="conformer"):
        molecule_html(Chem.MolFromSmiles("CCO"))
    with pytest.raises(ConfigError, match="Reconstruction"):
        reconstruction_html(butanol, "not a molecule")
    import py3Dmol

    with pytest.raises(ConfigError, match="not created by ccvae"):
        view_html(py3Dmol.view())


def test_missing_asset_tells_to_run_make_assets(tmp_path: Path, monkeypatch, butanol) -> None:
    monkeypatch.setattr(assets, "static_dir", lambda: tmp_path)
    with pytest.raises(assets.AssetMissingError, match="make assets") as info:
        molecule_html(butanol)
    assert isinstance(info.value, CCVAEError)
    (tmp_path / assets.THREEDMOL_FILE).write_text("")
    with pytest.raises(assets.AssetMissingError, match="make assets"):
        assets.three_dmol_js_path()


@pytest.mark.browser
def test_view_renders_offline_in_chromium(tmp_path: Path, butanol) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    if not shutil.which("chromium") and not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is not installed (scripts/install-browser.sh)")
    t = featurise_torsions(butanol)
    rec = rebuild_from_torsions(butanol, t.atoms, t.angles + 30.0)
    page_file = tmp_path / "view.html"
    page_file.write_text(reconstruction_html(butanol, rec, full_page=True), encoding="utf-8")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox", "--use-gl=swiftshader", "--enable-unsafe-swiftshader"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            remote: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: remote.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
            page.goto(page_file.as_uri())
            page.wait_for_function("document.querySelectorAll('canvas').length > 0", timeout=15000)
            assert page.evaluate("typeof $3Dmol") == "object"
            warnings_left = page.evaluate(
                "Array.from(document.querySelectorAll('p')).filter(e => e.id.startsWith('3dmolwarning')).length"
            )
            assert warnings_left == 0 and not errors and not remote
        finally:
            browser.close()


# ---- QM9 figures -----------------------------------------------------------------


@pytest.fixture(scope="module")
def angles():
    rng = np.random.default_rng(0)
    true = rng.uniform(-180, 180, (60, 6))
    pred = true + rng.normal(0, 15, true.shape)
    mask = rng.random(true.shape) < 0.8
    return true, pred, mask


def test_loss_curves() -> None:
    hist = [{"epoch": 1, "train_loss": 3.0, "val_elbo": -3.5}, {"epoch": 2, "train_loss": 2.0, "val_elbo": -2.5}]
    fig = loss_curves({"E-VAE": hist, "H-VAE": hist[:1]})
    assert isinstance(fig, go.Figure) and len(fig.data) == 4
    assert list(fig.data[0].y) == [3.0, 2.0] and fig.data[0].name == "E-VAE"
    assert len(loss_curves(hist, metrics=("train_loss",)).data) == 1
    with pytest.raises(ValueError):
        loss_curves(hist, metrics=())


def test_error_histogram_and_unit_circle(angles) -> None:
    true, pred, mask = angles
    fig = angle_error_histogram({"model": pred, "baseline": np.zeros_like(pred)}, true, mask)
    assert len(fig.data) == 2 and len(fig.data[0].x) == mask.sum()
    assert fig.data[0].x.max() <= 180 and "mean" in fig.data[0].name
    circle = unit_circle_plot(true, pred, mask, max_points=25)
    names = [d.name for d in circle.data]
    assert "true" in names and "predicted" in names
    t_tr = circle.data[names.index("true")]
    assert len(t_tr.x) == 25
    np.testing.assert_allclose(np.hypot(t_tr.x, t_tr.y), 1.0)
    pairs = circle.data[names.index("pairs")]
    assert len(pairs.x) == 3 * 25  # start, end, gap per pair


def test_error_by_angle_and_correlation_heatmaps(angles) -> None:
    true, pred, mask = angles
    fig = error_by_angle_plot({"E": pred, "H": pred + 1}, true, mask)
    assert len(fig.data) == 2
    assert fig.data[0].x[0] == "near -180" and fig.data[0].x[-1] == "near +180"
    heat = correlation_heatmaps(true, pred, mask, max_slots=4, min_count=5)
    assert len(heat.data) == 2 and np.asarray(heat.data[0].z).shape == (4, 4)
    np.testing.assert_allclose(np.diag(np.asarray(heat.data[0].z, dtype=float)), 1.0)
    with pytest.raises(ValueError):
        correlation_heatmaps(true, pred[:, :3], mask)
