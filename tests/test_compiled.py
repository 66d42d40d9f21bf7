"""ccvae.compiled: numba is optional and loaded only when a kernel is needed."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from ccvae import compiled
from tests.conftest import REPO


def test_importing_the_package_and_its_distributions_does_not_import_numba():
    code = ("import sys, ccvae, ccvae.distributions, ccvae.models; "
            "assert 'numba' not in sys.modules, 'numba imported'")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_a_kernel_compiles_on_first_call_and_writes_its_output():
    assert compiled.available()  # numba is in requirements.txt

    def double_into(x, out):
        for i in range(x.shape[0]):
            out[i] = 2.0 * x[i]

    double_into = compiled.jit(double_into)
    assert not double_into.signatures  # nothing compiled at decoration
    out = np.zeros(3)
    double_into(np.array([1.0, 2.5, -3.0]), out)
    assert out.tolist() == [2.0, 5.0, -6.0] and len(double_into.signatures) == 1


def test_available_is_tried_once_and_remembered(monkeypatch):
    monkeypatch.setattr(compiled, "AVAILABLE", None)
    monkeypatch.setitem(sys.modules, "numba", None)  # makes `import numba` fail
    assert compiled.available() is False
    monkeypatch.delitem(sys.modules, "numba")
    assert compiled.available() is False  # remembered, not retried
