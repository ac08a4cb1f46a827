"""Hidden tests of module 04 (losses): MSE and cross-entropy against NumPy formulas."""

from __future__ import annotations

import numpy as np
from _oracles import assert_close
from tinytorch.core.losses import cross_entropy, mse_loss
from tinytorch.core.tensor import Tensor


def test_mse_and_cross_entropy_values():
    rng = np.random.default_rng(41)
    pred, target = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    assert_close(mse_loss(Tensor(pred, dtype=np.float64), Tensor(target, dtype=np.float64)),
                 np.mean((pred - target) ** 2), rtol=1e-12, what="mse")  # fmt: skip
    logits = rng.standard_normal((5, 4)) * 30  # large logits: a naive softmax would overflow
    labels = np.array([0, 3, 1, 1, 2])
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    assert_close(cross_entropy(Tensor(logits, dtype=np.float64), labels),
                 -log_probs[np.arange(5), labels].mean(), rtol=1e-10, what="cross_entropy")  # fmt: skip
