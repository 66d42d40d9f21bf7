"""Checkpoint directories: round trip, atomic writes, and one clear error per failure."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from ccvae import checkpoints
from ccvae.errors import CheckpointError
from ccvae.models import VAE, ModelConfig


def small_model(geometry="euclidean"):
    torch.manual_seed(0)
    return VAE(ModelConfig(input_dim=16, geometry=geometry, latent_dim=2, hidden=8, layers=1))


@pytest.fixture
def ckpt(tmp_path):
    path = tmp_path / "run"
    checkpoints.save(path, small_model(), training={"seed": 3}, data={"name": "blobs"},
                     metrics={"test": {"elbo": -12.5}})
    return path


def test_round_trip(ckpt):
    model, info = checkpoints.load(ckpt)
    ref = small_model()
    for (k, a), (_, b) in zip(model.state_dict().items(), ref.state_dict().items()):
        assert torch.equal(a, b), k
    assert info.geometry == "euclidean" and info.latent_dim == 2 and info.dataset == "blobs"
    assert info.test_metrics["elbo"] == -12.5
    assert info.config["versions"]["torch"] == torch.__version__
    assert not model.training
    files = sorted(p.name for p in ckpt.iterdir())
    assert files == ["config.json", "metrics.json", "model.safetensors"]


def test_a_sphere_posterior_survives_the_round_trip(tmp_path):
    torch.manual_seed(0)
    model = VAE(ModelConfig(input_dim=16, geometry="sphere", latent_dim=2, hidden=8, layers=1,
                            sphere_posterior="power_spherical"))
    checkpoints.save(tmp_path / "ps", model, training={}, data={"name": "blobs"})
    loaded, info = checkpoints.load(tmp_path / "ps")
    assert type(loaded.encode(torch.rand(3, 16))).__name__ == "PowerSpherical"
    assert info.posterior == "power_spherical" and info.summary_row()["posterior"] == "power_spherical"
    # written before the choice existed: the vMF
    cfg = json.loads((tmp_path / "ps" / "config.json").read_text())
    del cfg["model"]["sphere_posterior"]
    (tmp_path / "ps" / "config.json").write_text(json.dumps(cfg))
    assert checkpoints.read_info(tmp_path / "ps").posterior == "vmf"


def test_update_metrics_is_atomic_and_merges(ckpt):
    checkpoints.update_metrics(ckpt, test={"elbo": -10.0, "iwae": -9.0})
    info = checkpoints.read_info(ckpt)
    assert info.test_metrics == {"elbo": -10.0, "iwae": -9.0}
    assert not [p for p in ckpt.iterdir() if p.name.startswith(".")]


def test_list_checkpoints_skips_hidden_and_broken(tmp_path):
    for name in ["b", "a", "nested/c"]:
        checkpoints.save(tmp_path / name, small_model())
    (tmp_path / ".a.tmp-123").mkdir()                 # a save that was killed
    (tmp_path / ".a.tmp-123" / "config.json").write_text("{}")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("not json")
    (tmp_path / "junk2").mkdir()
    (tmp_path / "junk2" / "config.json").write_text("not json")
    (tmp_path / "junk2" / "model.safetensors").write_bytes(b"")
    skipped = []
    names = [c.name for c in checkpoints.list_checkpoints(tmp_path, skipped)]
    assert names == ["a", "b", "c"]
    # the broken ones are named with their reason; the hidden save in progress is not
    assert [(p.name, "no weights file" in why or "not valid JSON" in why) for p, why in skipped] == [
        ("junk", True), ("junk2", True)]
    assert checkpoints.list_checkpoints(tmp_path / "missing") == []


def test_killed_save_leaves_previous_checkpoint_intact(ckpt, monkeypatch):
    before = (ckpt / "model.safetensors").read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(checkpoints, "_write_json", boom)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save(ckpt, small_model("sphere"))
    monkeypatch.undo()
    assert (ckpt / "model.safetensors").read_bytes() == before
    assert checkpoints.load(ckpt)[1].geometry == "euclidean"
    assert not [p for p in ckpt.parent.iterdir() if p.name.startswith(".")]


def test_killed_first_save_leaves_nothing_that_looks_valid(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "_write_json", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        checkpoints.save(tmp_path / "new", small_model())
    assert not (tmp_path / "new").exists()
    assert checkpoints.list_checkpoints(tmp_path) == []


def test_refuses_to_overwrite_a_folder_that_is_not_a_checkpoint(tmp_path):
    folder = tmp_path / "mydata"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not a checkpoint; refusing to overwrite"):
        checkpoints.save(folder, small_model())
    assert (folder / "precious.txt").read_text() == "keep me"


def _edit_config(path, **changes):
    cfg = json.loads((path / "config.json").read_text())
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    (path / "config.json").write_text(json.dumps(cfg))


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoints.load(tmp_path / "nope")


def test_missing_config(ckpt):
    (ckpt / "config.json").unlink()
    with pytest.raises(CheckpointError, match="has no config.json"):
        checkpoints.load(ckpt)


def test_corrupt_config(ckpt):
    (ckpt / "config.json").write_text('{"format": "ccvae-checkpoint", ')
    with pytest.raises(CheckpointError, match="config.json is not valid JSON"):
        checkpoints.load(ckpt)


def test_missing_weights(ckpt):
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights file"):
        checkpoints.load(ckpt)


def test_corrupt_weights_fail_the_checksum(ckpt):
    data = bytearray((ckpt / "model.safetensors").read_bytes())
    data[-5] ^= 0xFF
    (ckpt / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256 differs"):
        checkpoints.load(ckpt)


def test_truncated_weights_without_checksum(ckpt):
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["weights"].pop("sha256")
    (ckpt / "config.json").write_text(json.dumps(cfg))
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="is corrupt"):
        checkpoints.load(ckpt)


def test_unknown_geometry(ckpt):
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["model"]["geometry"] = "torus"
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="unknown geometry 'torus'"):
        checkpoints.load(ckpt)


def test_newer_format_version(ckpt):
    _edit_config(ckpt, format_version=99)
    with pytest.raises(CheckpointError, match="format version 99"):
        checkpoints.load(ckpt)


def test_version_that_is_not_a_number_is_called_corrupt(ckpt):
    _edit_config(ckpt, format_version="1")
    with pytest.raises(CheckpointError, match="version '1'.*corrupt") as err:
        checkpoints.load(ckpt)
    assert "Upgrade" not in str(err.value)


@pytest.mark.parametrize("section", ["data", "training", "weights"])
def test_section_of_the_wrong_json_type_is_one_message(ckpt, section):
    _edit_config(ckpt, **{section: ["not", "an", "object"]})
    with pytest.raises(CheckpointError, match=f"'{section}' section must be a JSON object, not list"):
        checkpoints.load(ckpt)


def test_not_a_ccvae_checkpoint(ckpt):
    _edit_config(ckpt, format=None)
    with pytest.raises(CheckpointError, match="not a ccvae checkpoint"):
        checkpoints.load(ckpt)


def test_architecture_mismatch(ckpt):
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["model"]["hidden"] = 9
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not match the architecture"):
        checkpoints.load(ckpt)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_that_carries_code_is_refused(ckpt):
    (ckpt / "model.safetensors").unlink()
    with open(ckpt / "model.pt", "wb") as f:
        pickle.dump({"encoder.0.weight": _Evil()}, f)
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["weights"] = {"file": "model.pt"}
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="refused to load .*carries code"):
        checkpoints.load(ckpt)


@pytest.mark.parametrize("content", [b"", b"hello, not weights\n", bytes(range(256)) * 4],
                         ids=["empty", "text", "random"])
def test_corrupt_legacy_weights_file_is_one_clear_error(ckpt, content):
    (ckpt / "model.safetensors").unlink()
    (ckpt / "model.pt").write_bytes(content)
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["weights"] = {"file": "model.pt"}
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"model\.pt.* corrupt.*\(.+\)") as err:
        checkpoints.load(ckpt)
    assert "\n" not in str(err.value)


def test_plain_torch_state_dict_loads_with_weights_only(ckpt):
    model = small_model()
    (ckpt / "model.safetensors").unlink()
    torch.save(model.state_dict(), ckpt / "model.pt")
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["weights"] = {"file": "model.pt"}
    (ckpt / "config.json").write_text(json.dumps(cfg))
    loaded, _ = checkpoints.load(ckpt)
    assert torch.equal(loaded.encoder[0].weight, model.encoder[0].weight)
