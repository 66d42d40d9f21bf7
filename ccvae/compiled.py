"""numba, optional and loaded lazily: compiled CPU loops for the distributions.

At a VAE's training batch (around 128 rows) a torch or numpy operation costs a few
microseconds whatever its size, and a latent distribution's sample, density and
their backward passes are tens to hundreds of such operations. The kernels in
``ccvae.distributions.vmf_kernels`` and ``wrapped_normal_kernels`` do the same
arithmetic as one loop over the rows. This module decides whether they can run and
compiles each on first use:

* ``available()``: whether numba imports, tried once, on the first call (0.3 s),
  so that importing ccvae never imports numba, and a program that never samples on
  CPU never pays for it. Without numba the distributions run their torch or numpy
  forms (the same formulas; the tests compare the two).
* ``kernel``: a decorator; the function is compiled (``numba.njit``, nogil) on its
  first call and cached on disk next to its module, or in numba's user cache
  directory when that is not writable; with no writable location it compiles once
  per process.
"""

from __future__ import annotations

__all__ = ["available", "kernel"]

#: Whether numba imports: None until ``available()`` first tries.
AVAILABLE: bool | None = None


def available() -> bool:
    """Whether the compiled kernels can run (numba imports); tried once."""
    global AVAILABLE
    if AVAILABLE is None:
        try:
            import numba  # noqa: F401
            AVAILABLE = True
        except Exception:  # not installed, or an install that does not load here
            AVAILABLE = False
    return AVAILABLE


class _Kernel:
    """A function compiled on its first call (see ``kernel``)."""

    def __init__(self, fn):
        self.py_func, self._compiled = fn, None
        self.__name__, self.__doc__ = fn.__name__, fn.__doc__

    def __call__(self, *args):
        if self._compiled is None:
            import numba
            try:
                self._compiled = numba.njit(cache=True, nogil=True)(self.py_func)
            except RuntimeError:  # numba found no writable cache location
                self._compiled = numba.njit(nogil=True)(self.py_func)
        return self._compiled(*args)


def kernel(fn):
    """Decorator: ``fn`` (numba-compatible Python) compiled with numba on first call.
    Callers check ``available()`` first."""
    return _Kernel(fn)
