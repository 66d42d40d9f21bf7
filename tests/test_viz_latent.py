"""Figures and images for the dashboard: ccvae.viz.latent_plots, ccvae.viz.explainer,
and the post's tables in ccvae.reference_results."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ccvae import latent_tools as lt
from ccvae import reference_results as ref
from ccvae.viz import explainer
from ccvae.viz import latent_plots as lp

POST = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "post-constant-curvature-vaes.txt"


# -- latent scatter ----------------------------------------------------------------------------

def test_plane_scatter_has_one_point_per_row_and_discrete_colours():
    coords = np.random.default_rng(0).normal(size=(500, 2))
    labels = np.arange(500) % 3
    fig = lp.latent_scatter(coords, "plane", labels=labels, label_names=["a", "b", "c"])
    data = fig.data[lp.DATA_TRACE]
    assert data.type == "scattergl"
    assert np.array_equal(data.x, coords[:, 0]) and np.array_equal(data.y, coords[:, 1])
    assert np.array_equal(data.customdata, np.arange(500))
    assert list(data.marker.colorbar.ticktext) == ["a", "b", "c"]
    assert (data.marker.cmin, data.marker.cmax) == (-0.5, 2.5)
    assert fig.layout.yaxis.scaleanchor == "x"  # equal aspect
    assert fig.layout.dragmode == "pan"  # a single click selects a point


def test_disc_scatter_draws_the_boundary_circle():
    p = lt.disc_point(np.linspace(0, 3, 50), np.linspace(0, 360, 50)).numpy()
    fig = lp.latent_scatter(p, "disc", labels=np.linspace(0, 1, 50), continuous=True, label_title="x")
    (circle,) = fig.layout.shapes
    assert (circle.type, circle.x0, circle.x1, circle.y0, circle.y1) == ("circle", -1, 1, -1, 1)
    assert fig.data[0].marker.colorscale is not None and fig.data[0].marker.colorbar.title.text == "x"


def test_sphere_globe_and_map_views():
    s = lt.sphere_grid(6, 8).points.reshape(-1, 3).numpy()
    globe = lp.latent_scatter(s, "sphere")
    assert globe.data[0].type == "scatter3d" and len(globe.data[0].x) == 48
    assert globe.data[1].name == "wireframe" and globe.data[1].mode == "lines"
    assert globe.layout.scene.aspectmode == "cube"
    flat = lp.latent_scatter(s, "sphere", sphere_view="map")
    lat, lon = lt.sphere_to_latlon(torch.from_numpy(s))
    assert np.allclose(flat.data[0].x, lon.numpy()) and np.allclose(flat.data[0].y, lat.numpy())
    assert tuple(flat.layout.xaxis.range) == (-180, 180)


def test_paths_cursor_and_highlight_are_extra_traces():
    coords = np.zeros((10, 2))
    path = {"points": np.array([[0, 0], [1, 1], [2, 2.0]]), "markers": np.array([[0, 0], [2, 2.0]]), "name": "g"}
    fig = lp.latent_scatter(coords, "plane", paths=[path], cursor=np.array([0.5, 0.5]), highlight=[2, 3, 99])
    names = [t.name for t in fig.data]
    assert names[0] == "test points" and {"selected", "g", "g steps", "cursor"} <= set(names)
    sel = fig.data[names.index("selected")]
    assert len(sel.x) == 2  # the out-of-range index 99 is dropped
    assert list(fig.data[names.index("g steps")].text) == ["1", "2"]


def test_a_map_path_is_broken_at_the_date_line():
    # a great circle through longitude 180: the polyline must not streak across the map
    arc = lt.latlon_to_sphere(torch.zeros(5), torch.tensor([170.0, 175.0, 180.0, -175.0, -170.0])).numpy()
    fig = lp.latent_scatter(np.zeros((1, 3)) + [1, 0, 0], "sphere", sphere_view="map",
                            paths=[{"points": arc, "name": "p"}])
    xs = list(fig.data[1].x)
    assert None in xs
    gap = xs.index(None)
    assert all(v > 0 for v in xs[:gap]) and all(v < 0 for v in xs[gap + 1:])


def test_scatter_rejects_bad_input():
    with pytest.raises(ValueError, match=r"coords must have shape \(N, 3\) for the sphere"):
        lp.latent_scatter(np.zeros((4, 2)), "sphere")
    with pytest.raises(ValueError, match="display must be plane, sphere or disc"):
        lp.latent_scatter(np.zeros((4, 2)), "torus")
    with pytest.raises(ValueError, match="sphere_view must be"):
        lp.latent_scatter(np.zeros((4, 3)), "sphere", sphere_view="side")


def test_selected_indices_reads_only_the_data_trace():
    event = {"selection": {"points": [{"curve_number": 0, "point_index": 4},
                                      {"curve_number": 2, "point_index": 1},   # a path: ignored
                                      {"curve_number": 0, "point_index": 7},
                                      {"curve_number": 0, "point_index": 4}],  # duplicate
                           "point_indices": [4, 1, 7]}}
    assert lp.selected_indices(event) == [4, 7]
    assert lp.selected_indices({"selection": {"points": [], "point_indices": [3, 3, 1]}}) == [3, 1]
    assert lp.selected_indices(None) == []
    assert lp.selected_indices({"selection": {"points": [], "point_indices": []}}) == []


# -- images -----------------------------------------------------------------------------------------

def test_image_grid_places_each_tile():
    imgs = np.stack([np.full((2, 3), v / 10) for v in range(5)])
    m = lp.image_grid(imgs, ncols=3, pad=1, pad_value=1.0)
    assert m.shape == (2 * 3 - 1, 3 * 4 - 1)
    assert np.allclose(m[0:2, 4:7], 0.1)      # image 1: row 0, column 1
    assert np.allclose(m[3:5, 4:7], 0.4)      # image 4: row 1, column 1
    assert np.allclose(m[3:5, 8:11], 1.0)     # no image 5: padding
    assert np.allclose(m[2, :], 1.0)          # the padding row
    blank = lp.image_grid(imgs, ncols=5, valid=[True, False, True, True, True], pad=0, pad_value=0.5)
    assert np.allclose(blank[:, 3:6], 0.5) and np.allclose(blank[:, 6:9], 0.2)
    with pytest.raises(ValueError, match="valid must have one entry per image"):
        lp.image_grid(imgs, valid=[True])
    with pytest.raises(ValueError, match=r"images must have shape"):
        lp.image_grid(np.zeros((2, 3)))


def test_outputs_to_images_reshapes_pixels():
    x = np.linspace(0, 1, 2 * 12).reshape(2, 12)
    out = lp.outputs_to_images(x, (3, 4))
    assert out.shape == (2, 3, 4) and np.allclose(out[1].ravel(), x[1])


def test_angles_become_cyclic_colour_tiles():
    deg = np.array([[0.0, 120.0, 240.0, 180.0, -180.0]])
    theta = np.radians(deg)
    x = np.stack([np.cos(theta), np.sin(theta)], -1).reshape(1, -1)
    mask = np.array([[True, True, True, True, False]])
    tiles = lp.outputs_to_images(x, (5, 2), likelihood="von_mises", mask=mask)
    cell = 4
    assert tiles.shape == (1, 3 * cell, 3 * cell, 3)  # 5 slots -> a 3 x 3 tile
    colour = lambda k: tiles[0, (k // 3) * cell, (k % 3) * cell]
    assert np.allclose(colour(0), [0.95, 0.1, 0.1], atol=1e-6)   # 0 deg: red
    assert np.allclose(colour(1), [0.1, 0.95, 0.1], atol=1e-6)   # 120: green
    assert np.allclose(colour(2), [0.1, 0.1, 0.95], atol=1e-6)   # 240: blue
    assert np.allclose(colour(3), [0.1, 0.95, 0.95], atol=1e-6)  # 180: cyan
    assert np.allclose(colour(4), 1.0)                           # masked: white
    same = lp.angle_tiles(np.array([[180.0, -180.0]]))
    assert np.allclose(same[0, 0, 0], same[0, 0, 4])             # -180 and 180 alike


def test_as_uint8_scales_by_repetition():
    img = np.array([[0.0, 1.0]])
    out = lp.as_uint8(img, scale=3)
    assert out.dtype == np.uint8 and out.shape == (3, 6)
    assert (out[:, :3] == 0).all() and (out[:, 3:] == 255).all()


def test_training_curves_show_the_recorded_series():
    history = [{"epoch": e, "train_elbo": -100 + e, "val_elbo": -101 + e, "train_kl": 3.0, "val_kl": 3.1,
                "train_recon": -97 + e} for e in (1, 2, 3)]
    fig = lp.training_curves(history)
    names = {t.name for t in fig.data}
    assert names == {"train ELBO", "validation ELBO", "train reconstruction", "train KL", "validation KL"}
    assert list(fig.data[0].y) == [-99, -98, -97]


# -- the explainer ---------------------------------------------------------------------------------------

def test_vmf_samples_have_the_mean_resultant_length():
    # E[mu . z] = coth(kappa) - 1/kappa on S^2 (the ratio I_{3/2}/I_{1/2})
    for kappa in (1.0, 10.0, 100.0):
        z = explainer.vmf_samples(kappa, n=4000, mu=(0, 1, 0), seed=1)
        assert np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
        expected = 1 / math.tanh(kappa) - 1 / kappa
        assert z[:, 1].mean() == pytest.approx(expected, abs=4 * 0.5 / math.sqrt(4000))
    u = explainer.vmf_samples(0.0, n=4000, seed=2)
    assert np.abs(u.mean(0)).max() < 0.06
    with pytest.raises(ValueError, match="kappa must be a finite number >= 0"):
        explainer.vmf_samples(-1.0)


def test_von_mises_density_is_normalised_and_matches_scipy():
    import mpmath

    # the trapezoid rule over a full period converges geometrically for smooth periodic f
    t = np.linspace(-180, 180, 40001)[:-1]
    h = math.radians(360 / 40000)
    for kappa in (0.0, 0.5, 4.0, 700.0):
        total = explainer.von_mises_density(t, 30.0, kappa).sum() * h
        assert total == pytest.approx(1.0, rel=1e-9)
    for kappa in (4.0, 700.0):  # exp(kappa cos(theta - mu)) / (2 pi I_0(kappa)) in 30 digits
        for theta in (-150.0, 0.0, 30.0, 31.0, 100.0):
            with mpmath.workdps(30):
                exact = mpmath.exp(kappa * mpmath.cos(mpmath.radians(theta - 30))) / (
                    2 * mpmath.pi * mpmath.besseli(0, kappa))
            assert explainer.von_mises_density(theta, 30.0, kappa) == pytest.approx(float(exact), rel=1e-10, abs=1e-300)


def test_wrapped_normal_samples_lie_in_the_disc_around_mu():
    p = explainer.wrapped_normal_samples(1.5, 90.0, 0.2, n=2000, seed=0)
    assert (np.linalg.norm(p, axis=1) < 1).all()
    mu = lt.disc_point(1.5, 90.0).numpy()
    # small sigma: samples cluster at mu (median distance on the disc well below the spread of 0.2)
    assert np.median(np.linalg.norm(p - mu, axis=1)) < 0.2
    fig = explainer.wrapped_normal_figure(1.0, 0.0, (0.3, 0.6), n=300, grid=41)
    assert fig.data[0].type == "contour" and len(fig.data[1].x) == 300


def test_gaussian_norms_follow_the_chi_distribution():
    from scipy.special import gammaln

    for d in (1, 10, 400):
        r = explainer.gaussian_norms(d, n=6000, seed=3)
        mean = math.sqrt(2) * math.exp(gammaln((d + 1) / 2) - gammaln(d / 2)) / math.sqrt(d)
        assert r.mean() == pytest.approx(mean, abs=4 * r.std() / math.sqrt(6000))
    fig = explainer.soap_bubble_figure(50, n=500)
    assert fig.data[0].type == "histogram" and fig.data[1].name == "exact (χ_d)"
    with pytest.raises(ValueError, match="dim must be an integer >= 1"):
        explainer.gaussian_norms(0)


# -- the post's tables ----------------------------------------------------------------------------------------

def _parse_post_tables(text: str) -> dict[str, dict[tuple[int, int], list[float]]]:
    """Read the two tables back from the post's text, independently of the module."""
    # cells run together in the text ("8.5156.7 +/- 7.1"): every uncertainty has exactly
    # one decimal, which is where one cell ends and the next begins
    num = r"(-?\d+\.\d+)\s*\+/-\s*(\d+\.\d)"
    tables = {}
    mnist = text[text.index("Latent DimensionsNo. Hidden Layers"):text.index("Table Expressing the very rough performance of the different VAEs on the MNIST")]
    lfw = text[text.index("(Latent Dims)"):text.index("Table Expressing the very rough performance of the different VAEs on the LFW")]
    for name, block, dims in (("mnist", mnist, [2, 3, 5, 10, 50]), ("lfw", lfw, [2, 3, 5, 10, 20])):
        rows = [l for l in block.splitlines()[1:] if "+/-" in l]
        layers = 3 if name == "mnist" else 4
        assert len(rows) == len(dims) * layers
        out = {}
        for i, line in enumerate(rows):
            values = [float(v) for pair in re.findall(num, line) for v in pair]
            assert len(values) == 6, line
            out[(dims[i // layers], i % layers + 1)] = values
        tables[name] = out
    return tables


@pytest.mark.skipif(not POST.is_file(), reason="the post's text is not checked out next to the repo")
def test_tables_are_transcribed_from_the_post():
    parsed = _parse_post_tables(POST.read_text())
    for name in ("mnist", "lfw"):
        ours = ref.post_table(name)
        assert set(ours) == set(parsed[name])
        for key, values in parsed[name].items():
            mine = [v for g in ref.GEOMETRIES for v in ours[key][g]]
            if (name, key) == ("mnist", (3, 2)):
                assert values[4] == 156.7  # the printed sign typo, read as -156.7
                values[4] = -156.7
            assert mine == values, (name, key)


def test_best_geometry_and_unknown_table():
    assert ref.best_geometry({"euclidean": (-130.7, 5.9), "sphere": (-141.4, 6.9), "hyperbolic": (-123.4, 4.7)}) == "hyperbolic"
    assert ref.best_geometry({"euclidean": None}) is None
    with pytest.raises(ValueError, match="dataset must be one of"):
        ref.post_table("cifar")


def test_scaled_chi_density_is_a_density_with_the_chi_mean():
    from scipy.special import gammaln

    r = np.linspace(0, 4, 40001)
    h = r[1] - r[0]
    for d in (1, 2, 7, 300):
        f = explainer.scaled_chi_density(r, d)
        assert np.isfinite(f).all()
        assert f.sum() * h == pytest.approx(1.0, abs=2e-3 if d == 1 else 1e-6)
        mean = math.sqrt(2) * math.exp(gammaln((d + 1) / 2) - gammaln(d / 2)) / math.sqrt(d)
        assert (r * f).sum() * h == pytest.approx(mean, abs=1e-3)


# -- ccvae.dashboard.explorer: what the explorer page computes --------------------------------------

def _tiny_view(geometry: str, dim: int = 2, n: int = 40):
    from ccvae.dashboard import explorer as ex
    from ccvae.dashboard.catalog import EvalData
    from ccvae.data.base import Split
    from ccvae.models import VAE, ModelConfig

    torch.manual_seed(0)
    model = VAE(ModelConfig(input_dim=12, geometry=geometry, latent_dim=dim, hidden=8, layers=1,
                            input_shape=(3, 4))).eval()
    x = torch.rand(n, 12)
    data = EvalData("toy", Split(x, torch.arange(n) % 3, torch.arange(n)), (3, 4), ["a", "b", "c"],
                    "synthetic", "toy data", False)
    return ex, model, data, ex.build_view(model, data)


@pytest.mark.parametrize("geometry", ["euclidean", "sphere", "hyperbolic"])
def test_cursor_controls_invert_the_cursor_point(geometry):
    ex, model, data, view = _tiny_view(geometry)
    assert view.n == 40 and view.coords.shape == (40, 3 if geometry == "sphere" else 2)
    for row in (0, 7, 39):
        a, b = ex.cursor_controls_for(view, row)
        assert np.allclose(ex.cursor_point(view, a, b).numpy(), view.coords[row], atol=1e-9)
    with pytest.raises(ValueError, match="row must be a test point index"):
        ex.cursor_controls_for(view, 40)


def test_explorer_grid_interpolation_and_pairs():
    ex, model, data, view = _tiny_view("hyperbolic", dim=3)
    mosaic, grid = ex.grid_mosaic(model, view, n=5, radius=0.9)
    assert grid.shape == (5, 5) and mosaic.shape == (5 * 4 - 1, 5 * 5 - 1)
    assert np.allclose(mosaic[0:3, 0:4], 1.0)  # the corner cell lies outside the disc: blank
    interp = ex.interpolate(model, view, 2, 9, steps=6)
    assert interp.images.shape == (6, 3, 4) and interp.path_display.shape[1] == 2
    assert np.allclose(interp.steps_display[[0, -1]], view.coords[[2, 9]], atol=1e-9)
    assert interp.length == pytest.approx(float(lt.manifold_for("hyperbolic", 3).dist(
        view.latents[2], view.latents[9])))
    with pytest.raises(ValueError, match="b must be a test point index"):
        ex.interpolate(model, view, 0, 99)
    inputs, recons = ex.inputs_and_reconstructions(model, view, data, [4, 1, 30])
    assert np.allclose(inputs[1], data.split.x[1].reshape(3, 4).numpy())
    pairs = ex.paired_mosaic(inputs, recons, per_row=2)
    # 3 examples, 2 per row: [in4 in1 / re4 re1 / in30 blank / re30 blank]
    assert pairs.shape == (4 * 4 - 1, 2 * 5 - 1)
    assert np.allclose(pairs[4:7, 5:9], recons[1]) and np.allclose(pairs[12:15, 5:9], 1.0)


def test_a_view_without_data_still_decodes():
    from ccvae.dashboard import explorer as ex

    _, model, _, _ = _tiny_view("sphere", dim=4)
    view = ex.build_view(model, None)
    assert view.n == 0 and "first coordinate axes" in view.projection.describe()
    z, image = ex.decode_display(model, view, ex.cursor_point(view, 30.0, -60.0))
    assert z.shape == (5,) and image.shape == (3, 4)
    assert ex.nearest(view, z)[0].size == 0
    mosaic, _ = ex.grid_mosaic(model, view, n=4)
    assert mosaic.shape == (4 * 4 - 1, 4 * 5 - 1)


def test_the_dashboard_helpers_never_import_streamlit():
    import subprocess
    import sys

    code = ("import sys, ccvae.latent_tools, ccvae.jobs, ccvae.reference_results, ccvae.dashboard.catalog, "
            "ccvae.dashboard.explorer, ccvae.dashboard.molecules, ccvae.viz.latent_plots, ccvae.viz.explainer; "
            "print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
