"""The benchmark scripts still run (a few steps each): a benchmark that has rotted
gives no figures when someone needs them. Their timings are not checked here."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import REPO


def run_script(*args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def ratios(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"(\d+\.\d+)x", text)]


def test_bench_distributions_prints_every_table():
    out = run_script("benchmarks/bench_distributions.py", "--repeats", "5")
    for header in ("vMF/Normal", "WN/Normal", "PS/Normal", "mvae", "Where the vMF step goes",
                   "numpy/numba"):
        assert header in out
    # the vMF step's time budget names each float64 part and the rest
    for part in ("whole step", "rejection sampler", "kappa-gradient quadrature", "Bessel terms",
                 "rest (autograd graph)"):
        assert re.search(rf"^  {re.escape(part)}\s+-?\d+ us\s+-?\d+\.\d+x$", out, flags=re.M), part
    # 16 vMF cells, 4 wrapped-normal and 4 Power Spherical rows, each with its ratio(s)
    assert len(re.findall(r"^\s+(3|10|50|200)\s", out, flags=re.M)) == 16 + 4 + 4
    assert ratios(out) and all(0 < r < 1e3 for r in ratios(out))
    # the compiled kernels against numpy's forms, at a training batch and at B = 1024
    assert len(re.findall(r"^\s+(128|1024)\s+\d+\s+\d+\s+\d+\s+\d+(\s+\d+\.\d+x){3}$", out, flags=re.M)) == 2


def test_bench_training_step_refuses_a_block_longer_than_the_run():
    proc = subprocess.run([sys.executable, "benchmarks/bench_training_step.py", "--steps", "3",
                           "--block", "5"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "--block" in proc.stderr and "Traceback" not in proc.stderr


def test_bench_training_step_prints_the_ratios_to_euclidean():
    out = run_script("benchmarks/bench_training_step.py", "--latent-dims", "2", "--steps", "4",
                     "--block", "2", "--threads", "2")
    assert "sphere" in out and "hyperbolic" in out
    assert "2 threads" in out  # --threads is honoured (OMP_NUM_THREADS=1 here)
    assert ratios(out) and all(0 < r < 1e3 for r in ratios(out))
