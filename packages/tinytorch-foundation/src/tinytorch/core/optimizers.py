"""Module 06 - Optimizers: turn gradients into parameter updates.

Update rules are exactly PyTorch's (``torch.optim.SGD``, ``Adam``, ``AdamW``),
including where weight decay enters (added to the gradient for SGD/Adam,
decoupled for AdamW) and Adam's bias-correction order. Updates are written in
place into ``param.data`` (the arrays a model and its ``state_dict`` share) and
never into ``param.grad``: a gradient array may be shared with the graph.

``state_dict()`` returns a flat ``{str: ndarray | number}`` mapping (storable in
``.npz`` without pickle); ``load_state_dict`` checks shapes before writing.
"""

from __future__ import annotations

import numpy as np
from tinytorch.core.tensor import Tensor

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]


class Optimizer:
    """Base class: holds the parameter list, the learning rate and per-parameter state.

    Args:
        params: iterable of Tensors with ``requires_grad=True`` (e.g. ``model.parameters()``).
        lr: learning rate (>= 0).

    Attributes:
        lr (float): current learning rate (schedulers assign it).
        state (list[dict]): per-parameter buffers, index-aligned with ``params``.
    """

    def __init__(self, params, lr: float) -> None:
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: argument 'params' is an empty parameter list")
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise ValueError(f"{type(self).__name__}: argument 'params' item {i} is not a Tensor")
        if lr < 0.0:
            raise ValueError(f"{type(self).__name__}: argument 'lr' must be >= 0, got {lr}")
        self.params = params
        self.lr = float(lr)
        self.state = [{} for _ in params]
        self.step_count = 0

    def zero_grad(self) -> None:
        """Clear every parameter's gradient (``grad = None``)."""
        ### BEGIN SOLUTION
        for p in self.params:
            p.grad = None
        ### END SOLUTION

    def step(self) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- state
    def hyperparameters(self) -> dict:
        return {"lr": self.lr}

    def state_dict(self) -> dict:
        """Flat mapping: hyperparameters, ``step_count`` and ``state.<i>.<name>`` arrays (copies)."""
        out = {name: value for name, value in self.hyperparameters().items()}
        out["step_count"] = self.step_count
        for i, buffers in enumerate(self.state):
            for name, value in buffers.items():
                out[f"state.{i}.{name}"] = np.array(value, copy=True)
        return out

    def load_state_dict(self, state: dict) -> None:
        """Restore from ``state_dict()`` output; validates everything before changing anything."""
        problems = []
        new_state = [{} for _ in self.params]
        for key, value in state.items():
            if not key.startswith("state."):
                continue
            try:
                _, index, name = key.split(".", 2)
                index = int(index)
            except ValueError:
                problems.append(f"malformed key {key!r}")
                continue
            if not 0 <= index < len(self.params):
                problems.append(f"{key}: no parameter {index} (optimizer has {len(self.params)})")
                continue
            value = np.asarray(value)
            if value.shape != self.params[index].shape and value.ndim != 0:
                problems.append(f"{key}: shape {value.shape} vs parameter shape {self.params[index].shape}")
                continue
            new_state[index][name] = np.array(value, dtype=self.params[index].dtype if value.ndim else None)
        hyper = self.hyperparameters()
        missing = [k for k in list(hyper) + ["step_count"] if k not in state]
        if missing:
            problems.append(f"missing keys {missing}")
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: " + "; ".join(problems))
        for name in hyper:
            value = np.asarray(state[name])
            setattr(self, name, tuple(float(v) for v in value) if value.ndim else type(hyper[name])(value))
        self.step_count = int(np.asarray(state["step_count"]))
        self.state = new_state


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay.

    For each parameter ``p`` with gradient ``g`` (PyTorch's rule, dampening 0)::

        g = g + weight_decay * p
        b = g                      (first step)      b = momentum * b + g   (later)
        g = g + momentum * b       (nesterov)        g = b                  (otherwise, if momentum)
        p = p - lr * g

    Args:
        params: parameters to update.
        lr: learning rate (>= 0).
        momentum: momentum factor (>= 0).
        weight_decay: L2 penalty coefficient (>= 0).
        nesterov: Nesterov momentum (needs momentum > 0).
    """

    def __init__(
        self,
        params,
        lr: float = 0.01,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, lr)
        if momentum < 0.0:
            raise ValueError(f"SGD: argument 'momentum' must be >= 0, got {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"SGD: argument 'weight_decay' must be >= 0, got {weight_decay}")
        if nesterov and momentum <= 0.0:
            raise ValueError("SGD: argument 'nesterov' requires momentum > 0")
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.nesterov = bool(nesterov)

    def hyperparameters(self) -> dict:
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay}

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient."""
        ### BEGIN SOLUTION
        lr, mu, wd = self.lr, self.momentum, self.weight_decay
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            g = p.grad.data
            if wd != 0.0:
                g = g + wd * p.data
            if mu != 0.0:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = np.array(g, dtype=p.data.dtype, copy=True)
                else:
                    buf *= mu
                    buf += g
                g = g + mu * buf if self.nesterov else buf
            if lr != 0.0:
                p.data -= lr * g  # in place: the model and its optimizer share this array
        self.step_count += 1
        ### END SOLUTION


class Adam(Optimizer):
    """Adam (Kingma & Ba) with PyTorch's bias correction and L2 weight decay.

    For step ``t`` (from 1), gradient ``g``::

        g = g + weight_decay * p
        m = b1 m + (1 - b1) g ;  v = b2 v + (1 - b2) g^2
        p = p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    Args:
        params: parameters to update.
        lr: learning rate (>= 0).
        betas: decay rates (b1, b2) in [0, 1).
        eps: denominator term (>= 0).
        weight_decay: L2 penalty added to the gradient (>= 0).

    Cost: two state arrays per parameter (3x parameter memory).
    """

    decoupled = False

    def __init__(
        self, params, lr: float = 0.001, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0
    ) -> None:
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"{type(self).__name__}: argument 'betas' must be in [0, 1), got {betas}")
        if eps < 0.0:
            raise ValueError(f"{type(self).__name__}: argument 'eps' must be >= 0, got {eps}")
        if weight_decay < 0.0:
            raise ValueError(
                f"{type(self).__name__}: argument 'weight_decay' must be >= 0, got {weight_decay}"
            )
        self.betas = (float(b1), float(b2))
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)

    def hyperparameters(self) -> dict:
        return {"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay}

    def step(self) -> None:
        """Apply one Adam update to every parameter that has a gradient."""
        ### BEGIN SOLUTION
        self.step_count += 1
        b1, b2 = self.betas
        lr, wd, eps = self.lr, self.weight_decay, self.eps
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            # Per-parameter step count (as PyTorch): a parameter without gradient does not age.
            t = state["step"] = int(state.get("step", 0)) + 1
            bias1 = 1.0 - b1**t
            bias2_sqrt = (1.0 - b2**t) ** 0.5
            g = p.grad.data
            if wd != 0.0:
                if self.decoupled:
                    p.data *= 1.0 - lr * wd  # AdamW: shrink the weights directly
                else:
                    g = g + wd * p.data  # Adam: L2 term enters the moments
            if "exp_avg" not in state:
                state["exp_avg"] = np.zeros_like(p.data)
                state["exp_avg_sq"] = np.zeros_like(p.data)
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            denom = np.sqrt(v)
            denom /= bias2_sqrt
            denom += eps
            p.data -= (lr / bias1) * (m / denom)
        ### END SOLUTION


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter).

    Before the Adam step each parameter shrinks: ``p *= 1 - lr * weight_decay``.

    Same arguments as :class:`Adam`, with ``weight_decay`` defaulting to 0.01.
    """

    decoupled = True

    def __init__(
        self, params, lr: float = 0.001, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
