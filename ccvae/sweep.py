"""Sweeps: train and evaluate every configuration of a grid, in parallel, resumably,
into the results database (:mod:`ccvae.results_db`).

    spec = SweepSpec(dataset="mnist", geometries=("euclidean", "sphere"), latent_dims=(2, 10),
                     layers=(1, 2), epochs=100)
    run_sweep(spec, ResultsDB("results/results.sqlite"), workers=2)

How it stays correct:

- Every run has a ``run_key``: a hash of everything that decides its result (the
  full training config, the seed, the evaluation settings and the sweep name), never
  of where the data lives or which device runs it. A run whose key is already in
  the database is skipped, so rerunning the same command resumes a sweep.
- A worker returns its row only when training *and* evaluation have finished; the
  driver alone writes rows, one transaction each. A killed or failed run therefore
  leaves nothing behind and is redone from scratch next time.
- Local workers are processes (``spawn``), one per usable core by default (the
  process's CPU affinity: ``taskset -c 1 ccvae sweep ...`` uses one), each with
  ``cores // workers`` torch threads: PyTorch's intra-op threads fight over cores
  otherwise (on a 2-core machine two 2-thread workers run slower than one).
  ``threads`` (``--threads``) sets the count instead: on a machine busy with other
  work a lone run's second thread waits on a busy core (measured here: an epoch over
  80 s with 2 threads, 3.5 s with 1).
- ``backend="ray"`` sends the same function to a Ray cluster (``ray.init(address)``);
  Ray is an optional extra (``requirements-cluster.txt``). Cluster nodes need ccvae
  and the dataset files themselves; rows still come back to the driver's database.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Callable

from .cpu import usable_cores
from .errors import CCVAEError, ConfigError
from .results_db import METRIC_COLUMNS, ResultsDB

__all__ = ["SweepSpec", "PROTOCOLS", "protocol_spec", "expand", "run_key", "execute_run",
           "run_sweep", "SweepReport", "git_commit"]

REPO_ROOT = Path(__file__).resolve().parents[1]

#: Test-batch size for the post's "spread across test batches" per dataset. MNIST's
#: test set has 10,000 images (100 batches of 100); LFW's stratified test split only
#: 190 faces, so batches of 32 (6 batches) give a spread at all.
EVAL_BATCH_SIZE = {"mnist": 100, "lfw": 32}


@dataclass(frozen=True)
class SweepSpec:
    """A grid of runs: geometries x latent dims x hidden layers x seeds, and the
    settings they share. ``hidden`` is the width of every hidden layer (the post used
    128), or an explicit list of widths (then ``layers`` must hold its length)."""

    dataset: str
    geometries: tuple[str, ...] = ("euclidean", "sphere", "hyperbolic")
    latent_dims: tuple[int, ...] = (2,)
    layers: tuple[int, ...] = (1,)
    seeds: int = 1
    name: str = "post"
    hidden: int | tuple[int, ...] = 128
    epochs: int = 100
    early_stopping: int | None = 10
    kl_warmup_epochs: int = 0
    batch_size: int = 128
    lr: float = 1e-3
    likelihood: str | None = None
    binarize: str = "none"
    max_examples: int | None = None
    sphere_posterior: str = "vmf"  # used by the sphere runs; the others keep their own
    initial_concentration: float = 10.0  # the sphere runs' (models.latent.INITIAL_CONCENTRATION)
    iwae_k: int = 500
    iwae_examples: int | None = None
    eval_float64: bool = False
    eval_batch_size: int | None = None
    data_dir: str | None = None
    dataset_options: dict = field(default_factory=dict)

    def __post_init__(self):
        from .data.registry import DATASETS
        from .models import GEOMETRIES
        from .models.latent import INITIAL_CONCENTRATION, check_sphere_settings

        if self.dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(sorted(DATASETS))}")
        for g in self.geometries:
            if g not in GEOMETRIES:
                raise ConfigError(f"unknown geometry {g!r}; choose from {', '.join(GEOMETRIES)}")
        if self.sphere_posterior != "vmf" and "sphere" not in self.geometries:
            raise ConfigError(f"--sphere-posterior {self.sphere_posterior} applies to sphere runs, "
                              "and this sweep has none")
        if self.initial_concentration != INITIAL_CONCENTRATION and "sphere" not in self.geometries:
            raise ConfigError(f"--initial-concentration {self.initial_concentration:g} applies to sphere "
                              "runs, and this sweep has none")
        check_sphere_settings("sphere", self.sphere_posterior, self.initial_concentration)
        for what, values in (("latent-dims", self.latent_dims), ("layers", self.layers)):
            if not values:
                raise ConfigError(f"--{what} needs at least one value")
        if any(int(d) < 1 for d in self.latent_dims):
            raise ConfigError(f"latent dims must be positive, got {list(self.latent_dims)}")
        if any(int(n) < 0 for n in self.layers):
            raise ConfigError(f"layers must be >= 0, got {list(self.layers)}")
        if isinstance(self.hidden, tuple) and set(self.layers) != {len(self.hidden)}:
            raise ConfigError(f"explicit widths {list(self.hidden)} fix the layer count at "
                              f"{len(self.hidden)}; --layers says {list(self.layers)}")
        if self.seeds < 1:
            raise ConfigError(f"seeds must be >= 1, got {self.seeds}")
        if self.iwae_k < 0:
            raise ConfigError(f"iwae-k must be >= 0, got {self.iwae_k}")
        if not self.name or any(c.isspace() for c in self.name):
            raise ConfigError(f"a sweep name is one word, got {self.name!r}")

    @property
    def test_batch_size(self) -> int:
        return self.eval_batch_size or EVAL_BATCH_SIZE.get(self.dataset, 100)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["geometries"] = list(self.geometries)
        d["latent_dims"] = list(self.latent_dims)
        d["layers"] = list(self.layers)
        return d


#: Named protocols: the settings a published table was measured with.
PROTOCOLS: dict[str, dict[str, Any]] = {
    # Davidson et al. 2018, section 5.2 (MNIST): dynamically binarised MNIST, encoder
    # MLP 784-256-128 and the mirrored decoder, Adam 1e-3, early stopping on validation,
    # log-likelihood by importance sampling with 500 samples; evaluated in float64 here.
    # The paper does not state the batch size or a KL warm-up; the authors' training code
    # (trdavidson/increasing-expressivity-s-vae, same 256,128 MLP, lr 1e-3 and 50-epoch
    # look-ahead) defaults to batch 100 and a linear warm-up over 100 epochs. With them
    # the Euclidean VAE at d = 20 reached -88.68 (published -88.90; -91.44 without). The
    # first revision, without them (batch 128), is sweep "davidson" in the results.
    "davidson": dict(dataset="mnist", name="davidson-warmup", hidden=(256, 128), layers=(2,),
                     binarize="dynamic", lr=1e-3, batch_size=100, kl_warmup_epochs=100,
                     iwae_k=500, eval_float64=True, early_stopping=50, epochs=1000,
                     latent_dims=(2, 5, 10, 20, 40)),
}


def protocol_spec(protocol: str, **overrides: Any) -> SweepSpec:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    settings = {**PROTOCOLS[protocol], **{k: v for k, v in overrides.items() if v is not None}}
    return SweepSpec(**settings)


def expand(spec: SweepSpec) -> list[dict[str, Any]]:
    """One job per (latent dim, layers, geometry, seed), as plain dicts (picklable,
    JSON-able): ``{"key", "sweep", "train": TrainConfig dict, "eval": {...}}``."""
    from .models.latent import INITIAL_CONCENTRATION
    from .training import TrainConfig

    jobs = []
    for d in spec.latent_dims:
        for n_layers in spec.layers:
            for geometry in spec.geometries:
                for seed in range(spec.seeds):
                    hidden = list(spec.hidden) if isinstance(spec.hidden, tuple) else spec.hidden
                    cfg = TrainConfig(
                        dataset=spec.dataset, geometry=geometry, latent_dim=int(d), hidden=hidden,
                        layers=int(n_layers), likelihood=spec.likelihood, epochs=spec.epochs,
                        batch_size=spec.batch_size, lr=spec.lr, seed=seed, device="cpu",
                        kl_warmup_epochs=spec.kl_warmup_epochs, early_stopping=spec.early_stopping,
                        max_examples=spec.max_examples, binarize=spec.binarize,
                        sphere_posterior=spec.sphere_posterior if geometry == "sphere" else "vmf",
                        initial_concentration=(spec.initial_concentration if geometry == "sphere"
                                               else INITIAL_CONCENTRATION),
                        data_dir=spec.data_dir, dataset_options=dict(spec.dataset_options))
                    evaluation = {"iwae_k": spec.iwae_k, "iwae_examples": spec.iwae_examples,
                                  "float64": spec.eval_float64, "batch_size": spec.test_batch_size,
                                  "split_seed": 0}
                    job = {"sweep": spec.name, "train": cfg.to_dict(), "eval": evaluation}
                    job["key"] = run_key(job)
                    jobs.append(job)
    return jobs


#: Training settings added after runs were first recorded, with the value that every
#: earlier run had. At that value they are left out of the key, so that the runs
#: recorded before the setting existed keep their keys (and are not redone).
LATER_SETTINGS = {"sphere_posterior": "vmf", "initial_concentration": 10.0}


def run_key(job: dict[str, Any]) -> str:
    """A stable hash of what decides a run's result. Where the data lives and which
    device runs it do not change the result, so they are left out."""
    train = {k: v for k, v in job["train"].items() if k not in ("data_dir", "device")
             and not (k in LATER_SETTINGS and v == LATER_SETTINGS[k])}
    blob = json.dumps({"sweep": job["sweep"], "train": train, "eval": job["eval"]},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def git_commit(root: Path = REPO_ROOT) -> str | None:
    """The commit the code runs from, with "+dirty" when tracked files differ from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


# ---------------------------------------------------------------------- one run
_BUNDLES: dict[tuple, Any] = {}


def _bundle(train: dict[str, Any], split_seed: int):
    """The dataset, loaded once per worker process and reused by its later runs."""
    from .data.registry import load_dataset

    key = (train["dataset"], train["data_dir"], split_seed, json.dumps(train["dataset_options"], sort_keys=True))
    if key not in _BUNDLES:
        _BUNDLES.clear()  # one dataset per worker at a time: MNIST alone is ~200 MB as float32
        _BUNDLES[key] = load_dataset(train["dataset"], train["data_dir"], seed=split_seed,
                                     **train["dataset_options"])
    return _BUNDLES[key]


def execute_run(job: dict[str, Any], threads: int | None = None,
                meta: dict[str, Any] | None = None,
                on_epoch: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train and evaluate one job; return its results row (nothing is written here).

    ``on_epoch(run_key, progress)`` is called after every epoch with
    ``{"epoch", "epochs", "val_elbo"}``; in a local worker process it defaults to
    sending that to the sweep's driver (``_init_worker``).
    """
    import torch

    from .checkpoints import software_versions
    from .training import TrainConfig, train
    from .workflows import data_provenance, evaluate_bundle

    if threads:
        torch.set_num_threads(int(threads))
    started = datetime.now(timezone.utc)
    cfg = TrainConfig.from_dict(job["train"])
    ev = job["eval"]
    bundle = _bundle(job["train"], ev["split_seed"])
    report = on_epoch or _WORKER_REPORT

    def epoch_done(record: dict[str, Any]) -> None:
        report(job["key"], {"epoch": record["epoch"], "epochs": cfg.epochs,
                            "val_elbo": record["val_elbo"]})

    result = train(cfg, bundle, on_epoch=epoch_done if report is not None else None)
    t0 = time.perf_counter()
    metrics = evaluate_bundle(result.model, bundle, cfg, iwae_samples=ev["iwae_k"],
                              iwae_examples=ev["iwae_examples"], batch_size=ev["batch_size"],
                              float64=ev["float64"])
    eval_seconds = time.perf_counter() - t0
    meta = meta or {}
    model_cfg = result.model.config
    return {
        "run_key": job["key"], "sweep": job["sweep"], "dataset": cfg.dataset,
        "geometry": cfg.geometry, "latent_dim": cfg.latent_dim, "layers": model_cfg.layers,
        "hidden": model_cfg.widths, "likelihood": cfg.likelihood, "binarize": cfg.binarize,
        "seed": cfg.seed,
        "config_json": {"train": job["train"], "eval": ev, "data": data_provenance(bundle),
                        "command": meta.get("command")},
        "versions_json": {**software_versions(), "platform": platform.platform()},
        "git_commit": meta.get("git_commit"), "host": socket.gethostname(),
        "device": f"cpu x{torch.get_num_threads()} threads",
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "train_seconds": round(result.seconds, 3), "eval_seconds": round(eval_seconds, 3),
        "epochs_run": len(result.history), "best_epoch": result.best_epoch, "stopped": result.stopped,
        **{k: metrics.get(k) for k in METRIC_COLUMNS if k != "n_test"},
        "n_test": metrics.get("n_examples"),
        "metrics_json": {"test": metrics, "history": learning_curve(result.history)},
    }


def learning_curve(history: list[dict[str, Any]]) -> dict[str, list]:
    """The per-epoch records as columns ({"epoch": [1, 2, ...], "val_elbo": [...]}),
    floats rounded to 4 decimals (far below the epoch-to-epoch noise): a 300-epoch
    curve takes ~10 kB instead of ~50 kB, so the database stays small enough to commit."""
    keys = list(history[0]) if history else []
    return {k: [round(r[k], 4) if isinstance(r[k], float) else r[k] for r in history] for k in keys}


def _failure(exc: BaseException) -> str:
    """One line for a failed run: our own errors say what to fix; others name their type."""
    return str(exc) if isinstance(exc, CCVAEError) else f"{type(exc).__name__}: {exc}"


def _describe(job: dict[str, Any]) -> str:
    t = job["train"]
    return f"{t['dataset']} {t['geometry']} d={t['latent_dim']} L={t['layers']} seed={t['seed']}"


# ---------------------------------------------------------------------- the driver
@dataclass
class SweepReport:
    total: int
    skipped: int
    recorded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    seconds: float = 0.0


def _put_progress(progress_queue, key: str, progress: dict[str, Any]) -> None:
    """Report one epoch to the driver. Both queues used here (a multiprocessing
    SimpleQueue, a Ray queue) put synchronously: in the queue before the run returns."""
    progress_queue.put((key, progress))


#: In a local worker process: reports epochs to the driver (set by ``_init_worker``;
#: such a queue can only reach a worker when the process starts, not with each job).
_WORKER_REPORT: Callable[[str, dict[str, Any]], None] | None = None


def _init_worker(threads: int, progress_queue=None) -> None:
    import torch

    global _WORKER_REPORT
    _WORKER_REPORT = None if progress_queue is None else partial(_put_progress, progress_queue)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel queued runs and end the workers now (their runs are lost, never half-recorded).

    The worker processes are listed before ``shutdown``, which forgets them: terminated
    after it, none would be, and the driver would wait at exit for the runs under way
    to finish (and then drop their results)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=10)


def _stop_signals(stop: threading.Event | None) -> Callable[[], None]:
    """Make SIGINT and SIGTERM to the driver (Ctrl-C, ``kill PID``, a batch scheduler)
    stop the sweep: workers ended, finished runs kept. Returns the function that
    restores the previous handlers.

    With ``stop`` (a worker pool runs the jobs) both signals only set it, and the
    driver's loop, which wakes every half second, ends the pool. An exception raised
    wherever the signal lands could leave one of concurrent.futures' internal locks
    held, and the interpreter would then wait for the pool's manager thread forever at
    exit. Without ``stop`` (runs in this process) SIGTERM raises KeyboardInterrupt, as
    SIGINT already does. Only in the main thread, where Python delivers signals."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame):
        if stop is None:
            raise KeyboardInterrupt
        stop.set()

    signals = (signal.SIGTERM,) if stop is None else (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, interrupt) for sig in signals}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return restore


def _drain(progress_queue, on_epoch) -> None:
    while not progress_queue.empty():
        on_epoch(*progress_queue.get())


def _local_backend(jobs, workers, threads, meta, on_result, on_epoch,
                   stop: threading.Event | None = None) -> bool:
    """Run ``jobs`` on worker processes. Returns False when a worker died (killed, or
    out of memory): the sweep then stops, as the pool cannot go on without it; and
    when ``stop`` is set (a stop signal, see ``_stop_signals``).
    Workers report each epoch on a queue, read here every half second and before each
    finished run is handled. It is a SimpleQueue: a put is written to the pipe before
    it returns (no feeder thread), so a run's epochs are all readable by the time its
    result arrives."""
    import multiprocessing as mp
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")  # no forked torch thread pools or open SQLite handles
    progress_queue = ctx.SimpleQueue()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(threads, progress_queue))
    pending = {pool.submit(execute_run, job, threads, meta): job for job in jobs}
    try:
        while pending:
            if stop is not None and stop.is_set():
                return False
            done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            _drain(progress_queue, on_epoch)
            for fut in done:
                job = pending.pop(fut)
                try:
                    row = fut.result()
                except BrokenProcessPool:
                    on_result(job, None, "a worker process died (killed, or out of memory)")
                    return False
                except Exception as exc:  # noqa: BLE001 - one bad run must not stop the sweep
                    on_result(job, None, _failure(exc))
                else:
                    on_result(job, row, None)
    finally:
        _stop_pool(pool)
        progress_queue.close()
    return True


def _ray_backend(jobs, address, threads, meta, on_result, on_epoch):
    """Run ``jobs`` as Ray tasks; epochs come back on a Ray queue (an actor), read every
    half second and before each finished run is handled."""
    try:
        import ray
        from ray.util.queue import Queue
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install -r requirements-cluster.txt") from None

    started_here = not ray.is_initialized()
    pending: dict = {}
    progress_queue = None
    if started_here:
        kwargs = {"address": address} if address else {"num_cpus": usable_cores()}
        ray.init(**kwargs, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": str(threads)}})

    def drain():
        n = progress_queue.qsize()
        if n:
            for key, progress in progress_queue.get_nowait_batch(n):
                on_epoch(key, progress)

    try:
        progress_queue = Queue(actor_options={"num_cpus": 0})
        report = partial(_put_progress, progress_queue)
        remote = ray.remote(num_cpus=threads, max_retries=0)(execute_run)
        pending = {remote.remote(job, threads, meta, report): job for job in jobs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            drain()
            for ref in done:
                job = pending.pop(ref)
                try:
                    on_result(job, ray.get(ref), None)
                except Exception as exc:  # noqa: BLE001 - a task error names the run, the sweep goes on
                    cause = getattr(exc, "cause", None) or exc
                    on_result(job, None, f"{type(cause).__name__}: {cause}")
    except BaseException:
        for ref in list(pending):
            ray.cancel(ref, force=True)
        raise
    finally:
        if progress_queue is not None and not started_here:
            progress_queue.shutdown()
        if started_here:
            ray.shutdown()


def run_sweep(spec: SweepSpec, db: ResultsDB, *, workers: int | None = None, backend: str = "local",
              address: str | None = None, threads: int | None = None, progress: bool = True,
              command: str | None = None,
              log: Callable[[str], None] | None = None,
              on_epoch: Callable[[str, dict[str, Any]], None] | None = None) -> SweepReport:
    """Run every job of ``spec`` not yet in ``db``; record each as it finishes.

    ``threads``: torch threads per run (default: the usable cores divided among the
    runs that start together). With ``progress`` a bar counts the runs and shows, for
    each run under way, its epoch and best validation ELBO so far, from worker
    processes and Ray tasks alike.
    ``on_epoch(run_key, {"epoch", "epochs", "val_elbo"})`` is also called after every
    epoch of every run.
    """
    if backend not in ("local", "ray"):
        raise ConfigError(f"unknown backend {backend!r}; choose local or ray")
    cores = usable_cores()
    workers = workers or cores
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    jobs = expand(spec)
    done_keys = db.done_keys()
    todo = [j for j in jobs if j["key"] not in done_keys]
    if threads is None:
        # The cores are shared among the runs that can go at once: fewer runs than
        # workers get more threads each instead of leaving cores idle.
        threads = max(1, cores // max(1, min(workers, len(todo))))
    report = SweepReport(total=len(jobs), skipped=len(jobs) - len(todo))
    meta = {"git_commit": git_commit(), "command": command}
    say = log or (lambda msg: print(msg, file=sys.stderr))
    if not todo:
        return report

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(jobs), initial=report.skipped, unit="run", dynamic_ncols=True,
                   desc=f"sweep {spec.name} ({spec.dataset})")
        say = bar.write if log is None else log

    by_key = {job["key"]: job for job in todo}
    active: dict[str, dict[str, Any]] = {}  # run key -> {"epoch", "epochs", "best"}

    def epoch_done(key: str, prog: dict[str, Any]) -> None:
        state = active.setdefault(key, {"best": -math.inf})
        state.update(epoch=prog["epoch"], epochs=prog["epochs"],
                     best=max(state["best"], prog["val_elbo"]))
        if bar is not None:
            bar.set_postfix_str(_active_line(active, by_key), refresh=True)
        if on_epoch is not None:
            on_epoch(key, prog)

    def on_result(job, row, error):
        active.pop(job["key"], None)
        if bar is not None:  # before say(): bar.write redraws the bar with its postfix
            bar.set_postfix_str(_active_line(active, by_key), refresh=False)
        if error is None:
            db.record(row)
            report.recorded.append(job["key"])
            iwae = f", IWAE {row['iwae']:.2f}" if row.get("iwae") is not None else ""
            say(f"done   {_describe(job)}: ELBO {row['elbo']:.2f}{iwae} "
                f"({row['epochs_run']} epochs, {row['train_seconds'] + row['eval_seconds']:.0f} s)")
        else:
            report.failed[job["key"]] = error
            say(f"FAILED {_describe(job)}: {error}")
        if bar is not None:
            bar.update(1)

    t0 = time.perf_counter()
    pooled = backend == "local" and workers != 1
    stop = threading.Event() if pooled else None
    restore_signals = _stop_signals(stop)
    try:
        if backend == "local":
            if workers == 1:
                _init_worker(threads)
                for job in todo:
                    try:
                        row = execute_run(job, threads, meta, on_epoch=epoch_done)
                    except Exception as exc:  # noqa: BLE001 - as on worker processes
                        on_result(job, None, _failure(exc))
                        continue
                    on_result(job, row, None)
            elif not _local_backend(todo, min(workers, len(todo)), threads, meta, on_result,
                                    epoch_done, stop):
                report.interrupted = True
        else:
            _ray_backend(todo, address, threads, meta, on_result, epoch_done)
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        restore_signals()
        report.seconds = time.perf_counter() - t0
        if bar is not None:
            bar.close()
    return report


def _active_line(active: dict[str, dict[str, Any]], jobs: dict[str, dict[str, Any]]) -> str:
    """'sphere d=10 L=2 epoch 153/1000 (best val -95.12) | ...' for the runs under way."""
    parts = []
    for key, state in active.items():
        t = jobs[key]["train"]
        parts.append(f"{t['geometry']} d={t['latent_dim']} L={t['layers']} "
                     f"epoch {state['epoch']}/{state['epochs']} (best val {state['best']:.2f})")
    return " | ".join(parts)


def summarise(report: SweepReport) -> str:
    parts = [f"{len(report.recorded)} run(s) recorded", f"{report.skipped} already done"]
    if report.failed:
        parts.append(f"{len(report.failed)} failed")
    text = ", ".join(parts) + f" in {report.seconds / 60:.1f} min"
    if report.interrupted:
        text += "; interrupted: run the same command again to resume"
    return text

