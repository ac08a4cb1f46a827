"""Hidden tests of module 12 (attention): a masked attention against a NumPy softmax, and causality."""

from __future__ import annotations

import numpy as np
from _oracles import assert_close, gradcheck
from tinytorch.core.attention import MultiHeadAttention, scaled_dot_product_attention
from tinytorch.core.tensor import Tensor


def test_masked_attention_vs_numpy():
    rng = np.random.default_rng(121)
    q, k, v = (rng.standard_normal((2, 4, 3)) for _ in range(3))
    mask = np.tril(np.ones((4, 4), dtype=bool))
    out, weights = scaled_dot_product_attention(
        Tensor(q, dtype=np.float64), Tensor(k, dtype=np.float64), Tensor(v, dtype=np.float64), mask=mask
    )
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(3)
    scores = np.where(mask, scores, -np.inf)
    expected_w = np.exp(scores - scores.max(-1, keepdims=True))
    expected_w /= expected_w.sum(-1, keepdims=True)
    assert_close(weights, expected_w, rtol=1e-9, atol=1e-12, what="attention weights")
    assert_close(out, expected_w @ v, rtol=1e-9, atol=1e-12, what="attention output")


def test_attention_gradients_by_finite_differences():
    rng = np.random.default_rng(122)
    q, k, v = (Tensor(rng.standard_normal((1, 3, 2)), requires_grad=True, dtype=np.float64) for _ in range(3))
    assert gradcheck(lambda q, k, v: scaled_dot_product_attention(q, k, v)[0], [q, k, v])


def test_causal_multi_head_attention_ignores_the_future():
    rng = np.random.default_rng(123)
    mha = MultiHeadAttention(8, 2)
    x = rng.standard_normal((1, 5, 8)).astype(np.float32)
    changed = x.copy()
    changed[:, 3:] = rng.standard_normal((1, 2, 8))
    mask = np.tril(np.ones((5, 5), dtype=bool))
    a, b = mha(Tensor(x), mask=mask), mha(Tensor(changed), mask=mask)
    assert_close(a.data[:, :3], b.data[:, :3], rtol=1e-6, atol=1e-6, what="outputs before the change")
    assert not np.allclose(a.data[:, 3:], b.data[:, 3:])
