"""Module 03 - Layers: Module discovery and hooks, Linear (PyTorch layout (out, in), init, forward,
errors), Sequential, Dropout statistics, state_dict round trip and validation, the PyTorch oracle for
Linear's values and weight layout. The derivatives (Linear backward) are Module 05's tests."""

import numpy as np
import pytest
from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Dropout, Linear, Module, Parameter, Sequential
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
    assert layer.weight.shape == (256, 784) and layer.bias.shape == (256,)  # (out, in) as PyTorch
    assert layer.weight.dtype == np.float32 and layer.weight.requires_grad
    bound = 1 / np.sqrt(784)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.9 * bound  # uniform fills the range
    assert Linear(3, 2, bias=False).bias is None
    x = RNG.standard_normal((5, 784)).astype(np.float32)
    y = layer(Tensor(x))
    assert y.shape == (5, 256) and y.dtype == np.float32
    np.testing.assert_allclose(y.data, x @ layer.weight.data.T + layer.bias.data, rtol=1e-5, atol=1e-5)
    assert layer(Tensor(np.ones((2, 3, 784)))).shape == (2, 3, 256)
    assert repr(layer) == "Linear(in_features=784, out_features=256, bias=True)"


def test_linear_width_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"Linear.*\(5, 10\).*\(256, 784\)"):
        Linear(784, 256)(Tensor(np.ones((5, 10))))
    for bad in (0, -1, 3.7, "3", True, None):
        with pytest.raises(ValueError, match="in_features"):
            Linear(bad, 3)
    with pytest.raises(ValueError, match="out_features"):
        Linear(3, 2.0)


def test_linear_matches_torch_values_and_layout(torch):
    """The same weights give the same outputs in both libraries: state_dicts move unchanged."""
    tl = torch.nn.Linear(6, 4).double()
    layer = Linear(6, 4)
    layer.load_state_dict({k: v.numpy() for k, v in tl.state_dict().items()})
    x = RNG.standard_normal((5, 6))
    np.testing.assert_allclose(
        layer.to(np.float64)(Tensor(x, dtype=np.float64)).data,
        tl(torch.tensor(x)).detach().numpy(),
        rtol=1e-12,
    )
    back = torch.nn.Linear(6, 4).double()
    back.load_state_dict({k: torch.tensor(v) for k, v in layer.state_dict().items()})
    np.testing.assert_array_equal(back.weight.detach().numpy(), tl.weight.detach().numpy())


def test_mlp_state_dict_moves_between_pytorch_and_tinytorch(torch):
    """A PyTorch MLP's state_dict loads unchanged (same keys, same layouts), outputs agree, and back again."""
    from tinytorch.core.activations import GELU, LeakyReLU, Tanh

    nn = torch.nn
    theirs = nn.Sequential(
        nn.Linear(5, 8), nn.LeakyReLU(0.1), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 3), nn.GELU()
    )
    ours = Sequential(Linear(5, 8), LeakyReLU(0.1), Linear(8, 6), Tanh(), Linear(6, 3), GELU())
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert list(state) == list(ours.state_dict())  # the same names, in the same order
    ours.load_state_dict(state)
    x = RNG.standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_allclose(
        ours(Tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6
    )
    back = nn.Sequential(
        nn.Linear(5, 8), nn.LeakyReLU(0.1), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 3), nn.GELU()
    )
    back.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    np.testing.assert_array_equal(
        back(torch.tensor(x)).detach().numpy(), theirs(torch.tensor(x)).detach().numpy()
    )


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
    assert ReLU().parameters() == [] and block.act.state_dict() == {}  # activations own no parameters
    assert block.training and block.heads[1].training
    block.eval()
    assert not block.training and not block.heads[0].training and not block.act.training
    block.train()
    assert block.heads[1].training
    for p in block.parameters():
        p.grad = Tensor(np.ones(p.shape))
    block.zero_grad()
    assert all(p.grad is None for p in block.parameters())
    names = [n for n, _ in block.named_modules()]
    assert names == ["", "first", "heads.0", "heads.1", "act"]
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
    with pytest.raises(ValueError, match=r"heads.0.weight.*\(5, 2\).*\(2, 4\)"):
        block.load_state_dict(bad)
    strings = dict(Block().state_dict(), scale=np.array(["x"]))
    with pytest.raises(ValueError, match="scale.*not numbers"):
        block.load_state_dict(strings)
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
    x = Tensor(np.ones((200, 200)))
    y = drop(x)
    kept = y.data != 0
    assert abs(1 - kept.mean() - 0.25) < 0.01  # fraction dropped ~ p
    np.testing.assert_allclose(y.data[kept], 1 / 0.75)  # inverted scaling
    assert abs(y.data.mean() - 1.0) < 0.02  # expectation preserved
    drop.eval()
    assert drop(x) is x
    assert Dropout(0.0)(x) is x
    for p in (-0.1, 1.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="'p'"):
            Dropout(p)


def test_forward_hooks_observe_and_can_be_removed():
    layer, seen = Linear(3, 2), []
    pre = layer.register_forward_pre_hook(lambda m, args: seen.append(("pre", args[0].shape)))
    post = layer.register_forward_hook(lambda m, args, out: seen.append(("post", out.shape)))
    layer(Tensor(np.ones((4, 3))))
    assert seen == [("pre", (4, 3)), ("post", (4, 2))]
    pre.remove()
    post.remove()
    layer(Tensor(np.ones((1, 3))))
    assert len(seen) == 2
    doubled = layer.register_forward_hook(lambda m, args, out: out * 2.0)  # a result replaces the output
    x = Tensor(np.ones((1, 3)))
    np.testing.assert_allclose(layer(x).data, 2 * layer.forward(x).data)
    doubled.remove()
    assert "hook" not in repr(layer)


def test_apply_and_to_dtype():
    model = Sequential(Linear(3, 4), ReLU(), Linear(4, 2))
    visited = []
    model.apply(lambda m: visited.append(type(m).__name__))
    assert visited == ["Linear", "ReLU", "Linear", "Sequential"]
    model.to(np.float64)
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model(Tensor(np.ones((1, 3)), dtype=np.float64)).dtype == np.float64
    with pytest.raises(ValueError, match="dtype"):
        model.to(np.int32)


def test_deepcopy_and_pickle_give_independent_models():
    import copy
    import pickle

    model = Sequential(Linear(3, 4), ReLU(), Linear(4, 2))
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert isinstance(clone[0].weight, Parameter) and clone[0].weight.requires_grad
        np.testing.assert_array_equal(clone[0].weight.data, model[0].weight.data)
        clone[0].weight.data[...] = 0.0
        assert np.abs(model[0].weight.data).sum() > 0
