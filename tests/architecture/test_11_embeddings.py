"""Module 11: Embedding, positional encodings, EmbeddingLayer."""

from __future__ import annotations

import numpy as np
import pytest
from _oracles import gradcheck
from tinytorch.core.tensor import Tensor
from tinytorch.text.embeddings import (
    Embedding,
    EmbeddingLayer,
    PositionalEncoding,
    sinusoidal_positional_encoding,
)


def test_embedding_lookup_and_shapes():
    emb = Embedding(10, 4)
    assert emb.weight.shape == (10, 4)
    ids = np.array([[1, 2, 3], [9, 0, 1]])
    out = emb(ids)
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out.data, emb.weight.data[ids])
    np.testing.assert_array_equal(emb(Tensor(ids)).data, out.data)
    assert emb([]).shape == (0, 4)


def test_embedding_backward_repeated_indices_accumulate():
    rng = np.random.default_rng(0)
    emb = Embedding(6, 3)
    ids = np.array([[1, 1, 4], [4, 1, 0]])
    g = rng.standard_normal((2, 3, 3)).astype(np.float32)
    emb(ids).backward(Tensor(g))
    expected = np.zeros((6, 3), dtype=np.float32)
    for b in range(2):  # naive loop oracle
        for t in range(3):
            expected[ids[b, t]] += g[b, t]
    np.testing.assert_allclose(emb.weight.grad.data, expected, rtol=1e-6)
    assert np.all(emb.weight.grad.data[[2, 3, 5]] == 0)


def test_embedding_gradcheck():
    emb = Embedding(5, 3).to(np.float64)
    ids = np.array([[0, 2, 2], [4, 2, 0]])
    assert gradcheck(lambda t: emb(ids), [emb.weight])
    layer = EmbeddingLayer(5, 3, max_seq_len=4).to(np.float64)
    weights = [layer.token_embedding.weight, layer.position_embedding.weight]
    assert gradcheck(lambda a, b: layer(ids, offset=1), weights)


def test_embedding_matches_torch(torch):
    emb = Embedding(11, 5)
    ref = torch.nn.Embedding(11, 5)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(emb.weight.data))
    ids = np.random.default_rng(2).integers(0, 11, (4, 7))
    g = np.random.default_rng(3).standard_normal((4, 7, 5)).astype(np.float32)
    emb(ids).backward(Tensor(g))
    ref(torch.from_numpy(ids)).backward(torch.from_numpy(g))
    np.testing.assert_allclose(emb.weight.grad.data, ref.weight.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_embedding_errors():
    emb = Embedding(5, 2)
    with pytest.raises(ValueError, match=r"token id 5 is out of range for num_embeddings=5"):
        emb(np.array([[0, 5]]))
    with pytest.raises(ValueError, match=r"token id -1"):
        emb(np.array([-1]))
    with pytest.raises(ValueError, match="integers"):
        emb(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="vocab_size"):
        Embedding(0, 3)
    assert emb.weight.grad is None  # nothing half-done


def test_sinusoidal_closed_form():
    P, D = 12, 7  # odd width: last sin column has no cos partner
    pe = sinusoidal_positional_encoding(P, D)
    assert pe.shape == (P, D) and pe.dtype == np.float32 and not pe.requires_grad
    for p in range(P):
        for i in range(D):
            angle = p / 10000 ** ((i - i % 2) / D)
            expected = np.sin(angle) if i % 2 == 0 else np.cos(angle)
            assert abs(pe.data[p, i] - expected) < 1e-5
    with pytest.raises(ValueError):
        sinusoidal_positional_encoding(0, 4)


def test_positional_encoding_adds_rows_and_offset():
    pos = PositionalEncoding(8, 3)
    x = Tensor(np.ones((2, 5, 3), dtype=np.float32), requires_grad=True)
    y = pos(x)
    np.testing.assert_allclose(y.data, np.broadcast_to(1 + pos.weight.data[None, :5], (2, 5, 3)))
    np.testing.assert_allclose(
        pos(x, offset=3).data, np.broadcast_to(1 + pos.weight.data[None, 3:8], (2, 5, 3))
    )
    y.sum().backward()
    expected = np.zeros((8, 3))
    expected[:5] = 2  # summed over the batch
    np.testing.assert_allclose(pos.weight.grad.data, expected)
    with pytest.raises(ValueError, match="max_seq_len=8"):
        pos(x, offset=4)


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_embedding_layer_token_plus_position(positional):
    rng = np.random.default_rng(4)
    layer = EmbeddingLayer(9, 4, max_seq_len=6, positional=positional)
    ids = rng.integers(0, 9, (3, 4))
    table = (
        layer.position_embedding.weight.data
        if positional == "learned"
        else sinusoidal_positional_encoding(6, 4).data
    )
    out = layer(ids, offset=1)
    np.testing.assert_allclose(out.data, layer.token_embedding.weight.data[ids] + table[1:5], rtol=1e-6)
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(Tensor(g))
    d_tok = np.zeros((9, 4), dtype=np.float32)
    d_pos = np.zeros((6, 4), dtype=np.float32)
    for b in range(3):
        for t in range(4):
            d_tok[ids[b, t]] += g[b, t]
            d_pos[1 + t] += g[b, t]
    np.testing.assert_allclose(layer.token_embedding.weight.grad.data, d_tok, rtol=1e-5, atol=1e-6)
    names = [n for n, _ in layer.named_parameters()]
    if positional == "learned":
        np.testing.assert_allclose(layer.position_embedding.weight.grad.data, d_pos, rtol=1e-5, atol=1e-6)
        assert names == ["token_embedding.weight", "position_embedding.weight"]
    else:
        assert names == ["token_embedding.weight"]
    with pytest.raises(ValueError, match=r"exceed max_seq_len=6.*\(3, 4\)"):
        layer(ids, offset=3)
    with pytest.raises(ValueError, match="out of range"):
        layer(np.array([[9]]))
