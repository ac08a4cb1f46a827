"""Module 12: scaled dot-product attention and multi-head attention."""

from __future__ import annotations

import numpy as np
import pytest
from tinytorch.core.attention import MultiHeadAttention, scaled_dot_product_attention
from tinytorch.core.autograd import gradcheck, no_grad
from tinytorch.core.tensor import Tensor


def t64(a, grad=False):
    return Tensor(np.asarray(a, dtype=np.float64), requires_grad=grad, dtype=np.float64)


def loop_attention(q, k, v, mask=None):
    """Oracle: one query at a time, softmax written out."""
    Tq, Tk = q.shape[-2], k.shape[-2]
    lead = q.shape[:-2]
    out = np.zeros(lead + (Tq, v.shape[-1]))
    weights = np.zeros(lead + (Tq, Tk))
    m = np.ones((Tq, Tk), bool) if mask is None else np.broadcast_to(np.asarray(mask, bool), lead + (Tq, Tk))
    for idx in np.ndindex(*lead):
        for i in range(Tq):
            allowed = m[idx + (i,)] if mask is not None else m[i]
            s = np.array([q[idx + (i,)] @ k[idx + (j,)] / np.sqrt(q.shape[-1]) for j in range(Tk)])
            if not allowed.any():
                continue
            e = np.where(allowed, np.exp(s - s[allowed].max()), 0.0)
            w = e / e.sum()
            weights[idx + (i,)] = w
            out[idx + (i,)] = w @ v[idx]
    return out, weights


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


def test_sdpa_mask_forms_and_empty_rows():
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((1, 3, 4)) for _ in range(3))
    tri = np.tril(np.ones((3, 3)))
    a, _ = scaled_dot_product_attention(t64(q), t64(k), t64(v), mask=tri)  # 0/1 floats
    b, _ = scaled_dot_product_attention(t64(q), t64(k), t64(v), mask=Tensor(tri.astype(bool)))
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_allclose(a.data[0, 0], v[0, 0])  # the first query sees only the first key
    blocked = tri.copy()
    blocked[1] = 0  # query 1 may attend to nothing: zero weights and output, no NaN
    out, w = scaled_dot_product_attention(t64(q, True), t64(k), t64(v), mask=blocked)
    assert np.all(np.isfinite(out.data)) and np.all(w.data[0, 1] == 0) and np.all(out.data[0, 1] == 0)
    out.sum().backward()


def test_sdpa_gradcheck_with_mask():
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


def test_sdpa_matches_torch(torch):
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((2, 4, 7, 8)).astype(np.float32) for _ in range(3))
    mask = np.tril(np.ones((7, 7), dtype=bool))
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
        scaled_dot_product_attention(q, q, q, mask=np.ones((4, 4)))


def _load_into_torch(torch, mha, E, H):
    ref = torch.nn.MultiheadAttention(E, H, batch_first=True)
    with torch.no_grad():
        w = np.concatenate([mha.q_proj.weight.data.T, mha.k_proj.weight.data.T, mha.v_proj.weight.data.T])
        b = np.concatenate([mha.q_proj.bias.data, mha.k_proj.bias.data, mha.v_proj.bias.data])
        ref.in_proj_weight.copy_(torch.from_numpy(w))
        ref.in_proj_bias.copy_(torch.from_numpy(b))
        ref.out_proj.weight.copy_(torch.from_numpy(mha.out_proj.weight.data.T.copy()))
        ref.out_proj.bias.copy_(torch.from_numpy(mha.out_proj.bias.data))
    return ref


def test_mha_matches_torch_with_causal_mask(torch):
    E, H, B, T = 12, 3, 2, 5
    mha = MultiHeadAttention(E, H)
    assert [n for n, _ in mha.named_parameters()] == [
        f"{p}.{w}" for p in ("q_proj", "k_proj", "v_proj", "out_proj") for w in ("weight", "bias")
    ]
    ref = _load_into_torch(torch, mha, E, H)
    x = np.random.default_rng(4).standard_normal((B, T, E)).astype(np.float32)
    causal = np.tril(np.ones((T, T), dtype=bool))
    X, tx = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y = mha(X, mask=causal)
    ty, _ = ref(tx, tx, tx, attn_mask=torch.from_numpy(~causal))  # torch: True = blocked
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-4, atol=1e-5)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(X.grad.data, tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        mha.out_proj.weight.grad.data, ref.out_proj.weight.grad.numpy().T, rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        mha.q_proj.weight.grad.data, ref.in_proj_weight.grad.numpy()[:E].T, rtol=1e-3, atol=1e-4
    )


def test_mha_heads_equal_separate_single_head_attention():
    """Oracle for the head split: attend per head with plain numpy, concatenate, project."""
    E, H, T = 8, 2, 4
    mha = MultiHeadAttention(E, H)
    x = np.random.default_rng(5).standard_normal((1, T, E)).astype(np.float64)
    with no_grad():
        y = mha(Tensor(x)).data
    q = x @ mha.q_proj.weight.data + mha.q_proj.bias.data
    k = x @ mha.k_proj.weight.data + mha.k_proj.bias.data
    v = x @ mha.v_proj.weight.data + mha.v_proj.bias.data
    heads = [
        loop_attention(q[..., h * 4 : (h + 1) * 4], k[..., h * 4 : (h + 1) * 4], v[..., h * 4 : (h + 1) * 4])[
            0
        ]
        for h in range(H)
    ]
    ref = np.concatenate(heads, axis=-1) @ mha.out_proj.weight.data + mha.out_proj.bias.data
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)


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
        full = mha(Tensor(x), mask=np.tril(np.ones((T, T), bool))).data
        cache = ProtocolCache(2, 10, 1, H, E // H)
        first = mha(Tensor(x[:, :3]), mask=np.tril(np.ones((3, 3), bool)), cache=cache).data
        cache.advance(3)
        steps = [first]
        for t in range(3, T):
            steps.append(mha(Tensor(x[:, t : t + 1]), cache=cache).data)
            cache.advance(1)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=1e-5, atol=1e-6)


def test_mha_errors():
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(10, 3)
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"\(B, T, 8\).*\(2, 3, 6\)"):
        mha(Tensor(np.zeros((2, 3, 6), dtype=np.float32)))
    with pytest.raises(ValueError, match="mask"):
        mha(Tensor(np.zeros((2, 3, 8), dtype=np.float32)), mask=np.ones((4, 4)))


def test_split_and_merge_heads_match_reshape_permute_and_gradcheck():
    from tinytorch.core.attention import MergeHeadsFunction, SplitHeadsFunction

    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 8))
    split = SplitHeadsFunction.apply(Tensor(x), 4)
    # Oracle: head h of position t holds features [h*D, (h+1)*D) of x[:, t].
    for h in range(4):
        np.testing.assert_array_equal(split.data[:, h], x[:, :, 2 * h : 2 * h + 2].astype(np.float32))
    assert MergeHeadsFunction.apply(split).shape == (2, 3, 8)
    np.testing.assert_array_equal(MergeHeadsFunction.apply(split).data, x.astype(np.float32))
    w = rng.standard_normal((2, 4, 3, 2))
    xt = Tensor(x, requires_grad=True, dtype=np.float64)
    assert gradcheck(lambda t: SplitHeadsFunction.apply(t, 4) * Tensor(w, dtype=np.float64), [xt])
    yt = Tensor(rng.standard_normal((2, 4, 3, 2)), requires_grad=True, dtype=np.float64)
    assert gradcheck(lambda t: MergeHeadsFunction.apply(t) * Tensor(x, dtype=np.float64), [yt])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sdpa_inference_fast_path_equals_graph_path(dtype):
    rng = np.random.default_rng(6)
    q, k, v = (rng.standard_normal(s).astype(dtype) for s in ((2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 2)))
    mask = np.tri(4, 6, k=2, dtype=bool)
    graph_out, graph_w = scaled_dot_product_attention(
        Tensor(q, requires_grad=True, dtype=dtype), Tensor(k, dtype=dtype), Tensor(v, dtype=dtype), mask=mask
    )
    with no_grad():
        fast_out, fast_w = scaled_dot_product_attention(
            Tensor(q, dtype=dtype), Tensor(k, dtype=dtype), Tensor(v, dtype=dtype), mask=mask
        )
    assert fast_out.dtype == dtype and fast_w.dtype == dtype and not fast_out.requires_grad
    np.testing.assert_array_equal(fast_out.data, graph_out.data)
    np.testing.assert_array_equal(fast_w.data, graph_w.data)
    # Oracle: plain NumPy softmax attention.
    s = q @ k.swapaxes(-1, -2) / np.sqrt(5) + np.where(mask, 0.0, -np.inf)
    w = np.exp(s - s.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    np.testing.assert_allclose(fast_out.data, w @ v, rtol=1e-5, atol=1e-6)
