"""Module 13: LayerNorm, MLP, TransformerBlock, causal mask, GPT (forward, training, generation, KV cache)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from _oracles import gradcheck
from tinytorch.core.autograd import no_grad
from tinytorch.core.tensor import Tensor
from tinytorch.models.transformer import (
    GPT,
    MLP,
    LayerNorm,
    LayerNormFunction,
    TransformerBlock,
    create_causal_mask,
    sample_next_token,
)


def t64(a, grad=False):
    return Tensor(np.asarray(a, dtype=np.float64), requires_grad=grad, dtype=np.float64)


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


# ---------------------------------------------------------------- LayerNorm


def test_layernorm_closed_form_and_gradcheck():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 6)) * 5 + 2
    w, b = rng.standard_normal(6), rng.standard_normal(6)
    y = LayerNormFunction.apply(t64(x), t64(w), t64(b), eps=1e-5)
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * w + b
    np.testing.assert_allclose(y.data, ref, atol=1e-10)
    assert gradcheck(
        lambda a, c, d: LayerNormFunction.apply(a, c, d, eps=1e-5),
        [t64(x[:2], True), t64(w, True), t64(b, True)],
    )
    # two normalized dims
    w2 = rng.standard_normal((4, 6))
    y2 = LayerNormFunction.apply(t64(x), t64(w2), t64(np.zeros((4, 6))), eps=1e-5)
    flat = x.reshape(3, -1)
    ref2 = ((flat - flat.mean(-1, keepdims=True)) / np.sqrt(flat.var(-1, keepdims=True) + 1e-5)).reshape(
        x.shape
    ) * w2
    np.testing.assert_allclose(y2.data, ref2, atol=1e-10)


def test_layernorm_matches_torch(torch):
    rng = np.random.default_rng(1)
    ln, ref = LayerNorm(8), torch.nn.LayerNorm(8)
    ln.weight.data[...] = rng.standard_normal(8)
    ln.bias.data[...] = rng.standard_normal(8)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(ln.weight.data))
        ref.bias.copy_(torch.from_numpy(ln.bias.data))
    x = rng.standard_normal((4, 5, 8)).astype(np.float32)
    X, tx = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = ln(X), ref(tx)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    g = rng.standard_normal(x.shape).astype(np.float32)
    y.backward(Tensor(g))
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(X.grad.data, tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ln.weight.grad.data, ref.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ln.bias.grad.data, ref.bias.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_layernorm_errors():
    with pytest.raises(ValueError, match=r"\(2, 5\).*\(4,\)"):
        LayerNorm(4)(Tensor(np.zeros((2, 5), dtype=np.float32)))
    with pytest.raises(ValueError, match="normalized_shape"):
        LayerNorm(0)


# ---------------------------------------------------------------- MLP, block, mask


def test_mlp_closed_form():
    mlp = MLP(6)
    assert mlp.fc1.weight.shape == (24, 6) and mlp.fc2.weight.shape == (6, 24)  # (out, in) as PyTorch
    x = np.random.default_rng(2).standard_normal((2, 3, 6)).astype(np.float32)
    h = gelu_tanh(x @ mlp.fc1.weight.data.T + mlp.fc1.bias.data)
    ref = h @ mlp.fc2.weight.data.T + mlp.fc2.bias.data
    np.testing.assert_allclose(mlp(Tensor(x)).data, ref, rtol=1e-4, atol=1e-5)
    assert MLP(6, hidden_dim=10).fc1.weight.shape == (10, 6)
    mlp = mlp.to(np.float64)
    assert gradcheck(lambda a: mlp(a), [t64(x[:1, :2], True)])


def test_relu_mlp_as_the_original_transformer():
    mlp = MLP(6, activation="relu")
    x = np.random.default_rng(3).standard_normal((2, 3, 6)).astype(np.float32)
    h = np.maximum(x @ mlp.fc1.weight.data.T + mlp.fc1.bias.data, 0)  # the definition, written here
    ref = h @ mlp.fc2.weight.data.T + mlp.fc2.bias.data
    np.testing.assert_allclose(mlp(Tensor(x)).data, ref, rtol=1e-5, atol=1e-6)
    np.random.seed(4)
    gpt = GPT(11, 8, num_layers=2, num_heads=2, max_seq_len=6, activation="relu")
    assert [b.mlp.activation for b in gpt.blocks] == ["relu", "relu"]
    assert GPT(11, 8, num_layers=1, num_heads=2, max_seq_len=6).blocks[0].mlp.activation == "gelu"
    for make in (lambda: MLP(6, activation="swish"), lambda: GPT(11, 8, 1, 2, 6, activation=None)):
        with pytest.raises(ValueError, match="argument 'activation' must be one of"):
            make()


def test_causal_mask():
    m = create_causal_mask(4)
    assert m.dtype == bool and m.shape == (4, 4)
    np.testing.assert_array_equal(m.data, np.tril(np.ones((4, 4), dtype=bool)))
    m = create_causal_mask(2, offset=3).data  # 2 new queries after 3 cached positions
    np.testing.assert_array_equal(m, [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    for bad in (dict(seq_len=0), dict(seq_len=2, offset=-1), dict(seq_len=2.0)):
        with pytest.raises(ValueError, match="seq_len|offset"):
            create_causal_mask(**bad)


def torch_block(torch, blk, E, H):
    """The same pre-norm block written with torch ops, weights copied from ``blk``."""
    F = torch.nn.functional
    P = {n: torch.tensor(p.data, requires_grad=True) for n, p in blk.named_parameters()}

    def forward(x, mask):
        B, T, _ = x.shape
        h = F.layer_norm(x, (E,), P["ln1.weight"], P["ln1.bias"])
        qkv = F.linear(h, P["attn.in_proj.weight"], P["attn.in_proj.bias"])  # (B, T, 3E)
        q, k, v = (t.reshape(B, T, H, E // H).transpose(1, 2) for t in qkv.split(E, dim=-1))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + F.linear(
            a.transpose(1, 2).reshape(B, T, E), P["attn.out_proj.weight"], P["attn.out_proj.bias"]
        )
        h = F.layer_norm(x, (E,), P["ln2.weight"], P["ln2.bias"])
        h = F.gelu(F.linear(h, P["mlp.fc1.weight"], P["mlp.fc1.bias"]), approximate="tanh")
        return x + F.linear(h, P["mlp.fc2.weight"], P["mlp.fc2.bias"])

    return forward, P


def test_transformer_block_matches_torch(torch):
    E, H, T = 16, 4, 6
    blk = TransformerBlock(E, H)
    forward, P = torch_block(torch, blk, E, H)
    x = np.random.default_rng(3).standard_normal((2, T, E)).astype(np.float32)
    mask = np.tril(np.ones((T, T), dtype=bool))
    X, tx = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = blk(X, mask=mask), forward(tx, torch.from_numpy(mask))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    g = np.random.default_rng(4).standard_normal(y.shape).astype(np.float32)
    y.backward(Tensor(g))
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(X.grad.data, tx.grad.numpy(), rtol=1e-3, atol=1e-4)
    for name, p in blk.named_parameters():
        np.testing.assert_allclose(p.grad.data, P[name].grad.numpy(), rtol=1e-3, atol=1e-4, err_msg=name)


# ---------------------------------------------------------------- GPT


def small_gpt(seed=0, **kw):
    np.random.seed(seed)
    args = dict(vocab_size=13, embed_dim=16, num_layers=2, num_heads=2, max_seq_len=12)
    args.update(kw)
    return GPT(**args)


# PyTorch's nn.MultiheadAttention keeps q|k|v as two tensors of its own; ours is an in_proj Linear.
TORCH_GPT_NAME_MAP = {"attn.in_proj_weight": "attn.in_proj.weight", "attn.in_proj_bias": "attn.in_proj.bias"}


def to_ours(name: str) -> str:
    for theirs, ours in TORCH_GPT_NAME_MAP.items():
        name = name.replace(theirs, ours)
    return name


def torch_gpt(torch, vocab, E, H, layers, max_len):
    """A GPT built from PyTorch modules, named as ours except where the map above says."""
    nn = torch.nn

    class Embeddings(nn.Module):
        def __init__(self):
            super().__init__()
            self.token_embedding = nn.Embedding(vocab, E)
            self.position_embedding = nn.Embedding(max_len, E)

        def forward(self, ids):
            return self.token_embedding(ids) + self.position_embedding(torch.arange(ids.shape[1]))

    class FeedForward(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(E, 4 * E), nn.Linear(4 * E, E)

        def forward(self, x):
            return self.fc2(nn.functional.gelu(self.fc1(x), approximate="tanh"))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(E), nn.LayerNorm(E)
            self.attn = nn.MultiheadAttention(E, H, batch_first=True)
            self.mlp = FeedForward()

        def forward(self, x):
            T = x.shape[1]
            blocked = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)  # True = may not attend
            h = self.ln1(x)
            x = x + self.attn(h, h, h, attn_mask=blocked, need_weights=False)[0]
            return x + self.mlp(self.ln2(x))

    class TorchGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = Embeddings()
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.ln_f, self.head = nn.LayerNorm(E), nn.Linear(E, vocab)

        def forward(self, ids):
            x = self.embedding(ids)
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln_f(x))

    return TorchGPT()


def test_gpt_state_dict_moves_between_pytorch_and_tinytorch(torch):
    """A GPT of PyTorch modules loads into ours through the documented name map, and back."""
    torch.manual_seed(0)
    theirs = torch_gpt(torch, vocab=13, E=16, H=2, layers=2, max_len=12).eval()
    ours = small_gpt()
    state = {to_ours(k): v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert set(state) == set(ours.state_dict())
    ours.load_state_dict(state)
    ids = np.random.default_rng(5).integers(0, 13, (3, 9))
    expected = theirs(torch.from_numpy(ids)).detach().numpy()
    np.testing.assert_allclose(ours(ids).data, expected, rtol=1e-4, atol=1e-4)
    back = torch_gpt(torch, vocab=13, E=16, H=2, layers=2, max_len=12).eval()
    ours_to_torch = {to_ours(k): k for k in back.state_dict()}
    back.load_state_dict({ours_to_torch[k]: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    np.testing.assert_array_equal(back(torch.from_numpy(ids)).detach().numpy(), expected)


def test_gpt_shapes_and_parameter_names():
    model = small_gpt()
    tokens = np.random.default_rng(0).integers(0, 13, (3, 7))
    assert model(tokens).shape == (3, 7, 13)
    names = [n for n, _ in model.named_parameters()]
    assert names[:2] == ["embedding.token_embedding.weight", "embedding.position_embedding.weight"]
    assert "blocks.1.attn.in_proj.weight" in names and "blocks.0.mlp.fc2.bias" in names
    assert names[-4:] == ["ln_f.weight", "ln_f.bias", "head.weight", "head.bias"]
    assert model.head.weight.shape == (13, 16)
    assert model.kv_cache_factory is None


def test_no_grad_gives_the_same_logits():
    model = small_gpt()
    tokens = np.random.default_rng(3).integers(0, 13, (2, 9))
    with_graph = model(tokens)
    with no_grad():
        without_graph = model(tokens)
    assert with_graph.requires_grad and not without_graph.requires_grad
    np.testing.assert_array_equal(without_graph.data, with_graph.data)


def test_gpt_is_causal():
    """Changing token t never changes the logits at positions before t."""
    model = small_gpt()
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 13, (2, 10))
    with no_grad():
        base = model(tokens).data
        for t in range(10):
            changed = tokens.copy()
            changed[:, t] = (changed[:, t] + 1 + rng.integers(0, 11)) % 13
            out = model(changed).data
            np.testing.assert_array_equal(out[:, :t], base[:, :t])
            assert not np.allclose(out[:, t], base[:, t])


def test_gpt_learns_deterministic_sequence():
    from tinytorch.core.losses import cross_entropy
    from tinytorch.core.optimizers import Adam

    model = small_gpt(seed=1, vocab_size=7, embed_dim=32, num_layers=1, num_heads=2, max_seq_len=16)
    pattern = np.array([3, 1, 4, 1, 5, 2, 6, 0])
    stream = np.tile(pattern, 8)
    starts = np.arange(8)
    x = np.stack([stream[s : s + 12] for s in starts])
    y = np.stack([stream[s + 1 : s + 13] for s in starts])
    opt = Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        logits = model(x)
        loss = cross_entropy(logits.reshape(-1, logits.shape[-1]), Tensor(y.reshape(-1)))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 < losses[0]
    out = model.generate(stream[:5], 12, temperature=0)
    np.testing.assert_array_equal(out, stream[:17])


def naive_greedy(model, prompt, n):
    """Oracle: recompute the cropped window and take the argmax, one token at a time."""
    seq = [list(row) for row in prompt]
    for _ in range(n):
        window = np.array([s[-model.max_seq_len :] for s in seq])
        with no_grad():
            nxt = model(window).data[:, -1].argmax(-1)
        for s, t in zip(seq, nxt):
            s.append(int(t))
    return np.array(seq)


def test_generate_greedy_and_cropping_match_naive_loop():
    model = small_gpt(seed=2)
    prompt = np.random.default_rng(2).integers(0, 13, (2, 15))  # longer than max_seq_len=12
    out = model.generate(prompt, 6, temperature=0)
    assert out.shape == (2, 21)
    np.testing.assert_array_equal(out, naive_greedy(model, prompt, 6))
    np.testing.assert_array_equal(model.generate(prompt, 6, temperature=0.7, top_k=1, seed=3), out)
    assert model.generate(prompt[0], 0).tolist() == prompt[0].tolist()


def test_generate_sampling_seeded_and_top_k():
    model = small_gpt(seed=3)
    prompt = np.array([[1, 2, 3]])
    a = model.generate(prompt, 8, temperature=1.5, seed=7)
    b = model.generate(prompt, 8, temperature=1.5, seed=7)
    np.testing.assert_array_equal(a, b)
    samples = np.stack(
        [model.generate(prompt, 1, temperature=1.0, top_k=2, seed=s)[0, -1] for s in range(40)]
    )
    with no_grad():
        top2 = np.argsort(model(prompt).data[0, -1])[-2:]
    assert set(samples.tolist()) <= set(top2.tolist()) and len(set(samples.tolist())) == 2
    assert model.training  # generate restores the mode it found


def test_sample_next_token_greedy_top_k_and_distribution():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 7))
    np.testing.assert_array_equal(sample_next_token(logits, temperature=0), logits.argmax(-1))
    np.testing.assert_array_equal(sample_next_token(Tensor(logits), 1.3, top_k=1, rng=rng), logits.argmax(-1))
    a = sample_next_token(logits, 0.8, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, sample_next_token(logits, 0.8, rng=np.random.default_rng(5)))
    assert a.shape == (4,) and a.dtype.kind == "i"
    # Empirical frequencies over many rows match softmax(logits / T) restricted to the top k.
    row = np.array([2.0, 0.5, -1.0, 1.0, 0.0])
    n, T, k = 40_000, 0.7, 3
    draws = sample_next_token(np.tile(row, (n, 1)), T, top_k=k, rng=np.random.default_rng(1))
    top = np.argsort(row)[-k:]
    p = np.zeros(5)
    p[top] = np.exp(row[top] / T) / np.exp(row[top] / T).sum()
    freq = np.bincount(draws, minlength=5) / n
    np.testing.assert_allclose(freq, p, atol=4 * np.sqrt(0.25 / n))  # 4 standard deviations
    assert set(np.unique(draws)) == set(top.tolist())


def test_sample_next_token_errors():
    logits = np.zeros((2, 3))
    for kwargs, name in [
        (dict(temperature=-1.0), "temperature"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(temperature=float("inf")), "temperature"),
        (dict(top_k=0), "top_k"),
        (dict(top_k=1.5), "top_k"),
    ]:
        with pytest.raises(ValueError, match=name):
            sample_next_token(logits, **kwargs)
    with pytest.raises(ValueError, match=r"logits.*\(3,\)"):
        sample_next_token(np.zeros(3))


class ProtocolCache:
    """A protocol-conforming KV cache written for the test (the real one is in tinytorch-optimization)."""

    instances = []

    def __init__(self, batch_size, max_seq_len, num_layers, num_heads, head_dim):
        shape = (num_layers, batch_size, num_heads, max_seq_len, head_dim)
        self.k, self.v = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        self.seq_len, self.new, self.updates = 0, 0, []
        ProtocolCache.instances.append(self)

    def update(self, layer_idx, key, value):
        t = key.shape[2]
        assert self.seq_len + t <= self.k.shape[3], "cache overflow"
        self.k[layer_idx, :, :, self.seq_len : self.seq_len + t] = key
        self.v[layer_idx, :, :, self.seq_len : self.seq_len + t] = value
        self.new = t
        self.updates.append(t)

    def get(self, layer_idx):
        end = self.seq_len + self.new
        return self.k[layer_idx, :, :, :end], self.v[layer_idx, :, :, :end]

    def advance(self, n):
        self.seq_len += n
        self.new = 0


def protocol_cache_factory(model):
    """What Module 17's enable_kv_cache does: a factory of caches sized for the model."""
    ProtocolCache.instances = []
    return lambda batch_size: ProtocolCache(
        batch_size, model.max_seq_len, model.num_layers, model.num_heads, model.head_dim
    )


def test_forward_with_cache_equals_full_forward():
    model = small_gpt(seed=4)
    tokens = np.random.default_rng(4).integers(0, 13, (2, 9))
    with no_grad():
        full = model(tokens).data
        cache = protocol_cache_factory(model)(2)
        parts = [model(tokens[:, :4], cache=cache).data]
        assert cache.seq_len == 4
        parts += [model(tokens[:, 4:6], cache=cache).data]  # a multi-token chunk at an offset
        for t in range(6, 9):
            parts.append(model(tokens[:, t : t + 1], cache=cache).data)
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="exceed max_seq_len=12"):
        model(tokens[:, :4], cache=cache)


@pytest.mark.parametrize("prompt_len", [1, 4, 11, 12, 14])
def test_cached_generation_gives_the_same_tokens(prompt_len):
    model = small_gpt(seed=5)
    prompt = np.random.default_rng(prompt_len).integers(0, 13, (2, prompt_len))
    plain = model.generate(prompt, 10, temperature=0, use_cache=False)
    model.kv_cache_factory = protocol_cache_factory(model)
    cached = model.generate(prompt, 10, temperature=0, use_cache=True)
    np.testing.assert_array_equal(cached, plain)
    if prompt_len < 12:
        cache = ProtocolCache.instances[-1]
        assert cache.updates[:2] == [prompt_len] * 2  # prefill: the whole prompt once per layer
        assert set(cache.updates[2:]) == {1}  # then exactly one new token per step
    # use_cache=None: use the cache when a factory is set, recompute when it is not
    count = len(ProtocolCache.instances)
    np.testing.assert_array_equal(model.generate(prompt, 3, temperature=0), plain[:, : prompt_len + 3])
    assert len(ProtocolCache.instances) == count + 1
    model.kv_cache_factory = None
    np.testing.assert_array_equal(model.generate(prompt, 3, temperature=0), plain[:, : prompt_len + 3])
    assert len(ProtocolCache.instances) == count + 1
    # sampled (not greedy) tokens are identical too: the same draws from the same logits
    model.kv_cache_factory = protocol_cache_factory(model)
    cached = model.generate(prompt, 8, temperature=1.0, top_k=5, seed=3, use_cache=True)
    np.testing.assert_array_equal(
        cached, model.generate(prompt, 8, temperature=1.0, top_k=5, seed=3, use_cache=False)
    )


def test_use_cache_without_a_factory_names_enable_kv_cache():
    model = small_gpt()
    with pytest.raises(ValueError, match=r"enable_kv_cache.*tinytorch-optimization"):
        model.generate(np.array([[1, 2]]), 2, use_cache=True)
    model.generate(np.array([[1, 2]]), 2, use_cache=None)  # default: no cache needed


def test_architecture_tier_imports_no_higher_tier():
    """Module order: importing every architecture module loads nothing of the optimization tier."""
    code = (
        "import sys, tinytorch.models.transformer, tinytorch.core.spatial, tinytorch.data.loader, "
        "tinytorch.text.tokenization; "
        "bad = sorted(m for m in sys.modules if m.split('.')[:2] in (['tinytorch', 'generation'], "
        "['tinytorch', 'optimization'], ['tinytorch', 'profiling'], ['tinytorch', 'benchmarking'], "
        "['tinytorch', 'applications'], ['tinytorch', 'milestones'])); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_generate_builds_no_graph():
    model = small_gpt()
    model.generate(np.array([[1, 2, 3]]), 3)
    assert all(p.grad is None for p in model.parameters())


def test_gpt_errors():
    model = small_gpt()
    with pytest.raises(ValueError, match=r"\(B, T\).*\(5,\)"):
        model(np.arange(5))
    with pytest.raises(ValueError, match=r"max_seq_len=12.*\(1, 13\)"):
        model(np.zeros((1, 13), dtype=np.int64))
    with pytest.raises(ValueError, match="out of range"):
        model(np.array([[13]]))
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(np.array([[1]]), -1)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(np.array([[1]]), 1, temperature=-1)
    with pytest.raises(ValueError, match="top_k"):
        model.generate(np.array([[1]]), 1, top_k=0)
    with pytest.raises(ValueError, match="prompt_tokens"):
        model.generate(np.array([[0.5]]), 1)
