"""The command line, run as a user runs it: through a subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, SHARED_DATA

needs_mnist = pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(),
                                 reason="../shared/data/mnist is not beside the repository")


def ccvae(*args, cwd=REPO, timeout=300):
    return subprocess.run([sys.executable, "-m", "ccvae", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def one_line_error(result, *fragments):
    assert result.returncode != 0
    lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_help_lists_commands():
    r = ccvae("--help")
    assert r.returncode == 0
    for cmd in ("train", "evaluate", "list"):
        assert cmd in r.stdout
    r = ccvae("train", "--help")
    assert r.returncode == 0 and "--geometry {euclidean,sphere,hyperbolic}" in r.stdout


@pytest.mark.parametrize("args, fragments", [
    (["train", "--bogus"], ["unrecognized arguments: --bogus"]),
    (["train", "--geometry", "torus"], ["invalid choice: 'torus'"]),
    (["train", "--latent-dim", "0"], ["--latent-dim", "positive integer"]),
    (["train", "--lr", "abc"], ["--lr", "positive number"]),
    (["train", "--dataset", "cifar"], ["unknown dataset", "mnist"]),
    (["train", "--sphere-posterior", "bingham"], ["invalid choice: 'bingham'"]),
    (["train", "--sphere-posterior", "vmf_svae"], ["needs the sphere geometry"]),
    (["train", "--initial-concentration", "0"], ["--initial-concentration", "positive number"]),
    (["train", "--geometry", "sphere", "--initial-concentration", "0.5"], ["above 1"]),
    (["evaluate", "/nonexistent/ckpt"], ["does not exist"]),
    (["list", "/nonexistent/root"], ["is not a folder"]),
    (["evaluate", "/nonexistent/ckpt", "--device", "foo"], ["device must be auto, cpu or cuda[:N]", "'foo'"]),
    (["train", "--dataset", "qm9", "--binarize", "dynamic"], ["binarize 'dynamic' applies to images", "qm9"]),
    (["train", "--dataset", "qm9", "--likelihood", "bernoulli"], ["'bernoulli' does not apply to qm9", "von_mises"]),
    (["train", "--dataset", "lfw", "--likelihood", "von_mises"], ["'von_mises' does not apply to lfw"]),
    (["sweep", "--dataset", "lfw", "--likelihood", "von_mises", "--latent-dims", "2", "--dry-run",
      "--db", "/proc/never-made.sqlite"], ["'von_mises' does not apply to lfw"]),
    (["train", "--device", "cuda:x"], ["device must be", "'cuda:x'"]),
    (["train", "--data-option", "bogus=1"], ["unknown data option 'bogus' for mnist", "val_size"]),
    (["train", "--out", "/proc/ccvae-test-out"], ["--out /proc/ccvae-test-out: cannot write in /proc"]),
    (["train", "--progress-file", "/proc/no/such"], ["--progress-file /proc/no/such: cannot write it"]),
    (["sweep", "--latent-dims", "2", "--dry-run", "--db", "/proc/no/r.sqlite"],
     ["cannot create the results database"]),
    (["frobnicate"], ["invalid choice: 'frobnicate'"]),
])
def test_bad_input_gives_one_line(args, fragments):
    one_line_error(ccvae(*args), *fragments)


def test_corrupt_checkpoint_gives_one_line(tmp_path):
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "config.json").write_text("{oops")
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"\0" * 10)
    one_line_error(ccvae("evaluate", tmp_path / "ck"), "not valid JSON")


def test_bad_output_locations_are_refused_before_training(tmp_path):
    (tmp_path / "afile").write_text("x")
    one_line_error(ccvae("train", "--epochs", "1", "--out", tmp_path / "afile" / "sub"), "cannot write in")
    one_line_error(ccvae("train", "--epochs", "1", "--progress-file", tmp_path), "is a folder")


def test_train_does_not_replace_a_checkpoint_unless_told(tmp_path):
    out = tmp_path / "ck"
    shutil.copytree(REPO / "checkpoints" / "mnist-sphere-d2", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    one_line_error(ccvae("train", "--geometry", "euclidean", "--epochs", "1", "--out", out),
                   "already holds a checkpoint", "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_evaluate_keeps_wider_stored_metrics_unless_told(tmp_path):
    out = tmp_path / "ck"
    shutil.copytree(REPO / "checkpoints" / "mnist-euclidean-d2", out)
    before = (out / "metrics.json").read_bytes()
    r = ccvae("evaluate", out, "--max-examples", "50", "--iwae-samples", "5", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "test examples" in r.stdout  # the figures are printed
    assert "not written" in r.stderr and "50 test examples against 10000" in r.stderr
    assert "k = 5 against k = 500" in r.stderr
    assert (out / "metrics.json").read_bytes() == before
    r = ccvae("evaluate", out, "--max-examples", "50", "--iwae-samples", "5", "--quiet", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "metrics.json").read_text())["test"]["n_examples"] == 50


def test_missing_explicit_data_dir(tmp_path):
    one_line_error(ccvae("train", "--data-dir", tmp_path / "nothing-here", "--epochs", "1"), "nothing-here")


@needs_mnist
def test_train_evaluate_list_round_trip(tmp_path):
    out = tmp_path / "ck"
    progress = tmp_path / "progress.jsonl"
    r = ccvae("train", "--dataset", "mnist", "--geometry", "sphere", "--latent-dim", "2", "--hidden", "64",
              "--layers", "1", "--epochs", "2", "--max-examples", "300", "--iwae-samples", "10",
              "--out", out, "--progress-file", progress, "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}" in r.stdout and "ELBO" in r.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["command"].startswith("ccvae train --dataset mnist --geometry sphere")
    assert config["data"]["is_subset"] is False and config["data"]["n_test"] == 10000
    events = [json.loads(l)["event"] for l in progress.read_text().splitlines()]
    assert events[0] == "start" and events.count("epoch") == 2 and events[-1] == "done"
    stored = json.loads((out / "metrics.json").read_text())["test"]

    r = ccvae("evaluate", out, "--iwae-samples", "10", "--quiet")
    assert r.returncode == 0, r.stderr
    again = json.loads((out / "metrics.json").read_text())["test"]
    for key in ("elbo", "recon", "kl", "iwae", "knn_accuracy"):
        assert again[key] == pytest.approx(stored[key], rel=1e-4, abs=1e-4), key

    r = ccvae("list", tmp_path)
    assert r.returncode == 0 and "ck" in r.stdout and "sphere" in r.stdout
    r = ccvae("list", tmp_path, "--json")
    rows = json.loads(r.stdout)
    assert rows[0]["geometry"] == "sphere" and rows[0]["latent_dim"] == 2 and rows[0]["posterior"] == "vmf"
    r = ccvae("list", tmp_path, "--markdown")
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("| name | dataset | geometry") and lines[2].startswith("| ck | mnist | sphere | 2 |")
