"""Module 12: scaled dot-product attention and multi-head attention."""

from __future__ import annotations

import numpy as np
import pytest
from _oracles import gradcheck
from tinytorch.core.attention import MultiHeadAttention, scaled_dot_product_attention
from tinytorch.core.autograd import no_grad
from tinytorch.core.tensor import Tensor


def t64(a, grad=False):
    return Tensor(np.asarray(a, dtype=np.float64), requires_grad=grad, dtype=np.float64)


def loop_attention(q, k, v, mask=None):
    """Oracle: one query at a time, softmax written out; ``mask`` is bool (True = may attend)."""
    Tq, Tk = q.shape[-2], k.shape[-2]
    lead = q.shape[:-2]
    out = np.zeros(lead + (Tq, v.shape[-1]))
    weights = np.zeros(lead + (Tq, Tk))
    m = np.broadcast_to(np.ones((Tq, Tk), bool) if mask is None else np.asarray(mask, bool), lead + (Tq, Tk))
    for idx in np.ndindex(*lead):
        for i in range(Tq):
            allowed = m[idx + (i,)]
            s = np.array([q[idx + (i,)] @ k[idx + (j,)] / np.sqrt(q.shape[-1]) for j in range(Tk)])
            e = np.where(allowed, np.exp(s - s[allowed].max()), 0.0)
            weights[idx + (i,)] = e / e.sum()
            out[idx + (i,)] = weights[idx + (i,)] @ v[idx]
    return out, weights


def causal(T, offset=0):
    return np.tri(T, offset + T, k=offset, dtype=bool)


@pytest.mark.parametrize("with_mask", [False, True])
def test_sdpa_vs_loop_oracle(with_mask):
    rng = np.random.default_rng(0)
    q, k, v = (
        rng.standard_normal((2, 3, 4, 5)),
        rng.standard_normal((2, 3, 6, 5)),
        rng.standard_normal((2, 3, 6, 2)),
    )
    mask = rng.random((4, 6)) > 0.4 if with_mask else None
    if with_mask:
        mask[:, 0] = True
    out, w = scaled_dot_product_attention(t64(q), t64(k), t64(v), mask=mask)
    ref_out, ref_w = loop_attention(q, k, v, mask)
    np.testing.assert_allclose(out.data, ref_out, atol=1e-12)
    np.testing.assert_allclose(w.data, ref_w, atol=1e-12)
    np.testing.assert_allclose(w.data.sum(-1), 1.0, atol=1e-12)
    if with_mask:
        assert np.all(w.data[..., ~mask] == 0)


def test_bool_mask_and_additive_float_mask_agree():
    """bool True = attend; float is added: 0 keeps, -inf blocks (PyTorch's convention)."""
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((2, 5, 4)) for _ in range(3))
    keep = causal(5)
    additive = np.where(keep, 0.0, -np.inf)
    a, wa = scaled_dot_product_attention(t64(q), t64(k), t64(v), mask=keep)
    b, wb = scaled_dot_product_attention(t64(q), t64(k), t64(v), mask=Tensor(additive))
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(wa.data, wb.data)
    np.testing.assert_allclose(a.data, loop_attention(q, k, v, keep)[0], atol=1e-12)
    np.testing.assert_allclose(a.data[:, 0], v[:, 0], atol=1e-12)  # the first query sees only the first key
    # A 0/1 float mask is a bias, not a keep/block mask: closed form softmax(QK^T/sqrt(d) + bias) V.
    bias = keep.astype(np.float64)
    c, _ = scaled_dot_product_attention(t64(q), t64(k), t64(v), mask=bias)
    s = q @ k.swapaxes(-1, -2) / 2.0 + bias
    w = np.exp(s - s.max(-1, keepdims=True))
    np.testing.assert_allclose(c.data, (w / w.sum(-1, keepdims=True)) @ v, atol=1e-12)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # NaN rows, as intended
def test_fully_masked_row_is_nan_like_softmax_of_minus_inf():
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((1, 3, 4)) for _ in range(3))
    keep = causal(3)
    keep[1] = False  # query 1 may attend to nothing
    for mask in (keep, np.where(keep, 0.0, -np.inf)):
        out, w = scaled_dot_product_attention(t64(q), t64(k), t64(v), mask=mask)
        # softmax([-inf, -inf, -inf]) = exp(nan) / sum: NaN (torch.softmax gives NaN too)
        assert np.all(np.isnan(w.data[0, 1])) and np.all(np.isnan(out.data[0, 1]))
        others = [0, 2]
        ref_out, ref_w = loop_attention(q, k, v, causal(3))
        np.testing.assert_allclose(out.data[0, others], ref_out[0, others], atol=1e-12)
        np.testing.assert_allclose(w.data[0, others], ref_w[0, others], atol=1e-12)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # NaN rows, as intended
def test_fully_masked_row_matches_torch_softmax(torch):
    scores = np.array([[0.3, -1.0], [-np.inf, -np.inf]])
    ref = torch.softmax(torch.from_numpy(scores), dim=-1).numpy()
    _, w = scaled_dot_product_attention(t64(np.eye(2)), t64(np.eye(2)), t64(np.eye(2)), mask=scores)
    assert np.isnan(ref[1]).all() and np.isnan(w.data[1]).all()


def test_sdpa_gradcheck_with_bool_and_float_masks():
    rng = np.random.default_rng(2)
    q, k, v = (
        t64(rng.standard_normal((2, 3, 4)), True),
        t64(rng.standard_normal((2, 5, 4)), True),
        t64(rng.standard_normal((2, 5, 3)), True),
    )
    mask = np.tri(3, 5, k=2, dtype=bool)
    assert gradcheck(lambda a, b, c: scaled_dot_product_attention(a, b, c, mask=mask)[0], [q, k, v])
    # the returned weights are differentiable too
    assert gradcheck(lambda a, b: scaled_dot_product_attention(a, b, v, mask=mask)[1], [q, k])
    # a float mask is a differentiable bias (e.g. a learned relative-position bias)
    bias = t64(rng.standard_normal((3, 5)), True)
    assert gradcheck(lambda a, m: scaled_dot_product_attention(a, k, v, mask=m)[0], [q, bias])


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_matches_torch(torch, kind):
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((2, 4, 7, 8)).astype(np.float32) for _ in range(3))
    if kind == "bool":
        mask = np.tril(np.ones((7, 7), dtype=bool))
    else:  # additive: blocked entries -inf, the rest a random bias
        mask = np.where(np.tril(np.ones((7, 7), dtype=bool)), rng.standard_normal((7, 7)), -np.inf)
        mask = mask.astype(np.float32)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    ref = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch.from_numpy(mask))
    Q, K, V = (Tensor(a, requires_grad=True) for a in (q, k, v))
    out, _ = scaled_dot_product_attention(Q, K, V, mask=mask)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-5, atol=1e-5)
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(Tensor(g))
    ref.backward(torch.from_numpy(g))
    for ours, theirs in ((Q, tq), (K, tk), (V, tv)):
        np.testing.assert_allclose(ours.grad.data, theirs.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_sdpa_errors():
    q = Tensor(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"\(2, 3, 4\).*\(2, 3, 5\)"):
        scaled_dot_product_attention(q, Tensor(np.zeros((2, 3, 5))), q)
    with pytest.raises(ValueError, match=r"\(2, 6, 4\).*\(2, 3, 4\)"):
        scaled_dot_product_attention(q, Tensor(np.zeros((2, 6, 4))), q)
    with pytest.raises(ValueError, match=r"mask of shape \(4, 4\).*\(2, 3, 3\)"):
        scaled_dot_product_attention(q, q, q, mask=np.ones((4, 4), bool))
    with pytest.raises(ValueError, match=r"'mask' must be bool.*or float.*int64"):
        scaled_dot_product_attention(q, q, q, mask=np.ones((3, 3), dtype=np.int64))


# ---------------------------------------------------------------- multi-head attention

TORCH_TO_OURS = {
    "in_proj_weight": "in_proj.weight",
    "in_proj_bias": "in_proj.bias",
    "out_proj.weight": "out_proj.weight",
    "out_proj.bias": "out_proj.bias",
}


def test_mha_parameters_are_pytorch_in_proj_layout():
    mha = MultiHeadAttention(12, 3)
    assert [(n, p.shape) for n, p in mha.named_parameters()] == [
        ("in_proj.weight", (36, 12)),
        ("in_proj.bias", (36,)),
        ("out_proj.weight", (12, 12)),
        ("out_proj.bias", (12,)),
    ]


def test_mha_matches_torch_multihead_attention_loaded_through_the_name_map(torch):
    E, H, B, T = 12, 3, 2, 5
    ref = torch.nn.MultiheadAttention(E, H, batch_first=True)
    torch.nn.init.normal_(ref.in_proj_bias)  # PyTorch starts biases at zero: make them count
    mha = MultiHeadAttention(E, H)
    mha.load_state_dict({TORCH_TO_OURS[name]: t.detach().numpy() for name, t in ref.state_dict().items()})
    x = np.random.default_rng(4).standard_normal((B, T, E)).astype(np.float32)
    keep = causal(T)
    for our_mask, torch_mask in [
        (keep, torch.from_numpy(~keep)),  # nn.MultiheadAttention's bool mask: True = blocked
        (np.where(keep, 0.0, -np.inf).astype(np.float32),) * 2,  # additive float mask: same in both
        (None, None),
    ]:
        X, tx = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        mha.zero_grad()
        ref.zero_grad()
        y = mha(X, mask=our_mask)
        if isinstance(torch_mask, np.ndarray):
            torch_mask = torch.from_numpy(torch_mask)
        ty, _ = ref(tx, tx, tx, attn_mask=torch_mask)
        np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-4, atol=1e-5)
        g = np.random.default_rng(5).standard_normal(y.shape).astype(np.float32)
        y.backward(Tensor(g))
        ty.backward(torch.from_numpy(g))
        np.testing.assert_allclose(X.grad.data, tx.grad.numpy(), rtol=1e-4, atol=1e-4)
        grads = {name: p.grad for name, p in ref.named_parameters()}
        for theirs, ours in TORCH_TO_OURS.items():
            ours_grad = dict(mha.named_parameters())[ours].grad.data
            np.testing.assert_allclose(ours_grad, grads[theirs].numpy(), rtol=1e-3, atol=1e-4, err_msg=ours)
    # ... and back: our weights loaded into PyTorch give PyTorch the same outputs.
    back = torch.nn.MultiheadAttention(E, H, batch_first=True)
    ours_to_torch = {v: k for k, v in TORCH_TO_OURS.items()}
    back.load_state_dict({ours_to_torch[n]: torch.from_numpy(a) for n, a in mha.state_dict().items()})
    with no_grad():
        y = mha(Tensor(x)).data
    np.testing.assert_allclose(back(*(torch.from_numpy(x),) * 3)[0].detach().numpy(), y, rtol=1e-4, atol=1e-5)


def test_mha_heads_equal_separate_single_head_attention():
    """Oracle for the q|k|v split and the head split: per-head loop attention in NumPy, concatenated."""
    E, H, T = 8, 2, 4
    mha = MultiHeadAttention(E, H).to(np.float64)
    x = np.random.default_rng(5).standard_normal((1, T, E))
    with no_grad():
        y = mha(t64(x)).data
    W, b = mha.in_proj.weight.data, mha.in_proj.bias.data  # (3E, E): rows q, then k, then v
    q, k, v = (x @ W[i * E : (i + 1) * E].T + b[i * E : (i + 1) * E] for i in range(3))
    heads = [
        loop_attention(q[..., h * 4 : (h + 1) * 4], k[..., h * 4 : (h + 1) * 4], v[..., h * 4 : (h + 1) * 4])[
            0
        ]
        for h in range(H)
    ]
    ref = np.concatenate(heads, axis=-1) @ mha.out_proj.weight.data.T + mha.out_proj.bias.data
    np.testing.assert_allclose(y, ref, atol=1e-12)


def test_mha_gradcheck():
    mha = MultiHeadAttention(4, 2).to(np.float64)
    x = t64(np.random.default_rng(6).standard_normal((1, 3, 4)), True)
    assert gradcheck(lambda a, w: mha(a, mask=causal(3)), [x, mha.in_proj.weight])


class ProtocolCache:
    """Minimal KV cache following the protocol (update / get / advance / seq_len)."""

    def __init__(self, batch_size, max_seq_len, num_layers, num_heads, head_dim):
        shape = (num_layers, batch_size, num_heads, max_seq_len, head_dim)
        self.k, self.v = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        self.seq_len, self.new = 0, 0

    def update(self, layer_idx, key, value):
        t = key.shape[2]
        self.k[layer_idx, :, :, self.seq_len : self.seq_len + t] = key
        self.v[layer_idx, :, :, self.seq_len : self.seq_len + t] = value
        self.new = t

    def get(self, layer_idx):
        end = self.seq_len + self.new
        return self.k[layer_idx, :, :, :end], self.v[layer_idx, :, :, :end]

    def advance(self, n):
        self.seq_len += n


def test_mha_with_cache_equals_full_causal_attention():
    E, H, T = 8, 2, 6
    mha = MultiHeadAttention(E, H)
    x = np.random.default_rng(6).standard_normal((2, T, E)).astype(np.float32)
    with no_grad():
        full = mha(Tensor(x), mask=causal(T)).data
        cache = ProtocolCache(2, 10, 1, H, E // H)
        first = mha(Tensor(x[:, :3]), mask=causal(3), cache=cache).data
        cache.advance(3)
        steps = [first]
        second = mha(Tensor(x[:, 3:5]), mask=causal(2, offset=3), cache=cache).data  # two tokens at an offset
        cache.advance(2)
        steps.append(second)
        steps.append(mha(Tensor(x[:, 5:6]), cache=cache).data)
        cache.advance(1)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=1e-5, atol=1e-6)


def test_mha_errors():
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="embed_dim"):
        MultiHeadAttention(0, 1)
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"\(B, T, 8\).*\(2, 3, 6\)"):
        mha(Tensor(np.zeros((2, 3, 6), dtype=np.float32)))
    with pytest.raises(ValueError, match="mask"):
        mha(Tensor(np.zeros((2, 3, 8), dtype=np.float32)), mask=np.ones((4, 4), bool))
    x = Tensor(np.zeros((2, 3, 8), dtype=np.float32))
    with pytest.raises(TypeError, match=r"self-attention: call mha\(x, mask=\.\.\.\)"):
        mha(x, x, x)  # PyTorch's (query, key, value) call
