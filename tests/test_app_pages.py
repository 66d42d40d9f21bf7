"""Every dashboard page, run headless with streamlit.testing.v1.AppTest against the
shipped checkpoints (or the small fallback set of tests/dashboard_fixtures.py).

Each run must raise no exception and show no st.error; the expected elements must
be there (the scatter's JSON holds one point per test example, the iframe holds
the molecule); changing the main widgets reruns cleanly; a simulated point
selection shows the inputs with their reconstructions."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from ccvae import jobs
from ccvae.checkpoints import list_checkpoints
from ccvae.dashboard import catalog, results_view
from ccvae.results_db import ResultsDB

from .dashboard_fixtures import REPO, dashboard_checkpoints  # noqa: F401 - fixture
from .results_rows import make_row

TIMEOUT = 180


@pytest.fixture
def runs(tmp_path):
    return tmp_path / "runs"


@pytest.fixture
def app(dashboard_checkpoints, runs, monkeypatch):  # noqa: F811
    monkeypatch.setenv(catalog.ENV_CHECKPOINTS, str(dashboard_checkpoints))
    monkeypatch.setenv(catalog.ENV_RUNS, str(runs))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.run()
    return at


def open_page(at: AppTest, name: str) -> AppTest:
    at.switch_page(f"app_pages/{name}.py")
    at.run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def trace_values(v) -> np.ndarray:
    """A plotly JSON array: a list, or numpy's base64 typed array ({"dtype", "bdata"})."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
    return np.asarray(v)


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def image_captions(at: AppTest) -> list[str]:
    """Captions of the images: their own, or the st.caption the page puts under a
    wide mosaic."""
    return [img.caption for el in at.get("image") for img in el.proto.imgs] + [c.value for c in at.caption]


def explorer_checkpoints(root: Path) -> list:
    """One checkpoint per geometry in 2-D, plus one latent of more than 2 dimensions."""
    infos = list_checkpoints(root)
    chosen, seen = [], set()
    for i in sorted(infos, key=lambda i: (i.dataset != "mnist", i.latent_dim, i.name)):
        if i.latent_dim == 2 and i.geometry not in seen:
            chosen.append(i)
            seen.add(i.geometry)
    higher = [i for i in sorted(infos, key=lambda i: (i.dataset != "mnist", i.latent_dim)) if i.latent_dim > 2]
    return chosen + higher[:1]


def select_checkpoint(at: AppTest, key: str, name: str) -> None:
    box = at.selectbox(key=key)
    (index,) = [k for k, label in enumerate(box.options) if label.endswith(f"— {name}") or f"— {name} (" in label]
    box.set_value(index)
    at.run()
    assert_clean(at)


# -- pages -----------------------------------------------------------------------------------

def test_home_lists_data_sources_and_every_checkpoint(app, dashboard_checkpoints):  # noqa: F811
    sources, table = app.dataframe
    assert {"mnist", "lfw", "qm9"} <= set(sources.value["dataset"])
    names = set(table.value["name"])
    assert names == {i.name for i in list_checkpoints(dashboard_checkpoints)}
    assert {"test ELBO", "geometry", "latent dim", "subset data"} <= set(table.value.columns)


def test_latent_explorer_draws_every_test_point(app, dashboard_checkpoints):  # noqa: F811
    open_page(app, "latent_explorer")
    for info in explorer_checkpoints(dashboard_checkpoints):
        select_checkpoint(app, "explorer_checkpoint", info.name)
        data = catalog.load_eval_data(info)
        (spec,) = chart_specs(app)
        trace = spec["data"][0]
        assert len(trace_values(trace["x"])) == min(len(data.split), 10_000), info.name
        expected = {"euclidean": "scattergl", "sphere": "scatter3d", "hyperbolic": "scattergl"}[info.geometry]
        assert trace["type"] == expected
        if info.geometry == "hyperbolic":
            assert spec["layout"]["shapes"][0]["type"] == "circle"  # the disc's boundary
            assert (np.hypot(trace_values(trace["x"]), trace_values(trace["y"])) < 1).all()
        if info.geometry == "sphere":
            assert any(t.get("name") == "wireframe" for t in spec["data"])
        captions = image_captions(app)
        assert "decoded at the cursor" in captions
        assert any(c.startswith("15×15 decode grid") for c in captions)
        assert any("geodesic length" in c for c in captions)
        text = " ".join(c.value for c in app.caption)
        assert ("projected" in text or "log map" in text or "uncentred PCA" in text) == (info.latent_dim > 2)


def test_latent_explorer_widgets_rerun_cleanly(app, dashboard_checkpoints):  # noqa: F811
    open_page(app, "latent_explorer")
    infos = explorer_checkpoints(dashboard_checkpoints)
    sphere = next((i for i in infos if i.geometry == "sphere"), None)
    disc = next(i for i in infos if i.geometry == "hyperbolic")
    for info in [disc] + ([sphere] if sphere else []):
        select_checkpoint(app, "explorer_checkpoint", info.name)
        ck = info.path.name
        before = image_captions(app)
        app.slider(key=f"cursor_a::{ck}").set_value(1.0 if info.geometry == "hyperbolic" else 45.0).run()
        assert_clean(app)
        app.slider(key=f"cursor_b::{ck}").set_value(90.0).run()
        assert_clean(app)
        cursor = [t for t in chart_specs(app)[0]["data"] if t.get("name") == "cursor"][0]
        if info.geometry == "hyperbolic":  # distance 1 at 90 degrees: (0, tanh(1/2)) on the disc
            assert trace_values(cursor["x"])[0] == pytest.approx(0.0, abs=1e-9)
            assert trace_values(cursor["y"])[0] == pytest.approx(np.tanh(0.5), rel=1e-9)
        app.slider(key=f"grid_n::{ck}").set_value(7).run()
        assert_clean(app)
        assert any(c.startswith("7×7 decode grid") for c in image_captions(app))
        app.number_input(key=f"interp_b::{ck}").set_value(3).run()
        app.slider(key=f"interp_steps::{ck}").set_value(5).run()
        assert_clean(app)
        geodesic = [t for t in chart_specs(app)[0]["data"] if t.get("name") == "geodesic steps"]
        assert len(trace_values(geodesic[0]["x"])) == 5
        assert len(before) == len(image_captions(app))
    if sphere:
        select_checkpoint(app, "explorer_checkpoint", sphere.name)
        app.radio(key=f"sphere_view::{sphere.path.name}").set_value("map").run()
        assert_clean(app)
        trace = chart_specs(app)[0]["data"][0]
        assert trace["type"] == "scattergl"  # longitude/latitude: selectable
        assert np.abs(trace_values(trace["x"])).max() <= 180


def test_simulated_selection_shows_inputs_and_reconstructions(app, dashboard_checkpoints):  # noqa: F811
    open_page(app, "latent_explorer")
    info = explorer_checkpoints(dashboard_checkpoints)[0]
    select_checkpoint(app, "explorer_checkpoint", info.name)
    assert not any("reconstruction" in c for c in image_captions(app))
    chart = app.get("plotly_chart")[0]
    states = app._tree.get_widget_states()
    w = states.widgets.add()
    w.id = chart.proto.id
    w.string_value = json.dumps({"selection": {
        "points": [{"curve_number": 0, "point_index": 3, "point_number": 3},
                   {"curve_number": 0, "point_index": 8, "point_number": 8}],
        "point_indices": [3, 8], "box": [], "lasso": []}})
    app._run(states)
    assert_clean(app)
    assert "**2 selected**" in [m.value for m in app.markdown]
    assert any("reconstruction directly beneath" in c for c in image_captions(app))
    ring = [t for t in chart_specs(app)[0]["data"] if t.get("name") == "selected"]
    assert len(trace_values(ring[0]["x"])) == 2
    # the selection survives an unrelated rerun, and the button clears it
    app.run()
    assert "**2 selected**" in [m.value for m in app.markdown]
    app.button(key=f"interp_use::{info.path.name}").click().run()
    assert app.number_input(key=f"interp_a::{info.path.name}").value == 3
    assert app.number_input(key=f"interp_b::{info.path.name}").value == 8
    app.button(key=f"cursor_sel::{info.path.name}").click().run()
    assert_clean(app)
    cursor = [t for t in chart_specs(app)[0]["data"] if t.get("name") == "cursor"][0]
    point = [t for t in chart_specs(app)[0]["data"]][0]
    if point["type"] != "scatter3d":  # the cursor now sits on test point #3
        assert trace_values(cursor["x"])[0] == pytest.approx(trace_values(point["x"])[3], abs=0.02)
        assert trace_values(cursor["y"])[0] == pytest.approx(trace_values(point["y"])[3], abs=0.02)
    app.button(key=f"clear_sel::{info.path.name}").click().run()
    assert_clean(app)
    assert "**2 selected**" not in [m.value for m in app.markdown]


def test_compare_shows_scatters_reconstructions_and_metrics(app):
    open_page(app, "compare")
    chosen = app.multiselect(key="compare_pick").value
    assert 2 <= len(chosen) <= 3
    assert len(app.get("plotly_chart")) == len(chosen)
    (metrics,) = app.dataframe
    assert len(metrics.value) == len(chosen) and "test ELBO" in metrics.value.columns
    images = app.get("image")
    assert images[0].proto.imgs[0].caption == "inputs" and len(images) == 1 + len(chosen)
    app.slider(key="compare_count").set_value(5).run()
    assert_clean(app)
    app.multiselect(key="compare_pick").set_value(chosen[:1]).run()
    assert_clean(app)
    assert "Pick at least two checkpoints." in [i.value for i in app.info]


def _results_db(path: Path) -> Path:
    """A small results database: a few MNIST and LFW cells of the post's grid, and the
    Davidson-protocol cells the exact-sampler verdict needs."""
    db = ResultsDB(path)
    db.record(make_row("mnist", "hyperbolic", 3, 2, elbo=-120.0, batch_std=5.0))  # significantly better
    db.record(make_row("mnist", "sphere", 3, 2, elbo=-155.0, batch_std=5.0))      # worse, not significantly
    db.record(make_row("lfw", "sphere", 2, 1, elbo=-1300.0, batch_std=40.0, elbo_ceiling=-1250.0))
    for (d, g), v in {(20, "euclidean"): -89.5, (20, "sphere"): -88.6,
                      (40, "euclidean"): -88.8, (40, "sphere"): -95.0}.items():
        db.record(make_row("mnist", g, d, 2, sweep="davidson", binarize="dynamic", iwae=v))
    db.record(make_row("mnist", "euclidean", 10, 2, sweep="davidson-warmup", binarize="dynamic", iwae=-93.0))
    svae = make_row("mnist", "sphere", 20, 2, sweep="davidson-svae", binarize="dynamic", iwae=-91.0)
    svae["config_json"]["train"]["sphere_posterior"] = "vmf_svae"  # the sampler ablation's partner
    db.record(svae)
    return path


def frame_with(at: AppTest, column: str):
    """The one st.dataframe that has ``column``."""
    (frame,) = [d for d in at.dataframe if column in d.value.columns]
    return frame


def test_elbo_tables_show_the_post_beside_ours(app, tmp_path, monkeypatch):
    monkeypatch.setenv(results_view.ENV_RESULTS_DB, str(_results_db(tmp_path / "results.sqlite")))
    open_page(app, "elbo_tables")
    assert any(str(tmp_path / "results.sqlite") in m.value for m in app.markdown)
    assert set(frame_with(app, "sweep").value["sweep"]) == {"post", "davidson", "davidson-warmup", "davidson-svae"}
    table = frame_with(app, "hyperbolic (post)")
    df = table.value
    assert {(2, 1), (3, 2), (50, 3)} <= set(zip(df["latent dim"], df["layers"]))
    row = df[(df["latent dim"] == 3) & (df["layers"] == 2)].iloc[0]
    assert row["hyperbolic (ours)"] == "★ -120.0 ± 5.0" and row["hyperbolic (post)"] == "-156.7 ± 7.1"
    assert row["sphere (ours)"] == "-155.0 ± 5.0" and row["sphere (post)"] == "★ -152.8 ± 8.5"
    # the one significant cell (hyperbolic, ours) is coloured, and only it
    assert table.proto.arrow_data.styler.styles.count("background-color") == 1
    assert "**1 of 2 cells beat the post; 1 differ significantly.**" in [m.value for m in app.markdown]
    assert any("2 × combined spread" in c.value for c in app.caption)
    assert {b.key for b in app.get("download_button")} == {"elbo_csv", "iwae_csv"}
    app.toggle(key="elbo_only_ours").set_value(True).run()
    assert_clean(app)
    assert len(frame_with(app, "hyperbolic (post)").value) == 1
    # the IWAE section: our d=20 sphere reproduces Davidson et al.'s, and the verdict is computed
    iwae = frame_with(app, "S-VAE (Davidson)").value
    assert iwae[iwae["d"] == 20].iloc[0]["sphere (ours)"] == "★ -88.60 ± 0.10 ✓"
    assert iwae[iwae["d"] == 10].iloc[0]["euclidean (ours)"] == "★ -93.00 ± 0.10 ✓"
    assert any(c.value.startswith("Protocol: euclidean d=10: with KL warm-up") for c in app.caption)
    assert any("d = 20: the sphere (S-VAE) wins" in m.value for m in app.markdown)
    assert any("the exact sampler's sphere scores -88.60, s-vae's -91.00 (+2.40 nats ± 0.14)" in m.value
               for m in app.markdown)
    assert any(m.value.startswith("| d | epochs | KL warm-up, batch | initial kappa | Euclidean | Sphere, exact") for m in app.markdown)
    assert any("not shown" in m.value for m in app.markdown)  # Nagano et al.'s numbers
    app.toggle(key="elbo_only_ours").set_value(False).run()
    app.radio(key="elbo_dataset").set_value("lfw").run()
    assert_clean(app)
    df = frame_with(app, "sphere (post)").value
    assert len(df[df["layers"] == 4]) == 5  # LFW has 4-layer rows for D = 2, 3, 5, 10, 20
    row = df[(df["latent dim"] == 2) & (df["layers"] == 1)].iloc[0]
    assert row["sphere (ours)"] == "★ -1300.0 ± 40.0" and row["sphere (post)"] == "-1047.0 ± 40.5"
    (ceiling,) = [w.value for w in app.warning]
    assert "No Bernoulli (BCE) model can score above -1250.0" in ceiling
    assert "every one of the post's 60 LFW cells lies above it" in ceiling


@pytest.mark.parametrize("broken", [False, True])
def test_elbo_tables_without_results_db_still_show_the_post(app, tmp_path, monkeypatch, broken):
    path = tmp_path / "results.sqlite"
    if broken:
        path.write_bytes(b"not a database" * 100)
    monkeypatch.setenv(results_view.ENV_RESULTS_DB, str(path))
    app.switch_page("app_pages/elbo_tables.py")
    app.run()
    assert not app.exception
    (message,) = [m.value for m in (app.error if broken else app.info)]
    assert str(path) in message and "\n" not in message and "Traceback" not in message
    df = frame_with(app, "sphere (post)").value
    row = df[(df["latent dim"] == 3) & (df["layers"] == 2)].iloc[0]
    assert row["sphere (post)"] == "★ -152.8 ± 8.5" and row["sphere (ours)"] == "—"
    assert len(frame_with(app, "S-VAE (Davidson)").value) == 5
    assert not app.get("download_button")
    assert path.exists() == broken  # the page never creates a results file


def test_distributions_explainer_controls(app):
    open_page(app, "distributions")
    specs = chart_specs(app)
    assert len(specs) == 4
    assert len(trace_values(specs[0]["data"][0]["x"])) == 1000  # vMF samples
    for preset in ("0", "100", "custom"):
        app.radio(key="vmf_preset").set_value(preset).run()
        assert_clean(app)
    app.slider(key="vmf_n").set_value(300).run()
    assert len(trace_values(chart_specs(app)[0]["data"][0]["x"])) == 300
    app.slider(key="wn_distance").set_value(2.0).run()
    app.slider(key="wn_s1").set_value(1.0).run()
    app.slider(key="vm_kappa").set_value(10.0).run()
    app.select_slider(key="bubble_d").set_value(1000).run()
    assert_clean(app)


def test_train_page_refuses_bad_settings_and_runs_a_job(app, runs):
    open_page(app, "train")
    app.selectbox(key="train_geometry").set_value("sphere")
    app.number_input(key="train_latent_dim").set_value(0)
    app.button(key="train_start").click().run()
    assert [e.value for e in app.error] == [
        "Cannot start training: latent-dim must be a positive integer, got 0"]
    assert not jobs.list_jobs(runs)
    # the likelihood menu offers only what fits the dataset's values
    assert app.selectbox(key="train_likelihood").options == [
        "default (bernoulli)", "bernoulli", "continuous_bernoulli", "gaussian"]
    app.selectbox(key="train_dataset").set_value("qm9").run()
    assert app.selectbox(key="train_likelihood").options == ["default (von_mises)", "von_mises"]
    assert_clean(app)
    # a tiny real run, started from the page and followed through its files
    app.selectbox(key="train_dataset").set_value("lfw")
    app.selectbox(key="train_geometry").set_value("sphere").run()
    app.selectbox(key="train_sphere_posterior").set_value("power_spherical")
    app.number_input(key="train_initial_kappa").set_value(2.5)
    app.number_input(key="train_latent_dim").set_value(2)
    app.number_input(key="train_layers").set_value(1)
    app.number_input(key="train_hidden").set_value(16)
    app.number_input(key="train_epochs").set_value(1)
    app.number_input(key="train_max_examples").set_value(200)
    app.number_input(key="train_iwae").set_value(0)
    app.button(key="train_start").click().run()
    assert_clean(app)
    assert any(s.value.startswith("Started ") for s in app.success)
    (job,) = jobs.list_jobs(runs)
    done = jobs.wait(job.path, timeout=120)
    assert done.state == "done", done.error
    model_cfg = json.loads((done.checkpoint / "config.json").read_text())["model"]
    assert (model_cfg["sphere_posterior"], model_cfg["initial_concentration"]) == ("power_spherical", 2.5)
    app.run()  # coming back to the page shows the finished run
    assert_clean(app)
    assert any("**done**" in m.value for m in app.markdown)
    assert len(app.get("plotly_chart")) == 1  # its training curves
    open_page(app, "home")
    listed = app.dataframe[1].value
    assert list(listed[listed["name"] == job.job_id]["posterior"]) == ["power_spherical"]


def test_molecules_page_shows_the_molecule_in_3dmol(app, dashboard_checkpoints):  # noqa: F811
    qm9 = [i for i in list_checkpoints(dashboard_checkpoints) if i.dataset == "qm9"]
    open_page(app, "molecules")
    if not qm9:
        pytest.fail("no QM9 checkpoint to test the Molecules page with")
    (frame,) = app.get("iframe")
    html = frame.proto.srcdoc
    assert "$3Dmol" in html and "V2000" in html  # the library inlined, and the molecule's mol block
    assert "cdn.jsdelivr" not in html and "https://3dmol" not in html.lower()
    assert "heavy-atom RMSD" in html
    title = [m.value for m in app.markdown if m.value.startswith("**QM9 #")][0]
    smiles = title.split("`")[1]
    table = app.dataframe[0].value
    assert list(table.columns[:5]) == ["slot", "atoms", "true (deg)", "decoded (deg)", "|error| (deg)"]
    assert (table["|error| (deg)"] <= 180).all()
    assert len(app.get("plotly_chart")) == 5  # the post's QM9 plots
    app.number_input(key="mol_row").set_value(1).run()
    assert_clean(app)
    app.radio(key="mol_mode").set_value("overlay").run()
    assert_clean(app)
    app.radio(key="mol_how").set_value("by SMILES").run()
    app.text_input(key="mol_smiles").set_value(smiles).run()
    assert_clean(app)
    assert any(f"`{smiles}`" in m.value for m in app.markdown)
    app.text_input(key="mol_smiles").set_value("not a molecule").run()
    assert not app.exception
    assert any("Cannot show this molecule" in e.value for e in app.error)
    app.radio(key="mol_how").set_value("at random").run()
    app.button(key="mol_random").click().run()
    assert_clean(app)


def test_broken_checkpoints_and_missing_data_are_messages(tmp_path, monkeypatch, dashboard_checkpoints):  # noqa: F811
    source = sorted(list_checkpoints(dashboard_checkpoints), key=lambda i: i.dataset != "lfw")[0]
    root = tmp_path / "ckpts"
    corrupt = root / "a-corrupt"
    shutil.copytree(source.path, corrupt)
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-64] + b"\0" * 64)
    nodata = root / "b-no-data"
    shutil.copytree(source.path, nodata)
    cfg = json.loads((nodata / "config.json").read_text())
    cfg["training"]["data_dir"] = None
    cfg["training"]["dataset"] = cfg["data"]["name"] = "mnist" if source.dataset != "mnist" else "lfw"
    (nodata / "config.json").write_text(json.dumps(cfg))
    monkeypatch.setenv(catalog.ENV_CHECKPOINTS, str(root))
    monkeypatch.setenv(catalog.ENV_RUNS, str(tmp_path / "runs"))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.run()
    at.switch_page("app_pages/latent_explorer.py")
    at.run()
    assert not at.exception
    assert [e.value for e in at.error][0].startswith("Cannot load checkpoint a-corrupt")
    assert "is corrupt" in at.error[0].value
    at.selectbox(key="explorer_checkpoint").set_value(1).run()
    assert not at.exception and not at.error
    assert at.warning[0].value.startswith("No test data to draw")
    assert "decoded at the cursor" in image_captions(at)  # the cursor still works
