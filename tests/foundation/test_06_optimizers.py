"""Module 06 - Optimizers: update rules against hand-computed steps and against torch.optim, state
round trip, and argument validation."""

import numpy as np
import pytest
from tinytorch.core.optimizers import SGD, Adam, AdamW
from tinytorch.core.tensor import Tensor


def param(values):
    return Tensor(np.asarray(values, dtype=np.float64), requires_grad=True, dtype=np.float64)


def set_grad(p, values):
    p.grad = Tensor(np.asarray(values, dtype=np.float64), dtype=np.float64)


def test_sgd_plain_and_weight_decay_by_hand():
    p = param([1.0, -2.0])
    opt = SGD([p], lr=0.1, weight_decay=0.5)
    set_grad(p, [0.2, 0.4])
    opt.step()
    # g = grad + wd * p = [0.7, -0.6]; p -= 0.1 g
    np.testing.assert_allclose(p.data, [1.0 - 0.07, -2.0 + 0.06])


def test_sgd_momentum_and_nesterov_by_hand():
    p = param([1.0])
    opt = SGD([p], lr=0.1, momentum=0.9)
    for g in (1.0, 2.0):
        set_grad(p, [g])
        opt.step()
    # b1 = 1, p = 0.9; b2 = 0.9 + 2 = 2.9, p = 0.9 - 0.29
    np.testing.assert_allclose(p.data, [0.61])
    q = param([1.0])
    nest = SGD([q], lr=0.1, momentum=0.9, nesterov=True)
    for g in (1.0, 2.0):
        set_grad(q, [g])
        nest.step()
    # step 1: b = 1, g' = 1 + 0.9 = 1.9, q = 0.81; step 2: b = 2.9, g' = 2 + 2.61 = 4.61
    np.testing.assert_allclose(q.data, [0.81 - 0.461])


def test_adam_first_steps_by_hand():
    p = param([0.5])
    opt = Adam([p], lr=0.1, betas=(0.9, 0.99), eps=1e-8)
    set_grad(p, [2.0])
    opt.step()
    # m = 0.2, v = 0.04; mhat = 2, vhat = 4: step = 0.1 * 2 / (2 + 1e-8)
    np.testing.assert_allclose(p.data, [0.5 - 0.1 * 2 / (2 + 1e-8)])
    set_grad(p, [1.0])
    opt.step()
    m = 0.9 * 0.2 + 0.1 * 1.0
    v = 0.99 * 0.04 + 0.01 * 1.0
    mhat, vhat = m / (1 - 0.9**2), v / (1 - 0.99**2)
    np.testing.assert_allclose(p.data, [0.5 - 0.1 * 2 / (2 + 1e-8) - 0.1 * mhat / (np.sqrt(vhat) + 1e-8)])


def test_adamw_decay_is_decoupled():
    p, q = param([1.0]), param([1.0])
    adamw = AdamW([p], lr=0.1, weight_decay=0.5)
    adam = Adam([q], lr=0.1, weight_decay=0.5)
    set_grad(p, [0.0])
    set_grad(q, [0.0])
    adamw.step()
    adam.step()
    np.testing.assert_allclose(p.data, [1.0 * (1 - 0.1 * 0.5)])  # pure shrink, no Adam move
    # Adam: g = 0.5, mhat/sqrt(vhat) = 1 -> moves by lr
    np.testing.assert_allclose(q.data, [1.0 - 0.1], rtol=1e-6)


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.9), weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, weight_decay=0.05)),
]


@pytest.mark.parametrize("name,kwargs", CONFIGS)
def test_matches_torch_over_several_steps(torch, name, kwargs):
    ours_cls = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}[name]
    rng = np.random.default_rng(6)
    init = [rng.standard_normal((3, 2)), rng.standard_normal(2)]
    ours = [param(v) for v in init]
    theirs = [torch.tensor(v, requires_grad=True) for v in init]
    opt = ours_cls(ours, **kwargs)
    topt = getattr(torch.optim, name)(theirs, **kwargs)
    for _ in range(6):
        for p, tp in zip(ours, theirs):
            g = rng.standard_normal(p.shape)
            set_grad(p, g)
            tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_parameters_without_grad_are_skipped_and_zero_grad():
    a, b = param([1.0]), param([2.0])
    opt = Adam([a, b], lr=0.1)
    set_grad(a, [1.0])
    opt.step()
    assert b.data[0] == 2.0 and "exp_avg" not in opt.state[1]
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_float32_parameters_stay_float32():
    p = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    for opt in (SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1), Adam([p]), AdamW([p])):
        p.grad = Tensor(np.ones(3, dtype=np.float32))
        opt.step()
        opt.step()
        assert p.data.dtype == np.float32


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_state_dict_round_trip_continues_identically(cls):
    rng = np.random.default_rng(1)
    kw = {"momentum": 0.9} if cls is SGD else {}
    p, q = param(rng.standard_normal(4)), param(np.zeros(4))
    a = cls([p], lr=0.05, **kw)
    grads = rng.standard_normal((4, 4))
    for g in grads[:2]:
        set_grad(p, g)
        a.step()
    q.data[...] = p.data
    b = cls([q], lr=0.9, **kw)
    b.load_state_dict(a.state_dict())
    assert b.lr == 0.05
    for g in grads[2:]:
        set_grad(p, g)
        set_grad(q, g)
        a.step()
        b.step()
    np.testing.assert_array_equal(p.data, q.data)


def test_load_state_dict_rejects_mismatch_and_keeps_state():
    p = param(np.zeros(3))
    opt = SGD([p], lr=0.1, momentum=0.9)
    set_grad(p, np.ones(3))
    opt.step()
    state = opt.state_dict()
    state["state.0.momentum_buffer"] = np.zeros(5)
    before = opt.state_dict()
    with pytest.raises(ValueError, match="momentum_buffer"):
        opt.load_state_dict(state)
    np.testing.assert_array_equal(opt.state[0]["momentum_buffer"], before["state.0.momentum_buffer"])


def test_argument_errors_name_the_argument():
    p = param([1.0])
    with pytest.raises(ValueError, match="'lr'"):
        SGD([p], lr=-0.1)
    with pytest.raises(ValueError, match="'lr'"):
        Adam([p], lr=-1.0)
    with pytest.raises(ValueError, match="'momentum'"):
        SGD([p], momentum=-0.5)
    with pytest.raises(ValueError, match="'nesterov'"):
        SGD([p], nesterov=True)
    with pytest.raises(ValueError, match="'betas'"):
        Adam([p], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="'eps'"):
        AdamW([p], eps=-1.0)
    with pytest.raises(ValueError, match="'weight_decay'"):
        SGD([p], weight_decay=-1.0)
    with pytest.raises(ValueError, match="'params'"):
        SGD([], lr=0.1)


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda p: SGD([p], lr=float("nan")), "lr"),
        (lambda p: SGD([p], lr=float("inf")), "lr"),
        (lambda p: SGD([p], lr="0.1"), "lr"),
        (lambda p: SGD([p], lr=True), "lr"),
        (lambda p: SGD([p], momentum=float("nan")), "momentum"),
        (lambda p: SGD([p], weight_decay=float("inf")), "weight_decay"),
        (lambda p: SGD([p], momentum=0.9, nesterov="yes"), "nesterov"),
        (lambda p: Adam([p], eps=float("nan")), "eps"),
        (lambda p: Adam([p], eps=0.0), "eps"),
        (lambda p: Adam([p], betas=(0.9, float("nan"))), "betas"),
        (lambda p: Adam([p], betas=(0.9,)), "betas"),
        (lambda p: AdamW([p], weight_decay=-0.01), "weight_decay"),
        (lambda p: SGD([{"params": [p], "lr": -1.0}], lr=0.1), "lr"),
        (lambda p: SGD([{"params": [p], "betas": (0.9, 0.9)}], lr=0.1), "unknown"),
        (lambda p: SGD([p, p], lr=0.1), "more than one"),
    ],
)
def test_non_finite_and_out_of_range_hyperparameters_are_refused(make, argument):
    with pytest.raises(ValueError, match=argument):
        make(param([1.0]))


def test_setting_lr_is_validated_too():
    opt = SGD([param([1.0])], lr=0.1)
    with pytest.raises(ValueError, match="'lr'"):
        opt.lr = float("nan")
    assert opt.lr == 0.1


def test_parameter_groups_have_their_own_hyperparameters_as_torch(torch):
    rng = np.random.default_rng(3)
    body, head = rng.standard_normal((3, 2)), rng.standard_normal(2)
    ours = [param(body), param(head)]
    theirs = [torch.tensor(body, requires_grad=True), torch.tensor(head, requires_grad=True)]
    opt = SGD(
        [{"params": [ours[0]]}, {"params": [ours[1]], "lr": 0.01, "momentum": 0.5}], lr=0.1, momentum=0.9
    )
    topt = torch.optim.SGD(
        [{"params": [theirs[0]]}, {"params": [theirs[1]], "lr": 0.01, "momentum": 0.5}], lr=0.1, momentum=0.9
    )
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    for _ in range(4):
        for p, tp in zip(ours, theirs):
            g = rng.standard_normal(p.shape)
            set_grad(p, g)
            tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12)


def test_parameter_groups_by_hand_and_lr_setter():
    a, b = param([1.0]), param([1.0])
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    set_grad(a, [1.0])
    set_grad(b, [1.0])
    opt.step()
    np.testing.assert_allclose([a.data[0], b.data[0]], [0.9, 0.5])
    opt.lr = 0.2  # the convenience setter sets every group
    assert [g["lr"] for g in opt.param_groups] == [0.2, 0.2]


def test_load_state_dict_refuses_bad_hyperparameters_and_changes_nothing():
    p = param([1.0, 2.0])
    opt = Adam([p], lr=0.1)
    good = opt.state_dict()
    for key, value in (
        ("group.0.lr", -1.0),
        ("group.0.lr", float("nan")),
        ("group.0.betas", np.array([0.9])),
        ("group.0.eps", 0.0),
        ("group.0.lr", np.array(["x"])),
        ("step_count", -3),
    ):
        bad = dict(good, **{key: value})
        with pytest.raises(ValueError):
            opt.load_state_dict(bad)
        assert opt.lr == 0.1 and opt.param_groups[0]["betas"] == (0.9, 0.999) and opt.step_count == 0
    with pytest.raises(ValueError, match="missing key 'group.0.lr'"):
        opt.load_state_dict({k: v for k, v in good.items() if k != "group.0.lr"})
