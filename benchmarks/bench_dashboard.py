"""Dashboard timings against the targets of the dashboard issue.

    .venv/bin/python benchmarks/bench_dashboard.py [--checkpoints DIR] [--repeats N]

Measures, on CPU:

1. first render of each page after start (target <= 3 s of script time):
   (a) strict: a fresh Python process per page runs ``app.py`` on that page with
   streamlit.testing's AppTest; the script time of that first run (cold caches, every
   import included: torch alone takes ~2 s here) is reported; (b) as a user meets
   it: one session renders Home, then visits each page once (each page's first run,
   with its own data, models and lazy imports still cold);
2. the Latent explorer on an MNIST checkpoint with 10,000 test points: a warm rerun,
   and a rerun after moving the cursor (target <= 1 s);
3. decoding one cursor point (target <= 100 ms) and a 15 x 15 decode grid, mosaic
   included (target <= 0.5 s), through the same package calls the page makes;
4. the size of the scatter's JSON and the time to build and serialise it.

Uses the shipped checkpoints (``checkpoints/`` or ``$CCVAE_CHECKPOINTS``); when there
is no MNIST checkpoint it trains a small one (1 epoch) into a temporary folder.
The browser's click-to-image time is printed by ``tests/test_browser.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PAGES = ["home", "train", "latent_explorer", "compare", "molecules", "elbo_tables", "distributions"]
TARGETS = {"first render": 3.0, "warm rerun": 1.0, "cursor decode": 0.1, "15x15 grid": 0.5}

_FIRST_RENDER = r"""
import json, sys, time
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=600)
at.switch_page(f"app_pages/{sys.argv[2]}.py")
t = time.perf_counter()
at.run()
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "exceptions": [e.value for e in at.exception],
                  "errors": [e.value for e in at.error]}))
"""


def first_render(page: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", _FIRST_RENDER, str(REPO / "app.py"), page],
                         capture_output=True, text=True, env=env, cwd=REPO)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode or not lines:
        return {"seconds": float("nan"), "errors": [out.stderr[-500:]]}
    return json.loads(lines[-1])


_SESSION = r"""
import json, sys, time
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=600)
out = {}
for page in sys.argv[2:]:
    if page != "home":
        at.switch_page(f"app_pages/{page}.py")
    t = time.perf_counter()
    at.run()
    out[page] = {"seconds": time.perf_counter() - t,
                 "errors": [e.value for e in at.exception] + [e.value for e in at.error]}
print(json.dumps(out))
"""


def session_first_visits(env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", _SESSION, str(REPO / "app.py"), *PAGES],
                         capture_output=True, text=True, env=env, cwd=REPO)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode or not lines:
        return {p: {"seconds": float("nan"), "errors": [out.stderr[-500:]]} for p in PAGES}
    return json.loads(lines[-1])


def mnist_checkpoint(root: Path) -> Path:
    from ccvae.checkpoints import list_checkpoints

    infos = [i for i in list_checkpoints(root) if i.dataset == "mnist"]
    if infos:
        two_d = [i for i in infos if i.latent_dim == 2] or infos
        return two_d[0].path
    from ccvae.training import TrainConfig
    from ccvae.workflows import train_to_checkpoint

    out = Path(tempfile.mkdtemp(prefix="ccvae-bench-")) / "mnist-sphere-d2"
    print(f"(no MNIST checkpoint under {root}: training a 1-epoch one into {out})")
    cfg = TrainConfig(dataset="mnist", geometry="sphere", latent_dim=2, epochs=1, max_examples=5000)
    train_to_checkpoint(cfg, out, iwae_samples=0)
    return out


def _count(v) -> int:
    """Length of a plotly JSON array (a list, or a base64 typed array)."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        import numpy as np
        return len(np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]))
    return len(v)


def timed(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoints", default=os.environ.get("CCVAE_CHECKPOINTS", str(REPO / "checkpoints")))
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--skip-first-render", action="store_true")
    args = p.parse_args()
    root = Path(args.checkpoints)
    runs = Path(tempfile.mkdtemp(prefix="ccvae-bench-runs-"))
    ckpt = mnist_checkpoint(root)
    env = {**os.environ, "CCVAE_CHECKPOINTS": str(root if root.is_dir() else ckpt.parent),
           "CCVAE_RUNS": str(runs)}
    os.environ.update({"CCVAE_CHECKPOINTS": env["CCVAE_CHECKPOINTS"], "CCVAE_RUNS": str(runs)})
    import torch

    print(f"checkpoints: {env['CCVAE_CHECKPOINTS']}  ·  torch threads: {torch.get_num_threads()}  ·  "
          f"CPUs: {os.cpu_count()}")
    rows = []

    if not args.skip_first_render:
        print("\n1. First render of each page (fresh process, AppTest script time)")
        for page in PAGES:
            r = first_render(page, env)
            flag = "" if not r.get("errors") and not r.get("exceptions") else f"  errors: {r.get('errors') or r.get('exceptions')}"
            print(f"   {page:<16} {r['seconds']:6.2f} s{flag}")
            rows.append((f"first render {page}", r["seconds"], TARGETS["first render"]))

    from streamlit.testing.v1 import AppTest

    print("\n1b. First visit of each page in one fresh session (Home first, as after opening the app)")
    visits = session_first_visits(env)
    for page, r in visits.items():
        bad = r.get("errors") or []
        note = "  (includes importing torch, plotly and ccvae)" if page == "home" else ""
        print(f"   {page:<16} {r['seconds']:6.2f} s{note}" + (f"  errors: {bad}" if bad else ""))
        if page != "home":
            rows.append((f"first visit {page}", r["seconds"], TARGETS["first render"]))

    print(f"\n2. Latent explorer, {ckpt.name}")

    from ccvae.checkpoints import read_info

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600)
    at.run()
    at.switch_page("app_pages/latent_explorer.py")
    at.run()
    box = at.selectbox(key="explorer_checkpoint")
    index = next(k for k, label in enumerate(box.options) if label.endswith(f"— {ckpt.name}"))
    t = time.perf_counter()
    box.set_value(index).run()
    cold = time.perf_counter() - t
    spec = at.get("plotly_chart")[0].proto.spec
    n_points = _count(json.loads(spec)["data"][0]["customdata"])
    warm = []
    for _ in range(5):
        t = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - t)
    moved = []
    slider = f"cursor_a::{ckpt.name}"
    for k in range(5):
        at.slider(key=slider).set_value(float(at.slider(key=slider).min + k + 1))
        t = time.perf_counter()
        at.run()
        moved.append(time.perf_counter() - t)
    print(f"   test points drawn: {n_points:,}; scatter JSON {len(spec) / 1e6:.2f} MB")
    print(f"   first render of this checkpoint (data, model, encoding): {cold:.2f} s")
    print(f"   warm rerun:              median {statistics.median(warm):.3f} s")
    print(f"   rerun after cursor move: median {statistics.median(moved):.3f} s")
    rows.append(("explorer warm rerun", statistics.median(warm), TARGETS["warm rerun"]))
    rows.append(("explorer cursor-move rerun", statistics.median(moved), TARGETS["warm rerun"]))

    print("\n3. Package calls behind the page")
    from ccvae import checkpoints
    from ccvae.dashboard import catalog
    from ccvae.dashboard import explorer as ex

    model, info = checkpoints.load(ckpt)
    data = catalog.load_eval_data(read_info(ckpt))
    view = ex.build_view(model, data, max_points=10_000)
    point = ex.cursor_point(view, 20.0, 30.0) if view.display != "plane" else ex.cursor_point(view, 0.1, 0.2)
    cursor = timed(lambda: ex.decode_display(model, view, point), args.repeats)
    grid = timed(lambda: ex.grid_mosaic(model, view, n=15), max(3, args.repeats // 4))
    build = timed(lambda: ex.scatter(view, cursor=point.numpy()).to_json(), 3)
    encode = timed(lambda: ex.build_view(model, data, max_points=10_000), 3)
    print(f"   decode one cursor point: {cursor * 1e3:7.2f} ms")
    print(f"   15x15 decode grid + mosaic: {grid * 1e3:7.1f} ms")
    print(f"   build + serialise the 10,000-point scatter: {build * 1e3:7.1f} ms")
    print(f"   encode 10,000 test images + fit the projection: {encode * 1e3:7.1f} ms")
    rows.append(("cursor decode", cursor, TARGETS["cursor decode"]))
    rows.append(("15x15 grid", grid, TARGETS["15x15 grid"]))

    print("\nSummary (target in brackets)")
    for name, value, target in rows:
        ok = "ok " if value <= target else "SLOW"
        print(f"   {ok} {name:<32} {value:8.3f} s  (<= {target:g} s, ratio {value / target:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
