"""Shapes and seeded initial weights of every benchmark model, as ``name -> ndarray`` dicts.

The same dict is loaded into the NumPy floor, tinytorch and PyTorch, so the
three implementations start from identical weights: the harness compares
their first losses and gradients, and the tests compare them exactly.

Layouts are PyTorch's (and tinytorch's): a Linear weight is ``(out, in)`` with
``y = x @ W.T + b``; a Conv2d weight is ``(out, in, kh, kw)``; attention's
q|k|v projection is one ``(3d, d)`` weight whose row blocks are q, k, v
(``nn.MultiheadAttention.in_proj_weight``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _uniform(rng, shape, fan_in, dtype):
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def mlp_params(sizes=(784, 256, 128, 10), seed=0, dtype=np.float32) -> dict:
    """``fc{i}.weight`` (out, in) and ``fc{i}.bias`` (out,) for consecutive ``sizes``."""
    rng = np.random.default_rng(seed)
    p = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        p[f"fc{i}.weight"] = _uniform(rng, (fan_out, fan_in), fan_in, dtype)
        p[f"fc{i}.bias"] = _uniform(rng, (fan_out,), fan_in, dtype)
    return p


@dataclass(frozen=True)
class ConvNetSpec:
    """[Conv(k, pad) -> ReLU -> MaxPool2] per entry of ``convs``, then an MLP head."""

    in_shape: tuple  # (C, H, W)
    convs: tuple  # ((out_channels, kernel, padding), ...)
    hidden: tuple  # hidden widths of the MLP head
    classes: int = 10

    @property
    def flat(self) -> int:
        c, h, w = self.in_shape
        for out, k, pad in self.convs:
            c, h, w = out, (h + 2 * pad - k + 1) // 2, (w + 2 * pad - k + 1) // 2
        return c * h * w

    @property
    def paddings(self) -> list:
        return [pad for _, _, pad in self.convs]


LENET = ConvNetSpec(in_shape=(1, 28, 28), convs=((6, 5, 0), (16, 5, 0)), hidden=(120, 84))
CIFAR_CNN = ConvNetSpec(in_shape=(3, 32, 32), convs=((32, 3, 1), (64, 3, 1)), hidden=(128,))


def convnet_params(spec: ConvNetSpec, seed=0, dtype=np.float32) -> dict:
    """``conv{i}.weight`` (O, C, k, k), ``conv{i}.bias``; ``fc{i}.weight`` (out, in), ``fc{i}.bias``."""
    rng = np.random.default_rng(seed)
    p, c = {}, spec.in_shape[0]
    for i, (out, k, _) in enumerate(spec.convs):
        p[f"conv{i}.weight"] = _uniform(rng, (out, c, k, k), c * k * k, dtype)
        p[f"conv{i}.bias"] = _uniform(rng, (out,), c * k * k, dtype)
        c = out
    sizes = (spec.flat, *spec.hidden, spec.classes)
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        p[f"fc{i}.weight"] = _uniform(rng, (fan_out, fan_in), fan_in, dtype)
        p[f"fc{i}.bias"] = _uniform(rng, (fan_out,), fan_in, dtype)
    return p


@dataclass(frozen=True)
class GPTSpec:
    vocab_size: int = 65
    embed_dim: int = 128
    num_layers: int = 2
    num_heads: int = 4
    max_seq_len: int = 64


def gpt_params(spec: GPTSpec, seed=0, dtype=np.float32) -> dict:
    """Parameter dict of a GPT in tinytorch's naming (see :class:`~ttbench.floors.GPTFloor`)."""
    rng = np.random.default_rng(seed)
    d, v = spec.embed_dim, spec.vocab_size
    p = {
        "tok_emb": (rng.standard_normal((v, d)) * 0.02).astype(dtype),
        "pos_emb": (rng.standard_normal((spec.max_seq_len, d)) * 0.02).astype(dtype),
    }
    for i in range(spec.num_layers):
        pre = f"h{i}."
        for ln in ("ln1", "ln2"):
            # Not exactly 1/0 so that the gradient tests exercise the affine terms.
            p[pre + ln + ".weight"] = (1.0 + 0.1 * rng.standard_normal(d)).astype(dtype)
            p[pre + ln + ".bias"] = (0.1 * rng.standard_normal(d)).astype(dtype)
        p[pre + "attn.in_proj.weight"] = _uniform(rng, (3 * d, d), d, dtype)  # rows: q | k | v
        p[pre + "attn.in_proj.bias"] = _uniform(rng, (3 * d,), d, dtype)
        p[pre + "attn.out_proj.weight"] = _uniform(rng, (d, d), d, dtype)
        p[pre + "attn.out_proj.bias"] = _uniform(rng, (d,), d, dtype)
        p[pre + "fc1.weight"] = _uniform(rng, (4 * d, d), d, dtype)
        p[pre + "fc1.bias"] = _uniform(rng, (4 * d,), d, dtype)
        p[pre + "fc2.weight"] = _uniform(rng, (d, 4 * d), 4 * d, dtype)
        p[pre + "fc2.bias"] = _uniform(rng, (d,), 4 * d, dtype)
    p["ln_f.weight"] = (1.0 + 0.1 * rng.standard_normal(d)).astype(dtype)
    p["ln_f.bias"] = (0.1 * rng.standard_normal(d)).astype(dtype)
    p["head.weight"] = _uniform(rng, (v, d), d, dtype)
    p["head.bias"] = _uniform(rng, (v,), d, dtype)
    return p


def copy_params(p: dict, dtype=None) -> dict:
    return {k: np.array(v, dtype=dtype or v.dtype, copy=True) for k, v in p.items()}
