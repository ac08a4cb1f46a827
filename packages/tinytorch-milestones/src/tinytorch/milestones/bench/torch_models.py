"""The benchmark models in PyTorch (CPU), built from the same parameter dicts.

Written the way a PyTorch user would write them (``nn`` layers, fused
``scaled_dot_product_attention``, ``torch.optim``), so the column measures
what a C++ framework gets on this machine. Imported only when torch is.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).clone()


def _linear(w: np.ndarray, b: np.ndarray) -> nn.Linear:
    """nn.Linear from a tinytorch-layout weight (in, out): PyTorch stores (out, in)."""
    layer = nn.Linear(*w.shape)
    with torch.no_grad():
        layer.weight.copy_(_t(w.T))
        layer.bias.copy_(_t(b))
    return layer


def mlp(params: dict) -> nn.Module:
    n = sum(1 for k in params if k.endswith(".weight"))
    layers = []
    for i in range(n):
        layers.append(_linear(params[f"fc{i}.weight"], params[f"fc{i}.bias"]))
        if i < n - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def convnet(params: dict, paddings: list) -> nn.Module:
    layers = []
    for i, pad in enumerate(paddings):
        w = params[f"conv{i}.weight"]
        conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], padding=pad)
        with torch.no_grad():
            conv.weight.copy_(_t(w))
            conv.bias.copy_(_t(params[f"conv{i}.bias"]))
        layers += [conv, nn.ReLU(), nn.MaxPool2d(2)]
    layers.append(nn.Flatten())
    layers.append(mlp({k: v for k, v in params.items() if k.startswith("fc")}))
    return nn.Sequential(*layers)


class Block(nn.Module):
    def __init__(self, params: dict, prefix: str, num_heads: int):
        super().__init__()
        p = params
        d = p[prefix + "ln1.weight"].shape[0]
        self.h, self.hd = num_heads, d // num_heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        with torch.no_grad():
            for name, ln in (("ln1", self.ln1), ("ln2", self.ln2)):
                ln.weight.copy_(_t(p[prefix + name + ".weight"]))
                ln.bias.copy_(_t(p[prefix + name + ".bias"]))
        # q|k|v fused into one Linear, as nn.MultiheadAttention and most GPT code do.
        w = np.concatenate([p[prefix + f"attn.{n}.weight"] for n in "qkv"], axis=1)
        b = np.concatenate([p[prefix + f"attn.{n}.bias"] for n in "qkv"])
        self.qkv = _linear(w, b)
        self.o = _linear(p[prefix + "attn.o.weight"], p[prefix + "attn.o.bias"])
        self.fc1 = _linear(p[prefix + "fc1.weight"], p[prefix + "fc1.bias"])
        self.fc2 = _linear(p[prefix + "fc2.weight"], p[prefix + "fc2.bias"])

    def forward(self, x, cache=None, pos=0):
        bsz, t, d = x.shape
        qkv = (
            self.qkv(self.ln1(x)).view(bsz, t, 3, self.h, self.hd).permute(2, 0, 3, 1, 4)
        )  # (3, B, H, T, hd)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            kc, vc = cache  # (B, H, Tmax, hd) preallocated
            kc[:, :, pos : pos + t] = k
            vc[:, :, pos : pos + t] = v
            k, v = kc[:, :, : pos + t], vc[:, :, : pos + t]
            if t == 1:
                y = F.scaled_dot_product_attention(q, k, v)
            else:
                keep = torch.arange(pos + t)[None, :] <= (pos + torch.arange(t))[:, None]
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        x = x + self.o(y.transpose(1, 2).reshape(bsz, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    """Same architecture and parameter names as the NumPy floor's GPTFloor."""

    def __init__(self, params: dict, num_layers: int, num_heads: int):
        super().__init__()
        self.tok_emb = nn.Parameter(_t(params["tok_emb"]))
        self.pos_emb = nn.Parameter(_t(params["pos_emb"]))
        self.blocks = nn.ModuleList(Block(params, f"h{i}.", num_heads) for i in range(num_layers))
        d = params["tok_emb"].shape[1]
        self.ln_f = nn.LayerNorm(d)
        with torch.no_grad():
            self.ln_f.weight.copy_(_t(params["ln_f.weight"]))
            self.ln_f.bias.copy_(_t(params["ln_f.bias"]))
        self.head = _linear(params["head.weight"], params["head.bias"])
        self.num_heads = num_heads

    def forward(self, tokens, caches=None, pos=0):
        t = tokens.shape[1]
        x = self.tok_emb[tokens] + self.pos_emb[pos : pos + t]
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i], pos)
        return self.head(self.ln_f(x))

    @torch.inference_mode()
    def generate(self, prompt: torch.Tensor, max_new_tokens: int, use_cache: bool) -> torch.Tensor:
        """Greedy decoding; with ``use_cache`` keys/values live in preallocated tensors."""
        tokens = prompt
        if not use_cache:
            for _ in range(max_new_tokens):
                nxt = self(tokens)[:, -1].argmax(-1, keepdim=True)
                tokens = torch.cat([tokens, nxt], dim=1)
            return tokens
        bsz, t0 = prompt.shape
        d = self.tok_emb.shape[1]
        hd = d // self.num_heads
        shape = (bsz, self.num_heads, t0 + max_new_tokens, hd)
        caches = [(torch.zeros(shape), torch.zeros(shape)) for _ in self.blocks]
        out = [prompt]
        pos, new = 0, prompt
        for _ in range(max_new_tokens):
            nxt = self(new, caches, pos)[:, -1].argmax(-1, keepdim=True)
            out.append(nxt)
            pos, new = pos + new.shape[1], nxt
        return torch.cat(out, dim=1)
