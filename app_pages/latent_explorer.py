"""Latent explorer: the test set in latent space, selections, a cursor, a decode
grid and geodesic interpolation. Everything is computed by ccvae.dashboard.explorer."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ccvae import latent_tools as lt
from ccvae.dashboard import explorer as ex
from ccvae.errors import CCVAEError
from ccvae.viz import latent_plots as lp
from app_pages import _common as common

st.title("Latent explorer")
info = common.pick_checkpoint("Checkpoint", key="explorer_checkpoint")
if info is None:
    common.no_checkpoints_message()
    st.stop()
if info.latent_dim < 2:
    common.error(f"{info.name} has a {info.latent_dim}-D latent space; the explorer needs at least 2 dimensions")
    st.stop()
loaded = common.model_and_view(info)
if loaded is None:
    st.stop()
model, view, data, data_error = loaded

st.caption(f"**{info.dataset}** · {view.geometry} · latent dimension {view.latent_dim} · "
           f"{view.n:,} test points. {view.projection.describe()}")
if data_error is not None:
    st.warning(f"No test data to draw ({data_error}). The cursor and the decode grid still work.")
for note in view.notes:
    st.caption(f"Note: {note}")
if data is not None and data.is_subset:
    st.caption(f"Data: {data.description} (a SUBSET).")

ckey = info.path.name
chart_key = f"explorer_scatter::{ckey}"
store_key = f"explorer_selection::{ckey}"
# The chart's selection from the last interaction (read before the chart is drawn,
# because drawing a changed figure gives the chart a new identity and a new state).
# An empty state is what a fresh chart holds too, so only a non-empty selection
# replaces the stored one; the "Clear the selection" button empties it.
picked = [i for i in lp.selected_indices(st.session_state.get(chart_key)) if i < view.n]
if picked:
    st.session_state[store_key] = picked
selection: list[int] = st.session_state.get(store_key, [])

top = st.container()
tabs = st.tabs(["Selection", "Decode grid", "Geodesic interpolation"])
left, right = top.columns([3, 2], gap="medium")

# -- the cursor (right column) ------------------------------------------------------------------
with right:
    st.subheader("Latent cursor")
    if view.display == "plane":
        (x0, x1), (y0, y1) = lt.plane_extent(view.coords if view.n else None)
        a0, b0 = ex.cursor_defaults(view)
        a = st.slider("x" if view.projection.is_identity else "PC 1", float(x0), float(x1),
                      float(np.clip(a0, x0, x1)), key=f"cursor_a::{ckey}")
        b = st.slider("y" if view.projection.is_identity else "PC 2", float(y0), float(y1),
                      float(np.clip(b0, y0, y1)), key=f"cursor_b::{ckey}")
    elif view.display == "sphere":
        a = st.slider("latitude (deg)", -90.0, 90.0, 0.0, 1.0, key=f"cursor_a::{ckey}")
        b = st.slider("longitude (deg)", -180.0, 180.0, 0.0, 1.0, key=f"cursor_b::{ckey}")
    else:
        a = st.slider("hyperbolic distance from the origin", 0.0, 7.0, 0.0, 0.05, key=f"cursor_a::{ckey}",
                      help="Poincaré radius tanh(distance/2)")
        b = st.slider("direction (deg)", -180.0, 180.0, 0.0, 1.0, key=f"cursor_b::{ckey}")
    x_range = None if view.display != "plane" else ((x0, x1), (y0, y1))
    cursor = ex.cursor_point(view, a, b)
    z_cursor, cursor_image = ex.decode_display(model, view, cursor)
    common.show_image(cursor_image, "decoded at the cursor", height=180)
    st.caption("latent point: (" + ", ".join(f"{v:.3f}" for v in z_cursor.tolist()[:6])
               + (", …" if z_cursor.numel() > 6 else "") + ")")
    if view.n:
        rows, dists = ex.nearest(view, z_cursor, k=5)
        st.markdown("**Nearest test points**")
        images, _ = ex.inputs_and_reconstructions(model, view, data, rows)
        cols = st.columns(len(rows))
        for col, r, d, im in zip(cols, rows, dists, images):
            common.show_image(im, f"#{r} · d={d:.2f}", height=48, max_width=60, target=col)

# -- interpolation controls (their path is drawn on the scatter) ----------------------------------
interp = None
with tabs[2]:
    if view.n < 2:
        st.info("Interpolation needs at least two encoded test points.")
    else:
        kind = {"euclidean": "a straight line", "sphere": "a great circle",
                "hyperbolic": "a hyperbolic geodesic"}[view.geometry]
        st.caption(f"The geodesic between two test points in the latent manifold ({kind}), "
                   "drawn on the scatter, decoded along the way.")

        def use_selection():
            if len(selection) >= 2:
                st.session_state[f"interp_a::{ckey}"] = int(selection[0])
                st.session_state[f"interp_b::{ckey}"] = int(selection[1])

        c1, c2, c3, c4 = st.columns([1, 1, 1, 1.3])
        ia = c1.number_input("from test point #", 0, view.n - 1, 0, key=f"interp_a::{ckey}")
        ib = c2.number_input("to test point #", 0, view.n - 1, min(1, view.n - 1), key=f"interp_b::{ckey}")
        steps = c3.slider("steps", 3, 20, 10, key=f"interp_steps::{ckey}")
        c4.button("Use the first two selected points", on_click=use_selection,
                  disabled=len(selection) < 2, key=f"interp_use::{ckey}")
        try:
            interp = ex.interpolate(model, view, int(ia), int(ib), int(steps))
        except (CCVAEError, ValueError) as e:
            common.error("Cannot interpolate", e)
        if interp is not None:
            common.show_image(lp.image_grid(interp.images, ncols=len(interp.images)),
                              f"#{interp.a} ({ex.label_of(view, interp.a)}) → #{interp.b} "
                              f"({ex.label_of(view, interp.b)}), geodesic length {interp.length:.3f}",
                              scale=ex.display_scale(interp.images, 72))

# -- the scatter (left column) ------------------------------------------------------------------------
with left:
    sphere_view = "globe"
    if view.display == "sphere":
        sphere_view = st.radio("View", ["globe", "map"], horizontal=True, key=f"sphere_view::{ckey}",
                               format_func={"globe": "3-D globe", "map": "latitude/longitude map"}.get,
                               help="3-D plots cannot select points: use the map to click, box or lasso.")
    paths = []
    if interp is not None:
        paths.append({"points": interp.path_display, "markers": interp.steps_display, "name": "geodesic"})
    if view.n:
        fig = ex.scatter(view, paths=paths, cursor=cursor.numpy(), highlight=selection,
                         sphere_view=sphere_view, height=560)
        st.plotly_chart(fig, key=chart_key, on_select="rerun", selection_mode=("points", "box", "lasso"),
                        config={"displaylogo": False})
        if view.display == "sphere" and sphere_view == "globe":
            st.caption("Drag to rotate. Switch to the map view to select points.")
        else:
            st.caption("Click a point, or use box/lasso select in the chart's toolbar.")
    else:
        st.info("No test points to draw; the cursor and the decode grid work without them.")

# -- selection ------------------------------------------------------------------------------------------
with tabs[0]:
    if not view.n:
        st.info("No test data.")
    elif not selection:
        st.info("Select points on the scatter (click, box or lasso) to see those inputs next to their "
                "reconstructions.")
    else:
        shown = selection[:48]
        inputs, recons = ex.inputs_and_reconstructions(model, view, data, shown)
        st.markdown(f"**{len(selection)} selected**" + (" (showing the first 48)" if len(selection) > 48 else ""))
        common.show_image(ex.paired_mosaic(inputs, recons),
                          "inputs, with each one's reconstruction directly beneath it",
                          scale=ex.display_scale(inputs, 72))
        st.caption("Selected: " + ", ".join(f"#{r} ({ex.label_of(view, r)})" for r in shown[:24])
                   + (" …" if len(shown) > 24 else ""))

        def cursor_to_selection():
            ca, cb = ex.cursor_controls_for(view, selection[0])
            if x_range is not None:  # keep the plane's cursor inside its sliders
                ca, cb = float(np.clip(ca, *x_range[0])), float(np.clip(cb, *x_range[1]))
            else:
                ca = min(ca, 7.0) if view.display == "disc" else ca
            st.session_state[f"cursor_a::{ckey}"] = ca
            st.session_state[f"cursor_b::{ckey}"] = cb

        c1, c2 = st.columns([1, 3])
        c1.button(f"Move the cursor to #{selection[0]}", on_click=cursor_to_selection, key=f"cursor_sel::{ckey}")
        if c2.button("Clear the selection", key=f"clear_sel::{ckey}"):
            st.session_state[store_key] = []
            st.rerun()

# -- decode grid ----------------------------------------------------------------------------------------
with tabs[1]:
    what = {"plane": "a uniform grid on the plane (over the data's extent)",
            "sphere": "a latitude/longitude grid on the sphere (rows north to south, columns "
                      "longitude -180° to 180°)",
            "disc": "a uniform grid over the Poincaré disc (cells outside the disc are blank)"}[view.display]
    c1, c2 = st.columns([1, 1])
    n = c1.slider("grid size", 5, 25, 15, key=f"grid_n::{ckey}")
    radius = 0.95
    if view.display == "disc":
        radius = c2.slider("disc radius covered", 0.5, 0.99, 0.95, 0.01, key=f"grid_r::{ckey}")
    try:
        mosaic, grid = ex.grid_mosaic(model, view, n=n, radius=radius)
    except (CCVAEError, ValueError) as e:
        common.error("Cannot decode the grid", e)
    else:
        extra = "" if view.projection.is_identity else " (on the projection's 2-D slice of the latent space)"
        cell = mosaic.shape[0] / n
        common.show_image(mosaic, f"{n}×{n} decode grid: {what}{extra}", scale=max(1, int(round(48 / cell))))
