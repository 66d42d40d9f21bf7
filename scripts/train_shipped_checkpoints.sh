#!/usr/bin/env bash
# Retrains every checkpoint shipped in checkpoints/ (the exact commands; each
# checkpoint's config.json also records its own command line).
# Needs ../shared/data (full MNIST and the LFW npz) and the qm9pack package.
# Usage: bash scripts/train_shipped_checkpoints.sh [mnist|lfw|qm9]...
set -euo pipefail
cd "$(dirname "$0")/.."
CCVAE=".venv/bin/python -m ccvae"
which=("${@:-mnist lfw qm9}")
for part in ${which[@]}; do
  case "$part" in
    mnist)
      for dim in 2 10; do
        for geometry in euclidean sphere hyperbolic; do
          $CCVAE train --dataset mnist --geometry "$geometry" --latent-dim "$dim" --hidden 256 --layers 2 \
            --epochs 60 --early-stopping 6 --lr 1e-3 --batch-size 128 --seed 0 --iwae-samples 500 --quiet \
            --out "checkpoints/mnist-$geometry-d$dim"
        done
      done ;;
    lfw)
      for geometry in euclidean sphere hyperbolic; do
        $CCVAE train --dataset lfw --geometry "$geometry" --latent-dim 2 --hidden 256 --layers 2 \
          --epochs 500 --early-stopping 60 --kl-warmup-epochs 100 --lr 1e-3 --batch-size 64 --seed 0 \
          --iwae-samples 500 --quiet \
          --out "checkpoints/lfw-$geometry-d2"
      done ;;
    qm9)
      for geometry in euclidean sphere hyperbolic; do
        $CCVAE train --dataset qm9 --geometry "$geometry" --latent-dim 8 --hidden 256 --layers 2 \
          --epochs 30 --early-stopping 4 --lr 1e-3 --batch-size 256 --seed 0 --iwae-samples 100 --quiet \
          --data-option heavy_atoms_only=true --out "checkpoints/qm9-$geometry-d8"
      done ;;
    *) echo "unknown part $part (mnist, lfw or qm9)" >&2; exit 2 ;;
  esac
done
