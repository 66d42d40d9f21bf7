"""The ELBO-tables page's pure helpers (ccvae.dashboard.results_view) on small
hand-made results databases."""

from __future__ import annotations

from pathlib import Path

import pytest

import ccvae
from ccvae import reference_results as ref
from ccvae import tables
from ccvae.dashboard import results_view as rv
from ccvae.results_db import ResultsDB

from .results_rows import make_row


def _db(tmp_path: Path, *rows: dict) -> ResultsDB:
    db = ResultsDB(tmp_path / "results.sqlite")
    for row in rows:
        db.record(row)
    return db


def _row(df, d: int, layers: int):
    return df[(df["latent dim"] == d) & (df["layers"] == layers)].iloc[0]


def test_results_db_path_env_and_default(monkeypatch, tmp_path):
    monkeypatch.delenv(rv.ENV_RESULTS_DB, raising=False)
    assert rv.results_db_path() == Path(ccvae.__file__).resolve().parents[1] / "results" / "results.sqlite"
    monkeypatch.setenv(rv.ENV_RESULTS_DB, str(tmp_path / "x.sqlite"))
    assert rv.results_db_path() == tmp_path / "x.sqlite"


def test_elbo_frame_values_best_marks_and_significance_colours(tmp_path):
    # The post's MNIST (3, 2) row: euclidean -156.6 ± 9.4, sphere -152.8 ± 8.5 (its best),
    # hyperbolic -156.7 ± 7.1. Our spread is 5, so "significant" means a gap above
    # 2 sqrt(5² + post²), about 17-21 nats here.
    db = _db(tmp_path,
             make_row(geometry="euclidean", latent_dim=3, layers=2, elbo=-160.0),    # worse, not significant
             make_row(geometry="sphere", latent_dim=3, layers=2, elbo=-200.0),       # significantly worse
             make_row(geometry="hyperbolic", latent_dim=3, layers=2, elbo=-120.0))   # significantly better
    values, styles = rv.elbo_frame(tables.elbo_rows(db, "mnist"))
    assert values.shape == styles.shape and list(values.columns) == list(styles.columns)
    assert len(values) == len(ref.POST_TABLES["mnist"])
    row, style = _row(values, 3, 2), styles.iloc[_row(values, 3, 2).name]
    assert row["euclidean (ours)"] == "-160.0 ± 5.0"
    assert row["hyperbolic (ours)"] == "★ -120.0 ± 5.0"                    # our best
    assert row["sphere (post)"] == "★ -152.8 ± 8.5"                       # the post's best
    assert row["hyperbolic (post)"] == "-156.7 ± 7.1"
    assert style["hyperbolic (ours)"] == rv.BETTER
    assert style["sphere (ours)"] == rv.WORSE
    assert style["euclidean (ours)"] == ""
    assert set(style[[c for c in styles.columns if "(post)" in c]]) == {""}
    other = _row(values, 2, 1)
    assert other["euclidean (ours)"] == "—" and other["sphere (post)"] == "★ -168.9 ± 10.1"
    assert rv.elbo_summary(tables.elbo_rows(db, "mnist")) == \
        "1 of 3 cells beat the post; 2 differ significantly."


def test_seeds_are_counted_and_the_post_alone_has_the_same_shape(tmp_path):
    db = _db(tmp_path, *(make_row("lfw", "sphere", 2, 1, seed=s, elbo=-1000.0 - s) for s in (0, 1)))
    values, _ = rv.elbo_frame(tables.elbo_rows(db, "lfw"))
    assert _row(values, 2, 1)["sphere (ours)"].endswith("(n=2)")
    alone, styles = rv.elbo_frame(rv.elbo_table_rows(None, "lfw"))
    assert list(alone.columns) == list(values.columns) and len(alone) == len(values)
    assert _row(alone, 2, 1)["sphere (post)"] == "-1047.0 ± 40.5"
    assert set(alone["sphere (ours)"]) == {"—"} and (styles == "").all().all()
    assert rv.elbo_summary(rv.elbo_table_rows(None, "lfw")) is None


def test_ceiling_note_counts_the_post_cells_above_it():
    best = max(v for row in ref.POST_TABLES["lfw"].values() for v, _ in row.values())
    n = sum(len(row) for row in ref.POST_TABLES["lfw"].values())
    note = rv.ceiling_note(-1234.5)
    assert "-1234.5" in note and f"every one of the post's {n} LFW cells" in note
    assert "50×37" in note and "same footing" in note
    assert f"1 of the post's {n} LFW cells lies above it" in rv.ceiling_note(best - 0.1)
    high = rv.ceiling_note(best + 10)  # none above: only the ceiling, no verdict
    assert "above it" not in high and "same footing" not in high


def test_iwae_frame_marks_reproduced_cells_and_the_verdict(tmp_path):
    # Davidson et al.: d=20 N-VAE -88.90, S-VAE -89.02; d=40 N-VAE -88.93, S-VAE -90.87.
    runs = {(20, "euclidean"): -89.5, (20, "sphere"): -88.6, (40, "euclidean"): -88.8, (40, "sphere"): -95.0}
    db = _db(tmp_path, *(make_row(geometry=g, latent_dim=d, layers=2, sweep="davidson", binarize="dynamic",
                                  iwae=v) for (d, g), v in runs.items()))
    rows = tables.iwae_rows(db)
    values, styles = rv.iwae_frame(rows)
    assert list(values.columns) == ["d", "euclidean (ours)", "sphere (ours)", "hyperbolic (ours)",
                                    "N-VAE (Davidson)", "S-VAE (Davidson)"]
    d20 = values[values["d"] == 20].index[0]
    assert values.loc[d20, "sphere (ours)"] == "★ -88.60 ± 0.10 ✓" and styles.loc[d20, "sphere (ours)"] == rv.REPRODUCED
    assert values.loc[d20, "euclidean (ours)"] == "-89.50 ± 0.10 ✓"        # 0.6 nats short: within 1
    d40 = values[values["d"] == 40].index[0]
    assert values.loc[d40, "sphere (ours)"] == "-95.00 ± 0.10" and styles.loc[d40, "sphere (ours)"] == ""
    assert values.loc[d40, "N-VAE (Davidson)"] == "★ -88.93 ± 0.30"
    verdict = rv.exact_sampler_verdict(rows)
    assert verdict[0].startswith("d = 20: the sphere (S-VAE) wins, -88.60 (sphere) vs -89.50 (Euclidean)")
    assert "opposite" in verdict[0]
    assert verdict[1].startswith("d = 40: the Euclidean (N-VAE) wins") and "found the same" in verdict[1]
    assert "a gap of 0.90 nats (± 0.14);" in verdict[0]   # standard errors 0.1 each, in quadrature


def test_verdict_says_when_the_gap_is_within_noise(tmp_path):
    runs = {(20, "euclidean"): -89.5, (20, "sphere"): -89.4, (40, "euclidean"): -90.0, (40, "sphere"): -91.0}
    db = _db(tmp_path, *(make_row(geometry=g, latent_dim=d, layers=2, sweep="davidson", binarize="dynamic",
                                  iwae=v) for (d, g), v in runs.items()))
    d20, d40 = rv.exact_sampler_verdict(tables.iwae_rows(db))
    assert "a gap of 0.10 nats (± 0.14, within noise)" in d20
    assert "a gap of 1.00 nats (± 0.14);" in d40


def test_sampler_ablation_verdict_says_which_side_of_the_plane_each_sampler_puts_the_sphere(tmp_path):
    rows = [make_row(geometry=g, latent_dim=20, layers=2, sweep="davidson", binarize="dynamic", iwae=v)
            for g, v in (("euclidean", -93.35), ("sphere", -92.92))]
    svae = make_row(geometry="sphere", latent_dim=20, layers=2, sweep="davidson-svae", binarize="dynamic",
                    iwae=-92.95)
    svae["config_json"]["train"]["sphere_posterior"] = "vmf_svae"
    (text,) = rv.sampler_ablation_verdict(tables.sampler_ablation_rows(_db(tmp_path, *rows, svae)))
    assert text.startswith("d = 20 (60-epoch cap): the exact sampler's sphere scores -92.92, s-vae's -92.95 "
                           "(+0.03 nats ± 0.14, within noise)")
    assert text.endswith("against the Euclidean VAE's -93.35 the sphere is ahead of it with either sampler.")


@pytest.mark.parametrize("missing", [(20, "sphere"), (40, "euclidean")])
def test_no_verdict_without_both_geometries_at_both_dims(tmp_path, missing):
    cells = [(d, g) for d in (20, 40) for g in ("euclidean", "sphere") if (d, g) != missing]
    db = _db(tmp_path, *(make_row(geometry=g, latent_dim=d, sweep="davidson", iwae=-90.0) for d, g in cells))
    assert rv.exact_sampler_verdict(tables.iwae_rows(db)) is None
    assert rv.exact_sampler_verdict(rv.iwae_table_rows(None)) is None
