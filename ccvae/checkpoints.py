"""Checkpoint directories: weights + config.json + metrics.json, written atomically.

Layout of a checkpoint directory::

    <name>/
      model.safetensors   the weights (safetensors: tensors only, no pickle)
      config.json         format version, model settings, how it was trained, data
                          provenance, software versions, and the weights' SHA-256
      metrics.json        training history and test metrics

A save writes everything into a hidden temporary directory beside the target and
renames it into place, so a killed save never leaves a half checkpoint that looks
valid (hidden ``.*`` directories are never listed or loaded). Loading checks the
format version, the weights' checksum and the architecture, and reports each
problem as one :class:`~ccvae.errors.CheckpointError`. Weights stored as a
``model.pt`` are read with ``torch.load(weights_only=True)``: a pickle that
carries code is refused.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import pickle
import platform
import shutil
import tempfile
import warnings
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .errors import CheckpointError, ConfigError
from .models import VAE

FORMAT = "ccvae-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
LEGACY_WEIGHTS_FILE = "model.pt"  # torch.save'd state dict, loaded with weights_only=True
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"


@dataclass
class CheckpointInfo:
    """What a checkpoint says about itself, read without loading the weights."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model_config(self) -> dict[str, Any]:
        return self.config["model"]

    @property
    def geometry(self) -> str:
        return self.model_config["geometry"]

    @property
    def posterior(self) -> str:
        """The family of q(z|x): the sphere's ``sphere_posterior`` (vmf for checkpoints
        written before it could be chosen), else the geometry's only one."""
        if self.geometry == "sphere":
            return self.model_config.get("sphere_posterior", "vmf")
        return {"euclidean": "normal", "hyperbolic": "wrapped_normal"}.get(self.geometry, "?")

    @property
    def latent_dim(self) -> int:
        return int(self.model_config["latent_dim"])

    @property
    def dataset(self) -> str:
        return self.config.get("data", {}).get("name", "?")

    @property
    def test_metrics(self) -> dict[str, Any]:
        return self.metrics.get("test", {}) or {}

    def summary_row(self) -> dict[str, Any]:
        """One flat row for tables (the dashboard's checkpoint list, ``ccvae list``)."""
        t = self.test_metrics
        m = self.model_config
        return {
            "name": self.name,
            "dataset": self.dataset,
            "geometry": self.geometry,
            "latent_dim": self.latent_dim,
            "layers": m.get("layers"),
            "hidden": m.get("hidden"),
            "likelihood": m.get("likelihood"),
            "posterior": self.posterior,
            "subset": bool(self.config.get("data", {}).get("is_subset", False)),
            "test_elbo": t.get("elbo"),
            "test_iwae": t.get("iwae"),
            "path": str(self.path),
        }


# -- writing -------------------------------------------------------------------

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=_json_default)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def _json_default(o):
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, torch.Tensor) and o.numel() == 1:
        return o.item()
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        _write_json(Path(tmp), obj)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def software_versions() -> dict[str, str]:
    import numpy
    return {"ccvae": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def is_checkpoint(path: Path) -> bool:
    path = Path(path)
    return (path / CONFIG_FILE).is_file() and (
        (path / WEIGHTS_FILE).is_file() or (path / LEGACY_WEIGHTS_FILE).is_file())


def save(path: str | Path, model: VAE, *, training: dict | None = None, data: dict | None = None,
         metrics: dict | None = None) -> CheckpointInfo:
    """Write ``model`` and its metadata to the directory ``path``, atomically.

    An existing checkpoint at ``path`` is replaced as a whole. An existing
    directory that is not a checkpoint is never touched: that raises instead.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"{path} exists and is not a directory; choose another --out")
    if path.is_dir() and any(path.iterdir()) and not is_checkpoint(path):
        raise CheckpointError(
            f"{path} is a non-empty directory that is not a checkpoint; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE))
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": software_versions(),
            "model": model.config.to_dict(),
            "training": training or {},
            "data": data or {},
            "weights": {"file": WEIGHTS_FILE, "sha256": _sha256(tmp / WEIGHTS_FILE)},
        }
        _write_json(tmp / CONFIG_FILE, config)
        _write_json(tmp / METRICS_FILE, metrics or {})
        if path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return CheckpointInfo(path, config, metrics or {})


def update_metrics(path: str | Path, **sections: Any) -> dict:
    """Merge ``sections`` (e.g. ``test={...}``) into metrics.json, atomically."""
    info = read_info(path)
    metrics = dict(info.metrics)
    metrics.update(sections)
    write_json_atomic(Path(path) / METRICS_FILE, metrics)
    return metrics


# -- reading -------------------------------------------------------------------

def _read_json(path: Path, what: str) -> dict:
    try:
        with open(path) as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path.parent} has no {path.name}: not a complete checkpoint") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is corrupt ({what} is not valid JSON: {e.msg if hasattr(e, 'msg') else e})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is corrupt ({what} must hold a JSON object)")
    return obj


def read_info(path: str | Path) -> CheckpointInfo:
    """Read config.json and metrics.json, checking the format. Loads no weights."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: the directory does not exist")
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a checkpoint directory")
    config = _read_json(path / CONFIG_FILE, "config.json")
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a ccvae checkpoint (config.json has no ccvae format tag)")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}; this ccvae ({__version__}) reads "
            f"version {FORMAT_VERSION}. "
            + ("Upgrade ccvae or retrain the model." if isinstance(version, int) and version > FORMAT_VERSION
               else "The file is corrupt (the version must be a whole number): restore or retrain it."))
    if not isinstance(config.get("model"), dict):
        raise CheckpointError(f"{path}/config.json has no 'model' section")
    for section in ("data", "training", "weights"):
        if section in config and not isinstance(config[section], dict):
            raise CheckpointError(f"{path}/config.json is corrupt: its {section!r} section must be "
                                  f"a JSON object, not {type(config[section]).__name__}")
    metrics_path = path / METRICS_FILE
    metrics = _read_json(metrics_path, "metrics.json") if metrics_path.exists() else {}
    return CheckpointInfo(path, config, metrics)


def _first_line(e: BaseException) -> str:
    """An exception's first message line, or its type's name where it has no message."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def _load_state(path: Path, config: dict) -> dict[str, torch.Tensor]:
    weights = config.get("weights", {})
    file = path / weights.get("file", WEIGHTS_FILE)
    if not file.is_file():
        legacy = path / LEGACY_WEIGHTS_FILE
        if legacy.is_file():
            file = legacy
        else:
            raise CheckpointError(f"{path} has no weights file ({file.name}): not a complete checkpoint")
    expected = weights.get("sha256")
    if expected and _sha256(file) != expected:
        raise CheckpointError(
            f"{file} is corrupt: its SHA-256 differs from the one recorded in config.json. "
            "Retrain or restore the checkpoint.")
    if file.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(str(file), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{file} is corrupt: {e}") from None
    try:
        with warnings.catch_warnings():  # torch warns about legacy formats; the error says it all
            warnings.simplefilter("ignore")
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch's unpickler raises many types on bad bytes
        if isinstance(e, pickle.UnpicklingError) and "WeightsUnpickler error" in str(e):
            # torch's safe unpickler stopped at an instruction or global it does not allow:
            # random bytes and a pickle that would run code look alike to it
            reason = " ".join(str(e).split("WeightsUnpickler error:", 1)[1].split("Check the")[0].split())
            raise CheckpointError(
                f"refused to load {file}: it is corrupt, or a pickle that carries code or objects "
                f"other than tensors, which could run arbitrary code ({reason or 'unreadable'})") from None
        raise CheckpointError(f"{file} is corrupt or not a torch weights file ({_first_line(e)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{file} does not hold a state dict of tensors")
    return state


def load(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[VAE, CheckpointInfo]:
    """Load a checkpoint directory: returns ``(model, info)``, model in eval mode."""
    info = read_info(path)
    try:
        model = VAE.from_config(info.model_config)
    except ConfigError as e:
        raise CheckpointError(f"{info.path}/config.json describes a model this ccvae cannot build: {e}") from None
    except TypeError as e:
        raise CheckpointError(f"{info.path}/config.json has invalid model settings: {e}") from None
    state = _load_state(info.path, info.config)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise CheckpointError(
            f"the weights in {info.path} do not match the architecture in its config.json ({first})") from None
    model.to(map_location).eval()
    return model, info


def list_checkpoints(root: str | Path = "checkpoints",
                     skipped: list[tuple[Path, str]] | None = None) -> list[CheckpointInfo]:
    """Every valid checkpoint under ``root`` (recursively), sorted by path.

    Hidden directories (temporary or replaced saves) are skipped; a directory
    whose config.json is unreadable, or that has no weights file, is skipped too,
    and appended with the reason to ``skipped`` when a list is given.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for config in sorted(root.rglob(CONFIG_FILE)):
        ckpt = config.parent
        if any(part.startswith(".") for part in ckpt.relative_to(root).parts):
            continue
        if not is_checkpoint(ckpt):
            if skipped is not None:
                skipped.append((ckpt, f"has {CONFIG_FILE} but no weights file ({WEIGHTS_FILE})"))
            continue
        try:
            found.append(read_info(ckpt))
        except CheckpointError as e:
            if skipped is not None:
                skipped.append((ckpt, str(e)))
            continue
    return found
