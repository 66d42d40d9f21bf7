"""Sweeps: the grid, run keys, resuming, failed and killed runs, the local worker
pool and the Ray backend. Runs are tiny (LFW, 100 training faces, 1 epoch)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ccvae.cpu import usable_cores
from ccvae.errors import ConfigError
from ccvae.results_db import ResultsDB
from ccvae.sweep import SweepSpec, expand, protocol_spec, run_key, run_sweep
from tests.conftest import REPO

TINY = dict(dataset="lfw", geometries=("euclidean", "sphere"), latent_dims=(2,), layers=(1,), epochs=1,
            max_examples=100, hidden=16, iwae_k=5, iwae_examples=20, early_stopping=None)


def test_grid_has_one_job_per_configuration_and_seed():
    spec = SweepSpec(dataset="mnist", latent_dims=(2, 3, 5, 10, 50), layers=(1, 2, 3), seeds=2)
    jobs = expand(spec)
    assert len(jobs) == 3 * 5 * 3 * 2
    assert len({j["key"] for j in jobs}) == len(jobs)
    assert [j["key"] for j in expand(spec)] == [j["key"] for j in jobs]  # stable
    first = jobs[0]["train"]
    assert (first["hidden"], first["layers"], first["binarize"], first["likelihood"]) == (128, 1, "none", "bernoulli")


def test_run_key_ignores_where_data_lives_but_not_what_decides_the_result():
    job = expand(SweepSpec(**TINY))[0]
    moved = {**job, "train": {**job["train"], "data_dir": "/elsewhere", "device": "cuda"}}
    assert run_key(moved) == job["key"]
    longer = {**job, "train": {**job["train"], "epochs": 2}}
    assert run_key(longer) != job["key"]
    renamed = {**job, "sweep": "other"}
    assert run_key(renamed) != job["key"]


def test_sphere_posterior_goes_to_the_sphere_runs_and_old_keys_stay():
    plain = expand(SweepSpec(**TINY))
    ablation = expand(SweepSpec(**{**TINY, "sphere_posterior": "vmf_svae"}))
    assert [j["train"]["sphere_posterior"] for j in ablation] == ["vmf", "vmf_svae"]
    assert ablation[0]["key"] == plain[0]["key"] and ablation[1]["key"] != plain[1]["key"]
    # a run recorded before the setting existed had no sphere_posterior in its config:
    # its key is what the same run gets now with the default
    before = {**plain[1], "train": {k: v for k, v in plain[1]["train"].items()
                                    if k not in ("sphere_posterior", "initial_concentration")}}
    assert run_key(before) == plain[1]["key"]
    low = expand(SweepSpec(**{**TINY, "initial_concentration": 1.7}))
    assert [j["train"]["initial_concentration"] for j in low] == [10.0, 1.7]
    assert low[0]["key"] == plain[0]["key"] and low[1]["key"] != plain[1]["key"]


def test_later_settings_record_the_defaults_they_stand_for():
    from ccvae.models.latent import INITIAL_CONCENTRATION
    from ccvae.sweep import LATER_SETTINGS

    assert LATER_SETTINGS == {"sphere_posterior": "vmf", "initial_concentration": INITIAL_CONCENTRATION}
    assert SweepSpec(dataset="mnist").initial_concentration == INITIAL_CONCENTRATION


@pytest.mark.parametrize("kwargs, message", [
    (dict(geometries=("flat",)), "unknown geometry"),
    (dict(latent_dims=()), "latent-dims"),
    (dict(latent_dims=(0,)), "positive"),
    (dict(hidden=(256, 128), layers=(1,)), "fix the layer count"),
    (dict(seeds=0), "seeds"),
    (dict(name="two words"), "one word"),
    (dict(sphere_posterior="bingham"), "unknown sphere posterior"),
    (dict(geometries=("euclidean",), sphere_posterior="vmf_svae"), "applies to sphere runs"),
    (dict(geometries=("hyperbolic",), initial_concentration=2.0), "applies to sphere"),
    (dict(initial_concentration=0.5), "above 1"),
])
def test_bad_specs_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SweepSpec(**{"dataset": "mnist", **kwargs})
    with pytest.raises(ConfigError, match="unknown dataset"):
        SweepSpec(dataset="cifar")


def test_davidson_protocol_settings():
    spec = protocol_spec("davidson", latent_dims=(2, 5))
    (job, *_rest) = expand(spec)
    assert job["train"]["hidden"] == [256, 128] and job["train"]["binarize"] == "dynamic"
    assert job["eval"] == {"iwae_k": 500, "iwae_examples": None, "float64": True, "batch_size": 100,
                           "split_seed": 0}
    # what the authors' code adds to the paper's protocol; recorded as its own sweep
    assert job["train"]["batch_size"] == 100 and job["train"]["kl_warmup_epochs"] == 100
    assert job["train"]["lr"] == 1e-3 and job["train"]["early_stopping"] == 50
    assert spec.name == "davidson-warmup" and len(expand(spec)) == 2 * 3
    with pytest.raises(ConfigError, match="unknown protocol"):
        protocol_spec("nagano-ish")


def test_sweep_records_every_run_then_resumes_without_work(tmp_path):
    db = ResultsDB(tmp_path / "r.sqlite")
    report = run_sweep(SweepSpec(**TINY), db, workers=1, progress=False, log=lambda m: None)
    assert len(report.recorded) == 2 and not report.failed and report.skipped == 0
    rows = db.runs(dataset="lfw")
    assert {r["geometry"] for r in rows} == {"euclidean", "sphere"}
    for r in rows:
        assert r["elbo"] < 0 and r["iwae_k"] == 5 and r["iwae_examples"] == 20
        assert r["elbo_ceiling"] >= r["elbo"]  # no Bernoulli model beats the pixel entropy
        assert r["n_test"] > 20 and r["epochs_run"] == 1 and r["train_seconds"] > 0
        assert r["versions"]["torch"] and r["config"]["train"]["max_examples"] == 100
        assert r["metrics"]["history"]["epoch"] == [1] and len(r["metrics"]["history"]["val_elbo"]) == 1
    t0 = time.perf_counter()
    again = run_sweep(SweepSpec(**TINY), db, workers=1, progress=False, log=lambda m: None)
    assert again.skipped == 2 and again.recorded == [] and time.perf_counter() - t0 < 2


def test_a_failed_run_is_reported_not_recorded_and_redone_next_time(tmp_path, monkeypatch):
    import ccvae.sweep as sweep_mod
    from ccvae.errors import TrainingError

    real = sweep_mod.execute_run

    def flaky(job, threads=None, meta=None, on_epoch=None):
        if job["train"]["geometry"] == "sphere":
            raise TrainingError("the loss became nan")
        return real(job, threads, meta, on_epoch)

    db = ResultsDB(tmp_path / "r.sqlite")
    monkeypatch.setattr(sweep_mod, "execute_run", flaky)
    report = run_sweep(SweepSpec(**TINY), db, workers=1, progress=False, log=lambda m: None)
    assert len(report.recorded) == 1 and list(report.failed.values()) == ["the loss became nan"]
    assert [r["geometry"] for r in db.runs()] == ["euclidean"]
    monkeypatch.setattr(sweep_mod, "execute_run", real)
    report = run_sweep(SweepSpec(**TINY), db, workers=1, progress=False, log=lambda m: None)
    assert report.skipped == 1 and len(report.recorded) == 1
    assert sorted(r["geometry"] for r in db.runs()) == ["euclidean", "sphere"]


def _sweep_cmd(db, *extra):
    return [sys.executable, "-m", "ccvae", "sweep", "--dataset", "lfw", "--latent-dims", "2",
            "--layers", "1", "--hidden", "16", "--max-examples", "100", "--iwae-k", "5",
            "--iwae-examples", "20", "--db", str(db), "--quiet", *extra]


def test_killed_sweep_keeps_finished_runs_and_redoes_the_killed_one(tmp_path):
    db_path = tmp_path / "r.sqlite"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # The second run (sphere) trains long enough to be killed mid-way: 1000 epochs with
    # no early stopping (~8 s here; with the default patience it could stop within the
    # second this test waits, and be recorded).
    long_runs = ("--geometries", "euclidean,sphere", "--epochs", "1000", "--early-stopping", "1000",
                 "--workers", "1")
    proc = subprocess.Popen(_sweep_cmd(db_path, *long_runs),
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        # ~8 s on a quiet machine; minutes when other jobs load it
        deadline = time.time() + 600
        while not (db_path.exists() and len(ResultsDB(db_path)) >= 1):
            if proc.poll() is not None:
                pytest.fail(f"sweep ended early: {proc.stderr.read().decode()[-2000:]}")
            if time.time() > deadline:
                pytest.fail("the first run was not recorded within 600 s")
            time.sleep(0.2)
        time.sleep(1.0)  # now inside the second run
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    db = ResultsDB(db_path)
    assert [r["geometry"] for r in db.runs()] == ["euclidean"]
    out = subprocess.run(_sweep_cmd(db_path, *long_runs, "--dry-run"), cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "1 of 2 runs done" in out.stdout
    assert out.stdout.count("todo") == 1


def _children(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return {int(c) for c in f.read().split()}
    except FileNotFoundError:
        return set()


def _alive(pid: int) -> bool:
    try:  # a zombie (exited, not yet reaped) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads worker processes from /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stopping_the_driver_alone_ends_its_workers(tmp_path, sig):
    """kill -INT / kill PID to the sweep's own process (not its group, as a terminal's
    Ctrl-C would) must end the worker processes too, not leave them training."""
    db_path = tmp_path / "r.sqlite"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = ("--geometries", "euclidean,sphere", "--epochs", "100000", "--early-stopping", "100000",
            "--workers", "2")
    proc = subprocess.Popen(_sweep_cmd(db_path, *runs), cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 300
        workers: set[int] = set()
        while len(workers) < 3:  # the two workers and multiprocessing's resource tracker
            if proc.poll() is not None:
                pytest.fail(f"sweep ended early: {proc.stderr.read().decode()[-2000:]}")
            if time.time() > deadline:
                pytest.fail("the sweep did not start its workers within 300 s")
            workers = _children(proc.pid)
            time.sleep(0.2)
        time.sleep(3.0)  # the workers are importing or training
        os.kill(proc.pid, sig)
        assert proc.wait(60) == 130, proc.stderr.read().decode()[-2000:]
        deadline = time.time() + 20
        while any(_alive(p) for p in workers) and time.time() < deadline:
            time.sleep(0.2)
        assert not [p for p in workers if _alive(p)], "worker processes outlived the sweep"
    finally:  # the sweep's session: the driver and any worker it left behind
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(30)
    assert "interrupted" in proc.stdout.read().decode()
    assert len(ResultsDB(db_path)) == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_every_epoch_of_every_run_is_reported_to_the_driver(tmp_path, workers):
    """Long runs show their epochs (from worker processes too), not just 0/1 runs."""
    seen = []
    spec = SweepSpec(**{**TINY, "epochs": 2})
    report = run_sweep(spec, ResultsDB(tmp_path / "r.sqlite"), workers=workers, progress=False,
                       log=lambda m: None, on_epoch=lambda key, p: seen.append((key, p)))
    assert len(report.recorded) == 2
    assert sorted((key, p["epoch"], p["epochs"]) for key, p in seen) == sorted(
        (key, e, 2) for key in report.recorded for e in (1, 2))
    assert all(p["val_elbo"] < 0 for _, p in seen)


def test_the_progress_bar_names_the_runs_under_way():
    from ccvae.sweep import _active_line

    jobs = {j["key"]: j for j in expand(SweepSpec(**TINY))}
    k1, k2 = list(jobs)
    line = _active_line({k1: {"epoch": 3, "epochs": 10, "best": -95.123},
                         k2: {"epoch": 1, "epochs": 10, "best": -300.0}}, jobs)
    assert line == ("euclidean d=2 L=1 epoch 3/10 (best val -95.12) | "
                    "sphere d=2 L=1 epoch 1/10 (best val -300.00)")


def test_local_worker_processes_run_in_parallel(tmp_path):
    db = ResultsDB(tmp_path / "r.sqlite")
    report = run_sweep(SweepSpec(**TINY), db, workers=2, progress=False, log=lambda m: None)
    assert len(report.recorded) == 2 and not report.failed
    cores = usable_cores()
    expected = f"cpu x{max(1, cores // 2)} threads"  # cores shared by the 2 runs at once
    assert {r["device"] for r in db.runs()} == {expected}


def test_fewer_runs_than_workers_get_the_idle_cores(tmp_path):
    db = ResultsDB(tmp_path / "r.sqlite")
    spec = SweepSpec(**{**TINY, "geometries": ("euclidean",)})
    report = run_sweep(spec, db, workers=2, progress=False, log=lambda m: None)
    assert len(report.recorded) == 1
    assert [r["device"] for r in db.runs()] == [f"cpu x{usable_cores()} threads"]


def test_threads_per_run_can_be_set(tmp_path):
    db = ResultsDB(tmp_path / "r.sqlite")
    spec = SweepSpec(**{**TINY, "geometries": ("euclidean",)})
    threads = usable_cores() + 1  # never what the default gives a lone run
    report = run_sweep(spec, db, workers=2, threads=threads, progress=False, log=lambda m: None)
    assert len(report.recorded) == 1
    assert [r["device"] for r in db.runs()] == [f"cpu x{threads} threads"]
    with pytest.raises(ConfigError, match="threads must be >= 1"):
        run_sweep(spec, ResultsDB(tmp_path / "s.sqlite"), threads=0, progress=False)


def test_ray_backend_runs_a_two_configuration_sweep(tmp_path):
    pytest.importorskip("ray")
    db = ResultsDB(tmp_path / "r.sqlite")
    seen = []
    report = run_sweep(SweepSpec(**TINY), db, workers=2, backend="ray", progress=False, log=lambda m: None,
                       on_epoch=lambda key, p: seen.append((key, p["epoch"])))
    assert len(report.recorded) == 2 and not report.failed, report.failed
    assert sorted(seen) == sorted((key, 1) for key in report.recorded)  # epochs come back too
    assert sorted(r["geometry"] for r in db.runs()) == ["euclidean", "sphere"]
    again = run_sweep(SweepSpec(**TINY), db, workers=2, backend="ray", progress=False, log=lambda m: None)
    assert again.skipped == 2


def test_unknown_backend_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown backend"):
        run_sweep(SweepSpec(**TINY), ResultsDB(tmp_path / "r.sqlite"), backend="slurm", progress=False)


@pytest.mark.parametrize("args, code, fragment", [
    (["--dataset", "cifar", "--latent-dims", "2"], 1, "unknown dataset 'cifar'"),
    (["--dataset", "mnist"], 1, "--latent-dims is required"),
    (["--latent-dims", "2,0"], 2, "positive integer"),
    (["--latent-dims", "2", "--geometries", "flat"], 2, "unknown geometry 'flat'"),
    (["--latent-dims", "2", "--backend", "slurm"], 2, "invalid choice"),
    (["--latent-dims", "2", "--threads", "0"], 2, "positive integer"),
    (["--protocol", "davidson", "--dataset", "lfw"], 1, "defined on mnist"),
    (["--latent-dims", "2", "--hidden", "256,128", "--layers", "1"], 1, "fix the layer count"),
    (["--latent-dims", "2", "--sphere-posterior", "bingham"], 2, "invalid choice"),
    (["--latent-dims", "2", "--geometries", "hyperbolic", "--sphere-posterior", "power_spherical"], 1,
     "applies to sphere runs"),
])
def test_sweep_command_bad_input_is_one_line(tmp_path, capsys, args, code, fragment):
    from ccvae.cli import main

    db = tmp_path / "r.sqlite"
    if code == 2:
        with pytest.raises(SystemExit) as exc:
            main(["sweep", *args, "--db", str(db)])
        assert exc.value.code == 2
    else:
        assert main(["sweep", *args, "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


def test_dry_run_lists_the_grid(tmp_path, capsys):
    from ccvae.cli import main

    assert main(["sweep", "--protocol", "davidson", "--latent-dims", "2,5", "--dry-run",
                 "--db", str(tmp_path / "r.sqlite")]) == 0
    out = capsys.readouterr().out
    assert out.count("todo") == 6 and "0 of 6 runs done" in out


def test_split_head_takes_the_first_rows_and_rejects_nonsense():
    import torch

    from ccvae.data.base import Split

    s = Split(torch.arange(10.0).reshape(5, 2), torch.arange(5), torch.arange(5) + 100,
              torch.ones(5, 3, dtype=torch.bool))
    h = s.head(2)
    assert len(h) == 2 and h.x.tolist() == [[0.0, 1.0], [2.0, 3.0]] and h.index.tolist() == [100, 101]
    assert h.y.tolist() == [0, 1] and h.mask.shape == (2, 3)
    assert s.head(None) is s and s.head(5) is s and s.head(9) is s
    with pytest.raises(ValueError, match="n >= 1"):
        s.head(0)
