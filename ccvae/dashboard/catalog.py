"""Checkpoints and evaluation data for the dashboard.

- Where things live: ``checkpoints_root()`` (the shipped checkpoints; env
  ``CCVAE_CHECKPOINTS``) and ``runs_root()`` (runs started from the Train page; env
  ``CCVAE_RUNS``). Both are searched for checkpoints.
- ``load_eval_data(info)``: the test split of the data a checkpoint was trained on,
  reloaded with the split seed and options recorded in its config.json. It never
  downloads: the dashboard must work offline from local data.
- ``encode(model, x)``: posterior locations (the points the explorer draws).
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..checkpoints import CheckpointInfo, list_checkpoints
from ..data.base import DatasetBundle, Split
from ..data.paths import repo_root
from ..errors import DataError

ENV_CHECKPOINTS = "CCVAE_CHECKPOINTS"
ENV_RUNS = "CCVAE_RUNS"

GEOMETRY_NAMES = {"euclidean": "Euclidean (Gaussian)", "sphere": "hyperspherical (vMF)",
                  "hyperbolic": "hyperbolic (wrapped normal)"}
GEOMETRY_SHORT = {"euclidean": "E", "sphere": "S", "hyperbolic": "H"}


def _root(env: str, default: str) -> Path:
    value = os.environ.get(env, "").strip()
    if value:
        return Path(value).expanduser()
    in_repo = repo_root() / default
    if in_repo.is_dir() or (repo_root() / "app.py").is_file():
        return in_repo
    return Path.cwd() / default


def checkpoints_root() -> Path:
    """The shipped checkpoints: ``$CCVAE_CHECKPOINTS``, else ``<repo>/checkpoints``."""
    return _root(ENV_CHECKPOINTS, "checkpoints")


def runs_root() -> Path:
    """Training runs from the dashboard: ``$CCVAE_RUNS``, else ``<repo>/runs``."""
    return _root(ENV_RUNS, "runs")


def all_checkpoints() -> list[CheckpointInfo]:
    """Every valid checkpoint: the shipped ones first, then finished or running runs."""
    found = list_checkpoints(checkpoints_root())
    seen = {c.path.resolve() for c in found}
    for c in list_checkpoints(runs_root()):
        if c.path.resolve() not in seen:
            found.append(c)
    return found


def origin(info: CheckpointInfo) -> str:
    """"shipped" for checkpoints under the checkpoints root, else "trained here"."""
    try:
        info.path.resolve().relative_to(checkpoints_root().resolve())
        return "shipped"
    except ValueError:
        return "trained here"


def display_name(info: CheckpointInfo) -> str:
    """A one-line label for pickers: "mnist · sphere S^2 · 2 layers — name"."""
    g = info.geometry
    space = {"euclidean": "R", "sphere": "S", "hyperbolic": "H"}.get(g, "?")
    layers = info.model_config.get("layers")
    status = info.metrics.get("status")
    suffix = " (training…)" if status == "training" else ""
    return f"{info.dataset} · {g} {space}^{info.latent_dim} · {layers} layers — {info.name}{suffix}"


def checkpoint_rows(infos: list[CheckpointInfo]) -> list[dict[str, Any]]:
    """Rows for the checkpoint table: geometry, data, size and headline test metrics."""
    rows = []
    for info in infos:
        r = info.summary_row()
        t = info.test_metrics
        rows.append({
            "name": r["name"], "dataset": r["dataset"], "geometry": r["geometry"],
            "posterior": r["posterior"], "latent dim": r["latent_dim"], "layers": r["layers"], "hidden": r["hidden"],
            "likelihood": r["likelihood"],
            "test ELBO": _round(t.get("elbo")), "± batch std": _round(t.get("elbo_batch_std")),
            "test IWAE": _round(t.get("iwae")), "k-NN acc.": _round(t.get("knn_accuracy"), 3),
            "angle MAE (deg)": _round(t.get("angle_mae_deg")),
            "subset data": r["subset"], "origin": origin(info),
            "status": info.metrics.get("status", "?"), "path": r["path"],
        })
    empty = [k for k in (rows[0] if rows else {}) if all(r[k] is None for r in rows)]
    return [{k: v for k, v in r.items() if k not in empty} for r in rows]


def _round(v, digits: int = 2):
    return None if v is None else round(float(v), digits)


# -- evaluation data ------------------------------------------------------------------

@dataclass
class EvalData:
    """The test split a page shows, with what it needs to label and draw it."""

    dataset: str
    split: Split
    input_shape: tuple[int, ...]
    label_names: list[str] | None
    source: str
    description: str
    is_subset: bool
    notes: list[str] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    bundle: DatasetBundle | None = None


#: Loader options the dashboard sets when a loader takes them: never download (the
#: dashboard works from local data only), no progress bars on the server's console.
_QUIET = {"download": False, "progress": False}


def _loader_kwargs(loader, kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The loader's keyword arguments: the recorded options it takes plus the quiet
    options. Returns (kwargs, names of quiet options only guessed through **kwargs)."""
    params = inspect.signature(loader).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    out = {k: v for k, v in kwargs.items() if takes_any or k in params}
    guessed = []
    for k, v in _QUIET.items():
        if k in params:
            out[k] = v
        elif takes_any:
            out[k] = v
            guessed.append(k)
    return out, guessed


def _call_loader(loader, data_dir, kwargs: dict[str, Any]) -> DatasetBundle:
    kw, guessed = _loader_kwargs(loader, kwargs)
    try:
        return loader(data_dir=data_dir, **kw)
    except (TypeError, DataError) as e:  # a wrapper passed a quiet option on to a loader
        # without it (load_dataset's wrappers check options and raise DataError naming it)
        bad = [k for k in guessed if repr(k) in str(e) or k in str(e)]
        if not bad:
            raise
        return loader(data_dir=data_dir, **{k: v for k, v in kw.items() if k not in bad})


def data_request(info: CheckpointInfo) -> dict[str, Any]:
    """Which data a checkpoint needs, as a plain dict (a cache key): the dataset name,
    the recorded data folder (None when it no longer exists here), the split seed,
    the dataset options, and what it was trained on (for notes)."""
    training = info.config.get("training", {}) or {}
    data = info.config.get("data", {}) or {}
    name = training.get("dataset") or data.get("name")
    if not name or name == "?":
        raise DataError(f"checkpoint {info.name} does not record which dataset it was trained on")
    data_dir = training.get("data_dir")
    missing_dir = bool(data_dir) and not Path(data_dir).exists()
    return {"name": name, "data_dir": None if missing_dir else data_dir,
            "missing_data_dir": data_dir if missing_dir else None,
            "seed": int(data.get("split_seed", training.get("seed", 0)) or 0),
            "options": dict(training.get("dataset_options") or {}),
            "trained_on": data.get("source"), "trained_on_subset": bool(data.get("is_subset", False))}


def load_request(request: dict[str, Any]) -> tuple[DatasetBundle, list[str]]:
    """Load the data of a :func:`data_request` offline. Returns (bundle, notes); notes
    say when the data now comes from a different source than at training time (e.g.
    a subset instead of the full set)."""
    from ..data.registry import get_loader

    notes: list[str] = []
    if request.get("missing_data_dir"):
        notes.append(f"the recorded data folder {request['missing_data_dir']} does not exist here; "
                     "used the default sources")
    loader = get_loader(request["name"])
    bundle = _call_loader(loader, request["data_dir"], {"seed": request["seed"], **request["options"]})
    trained_on = request.get("trained_on")
    if trained_on and trained_on.split(":")[0] != bundle.source.split(":")[0]:
        notes.append(f"trained on {trained_on}; showing {bundle.source}")
    if bundle.is_subset and not request.get("trained_on_subset"):
        notes.append("the full dataset is not available here: showing a subset")
    return bundle, notes


def load_bundle(info: CheckpointInfo) -> tuple[DatasetBundle, list[str]]:
    """The dataset bundle a checkpoint was trained on, reloaded offline with the
    recorded split seed, data folder (when it still exists) and dataset options."""
    return load_request(data_request(info))


def eval_data_from(info: CheckpointInfo, bundle: DatasetBundle, notes: list[str],
                   max_examples: int | None = None) -> EvalData:
    """The test split of ``bundle`` for checkpoint ``info`` (first ``max_examples`` rows),
    after checking that the data has the number of features the model reads."""
    test = bundle.test
    expected = int(info.model_config.get("input_dim", test.x.shape[1]))
    if test.x.shape[1] != expected:
        raise DataError(
            f"the {bundle.name} data found here has {test.x.shape[1]} features per example but "
            f"checkpoint {info.name} expects {expected}: it was trained on a different version "
            f"of the data ({info.config.get('data', {}).get('source', '?')})")
    if max_examples is not None and max_examples < len(test):
        test = Split(test.x[:max_examples], None if test.y is None else test.y[:max_examples],
                     test.index[:max_examples], None if test.mask is None else test.mask[:max_examples])
    return EvalData(dataset=bundle.name, split=test, input_shape=tuple(bundle.input_shape),
                    label_names=bundle.label_names, source=bundle.source,
                    description=bundle.description, is_subset=bundle.is_subset, notes=list(notes),
                    extras=bundle.extras, bundle=bundle)


def load_eval_data(info: CheckpointInfo, max_examples: int | None = None) -> EvalData:
    """The test split of the checkpoint's dataset (first ``max_examples`` rows)."""
    bundle, notes = load_bundle(info)
    return eval_data_from(info, bundle, notes, max_examples)


@torch.no_grad()
def encode(model, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Posterior locations (points on the latent manifold), float32 on the CPU."""
    return model.latent_means(x, batch_size=batch_size).float().cpu()


@torch.no_grad()
def reconstruct(model, x: torch.Tensor) -> torch.Tensor:
    """Decoded means at the posterior locations of x (deterministic reconstructions)."""
    return model.decode_mean(model.latent_means(x)).float().cpu()
