"""Hidden tests of module 13 (transformer): LayerNorm in closed form, GPT shapes and causality."""

from __future__ import annotations

import numpy as np
from _oracles import assert_close
from tinytorch.core.tensor import Tensor
from tinytorch.models.transformer import GPT, LayerNorm


def test_layernorm_closed_form():
    rng = np.random.default_rng(131)
    x = rng.standard_normal((3, 4, 6)) * 5 + 2
    ln = LayerNorm(6)
    ln.weight.data[...] = np.linspace(0.5, 1.5, 6)
    ln.bias.data[...] = np.linspace(-1, 1, 6)
    expected = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + ln.eps)
    expected = expected * ln.weight.data + ln.bias.data
    assert_close(ln(Tensor(x.astype(np.float32))), expected, rtol=1e-4, atol=1e-4, what="LayerNorm")


def test_gpt_logits_shape_and_no_peeking():
    np.random.seed(132)
    gpt = GPT(vocab_size=11, embed_dim=16, num_layers=2, num_heads=4, max_seq_len=8)
    tokens = np.array([[1, 2, 3, 4, 5, 6]])
    logits = gpt(Tensor(tokens))
    assert logits.shape == (1, 6, 11)
    later = tokens.copy()
    later[0, 4:] = [9, 10]
    other = gpt(Tensor(later))
    assert_close(logits.data[:, :4], other.data[:, :4], rtol=1e-5, atol=1e-5, what="logits before position 4")
