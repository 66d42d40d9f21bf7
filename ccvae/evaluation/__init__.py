"""Evaluation: ELBO statistics, IWAE, bits/dim, k-NN accuracy, angular errors."""

from .metrics import elbo_statistics, evaluate, iwae_statistics, knn_accuracy

__all__ = ["evaluate", "elbo_statistics", "iwae_statistics", "knn_accuracy"]
