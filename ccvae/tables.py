"""Results tables from the results database: the post's ELBO tables and the IWAE
table under Davidson et al.'s protocol, each beside the published values.

Cells. A cell is one (latent dim, hidden layers, geometry) of one sweep. When it
holds several runs that differ only in their seed, the cell is their mean, and
its uncertainty is

- ``batch_std``: the post's estimate, the spread (standard deviation) of the
  per-batch mean ELBO over test batches, averaged over seeds;
- ``seed_std``: the standard deviation over seeds (only with two or more seeds).

When runs of one cell differ in more than the seed (say a second sweep with more
epochs under the same sweep name), the most recently finished configuration is
shown, so a table never averages unlike runs.

Significance. Our cell and the post's differ significantly when
``|ours - post| > 2 sqrt(err_ours^2 + err_post^2)``, where each err is the spread
that side reports (ours: batch_std, and seed_std in quadrature when there are
seeds). The post only gives its batch spread, so that is the like-for-like test.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from . import reference_results as ref
from .errors import ConfigError
from .results_db import ResultsDB
from .sweep import LATER_SETTINGS

__all__ = ["Cell", "cells", "elbo_rows", "iwae_rows", "sampler_ablation_rows", "render", "training_note",
           "protocol_note", "SIGNIFICANCE_Z", "ELBO_SWEEP", "IWAE_SWEEPS", "ABLATION_SWEEP"]

GEOMETRIES = ref.GEOMETRIES
LABELS = {"euclidean": "Euclidean", "sphere": "Sphere", "hyperbolic": "Hyperbolic"}
SIGNIFICANCE_Z = 2.0
#: The ELBO tables' sweep (the IWAE table and the sampler ablation read ``IWAE_SWEEPS``).
ELBO_SWEEP = "post"
#: The IWAE table's sweeps, newest revision of Davidson et al.'s protocol first: without
#: an explicit sweep each cell comes from the first of these that has it, and the table
#: says which. The first revision ran the protocol as the paper states it; the second
#: adds what the authors' code does and the paper does not state (``sweep.PROTOCOLS``).
IWAE_SWEEPS = ("davidson-warmup", "davidson")
IWAE_SWEEP_LABELS = {
    "davidson-warmup": "with KL warm-up over 100 epochs and batch 100, as the authors' code "
                       "(sweep davidson-warmup)",
    "davidson": "as the paper states the protocol, without warm-up, batch 128 (sweep davidson)",
}
#: The sampler ablation's sweep: the sphere under Davidson et al.'s protocol with
#: s-vae-pytorch's sampler (``--sphere-posterior vmf_svae --name davidson-svae``).
ABLATION_SWEEP = "davidson-svae"
#: Within this many nats of a published log-likelihood counts as reproducing it.
IWAE_TOLERANCE = 1.0


@dataclass(frozen=True)
class Cell:
    value: float             # mean over seeds (ELBO or IWAE, nats)
    batch_std: float | None  # the post's spread over test batches (mean over seeds)
    seed_std: float | None   # spread over seeds (None with one seed)
    sem: float | None        # standard error over test examples (mean over seeds)
    n_seeds: int
    epochs: float            # mean epochs run
    stopped: str             # how the runs ended ("early_stopping", "completed", mixed)

    @property
    def err(self) -> float:
        parts = [e for e in (self.batch_std, self.seed_std) if e is not None]
        return math.sqrt(sum(e * e for e in parts)) if parts else 0.0


def _group_key(row: dict[str, Any]) -> str:
    """Runs with equal keys differ only in their seed (and where they ran)."""
    return _setting_key(row, ("seed",))


def _std(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def cells(rows: list[dict[str, Any]], metric: str = "elbo") -> dict[tuple[int, int], dict[str, Cell]]:
    """(latent dim, layers) -> geometry -> :class:`Cell` of ``metric`` ("elbo" or "iwae")."""
    grouped: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get(metric) is None:
            continue
        grouped[(r["latent_dim"], r["layers"], r["geometry"])][_group_key(r)].append(r)
    out: dict[tuple[int, int], dict[str, Cell]] = defaultdict(dict)
    for (d, layers, geometry), groups in grouped.items():
        runs = max(groups.values(), key=lambda g: max(r["finished_at"] for r in g))
        values = [r[metric] for r in runs]
        spread_col = "elbo_batch_std" if metric == "elbo" else None
        sem_col = "elbo_sem" if metric == "elbo" else "iwae_sem"
        batch = [r[spread_col] for r in runs if spread_col and r.get(spread_col) is not None]
        sems = [r[sem_col] for r in runs if r.get(sem_col) is not None]
        stops = {r["stopped"] for r in runs}
        out[(d, layers)][geometry] = Cell(
            value=sum(values) / len(values), batch_std=sum(batch) / len(batch) if batch else None,
            seed_std=_std(values), sem=sum(sems) / len(sems) if sems else None, n_seeds=len(runs),
            epochs=sum(r["epochs_run"] for r in runs) / len(runs),
            stopped=stops.pop() if len(stops) == 1 else "mixed")
    return dict(out)


def _best(row: dict[str, Any]) -> str | None:
    present = {g: c.value for g, c in row.items() if c is not None}
    return max(present, key=present.get) if present else None


def _ratio_z(ours: Cell, post: tuple[float, float]) -> float:
    err = math.sqrt(ours.err ** 2 + post[1] ** 2)
    return (ours.value - post[0]) / err if err > 0 else math.copysign(math.inf, ours.value - post[0])


def elbo_rows(db: ResultsDB, dataset: str, sweep: str | None = None) -> list[dict[str, Any]]:
    """One dict per (D, L) of the post's grid (plus any extra cells we ran):
    ``{"latent_dim", "layers", "ours": {g: Cell}, "post": {g: (v, err)}, "best_ours",
    "best_post", "z": {g: z}, "significant": {g: bool}, "better": {g: bool}}``."""
    post = ref.post_table(dataset)
    rows = db.runs(dataset=dataset, sweep=sweep or ELBO_SWEEP, likelihood="bernoulli",
                   binarize="none")
    ours = cells(rows, "elbo")
    out = []
    for key in sorted(set(post) | set(ours)):
        o, p = ours.get(key, {}), post.get(key, {})
        z = {g: _ratio_z(o[g], p[g]) for g in GEOMETRIES if g in o and g in p}
        out.append({"latent_dim": key[0], "layers": key[1], "ours": o, "post": p,
                    "best_ours": _best(o), "best_post": ref.best_geometry(p),
                    "z": z, "significant": {g: abs(v) > SIGNIFICANCE_Z for g, v in z.items()},
                    "better": {g: o[g].value > p[g][0] for g in GEOMETRIES if g in o and g in p}})
    return out


def elbo_ceiling(db: ResultsDB, dataset: str, sweep: str | None = None) -> float | None:
    """The highest ELBO a Bernoulli model can reach on the test split these runs used
    (:func:`ccvae.evaluation.metrics.bernoulli_elbo_ceiling`), when recorded."""
    values = [r["elbo_ceiling"] for r in db.runs(dataset=dataset, sweep=sweep or ELBO_SWEEP)
              if r.get("elbo_ceiling") is not None]
    return max(values) if values else None


def iwae_rows(db: ResultsDB, sweep: str | None = None) -> list[dict[str, Any]]:
    """One dict per latent dim of Davidson et al.'s table (plus any extra dims we ran):
    ``{"latent_dim", "ours": {g: Cell}, "sweep": {g: sweep name}, "davidson": {g: (v, sd)},
    "gap": {g: ours - published}, "reproduced": {g: bool}}`` (reproduced = within
    IWAE_TOLERANCE nats, or better). Cells come from ``sweep``, or without it from the
    first of ``IWAE_SWEEPS`` that has them."""
    ours: dict[int, dict[str, Cell]] = defaultdict(dict)
    source: dict[int, dict[str, str]] = defaultdict(dict)
    for name in (sweep,) if sweep else IWAE_SWEEPS:
        for (d, _layers), row in cells(db.runs(dataset="mnist", sweep=name), "iwae").items():
            for g, cell in row.items():
                if g not in ours[d]:
                    ours[d][g], source[d][g] = cell, name
    out = []
    for d in sorted(set(ref.DAVIDSON_2018) | set(ours)):
        o, p = dict(ours.get(d, {})), ref.DAVIDSON_2018.get(d, {})
        gap = {g: o[g].value - p[g][0] for g in GEOMETRIES if g in o and g in p}
        out.append({"latent_dim": d, "ours": o, "sweep": dict(source.get(d, {})), "davidson": p,
                    "best_ours": _best(o), "gap": gap,
                    "reproduced": {g: v >= -IWAE_TOLERANCE for g, v in gap.items()}})
    return out


def protocol_note(rows: list[dict[str, Any]]) -> str:
    """Which revision of the protocol each cell of an IWAE table ran under ('' for a
    table without cells): cells of different revisions are not like for like, and a
    reader of a table from one revision should still learn which."""
    groups: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        for g in GEOMETRIES:
            if g in r.get("sweep", {}):
                groups[r["sweep"][g]].append(f"{LABELS[g].lower()} d={r['latent_dim']}")
    if not groups:
        return ""
    if len(groups) == 1:
        (name,) = groups
        return f"Protocol (every cell): {IWAE_SWEEP_LABELS.get(name, 'sweep ' + name)}."
    ordered = sorted(groups.items(), key=lambda kv: len(kv[1]))  # the largest group last
    parts = []
    for i, (name, names) in enumerate(ordered):
        last_and_long = i == len(ordered) - 1 and len(names) > 4  # then named briefly
        cells_text = f"the other {len(names)} cells" if last_and_long else ", ".join(names)
        parts.append(f"{cells_text}: {IWAE_SWEEP_LABELS.get(name, 'sweep ' + name)}")
    return "Protocol: " + "; ".join(parts) + "."


def _setting_key(row: dict[str, Any], drop: tuple[str, ...], **replace: Any) -> str:
    """The row's training and evaluation settings without ``drop`` and with ``replace``
    (and without where the data lives, which device ran it, and settings added later at
    the value runs had before them, as in run keys)."""
    train = {k: v for k, v in {**row["config"]["train"], **replace}.items()
             if k not in ("data_dir", "device", *drop) and not (k in LATER_SETTINGS and v == LATER_SETTINGS[k])}
    return repr(sorted(train.items())) + repr(sorted(row["config"]["eval"].items()))


def sampler_ablation_rows(db: ResultsDB, sweep: str | None = None,
                          ablation_sweep: str = ABLATION_SWEEP) -> list[dict[str, Any]]:
    """The vMF sampler ablation, like for like: one dict per configuration of
    ``ablation_sweep`` (sphere VAEs with s-vae-pytorch's sampler), with the runs of
    ``sweep`` (default: the ``IWAE_SWEEPS``), or exact-sampler controls in ``ablation_sweep``, that have exactly its
    settings except the sampler (the exact sphere) and except the geometry (the
    Euclidean VAE):
    ``{"latent_dim", "epochs", "initial_concentration", "kl_warmup_epochs", "batch_size",
    "svae": Cell, "exact": Cell | None,
    "euclidean": Cell | None}`` (IWAE cells; several seeds make one cell). The sphere's
    initial concentration is not a setting of the Euclidean VAE, so it is ignored there."""
    # partners come from the main sweep, or from controls run in the ablation's own sweep
    base = [r for name in ((sweep,) if sweep else IWAE_SWEEPS) for r in db.runs(dataset="mnist", sweep=name)] + [
        r for r in db.runs(dataset="mnist", sweep=ablation_sweep)
        if r["config"]["train"].get("sphere_posterior", "vmf") == "vmf"]
    sampler_free = ("seed", "sphere_posterior")
    sphere_free = sampler_free + ("initial_concentration",)
    out = []
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in db.runs(dataset="mnist", sweep=ablation_sweep, geometry="sphere"):
        if r["config"]["train"].get("sphere_posterior") == "vmf_svae" and r.get("iwae") is not None:
            groups[_setting_key(r, sampler_free)].append(r)
    for key, runs in groups.items():
        seeds = {r["seed"] for r in runs}
        plane_key = _setting_key(runs[0], sphere_free)
        exact = [r for r in base if r["geometry"] == "sphere" and r["seed"] in seeds
                 and _setting_key(r, sampler_free) == key]
        plane = [r for r in base if r["geometry"] == "euclidean" and r["seed"] in seeds
                 and _setting_key(r, sphere_free, geometry="sphere") == plane_key]

        def one(rs):
            return next(iter(next(iter(cells(rs, "iwae").values())).values())) if rs else None

        train = runs[0]["config"]["train"]
        out.append({"latent_dim": runs[0]["latent_dim"], "epochs": train["epochs"],
                    "initial_concentration": train.get("initial_concentration",
                                                       LATER_SETTINGS["initial_concentration"]),
                    "kl_warmup_epochs": train.get("kl_warmup_epochs", 0), "batch_size": train.get("batch_size"),
                    "svae": one(runs), "exact": one(exact), "euclidean": one(plane)})
    return sorted(out, key=lambda r: (r["latent_dim"], r["epochs"], r["kl_warmup_epochs"],
                                      r["initial_concentration"]))


# ---------------------------------------------------------------------- formatting
def _fmt_cell(c: Cell | None, best: bool, mark: str) -> str:
    if c is None:
        return "—"
    err = c.err
    text = f"{c.value:.1f} ± {err:.1f}" if err else f"{c.value:.1f}"
    if c.n_seeds > 1:
        text += f" (n={c.n_seeds})"
    return f"{mark}{text}{mark}" if best and mark else (f"★ {text}" if best else text)


def _fmt_pub(p: tuple[float, float] | None, best: bool, mark: str, digits: int = 1) -> str:
    if p is None:
        return "—"
    text = f"{p[0]:.{digits}f} ± {p[1]:.{digits}f}"
    return f"{mark}{text}{mark}" if best and mark else (f"★ {text}" if best else text)


def _fmt_iwae(c: Cell | None) -> str:
    if c is None:
        return "—"
    err = c.seed_std if c.seed_std is not None else c.sem
    return f"{c.value:.2f} ± {err:.2f}" if err else f"{c.value:.2f}"


def _fmt_difference(a: Cell, b: Cell) -> str:
    errs = [c.seed_std if c.seed_std is not None else c.sem for c in (a, b)]
    text = f"{a.value - b.value:+.2f}"
    return f"{text} ± {math.hypot(*errs):.2f}" if all(e is not None for e in errs) else text


_STOP_WORDS = {"completed": "the epoch cap", "early_stopping": "early stopping",
               "cancelled": "cancelled", "mixed": "mixed endings"}


def training_note(rows: list[dict[str, Any]]) -> str:
    """How long each cell's runs trained, most common first: 'Training: 13 cells 100 epochs
    (the epoch cap); sphere d=5: 612 epochs (early stopping); ...' (a length that only
    one cell has is named with its cell, the first one included). Cells trained for
    different lengths are not like for like, and the table says so."""
    groups: dict[tuple[int, str], list[str]] = defaultdict(list)
    for r in rows:
        for g in GEOMETRIES:
            c = r["ours"].get(g)
            if c is not None:
                groups[(round(c.epochs), c.stopped)].append(f"{LABELS[g].lower()} d={r['latent_dim']}")
    if not groups:
        return ""
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    parts = []
    for i, ((epochs, stop), names) in enumerate(ordered):
        how = f"{epochs:g} epochs ({_STOP_WORDS.get(stop, stop)})"
        parts.append(f"{len(names)} cells {how}" if i == 0 and len(names) > 1 else f"{', '.join(names)}: {how}")
    return "Training: " + "; ".join(parts) + "."


def _table_records(db: ResultsDB, dataset: str, kind: str, sweep: str | None, published: bool,
                   mark: str) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, body rows and footnotes of a table, as strings."""
    notes: list[str] = []
    if kind == "elbo":
        rows = elbo_rows(db, dataset, sweep)
        header = ["D", "L"] + [LABELS[g] for g in GEOMETRIES]
        if published:
            header += [f"{LABELS[g]} (post)" for g in GEOMETRIES]
        body = []
        for r in rows:
            line = [str(r["latent_dim"]), str(r["layers"])]
            line += [_fmt_cell(r["ours"].get(g), g == r["best_ours"], mark) for g in GEOMETRIES]
            if published:
                line += [_fmt_pub(r["post"].get(g), g == r["best_post"], mark) for g in GEOMETRIES]
            body.append(line)
        filled = [(r, g) for r in rows for g in GEOMETRIES if g in r["ours"]]
        if published and filled:
            n_post = sum(1 for r, g in filled if g in r["post"])
            better = sum(1 for r, g in filled if r["better"].get(g))
            sig = sum(1 for r, g in filled if r["significant"].get(g))
            notes.append(f"{better} of {n_post} cells beat the post; {sig} differ significantly "
                         f"(|difference| > {SIGNIFICANCE_Z:g} combined spreads).")
        ceiling = elbo_ceiling(db, dataset, sweep)
        if ceiling is not None and dataset == "lfw":
            notes.append(f"No Bernoulli model can exceed {ceiling:.1f} nats on this test split "
                         "(minus the summed binary entropy of the grey pixels).")
        notes.append("ELBO in nats per image (higher is better) ± spread of per-batch means over test "
                     "batches; best geometry per row marked.")
    elif kind == "iwae":
        if dataset != "mnist":
            raise ConfigError("the IWAE protocol table is defined on mnist only")
        rows = iwae_rows(db, sweep)
        header = ["d"] + [LABELS[g] for g in GEOMETRIES]
        if published:
            header += ["N-VAE (Davidson)", "S-VAE (Davidson)"]
        body = []
        for r in rows:
            line = [str(r["latent_dim"])]
            for g in GEOMETRIES:
                text = _fmt_iwae(r["ours"].get(g))
                best = g == r["best_ours"] and text != "—"
                line.append(f"{mark}{text}{mark}" if best and mark else (f"★ {text}" if best else text))
            if published:
                p = r["davidson"]
                pb = ref.best_geometry(p)
                line += [_fmt_pub(p.get(g), g == pb, mark, 2) for g in ("euclidean", "sphere")]
            body.append(line)
        notes.append("Test log-likelihood (nats, IWAE k=500) under Davidson et al.'s protocol; ± is the "
                     "seed s.d. with several seeds, else the standard error over test images.")
        notes += [n for n in (protocol_note(rows), training_note(rows)) if n]
        if published:
            notes.append(ref.DAVIDSON_2018_CITATION)
    elif kind == "sampler":
        if dataset != "mnist":
            raise ConfigError("the sampler ablation is defined on mnist only")
        rows = sampler_ablation_rows(db, sweep)
        header = ["d", "epochs", "KL warm-up, batch", "initial kappa", "Euclidean", "Sphere, exact sampler",
                  "Sphere, s-vae sampler", "exact - s-vae"]
        if published:
            header += ["N-VAE (Davidson)", "S-VAE (Davidson)"]
        body = []
        for r in rows:
            e, x, sv = r["euclidean"], r["exact"], r["svae"]
            warmup = f"{r['kl_warmup_epochs']} epochs" if r["kl_warmup_epochs"] else "none"
            batch = "—" if r["batch_size"] is None else r["batch_size"]
            line = [str(r["latent_dim"]), f"{r['epochs']} cap", f"{warmup}, {batch}",
                    f"{r['initial_concentration']:g}"]
            line += [_fmt_iwae(c) for c in (e, x, sv)]
            line.append(_fmt_iwae(None) if x is None else _fmt_difference(x, sv))
            if published:
                p = ref.DAVIDSON_2018.get(r["latent_dim"], {})
                line += [_fmt_pub(p.get(g), False, mark, 2) for g in ("euclidean", "sphere")]
            body.append(line)
        notes.append("Test log-likelihood (nats, IWAE k=500) under Davidson et al.'s protocol. Each row is "
                     "one configuration (same seed, data order, epoch cap and early stopping); the two "
                     "sphere columns differ only in the vMF sampler: exact, or s-vae-pytorch's (approximate "
                     "envelope above kappa = 10, kappa-gradient without the correction term). ± is the "
                     "standard error over test images (the difference's is unpaired, so conservative).")
        if published:
            notes.append(ref.DAVIDSON_2018_CITATION)
        if not rows:
            notes.insert(0, f"(no runs in sweep {ABLATION_SWEEP!r} of {db.path}: run `ccvae sweep --protocol "
                            "davidson --geometries sphere --latent-dims 20,40 --sphere-posterior vmf_svae "
                            f"--name {ABLATION_SWEEP}` with the --epochs of the runs to compare)")
        return header, body, notes
    else:
        raise ConfigError(f"unknown table kind {kind!r}; choose elbo, iwae or sampler")
    if not any(r["ours"] for r in rows):
        where = repr(sweep) if sweep else (" or ".join(map(repr, IWAE_SWEEPS)) if kind == "iwae"
                                           else repr(ELBO_SWEEP))
        notes.insert(0, f"(no {dataset} runs in sweep {where} of {db.path}: published values only)")
    return header, body, notes


def render(db: ResultsDB, dataset: str = "mnist", kind: str = "elbo", fmt: str = "markdown",
           sweep: str | None = None, published: bool = True) -> str:
    """The table as text: ``fmt`` is text, markdown, csv or latex."""
    if fmt not in ("text", "markdown", "csv", "latex"):
        raise ConfigError(f"unknown format {fmt!r}; choose text, markdown, csv or latex")
    mark = {"markdown": "**", "latex": "", "csv": "", "text": ""}[fmt]
    header, body, notes = _table_records(db, dataset, kind, sweep, published, mark)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows([[c.replace("★ ", "*") for c in line] for line in body])
        return buf.getvalue().rstrip("\n")
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(line) + " |" for line in body]
        return "\n".join(lines + [""] + notes)
    if fmt == "latex":
        def tex(c: str) -> str:
            c = c.replace("±", r"$\pm$").replace("—", "--")
            return r"\textbf{" + c[2:] + "}" if c.startswith("★ ") else c
        lines = [r"\begin{tabular}{" + "r" * len(header) + "}", r"\toprule",
                 " & ".join(header) + r" \\", r"\midrule"]
        lines += [" & ".join(tex(c) for c in line) + r" \\" for line in body]
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines + ["% " + n for n in notes])
    widths = [max(len(h), *(len(line[i]) for line in body)) if body else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in body]
    return "\n".join(lines + [""] + notes)
