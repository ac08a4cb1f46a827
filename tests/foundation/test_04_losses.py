"""Module 04 - Losses: closed forms (naive per-sample loops), stability at logits of +-1000, the
target-shape and range errors, PyTorch as an oracle of the values. The gradients are Module 05's tests."""

import numpy as np
import pytest
from tinytorch.core.losses import (
    BCEWithLogitsLoss,
    BinaryCrossEntropyLoss,
    CrossEntropyLoss,
    MSELoss,
)
from tinytorch.core.tensor import Tensor

RNG = np.random.default_rng(4)


def test_cross_entropy_closed_form():
    logits = RNG.standard_normal((6, 4))
    target = RNG.integers(0, 4, 6)
    loss = CrossEntropyLoss()(Tensor(logits, dtype=np.float64), target)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = -np.mean([np.log(p[i, target[i]]) for i in range(6)])  # naive per-sample loop
    assert loss.shape == () and abs(loss.item() - expected) < 1e-12
    assert CrossEntropyLoss()(Tensor(logits), Tensor(target)).dtype == np.float32
    t3 = RNG.integers(0, 3, (2, 2))
    l3 = RNG.standard_normal((2, 2, 3))  # (*, C) with (*) targets: the class axis is last
    flat = CrossEntropyLoss()(Tensor(l3.reshape(4, 3), dtype=np.float64), t3.reshape(4)).item()
    assert abs(CrossEntropyLoss()(Tensor(l3, dtype=np.float64), t3).item() - flat) < 1e-12


def test_cross_entropy_finite_at_extreme_logits():
    logits = Tensor([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0]])
    loss = CrossEntropyLoss()(logits, np.array([1, 2]))
    # Closed form: sample 0 loses 2000; sample 1 is a tie of two classes: log 2.
    np.testing.assert_allclose(loss.item(), (2000.0 + np.log(2.0)) / 2, rtol=1e-6)


def test_cross_entropy_matches_torch(torch):
    logits, target = RNG.standard_normal((8, 10)) * 3, RNG.integers(0, 10, 8)
    loss = CrossEntropyLoss()(Tensor(logits, dtype=np.float64), target)
    expected = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(target))
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-12)


def test_cross_entropy_target_errors():
    logits = Tensor(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"target shape \(3,\).*logits shape \(4, 3\)"):
        CrossEntropyLoss()(logits, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="one-hot"):
        CrossEntropyLoss()(logits, np.eye(3)[[0, 1, 2, 0]])
    with pytest.raises(ValueError, match="target"):
        CrossEntropyLoss()(logits, np.array([0, 1, 2, 3]))  # class 3 of 3
    with pytest.raises(ValueError, match="target"):
        CrossEntropyLoss()(logits, np.array([0.0, 1.0, 2.0, 1.0]))  # float labels


def test_mse_closed_form_and_errors():
    p, t = RNG.standard_normal((3, 2)), RNG.standard_normal((3, 2))
    loss = MSELoss()(Tensor(p, dtype=np.float64), t)
    assert abs(loss.item() - np.mean((p - t) ** 2)) < 1e-12
    assert MSELoss()(Tensor(p), t).dtype == np.float32
    with pytest.raises(ValueError, match=r"MSELoss.*\(3, 2\).*\(2, 3\)"):
        MSELoss()(Tensor(p), Tensor(t.T))
    with pytest.raises(ValueError, match="target"):
        MSELoss()(Tensor(np.ones(2)), np.array(["a", "b"]))


def test_binary_cross_entropy_closed_form_clipping_and_range():
    p = RNG.random((4, 3)) * 0.9 + 0.05
    t = (RNG.random((4, 3)) > 0.5).astype(float)
    loss = BinaryCrossEntropyLoss()(Tensor(p, dtype=np.float64), t)
    assert abs(loss.item() - np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)))) < 1e-12
    extreme = BinaryCrossEntropyLoss()(Tensor([0.0, 1.0]), np.array([1.0, 0.0]))
    assert np.isfinite(extreme.item()) and extreme.item() > 10  # clipped at eps, not inf
    with pytest.raises(ValueError, match="target shape"):
        BinaryCrossEntropyLoss()(Tensor(p), t[:, :2])
    with pytest.raises(ValueError, match="prediction.*probabilities"):
        BinaryCrossEntropyLoss()(Tensor([2.0]), np.array([1.0]))  # a score, not a probability
    with pytest.raises(ValueError, match="target"):
        BinaryCrossEntropyLoss()(Tensor([0.5]), np.array([2.0]))
    for eps in (0.0, 0.5, float("nan")):
        with pytest.raises(ValueError, match="eps"):
            BinaryCrossEntropyLoss(eps=eps)


def test_bce_with_logits_closed_form_and_stable():
    x = RNG.standard_normal((5, 2)) * 3
    t = (RNG.random((5, 2)) > 0.5).astype(float)
    s = 1 / (1 + np.exp(-x))
    loss = BCEWithLogitsLoss()(Tensor(x, dtype=np.float64), t)
    assert abs(loss.item() - np.mean(-(t * np.log(s) + (1 - t) * np.log(1 - s)))) < 1e-12
    big = BCEWithLogitsLoss()(Tensor([1000.0, -1000.0, 1000.0]), np.array([1.0, 0.0, 0.0]))
    np.testing.assert_allclose(big.item(), 1000.0 / 3, rtol=1e-6)
    with pytest.raises(ValueError, match="target shape"):
        BCEWithLogitsLoss()(Tensor([1.0, 2.0, 3.0]), np.ones(2))
    with pytest.raises(ValueError, match="target"):
        BCEWithLogitsLoss()(Tensor([1.0]), np.array([-1.0]))


def test_binary_losses_match_torch(torch):
    x = RNG.standard_normal(6) * 2
    t = (RNG.random(6) > 0.5).astype(float)
    theirs = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(t))
    np.testing.assert_allclose(
        BCEWithLogitsLoss()(Tensor(x, dtype=np.float64), t).item(), theirs.item(), rtol=1e-12
    )
    p = RNG.random(6) * 0.8 + 0.1
    theirs = torch.nn.functional.binary_cross_entropy(torch.tensor(p), torch.tensor(t))
    np.testing.assert_allclose(
        BinaryCrossEntropyLoss()(Tensor(p, dtype=np.float64), t).item(), theirs.item(), rtol=1e-12
    )
