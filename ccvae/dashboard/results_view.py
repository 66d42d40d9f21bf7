"""The results tables as the ELBO-tables page draws them: pandas DataFrames of
display strings, each with a same-shaped DataFrame of CSS (for ``Styler.apply``),
and the sentences the page prints under them.

Pure: no streamlit, no file reads beyond what ``ccvae.tables`` does with the
:class:`~ccvae.results_db.ResultsDB` it is handed. Rows come from
:func:`ccvae.tables.elbo_rows` / :func:`ccvae.tables.iwae_rows`; without a
database, :func:`elbo_table_rows` / :func:`iwae_table_rows` give the same shape with
the published values only, so the page can still show the post's table.
"""

from __future__ import annotations

import math

import os
from pathlib import Path
from typing import Any

import pandas as pd

import ccvae
from ccvae import reference_results as ref
from ccvae import tables
from ccvae.results_db import ResultsDB

__all__ = ["ENV_RESULTS_DB", "results_db_path", "elbo_table_rows", "iwae_table_rows", "elbo_frame",
           "elbo_summary", "ceiling_note", "iwae_frame", "exact_sampler_verdict", "sampler_ablation_verdict",
           "BETTER", "WORSE", "REPRODUCED"]

ENV_RESULTS_DB = "CCVAE_RESULTS_DB"
GEOMETRIES = ref.GEOMETRIES

# Translucent backgrounds: readable under both the light and the dark theme.
BETTER = "background-color: rgba(46, 160, 67, 0.28)"
WORSE = "background-color: rgba(218, 54, 51, 0.28)"
REPRODUCED = BETTER

#: Davidson et al.'s two columns, in our geometry names.
DAVIDSON_COLUMNS = {"euclidean": "N-VAE (Davidson)", "sphere": "S-VAE (Davidson)"}


def results_db_path() -> Path:
    """``$CCVAE_RESULTS_DB`` if set, else ``<repo root>/results/results.sqlite``."""
    env = os.environ.get(ENV_RESULTS_DB, "").strip()
    if env:
        return Path(env).expanduser()
    return Path(ccvae.__file__).resolve().parents[1] / "results" / "results.sqlite"


# ---------------------------------------------------------------------- rows
def elbo_table_rows(db: ResultsDB | None, dataset: str) -> list[dict[str, Any]]:
    """:func:`ccvae.tables.elbo_rows`, or the post's table alone (same keys) when
    there is no database."""
    if db is not None:
        return tables.elbo_rows(db, dataset)
    return [{"latent_dim": d, "layers": layers, "ours": {}, "post": p, "best_ours": None,
             "best_post": ref.best_geometry(p), "z": {}, "significant": {}, "better": {}}
            for (d, layers), p in sorted(ref.post_table(dataset).items())]


def iwae_table_rows(db: ResultsDB | None) -> list[dict[str, Any]]:
    """:func:`ccvae.tables.iwae_rows`, or Davidson et al.'s values alone without a database."""
    if db is not None:
        return tables.iwae_rows(db)
    return [{"latent_dim": d, "ours": {}, "davidson": p, "best_ours": None, "gap": {}, "reproduced": {}}
            for d, p in sorted(ref.DAVIDSON_2018.items())]


# ---------------------------------------------------------------------- ELBO table
def _fmt(value: float, err: float | None, best: bool, digits: int = 1) -> str:
    text = f"{value:.{digits}f} ± {err:.{digits}f}" if err else f"{value:.{digits}f}"
    return f"★ {text}" if best else text


def _fmt_ours(cell: tables.Cell | None, best: bool) -> str:
    if cell is None:
        return "—"
    text = _fmt(cell.value, cell.err, best)
    return text + (f" (n={cell.n_seeds})" if cell.n_seeds > 1 else "")


def elbo_frame(rows: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(values, styles) for :func:`ccvae.tables.elbo_rows`: columns ``latent dim``,
    ``layers``, ``<geometry> (ours)`` x 3, ``<geometry> (post)`` x 3. Values are
    "-138.3 ± 7.1" strings, "★ " before the best geometry of each row (ours and the
    post's separately), "—" where a side has no cell. A style is BETTER / WORSE on our
    cell where it differs significantly from the post's, else ""."""
    values, styles = [], []
    for r in rows:
        v: dict[str, Any] = {"latent dim": r["latent_dim"], "layers": r["layers"]}
        s: dict[str, str] = {"latent dim": "", "layers": ""}
        for g in GEOMETRIES:
            v[f"{g} (ours)"] = _fmt_ours(r["ours"].get(g), g == r["best_ours"])
            s[f"{g} (ours)"] = ((BETTER if r["better"][g] else WORSE)
                                if r["significant"].get(g) else "")
        for g in GEOMETRIES:
            p = r["post"].get(g)
            v[f"{g} (post)"] = _fmt(*p, g == r["best_post"]) if p else "—"
            s[f"{g} (post)"] = ""
        values.append(v)
        styles.append(s)
    columns = ["latent dim", "layers"] + [f"{g} ({w})" for w in ("ours", "post") for g in GEOMETRIES]
    return pd.DataFrame(values, columns=columns), pd.DataFrame(styles, columns=columns)


def elbo_summary(rows: list[dict[str, Any]]) -> str | None:
    """"N of M cells beat the post; K differ significantly" over the cells both sides
    have, or None when there are none."""
    shared = [(r, g) for r in rows for g in GEOMETRIES if g in r["ours"] and g in r["post"]]
    if not shared:
        return None
    better = sum(1 for r, g in shared if r["better"][g])
    sig = sum(1 for r, g in shared if r["significant"][g])
    return f"{better} of {len(shared)} cells beat the post; {sig} differ significantly."


def ceiling_note(ceiling: float, dataset: str = "lfw") -> str:
    """Why our cells and the post's cannot be compared when the post's ELBOs lie above
    the Bernoulli ceiling of our test split. How many lie above is counted, not assumed:
    with none above, the note only states the ceiling."""
    post = [v for row in ref.post_table(dataset).values() for v, _err in row.values()]
    above = sum(1 for v in post if v > ceiling)
    text = (f"**No Bernoulli (BCE) model can score above {ceiling:.1f} nats on this test split.** "
            "That ceiling is minus the summed binary entropy of the grey pixels of the 50×37 faces "
            "(the reconstruction term can at best match each pixel's own intensity, and the KL term "
            "only lowers the ELBO).")
    if not above:
        return text
    where = (f"every one of the post's {len(post)} {dataset.upper()} cells lies above it"
             if above == len(post) else f"{above} of the post's {len(post)} {dataset.upper()} cells "
             f"{'lies' if above == 1 else 'lie'} above it")
    return (f"{text} Yet {where} (its best is {max(post):.1f}), so the post must have scaled or sized "
            "its faces differently; it does not say how. Our LFW cells therefore cannot be compared "
            "with the post's on the same footing: read them for the ranking of the geometries, not "
            "against the post's numbers.")


# ---------------------------------------------------------------------- IWAE table
def _iwae_err(cell: tables.Cell) -> float | None:
    # As in ccvae.tables: the seed s.d. with several seeds, else the standard error
    # over test images (an IWAE cell has no per-batch spread).
    return cell.seed_std if cell.seed_std is not None else cell.sem


def iwae_frame(rows: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(values, styles) for :func:`ccvae.tables.iwae_rows`: columns ``d``,
    ``<geometry> (ours)`` x 3, ``N-VAE (Davidson)``, ``S-VAE (Davidson)``. Our cells
    that reproduce Davidson et al.'s value (within IWAE_TOLERANCE nats, or better) end
    in " ✓" and are styled REPRODUCED."""
    values, styles = [], []
    for r in rows:
        v: dict[str, Any] = {"d": r["latent_dim"]}
        s: dict[str, str] = {"d": ""}
        for g in GEOMETRIES:
            c = r["ours"].get(g)
            ok = r["reproduced"].get(g, False)
            v[f"{g} (ours)"] = ("—" if c is None else
                                _fmt(c.value, _iwae_err(c), g == r["best_ours"], 2) + (" ✓" if ok else ""))
            s[f"{g} (ours)"] = REPRODUCED if ok else ""
        best = ref.best_geometry(r["davidson"])
        for g, col in DAVIDSON_COLUMNS.items():
            p = r["davidson"].get(g)
            v[col] = _fmt(*p, g == best, 2) if p else "—"
            s[col] = ""
        values.append(v)
        styles.append(s)
    columns = ["d"] + [f"{g} (ours)" for g in GEOMETRIES] + list(DAVIDSON_COLUMNS.values())
    return pd.DataFrame(values, columns=columns), pd.DataFrame(styles, columns=columns)


def exact_sampler_verdict(rows: list[dict[str, Any]], dims: tuple[int, ...] = (20, 40)) -> list[str] | None:
    """One sentence per d in ``dims``: which of our Euclidean and sphere VAEs has the
    higher IWAE log-likelihood, by how much, and whether Davidson et al. (whose vMF
    sampler is approximate) found the same. None unless both are there at every d."""
    by_d = {r["latent_dim"]: r for r in rows}
    if not all(d in by_d and {"euclidean", "sphere"} <= set(by_d[d]["ours"]) for d in dims):
        return None
    name = {"euclidean": "Euclidean (N-VAE)", "sphere": "sphere (S-VAE)"}
    out = []
    for d in dims:
        e, s = by_d[d]["ours"]["euclidean"], by_d[d]["ours"]["sphere"]
        ours = "sphere" if s.value > e.value else "euclidean"
        text = (f"d = {d}: the {name[ours]} wins, {s.value:.2f} (sphere) vs {e.value:.2f} (Euclidean), "
                f"a gap of {abs(s.value - e.value):.2f} nats")
        if e.sem is not None and s.sem is not None:
            # Unpaired standard error of the gap: both models are scored on the same
            # test images, whose difficulties correlate, so the paired error is smaller
            # and this bound is conservative.
            se = math.hypot(e.sem, s.sem)
            text += f" (± {se:.2f}{'' if abs(s.value - e.value) > 2 * se else ', within noise'})"
        pub = by_d[d]["davidson"]
        if {"euclidean", "sphere"} <= set(pub):
            theirs = "sphere" if pub["sphere"][0] > pub["euclidean"][0] else "euclidean"
            text += ("; Davidson et al. found the same" if theirs == ours else
                     f"; Davidson et al. found the opposite ({name[theirs]} ahead)")
            text += f" ({pub['sphere'][0]:.2f} vs {pub['euclidean'][0]:.2f})"
        out.append(text + ".")
    return out


def sampler_ablation_verdict(rows: list[dict[str, Any]]) -> list[str]:
    """One sentence per row of :func:`ccvae.tables.sampler_ablation_rows`: what the exact
    sampler gains over s-vae-pytorch's, and on which side of the Euclidean VAE each
    puts the sphere."""
    out = []
    for r in rows:
        x, sv, e = r["exact"], r["svae"], r["euclidean"]
        if x is None:
            continue
        gap = x.value - sv.value
        start = ("" if r["initial_concentration"] == tables.LATER_SETTINGS["initial_concentration"]
                 else f", κ starting at {r['initial_concentration']:g}")
        text = (f"d = {r['latent_dim']} ({r['epochs']}-epoch cap{start}): the exact sampler's sphere scores "
                f"{x.value:.2f}, s-vae's {sv.value:.2f} ({gap:+.2f} nats")
        if x.sem is not None and sv.sem is not None:
            se = math.hypot(x.sem, sv.sem)
            text += f" ± {se:.2f}{'' if abs(gap) > 2 * se else ', within noise'}"
        text += ")"
        if e is not None:
            side = lambda c: "ahead of" if c.value > e.value else "behind"
            text += f"; against the Euclidean VAE's {e.value:.2f} the sphere is "
            text += (f"{side(x)} it with either sampler" if side(x) == side(sv) else
                     f"{side(x)} it with the exact sampler and {side(sv)} it with s-vae's")
        out.append(text + ".")
    return out
