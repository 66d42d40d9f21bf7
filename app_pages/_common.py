"""Streamlit glue shared by the pages: cached loaders, the checkpoint picker and
error display. No maths here: it only caches what ``ccvae`` computes."""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from ccvae import checkpoints
from ccvae.dashboard import catalog
from ccvae.dashboard.explorer import LatentView, build_view
from ccvae.errors import CCVAEError

#: Most test points any scatter draws (the issue's target is 10,000 points).
MAX_POINTS = 10_000


def stamp(info: checkpoints.CheckpointInfo) -> str:
    """A cache key that changes when the checkpoint's weights change."""
    sha = info.config.get("weights", {}).get("sha256")
    if sha:
        return sha
    try:
        return str((info.path / checkpoints.WEIGHTS_FILE).stat().st_mtime_ns)
    except OSError:
        return "?"


def list_checkpoints() -> list[checkpoints.CheckpointInfo]:
    """Every checkpoint (shipped and trained here), read fresh on every run: it only
    reads small JSON files, and a run that just finished must show up at once."""
    return catalog.all_checkpoints()


@st.cache_resource(show_spinner="Loading the model…", max_entries=12)
def load_model(path: str, key: str):
    """(model, info) of a checkpoint; cached per weights version."""
    return checkpoints.load(path)


@st.cache_resource(show_spinner="Loading the data… (the first QM9 load on a machine featurises all 130,831 "
                   "molecules, about a minute, and caches them for later)", max_entries=4)
def _load_request(request_json: str):
    """(bundle, notes) per data request: checkpoints on the same data share one copy."""
    return catalog.load_request(json.loads(request_json))


def load_eval_data(path: str, key: str) -> catalog.EvalData:
    info = checkpoints.read_info(path)
    request = json.dumps(catalog.data_request(info), sort_keys=True, default=str)
    bundle, notes = _load_request(request)
    return catalog.eval_data_from(info, bundle, notes)


@st.cache_resource(show_spinner="Encoding the test set…", max_entries=12)
def latent_view(path: str, key: str, with_data: bool, max_points: int) -> LatentView:
    model, _ = load_model(path, key)
    data = load_eval_data(path, key) if with_data else None
    return build_view(model, data, max_points=max_points)


def show_image(image, caption: str | None = None, *, height: int | None = None, scale: int = 1,
               max_width: int = 1100, target=None) -> None:
    """An image in [0, 1] shown at its own pixel size: enlarged by pixel repetition
    (``scale``, or enough to make it at least ``height`` pixels tall), never wider
    than ``max_width``. A short caption goes under the image; a long one into an
    st.caption below it (an image caption would wrap to the image's width)."""
    import math

    from ccvae.viz.latent_plots import as_uint8

    if height is not None:
        scale = max(1, math.ceil(height / max(int(image.shape[0]), 1)))
    arr = as_uint8(image, scale=scale)
    where = target or st
    short = caption is not None and len(caption) <= 24
    where.image(arr, caption=caption if short else None, width=int(min(arr.shape[1], max_width)))
    if caption is not None and not short:
        where.caption(caption)


def error(message: str, exc: BaseException | None = None) -> None:
    """An st.error with the package's message (never a traceback)."""
    st.error(f"{message}: {exc}" if exc is not None else message, icon=":material/error:")


def pick_checkpoint(label: str, key: str, infos: list[checkpoints.CheckpointInfo] | None = None,
                    *, predicate=None, help: str | None = None) -> checkpoints.CheckpointInfo | None:
    """A selectbox over the checkpoints (optionally filtered); None when there are none."""
    infos = list_checkpoints() if infos is None else infos
    if predicate is not None:
        infos = [i for i in infos if predicate(i)]
    if not infos:
        return None
    names = [catalog.display_name(i) for i in infos]
    choice = st.selectbox(label, range(len(infos)), format_func=lambda i: names[i], key=key, help=help)
    return infos[int(choice or 0)]


def no_checkpoints_message() -> None:
    st.info(
        f"No checkpoints found under `{catalog.checkpoints_root()}` or `{catalog.runs_root()}`. "
        "Train one on the **Train** page, or with "
        "`python -m ccvae train --dataset mnist --geometry sphere --latent-dim 2 --out checkpoints/mnist-sphere-d2`, "
        "or point the `CCVAE_CHECKPOINTS` environment variable at a folder of checkpoints.")


def model_and_view(info: checkpoints.CheckpointInfo, max_points: int = MAX_POINTS):
    """(model, view, data or None, data error or None), with errors shown on the page.

    Returns None when the model itself cannot be loaded (the error is shown).
    """
    key = stamp(info)
    path = str(info.path)
    try:
        model, _ = load_model(path, key)
    except CCVAEError as e:
        error(f"Cannot load checkpoint {info.name}", e)
        return None
    data, data_error = None, None
    try:
        data = load_eval_data(path, key)
    except CCVAEError as e:
        data_error = e
    except Exception as e:  # noqa: BLE001 - a loader bug must not take the page down
        data_error = e
    try:
        view = latent_view(path, key, data is not None, max_points)
    except CCVAEError as e:
        error(f"Cannot encode the test set of {info.name}", e)
        return None
    return model, view, data, data_error


def relpath(p: str | Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)
