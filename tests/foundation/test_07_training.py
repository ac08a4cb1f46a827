"""Module 07 - Training: cosine schedule closed form, gradient clipping vs hand/torch, a small MLP
reaching a target loss, evaluation mode, and atomic pickle-free checkpoints."""

import math
import os

import numpy as np
import pytest
from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Dropout, Linear, Sequential
from tinytorch.core.losses import CrossEntropyLoss, MSELoss
from tinytorch.core.optimizers import SGD, Adam
from tinytorch.core.tensor import Tensor
from tinytorch.core.training import CosineSchedule, Trainer, clip_grad_norm


def blobs(n=240, seed=0):
    """Three Gaussian clusters in 2-D: separable, so an MLP must fit them almost perfectly."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    y = rng.integers(0, 3, n)
    x = centers[y] + rng.standard_normal((n, 2)) * 0.5
    return x.astype(np.float32), y


def batches(x, y, size=32):
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def make_trainer(seed=0, hidden=16, **kw):
    np.random.seed(seed)
    model = Sequential(Linear(2, hidden), ReLU(), Dropout(0.1), Linear(hidden, 3))
    return Trainer(model, Adam(model.parameters(), lr=0.02), CrossEntropyLoss(), **kw)


def test_cosine_schedule_closed_form():
    s = CosineSchedule(max_lr=0.1, min_lr=0.01, total_epochs=10)
    assert s.get_lr(0) == pytest.approx(0.1)
    assert s.get_lr(5) == pytest.approx(0.055)
    assert s.get_lr(10) == pytest.approx(0.01) and s.get_lr(50) == pytest.approx(0.01)
    assert s.get_lr(3) == pytest.approx(0.01 + 0.045 * (1 + math.cos(math.pi * 0.3)))
    lrs = [s(e) for e in range(11)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    with pytest.raises(ValueError, match="total_epochs"):
        CosineSchedule(0.1, 0.01, 0)
    with pytest.raises(ValueError, match="min_lr"):
        CosineSchedule(0.1, 0.5, 10)


def test_clip_grad_norm_by_hand():
    a = Tensor(np.zeros(2), requires_grad=True)
    b = Tensor(np.zeros(1), requires_grad=True)
    a.grad, b.grad = Tensor([3.0, 0.0]), Tensor([4.0])
    total = clip_grad_norm([a, b], max_norm=1.0)
    assert total == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad.data, [0.6, 0.0], rtol=1e-5)
    np.testing.assert_allclose(b.grad.data, [0.8], rtol=1e-5)
    assert clip_grad_norm([a, b], max_norm=10.0) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(b.grad.data, [0.8], rtol=1e-5)  # under the limit: untouched
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm([a], 0.0)


def test_clip_grad_norm_matches_torch(torch):
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    ours = [Tensor(np.zeros_like(g), requires_grad=True, dtype=np.float64) for g in grads]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, tp, g in zip(ours, theirs, grads):
        p.grad = Tensor(g, dtype=np.float64)
        tp.grad = torch.tensor(g)
    total = clip_grad_norm(ours, 0.5)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, 0.5)
    assert total == pytest.approx(float(ttotal), rel=1e-12)
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), rtol=1e-12)


def test_small_mlp_reaches_target_loss_and_accuracy():
    x, y = blobs()
    trainer = make_trainer(scheduler=CosineSchedule(0.02, 0.002, 30), grad_clip_norm=5.0)
    first = trainer.train_epoch(batches(x, y))
    for _ in range(29):
        last = trainer.train_epoch(batches(x, y))
    assert last < 0.1 < first
    loss, accuracy = trainer.evaluate(batches(*blobs(seed=1)))  # held-out draw
    assert loss < 0.15 and accuracy >= 0.97
    assert trainer.epoch == 30 and len(trainer.history["train_loss"]) == 30
    assert trainer.history["lr"][0] == pytest.approx(0.02) and trainer.history["lr"][-1] < 0.003


def test_evaluate_uses_eval_mode_no_grad_and_restores_mode():
    x, y = blobs(64)
    trainer = make_trainer()
    first = trainer.evaluate(batches(x, y))
    assert first == trainer.evaluate(batches(x, y))  # dropout off: deterministic
    assert trainer.model.training  # mode restored
    assert all(p.grad is None for p in trainer.model.parameters())
    model = Sequential(Linear(2, 1))
    reg = Trainer(model, SGD(model.parameters(), lr=0.1), MSELoss())
    loss, accuracy = reg.evaluate([(x, x[:, :1])])
    assert accuracy is None and loss > 0


def test_checkpoint_round_trip(tmp_path):
    x, y = blobs(128)
    a = make_trainer(seed=1)
    for _ in range(3):
        a.train_epoch(batches(x, y))
    path = tmp_path / "run.npz"
    a.save_checkpoint(path)
    assert os.listdir(tmp_path) == ["run.npz"]  # no temporary file left behind
    with np.load(path, allow_pickle=False) as archive:  # plain arrays only
        assert "model/0.weight" in archive.files
    b = make_trainer(seed=2)
    b.load_checkpoint(path)
    assert b.epoch == 3
    for (_, p), (_, q) in zip(a.model.named_parameters(), b.model.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    # Identical continuation proves the Adam moments came back too.
    a.model.eval()
    b.model.eval()
    a.train_step(x[:32], y[:32])
    b.train_step(x[:32], y[:32])
    for (_, p), (_, q) in zip(a.model.named_parameters(), b.model.named_parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-6)


def test_checkpoint_mismatch_leaves_model_and_optimizer_unchanged(tmp_path):
    path = tmp_path / "small.npz"
    make_trainer(seed=1, hidden=8).save_checkpoint(path)
    other = make_trainer(seed=2, hidden=16)
    before = other.model.state_dict()
    with pytest.raises(ValueError, match="shape"):
        other.load_checkpoint(path)
    for name, value in other.model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    # Same model shapes but an optimizer of another kind: the model must not be half-loaded.
    x, y = blobs(64)
    sgd_model = make_trainer(seed=3).model
    sgd = Trainer(sgd_model, SGD(sgd_model.parameters(), lr=0.1, momentum=0.9), CrossEntropyLoss())
    sgd.train_epoch(batches(x, y))
    sgd.save_checkpoint(tmp_path / "sgd.npz")
    adam = make_trainer(seed=4)
    before = adam.model.state_dict()
    with pytest.raises(ValueError):
        adam.load_checkpoint(tmp_path / "sgd.npz")
    for name, value in adam.model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    trainer = make_trainer()
    path = tmp_path / "keep.npz"
    trainer.save_checkpoint(path)
    original = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError):
        trainer.save_checkpoint(path)
    assert path.read_bytes() == original and os.listdir(tmp_path) == ["keep.npz"]


def test_trainer_argument_errors():
    model = Sequential(Linear(2, 2))
    with pytest.raises(ValueError, match="grad_clip_norm"):
        Trainer(model, SGD(model.parameters()), MSELoss(), grad_clip_norm=-1.0)
    with pytest.raises(ValueError, match="batches"):
        Trainer(model, SGD(model.parameters()), MSELoss()).train_epoch([])


def _corrupt(tmp_path, name, transform):
    """A checkpoint of a fresh trainer, its arrays passed through ``transform`` and saved as ``name``."""
    good = tmp_path / "good.npz"
    make_trainer(seed=1).save_checkpoint(good)
    with np.load(good, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays = transform(arrays)
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("name", "transform", "message"),
    [
        ("epoch.npz", lambda a: {**a, "meta/epoch": np.array("three")}, "meta/epoch"),
        ("negative-epoch.npz", lambda a: {**a, "meta/epoch": np.array(-1)}, "meta/epoch"),
        ("version.npz", lambda a: {**a, "meta/version": np.array(99)}, "version"),
        (
            "string-param.npz",
            lambda a: {**a, "model/0.weight": np.full(a["model/0.weight"].shape, "x")},
            "0.weight",
        ),
        ("betas.npz", lambda a: {**a, "optimizer/group.0.betas": np.array([0.9, 2.0])}, "betas"),
        ("negative-lr.npz", lambda a: {**a, "optimizer/group.0.lr": np.array(-1.0)}, "lr"),
        (
            "no-meta.npz",
            lambda a: {k: v for k, v in a.items() if not k.startswith("meta/")},
            "not a TinyTorch",
        ),
    ],
)
def test_a_malformed_checkpoint_changes_nothing(tmp_path, name, transform, message):
    path = _corrupt(tmp_path, name, transform)
    trainer = make_trainer(seed=5)
    model_before = trainer.model.state_dict()
    optim_before = trainer.optimizer.state_dict()
    with pytest.raises(ValueError, match=message) as info:
        trainer.load_checkpoint(path)
    assert str(path) in str(info.value)
    for k, v in trainer.model.state_dict().items():
        np.testing.assert_array_equal(v, model_before[k])
    assert trainer.optimizer.state_dict().keys() == optim_before.keys()
    assert trainer.optimizer.lr == optim_before["group.0.lr"] and trainer.epoch == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty file"), (b"hello, this is text\n", "not a .npz"), (None, "damaged or truncated")],
)
def test_unreadable_checkpoint_files_are_named(tmp_path, content, message):
    path = tmp_path / "bad.npz"
    if content is None:  # a real checkpoint cut in half
        make_trainer().save_checkpoint(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        make_trainer().load_checkpoint(path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="cannot read"):
        make_trainer().load_checkpoint(tmp_path / "missing.npz")


def test_checkpoint_file_mode_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        make_trainer().save_checkpoint(tmp_path / "a.npz")
        os.umask(0o077)
        make_trainer().save_checkpoint(tmp_path / "b.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "a.npz").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.npz").stat().st_mode & 0o777 == 0o600


def test_schedule_and_trainer_refuse_non_finite_values():
    for kwargs in (
        {"max_lr": float("nan")},
        {"min_lr": float("inf")},
        {"total_epochs": 2.5},
        {"max_lr": 0.1, "min_lr": 0.2},
    ):
        with pytest.raises(ValueError):
            CosineSchedule(**kwargs)
    model = Sequential(Linear(2, 2))
    with pytest.raises(ValueError, match="grad_clip_norm"):
        Trainer(model, SGD(model.parameters()), MSELoss(), grad_clip_norm=float("nan"))


def test_scheduler_sets_every_parameter_group():
    model = Sequential(Linear(2, 2), Linear(2, 2))
    opt = SGD([{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 1.0}], lr=0.5)
    trainer = Trainer(model, opt, MSELoss(), scheduler=CosineSchedule(0.3, 0.0, 4))
    x = np.ones((4, 2), dtype=np.float32)
    trainer.train_epoch([(x, x)])
    assert [g["lr"] for g in opt.param_groups] == [0.3, 0.3] and trainer.history["lr"] == [0.3]
