"""Module 03 - Layers: Module discovery, Linear (init, forward, fused backward, errors), Sequential,
Dropout statistics, state_dict round trip, and the PyTorch oracle for Linear."""

import numpy as np
import pytest
from tinytorch.core.activations import ReLU
from tinytorch.core.autograd import gradcheck, no_grad
from tinytorch.core.layers import Dropout, Linear, LinearFunction, Module, Parameter, Sequential
from tinytorch.core.tensor import Tensor

RNG = np.random.default_rng(3)


class Block(Module):
    def __init__(self):
        super().__init__()
        self.first = Linear(3, 4)
        self.heads = [Linear(4, 2), Linear(4, 1, bias=False)]
        self.scale = Parameter(np.ones(1))
        self.act = ReLU()

    def forward(self, x):
        h = self.act(self.first(x))
        return self.heads[0](h).sum() + self.heads[1](h).sum() * self.scale


def test_linear_shapes_init_and_forward():
    np.random.seed(0)
    layer = Linear(784, 256)
    assert layer.weight.shape == (784, 256) and layer.bias.shape == (256,)
    assert layer.weight.dtype == np.float32 and layer.weight.requires_grad
    bound = 1 / np.sqrt(784)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.9 * bound  # uniform fills the range
    assert Linear(3, 2, bias=False).bias is None
    x = RNG.standard_normal((5, 784)).astype(np.float32)
    y = layer(Tensor(x))
    assert y.shape == (5, 256) and y.dtype == np.float32
    np.testing.assert_allclose(y.data, x @ layer.weight.data + layer.bias.data, rtol=1e-5, atol=1e-5)
    assert layer(Tensor(np.ones((2, 3, 784)))).shape == (2, 3, 256)
    assert repr(layer) == "Linear(in_features=784, out_features=256, bias=True)"


def test_linear_width_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"Linear.*\(5, 10\).*\(784, 256\)"):
        Linear(784, 256)(Tensor(np.ones((5, 10))))
    with pytest.raises(ValueError, match="in_features"):
        Linear(0, 3)


@pytest.mark.parametrize("x_shape", [(4, 3), (2, 2, 3), (3,)])
def test_linear_function_gradcheck(x_shape):
    x = Tensor(RNG.standard_normal(x_shape), requires_grad=True, dtype=np.float64)
    w = Tensor(RNG.standard_normal((3, 2)), requires_grad=True, dtype=np.float64)
    b = Tensor(RNG.standard_normal(2), requires_grad=True, dtype=np.float64)
    assert gradcheck(lambda x, w, b: LinearFunction.apply(x, w, b), [x, w, b])
    assert gradcheck(lambda x, w: LinearFunction.apply(x, w, None), [x, w])


def test_linear_matches_torch(torch):
    layer = Linear(6, 4)
    x = Tensor(RNG.standard_normal((5, 6)), requires_grad=True)
    (layer(x) ** 2).sum().backward()
    tl = torch.nn.Linear(6, 4)
    with torch.no_grad():
        tl.weight.copy_(torch.tensor(layer.weight.data.T))  # torch stores (out, in)
        tl.bias.copy_(torch.tensor(layer.bias.data))
    tx = torch.tensor(x.data, requires_grad=True)
    (tl(tx) ** 2).sum().backward()
    np.testing.assert_allclose(layer.weight.grad.data, tl.weight.grad.numpy().T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.bias.grad.data, tl.bias.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_parameter_discovery_names_and_modes():
    block = Block()
    names = [n for n, _ in block.named_parameters()]
    assert names == [
        "first.weight",
        "first.bias",
        "heads.0.weight",
        "heads.0.bias",
        "heads.1.weight",
        "scale",
    ]
    assert len(block.parameters()) == 6 and all(p.requires_grad for p in block.parameters())
    assert block.training and block.heads[1].training
    block.eval()
    assert not block.training and not block.heads[0].training and not block.act.training
    block.train()
    assert block.heads[1].training
    block(Tensor(np.ones((2, 3)))).backward()
    assert all(p.grad is not None for p in block.parameters())
    block.zero_grad()
    assert all(p.grad is None for p in block.parameters())
    shared = Linear(2, 2)
    seq = Sequential(shared, shared)
    assert len(seq.parameters()) == 2  # a shared layer counts once


def test_sequential_order_indexing_and_repr():
    seq = Sequential(Linear(4, 3), ReLU(), Linear(3, 2))
    assert len(seq) == 3 and isinstance(seq[1], ReLU) and [type(m) for m in seq] == [Linear, ReLU, Linear]
    x = Tensor(RNG.standard_normal((5, 4)))
    manual = seq[2](seq[1](seq[0](x)))
    np.testing.assert_array_equal(seq(x).data, manual.data)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    text = repr(Sequential(seq, Dropout(0.1)))
    assert text.splitlines()[0] == "Sequential(" and "  (0): Sequential(" in text
    assert (
        "    (0): Linear(in_features=4, out_features=3, bias=True)" in text and "(1): Dropout(p=0.1)" in text
    )
    with pytest.raises(ValueError):
        Sequential(Linear(2, 2), "relu")


def test_state_dict_round_trip_copies_and_validates():
    a, b = Block(), Block()
    state = a.state_dict()
    assert list(state) == [n for n, _ in a.named_parameters()]
    state["first.weight"][...] = 0.0  # a copy: the model is untouched
    assert np.abs(a.first.weight.data).sum() > 0
    state = a.state_dict()
    weight_array = b.first.weight.data
    b.load_state_dict(state)
    assert b.first.weight.data is weight_array  # loaded in place
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    x = Tensor(np.ones((2, 3)))
    np.testing.assert_array_equal(a(x).data, b(x).data)


def test_load_state_dict_mismatch_leaves_model_unchanged():
    block = Block()
    before = block.state_dict()
    bad = Block().state_dict()
    bad["heads.0.weight"] = np.zeros((5, 2))
    with pytest.raises(ValueError, match=r"heads.0.weight.*\(5, 2\).*\(4, 2\)"):
        block.load_state_dict(bad)
    missing = Block().state_dict()
    del missing["scale"]
    with pytest.raises(ValueError, match="missing key 'scale'"):
        block.load_state_dict(missing)
    extra = dict(Block().state_dict(), extra=np.ones(1))
    with pytest.raises(ValueError, match="unexpected key 'extra'"):
        block.load_state_dict(extra)
    for name, value in block.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_buffers_are_saved_and_loaded():
    class Norm(Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("running_mean", np.zeros(3, dtype=np.float32))

    n = Norm()
    assert list(n.state_dict()) == ["running_mean"]
    n.load_state_dict({"running_mean": np.arange(3.0)})
    np.testing.assert_array_equal(n.running_mean, [0, 1, 2])


def test_dropout_statistics_scaling_and_eval():
    np.random.seed(1)
    drop = Dropout(0.25)
    x = Tensor(np.ones((200, 200)), requires_grad=True)
    y = drop(x)
    kept = y.data != 0
    assert abs(1 - kept.mean() - 0.25) < 0.01  # fraction dropped ~ p
    np.testing.assert_allclose(y.data[kept], 1 / 0.75)  # inverted scaling
    assert abs(y.data.mean() - 1.0) < 0.02  # expectation preserved
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, y.data)  # gradient uses the same mask
    drop.eval()
    assert drop(x) is x
    assert Dropout(0.0)(x) is x
    for p in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="'p'"):
            Dropout(p)


def test_no_grad_forward_builds_no_graph():
    layer = Linear(3, 2)
    with no_grad():
        y = layer(Tensor(np.ones((1, 3))))
    assert not y.requires_grad and y._ctx is None


def test_deepcopy_and_pickle_give_independent_models():
    import copy
    import pickle

    model = Sequential(Linear(3, 4), ReLU(), Linear(4, 2))
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert isinstance(clone[0].weight, Parameter) and clone[0].weight.requires_grad
        np.testing.assert_array_equal(clone[0].weight.data, model[0].weight.data)
        clone[0].weight.data[...] = 0.0
        assert np.abs(model[0].weight.data).sum() > 0
