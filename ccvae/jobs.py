"""Background training jobs for the dashboard: one subprocess per run, state on disk.

A job is a folder ``<runs root>/<job id>/``::

    job.json        the settings, the command line, the process id, start time
    progress.jsonl  the CLI's progress records (events start / batch / epoch / done)
    log.txt         the process's stdout and stderr
    stop            created to ask for a clean stop (the CLI's --stop-file)
    exit.json       written by the runner when the process ends: its return code
    <job id>/       the checkpoint (the best model so far while it runs)

The process is ``python -m ccvae.jobs run <job folder>``, which runs the ordinary
``ccvae train`` command line in-process and then records its exit status. Because
everything lives in files, a page can be left and reopened, or the dashboard
restarted, and the job is still found and followed (``list_jobs``/``read_job``).

Cancelling first creates the stop file: the training loop stops after the current
batch, keeps the best model and still writes a complete checkpoint. If the process
has not ended ``grace_s`` seconds later, it is terminated (SIGTERM to its process
group, then SIGKILL).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .errors import CCVAEError, ConfigError, DataError, TrainingError
from .training import TrainConfig

JOB_FILE = "job.json"
PROGRESS_FILE = "progress.jsonl"
LOG_FILE = "log.txt"
STOP_FILE = "stop"
EXIT_FILE = "exit.json"

#: Seconds between the stop request and SIGTERM, and between SIGTERM and SIGKILL.
DEFAULT_GRACE_S = 20.0
KILL_AFTER_S = 5.0

#: States a job can be in. "starting": launched, no progress yet.
ACTIVE_STATES = ("starting", "running", "cancelling")
FINAL_STATES = ("done", "cancelled", "failed")

# Popen objects of the jobs this process started, so that they are reaped (a
# finished child that is never waited for stays a zombie and looks alive).
_CHILDREN: dict[int, subprocess.Popen] = {}


def default_root() -> Path:
    from .dashboard.catalog import runs_root
    return runs_root()


@dataclass
class JobStatus:
    """What a job folder says about the run, read fresh from disk."""

    job_id: str
    path: Path
    state: str
    config: dict[str, Any]
    created: float
    pid: int | None = None
    epoch: int | None = None
    n_epochs: int | None = None
    batch: int | None = None
    n_batches: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    test: dict[str, Any] | None = None
    stopped: str | None = None
    returncode: int | None = None
    error: str | None = None
    checkpoint: Path | None = None
    data: str | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def fraction(self) -> float:
        """Share of the batches done, 0..1 (1 once the job has ended)."""
        if not self.active:
            return 1.0
        if not self.n_epochs:
            return 0.0
        done_epochs = (self.epoch or 1) - 1
        within = (self.batch or 0) / self.n_batches if self.n_batches else 0.0
        return max(0.0, min(1.0, (done_epochs + within) / self.n_epochs))

    @property
    def label(self) -> str:
        c = self.config
        return f"{c.get('dataset')} · {c.get('geometry')} d={c.get('latent_dim')} · {self.job_id}"


# -- starting --------------------------------------------------------------------------

def cli_arguments(cfg: TrainConfig, out: Path, progress: Path, stop: Path,
                  iwae_samples: int = 100) -> list[str]:
    """The ``ccvae train`` arguments for ``cfg`` that write to the job's files."""
    args = ["train", "--dataset", cfg.dataset, "--geometry", cfg.geometry,
            "--latent-dim", str(cfg.latent_dim), "--hidden", str(cfg.hidden),
            "--layers", str(cfg.layers), "--likelihood", str(cfg.likelihood),
            "--activation", cfg.activation, "--epochs", str(cfg.epochs),
            "--batch-size", str(cfg.batch_size), "--lr", repr(float(cfg.lr)),
            "--seed", str(cfg.seed), "--device", cfg.device,
            "--kl-warmup-epochs", str(cfg.kl_warmup_epochs), "--binarize", cfg.binarize,
            "--sphere-posterior", cfg.sphere_posterior,
            "--initial-concentration", repr(float(cfg.initial_concentration)),
            "--iwae-samples", str(int(iwae_samples)),
            "--out", str(out), "--progress-file", str(progress), "--stop-file", str(stop), "--quiet"]
    if cfg.early_stopping:
        args += ["--early-stopping", str(cfg.early_stopping)]
    if cfg.max_examples:
        args += ["--max-examples", str(cfg.max_examples)]
    if cfg.data_dir:
        args += ["--data-dir", str(cfg.data_dir)]
    for key, value in sorted(cfg.dataset_options.items()):
        args += ["--data-option", f"{key}={json.dumps(value)}"]
    return args


def check_data_available(dataset: str) -> None:
    """Raise DataError when the dataset is unknown or has no usable source here."""
    from .data.registry import DATASETS, available_sources

    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; known datasets: {', '.join(sorted(DATASETS))}")
    info = available_sources().get(dataset)
    if info is not None and info.kind == "unavailable":
        raise DataError(f"no data for {dataset}: {info.description}")


def _write_json(path: Path, obj: Any) -> None:
    from .checkpoints import write_json_atomic
    write_json_atomic(path, obj)


def start_job(cfg: TrainConfig, root: str | Path | None = None, *, iwae_samples: int = 100,
              max_active: int | None = None, python: str | None = None,
              env: dict[str, str] | None = None, check_data: bool = True) -> JobStatus:
    """Start training ``cfg`` in a background process; returns its first status.

    Raises ConfigError for bad settings or when ``max_active`` jobs already run, and
    DataError when the dataset has no source here. Nothing is started then.
    """
    if not isinstance(cfg, TrainConfig):
        raise ConfigError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if iwae_samples < 0:
        raise ConfigError(f"iwae_samples must be >= 0, got {iwae_samples}")
    root = Path(root) if root is not None else default_root()
    if max_active is not None:
        running = [j for j in list_jobs(root) if j.active]
        if len(running) >= max_active:
            raise ConfigError(
                f"{len(running)} training run(s) already in progress ({running[0].job_id}); "
                "wait for it to finish or cancel it first")
    if check_data:
        check_data_available(cfg.dataset)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    job_id = f"{stamp}-{cfg.dataset}-{cfg.geometry}-d{cfg.latent_dim}-{uuid.uuid4().hex[:4]}"
    job_dir = root / job_id
    job_dir.mkdir(parents=True, exist_ok=False)
    job_dir = job_dir.resolve()
    argv = cli_arguments(cfg, job_dir / job_id, job_dir / PROGRESS_FILE, job_dir / STOP_FILE,
                         iwae_samples=iwae_samples)
    job = {"job_id": job_id, "created": time.time(), "config": cfg.to_dict(), "argv": argv,
           "command": "ccvae " + " ".join(argv), "checkpoint": str(job_dir / job_id), "pid": None}
    _write_json(job_dir / JOB_FILE, job)
    from .data.paths import repo_root
    log = open(job_dir / LOG_FILE, "ab")
    try:
        proc = subprocess.Popen(
            [python or sys.executable, "-m", "ccvae.jobs", "run", str(job_dir)],
            cwd=str(repo_root()), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ, **(env or {})})
    except OSError as e:  # e.g. the interpreter is gone: record it, so the job reads as failed
        _write_json(job_dir / EXIT_FILE, {"returncode": 1, "time": time.time(),
                                          "error": f"could not start the training process: {e}"})
        raise TrainingError(f"could not start the training process: {e}") from None
    finally:
        log.close()
    _CHILDREN[proc.pid] = proc
    job["pid"] = proc.pid
    _write_json(job_dir / JOB_FILE, job)
    return read_job(job_dir)


# -- reading -----------------------------------------------------------------------------

def _read_json(path: Path) -> dict | None:
    try:
        with open(path) as f:
            obj = json.load(f)
        return obj if isinstance(obj, dict) else None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def read_progress(path: Path) -> list[dict[str, Any]]:
    """The progress records; a half-written last line is skipped."""
    records = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict):
                    records.append(rec)
    except OSError:
        pass
    return records


def _pid_alive(pid: int | None, job_dir: Path) -> bool:
    """Is the job's process still running (and really this job's process)?"""
    if not pid:
        return False
    proc = _CHILDREN.get(pid)
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():  # Linux: refuse zombies and a pid reused by another program
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
            if state in ("Z", "X"):
                return False
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            return str(job_dir.resolve()).encode() in cmdline
        except (OSError, IndexError):
            return False
    return True


def _last_error(log: Path) -> str | None:
    try:
        lines = [l.strip() for l in log.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return None
    for line in reversed(lines):
        if "error:" in line:
            return line.split("error:", 1)[1].strip() if line.startswith("ccvae") else line
    return " / ".join(lines[-3:]) if lines else None


def read_job(path: str | Path, *, grace_s: float = DEFAULT_GRACE_S) -> JobStatus:
    """The job's status from its files. Also enforces a pending cancel: a job asked
    to stop more than ``grace_s`` seconds ago that still runs is terminated."""
    job_dir = Path(path)
    job = _read_json(job_dir / JOB_FILE)
    if job is None:
        raise ConfigError(f"{job_dir} is not a training job folder (no readable {JOB_FILE})")
    status = JobStatus(job_id=job.get("job_id", job_dir.name), path=job_dir, state="starting",
                       config=job.get("config", {}), created=float(job.get("created", 0.0)),
                       pid=job.get("pid"))
    status.n_epochs = status.config.get("epochs")
    for rec in read_progress(job_dir / PROGRESS_FILE):
        event = rec.get("event")
        if event == "start":
            status.data = rec.get("data")
        elif event == "batch":
            status.epoch, status.batch, status.n_batches = rec.get("epoch"), rec.get("batch"), rec.get("n_batches")
        elif event == "epoch":
            status.history.append(rec)
            status.epoch = rec.get("epoch")
            status.batch = status.n_batches
        elif event == "done":
            status.test = rec.get("test")
            status.stopped = rec.get("stopped")
    ckpt = Path(job.get("checkpoint", job_dir / status.job_id))
    from .checkpoints import is_checkpoint
    status.checkpoint = ckpt if is_checkpoint(ckpt) else None

    exit_info = _read_json(job_dir / EXIT_FILE)
    stop = job_dir / STOP_FILE
    if exit_info is not None:
        status.returncode = exit_info.get("returncode")
        if status.returncode == 0:
            status.state = "cancelled" if status.stopped == "cancelled" else "done"
        elif stop.exists():
            status.state = "cancelled"
        else:
            status.state = "failed"
            status.error = exit_info.get("error") or _last_error(job_dir / LOG_FILE)
        return status
    if _pid_alive(status.pid, job_dir):
        if stop.exists():
            status.state = "cancelling"
            _enforce_cancel(status, stop, grace_s)
        else:
            status.state = "running" if (status.history or status.batch) else "starting"
        return status
    if stop.exists():
        status.state = "cancelled"
    elif status.pid is None and time.time() - status.created < 30:
        status.state = "starting"
    else:
        status.state = "failed"
        status.error = _last_error(job_dir / LOG_FILE) or "the training process ended unexpectedly"
    return status


def list_jobs(root: str | Path | None = None) -> list[JobStatus]:
    """Every job under ``root``, newest first (unreadable folders are skipped)."""
    root = Path(root) if root is not None else default_root()
    if not root.is_dir():
        return []
    jobs = []
    for d in root.iterdir():
        if d.is_dir() and (d / JOB_FILE).is_file():
            try:
                jobs.append(read_job(d))
            except CCVAEError:
                continue
    return sorted(jobs, key=lambda j: j.created, reverse=True)


# -- cancelling -------------------------------------------------------------------------------

def cancel_job(path: str | Path) -> JobStatus:
    """Ask the job to stop (creates its stop file). Returns at once; the process then
    saves its best model and exits, or is terminated after the grace period."""
    job_dir = Path(path)
    status = read_job(job_dir)
    if status.active:
        stop = job_dir / STOP_FILE
        if not stop.exists():
            stop.write_text(f"{time.time()}\n")
    return read_job(job_dir)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(os.getpgid(pid), sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _enforce_cancel(status: JobStatus, stop: Path, grace_s: float) -> None:
    try:
        asked = stop.stat().st_mtime
    except OSError:
        return
    waited = time.time() - asked
    if status.pid and waited > grace_s:
        _signal_group(status.pid, signal.SIGKILL if waited > grace_s + KILL_AFTER_S else signal.SIGTERM)


def terminate_job(path: str | Path, timeout: float = 10.0) -> JobStatus:
    """Stop a job now: stop file, SIGTERM to its process group, SIGKILL after ``timeout``."""
    job_dir = Path(path)
    status = read_job(job_dir)
    if not status.active:
        return status
    stop = job_dir / STOP_FILE
    if not stop.exists():
        stop.write_text(f"{time.time()}\n")
    if status.pid:
        _signal_group(status.pid, signal.SIGTERM)
        deadline = time.time() + timeout
        while time.time() < deadline and _pid_alive(status.pid, job_dir):
            time.sleep(0.1)
        if _pid_alive(status.pid, job_dir):
            _signal_group(status.pid, signal.SIGKILL)
    return read_job(job_dir)


def wait(path: str | Path, timeout: float = 60.0, poll_s: float = 0.2) -> JobStatus:
    """Block until the job ends or ``timeout`` seconds pass (for scripts and tests)."""
    deadline = time.time() + timeout
    status = read_job(path)
    while status.active and time.time() < deadline:
        time.sleep(poll_s)
        status = read_job(path)
    return status


# -- the runner (the background process itself) -----------------------------------------------

def run(job_dir: str | Path) -> int:
    """Run the job's ``ccvae train`` command in this process and record its exit code."""
    job_dir = Path(job_dir)
    job = _read_json(job_dir / JOB_FILE)
    if job is None:
        print(f"ccvae jobs: error: {job_dir} has no readable {JOB_FILE}", file=sys.stderr)
        return 1

    def on_term(signum, frame):  # turn SIGTERM into an exception so exit.json is written
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    rc: int = 1
    error = None
    try:
        from .cli import main
        rc = int(main(list(job["argv"])) or 0)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
        if rc:
            error = "terminated" if rc == 128 + signal.SIGTERM else None
    except BaseException as e:  # noqa: BLE001 - recorded, then the process ends
        rc = 1
        error = f"{type(e).__name__}: {e}"
        import traceback
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        _write_json(job_dir / EXIT_FILE, {"returncode": rc, "time": time.time(), "error": error})
    return rc


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2 or argv[0] != "run":
        print("usage: python -m ccvae.jobs run JOB_FOLDER", file=sys.stderr)
        return 2
    return run(argv[1])


if __name__ == "__main__":
    sys.exit(main())
