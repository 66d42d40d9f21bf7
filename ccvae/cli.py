"""Command line: ``python -m ccvae`` (also installed as ``ccvae``).

    ccvae train --dataset mnist --geometry sphere --latent-dim 2 --epochs 30 --out checkpoints/x
    ccvae evaluate checkpoints/x [--iwae-samples 500]
    ccvae list [ROOT]
    ccvae sweep --dataset mnist --latent-dims 2,3,5,10,50 --layers 1,2,3 --epochs 80 [--workers W]
    ccvae table --dataset mnist [--format markdown|csv|latex]

Every failure the user can fix (a bad flag, a missing file, a corrupt checkpoint)
ends with one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from .errors import CCVAEError, ConfigError

EXIT_USAGE = 2
EXIT_ERROR = 1


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _int_at_least(minimum: int, what: str):
    """An argparse type: an integer >= ``minimum``, with a one-line message otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {value}")
        return value
    return parse


_positive_int = _int_at_least(1, "positive")
_non_negative_int = _int_at_least(0, "non-negative")


def _widths(text: str) -> int | list[int]:
    parts = text.split(",")
    values = [_positive_int(p) for p in parts]
    return values[0] if len(values) == 1 else values


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip().replace("-", "_"), value


INITIAL_CONCENTRATION_HELP = ("the sphere encoder's concentration kappa at initialisation, above 1 (default: 10; "
                              "s-vae-pytorch's encoders start near 1.7)")
SPHERE_POSTERIOR_HELP = ("the sphere's posterior: vmf (exact sampler, the default), power_spherical "
                         "(De Cao & Aziz 2020) or vmf_svae (s-vae-pytorch's BIASED sampler and "
                         "kappa-gradient, for ablations)")


def build_parser() -> argparse.ArgumentParser:
    from .models import GEOMETRIES, LIKELIHOODS, SPHERE_POSTERIORS
    from .models.latent import INITIAL_CONCENTRATION

    parser = _Parser(prog="ccvae", description=(
        "Constant-curvature VAEs: train, evaluate and list models whose latent space is "
        "flat (Gaussian), spherical (von Mises-Fisher) or hyperbolic (wrapped normal)."))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    t = sub.add_parser("train", help="train a VAE and write a checkpoint directory",
                       description="Train a VAE and write a checkpoint directory (weights, config.json, metrics.json).")
    t.add_argument("--dataset", default="mnist", help="mnist, lfw or qm9 (default: mnist)")
    t.add_argument("--data-dir", help="folder holding the dataset files (default: CCVAE_DATA, then the built-in sources)")
    t.add_argument("--geometry", default="euclidean", choices=list(GEOMETRIES), help="latent geometry (default: euclidean)")
    t.add_argument("--latent-dim", type=_positive_int, default=2, help="dimension of the latent manifold: 2 means R^2, S^2 or H^2 (default: 2)")
    t.add_argument("--hidden", type=_widths, default=256, help="width of each hidden layer, or one width per layer such as 256,128 (the decoder mirrors it) (default: 256)")
    t.add_argument("--layers", type=_non_negative_int, default=2, help="hidden layers in the encoder and in the decoder; ignored when --hidden lists widths (default: 2)")
    t.add_argument("--likelihood", choices=list(LIKELIHOODS), help="observation model (default: bernoulli for images, von_mises for qm9)")
    t.add_argument("--activation", default="relu", help="relu, elu, tanh, gelu or silu (default: relu)")
    t.add_argument("--epochs", type=_positive_int, default=30, help="maximum number of epochs (default: 30)")
    t.add_argument("--batch-size", type=_positive_int, default=128, help="(default: 128)")
    t.add_argument("--lr", type=_positive_float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    t.add_argument("--seed", type=_non_negative_int, default=0, help="seed for the split, initialisation and sampling (default: 0)")
    t.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: auto = CUDA when available)")
    t.add_argument("--kl-warmup-epochs", type=_non_negative_int, default=0, help="anneal the KL weight from 0 to 1 over this many epochs (default: 0 = off)")
    t.add_argument("--early-stopping", type=_positive_int, metavar="PATIENCE", help="stop after this many epochs without a better validation ELBO")
    t.add_argument("--max-examples", type=_positive_int, help="train on at most this many examples (quick runs)")
    t.add_argument("--binarize", choices=["none", "dynamic"], default="none", help="dynamic: resample binary pixels every batch (Davidson et al.'s protocol)")
    t.add_argument("--sphere-posterior", choices=list(SPHERE_POSTERIORS), default="vmf", help=SPHERE_POSTERIOR_HELP)
    t.add_argument("--initial-concentration", type=_positive_float, default=INITIAL_CONCENTRATION,
                   help=INITIAL_CONCENTRATION_HELP)
    t.add_argument("--data-option", type=_key_value, action="append", default=[], metavar="KEY=VALUE", help="extra dataset option, e.g. max_molecules=2000 for qm9")
    t.add_argument("--iwae-samples", type=_non_negative_int, default=100, help="importance samples for the final test IWAE (default: 100; 0 skips it)")
    t.add_argument("--out", help="checkpoint directory to write (default: runs/<dataset>-<geometry>-d<dim>-l<layers>-s<seed>)")
    t.add_argument("--overwrite", action="store_true",
                   help="replace the checkpoint already in --out (it is kept until the new one is written)")
    t.add_argument("--progress-file", help="append one JSON line per epoch (and batch progress) to this file, for dashboards")
    t.add_argument("--stop-file", help="stop cleanly (keeping the best model) as soon as this file exists")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("evaluate", help="evaluate a checkpoint on its test set and update metrics.json",
                       description="Evaluate a checkpoint on its dataset's test split, print a table and update its metrics.json.")
    e.add_argument("path", help="checkpoint directory")
    e.add_argument("--iwae-samples", type=_non_negative_int, default=500, help="importance samples for the IWAE bound (default: 500; 0 skips it)")
    e.add_argument("--batch-size", type=_positive_int, default=100, help="test batch size; the ELBO's batch spread uses it (default: 100)")
    e.add_argument("--float64", action="store_true", help="evaluate in double precision")
    e.add_argument("--data-dir", help="folder holding the dataset (default: the one recorded at training)")
    e.add_argument("--max-examples", type=_positive_int, help="evaluate on the first N test examples only")
    e.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    e.add_argument("--no-write", action="store_true", help="print only; leave metrics.json unchanged")
    e.add_argument("--overwrite", action="store_true",
                   help="write the metrics even where they cover fewer test examples or IWAE samples "
                        "than those stored (by default such an evaluation is printed only)")
    e.add_argument("--quiet", action="store_true", help="no progress bar")

    ls = sub.add_parser("list", help="list the checkpoints under a folder",
                        description="List every checkpoint under ROOT with its geometry, data and test metrics.")
    ls.add_argument("root", nargs="?", default="checkpoints", help="folder to search (default: checkpoints)")
    fmt = ls.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON instead of a table")
    fmt.add_argument("--markdown", action="store_true", help="print a markdown table (for READMEs)")
    _add_sweep_parser(sub, GEOMETRIES, LIKELIHOODS)
    _add_table_parser(sub)
    return parser


def _csv_of(cast, what: str):
    def parse(text: str) -> tuple:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}, got {text!r}")
        return tuple(cast(t) for t in items)
    return parse


def _geometry_list(geometries):
    def parse(text: str) -> tuple:
        values = _csv_of(str, "geometries")(text)
        bad = [g for g in values if g not in geometries]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown geometry {bad[0]!r}; choose from {', '.join(geometries)}")
        return values
    return parse


def _add_sweep_parser(sub, geometries, likelihoods) -> None:
    from .models import SPHERE_POSTERIORS
    from .results_db import DEFAULT_DB
    from .sweep import PROTOCOLS

    s = sub.add_parser("sweep", help="train and evaluate a grid of configurations into the results database",
                       description="Train and evaluate every configuration of a grid (geometries x latent dims "
                       "x hidden layers x seeds) in parallel, and record each finished run in the SQLite "
                       "results database. Resumable: finished runs are skipped, killed runs are redone.")
    s.add_argument("--dataset", help="mnist, lfw or qm9 (default: mnist, or the protocol's)")
    s.add_argument("--protocol", choices=sorted(PROTOCOLS),
                   help="a published protocol's settings: davidson = dynamically binarised MNIST, "
                        "784-256-128 MLP, Adam 1e-3, batch 100, KL warm-up over 100 epochs, early "
                        "stopping (patience 50), IWAE k=500 in float64; recorded as sweep davidson-warmup")
    s.add_argument("--geometries", type=_geometry_list(geometries), default=tuple(geometries),
                   help="comma-separated (default: euclidean,sphere,hyperbolic)")
    s.add_argument("--latent-dims", type=_csv_of(_positive_int, "positive integers"), help="e.g. 2,3,5,10,50")
    s.add_argument("--layers", type=_csv_of(_non_negative_int, "non-negative integers"),
                   help="hidden-layer counts, e.g. 1,2,3 (default: 1)")
    s.add_argument("--hidden", type=_widths, help="width of every hidden layer (default: 128, the post's), or "
                   "widths such as 256,128")
    s.add_argument("--epochs", type=_positive_int, help="maximum epochs per run (default: 100)")
    s.add_argument("--early-stopping", type=_positive_int, metavar="PATIENCE",
                   help="epochs without a better validation ELBO before a run stops (default: 10)")
    s.add_argument("--kl-warmup-epochs", type=_non_negative_int, help="KL annealing epochs (default: 0)")
    s.add_argument("--seeds", type=_positive_int, default=1, help="seeds per configuration: 0..N-1 (default: 1)")
    s.add_argument("--batch-size", type=_positive_int, help="(default: 128)")
    s.add_argument("--lr", type=_positive_float, help="Adam learning rate (default: 1e-3)")
    s.add_argument("--likelihood", choices=list(likelihoods), help="(default: bernoulli, the post's BCE)")
    s.add_argument("--binarize", choices=["none", "dynamic"], help="dynamic: Davidson et al.'s binarisation")
    s.add_argument("--sphere-posterior", choices=list(SPHERE_POSTERIORS), help=SPHERE_POSTERIOR_HELP + "; for the sphere runs")
    s.add_argument("--initial-concentration", type=_positive_float,
                   help=INITIAL_CONCENTRATION_HELP + "; for the sphere runs")
    s.add_argument("--max-examples", type=_positive_int, help="train on at most N examples (quick runs)")
    s.add_argument("--iwae-k", type=_non_negative_int, help="importance samples of the IWAE log-likelihood (default: 500; 0 skips it)")
    s.add_argument("--iwae-examples", type=_positive_int, help="IWAE on the first N test examples only (default: all)")
    s.add_argument("--eval-float64", action="store_true", default=None, help="evaluate in double precision")
    s.add_argument("--name", help="sweep name stored with each run; tables select by it (default: post, or the protocol's)")
    s.add_argument("--workers", type=_positive_int, help="parallel runs (default: one per usable core)")
    s.add_argument("--threads", type=_positive_int,
                   help="torch threads per run (default: the usable cores shared among the runs "
                        "that start together); 1 on a machine busy with other work, where a run "
                        "given a second thread waits on a busy core")
    s.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local worker processes, or a Ray cluster (pip install -r requirements-cluster.txt)")
    s.add_argument("--address", help="Ray cluster address for --backend ray (default: start a local Ray)")
    s.add_argument("--db", default=str(DEFAULT_DB), help=f"results database (default: {DEFAULT_DB})")
    s.add_argument("--data-dir", help="folder holding the dataset files")
    s.add_argument("--dry-run", action="store_true", help="list the runs and which are done; train nothing")
    s.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_table_parser(sub) -> None:
    from .results_db import DEFAULT_DB

    t = sub.add_parser("table", help="print a results table from the results database",
                       description="Print the ELBO table in the post's shape (latent dims x hidden layers x "
                       "geometry, best geometry per row marked), or the IWAE table against published values.")
    t.add_argument("--dataset", default="mnist", choices=["mnist", "lfw"], help="(default: mnist)")
    t.add_argument("--kind", choices=["elbo", "iwae", "sampler"], default="elbo",
                   help="elbo: the post's table; iwae: log-likelihoods under Davidson et al.'s protocol; "
                        "sampler: the same with s-vae-pytorch's vMF sampler beside the exact one")
    t.add_argument("--format", choices=["text", "markdown", "csv", "latex"], default="text", dest="fmt")
    t.add_argument("--sweep", help="sweep name to read (default: post for elbo; for iwae and sampler each cell "
                   "from davidson-warmup, else davidson: the protocol's two revisions)")
    t.add_argument("--no-published", action="store_true", help="our values only, without the published ones")
    t.add_argument("--db", default=str(DEFAULT_DB), help=f"results database (default: {DEFAULT_DB})")


# -- helpers ---------------------------------------------------------------------

def format_table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A plain aligned text table."""
    if not rows:
        return "(none)"
    columns = list(columns or rows[0].keys())

    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e-2 and v != 0 else f"{v:.2f}"
        return "" if v is None else str(v)

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths)))
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(b) for b in body])


def markdown_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    def cell(v):
        return f"{v:.2f}" if isinstance(v, float) else ("" if v is None else str(v))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def metrics_table(metrics: dict[str, Any]) -> str:
    keys = [("elbo", "ELBO (nats)"), ("elbo_batch_std", "  ± batch std"), ("recon", "reconstruction"),
            ("kl", "KL"), ("iwae", "IWAE log-likelihood"), ("iwae_k", "  importance samples"),
            ("bits_per_dim", "bits/dim"), ("knn_accuracy", "k-NN accuracy"),
            ("angle_mae_deg", "mean |angle error| (deg)"), ("baseline_angle_mae_deg", "  baseline: circular means"),
            ("angle_median_deg", "median |angle error| (deg)"), ("rmsd_median_A", "median heavy-atom RMSD (Å)"),
            ("baseline_rmsd_median_A", "  baseline RMSD (Å)"),
            ("n_examples", "test examples")]
    rows = [{"metric": label, "value": metrics[k]} for k, label in keys if k in metrics]
    return format_table(rows)


class ProgressFile:
    """JSON-lines progress for a dashboard that watches a training subprocess.

    Epoch records are appended as they come; batch progress is written at most
    twice a second so the file stays small.
    """

    def __init__(self, path: str | Path):
        import time
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = time.monotonic
        self._last = 0.0

    def write(self, record: dict) -> None:
        import time
        record = {"time": time.time(), **record}
        with open(self.path, "a") as f:
            f.write(json.dumps(record, default=str) + "\n")

    def epoch(self, record: dict) -> None:
        self.write({"event": "epoch", **record})

    def batch(self, epoch: int, i: int, n: int) -> None:
        now = self._clock()
        if now - self._last >= 0.5 or i == n:
            self._last = now
            self.write({"event": "batch", "epoch": epoch, "batch": i, "n_batches": n})


def _check_writable_folder(folder: Path, what: str) -> None:
    """ConfigError unless ``folder`` exists (or can be made) and takes a new file."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ConfigError(f"{what}: cannot write in {folder} ({e.strerror or e})") from None


def _check_appendable(path: Path, what: str) -> None:
    """ConfigError unless ``path`` can be opened for appending (made if missing)."""
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a"):
            pass
    except OSError as e:
        raise ConfigError(f"{what} {path}: cannot write it ({e.strerror or e})") from None


# -- commands ----------------------------------------------------------------------

def cmd_train(args) -> int:
    from . import checkpoints
    from .data.registry import load_dataset
    from .training import TrainConfig, resolve_device
    from .workflows import train_to_checkpoint

    cfg = TrainConfig(dataset=args.dataset, geometry=args.geometry, latent_dim=args.latent_dim,
                      hidden=args.hidden, layers=args.layers, likelihood=args.likelihood,
                      activation=args.activation, epochs=args.epochs, batch_size=args.batch_size,
                      lr=args.lr, seed=args.seed, device=args.device,
                      kl_warmup_epochs=args.kl_warmup_epochs, early_stopping=args.early_stopping,
                      max_examples=args.max_examples, binarize=args.binarize,
                      data_dir=args.data_dir, dataset_options=dict(args.data_option),
                      sphere_posterior=args.sphere_posterior,
                      initial_concentration=args.initial_concentration)
    out = Path(args.out or f"runs/{cfg.dataset}-{cfg.geometry}-d{cfg.latent_dim}-l{cfg.layers}-s{cfg.seed}")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not checkpoints.is_checkpoint(out))):
        raise ConfigError(f"--out {out} exists and is not a checkpoint; choose another folder")
    if out.is_dir() and checkpoints.is_checkpoint(out) and not args.overwrite:
        raise ConfigError(f"--out {out} already holds a checkpoint; pass --overwrite to replace it "
                          "when training ends, or choose another folder")
    resolve_device(cfg.device)
    # Where the results go must be writable before any training is spent on them.
    _check_writable_folder(out.parent, f"--out {out}")
    if args.progress_file:
        _check_appendable(Path(args.progress_file), "--progress-file")
    extra = {"progress": False} if args.quiet and cfg.dataset == "qm9" else {}
    bundle = load_dataset(cfg.dataset, cfg.data_dir, seed=cfg.seed, **cfg.dataset_options, **extra)
    if not args.quiet:
        print(bundle.summary(), file=sys.stderr)
    progress = ProgressFile(args.progress_file) if args.progress_file else None
    stop_file = Path(args.stop_file) if args.stop_file else None
    if progress:
        progress.write({"event": "start", "config": cfg.to_dict(), "out": str(out),
                        "data": bundle.summary()})
    result, metrics = train_to_checkpoint(
        cfg, out, bundle=bundle, iwae_samples=args.iwae_samples, progress=not args.quiet,
        on_epoch=progress.epoch if progress else None, on_batch=progress.batch if progress else None,
        should_stop=(lambda: stop_file.exists()) if stop_file else None)
    if progress:
        progress.write({"event": "done", "stopped": result.stopped, "out": str(out),
                        "test": metrics["test"]})
    print(f"wrote {out} (best epoch {result.best_epoch}, {result.stopped}, {result.seconds:.0f} s)")
    print(metrics_table(metrics["test"]))
    return 0


def cmd_evaluate(args) -> int:
    from . import checkpoints
    from .data.registry import load_dataset
    from .training import TrainConfig, resolve_device
    from .workflows import evaluate_bundle

    device = resolve_device(args.device)
    model, info = checkpoints.load(args.path, map_location=device)
    cfg = TrainConfig.from_dict(info.config.get("training", {}) or {"dataset": info.dataset})
    bundle = load_dataset(cfg.dataset, args.data_dir or cfg.data_dir, seed=cfg.seed, **cfg.dataset_options)
    trained_on = info.config.get("data", {}).get("source")
    if trained_on and trained_on.split(":")[0] != bundle.source.split(":")[0]:
        print(f"note: trained on {trained_on}, evaluating on {bundle.source}", file=sys.stderr)
    test = evaluate_bundle(model, bundle, cfg, iwae_samples=args.iwae_samples, batch_size=args.batch_size,
                           float64=args.float64, max_examples=args.max_examples, device=device,
                           progress=not args.quiet)
    print(metrics_table(test))
    if args.no_write:
        return 0
    narrower = _narrower_evaluation(test, info.metrics.get("test"))
    if narrower and not args.overwrite:
        print(f"not written: this evaluation is narrower than the one in "
              f"{Path(args.path) / checkpoints.METRICS_FILE} ({narrower}); pass --overwrite "
              "to replace it anyway", file=sys.stderr)
        return 0
    checkpoints.update_metrics(args.path, test=test)
    print(f"updated {Path(args.path) / checkpoints.METRICS_FILE}", file=sys.stderr)
    return 0


def _narrower_evaluation(new: dict, stored) -> str | None:
    """Why ``new`` test metrics cover less than the ``stored`` ones (fewer test examples,
    or fewer importance samples for the IWAE), or None where they cover as much."""
    if not isinstance(stored, dict):
        return None
    reasons = []
    n_new, n_old = new.get("n_examples"), stored.get("n_examples")
    if isinstance(n_new, int) and isinstance(n_old, int) and n_new < n_old:
        reasons.append(f"{n_new} test examples against {n_old}")
    k_new, k_old = new.get("iwae_k") or 0, stored.get("iwae_k") or 0
    if isinstance(k_new, int) and isinstance(k_old, int) and k_new < k_old:
        reasons.append(f"IWAE with k = {k_new} against k = {k_old}")
    return "; ".join(reasons) or None


def cmd_list(args) -> int:
    from .checkpoints import list_checkpoints

    root = Path(args.root)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder")
    skipped: list[tuple[Path, str]] = []
    rows = [c.summary_row() for c in list_checkpoints(root, skipped)]
    for path, why in skipped:
        print(f"note: skipped {path}: {why}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(f"no checkpoints under {root}")
    else:
        columns = ["name", "dataset", "geometry", "latent_dim", "layers", "hidden", "likelihood",
                   "test_elbo", "test_iwae", "subset"]
        print(markdown_table(rows, columns) if args.markdown else format_table(rows, columns))
    return 0


def cmd_sweep(args) -> int:
    from .results_db import ResultsDB
    from .sweep import SweepSpec, expand, protocol_spec, run_sweep, summarise

    chosen = {
        "dataset": args.dataset, "geometries": args.geometries, "latent_dims": args.latent_dims,
        "layers": args.layers, "seeds": args.seeds, "name": args.name,
        "hidden": tuple(args.hidden) if isinstance(args.hidden, list) else args.hidden,
        "epochs": args.epochs, "early_stopping": args.early_stopping,
        "kl_warmup_epochs": args.kl_warmup_epochs, "batch_size": args.batch_size, "lr": args.lr,
        "likelihood": args.likelihood, "binarize": args.binarize, "max_examples": args.max_examples,
        "sphere_posterior": args.sphere_posterior, "initial_concentration": args.initial_concentration,
        "iwae_k": args.iwae_k, "iwae_examples": args.iwae_examples, "eval_float64": args.eval_float64,
        "data_dir": args.data_dir,
    }
    if isinstance(chosen["hidden"], tuple) and args.layers is None:
        chosen["layers"] = (len(chosen["hidden"]),)
    if args.protocol:
        if args.dataset and args.dataset != "mnist":
            raise ConfigError(f"--protocol {args.protocol} is defined on mnist, not {args.dataset}")
        spec = protocol_spec(args.protocol, **chosen)
    else:
        if args.latent_dims is None:
            raise ConfigError("--latent-dims is required (for example --latent-dims 2,3,5,10,50)")
        chosen["dataset"] = args.dataset or "mnist"
        spec = SweepSpec(**{k: v for k, v in chosen.items() if v is not None})
    jobs = expand(spec)  # every run's settings checked before the database is touched
    db = ResultsDB(args.db)
    command = "ccvae " + " ".join(sys.argv[1:]) if sys.argv and "sweep" in sys.argv else None
    if args.dry_run:
        done = db.done_keys()
        for j in jobs:
            t = j["train"]
            print(f"{'done' if j['key'] in done else 'todo'}  {j['key']}  {t['geometry']:<10} "
                  f"d={t['latent_dim']:<3} L={t['layers']} seed={t['seed']}")
        print(f"{sum(j['key'] in done for j in jobs)} of {len(jobs)} runs done in {db.path}")
        return 0
    report = run_sweep(spec, db, workers=args.workers, backend=args.backend, address=args.address,
                       threads=args.threads, progress=not args.quiet, command=command)
    print(summarise(report) + f"; results in {db.path}")
    if report.interrupted:
        return 130
    return EXIT_ERROR if report.failed else 0


def cmd_table(args) -> int:
    from .results_db import ResultsDB
    from . import tables

    db = ResultsDB(args.db, create=False)
    text = tables.render(db, dataset=args.dataset, kind=args.kind, fmt=args.fmt, sweep=args.sweep,
                         published=not args.no_published)
    print(text)
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "list": cmd_list, "sweep": cmd_sweep,
            "table": cmd_table}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CCVAEError as e:
        print(f"ccvae {args.command}: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"ccvae {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`ccvae table | head`): not an error of ours. Point
        # stdout at devnull so the interpreter's final flush does not complain.
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
