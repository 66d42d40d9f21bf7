"""Throughput of the latent-distribution step: sample + KL + backward (CPU or CUDA).

For each (m, kappa) in {3, 10, 50, 200} x {1, 10, 100, 1000}, with B = 1024 rows that
each have their own parameters (per-row loc and concentration, all requiring grad),
one step is

    loc = normalize(raw_loc); kappa = exp(log_kappa)
    q = VonMisesFisher(loc, kappa); z = q.rsample()
    loss = (z * target).sum() + kl_divergence(q, HypersphericalUniform(m - 1)).sum()
    loss.backward()

and the script prints samples/s (B / step time). In the same run it times the same
step for a diagonal Normal (Independent(Normal(mu, exp(log_sigma)), 1), KL to N(0, I)
in closed form) with the same shapes (d = m), and for the hyperbolic WrappedNormal on
H^(m-1) in R^m (KL by one-sample Monte Carlo, log q(z) - log p(z), with p at the origin
with unit scale), and prints the ratios of step times against the Normal. Then the
Power Spherical (the sphere's other posterior) beside the vMF at kappa = 100. Last,
sampling plus log_prob (through the log map, no gradients) of a wrapped normal on
H^10 against mvae's 0.62 M samples/s for the same (issue 2).

Usage: python benchmarks/bench_distributions.py [--device cuda] [--repeats 200] [--threads 1]
Each figure is the fastest of several interleaved blocks of 5 steps (see ``time_steps``).
Parameter validation is off in the timed steps (validate_args=False), as in training
loops that validate once. The default is one intra-op thread: B = 1024 rows are too few
to gain from a second one, and on a small CPU shared with other processes torch's
threads wait on each other (a stalled second thread made a 100k-element multiply 250x
slower on the 2-core development machine). ``--threads 0`` keeps torch's default.

Reference figures (issue 2, same 2-core CPU): s-vae-pytorch's sample + KL + backward
step reaches 49k-96k samples/s at m = 10, 46k-106k at m = 50 and 36k-65k at m = 200.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.distributions import Independent, Normal, kl_divergence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ccvae.distributions.hyperspherical_uniform import HypersphericalUniform  # noqa: E402
from ccvae import compiled  # noqa: E402
from ccvae.distributions.power_spherical import PowerSpherical  # noqa: E402
from ccvae.distributions.von_mises_fisher import (VonMisesFisher, implicit_w_gradient,  # noqa: E402
                                                  sample_one_minus_w)

from ccvae.distributions.wrapped_normal import WrappedNormal  # noqa: E402
from ccvae.distributions.wrapped_normal_fused import origin_expmap  # noqa: E402
from ccvae.manifolds.lorentz import Lorentz  # noqa: E402

B = 1024
DIMS = (3, 10, 50, 200)
KAPPAS = (1.0, 10.0, 100.0, 1000.0)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(steps, device, repeats: int, warmup: int = 5) -> list[float]:
    """Seconds per step for each callable, interleaved block by block.

    The steps take turns in blocks of 5 calls, so a burst of load from other processes
    hits them alike; each figure is the fastest block (the least disturbed run), which
    makes ratios between steps measured in one call comparable.
    """
    for step in steps:
        for _ in range(warmup):
            step()
    _sync(device)
    best = [math.inf] * len(steps)
    for _ in range(max(1, repeats // 5)):
        for i, step in enumerate(steps):
            t0 = time.perf_counter()
            for _ in range(5):
                step()
            _sync(device)
            best[i] = min(best[i], (time.perf_counter() - t0) / 5)
    return best


def spherical_step_factory(family, m: int, kappa: float, device, dtype, batch: int = B):
    """The step for a distribution on S^(m-1) with (loc, concentration) parameters and a
    registered KL to the uniform: ``VonMisesFisher`` or ``PowerSpherical``."""
    g = torch.Generator(device="cpu").manual_seed(m)
    raw_loc = torch.randn(batch, m, generator=g, dtype=dtype).to(device).requires_grad_()
    log_kappa = torch.full((batch,), math.log(kappa), dtype=dtype, device=device, requires_grad=True)
    target = torch.randn(batch, m, generator=g, dtype=dtype).to(device)
    prior = HypersphericalUniform(m - 1, batch_shape=(batch,), dtype=dtype, device=device)

    def step():
        raw_loc.grad = log_kappa.grad = None
        q = family(F.normalize(raw_loc, dim=-1), log_kappa.exp(), validate_args=False)
        z = q.rsample()
        loss = (z * target).sum() + kl_divergence(q, prior).sum()
        loss.backward()

    return step


def vmf_step_factory(m: int, kappa: float, device, dtype, batch: int = B):
    return spherical_step_factory(VonMisesFisher, m, kappa, device, dtype, batch)


def power_spherical_step_factory(m: int, kappa: float, device, dtype):
    """The Power Spherical (De Cao & Aziz 2020), the sphere's selectable alternative
    posterior (``--sphere-posterior power_spherical``)."""
    return spherical_step_factory(PowerSpherical, m, kappa, device, dtype)


def normal_step_factory(d: int, device, dtype, batch: int = B):
    g = torch.Generator(device="cpu").manual_seed(d)
    mu = torch.randn(batch, d, generator=g, dtype=dtype).to(device).requires_grad_()
    log_sigma = (0.1 * torch.randn(batch, d, generator=g, dtype=dtype)).to(device).requires_grad_()
    target = torch.randn(batch, d, generator=g, dtype=dtype).to(device)
    prior = Independent(Normal(torch.zeros(batch, d, dtype=dtype, device=device),
                               torch.ones(batch, d, dtype=dtype, device=device), validate_args=False), 1,
                        validate_args=False)

    def step():
        mu.grad = log_sigma.grad = None
        q = Independent(Normal(mu, log_sigma.exp(), validate_args=False), 1, validate_args=False)
        z = q.rsample()
        loss = (z * target).sum() + kl_divergence(q, prior).sum()
        loss.backward()

    return step


def wrapped_normal_step_factory(n: int, device, dtype):
    """H^n in R^(n+1): the same ambient size as the vMF on S^n."""
    g = torch.Generator(device="cpu").manual_seed(n)
    v = (0.5 * torch.randn(B, n, generator=g, dtype=dtype)).to(device).requires_grad_()
    log_sigma = (0.1 * torch.randn(B, n, generator=g, dtype=dtype)).to(device).requires_grad_()
    target = torch.randn(B, n + 1, generator=g, dtype=dtype).to(device)
    # The VAE's path: the prior's at_origin log_prob, and log q taken from the draw.
    prior = WrappedNormal.at_origin(torch.ones(B, n, dtype=dtype, device=device), validate_args=False)

    def step():
        v.grad = log_sigma.grad = None
        loc = origin_expmap(v)  # exp_origin((0, v)), one node, as the hyperbolic encoder
        q = WrappedNormal(loc, log_sigma.exp(), validate_args=False)
        z, log_q = q.rsample_with_log_prob()
        kl = log_q - prior.log_prob(z)
        loss = (z * target).sum() + kl.sum()
        loss.backward()

    return step


def wrapped_normal_sample_log_prob_factory(n: int, device, dtype):
    """Sampling plus log_prob (through the log map), no gradients: mvae's measure."""
    g = torch.Generator(device="cpu").manual_seed(n)
    v = (0.5 * torch.randn(B, n, generator=g, dtype=dtype)).to(device)
    scale = (0.1 * torch.randn(B, n, generator=g, dtype=dtype)).exp().to(device)
    loc = Lorentz(n).expmap0(torch.cat([torch.zeros_like(v[:, :1]), v], dim=-1))
    q = WrappedNormal(loc, scale, validate_args=False)

    def step():
        with torch.no_grad():
            q.log_prob(q.rsample())

    return step


MVAE_H10 = 0.62e6  # issue 2: mvae's hyperboloid wrapped normal, n = 10, B = 1024


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--threads", type=int, default=1,
                    help="torch.set_num_threads (default 1; 0 keeps torch's own default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    print(f"B = {B}, device = {device}, dtype = {args.dtype}, torch {torch.__version__}, "
          f"threads = {torch.get_num_threads()}")
    print("samples/s for rsample + KL + backward (k = thousand, M = million)")
    header = f"{'m':>5} {'kappa':>7} {'vMF':>9} {'Normal(d=m)':>12} {'vMF/Normal':>11}"
    print(header)
    wn_times = {}
    for m in DIMS:
        normal = normal_step_factory(m, device, dtype)
        for kappa in KAPPAS:
            t_vmf, t_normal = time_steps([vmf_step_factory(m, kappa, device, dtype), normal], device,
                                         args.repeats)
            vs = ""
            if m in SVAE_RANGE:
                lo, hi = SVAE_RANGE[m]
                vs = f"   {B / t_vmf / hi:4.1f}x-{B / t_vmf / lo:4.1f}x s-vae"
            print(f"{m:>5} {kappa:>7g} {_rate(t_vmf):>9} {_rate(t_normal):>12} {t_vmf / t_normal:>10.2f}x"
                  + vs, flush=True)
        wn_times[m] = time_steps([wrapped_normal_step_factory(m - 1, device, dtype), normal], device,
                                 args.repeats)
    print("\nWrappedNormal on H^(m-1) in R^m (KL = log q(z) - log p(z), one sample)")
    print(f"{'m':>5} {'WrappedNormal':>14} {'Normal(d=m)':>12} {'WN/Normal':>10}")
    for m, (t_wn, t_normal) in wn_times.items():
        print(f"{m:>5} {_rate(t_wn):>14} {_rate(t_normal):>12} {t_wn / t_normal:>9.2f}x")
    print("\nPowerSpherical on S^(m-1) (the sphere's other posterior), kappa = 100")
    print(f"{'m':>5} {'PowerSpherical':>15} {'vMF':>9} {'Normal(d=m)':>12} {'PS/Normal':>10} {'vMF/PS':>8}")
    for m in DIMS:
        t_ps, t_vmf, t_normal = time_steps([power_spherical_step_factory(m, 100.0, device, dtype),
                                            vmf_step_factory(m, 100.0, device, dtype),
                                            normal_step_factory(m, device, dtype)], device, args.repeats)
        print(f"{m:>5} {_rate(t_ps):>15} {_rate(t_vmf):>9} {_rate(t_normal):>12} {t_ps / t_normal:>9.2f}x "
              f"{t_vmf / t_ps:>7.2f}x", flush=True)
    vmf_time_budget(10, 100.0, device, dtype, args.repeats)
    if device.type == "cpu":
        vmf_cpu_backends(device, dtype, args.repeats)
    (t_h10,) = time_steps([wrapped_normal_sample_log_prob_factory(10, device, dtype)], device,
                          args.repeats)
    print(f"\nWrappedNormal on H^10, rsample + log_prob (log map), no backward: {_rate(t_h10)}/s, "
          f"{B / t_h10 / MVAE_H10:.1f}x mvae's {MVAE_H10 / 1e6:.2f}M/s")


def vmf_time_budget(m: int, kappa: float, device, dtype, repeats: int) -> None:
    """Where the vMF step's time goes: its three float64 parts timed alone, at B rows.

    The rejection sampler (``sample_one_minus_w``), the kappa-gradient quadrature
    (``implicit_w_gradient``, given 1 - A as the step has it) and the Bessel terms of
    kappa (``VonMisesFisher.bessel_terms``, evaluated once per step and shared by the
    KL, its gradient and the quadrature), each as a multiple of the Normal step; the
    rest (the autograd graph: normalise, reflection, KL node, backward) is the step's
    time minus the three. This says how far the step is from a target ratio before
    any torch dispatch is counted.
    """
    kappa_t = torch.full((B,), kappa, dtype=dtype, device=device)
    kappa64 = kappa_t.to(torch.float64)
    loc = F.normalize(torch.randn(B, m, dtype=dtype, device=device), dim=-1)
    omega = sample_one_minus_w(kappa64, m)
    one_minus_mean = VonMisesFisher(loc, kappa_t).bessel_terms.one_minus_ratio
    parts = {
        "rejection sampler": lambda: sample_one_minus_w(kappa_t, m),
        "kappa-gradient quadrature": lambda: implicit_w_gradient(kappa64, omega, m, one_minus_mean),
        "Bessel terms": lambda: VonMisesFisher(loc, kappa_t, validate_args=False).bessel_terms,
    }
    times = time_steps([vmf_step_factory(m, kappa, device, dtype), normal_step_factory(m, device, dtype),
                        *parts.values()], device, repeats)
    t_vmf, t_normal, part_times = times[0], times[1], dict(zip(parts, times[2:]))
    print(f"\nWhere the vMF step goes, m = {m}, kappa = {kappa:g} (times in Normal steps of "
          f"{t_normal * 1e6:.0f} us)")
    for name, t in [("whole step", t_vmf), *part_times.items(),
                    ("rest (autograd graph)", t_vmf - sum(part_times.values()))]:
        print(f"  {name:<27} {t * 1e6:>7.0f} us {t / t_normal:>6.2f}x")


def vmf_cpu_backends(device, dtype, repeats: int) -> None:
    """The vMF step with its compiled CPU kernels (numba, the default) against numpy's
    array forms (what runs without numba), interleaved in one run, at a training batch
    (128; m = 11, kappa = 500, as a trained S^10 VAE's posteriors) and at B."""
    if not compiled.available():
        print("\nnumba is not installed: the vMF ran numpy's forms above")
        return
    print("\nvMF step, compiled kernels (numba) against numpy's array forms (times in us)")
    print(f"{'B':>5} {'m':>3} {'kappa':>6} {'numba':>7} {'numpy':>7} {'numpy/numba':>12} "
          f"{'numba/Normal':>13} {'numpy/Normal':>13}")

    def with_numba(step, on: bool):
        def run():
            compiled.AVAILABLE = on
            step()
        return run

    try:
        for batch, m, kappa in ((128, 11, 500.0), (B, 10, 100.0)):
            step = vmf_step_factory(m, kappa, device, dtype, batch)
            t_numba, t_numpy, t_normal = time_steps(
                [with_numba(step, True), with_numba(step, False), normal_step_factory(m, device, dtype, batch)],
                device, repeats)
            print(f"{batch:>5} {m:>3} {kappa:>6g} {t_numba * 1e6:>7.0f} {t_numpy * 1e6:>7.0f} "
                  f"{t_numpy / t_numba:>11.2f}x {t_numba / t_normal:>12.2f}x {t_numpy / t_normal:>12.2f}x",
                  flush=True)
    finally:
        compiled.AVAILABLE = True


SVAE_RANGE = {10: (49e3, 96e3), 50: (46e3, 106e3), 200: (36e3, 65e3)}  # issue 2


def _rate(t: float) -> str:
    r = B / t
    return f"{r / 1e6:.2f}M" if r >= 1e6 else f"{r / 1e3:.0f}k"


if __name__ == "__main__":
    main()
