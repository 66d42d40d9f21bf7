"""numba, optional and loaded lazily: compiled CPU loops for the distributions.

At a VAE's training batch (around 128 rows) a torch or numpy operation costs a few
microseconds whatever its size, and a latent distribution's sample, density and
their backward passes are tens to hundreds of such operations. The kernels in
``ccvae.distributions.vmf_kernels`` and ``wrapped_normal_kernels`` do the same
arithmetic as one loop over the rows. This module decides whether they can run and
compiles each on first use:

* ``available()``: whether numba imports, tried once, on the first call (0.3 s).
  Without numba the distributions run their torch or numpy forms (the same
  formulas; the tests compare the two).
* ``jit``: the decorator the kernel modules use (``numba.njit``, nogil, compiled on
  first call and cached on disk next to its module, or in numba's user cache
  directory when that is not writable; with no writable location it compiles once
  per process). It imports numba, so the kernel modules are imported only where
  they are used, after ``available()``: importing ccvae never imports numba, and a
  program that never samples on CPU never pays for it.
* ``jit_vectorised``: the same, for loops written to be vectorised by LLVM with the
  branch-free elementary functions of ``ccvae.simd_math``: numpy's error model (a
  division by zero gives inf or NaN instead of a branch that raises, which would keep
  the loop scalar) and FMA contraction (a Horner step is one instruction; no other
  fast-math licence, so results are IEEE results up to the fused roundings, and the
  bit tricks of ``simd_math`` are not reassociated away).

Caveat of the on-disk cache: numba keys it on the kernel's own source file, and the
module constants a kernel reads (some imported from the modules that document them)
and the ``simd_math`` functions it inlines are frozen into the compiled code. After
changing such a constant or function elsewhere, delete
the kernel modules' ``__pycache__/*.nbi`` and ``*.nbc`` files (a fresh checkout has
none), or the cached kernels keep the old value.
"""

from __future__ import annotations

__all__ = ["available", "jit", "jit_vectorised"]

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


def _njit(fn, **options):
    """``numba.njit(cache=True, nogil=True, **options)``, or without the cache where numba
    finds no writable location for it. Compiles on the first call (per argument types)."""
    import numba
    try:
        return numba.njit(cache=True, nogil=True, **options)(fn)
    except RuntimeError:  # numba found no writable cache location
        return numba.njit(nogil=True, **options)(fn)


def jit(fn):
    """The kernels' decorator: ``numba.njit``, cached on disk where it can be, nogil."""
    return _njit(fn)


def jit_vectorised(fn):
    """``jit`` with ``error_model="numpy"`` and ``fastmath={"contract"}`` (see the module
    docstring): for loops over ``ccvae.simd_math``'s functions that LLVM vectorises."""
    return _njit(fn, error_model="numpy", fastmath={"contract"})
