"""End-to-end MNIST training step: sphere and hyperbolic against Euclidean.

One Adam step of the negative ELBO for a 784-256-128 MLP VAE (mirrored decoder),
batch 128, on real MNIST batches when ../shared/data/mnist is there (random
pixels otherwise: the cost is the same). All geometries are timed in the same
run, interleaved in blocks of ``--block`` steps (each block of every geometry on the
same batches), and the script prints each geometry's fastest block in ms/step and
its ratio to Euclidean. The fastest of many short blocks is what the step costs
when nothing else interrupts it: on a shared machine the mean of long blocks moved
the sphere's ratio between 1.28x and 1.37x from one run to the next.

    .venv/bin/python benchmarks/bench_training_step.py [--latent-dims 2,10] [--steps 500] [--block 5] [--threads 1]

One intra-op thread by default, as a sweep's worker uses: on a 2-core machine with
other work running, torch's second thread waits on a busy core and every step slows
by two orders of magnitude (measured: 320 ms/step with 2 threads beside two training
runs, against 5-7 ms with 1), which measures the machine's load, not the step.
``--threads 0`` keeps torch's default.
"""

from __future__ import annotations

import argparse
import time

import torch

from ccvae.cpu import flush_denormals
from ccvae.models import VAE, ModelConfig
from ccvae.training import make_optimiser


def batches(n_steps: int, batch: int):
    try:
        from ccvae.data.registry import load_dataset
        x = load_dataset("mnist").train.x
        source = "MNIST"
    except Exception:  # benchmark still runs without the data
        x = torch.rand(60000, 784)
        source = "random pixels"
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, x.shape[0], (n_steps, batch), generator=g)
    return [x[i] for i in idx], source


def time_steps(model, opt, data) -> float:
    """Mean seconds per step over ``data`` (a list of batches), as training steps."""
    t0 = time.perf_counter()
    for x in data:
        loss = -model.elbo(x).elbo.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / len(data)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--latent-dims", default="2,10")
    p.add_argument("--steps", type=int, default=500, help="steps per geometry (default 500)")
    p.add_argument("--block", type=int, default=5, help="steps per timed block (default 5)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads (default 1; 0 keeps torch's own default)")
    args = p.parse_args()
    if args.threads < 0:
        p.error(f"--threads must be >= 0, got {args.threads}")
    if args.block < 1 or args.steps < args.block:
        p.error(f"need 1 <= --block <= --steps, got --block {args.block} --steps {args.steps}")
    if args.threads:
        torch.set_num_threads(args.threads)
    with flush_denormals():  # as ccvae.training.train runs its steps
        run(args)


def run(args) -> None:
    data, source = batches(args.steps, 128)
    print(f"# training step, 784-256-128 MLP, batch 128, {source}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'d':>3} {'geometry':>11} {'ms/step':>9} {'vs euclidean':>13}")
    for d in [int(s) for s in args.latent_dims.split(",")]:
        models = {}
        for geometry in ("euclidean", "sphere", "hyperbolic"):
            torch.manual_seed(0)
            m = VAE(ModelConfig(input_dim=784, geometry=geometry, latent_dim=d, hidden=[256, 128], layers=2))
            models[geometry] = (m, make_optimiser(m.parameters(), 1e-3))  # as training does
            time_steps(*models[geometry], data[:10])  # warm-up
        best = {g: float("inf") for g in models}
        for start in range(0, args.steps - args.block + 1, args.block):
            block = data[start:start + args.block]
            for g, (m, opt) in models.items():  # interleaved: load drifts hit all alike
                best[g] = min(best[g], time_steps(m, opt, block))
        for g in models:
            print(f"{d:>3} {g:>11} {best[g] * 1e3:>9.2f} {best[g] / best['euclidean']:>12.2f}x")


if __name__ == "__main__":
    main()
