"""Hidden tests of module 16 (compression): pruning counts and the Eckart-Young error of low rank."""

from __future__ import annotations

import numpy as np
from tinytorch.core.layers import Linear, Sequential
from tinytorch.optimization.compression import low_rank_approximate, magnitude_prune, measure_sparsity


def test_magnitude_prune_removes_exactly_the_smallest():
    np.random.seed(161)
    layer = Linear(10, 10)
    model = Sequential(layer)
    weights = layer.weight.data.copy()
    magnitude_prune(model, 0.3)
    zeroed = layer.weight.data == 0
    assert zeroed.sum() == 30
    threshold = np.sort(np.abs(weights).ravel())[30]
    assert np.all(np.abs(weights[zeroed]) <= threshold)
    assert abs(measure_sparsity(model) - 0.3) < 0.05  # biases are not pruned


def test_low_rank_error_matches_the_discarded_singular_values():
    w = np.random.default_rng(162).standard_normal((12, 8))
    a, b, info = low_rank_approximate(w, 0.5)
    assert a.shape == (12, 4) and b.shape == (4, 8) and info["rank"] == 4
    s = np.linalg.svd(w, compute_uv=False)
    expected = np.sqrt(np.sum(s[4:] ** 2) / np.sum(s**2))
    assert abs(np.linalg.norm(w - a @ b) / np.linalg.norm(w) - expected) < 1e-5
    assert abs(info["relative_error"] - expected) < 1e-5
