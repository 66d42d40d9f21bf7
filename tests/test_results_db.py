"""The SQLite results database: round trips, duplicates, bad files, concurrent
writers and crashed writers."""

from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3

import pytest

from ccvae.results_db import ResultsDB, ResultsDBError
from tests.results_rows import make_row


def test_round_trip_decodes_json_and_filters(tmp_path):
    db = ResultsDB(tmp_path / "r.sqlite")
    db.record(make_row(geometry="sphere", latent_dim=5, elbo=-120.5, run_key="a"))
    db.record(make_row(dataset="lfw", elbo=-1230.0, run_key="b"))
    assert len(db) == 2 and db.done_keys() == {"a", "b"}
    (row,) = db.runs(dataset="mnist")
    assert row["geometry"] == "sphere" and row["latent_dim"] == 5 and row["elbo"] == -120.5
    assert row["config"]["train"]["latent_dim"] == 5 and row["hidden"] == [128]
    assert row["versions"] == {"ccvae": "test"} and row["metrics"]["test"]["elbo"] == -120.5
    assert db.runs(geometry="hyperbolic") == []
    assert db.sweeps() == [("lfw", "post", 1), ("mnist", "post", 1)]
    with pytest.raises(ResultsDBError, match="unknown results column"):
        db.runs(colour="red")


def test_a_run_is_recorded_once(tmp_path):
    db = ResultsDB(tmp_path / "r.sqlite")
    db.record(make_row(run_key="same", elbo=-100.0))
    db.record(make_row(run_key="same", elbo=-200.0))
    assert [r["elbo"] for r in db.runs()] == [-100.0]


def test_incomplete_row_is_refused(tmp_path):
    db = ResultsDB(tmp_path / "r.sqlite")
    row = make_row()
    del row["finished_at"]
    with pytest.raises(ResultsDBError, match="finished_at"):
        db.record(row)
    assert len(db) == 0


@pytest.mark.parametrize("content", [b"not a database at all" * 100, b""])
def test_bad_files_give_one_message(tmp_path, content):
    path = tmp_path / "r.sqlite"
    if content:
        path.write_bytes(content)
        with pytest.raises(ResultsDBError, match="not a readable SQLite"):
            ResultsDB(path)
        assert path.read_bytes() == content  # nothing of the user's is overwritten
    with pytest.raises(ResultsDBError, match="no results database"):
        ResultsDB(tmp_path / "missing.sqlite", create=False)
    with pytest.raises(ResultsDBError, match="is a folder"):
        ResultsDB(tmp_path)


@pytest.mark.parametrize("create", [True, False])
def test_another_sqlite_database_is_refused_and_left_untouched(tmp_path, create):
    path = tmp_path / "notes.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE runs (id INTEGER, name TEXT)")  # a name we use, other columns
        con.execute("CREATE TABLE notes (text TEXT)")
    before = path.read_bytes()
    with pytest.raises(ResultsDBError, match="not a ccvae results database .*notes, runs"):
        ResultsDB(path, create=create)
    assert path.read_bytes() == before


def test_empty_file_is_no_database_to_read_and_stays_empty(tmp_path):
    path = tmp_path / "r.sqlite"
    path.touch()
    with pytest.raises(ResultsDBError, match="is empty"):
        ResultsDB(path, create=False)
    assert path.stat().st_size == 0
    ResultsDB(path).record(make_row(run_key="a"))  # a sweep may start a results file there
    assert ResultsDB(path, create=False).done_keys() == {"a"}


def test_unmakeable_location_is_one_message(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ResultsDBError, match="cannot create the results database"):
        ResultsDB(tmp_path / "file" / "sub" / "r.sqlite")


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultsDB(path)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(ResultsDBError, match="schema 99"):
        ResultsDB(path)


def test_older_file_gains_new_metric_columns(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultsDB(path).record(make_row(run_key="old"))
    with sqlite3.connect(path) as con:  # a file written before elbo_ceiling existed
        con.execute("ALTER TABLE runs DROP COLUMN elbo_ceiling")
    db = ResultsDB(path)
    db.record(make_row(run_key="new", elbo_ceiling=-20.0))
    assert {r["run_key"]: r["elbo_ceiling"] for r in db.runs()} == {"old": None, "new": -20.0}


def _writer(path: str, start: int, n: int) -> None:
    db = ResultsDB(path)
    for i in range(start, start + n):
        db.record(make_row(run_key=f"w{i}", elbo=-float(i)))


def test_concurrent_writers_never_corrupt_the_file(tmp_path):
    path = str(tmp_path / "r.sqlite")
    ResultsDB(path)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, k * 30, 30)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    db = ResultsDB(path)
    assert db.done_keys() == {f"w{i}" for i in range(120)}
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _die_holding_the_lock(path: str) -> None:
    db = ResultsDB(path)
    with db._transaction():
        os._exit(1)  # killed while holding the write lock: the next writer must not hang


def _die_after_insert(path: str) -> None:
    db = ResultsDB(path)
    row = make_row(run_key="partial")
    cols = [c for c in row if c not in ("config_json", "versions_json", "metrics_json", "hidden")]
    with db._transaction() as con:
        con.execute(f"INSERT INTO runs ({', '.join(cols)}, config_json, versions_json, metrics_json, hidden) "
                    f"VALUES ({', '.join('?' * len(cols))}, '{{}}', '{{}}', '{{}}', '[128]')",
                    [row[c] for c in cols])
        os._exit(1)  # the row is written but never committed


@pytest.mark.parametrize("target", [_die_holding_the_lock, _die_after_insert])
def test_a_killed_writer_leaves_no_partial_row(tmp_path, target):
    path = str(tmp_path / "r.sqlite")
    ResultsDB(path).record(make_row(run_key="kept"))
    p = mp.get_context("spawn").Process(target=target, args=(path,))
    p.start()
    p.join(60)
    assert p.exitcode == 1
    db = ResultsDB(path)  # the hot journal is rolled back on the next open
    assert db.done_keys() == {"kept"}
    db.record(make_row(run_key="after"))
    assert db.done_keys() == {"kept", "after"}
