"""Results tables: cells from runs, best marks, significance against the post,
the IWAE protocol table, the output formats and the `ccvae table` command."""

from __future__ import annotations

import csv
import io
import math

import pytest

from ccvae import reference_results as ref
from ccvae import tables
from ccvae.cli import main
from ccvae.errors import ConfigError
from ccvae.results_db import ResultsDB
from ccvae.evaluation.metrics import bernoulli_elbo_ceiling
from ccvae.data.base import Split
from tests.results_rows import make_row


@pytest.fixture
def db(tmp_path):
    db = ResultsDB(tmp_path / "r.sqlite")
    # (2, 1): post E -170.8 ± 9.9, S -168.9 ± 10.1, H -174.0 ± 8.0
    db.record(make_row(geometry="euclidean", elbo=-140.0, batch_std=6.0))           # far better
    db.record(make_row(geometry="sphere", elbo=-165.0, batch_std=6.0))              # within noise
    db.record(make_row(geometry="hyperbolic", elbo=-142.0, batch_std=6.0, seed=0))
    db.record(make_row(geometry="hyperbolic", elbo=-144.0, batch_std=8.0, seed=1))
    # an older, different configuration in the same cell is not averaged in
    db.record(make_row(geometry="hyperbolic", elbo=-300.0, epochs=5, finished_at="2026-01-01T00:00:00+00:00"))
    # a run with another likelihood never enters the post's table
    db.record(make_row(geometry="euclidean", latent_dim=3, elbo=-10.0, likelihood="gaussian"))
    return db


def test_cells_average_seeds_and_keep_one_configuration(db):
    row = next(r for r in tables.elbo_rows(db, "mnist") if (r["latent_dim"], r["layers"]) == (2, 1))
    h = row["ours"]["hyperbolic"]
    assert h.value == pytest.approx(-143.0) and h.n_seeds == 2
    assert h.batch_std == pytest.approx(7.0) and h.seed_std == pytest.approx(math.sqrt(2))
    assert h.err == pytest.approx(math.sqrt(49 + 2))
    assert row["best_ours"] == "euclidean" and row["best_post"] == "sphere"


def test_a_seed_run_after_a_setting_was_added_joins_the_older_seeds(tmp_path):
    db = ResultsDB(tmp_path / "r.sqlite")
    db.record(make_row(geometry="sphere", elbo=-140.0, seed=0))  # recorded before the setting existed
    newer = make_row(geometry="sphere", elbo=-144.0, seed=1, finished_at="2026-11-22T20:00:00+00:00")
    newer["config_json"]["train"].update(sphere_posterior="vmf", initial_concentration=10.0)
    db.record(newer)
    cell = tables.cells(db.runs())[(2, 1)]["sphere"]
    assert (cell.n_seeds, cell.value) == (2, -142.0)


def test_significance_against_the_post(db):
    row = next(r for r in tables.elbo_rows(db, "mnist") if (r["latent_dim"], r["layers"]) == (2, 1))
    z_e = (-140.0 + 170.8) / math.hypot(6.0, 9.9)
    assert row["z"]["euclidean"] == pytest.approx(z_e)
    assert row["significant"] == {"euclidean": True, "sphere": False, "hyperbolic": True}
    assert row["better"] == {"euclidean": True, "sphere": True, "hyperbolic": True}
    other = [r for r in tables.elbo_rows(db, "mnist") if (r["latent_dim"], r["layers"]) == (3, 1)]
    assert other[0]["ours"] == {}  # the gaussian-likelihood run is not comparable


def test_formats(db):
    md = tables.render(db, "mnist", fmt="markdown")
    assert "| 2 | 1 | **-140.0 ± 6.0** |" in md and "**-168.9 ± 10.1**" in md
    assert "3 of 3 cells beat the post; 2 differ significantly" in md
    rows = list(csv.reader(io.StringIO(tables.render(db, "mnist", fmt="csv"))))
    assert rows[0][:5] == ["D", "L", "Euclidean", "Sphere", "Hyperbolic"]
    assert len(rows) == 1 + len(ref.POST_TABLES["mnist"])
    assert rows[1][2] == "*-140.0 ± 6.0"
    tex = tables.render(db, "mnist", fmt="latex")
    assert r"\begin{tabular}" in tex and r"\textbf{-140.0 $\pm$ 6.0}" in tex
    plain = tables.render(db, "mnist", fmt="text", published=False)
    assert "(post)" not in plain and "★ -140.0" in plain
    with pytest.raises(ValueError, match="unknown format"):
        tables.render(db, "mnist", fmt="html")


def test_empty_sweep_says_so(db):
    text = tables.render(db, "lfw", fmt="text")
    assert "no lfw runs" in text and "-975.2" in text


def test_iwae_table_against_davidson(tmp_path):
    db = ResultsDB(tmp_path / "r.sqlite")
    for g, v in (("euclidean", -93.5), ("sphere", -95.0)):
        db.record(make_row(sweep="davidson", geometry=g, latent_dim=10, layers=2, iwae=v, binarize="dynamic"))
    (row,) = [r for r in tables.iwae_rows(db) if r["latent_dim"] == 10]
    assert row["gap"]["euclidean"] == pytest.approx(-93.5 + 93.84)
    assert row["reproduced"] == {"euclidean": True, "sphere": False}
    text = tables.render(db, "mnist", kind="iwae", fmt="markdown")
    assert "**-93.50 ± 0.10**" in text and "-93.84 ± 0.30" in text and "Davidson" in text


def test_iwae_table_takes_each_cell_from_the_newest_protocol_revision(tmp_path):
    """A cell run with the warm-up revision replaces the first revision's, whichever
    finished last; the others stay, and the table names the revision of each."""
    db = ResultsDB(tmp_path / "r.sqlite")
    db.record(make_row(sweep="davidson-warmup", geometry="euclidean", latent_dim=20, layers=2, iwae=-88.7,
                       finished_at="2026-01-01T00:00:00+00:00"))
    db.record(make_row(sweep="davidson", geometry="euclidean", latent_dim=20, layers=2, iwae=-91.4,
                       finished_at="2026-06-01T00:00:00+00:00"))
    db.record(make_row(sweep="davidson", geometry="sphere", latent_dim=20, layers=2, iwae=-91.4))
    (row,) = [r for r in tables.iwae_rows(db) if r["latent_dim"] == 20]
    assert row["ours"]["euclidean"].value == -88.7 and row["sweep"] == {"euclidean": "davidson-warmup",
                                                                         "sphere": "davidson"}
    assert row["reproduced"] == {"euclidean": True, "sphere": False}
    note = tables.protocol_note(tables.iwae_rows(db))
    assert note.startswith("Protocol: euclidean d=20: with KL warm-up") and "sphere d=20: as the paper" in note
    assert note in tables.render(db, "mnist", kind="iwae", fmt="markdown")
    # one sweep asked for: only its cells, and the note names that one revision
    (only,) = [r for r in tables.iwae_rows(db, "davidson") if r["latent_dim"] == 20]
    assert only["ours"]["euclidean"].value == -91.4
    assert tables.protocol_note(tables.iwae_rows(db, "davidson")) == (
        "Protocol (every cell): as the paper states the protocol, without warm-up, batch 128 (sweep davidson).")
    assert tables.protocol_note([]) == ""


def test_iwae_table_says_how_long_each_cell_trained(tmp_path):
    """Cells from a 100-epoch cap and a longer early-stopped run are not like for like."""
    db = ResultsDB(tmp_path / "r.sqlite")
    for g, d in (("euclidean", 2), ("sphere", 2), ("euclidean", 5)):
        db.record(make_row(sweep="davidson", geometry=g, latent_dim=d, layers=2, iwae=-100.0, epochs=100))
    db.record(make_row(sweep="davidson", geometry="sphere", latent_dim=5, layers=2, iwae=-99.0, epochs=612,
                       stopped="early_stopping"))
    note = tables.training_note(tables.iwae_rows(db))
    assert note == "Training: 3 cells 100 epochs (the epoch cap); sphere d=5: 612 epochs (early stopping)."
    assert note in tables.render(db, "mnist", kind="iwae", fmt="markdown")
    assert tables.training_note(tables.iwae_rows(ResultsDB(tmp_path / "empty.sqlite"))) == ""
    # when no length is shared, every cell is named with its own, the first one too
    one = ResultsDB(tmp_path / "one.sqlite")
    for g, epochs in (("euclidean", 293), ("sphere", 338)):
        one.record(make_row(sweep="davidson", geometry=g, latent_dim=2, layers=2, iwae=-100.0, epochs=epochs,
                            stopped="early_stopping"))
    assert tables.training_note(tables.iwae_rows(one)) == (
        "Training: euclidean d=2: 293 epochs (early stopping); sphere d=2: 338 epochs (early stopping).")


def test_sampler_ablation_pairs_runs_that_differ_only_in_the_sampler(tmp_path):
    db = ResultsDB(tmp_path / "r.sqlite")
    common = dict(latent_dim=20, layers=2, binarize="dynamic", epochs=100)
    db.record(make_row(sweep="davidson", geometry="euclidean", iwae=-93.35, **common))
    db.record(make_row(sweep="davidson", geometry="sphere", iwae=-92.92, **common))
    # the same cell trained longer is another configuration: not the ablation's partner
    db.record(make_row(sweep="davidson", geometry="sphere", iwae=-90.0, **{**common, "epochs": 1000}))
    svae = make_row(sweep="davidson-svae", geometry="sphere", iwae=-95.02, **common)
    svae["config_json"]["train"]["sphere_posterior"] = "vmf_svae"
    db.record(svae)
    plain = make_row(sweep="davidson-svae", geometry="sphere", iwae=-50.0, latent_dim=40, layers=2)
    db.record(plain)  # the exact sampler in the ablation's sweep: not an ablation run
    low = make_row(sweep="davidson-svae", geometry="sphere", iwae=-91.0, **common)
    low["config_json"]["train"].update(sphere_posterior="vmf_svae", initial_concentration=1.7)
    db.record(low)  # another start: no exact partner yet, but the same Euclidean one
    low_row, row = tables.sampler_ablation_rows(db)  # sorted by initial kappa
    assert (low_row["initial_concentration"], low_row["exact"], low_row["euclidean"].value) == (1.7, None, -93.35)
    control = make_row(sweep="davidson-svae", geometry="sphere", iwae=-94.0, **common)
    control["config_json"]["train"]["initial_concentration"] = 1.7  # an exact-sampler control
    db.record(control)
    low_row, row = tables.sampler_ablation_rows(db)
    assert low_row["exact"].value == -94.0 and row["exact"].value == -92.92
    assert (row["latent_dim"], row["epochs"], row["initial_concentration"]) == (20, 100, 10.0)
    assert (row["euclidean"].value, row["exact"].value, row["svae"].value) == (-93.35, -92.92, -95.02)
    text = tables.render(db, "mnist", kind="sampler", fmt="text")
    assert "+2.10 ± 0.14" in text and "-88.90 ± 0.26" in text  # exact - s-vae; Davidson's N-VAE
    assert row["kl_warmup_epochs"] == 0 and "none, " in text
    assert "no runs in sweep" in tables.render(ResultsDB(tmp_path / "e.sqlite"), "mnist", kind="sampler")
    with pytest.raises(ConfigError, match="mnist only"):
        tables.render(db, "lfw", kind="sampler")


def test_bernoulli_ceiling_is_minus_the_pixel_entropy():
    from scipy.stats import bernoulli
    import torch

    x = torch.rand(6, 50, dtype=torch.float64)
    x[0] = (x[0] > 0.5).double()  # binary pixels cost nothing
    expected = -sum(bernoulli(p).entropy() for row in x.tolist() for p in row) / 6
    split = Split(x, None, torch.arange(6))
    assert bernoulli_elbo_ceiling(split) == pytest.approx(expected, rel=1e-12)
    assert bernoulli_elbo_ceiling(Split(x[:1], None, torch.arange(1))) == 0.0


def test_table_command(db, capsys):
    assert main(["table", "--dataset", "mnist", "--format", "csv", "--db", str(db.path)]) == 0
    assert capsys.readouterr().out.startswith("D,L,Euclidean")
    assert main(["table", "--db", str(db.path.parent / "none.sqlite")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no results database" in err
    with pytest.raises(SystemExit) as exc:
        main(["table", "--format", "pdf"])
    assert exc.value.code == 2
