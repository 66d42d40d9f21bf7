"""ccvae.latent_tools: projections, grids, geodesics and cursor conversions, checked
against independent references (scikit-learn's PCA, closed-form midpoints, numpy
trigonometry) and exact isometries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ccvae import latent_tools as lt
from ccvae.errors import ConfigError
from ccvae.manifolds.lorentz import Lorentz, minkowski_inner
from ccvae.manifolds.sphere import Sphere

GEOMS = ["euclidean", "sphere", "hyperbolic"]


def _random_frame(n: int, k: int, seed: int) -> torch.Tensor:
    """k orthonormal rows in R^n."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, k, generator=g, dtype=torch.float64))
    return q.T.contiguous()


# -- coordinates -------------------------------------------------------------------------

def test_latlon_known_points():
    pts = lt.latlon_to_sphere(torch.tensor([0.0, 90.0, -90.0, 0.0, 0.0]),
                              torch.tensor([0.0, 17.0, 0.0, 90.0, 180.0]))
    expected = torch.tensor([[1, 0, 0], [0, 0, 1], [0, 0, -1], [0, 1, 0], [-1, 0, 0]], dtype=torch.float64)
    assert torch.allclose(pts, expected, atol=1e-15)


@settings(max_examples=60, deadline=None)
@given(lat=st.floats(-89.9, 89.9), lon=st.floats(-179.9, 179.9))
def test_latlon_round_trip(lat, lon):
    s = lt.latlon_to_sphere(lat, lon)
    assert s.norm().item() == pytest.approx(1.0, abs=1e-14)
    la, lo = lt.sphere_to_latlon(s)
    assert la.item() == pytest.approx(lat, abs=1e-9)
    assert lo.item() == pytest.approx(lon, abs=1e-9)


def test_sphere_to_latlon_against_numpy():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(50, 3, generator=g, dtype=torch.float64)
    s = s / s.norm(dim=1, keepdim=True)
    la, lo = lt.sphere_to_latlon(s)
    assert np.allclose(la.numpy(), np.degrees(np.arcsin(s[:, 2].numpy())), atol=1e-10)
    assert np.allclose(lo.numpy(), np.degrees(np.arctan2(s[:, 1].numpy(), s[:, 0].numpy())), atol=1e-12)


@pytest.mark.parametrize("d", [0.0, 0.3, 1.0, 2.5, 6.0])
def test_disc_point_has_the_hyperbolic_distance(d):
    p = lt.disc_point(d, 40.0)
    assert p.norm().item() == pytest.approx(math.tanh(d / 2), rel=1e-14, abs=1e-15)
    x = lt.disc_to_hyperboloid(p)
    # independent: on the hyperboloid x0 = cosh(distance from the origin)
    assert np.arccosh(max(x[0].item(), 1.0)) == pytest.approx(d, abs=1e-7)
    assert torch.allclose(lt.hyperboloid_to_disc(x), p, atol=1e-12)


def test_coordinate_errors_name_the_argument():
    with pytest.raises(ValueError, match="s must have last dimension 3"):
        lt.sphere_to_latlon(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="p must lie inside the unit disc"):
        lt.disc_to_hyperboloid(torch.tensor([0.8, 0.8]))
    with pytest.raises(ValueError, match="distance must be >= 0"):
        lt.disc_point(-1.0, 0.0)
    with pytest.raises(ConfigError, match="geometry must be one of"):
        lt.fit_projection(torch.zeros(3, 3), "torus")


# -- projections -----------------------------------------------------------------------------

@pytest.mark.parametrize("geometry", GEOMS)
def test_two_dimensional_latents_are_shown_as_they_are(geometry):
    m = lt.manifold_for(geometry, 2)
    z = m.random(40, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    proj = lt.fit_projection(z, geometry)
    assert proj.is_identity and proj.display == lt.DISPLAY_SPACE[geometry]
    shown = proj.to_display(z)
    if geometry == "hyperbolic":
        assert torch.allclose(shown, z[:, 1:] / (1 + z[:, :1]), atol=1e-14)
    else:
        assert torch.allclose(shown, z, atol=1e-14)
    assert "no projection" in proj.describe()


def test_euclidean_projection_matches_an_svd_pca():
    # reference: PCA by the SVD of the centred data matrix (numpy), not by an eigensolver
    g = torch.Generator().manual_seed(2)
    z = torch.randn(300, 6, generator=g, dtype=torch.float64) * torch.tensor([3.0, 0.2, 2.0, 0.1, 0.5, 0.05]) + 4
    proj = lt.fit_projection(z, "euclidean")
    centred = z.numpy() - z.numpy().mean(0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    theirs = centred @ vt[:2].T
    ours = proj.to_display(z).numpy()
    for k in range(2):  # equal up to each axis' sign
        sign = np.sign(ours[:, k] @ theirs[:, k])
        assert np.allclose(ours[:, k], sign * theirs[:, k], atol=1e-9)
    assert np.allclose(proj.explained, (sv ** 2 / (sv ** 2).sum())[:2], rtol=1e-9)
    assert "PCA" in proj.describe() and "Euclidean" in proj.describe()


def test_sphere_projection_is_exact_on_a_great_two_sphere():
    # points on the great 2-sphere spanned by a random 3-frame of R^6 (S^5)
    frame = _random_frame(6, 3, seed=3)
    g = torch.Generator().manual_seed(4)
    s = torch.randn(200, 3, generator=g, dtype=torch.float64)
    s = s / s.norm(dim=1, keepdim=True)
    z = s @ frame
    proj = lt.fit_projection(z, "sphere")
    shown = proj.to_display(z)
    assert torch.allclose(shown.norm(dim=1), torch.ones(200, dtype=torch.float64), atol=1e-12)
    # an isometry of the great sphere: all angles between points are kept
    assert torch.allclose(shown @ shown.T, z @ z.T, atol=1e-10)
    assert torch.allclose(proj.from_display(shown), z, atol=1e-10)
    assert sum(proj.explained) == pytest.approx(1.0, abs=1e-10)


def test_hyperbolic_projection_is_exact_on_a_totally_geodesic_plane():
    # tangent vectors at the origin in a random 2-plane of R^5, mapped into H^5
    frame = _random_frame(5, 2, seed=5)
    g = torch.Generator().manual_seed(6)
    w = torch.randn(120, 2, generator=g, dtype=torch.float64) * 1.2
    v = w @ frame
    big = Lorentz(5)
    z = big.expmap0(torch.cat([torch.zeros(120, 1, dtype=torch.float64), v], 1))
    proj = lt.fit_projection(z, "hyperbolic")
    p = proj.to_display(z)
    assert (p.norm(dim=1) < 1).all()
    # distances between the shown points (on H^2) equal those in H^5
    x2 = lt.disc_to_hyperboloid(p)
    d_shown = Lorentz(2).dist(x2[:, None], x2[None])
    d_true = big.dist(z[:, None], z[None])
    assert torch.allclose(d_shown, d_true, atol=1e-7)
    assert torch.allclose(proj.from_display(p), z, atol=1e-8)


def test_hyperbolic_projection_keeps_the_origin_and_projected_radii():
    g = torch.Generator().manual_seed(7)
    big = Lorentz(4)
    v = torch.randn(80, 4, generator=g, dtype=torch.float64)
    z = big.expmap0(torch.cat([torch.zeros(80, 1, dtype=torch.float64), v], 1))
    proj = lt.fit_projection(z, "hyperbolic")
    # origin -> centre of the disc
    assert torch.allclose(proj.to_display(big.origin(dtype=torch.float64)), torch.zeros(2, dtype=torch.float64))
    # each shown point's distance from the origin is the length of its projected tangent vector
    radii = 2 * torch.atanh(proj.to_display(z).norm(dim=1))
    assert torch.allclose(radii, (v @ proj.components.T).norm(dim=1), atol=1e-8)


@pytest.mark.parametrize("geometry", GEOMS)
@pytest.mark.parametrize("dim", [2, 3, 7])
def test_from_display_inverts_to_display(geometry, dim):
    m = lt.manifold_for(geometry, dim)
    z = m.random(64, dtype=torch.float64, generator=torch.Generator().manual_seed(dim))
    proj = lt.fit_projection(z, geometry)
    g = torch.Generator().manual_seed(8)
    if proj.display == "plane":
        p = torch.randn(30, 2, generator=g, dtype=torch.float64)
    elif proj.display == "sphere":
        p = torch.randn(30, 3, generator=g, dtype=torch.float64)
        p = p / p.norm(dim=1, keepdim=True)
    else:
        p = lt.disc_point(torch.rand(30, generator=g, dtype=torch.float64) * 4, torch.rand(30, generator=g) * 360)
    z_back = proj.from_display(p)
    assert z_back.shape == (30, m.ambient_dim)
    assert m.contains(z_back).all()
    assert torch.allclose(proj.to_display(z_back), p, atol=1e-9)


@pytest.mark.parametrize("geometry", GEOMS)
def test_axis_projection_without_data(geometry):
    proj = lt.axis_projection(geometry, 4)
    m = lt.manifold_for(geometry, 4)
    p = {"plane": torch.tensor([0.5, -1.0]), "sphere": torch.tensor([0.0, 0.6, 0.8]),
         "disc": torch.tensor([0.3, 0.1])}[proj.display].double()
    z = proj.from_display(p)
    assert m.contains(z).all()
    assert torch.allclose(proj.to_display(z), p, atol=1e-12)
    assert "first coordinate axes" in proj.describe()
    with pytest.raises(ValueError, match="dim must be an integer >= 2"):
        lt.axis_projection(geometry, 1)


def test_projection_rejects_wrong_shapes():
    proj = lt.fit_projection(torch.randn(20, 4, dtype=torch.float64), "euclidean")
    with pytest.raises(ValueError, match="z must have last dimension 4"):
        proj.to_display(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="p must have last dimension 2"):
        proj.from_display(torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"z must have shape \(N, ambient_dim\)"):
        lt.fit_projection(torch.zeros(5), "euclidean")


# -- grids -------------------------------------------------------------------------------------

def test_plane_grid_reads_like_the_plot():
    g = lt.plane_grid(4, (-1.0, 2.0), (0.0, 3.0))
    assert g.shape == (4, 4) and g.valid.all()
    assert torch.allclose(g.points[0, 0], torch.tensor([-1.0, 3.0], dtype=torch.float64))   # top left
    assert torch.allclose(g.points[-1, -1], torch.tensor([2.0, 0.0], dtype=torch.float64))  # bottom right
    assert torch.allclose(g.points[1, 2], torch.tensor([1.0, 2.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="x_range must be"):
        lt.plane_grid(4, (1.0, 1.0))
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        lt.plane_grid(1)


def test_sphere_grid_is_latitude_longitude_at_cell_centres():
    g = lt.sphere_grid(6, 8)
    assert g.shape == (6, 8)
    assert torch.allclose(g.row_values, torch.tensor([75.0, 45, 15, -15, -45, -75], dtype=torch.float64))
    assert torch.allclose(g.col_values, -180 + 22.5 + 45 * torch.arange(8, dtype=torch.float64))
    assert torch.allclose(g.points.norm(dim=-1), torch.ones(6, 8, dtype=torch.float64))
    la, lo = lt.sphere_to_latlon(g.points)
    assert torch.allclose(la, g.row_values[:, None].expand(6, 8), atol=1e-10)
    assert torch.allclose(lo, g.col_values[None, :].expand(6, 8), atol=1e-10)


def test_disc_grid_blanks_cells_outside_the_disc():
    g = lt.disc_grid(3, radius=0.9)
    expected = torch.tensor([[False, True, False], [True, True, True], [False, True, False]])
    assert torch.equal(g.valid, expected)
    assert (g.points[g.valid].norm(dim=-1) <= 0.9 + 1e-12).all()
    big = lt.disc_grid(25, radius=0.95)
    # the 25 x 25 lattice is (i, j) * 0.95/12 for i, j in -12..12: count i^2 + j^2 <= 144
    i = np.arange(-12, 13)
    assert int(big.valid.sum()) == int(((i[:, None] ** 2 + i[None, :] ** 2) <= 144).sum())
    with pytest.raises(ValueError, match="radius must be in"):
        lt.disc_grid(5, radius=1.0)


def test_default_grid_and_extent():
    coords = torch.tensor([[0.0, 0.0], [1.0, 2.0], [2.0, 4.0]], dtype=torch.float64)
    (x0, x1), (y0, y1) = lt.plane_extent(coords, quantile=0.0, margin=0.0)
    assert (x0, x1, y0, y1) == (0.0, 2.0, 0.0, 4.0)
    assert lt.plane_extent(None) == ((-3.0, 3.0), (-3.0, 3.0))
    assert lt.default_grid("sphere", 5).row_label.startswith("latitude")
    assert lt.default_grid("disc", 5).points.shape == (5, 5, 2)
    with pytest.raises(ValueError, match="display must be"):
        lt.default_grid("torus", 5)


# -- geodesics, decoding, neighbours ---------------------------------------------------------------------

@pytest.mark.parametrize("geometry", GEOMS)
@pytest.mark.parametrize("dim", [2, 5])
def test_geodesic_path_is_evenly_spaced_with_exact_ends(geometry, dim):
    m = lt.manifold_for(geometry, dim)
    a, b = m.random(2, dtype=torch.float64, generator=torch.Generator().manual_seed(dim))
    path = lt.geodesic_path(geometry, a, b, 9)
    assert path.shape == (9, m.ambient_dim)
    assert torch.allclose(path[0], a, atol=1e-10) and torch.allclose(path[-1], b, atol=1e-9)
    assert m.contains(path).all()
    steps = m.dist(path[:-1], path[1:])
    assert torch.allclose(steps, m.dist(a, b) / 8 * torch.ones(8, dtype=torch.float64), atol=1e-8)


def test_geodesic_midpoints_match_closed_forms():
    g = torch.Generator().manual_seed(11)
    # sphere: the midpoint of a great-circle arc is (a + b)/|a + b|
    a, b = Sphere(3).random(2, dtype=torch.float64, generator=g)
    mid = lt.geodesic_path("sphere", a, b, 3)[1]
    assert torch.allclose(mid, (a + b) / (a + b).norm(), atol=1e-12)
    # hyperboloid: the midpoint is (a + b)/sqrt(-<a + b, a + b>_L)
    a, b = Lorentz(3).random(2, dtype=torch.float64, generator=g)
    mid = lt.geodesic_path("hyperbolic", a, b, 3)[1]
    s = a + b
    assert torch.allclose(mid, s / torch.sqrt(-minkowski_inner(s, s)), atol=1e-10)
    # plane: a straight line
    a, b = torch.tensor([0.0, 1.0]), torch.tensor([2.0, -3.0])
    assert torch.allclose(lt.geodesic_path("euclidean", a, b, 5).float(),
                          torch.stack([torch.linspace(0, 2, 5), torch.linspace(1, -3, 5)], 1), atol=1e-6)


def test_geodesic_path_errors():
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        lt.geodesic_path("euclidean", torch.zeros(2), torch.ones(2), 1)
    with pytest.raises(ValueError, match="a and b must be single latent points"):
        lt.geodesic_path("euclidean", torch.zeros(2), torch.ones(3), 4)


def test_decode_points_matches_the_decoder():
    from ccvae.models import VAE, ModelConfig

    torch.manual_seed(0)
    model = VAE(ModelConfig(input_dim=12, geometry="sphere", latent_dim=2, hidden=8, layers=1,
                            input_shape=(3, 4))).eval()
    z = lt.sphere_grid(3, 4).points
    out = lt.decode_points(model, z, batch_size=5)
    assert out.shape == (3, 4, 12) and out.dtype == torch.float32
    with torch.no_grad():
        ref = model.decode_mean(z.reshape(-1, 3).float()).reshape(3, 4, 12)
    assert torch.allclose(out, ref, atol=1e-6)
    assert ((out >= 0) & (out <= 1)).all()


def test_nearest_points_against_brute_force():
    g = torch.Generator().manual_seed(12)
    pts = Sphere(2).random(200, dtype=torch.float64, generator=g)
    q = Sphere(2).random(dtype=torch.float64, generator=g)
    idx, dist = lt.nearest_points("sphere", q, pts, k=4)
    angles = np.arccos(np.clip(pts.numpy() @ q.numpy(), -1, 1))
    assert list(idx.numpy()) == list(np.argsort(angles)[:4])
    assert np.allclose(dist.numpy(), np.sort(angles)[:4], atol=1e-7)
