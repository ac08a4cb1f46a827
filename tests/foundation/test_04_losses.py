"""Module 04 - Losses: closed forms, stability at logits of +-1000, float64 gradchecks, PyTorch oracle,
and the target-shape errors."""

import numpy as np
import pytest
from tinytorch.core.autograd import gradcheck
from tinytorch.core.losses import (
    BCEWithLogitsLoss,
    BinaryCrossEntropyLoss,
    CrossEntropyLoss,
    MSELoss,
    log_softmax,
)
from tinytorch.core.tensor import Tensor

RNG = np.random.default_rng(4)


def t64(shape, scale=1.0):
    return Tensor(RNG.standard_normal(shape) * scale, requires_grad=True, dtype=np.float64)


def test_log_softmax_closed_form_and_gradient():
    x = RNG.standard_normal((3, 5))
    out = log_softmax(Tensor(x, dtype=np.float64), dim=1).data
    np.testing.assert_allclose(out, np.log(np.exp(x) / np.exp(x).sum(1, keepdims=True)), rtol=1e-12)
    assert gradcheck(lambda v: log_softmax(v, 0), [t64((3, 4))])
    assert gradcheck(lambda v: log_softmax(v, -1), [t64((2, 3, 4))])
    assert Tensor(x).log_softmax().dtype == np.float32
    big = log_softmax(Tensor([[1000.0, 0.0, -1000.0]]))
    np.testing.assert_allclose(big.data, [[0.0, -1000.0, -2000.0]])


def test_cross_entropy_closed_form():
    logits = RNG.standard_normal((6, 4))
    target = RNG.integers(0, 4, 6)
    loss = CrossEntropyLoss()(Tensor(logits, dtype=np.float64), target)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = -np.mean([np.log(p[i, target[i]]) for i in range(6)])  # naive per-sample loop
    assert loss.shape == () and abs(loss.item() - expected) < 1e-12
    assert CrossEntropyLoss()(Tensor(logits), Tensor(target)).dtype == np.float32


def test_cross_entropy_gradient():
    target = RNG.integers(0, 5, 4)
    assert gradcheck(lambda v: CrossEntropyLoss()(v, target), [t64((4, 5))])
    assert gradcheck(lambda v: CrossEntropyLoss()(v, target) * 3.0, [t64((4, 5), scale=10.0)])
    t3 = RNG.integers(0, 3, (2, 2))
    assert gradcheck(lambda v: CrossEntropyLoss()(v, t3), [t64((2, 2, 3))])  # (*, C) with (*) targets


def test_cross_entropy_finite_at_extreme_logits():
    logits = Tensor([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0]], requires_grad=True)
    loss = CrossEntropyLoss()(logits, np.array([1, 2]))
    # Closed form: sample 0 loses 2000; sample 1 is a tie of two classes: log 2.
    np.testing.assert_allclose(loss.item(), (2000.0 + np.log(2.0)) / 2, rtol=1e-6)
    loss.backward()
    assert np.all(np.isfinite(logits.grad.data))
    np.testing.assert_allclose(logits.grad.data, [[0.5, -0.5, 0.0], [0.0, 0.25, -0.25]], atol=1e-7)


def test_cross_entropy_matches_torch(torch):
    logits, target = t64((8, 10), scale=3.0), RNG.integers(0, 10, 8)
    loss = CrossEntropyLoss()(logits, target)
    loss.backward()
    tl = torch.tensor(logits.data, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(tl, torch.tensor(target))
    tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-12)
    np.testing.assert_allclose(logits.grad.data, tl.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_cross_entropy_target_errors():
    logits = Tensor(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"target shape \(3,\).*logits shape \(4, 3\)"):
        CrossEntropyLoss()(logits, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="target"):
        CrossEntropyLoss()(logits, np.array([0, 1, 2, 3]))  # class 3 of 3
    with pytest.raises(ValueError, match="target"):
        CrossEntropyLoss()(logits, np.array([0.0, 1.0, 2.0, 1.0]))  # float labels


def test_mse_closed_form_gradient_and_error():
    p, t = RNG.standard_normal((3, 2)), RNG.standard_normal((3, 2))
    loss = MSELoss()(Tensor(p, dtype=np.float64), t)
    assert abs(loss.item() - np.mean((p - t) ** 2)) < 1e-12
    x = Tensor(p, requires_grad=True, dtype=np.float64)
    MSELoss()(x, t).backward()
    np.testing.assert_allclose(x.grad.data, 2 * (p - t) / p.size)
    assert gradcheck(lambda v: MSELoss()(v, Tensor(t, dtype=np.float64)), [t64((3, 2))])
    with pytest.raises(ValueError, match=r"MSELoss.*\(3, 2\).*\(2, 3\)"):
        MSELoss()(Tensor(p), Tensor(t.T))


def test_binary_cross_entropy_closed_form_clipping_and_gradient():
    p = RNG.random((4, 3)) * 0.9 + 0.05
    t = (RNG.random((4, 3)) > 0.5).astype(float)
    loss = BinaryCrossEntropyLoss()(Tensor(p, dtype=np.float64), t)
    assert abs(loss.item() - np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)))) < 1e-12
    extreme = BinaryCrossEntropyLoss()(Tensor([0.0, 1.0]), np.array([1.0, 0.0]))
    assert np.isfinite(extreme.item()) and extreme.item() > 10  # clipped at eps, not inf
    x = Tensor(p, requires_grad=True, dtype=np.float64)
    assert gradcheck(lambda v: BinaryCrossEntropyLoss()(v, t), [x])
    with pytest.raises(ValueError, match="target shape"):
        BinaryCrossEntropyLoss()(Tensor(p), t[:, :2])


def test_bce_with_logits_stable_and_gradient():
    x = RNG.standard_normal((5, 2)) * 3
    t = (RNG.random((5, 2)) > 0.5).astype(float)
    s = 1 / (1 + np.exp(-x))
    loss = BCEWithLogitsLoss()(Tensor(x, dtype=np.float64), t)
    assert abs(loss.item() - np.mean(-(t * np.log(s) + (1 - t) * np.log(1 - s)))) < 1e-12
    assert gradcheck(lambda v: BCEWithLogitsLoss()(v, t), [t64((5, 2), scale=3.0)])
    big = Tensor([1000.0, -1000.0, 1000.0], requires_grad=True)
    loss = BCEWithLogitsLoss()(big, np.array([1.0, 0.0, 0.0]))
    np.testing.assert_allclose(loss.item(), 1000.0 / 3, rtol=1e-6)
    loss.backward()
    np.testing.assert_allclose(big.grad.data, [0.0, 0.0, 1 / 3], atol=1e-7)
    with pytest.raises(ValueError, match="target shape"):
        BCEWithLogitsLoss()(big, np.ones(2))


def test_binary_losses_match_torch(torch):
    x = t64((6,), scale=2.0)
    t = (RNG.random(6) > 0.5).astype(float)
    BCEWithLogitsLoss()(x, t).backward()
    tx = torch.tensor(x.data, requires_grad=True)
    torch.nn.functional.binary_cross_entropy_with_logits(tx, torch.tensor(t)).backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-10)
    p = Tensor(RNG.random(6) * 0.8 + 0.1, requires_grad=True, dtype=np.float64)
    loss = BinaryCrossEntropyLoss()(p, t)
    loss.backward()
    tp = torch.tensor(p.data, requires_grad=True)
    tloss = torch.nn.functional.binary_cross_entropy(tp, torch.tensor(t))
    tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-12)
    np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), rtol=1e-10)
