"""ccvae.jobs: background training through the CLI, followed through files.

The runs train a tiny model on the first few hundred LFW faces (real data that
loads in a fraction of a second)."""

from __future__ import annotations

import json
import time

import pytest

from ccvae import checkpoints, jobs
from ccvae.cli import build_parser
from ccvae.errors import ConfigError, DataError
from ccvae.training import TrainConfig


def tiny(**kw) -> TrainConfig:
    base = dict(dataset="lfw", geometry="euclidean", latent_dim=2, hidden=16, layers=1, epochs=2,
                batch_size=64, max_examples=200, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_cli_arguments_reproduce_the_config(tmp_path):
    cfg = tiny(geometry="sphere", latent_dim=5, lr=3e-4, kl_warmup_epochs=2, early_stopping=3,
               dataset_options={"max_molecules": 100}, sphere_posterior="power_spherical",
               initial_concentration=1.7)
    argv = jobs.cli_arguments(cfg, tmp_path / "out", tmp_path / "p.jsonl", tmp_path / "stop", iwae_samples=7)
    args = build_parser().parse_args(argv)
    assert (args.dataset, args.geometry, args.latent_dim, args.hidden, args.layers) == ("lfw", "sphere", 5, 16, 1)
    assert (args.epochs, args.batch_size, args.lr, args.seed) == (2, 64, 3e-4, 0)
    assert (args.kl_warmup_epochs, args.early_stopping, args.max_examples, args.iwae_samples) == (2, 3, 200, 7)
    assert dict(args.data_option) == {"max_molecules": 100}
    assert args.sphere_posterior == "power_spherical" and args.initial_concentration == 1.7
    assert args.out == str(tmp_path / "out") and args.stop_file == str(tmp_path / "stop")


def test_a_run_finishes_and_leaves_a_checkpoint(tmp_path):
    job = jobs.start_job(tiny(), tmp_path, iwae_samples=0)
    assert job.state in ("starting", "running") and job.active
    done = jobs.wait(job.path, timeout=120)
    assert done.state == "done", (done.error, (job.path / jobs.LOG_FILE).read_text()[-2000:])
    assert done.returncode == 0 and not done.active and done.fraction == 1.0
    assert [r["epoch"] for r in done.history] == [1, 2]
    assert done.test is not None and "elbo" in done.test
    model, info = checkpoints.load(done.checkpoint)
    assert info.geometry == "euclidean" and info.metrics["status"] == "done"
    assert info.test_metrics["elbo"] == pytest.approx(done.test["elbo"])
    # the job is found again from disk alone, as after leaving the page
    (again,) = jobs.list_jobs(tmp_path)
    assert again.job_id == job.job_id and again.state == "done"
    stored = json.loads((job.path / jobs.JOB_FILE).read_text())
    assert stored["command"].startswith("ccvae train --dataset lfw")


def _wait_for_epoch(path, timeout=60.0):
    deadline = time.time() + timeout
    status = jobs.read_job(path)
    while time.time() < deadline and not status.history and status.active:
        time.sleep(0.1)
        status = jobs.read_job(path)
    return status


def test_cancel_stops_cleanly_and_keeps_the_best_model(tmp_path):
    job = jobs.start_job(tiny(epochs=500), tmp_path, iwae_samples=0)
    running = _wait_for_epoch(job.path)
    assert running.state == "running", (running.error, (job.path / jobs.LOG_FILE).read_text()[-2000:])
    assert running.fraction < 1.0
    # while it runs, a second run is refused when only one may run at once
    with pytest.raises(ConfigError, match="already in progress"):
        jobs.start_job(tiny(), tmp_path, max_active=1)
    assert len(jobs.list_jobs(tmp_path)) == 1  # nothing was created for the refused run
    cancelling = jobs.cancel_job(job.path)
    assert cancelling.state in ("cancelling", "cancelled")
    done = jobs.wait(job.path, timeout=60)
    assert done.state == "cancelled" and done.stopped == "cancelled"
    assert len(done.history) < 500
    assert checkpoints.is_checkpoint(done.checkpoint)  # the best model so far, complete


def test_terminate_ends_a_run_at_once(tmp_path):
    job = jobs.start_job(tiny(epochs=500), tmp_path, iwae_samples=0)
    _wait_for_epoch(job.path)
    t0 = time.time()
    done = jobs.terminate_job(job.path, timeout=10)
    assert time.time() - t0 < 15
    assert done.state == "cancelled" and not done.active


def test_a_failing_run_reports_the_cli_error(tmp_path):
    job = jobs.start_job(tiny(data_dir=str(tmp_path / "no-such-folder")), tmp_path / "runs", iwae_samples=0)
    done = jobs.wait(job.path, timeout=60)
    assert done.state == "failed" and done.returncode == 1
    assert "no-such-folder" in done.error and "Traceback" not in done.error


def test_bad_settings_are_refused_before_anything_starts(tmp_path):
    with pytest.raises(ConfigError, match="latent-dim must be a positive integer, got 0"):
        tiny(geometry="sphere", latent_dim=0)
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        jobs.start_job(tiny(dataset="cifar"), tmp_path)
    with pytest.raises(ConfigError, match="cfg must be a TrainConfig"):
        jobs.start_job({"dataset": "lfw"}, tmp_path)
    assert not any(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="not a training job folder"):
        jobs.read_job(tmp_path)


def test_a_process_that_cannot_start_is_a_failed_job(tmp_path):
    from ccvae.errors import TrainingError

    with pytest.raises(TrainingError, match="could not start the training process"):
        jobs.start_job(tiny(), tmp_path, python=str(tmp_path / "no-python"))
    (job,) = jobs.list_jobs(tmp_path)
    assert job.state == "failed" and "could not start" in job.error
