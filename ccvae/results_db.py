"""The results database: one SQLite file (stdlib ``sqlite3``), one row per finished run.

Default location ``results/results.sqlite``. What a row holds:

- the run's identity: ``run_key`` (a hash of the full training and evaluation
  config, seed included), the sweep's name, and the config itself as JSON;
- the software versions and the git commit it ran from, the host and the device;
- timings (training, evaluation, start and end);
- the test metrics: mean ELBO, its spread over test batches (as the post reports
  it), the standard error, the reconstruction and KL terms, the IWAE estimate with
  its k and the number of test examples it used, bits/dim, k-NN accuracy.

No weights are ever stored: the file stays small enough to commit.

Concurrency and crashes. A row is written only when a run has finished, in one
``BEGIN IMMEDIATE`` transaction (SQLite's write lock is taken before anything is
written), so two processes writing at once wait for each other (``busy_timeout``)
instead of corrupting the file, and a process killed mid-write leaves the
journal to roll the transaction back: never a partial row. A run that was killed
before it finished has no row, so a resumed sweep redoes it from scratch.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import CCVAEError

__all__ = ["DEFAULT_DB", "SCHEMA_VERSION", "ResultsDBError", "ResultsDB", "METRIC_COLUMNS"]

DEFAULT_DB = Path("results") / "results.sqlite"
SCHEMA_VERSION = 1

#: How long a writer waits for another process's write lock before giving up (ms).
#: A write is one small INSERT, so even many workers finishing together clear in
#: well under a second; 60 s only matters on a very slow or network file system.
BUSY_TIMEOUT_MS = 60_000

#: Test metrics stored as columns (everything else the evaluation returns is kept
#: in ``metrics_json``).
METRIC_COLUMNS = ("elbo", "elbo_batch_std", "elbo_sem", "elbo_batch_size", "recon", "kl",
                  "iwae", "iwae_sem", "iwae_k", "iwae_examples", "bits_per_dim", "knn_accuracy",
                  "n_test", "elbo_ceiling")

_INTEGER_METRICS = ("elbo_batch_size", "iwae_k", "iwae_examples", "n_test")

_IDENTITY_COLUMNS = ("run_key", "sweep", "dataset", "geometry", "latent_dim", "layers", "hidden",
                     "likelihood", "binarize", "seed")
_RUN_COLUMNS = ("config_json", "versions_json", "git_commit", "host", "device",
                "started_at", "finished_at", "train_seconds", "eval_seconds", "epochs_run",
                "best_epoch", "stopped")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_key TEXT PRIMARY KEY,
    sweep TEXT NOT NULL,
    dataset TEXT NOT NULL,
    geometry TEXT NOT NULL,
    latent_dim INTEGER NOT NULL,
    layers INTEGER NOT NULL,
    hidden TEXT NOT NULL,
    likelihood TEXT NOT NULL,
    binarize TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config_json TEXT NOT NULL,
    versions_json TEXT NOT NULL,
    git_commit TEXT,
    host TEXT,
    device TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    train_seconds REAL NOT NULL,
    eval_seconds REAL NOT NULL,
    epochs_run INTEGER NOT NULL,
    best_epoch INTEGER NOT NULL,
    stopped TEXT NOT NULL,
    {", ".join(f"{c} {'INTEGER' if c in _INTEGER_METRICS else 'REAL'}"
               for c in METRIC_COLUMNS)},
    metrics_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_cell ON runs (dataset, sweep, latent_dim, layers, geometry);
"""

ALL_COLUMNS = _IDENTITY_COLUMNS + _RUN_COLUMNS + METRIC_COLUMNS + ("metrics_json",)


class ResultsDBError(CCVAEError):
    """The results file is missing, unreadable, not a ccvae database, or a row is malformed."""


class ResultsDB:
    """A handle on one results file. Each method opens its own short-lived
    connection, so a handle can be shared with worker threads and survives forks."""

    def __init__(self, path: str | Path = DEFAULT_DB, *, create: bool = True):
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise ResultsDBError(f"no results database at {self.path}; run `ccvae sweep` first")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ResultsDBError(f"cannot create the results database {self.path}: "
                                     f"{exc.strerror or exc}") from None
        elif self.path.is_dir():
            raise ResultsDBError(f"{self.path} is a folder, not a results database file")
        elif not create and self.path.stat().st_size == 0:
            raise ResultsDBError(f"{self.path} is empty, not a ccvae results database")
        try:
            with self._connect() as con:
                self._check_is_ours(con)
                con.executescript(_SCHEMA)
                # Metric columns added after a file was created are added to it (NULL
                # for older rows), so an older results file keeps working.
                have = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
                for col in METRIC_COLUMNS:
                    if col not in have:
                        kind = "INTEGER" if col in _INTEGER_METRICS else "REAL"
                        con.execute(f"ALTER TABLE runs ADD COLUMN {col} {kind}")
                found = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                if found is None:
                    con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                                (str(SCHEMA_VERSION),))
                elif int(found[0]) > SCHEMA_VERSION:
                    raise ResultsDBError(
                        f"{self.path} has results schema {found[0]}; this ccvae reads schema "
                        f"{SCHEMA_VERSION}. Upgrade ccvae.")
        except sqlite3.DatabaseError as exc:
            raise ResultsDBError(f"{self.path} is not a readable SQLite results database ({exc})") from None

    def _check_is_ours(self, con: sqlite3.Connection) -> None:
        """ResultsDBError, before anything is written, for an SQLite file that holds other
        tables than a ccvae results database (one with no tables at all is new)."""
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        ours = "meta" in tables and con.execute(
            "SELECT 1 FROM meta WHERE key = 'schema_version'").fetchone() is not None
        if tables and not ours:
            raise ResultsDBError(
                f"{self.path} is an SQLite database but not a ccvae results database (its tables: "
                f"{', '.join(sorted(tables))}); it was left untouched: pass another --db")

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so the write lock is
        # taken up front (BEGIN IMMEDIATE) rather than on the first write.
        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            con.row_factory = sqlite3.Row
            yield con
        finally:
            con.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # ------------------------------------------------------------------ writes
    def record(self, row: Mapping[str, Any]) -> None:
        """Insert one finished run atomically. Recording the same ``run_key`` twice
        keeps the first row (a run is done once; two workers racing on it cannot
        both land)."""
        missing = [c for c in _IDENTITY_COLUMNS + _RUN_COLUMNS if row.get(c) is None
                   and c not in ("git_commit", "host", "device")]
        if missing:
            raise ResultsDBError(f"a results row needs {', '.join(missing)}")
        values = {c: row.get(c) for c in ALL_COLUMNS}
        for c in ("config_json", "versions_json", "metrics_json"):
            if not isinstance(values[c], str):
                values[c] = json.dumps(values[c] if values[c] is not None else {}, sort_keys=True,
                                       separators=(",", ":"), default=str)
        if not isinstance(values["hidden"], str):
            values["hidden"] = json.dumps(values["hidden"])
        cols = ", ".join(ALL_COLUMNS)
        marks = ", ".join(f":{c}" for c in ALL_COLUMNS)
        with self._transaction() as con:
            con.execute(f"INSERT OR IGNORE INTO runs ({cols}) VALUES ({marks})", values)

    def delete(self, run_keys: Iterable[str]) -> int:
        keys = list(run_keys)
        with self._transaction() as con:
            cur = con.executemany("DELETE FROM runs WHERE run_key = ?", [(k,) for k in keys])
            return cur.rowcount

    # ------------------------------------------------------------------ reads
    def done_keys(self) -> set[str]:
        with self._connect() as con:
            return {r[0] for r in con.execute("SELECT run_key FROM runs")}

    def runs(self, dataset: str | None = None, sweep: str | None = None,
             **equal: Any) -> list[dict[str, Any]]:
        """Rows as dicts (JSON columns decoded), optionally filtered by dataset, sweep
        name and any other column (``geometry="sphere"``, ``binarize="dynamic"``)."""
        where, params = [], []
        for col, value in (("dataset", dataset), ("sweep", sweep), *equal.items()):
            if value is None:
                continue
            if col not in ALL_COLUMNS:
                raise ResultsDBError(f"unknown results column {col!r}")
            where.append(f"{col} = ?")
            params.append(value)
        sql = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += " ORDER BY dataset, sweep, latent_dim, layers, geometry, seed"
        with self._connect() as con:
            rows = [dict(r) for r in con.execute(sql, params)]
        for r in rows:
            for c in ("config_json", "versions_json", "metrics_json"):
                r[c.removesuffix("_json")] = json.loads(r.pop(c))
            r["hidden"] = json.loads(r["hidden"])
        return rows

    def sweeps(self) -> list[tuple[str, str, int]]:
        """(dataset, sweep, number of runs) for every sweep in the file."""
        with self._connect() as con:
            return [tuple(r) for r in con.execute(
                "SELECT dataset, sweep, COUNT(*) FROM runs GROUP BY dataset, sweep ORDER BY dataset, sweep")]

    def __len__(self) -> int:
        with self._connect() as con:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    def vacuum(self) -> None:
        """Compact the file (after deleting rows, before committing it)."""
        with closing(sqlite3.connect(self.path, isolation_level=None)) as con:
            con.execute("VACUUM")
