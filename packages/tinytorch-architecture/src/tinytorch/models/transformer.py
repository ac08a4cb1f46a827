"""Module 13: the transformer, LayerNorm, MLP, pre-norm blocks and a GPT.

A GPT is a stack of identical blocks over token + position embeddings::

    x = embed(tokens) + pos
    for each block:   x = x + attn(ln1(x), causal mask)     # tokens exchange information
                      x = x + mlp(ln2(x))                   # each token is transformed alone
    logits = head(ln_f(x))

The *pre-norm* residual form (normalize the input of each branch, add the
branch to an untouched residual stream) keeps gradients well scaled in deep
stacks. The *causal mask* lets position ``t`` attend only to positions
``<= t``, so the logits at ``t`` predict token ``t + 1`` from the past only and
one forward pass trains on every position of a sequence at once.

Generation feeds the model its own predictions, one sampled token at a time
(:func:`sample_next_token`). With a KV cache (Module 17 sets
``model.kv_cache_factory``) each step pushes only the newest token through the
network: the keys and values of earlier tokens are read from the cache
instead of being recomputed, turning O(T^2) work per step into O(T).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from tinytorch.core.activations import gelu, relu, softmax
from tinytorch.core.attention import MultiHeadAttention
from tinytorch.core.autograd import Function, no_grad
from tinytorch.core.layers import Dropout, Linear, Module, Parameter, positive_int
from tinytorch.core.tensor import Tensor
from tinytorch.text.embeddings import EmbeddingLayer

__all__ = [
    "LayerNorm",
    "LayerNormFunction",
    "MLP",
    "TransformerBlock",
    "GPT",
    "create_causal_mask",
    "sample_next_token",
]


class LayerNormFunction(Function):
    """Normalize over the last ``weight.ndim`` axes, then scale and shift; one Function.

    ``xhat = (x - mean) / sqrt(var + eps)`` (biased variance), ``y = weight * xhat + bias``.
    Backward, with means over the normalized axes and ``dxhat = grad * weight``::

        dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sqrt(var + eps)

    (the same formula as batch normalization, over different axes); ``dweight``
    and ``dbias`` sum ``grad * xhat`` and ``grad`` over the leading axes.
    Cost: a few elementwise passes and two reductions over ``x``.
    """

    name = "layer_norm"

    @staticmethod
    def forward(ctx, x, weight, bias, eps=1e-5):
        ctx.axes = tuple(range(x.ndim - weight.ndim, x.ndim))  # the normalized (trailing) axes
        n = weight.size  # values per normalized group
        ### BEGIN SOLUTION
        centered = x - x.sum(axis=ctx.axes, keepdims=True) / n
        var = (centered * centered).sum(axis=ctx.axes, keepdims=True) / n  # biased, as PyTorch
        inv_std = 1.0 / np.sqrt(var + eps)
        xhat = centered * inv_std
        out = xhat * weight + bias
        ### END SOLUTION
        ctx.save_for_backward(xhat, inv_std, weight)
        return out

    @staticmethod
    def backward(ctx, grad):
        xhat, inv_std, weight = ctx.saved_tensors
        axes = ctx.axes
        ### BEGIN SOLUTION
        lead = tuple(range(grad.ndim - weight.ndim))  # the axes weight and bias were broadcast over
        dweight = (grad * xhat).sum(axis=lead)
        dbias = grad.sum(axis=lead)
        dxhat = grad * weight
        # mean and var moved with x: subtract the gradient's parts along them
        mean_dxhat = dxhat.mean(axis=axes, keepdims=True)
        mean_dxhat_xhat = (dxhat * xhat).mean(axis=axes, keepdims=True)
        dx = (dxhat - mean_dxhat - xhat * mean_dxhat_xhat) * inv_std
        return dx, dweight, dbias
        ### END SOLUTION


class LayerNorm(Module):
    """Layer normalization over the trailing ``normalized_shape`` dimensions (as ``torch.nn.LayerNorm``).

    ``y = weight * (x - mean) / sqrt(var + eps) + bias`` with mean and (biased)
    variance over the normalized dimensions of each sample.

    Args:
        normalized_shape: int or tuple, the trailing shape to normalize.
        eps: added to the variance.

    Attributes:
        weight: ones, bias: zeros, both of ``normalized_shape``.

    Shape: ``(*, *normalized_shape) -> same``. Cost: see :class:`LayerNormFunction`.
    """

    def __init__(self, normalized_shape, eps: float = 1e-5):
        super().__init__()
        shape = (
            (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
        )
        if not shape or any(
            isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in shape
        ):
            raise ValueError(
                f"LayerNorm: argument 'normalized_shape' must be positive ints, got {normalized_shape!r}"
            )
        if not eps > 0:  # also refuses NaN
            raise ValueError(f"LayerNorm: argument 'eps' must be positive, got {eps}")
        self.normalized_shape = tuple(int(s) for s in shape)
        self.eps = float(eps)
        self.weight = Parameter(np.ones(self.normalized_shape, dtype=np.float32))
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype=np.float32))

    def forward(self, x) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        shape, k = x.shape, len(self.normalized_shape)
        if len(shape) < k or shape[len(shape) - k :] != self.normalized_shape:
            raise ValueError(
                f"LayerNorm: input of shape {shape} does not end in normalized_shape {self.normalized_shape}"
            )
        ### BEGIN SOLUTION
        return LayerNormFunction.apply(x, self.weight, self.bias, eps=self.eps)
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


ACTIVATIONS = ("gelu", "relu")


def _check_activation(op: str, activation) -> str:
    if activation not in ACTIVATIONS:
        raise ValueError(f"{op}: argument 'activation' must be one of {ACTIVATIONS}, got {activation!r}")
    return activation


class MLP(Module):
    """Position-wise feed-forward network ``fc2(act(fc1(x)))``.

    Args:
        embed_dim: input and output width ``E``.
        hidden_dim: inner width (default ``4 E``).
        dropout: dropout on the output in training.
        activation: ``"gelu"`` (default; the tanh approximation, as GPT-2) or
            ``"relu"`` (as the original transformer of Vaswani et al., 2017, and
            PyTorch's ``nn.TransformerEncoderLayer`` default; about half the
            elementwise work of the tanh GELU).

    Shape: ``(*, E) -> (*, E)``.
    Cost: ``4 M E hidden`` flops for ``M`` positions.
    """

    def __init__(
        self, embed_dim: int, hidden_dim: int | None = None, dropout: float = 0.0, activation: str = "gelu"
    ):
        super().__init__()
        hidden_dim = 4 * embed_dim if hidden_dim is None else hidden_dim
        self.activation = _check_activation("MLP", activation)
        self.fc1 = Linear(embed_dim, hidden_dim)
        self.fc2 = Linear(hidden_dim, embed_dim)
        self.dropout = Dropout(dropout)

    def forward(self, x) -> Tensor:
        ### BEGIN SOLUTION
        h = self.fc1(x)  # (*, hidden)
        h = relu(h) if self.activation == "relu" else gelu(h, approximate="tanh")
        return self.dropout(self.fc2(h))
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"


class TransformerBlock(Module):
    """Pre-norm transformer block: ``x = x + attn(ln1(x), mask)``; ``x = x + mlp(ln2(x))``.

    Args:
        embed_dim: width ``E``; num_heads: attention heads.
        mlp_ratio: MLP hidden width is ``mlp_ratio * E``.
        dropout: on attention weights and on both residual branches.
        activation: the MLP's, ``"gelu"`` (default) or ``"relu"``.

    Shape: ``(B, T, E) -> (B, T, E)``; ``mask``, ``cache`` and ``layer_idx`` go to the attention.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        mlp_ratio: int = 4,
        dropout: float = 0.0,
        activation: str = "gelu",
    ):
        super().__init__()
        self.ln1 = LayerNorm(embed_dim)
        self.attn = MultiHeadAttention(embed_dim, num_heads, dropout=dropout)
        self.ln2 = LayerNorm(embed_dim)
        self.mlp = MLP(embed_dim, int(mlp_ratio * embed_dim), dropout=dropout, activation=activation)
        self.dropout = Dropout(dropout)

    def forward(self, x, mask=None, *, cache=None, layer_idx: int = 0) -> Tensor:
        ### BEGIN SOLUTION
        x = x + self.dropout(self.attn(self.ln1(x), mask=mask, cache=cache, layer_idx=layer_idx))
        return x + self.mlp(self.ln2(x))
        ### END SOLUTION


def create_causal_mask(seq_len: int, offset: int = 0) -> Tensor:
    """Causal attention mask: True where query ``t`` may attend to key ``j``, i.e. ``j <= offset + t``.

    Args:
        seq_len: number of queries ``T``.
        offset: number of earlier positions (already in a KV cache) before the queries.

    Returns:
        bool Tensor ``(T, offset + T)`` (True = may attend, as PyTorch's
        ``scaled_dot_product_attention``); for ``offset=0`` True on and below the diagonal.
    """
    for name, value, low in (("seq_len", seq_len, 1), ("offset", offset, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"create_causal_mask: argument '{name}' must be an int >= {low}, got {value!r}")
    ### BEGIN SOLUTION
    return Tensor(np.tri(seq_len, offset + seq_len, k=offset, dtype=bool))
    ### END SOLUTION


def _check_sampling(op: str, temperature, top_k) -> None:
    """ValueError unless ``temperature`` is a finite number >= 0 and ``top_k`` is None or an int >= 1."""
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not 0 <= temperature < math.inf
    ):
        raise ValueError(f"{op}: argument 'temperature' must be a finite number >= 0, got {temperature!r}")
    if top_k is not None and (
        isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1
    ):
        raise ValueError(f"{op}: argument 'top_k' must be None or an int >= 1, got {top_k!r}")


def sample_next_token(logits, temperature: float = 1.0, top_k: int | None = None, rng=None) -> np.ndarray:
    """Pick one token per row of ``logits (B, V)``: the one sampling rule of generation.

    ``temperature == 0``: the argmax (greedy decoding). Otherwise a draw from
    ``softmax(logits / temperature)`` restricted to the ``top_k`` largest logits
    of the row (all of them when ``top_k`` is None): lower temperatures sharpen
    the distribution, higher ones flatten it.

    Args:
        logits: ``(B, V)`` array or Tensor (the last position's logits of every sequence).
        temperature: finite number >= 0.
        top_k: None or an int >= 1.
        rng: ``np.random.Generator`` to draw from (default: a fresh, unseeded one).

    Returns:
        int64 array ``(B,)`` of token ids.

    Cost: O(B V): a partition for ``top_k``, one softmax, one cumulative sum; one uniform draw per row.
    """
    z = logits.data if isinstance(logits, Tensor) else np.asarray(logits)
    if z.ndim != 2 or z.dtype.kind != "f":
        raise ValueError(
            f"sample_next_token: argument 'logits' must be float (B, V), got {z.dtype} {z.shape}"
        )
    _check_sampling("sample_next_token", temperature, top_k)
    rng = np.random.default_rng() if rng is None else rng
    ### BEGIN SOLUTION
    if temperature == 0:
        return z.argmax(axis=-1)
    z = z.astype(np.float64) / temperature
    if top_k is not None and top_k < z.shape[-1]:
        kth = np.partition(z, -top_k, axis=-1)[:, [-top_k]]  # (B, 1): the k-th largest logit of each row
        z = np.where(z < kth, -np.inf, z)  # only the top_k may be drawn
    probs = softmax(Tensor(z, dtype=np.float64), dim=-1).data  # (B, V)
    # Inverse CDF: the first token whose cumulative probability exceeds a uniform draw.
    cdf = np.cumsum(probs, axis=-1)
    u = rng.random((z.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=-1), z.shape[-1] - 1)
    ### END SOLUTION


class GPT(Module):
    """Decoder-only transformer language model.

    Args:
        vocab_size: number of token ids ``V``.
        embed_dim: width ``E``.
        num_layers: transformer blocks.
        num_heads: attention heads per block.
        max_seq_len: longest context (learned positions ``0..max_seq_len-1``).
        dropout: dropout probability in training.
        activation: the blocks' MLP activation, ``"gelu"`` (default, as GPT-2) or ``"relu"``.

    Attributes:
        embedding (EmbeddingLayer: ``token_embedding``, ``position_embedding``),
        blocks (list of TransformerBlock), ln_f (LayerNorm), head (Linear(E, V)),
        kv_cache_factory: None (default) or a callable ``factory(batch_size) -> cache``
            implementing the KV-cache protocol; Module 17's ``enable_kv_cache(model)``
            sets it and ``disable_kv_cache(model)`` clears it. ``generate`` uses it.

    Shape: ``forward``: tokens ``(B, T)`` -> logits ``(B, T, V)``.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        num_layers: int,
        num_heads: int,
        max_seq_len: int,
        dropout: float = 0.0,
        activation: str = "gelu",
    ):
        super().__init__()
        self.vocab_size = positive_int(vocab_size, "vocab_size", "GPT")
        self.embed_dim = positive_int(embed_dim, "embed_dim", "GPT")
        self.num_layers = positive_int(num_layers, "num_layers", "GPT")
        self.num_heads = positive_int(num_heads, "num_heads", "GPT")
        self.max_seq_len = positive_int(max_seq_len, "max_seq_len", "GPT")
        self.activation = _check_activation("GPT", activation)
        self.embedding = EmbeddingLayer(vocab_size, embed_dim, max_seq_len)
        # GPT-2 initialization of the token table: N(0, 0.02^2) keeps early logits small.
        self.embedding.token_embedding.weight.data[...] = 0.02 * np.random.standard_normal(
            (self.vocab_size, self.embed_dim)
        )
        self.blocks = [
            TransformerBlock(embed_dim, num_heads, 4, dropout, activation) for _ in range(num_layers)
        ]
        self.ln_f = LayerNorm(embed_dim)
        self.head = Linear(embed_dim, vocab_size)
        self.kv_cache_factory = None

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    def forward(self, tokens, cache=None) -> Tensor:
        """Logits ``(B, T, V)`` for tokens ``(B, T)``.

        With ``cache`` (KV-cache protocol), ``tokens`` are the *new* tokens at
        positions ``cache.seq_len ..``; their keys/values are added to the cache
        and ``cache.advance(T)`` commits them.
        """
        ids = tokens.data if isinstance(tokens, Tensor) else np.asarray(tokens)
        if ids.ndim != 2 or ids.shape[1] < 1:
            raise ValueError(f"GPT: tokens must have shape (B, T) with T >= 1, got shape {ids.shape}")
        offset = 0 if cache is None else int(cache.seq_len)
        T = ids.shape[1]
        if offset + T > self.max_seq_len:
            raise ValueError(
                f"GPT: {offset} cached + {T} new positions exceed max_seq_len={self.max_seq_len} "
                f"(tokens of shape {ids.shape})"
            )
        ### BEGIN SOLUTION
        x = self.embedding(ids, offset=offset)  # (B, T, E)
        # (T, offset + T): query t sees keys 0..offset + t. One new token may see every key: no mask.
        mask = create_causal_mask(T, offset) if T > 1 else None
        for i, block in enumerate(self.blocks):
            x = block(x, mask=mask, cache=cache, layer_idx=i)
        if cache is not None:
            cache.advance(T)  # every layer has written: commit the T new positions
        return self.head(self.ln_f(x))  # (B, T, V)
        ### END SOLUTION

    def generate(
        self,
        prompt_tokens,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        use_cache: bool | None = None,
    ) -> np.ndarray:
        """Extend ``prompt_tokens`` by ``max_new_tokens`` tokens drawn with :func:`sample_next_token`.

        Args:
            prompt_tokens: ``(B, T)`` or ``(T,)`` token ids (array, list or Tensor).
            max_new_tokens: tokens to append.
            temperature: 0 = greedy (argmax); larger = more random.
            top_k: sample only among the ``top_k`` most likely tokens.
            seed: seed of the sampling generator (reproducible sampling).
            use_cache: True = KV cache from ``self.kv_cache_factory`` (set by Module 17's
                ``enable_kv_cache``), False = recompute the whole context each step,
                None = use the cache if a factory is set.

        Returns:
            int64 array ``(B, T + max_new_tokens)`` (``(T + max_new_tokens,)`` for a 1-D prompt):
            the prompt followed by the generated tokens. The model only sees the
            last ``max_seq_len`` tokens (longer contexts are cropped to that window).

        Runs in eval mode (dropout off) without building an autograd graph.
        With the cache each step processes one token; once the window is full,
        steps fall back to recomputing the cropped window, so cached and
        uncached generation produce the same tokens.
        Cost per new token: one forward of the window without a cache, of one token with it.
        """
        ids = prompt_tokens.data if isinstance(prompt_tokens, Tensor) else np.asarray(prompt_tokens)
        squeeze = ids.ndim == 1
        ids = ids[None] if squeeze else ids
        if ids.ndim != 2 or ids.shape[1] < 1:
            raise ValueError(
                f"GPT.generate: prompt_tokens must have shape (B, T) or (T,), got {np.shape(prompt_tokens)}"
            )
        if ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() >= self.vocab_size:
            raise ValueError(f"GPT.generate: prompt_tokens must be integer ids in [0, {self.vocab_size})")
        if (
            isinstance(max_new_tokens, bool)
            or not isinstance(max_new_tokens, numbers.Integral)
            or max_new_tokens < 0
        ):
            raise ValueError(
                f"GPT.generate: argument 'max_new_tokens' must be an int >= 0, got {max_new_tokens!r}"
            )
        _check_sampling("GPT.generate", temperature, top_k)
        if use_cache is None:
            use_cache = self.kv_cache_factory is not None
        if use_cache and self.kv_cache_factory is None:
            raise ValueError(
                "GPT.generate: use_cache=True needs a KV cache: call enable_kv_cache(model) "
                "(Module 17, in tinytorch-optimization: pip install tinytorch-optimization) first"
            )
        ### BEGIN SOLUTION
        B, T = ids.shape
        P = self.max_seq_len
        out = np.empty((B, T + max_new_tokens), dtype=np.int64)
        out[:, :T] = ids
        rng = np.random.default_rng(seed)
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                cache = self.kv_cache_factory(B) if use_cache else None
                for step in range(max_new_tokens):
                    n = T + step  # tokens so far
                    if cache is not None and n <= P:
                        # Positions 0..n-1 fit the window: feed only what the cache lacks
                        # (the whole prompt at the first step, then the newest token).
                        logits = self(out[:, cache.seq_len : n], cache=cache)
                    else:
                        # Recompute the last window (no cache, or the window has slid).
                        logits = self(out[:, max(0, n - P) : n])
                    out[:, n] = sample_next_token(logits.data[:, -1], temperature, top_k, rng)
        finally:
            self.train(was_training)
        return out[0] if squeeze else out
        ### END SOLUTION
