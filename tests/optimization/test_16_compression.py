"""Module 16: pruning sparsity and persistence, low-rank error, distillation loss."""

import numpy as np
import pytest
from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.optimizers import SGD, Adam
from tinytorch.core.tensor import Tensor
from tinytorch.optimization.compression import (
    KnowledgeDistillation,
    LowRankLinear,
    MaskedOptimizer,
    low_rank_approximate,
    magnitude_prune,
    measure_sparsity,
    prunable_layers,
    remove_masks,
    structured_prune,
)


def mlp(seed=0):
    np.random.seed(seed)
    return Sequential(Linear(30, 40), ReLU(), Linear(40, 20), ReLU(), Linear(20, 5))


def weight_sizes(model):
    return [m.weight.data.size for m in (model[0], model[2], model[4])]


def test_measure_sparsity_counts_weights_only():
    model = mlp()
    assert measure_sparsity(model) == 0.0
    model[0].weight.data[:3] = 0.0  # 3 rows (output neurons) of 30 weights
    model[4].bias.data[:] = 0.0  # biases do not count
    assert measure_sparsity(model) == pytest.approx(90 / sum(weight_sizes(model)))


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9])
def test_magnitude_prune_hits_target_per_layer_and_removes_smallest(sparsity):
    model = mlp(1)
    before = [m.weight.data.copy() for m in (model[0], model[2], model[4])]
    biases = [m.bias.data.copy() for m in (model[0], model[2], model[4])]
    report = magnitude_prune(model, sparsity)
    assert set(report) == {"0", "2", "4"}
    for layer, w0, b0 in zip((model[0], model[2], model[4]), before, biases):
        w = layer.weight.data
        assert abs(np.mean(w == 0) - sparsity) <= 0.01
        np.testing.assert_array_equal(layer.bias.data, b0)  # weights only
        kept = w != 0
        np.testing.assert_array_equal(w[kept], w0[kept])  # survivors untouched
        if 0 < sparsity:
            assert np.abs(w0[~kept]).max() <= np.abs(w0[kept]).min()  # the smallest went
    assert abs(measure_sparsity(model) - sparsity) <= 0.01


@pytest.mark.parametrize("opt_cls", [SGD, Adam])
def test_masks_persist_through_optimizer_steps(opt_cls):
    model = mlp(2)
    magnitude_prune(model, 0.6)
    zero_before = [m.weight.data == 0 for m in (model[0], model[2], model[4])]
    kwargs = {"momentum": 0.9, "weight_decay": 0.01} if opt_cls is SGD else {"weight_decay": 0.01}
    opt = MaskedOptimizer(opt_cls(model.parameters(), lr=0.05, **kwargs), model)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((16, 30)).astype(np.float32))
    moved = False
    for _ in range(5):
        opt.zero_grad()
        (model(x) ** 2).mean().backward()
        first = model[0].weight.data.copy()
        opt.step()
        moved |= not np.array_equal(first, model[0].weight.data)
    assert moved  # training happened
    for layer, zeros in zip((model[0], model[2], model[4]), zero_before):
        assert np.all(layer.weight.data[zeros] == 0)
    assert abs(measure_sparsity(model) - 0.6) <= 0.01
    assert opt.lr == pytest.approx(0.05)  # other attributes come from the wrapped optimizer


def test_masked_optimizer_in_a_trainer_with_a_schedule():
    """The wrapper is an optimizer to a Trainer: the schedule sets the wrapped optimizer's lr, zeros stay."""
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.training import CosineSchedule, Trainer

    model = mlp(11)
    magnitude_prune(model, 0.5)
    inner = Adam(model.parameters(), lr=0.01)
    masked = MaskedOptimizer(inner, model)
    masked.lr = 0.02
    assert inner.lr == 0.02 and masked.params is inner.params and masked.optimizer is inner
    schedule = CosineSchedule(max_lr=0.01, min_lr=0.001, total_epochs=3)
    trainer = Trainer(model, masked, CrossEntropyLoss(), scheduler=schedule)
    rng = np.random.default_rng(4)
    batches = [(rng.standard_normal((16, 30)).astype(np.float32), rng.integers(0, 5, 16)) for _ in range(3)]
    for epoch in range(3):
        trainer.train_epoch(batches)
        assert inner.lr == pytest.approx(schedule.get_lr(epoch))
    assert inner.step_count == masked.step_count == 9
    assert abs(measure_sparsity(model) - 0.5) <= 0.01
    assert masked.param_groups is inner.param_groups and masked.lr == inner.lr
    assert set(masked.state_dict()) == set(inner.state_dict())
    with pytest.raises(ValueError, match="optimizer"):
        MaskedOptimizer(object(), model)


def test_plain_optimizer_would_regrow_weights_oracle():
    """Without the mask wrapper, momentum + weight decay move pruned weights (why the wrapper exists)."""
    model = mlp(3)
    magnitude_prune(model, 0.5)
    remove_masks(model)
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = Tensor(np.random.default_rng(1).standard_normal((8, 30)).astype(np.float32))
    for _ in range(2):
        opt.zero_grad()
        (model(x) ** 2).mean().backward()
        opt.step()
    assert measure_sparsity(model) < 0.4


def test_structured_prune_removes_lowest_norm_neurons():
    """dim=0: output neurons, i.e. rows of the (out, in) weight, with their bias entries."""
    model = mlp(4)
    w0 = model[0].weight.data.copy()  # (40, 30)
    norms = np.linalg.norm(w0, axis=1)  # one per output neuron (row)
    report = structured_prune(model, 0.25)
    assert set(report) == {"0", "2"}  # output layer skipped
    expected = sorted(np.argsort(norms)[:10].tolist())
    assert report["0"] == expected
    assert np.all(model[0].weight.data[expected] == 0)
    assert np.all(model[0].bias.data[expected] == 0)
    keep = [j for j in range(40) if j not in expected]
    np.testing.assert_array_equal(model[0].weight.data[keep], w0[keep])
    assert len(report["2"]) == 5
    # The pruned neurons output exactly 0 for any input: the model could drop them.
    x = Tensor(np.random.default_rng(2).standard_normal((4, 30)).astype(np.float32))
    assert np.all(model[0](x).data[:, expected] == 0)


def test_structured_prune_input_columns():
    """dim=1: input features, i.e. columns of the (out, in) weight; biases untouched."""
    model = mlp(10)
    w0, b0 = model[0].weight.data.copy(), model[0].bias.data.copy()
    norms = np.linalg.norm(w0, axis=0)  # one per input feature (column)
    report = structured_prune(model, 0.2, dim=1)
    expected = sorted(np.argsort(norms)[:6].tolist())
    assert report["0"] == expected and len(report["2"]) == 8  # 20% of layer 2's 40 inputs
    assert np.all(model[0].weight.data[:, expected] == 0)
    np.testing.assert_array_equal(model[0].bias.data, b0)
    # The layer no longer reads the pruned input features.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 30)).astype(np.float32)
    x2 = x.copy()
    x2[:, expected] = rng.standard_normal((4, 6))
    np.testing.assert_array_equal(model[0](Tensor(x)).data, model[0](Tensor(x2)).data)
    with pytest.raises(ValueError, match="dim"):
        structured_prune(mlp(), 0.1, dim=2)


def test_structured_prune_conv_channels(require_tier):
    """Filters (dim=0) of a convolution; its input channels with dim=1."""
    require_tier("architecture")
    from tinytorch.core.spatial import Conv2d

    np.random.seed(5)
    model = Sequential(Conv2d(3, 8, 3), ReLU(), Conv2d(8, 4, 3))
    w0 = model[0].weight.data.copy()  # (out, in, kh, kw)
    norms = np.sqrt((w0**2).sum(axis=(1, 2, 3)))
    report = structured_prune(model, 0.5)
    assert report["0"] == sorted(np.argsort(norms)[:4].tolist())
    assert np.all(model[0].weight.data[report["0"]] == 0)
    np.random.seed(5)
    model = Sequential(Conv2d(3, 8, 3), ReLU(), Conv2d(8, 4, 3))
    in_norms = np.sqrt((model[2].weight.data ** 2).sum(axis=(0, 2, 3)))  # one per input channel
    report = structured_prune(model, 0.25, skip_output_layer=False, dim=1)
    assert report["2"] == sorted(np.argsort(in_norms)[:2].tolist())
    assert np.all(model[2].weight.data[:, report["2"]] == 0)


def test_embeddings_are_not_pruned(require_tier):
    """Looked-up tables have a 2-D weight but multiply nothing: left alone (protocol: no in_features)."""
    require_tier("architecture")
    from tinytorch.text.embeddings import Embedding

    np.random.seed(12)
    model = Sequential(Embedding(20, 8), Linear(8, 4))
    assert [name for name, _ in prunable_layers(model)] == ["1"]
    magnitude_prune(model, 0.5)
    assert np.all(model[0].weight.data != 0)


def test_prune_arguments_validated():
    with pytest.raises(ValueError, match="sparsity"):
        magnitude_prune(mlp(), 1.5)
    with pytest.raises(ValueError, match="prune_ratio"):
        structured_prune(mlp(), -0.1)


def test_low_rank_error_is_eckart_young():
    rng = np.random.default_rng(6)
    w = rng.standard_normal((40, 24))
    s = np.linalg.svd(w, compute_uv=False)
    a, b, info = low_rank_approximate(w, 0.25)
    assert info["rank"] == 6 and a.shape == (40, 6) and b.shape == (6, 24)
    err = np.linalg.norm(w - a.astype(np.float64) @ b)
    assert err == pytest.approx(np.sqrt((s[6:] ** 2).sum()), rel=1e-5)
    assert info["relative_error"] == pytest.approx(err / np.linalg.norm(w), rel=1e-5)
    assert info["factored_params"] == 6 * 64
    # An exactly low-rank matrix is recovered.
    low = rng.standard_normal((30, 3)) @ rng.standard_normal((3, 20))
    a, b, info = low_rank_approximate(low, 0.15)
    assert info["rank"] == 3 and info["relative_error"] < 1e-6
    with pytest.raises(ValueError, match="rank_ratio"):
        low_rank_approximate(w, 0.0)


def test_low_rank_linear_matches_factor_product():
    from tinytorch.profiling.profiler import Profiler

    np.random.seed(7)
    lin = Linear(12, 8)
    lr = LowRankLinear(lin, 1.0)
    x = Tensor(np.random.randn(5, 12).astype(np.float32))
    np.testing.assert_allclose(lr(x).data, lin(x).data, rtol=1e-4, atol=1e-5)  # full rank: exact
    assert len(lr.parameters()) == 3
    # Rank 3 of 8: the factored layer y = x B^T A^T, and its cost as the profiler counts it.
    low = LowRankLinear(lin, 3 / 8)
    a, b, _ = low_rank_approximate(lin.weight, 3 / 8)
    expected = x.data.astype(np.float64) @ (a.astype(np.float64) @ b).T + lin.bias.data
    np.testing.assert_allclose(low(x).data, expected, rtol=1e-4, atol=1e-5)
    assert Profiler().count_flops(low, (5, 12)) == 2 * 5 * (12 * 3 + 3 * 8)


def hand_distillation(s, t, y, temp, alpha):
    """Independent float64 oracle, row by row."""
    total_kl, total_ce = 0.0, 0.0
    for si, ti, yi in zip(s, t, y):
        pt = np.exp(ti / temp) / np.exp(ti / temp).sum()
        ps = np.exp(si / temp) / np.exp(si / temp).sum()
        total_kl += float((pt * np.log(pt / ps)).sum())
        p = np.exp(si) / np.exp(si).sum()
        total_ce += -np.log(p[yi])
    n = len(y)
    return alpha * temp**2 * total_kl / n + (1 - alpha) * total_ce / n


def test_distillation_loss_hand_computed_value():
    s = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    t = np.array([[2.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    y = np.array([1, 2])
    kd = KnowledgeDistillation(None, None, temperature=2.0, alpha=0.7)
    loss = kd.distillation_loss(Tensor(s), Tensor(t), y)
    assert loss.item() == pytest.approx(hand_distillation(s, t, y, 2.0, 0.7), rel=1e-5)
    # Identical logits: the KL term vanishes, only (1 - alpha) * CE remains.
    same = kd.distillation_loss(Tensor(s), s, y).item()
    assert same == pytest.approx(0.3 * hand_distillation(s, s, y, 2.0, 0.0), rel=1e-5)


def test_distillation_loss_and_gradient_match_torch(torch):
    rng = np.random.default_rng(8)
    s = rng.standard_normal((6, 5)).astype(np.float32) * 2
    t = rng.standard_normal((6, 5)).astype(np.float32) * 2
    y = rng.integers(0, 5, 6)
    temp, alpha = 3.0, 0.7
    kd = KnowledgeDistillation(None, None, temperature=temp, alpha=alpha)
    st = Tensor(s, requires_grad=True)
    loss = kd.distillation_loss(st, t, y)
    loss.backward()
    F = torch.nn.functional
    ts = torch.tensor(s, requires_grad=True)
    ref = alpha * temp**2 * F.kl_div(
        F.log_softmax(ts / temp, dim=-1), F.softmax(torch.tensor(t) / temp, dim=-1), reduction="batchmean"
    ) + (1 - alpha) * F.cross_entropy(ts, torch.tensor(y))
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    np.testing.assert_allclose(st.grad.data, ts.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_distillation_training_moves_student_toward_teacher():
    teacher, student = mlp(9), Sequential(Linear(30, 8), ReLU(), Linear(8, 5))
    kd = KnowledgeDistillation(teacher, student, temperature=2.0, alpha=1.0)
    x = Tensor(np.random.default_rng(9).standard_normal((64, 30)).astype(np.float32))
    labels = np.zeros(64, dtype=np.int64)
    opt = Adam(student.parameters(), lr=0.01)
    first = kd.train_step(x, labels, opt)
    for _ in range(40):
        last = kd.train_step(x, labels, opt)
    assert last < 0.5 * first
    with pytest.raises(ValueError, match="temperature"):
        KnowledgeDistillation(teacher, student, temperature=0)
    with pytest.raises(ValueError, match="labels"):
        kd.distillation_loss(Tensor(np.zeros((2, 5))), np.zeros((2, 5)), np.array([0, 7]))
