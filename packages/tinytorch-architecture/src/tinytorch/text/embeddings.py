"""Module 11: embeddings, from token ids to vectors, plus where each token is.

An :class:`Embedding` is a learnable table ``weight (vocab_size, embed_dim)``;
looking up ids is indexing its rows, ``weight[ids]``. No new operation is
needed: Module 01's indexing already gives the lookup, and its derivative is a
*scatter-add* (``np.add.at``): row ``v`` of ``d weight`` is the sum of the
output gradients of every position holding token ``v`` (a token used twice
learns from both uses), and rows of unused tokens get zero.

Attention has no notion of order, so position is added to the token vectors:
either a learned table (:class:`PositionalEncoding`) or the fixed sinusoids of
"Attention Is All You Need" (:func:`sinusoidal_positional_encoding`).
:class:`EmbeddingLayer` adds token and position embeddings: the input stage of a GPT.
"""

from __future__ import annotations

import math

import numpy as np
from tinytorch.core.layers import Module, Parameter
from tinytorch.core.tensor import Tensor

__all__ = ["Embedding", "PositionalEncoding", "EmbeddingLayer", "sinusoidal_positional_encoding"]


def checked_token_ids(tokens, num_embeddings: int, op: str) -> np.ndarray:
    """Token ids as an integer ndarray, every id in ``[0, num_embeddings)``, else ValueError."""
    ids = tokens.data if isinstance(tokens, Tensor) else np.asarray(tokens)
    if ids.dtype.kind not in "iu":
        if ids.size and ids.dtype.kind == "f" and np.all(ids == np.round(ids)):
            ids = ids.astype(np.int64)  # float tensors of whole numbers (e.g. from a float dataset)
        elif ids.size:
            raise ValueError(f"{op}: token ids must be integers, got dtype {ids.dtype}")
        else:
            ids = ids.astype(np.int64)
    if ids.size:
        lo, hi = ids.min(), ids.max()
        if lo < 0 or hi >= num_embeddings:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{op}: token id {int(bad)} is out of range for num_embeddings={num_embeddings} "
                f"(ids of shape {ids.shape})"
            )
    return ids


class Embedding(Module):
    """Lookup table of ``num_embeddings`` vectors of size ``embedding_dim``.

    ``Embedding(V, D)(ids)[..., :] = weight[ids[...]]``.

    Args:
        vocab_size: number of rows ``V`` (valid ids are ``0..V-1``).
        embed_dim: vector size ``D``.

    Attributes:
        weight: ``(V, D)`` Parameter, initialized ``N(0, 1)`` as PyTorch.

    Shape: ids ``(*)`` (integers) -> ``(*, D)``. Out-of-range ids raise ValueError.
    Cost: a copy of ``ids.size * D`` floats; backward one scatter-add of the same size.
    """

    def __init__(self, vocab_size: int, embed_dim: int):
        super().__init__()
        for name, v in (("vocab_size", vocab_size), ("embed_dim", embed_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Embedding: argument '{name}' must be a positive int, got {v!r}")
        self.vocab_size, self.embed_dim = int(vocab_size), int(embed_dim)
        self.weight = Parameter(
            np.random.standard_normal((self.vocab_size, self.embed_dim)).astype(np.float32)
        )

    def forward(self, tokens) -> Tensor:
        ids = checked_token_ids(tokens, self.vocab_size, "Embedding")
        ### BEGIN SOLUTION
        return self.weight[ids]  # (V, D) rows picked by ids (*) -> (*, D); backward scatter-adds
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"{self.vocab_size}, {self.embed_dim}"


def sinusoidal_positional_encoding(max_seq_len: int, embed_dim: int) -> Tensor:
    """Fixed position codes of Vaswani et al. (2017).

    ``PE[p, 2i] = sin(p / 10000^(2i/D))``, ``PE[p, 2i+1] = cos(p / 10000^(2i/D))``.
    Each pair of dimensions is a rotation at its own frequency, so ``PE[p + k]``
    is a linear function of ``PE[p]``: relative offsets are easy to read out.

    Returns:
        Tensor ``(max_seq_len, embed_dim)`` (float32, no gradient).
    """
    if max_seq_len < 1 or embed_dim < 1:
        raise ValueError(
            f"sinusoidal_positional_encoding: sizes must be positive, got {max_seq_len}, {embed_dim}"
        )
    ### BEGIN SOLUTION
    pos = np.arange(max_seq_len, dtype=np.float64)[:, None]  # (P, 1)
    freq = np.exp(
        -math.log(10000.0) * np.arange(0, embed_dim, 2, dtype=np.float64) / embed_dim
    )  # (ceil(D/2),)
    angles = pos * freq  # (P, ceil(D/2))
    pe = np.zeros((max_seq_len, embed_dim), dtype=np.float64)
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles[:, : embed_dim // 2])
    return Tensor(pe.astype(np.float32))
    ### END SOLUTION


class PositionalEncoding(Module):
    """Learned position embeddings added to a sequence of vectors.

    ``out[b, t] = x[b, t] + weight[offset + t]``.

    Args:
        max_seq_len: number of positions ``P``.
        embed_dim: vector size ``D``.

    Attributes:
        weight: ``(P, D)`` Parameter, initialized ``N(0, 0.02^2)`` (GPT-2).

    Shape: ``(B, T, D) -> (B, T, D)`` with ``offset + T <= P``.
    """

    def __init__(self, max_seq_len: int, embed_dim: int):
        super().__init__()
        if max_seq_len < 1 or embed_dim < 1:
            raise ValueError(f"PositionalEncoding: sizes must be positive, got {max_seq_len}, {embed_dim}")
        self.max_seq_len, self.embed_dim = int(max_seq_len), int(embed_dim)
        self.weight = Parameter(
            (0.02 * np.random.standard_normal((self.max_seq_len, self.embed_dim))).astype(np.float32)
        )

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim < 2 or x.shape[-1] != self.embed_dim:
            raise ValueError(
                f"PositionalEncoding: input of shape {x.shape} does not end in embed_dim={self.embed_dim}"
            )
        T = x.shape[-2]
        if offset < 0 or offset + T > self.max_seq_len:
            raise ValueError(
                f"PositionalEncoding: positions {offset}..{offset + T - 1} "
                f"exceed max_seq_len={self.max_seq_len}"
            )
        ### BEGIN SOLUTION
        return x + self.weight[offset : offset + T]
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"{self.max_seq_len}, {self.embed_dim}"


class EmbeddingLayer(Module):
    """Token embedding plus position embedding: the input stage of a transformer.

    ``out[b, t] = token_embedding.weight[ids[b, t]] + position(offset + t)``.

    Args:
        vocab_size, embed_dim, max_seq_len: table sizes.
        positional: ``"learned"`` (a :class:`PositionalEncoding`, default) or
            ``"sinusoidal"`` (fixed codes, nothing learned).

    Shape: ids ``(B, T)`` -> ``(B, T, D)``; ``offset`` shifts positions (KV-cached decoding).
    """

    def __init__(self, vocab_size: int, embed_dim: int, max_seq_len: int, positional: str = "learned"):
        super().__init__()
        if positional not in ("learned", "sinusoidal"):
            raise ValueError(
                f"EmbeddingLayer: argument 'positional' must be 'learned' or 'sinusoidal', got {positional!r}"
            )
        self.token_embedding = Embedding(vocab_size, embed_dim)
        self.max_seq_len = int(max_seq_len)
        self.positional = positional
        if positional == "learned":
            self.position_embedding = PositionalEncoding(max_seq_len, embed_dim)
        else:
            self.position_table = sinusoidal_positional_encoding(max_seq_len, embed_dim)

    def forward(self, tokens, offset: int = 0) -> Tensor:
        ids = checked_token_ids(tokens, self.token_embedding.vocab_size, "EmbeddingLayer")
        if ids.ndim < 1:
            raise ValueError(f"EmbeddingLayer: token ids need a sequence axis, got shape {ids.shape}")
        T = ids.shape[-1]
        if offset < 0 or offset + T > self.max_seq_len:
            raise ValueError(
                f"EmbeddingLayer: positions {offset}..{offset + T - 1} exceed max_seq_len={self.max_seq_len} "
                f"(tokens of shape {ids.shape})"
            )
        ### BEGIN SOLUTION
        x = self.token_embedding(ids)  # (B, T, D)
        if self.positional == "learned":
            return self.position_embedding(x, offset=offset)  # + learned rows offset..offset+T-1
        return x + self.position_table[offset : offset + T]  # + fixed rows (T, D), broadcast over B
        ### END SOLUTION
