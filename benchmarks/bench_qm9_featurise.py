"""Benchmark: featurise all of QM9 (qm9pack) with worker processes, then reload the cache.

Targets (issue 4): full featurisation <= 60 s on 2 cores, cache reload <= 3 s,
peak memory <= 3 GB. Prints numbers; asserts nothing.

    .venv/bin/python benchmarks/bench_qm9_featurise.py [--workers 2] [--cache-dir DIR]
                                                        [--keep] [--design-check]

Uses a fresh temporary cache folder unless --cache-dir is given (an existing valid
cache there is deleted first, so the featurisation is really timed).
``--design-check`` also counts, from the perceived bonds, every a-b-c-d path
without the linear-atom exclusion, to compare with the DESIGN.md numbers.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ccvae.data.qm9 import load_qm9  # noqa: E402
from ccvae.data.qm9_featurise import cache_file, load_or_build  # noqa: E402
from ccvae.data.qm9_sources import resolve_source  # noqa: E402


def _rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # Linux reports KiB


def _all_paths_count(arrays) -> tuple[np.ndarray, np.ndarray]:
    """Per molecule: all a-b-c-d paths (a != d) over non-terminal bonds, hydrogens
    included and heavy-only, with NO linear exclusion (the DESIGN.md definition)."""
    full = np.zeros(len(arrays), dtype=np.int64)
    heavy = np.zeros(len(arrays), dtype=np.int64)
    for m in range(len(arrays)):
        a0, a1 = arrays.atom_ptr[m], arrays.atom_ptr[m + 1]
        n = a1 - a0
        z = arrays.z[a0:a1]
        b = arrays.bonds[arrays.bond_ptr[m] : arrays.bond_ptr[m + 1]].astype(np.int64)
        adj = np.zeros((n, n), dtype=np.int64)
        adj[b[:, 0], b[:, 1]] = adj[b[:, 1], b[:, 0]] = 1
        for hv, out in ((False, full), (True, heavy)):
            A = adj if not hv else adj * np.outer(z > 1, z > 1)
            # paths a-b-c-d with distinct consecutive atoms: sum over bonds (b, c)
            # of (deg b - 1)(deg c - 1) minus three-membered rings (a == d).
            deg = A.sum(1)
            i, j = np.nonzero(np.triu(A))
            paths = ((deg[i] - 1) * (deg[j] - 1)).sum()
            # each triangle closes one a == d path on each of its 3 bonds
            tri = int(np.trace(A @ A @ A)) // 6
            out[m] = paths - 3 * tri
    return full, heavy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the temporary cache folder")
    ap.add_argument("--design-check", action="store_true")
    args = ap.parse_args()

    tmp = None
    cache_dir = args.cache_dir
    if cache_dir is None:
        tmp = Path(tempfile.mkdtemp(prefix="ccvae-qm9-bench-"))
        cache_dir = tmp
    src = resolve_source(None)
    path = cache_file(src, cache_dir)
    if path.exists():
        path.unlink()
    try:
        t0 = time.perf_counter()
        c0 = resource.getrusage(resource.RUSAGE_SELF)
        arrays, info = load_or_build(src, cache_dir=cache_dir, workers=args.workers, progress=True)
        t_build = time.perf_counter() - t0
        c1 = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_main = (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)
        cpu_workers = kids.ru_utime + kids.ru_stime
        load = os.getloadavg()
        rss_build = _rss_mb(resource.RUSAGE_SELF)
        rss_children = _rss_mb(resource.RUSAGE_CHILDREN)

        t0 = time.perf_counter()
        again, info2 = load_or_build(src, cache_dir=cache_dir, progress=False)
        t_reload = time.perf_counter() - t0
        assert info2["from_cache"]

        t0 = time.perf_counter()
        bundle = load_qm9(cache_dir=cache_dir, progress=False)
        t_bundle = time.perf_counter() - t0
        rss_end = _rss_mb(resource.RUSAGE_SELF)

        counts = arrays.torsion_counts()
        heavy = arrays.torsion_counts(heavy_atoms_only=True)
        size_mb = path.stat().st_size / 2**20
        print()
        print(f"molecules read            {arrays.n_records:,}")
        print(f"featurised                {len(arrays):,}")
        print(f"bond perception failures  {len(arrays.failed_index)}  {arrays.failed_index.tolist()[:10]}")
        print(f"needed the Hueckel retry  {int((arrays.bond_method == 1).sum()):,}")
        print(f"torsions (H included)     total {counts.sum():,}  median {np.median(counts):.0f}  "
              f"max {counts.max()}  zero {int((counts == 0).sum())}")
        print(f"torsions (heavy only)     total {heavy.sum():,}  median {np.median(heavy):.0f}  "
              f"max {heavy.max()}  zero {int((heavy == 0).sum())}")
        print(f"ring torsions             {int(arrays.tors_ring.sum()):,}")
        print(f"cache file                {size_mb:.0f} MiB  {path}")
        print(f"full featurisation        {t_build:.1f} s wall with {args.workers} workers (target <= 60 s)")
        print(f"  CPU time                workers {cpu_workers:.1f} s + main {cpu_main:.1f} s "
              f"= {(cpu_workers + cpu_main) / max(args.workers, 1):.1f} s per core if the cores were free")
        print(f"  load average at the end {load[0]:.2f} (the machine is shared: wall time varies)")
        print(f"reload from cache         {t_reload:.2f} s (target <= 3 s)")
        print(f"load_qm9 bundle (cached)  {t_bundle:.2f} s  x {tuple(bundle.train.x.shape)} K={bundle.extras['max_torsions']}")
        print(f"peak RSS main process     {rss_build:.0f} MiB after featurising, "
              f"{rss_end:.0f} MiB after also loading the bundle (target <= 3072)")
        print(f"peak RSS largest worker   {rss_children:.0f} MiB")
        if args.design_check:
            t0 = time.perf_counter()
            full, hv = _all_paths_count(arrays)
            print(f"all paths, no linear excl total {full.sum():,} median {np.median(full):.0f} max {full.max()}; "
                  f"heavy median {np.median(hv):.0f} max {hv.max()}  ({time.perf_counter() - t0:.0f} s)")
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
