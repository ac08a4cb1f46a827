"""The benchmark models in tinytorch, loaded from the shared parameter dicts.

Written with the public tier APIs the way a user writes them: ``Sequential`` of
``Linear``/``ReLU``/``Conv2d``/``MaxPool2d``/``Flatten`` layers, the
transformer tier's ``GPT``, ``cross_entropy``, ``SGD``/``Adam``, and a plain
training step (zero_grad, forward, loss, backward, step). ``named`` maps each
floor parameter name to the tinytorch Parameter holding it, so the harness
and the tests can compare gradients name by name.

``accelerated=True`` passes the model through Module 18's ``accelerate``
(the opt-in fast path: Linear+ReLU fused, channels-last convolution, in-place GELU,
buffer reuse; blockwise attention for sequences longer than ``ATTENTION_BLOCK``) and
trains it with Module 18's ``fused_cross_entropy``; it shares the very same Parameter objects.
"""

from __future__ import annotations

import numpy as np
from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.losses import cross_entropy
from tinytorch.core.optimizers import SGD, Adam
from tinytorch.core.tensor import Tensor


def _load(param, value: np.ndarray, name: str) -> None:
    """Copy ``value`` into a tinytorch parameter in place; shapes must match exactly."""
    if tuple(param.data.shape) != value.shape:
        raise ValueError(
            f"{name}: tinytorch parameter has shape {param.data.shape}, benchmark weights {value.shape}"
        )
    param.data[...] = value


def _linear(params: dict, name: str, named: dict) -> Linear:
    w = params[f"{name}.weight"]  # (out, in)
    layer = Linear(w.shape[1], w.shape[0])
    _load(layer.weight, w, f"{name}.weight")
    _load(layer.bias, params[f"{name}.bias"], f"{name}.bias")
    named[f"{name}.weight"], named[f"{name}.bias"] = layer.weight, layer.bias
    return layer


def _head(params: dict, named: dict) -> list:
    """``fc0, ReLU, fc1, ReLU, ..., fc{n-1}``: the dense layers of every benchmark classifier."""
    n = sum(1 for k in params if k.startswith("fc") and k.endswith(".weight"))
    layers = []
    for i in range(n):
        layers.append(_linear(params, f"fc{i}", named))
        if i < n - 1:
            layers.append(ReLU())
    return layers


class Trainer:
    """One training step of ``model`` on a fixed batch: zero_grad, forward, cross-entropy, backward, step.

    ``loss_fn`` is the plain ``cross_entropy``, or Module 18's ``fused_cross_entropy``
    for an accelerated model (what a user opting into Module 18 calls).
    """

    def __init__(self, model, named: dict, optimizer, loss_fn=cross_entropy):
        self.model, self.named, self.opt, self.loss_fn = model, named, optimizer, loss_fn

    def loss(self, x, y) -> Tensor:
        logits = self.model(x if isinstance(x, Tensor) or x.dtype.kind in "iu" else Tensor(x))
        return self.loss_fn(logits.reshape(-1, logits.shape[-1]), np.asarray(y).reshape(-1))

    def step(self, x, y) -> float:
        self.opt.zero_grad()
        loss = self.loss(x, y)
        loss.backward()
        self.opt.step()
        return float(loss.item())

    def grads(self) -> dict:
        return {k: (None if p.grad is None else np.asarray(p.grad.data)) for k, p in self.named.items()}


# Sequences longer than this train with Module 18's blockwise attention (key blocks of this
# size): at 128 positions or fewer it would be one block, the plain attention with extra steps.
ATTENTION_BLOCK = 128


def _maybe_accelerate(model, accelerated: bool, attention_block: int | None = None):
    if not accelerated:
        return model
    from tinytorch.optimization.acceleration import accelerate

    return accelerate(model, attention_block=attention_block)


def _loss_fn(accelerated: bool):
    if not accelerated:
        return cross_entropy
    from tinytorch.optimization.acceleration import fused_cross_entropy

    return fused_cross_entropy


def mlp(params: dict, lr: float, accelerated: bool = False) -> Trainer:
    named: dict = {}
    model = _maybe_accelerate(Sequential(*_head(params, named)), accelerated)
    return Trainer(model, named, SGD(list(named.values()), lr=lr), _loss_fn(accelerated))


def convnet(params: dict, spec, lr: float, accelerated: bool = False) -> Trainer:
    from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d

    named: dict = {}
    layers, c = [], spec.in_shape[0]
    for i, (out, k, pad) in enumerate(spec.convs):
        conv = Conv2d(c, out, k, padding=pad)
        _load(conv.weight, params[f"conv{i}.weight"], f"conv{i}.weight")
        _load(conv.bias, params[f"conv{i}.bias"], f"conv{i}.bias")
        named[f"conv{i}.weight"], named[f"conv{i}.bias"] = conv.weight, conv.bias
        layers += [conv, ReLU(), MaxPool2d(2)]
        c = out
    layers.append(Flatten())
    layers += _head(params, named)
    model = _maybe_accelerate(Sequential(*layers), accelerated)
    return Trainer(model, named, SGD(list(named.values()), lr=lr), _loss_fn(accelerated))


def gpt_from_params(params: dict, spec):
    """A tinytorch ``GPT`` holding the floor's weights; returns (model, {floor name: Parameter})."""
    from tinytorch.models.transformer import GPT

    model = GPT(spec.vocab_size, spec.embed_dim, spec.num_layers, spec.num_heads, spec.max_seq_len)
    where = {
        "tok_emb": model.embedding.token_embedding.weight,
        "pos_emb": model.embedding.position_embedding.weight,
        "ln_f.weight": model.ln_f.weight,
        "ln_f.bias": model.ln_f.bias,
        "head.weight": model.head.weight,
        "head.bias": model.head.bias,
    }
    for i, block in enumerate(model.blocks):
        layers = {
            "ln1": block.ln1,
            "ln2": block.ln2,
            "attn.in_proj": block.attn.in_proj,
            "attn.out_proj": block.attn.out_proj,
            "fc1": block.mlp.fc1,
            "fc2": block.mlp.fc2,
        }
        for name, layer in layers.items():
            where[f"h{i}.{name}.weight"] = layer.weight
            where[f"h{i}.{name}.bias"] = layer.bias
    if set(where) != set(params):
        raise ValueError(f"GPT parameter names differ: {sorted(set(where) ^ set(params))}")
    for name, param in where.items():
        _load(param, params[name], name)
    return model, where


def gpt(params: dict, spec, lr: float, accelerated: bool = False) -> Trainer:
    """Next-token cross-entropy over every position, Adam step."""
    model, named = gpt_from_params(params, spec)
    block = ATTENTION_BLOCK if spec.max_seq_len > ATTENTION_BLOCK else None
    model = _maybe_accelerate(model, accelerated, attention_block=block)
    return Trainer(model, named, Adam(list(named.values()), lr=lr), _loss_fn(accelerated))


class Generator:
    """Greedy generation (temperature 0): ``mode`` is ``cached``, ``uncached`` or ``fused``.

    ``cached`` is Module 17's KV cache (``enable_kv_cache``) through ``GPT.generate``;
    ``uncached`` recomputes the whole prefix every token; ``fused`` is Module 18's
    opt-in ``fast_generate`` (raw-array decoding on the same KV cache).
    """

    def __init__(self, params: dict, spec, mode: str):
        self.model, self.named = gpt_from_params(params, spec)
        self.mode = mode
        if mode == "cached":
            from tinytorch.generation.kv_cache import enable_kv_cache

            enable_kv_cache(self.model)

    def generate(self, prompt, max_new_tokens: int):
        if self.mode == "fused":
            from tinytorch.optimization.acceleration import fast_generate

            return fast_generate(self.model, prompt, max_new_tokens, temperature=0.0)
        return self.model.generate(
            prompt, max_new_tokens, temperature=0.0, use_cache=self.mode == "cached"
        )
