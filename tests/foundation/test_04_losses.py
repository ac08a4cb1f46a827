"""Module 04 - Losses: closed forms (naive per-sample loops), stability at logits of +-1000, the
target-shape and range errors, PyTorch as an oracle of the values. The gradients are Module 05's tests."""

import numpy as np
import pytest
from tinytorch.core.losses import (
    BCEWithLogitsLoss,
    BinaryCrossEntropyLoss,
    CrossEntropyLoss,
    MSELoss,
    NLLLoss,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    mse_loss,
    nll_loss,
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


def naive_cross_entropy(logits, target, ignore_index=-100, smoothing=0.0):
    """Per-prediction losses by a loop over rows of (M, C) logits; ignored rows are 0."""
    out = []
    for row, y in zip(logits, target):
        if y == ignore_index:
            out.append(0.0)
            continue
        log_p = row - np.log(np.sum(np.exp(row)))
        out.append(-(1 - smoothing) * log_p[y] - smoothing * np.mean(log_p))
    return np.array(out)


def test_cross_entropy_class_dimension_is_one_as_pytorch():
    logits = RNG.standard_normal((2, 3, 4, 5))  # (N, C, d1, d2): a class score per position
    target = RNG.integers(0, 3, (2, 4, 5))
    rows = np.moveaxis(logits, 1, -1).reshape(-1, 3)  # (N * d1 * d2, C)
    expected = naive_cross_entropy(rows, target.reshape(-1))
    ours = cross_entropy(Tensor(logits, dtype=np.float64), target, reduction="none")
    assert ours.shape == (2, 4, 5)
    np.testing.assert_allclose(ours.data.reshape(-1), expected, rtol=1e-12)
    np.testing.assert_allclose(
        cross_entropy(Tensor(logits, dtype=np.float64), target).item(), expected.mean()
    )
    one = RNG.standard_normal(4)  # one unbatched sample (C,) with a 0-d target
    loss = cross_entropy(Tensor(one, dtype=np.float64), np.array(2))
    assert loss.shape == () and abs(loss.item() - naive_cross_entropy(one[None], [2])[0]) < 1e-12


def test_nll_loss_picks_minus_the_true_class_log_probability():
    log_probs = np.log(RNG.dirichlet(np.ones(5), size=6))  # (6, 5) rows of log-probabilities
    target = np.array([0, 4, -100, 2, 2, 1])
    # Naive loop: -log p of each counted target; an ignored one is left out of the sum and of the count.
    counted = [-log_probs[i, y] for i, y in enumerate(target) if y != -100]
    x = Tensor(log_probs, dtype=np.float64)
    assert abs(nll_loss(x, target).item() - np.mean(counted)) < 1e-12
    assert abs(NLLLoss(reduction="sum")(x, target).item() - np.sum(counted)) < 1e-12
    per_row = nll_loss(x, target, reduction="none")
    assert per_row.shape == (6,) and per_row.data[2] == 0.0
    np.testing.assert_allclose(np.delete(per_row.data, 2), counted, rtol=1e-12)
    logits = RNG.standard_normal((3, 4, 2))  # (N, C, d): cross_entropy is nll_loss after log_softmax
    t = RNG.integers(0, 4, (3, 2))
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(
        nll_loss(Tensor(log_p, dtype=np.float64), t).item(),
        cross_entropy(Tensor(logits, dtype=np.float64), t).item(),
        rtol=1e-12,
    )
    with pytest.raises(ValueError, match=r"NLLLoss: target shape \(2,\) does not fit log_probs shape"):
        nll_loss(x, np.array([0, 1]))
    with pytest.raises(ValueError, match="NLLLoss: argument 'reduction'"):
        NLLLoss(reduction="avg")


def test_nll_loss_matches_torch(torch):
    log_probs = np.log(RNG.dirichlet(np.ones(4), size=(2, 3))).transpose(0, 2, 1)  # (N, C, d)
    target = np.array([[3, -100, 0], [1, 1, 2]])
    for reduction in ("mean", "sum", "none"):
        ours = nll_loss(Tensor(log_probs, dtype=np.float64), target, reduction=reduction)
        theirs = torch.nn.functional.nll_loss(
            torch.tensor(log_probs), torch.tensor(target), reduction=reduction
        )
        np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-12)


def test_cross_entropy_reduction_ignore_index_label_smoothing():
    logits = RNG.standard_normal((6, 4))
    target = np.array([0, 3, -100, 1, 2, -100])
    x = Tensor(logits, dtype=np.float64)
    losses = naive_cross_entropy(logits, target, smoothing=0.2)
    np.testing.assert_allclose(
        cross_entropy(x, target, label_smoothing=0.2, reduction="none").data, losses, rtol=1e-12
    )
    np.testing.assert_allclose(
        cross_entropy(x, target, label_smoothing=0.2, reduction="sum").item(), losses.sum()
    )
    # "mean" divides by the number of targets that count (4 here), not by 6.
    np.testing.assert_allclose(cross_entropy(x, target, label_smoothing=0.2).item(), losses.sum() / 4)
    target7 = np.array([0, 7, 7, 1, 2, 3])
    np.testing.assert_allclose(
        CrossEntropyLoss(ignore_index=7)(x, target7).item(),
        naive_cross_entropy(logits, target7, ignore_index=7).sum() / 4,
    )
    with np.errstate(invalid="ignore"):  # every target ignored: 0 / 0, NaN as PyTorch
        assert np.isnan(cross_entropy(x, np.full(6, -100)).item())


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_options_match_torch(torch, reduction, smoothing):
    F = torch.nn.functional
    for shape, tshape in (((5, 4), (5,)), ((2, 4, 3), (2, 3)), ((2, 4, 2, 3), (2, 2, 3)), ((4,), ())):
        logits = RNG.standard_normal(shape) * 2
        classes = shape[1] if len(shape) > 1 else shape[0]
        target = RNG.integers(0, classes, tshape)
        if target.ndim:
            target.reshape(-1)[0] = -1  # one ignored prediction
        ours = cross_entropy(
            Tensor(logits, dtype=np.float64),
            target,
            ignore_index=-1,
            reduction=reduction,
            label_smoothing=smoothing,
        )
        theirs = F.cross_entropy(
            torch.tensor(logits),
            torch.tensor(target),
            ignore_index=-1,
            reduction=reduction,
            label_smoothing=smoothing,
        )
        np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-12, atol=1e-14)


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
    with pytest.raises(ValueError, match="one-hot"):
        CrossEntropyLoss()(logits, np.eye(3, dtype=np.int64)[[0, 1, 2, 0]])
    with pytest.raises(ValueError, match=r"class dimension is dim 1.*reshape\(-1, 5\)"):
        CrossEntropyLoss()(Tensor(np.zeros((2, 3, 5))), np.zeros((2, 3), dtype=np.int64))  # (B, T, C)
    with pytest.raises(ValueError, match="0-d"):
        CrossEntropyLoss()(Tensor(1.0), np.array(0))
    with pytest.raises(ValueError, match="target"):
        CrossEntropyLoss()(logits, np.array([0, 1, 2, 3]))  # class 3 of 3
    with pytest.raises(ValueError, match="target"):
        CrossEntropyLoss()(logits, np.array([0.0, 1.0, 2.0, 1.0]))  # float labels
    with pytest.raises(ValueError, match="target"):
        CrossEntropyLoss(ignore_index=-1)(logits, np.array([0, -2, 1, 1]))  # negative, not the ignored value


def test_loss_option_errors():
    for bad in ("avg", None, "Mean"):
        for make in (MSELoss, CrossEntropyLoss, BCEWithLogitsLoss, BinaryCrossEntropyLoss):
            with pytest.raises(ValueError, match="reduction"):
                make(reduction=bad)
    for bad in (-0.1, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="label_smoothing"):
            CrossEntropyLoss(label_smoothing=bad)
    for bad in (1.5, "x", False):
        with pytest.raises(ValueError, match="ignore_index"):
            CrossEntropyLoss(ignore_index=bad)
    with pytest.raises(ValueError, match="reduction"):
        cross_entropy(Tensor(np.zeros((2, 3))), np.array([0, 1]), reduction="avg")


def test_reduction_of_mse_and_binary_losses():
    p = RNG.random((3, 4)) * 0.8 + 0.1
    t = (RNG.random((3, 4)) > 0.5).astype(float)
    x = RNG.standard_normal((3, 4)) * 2
    cases = [
        (lambda r: mse_loss(Tensor(p, dtype=np.float64), t, reduction=r), (p - t) ** 2),
        (
            lambda r: binary_cross_entropy(Tensor(p, dtype=np.float64), t, reduction=r),
            -(t * np.log(p) + (1 - t) * np.log(1 - p)),
        ),
        (
            lambda r: binary_cross_entropy_with_logits(Tensor(x, dtype=np.float64), t, reduction=r),
            -(t * np.log(1 / (1 + np.exp(-x))) + (1 - t) * np.log(1 - 1 / (1 + np.exp(-x)))),
        ),
    ]
    for loss, per_element in cases:
        np.testing.assert_allclose(loss("none").data, per_element, rtol=1e-10)
        np.testing.assert_allclose(loss("sum").item(), per_element.sum(), rtol=1e-10)
        np.testing.assert_allclose(loss("mean").item(), per_element.mean(), rtol=1e-10)
    assert MSELoss(reduction="none")(Tensor(p), t).shape == (3, 4)
    assert BCEWithLogitsLoss(reduction="sum")(Tensor(x), t).shape == ()


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
    for reduction in ("sum", "none"):
        theirs = torch.nn.functional.binary_cross_entropy(
            torch.tensor(p), torch.tensor(t), reduction=reduction
        )
        ours = BinaryCrossEntropyLoss(reduction=reduction)(Tensor(p, dtype=np.float64), t)
        np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-12)
        theirs = torch.nn.functional.mse_loss(torch.tensor(p), torch.tensor(t), reduction=reduction)
        np.testing.assert_allclose(
            MSELoss(reduction=reduction)(Tensor(p, dtype=np.float64), t).data, theirs.numpy()
        )
