"""Module 06 - Optimizers: turn gradients into parameter updates.

Update rules are exactly PyTorch's (``torch.optim.SGD``, ``Adam``, ``AdamW``),
including where weight decay enters (added to the gradient for SGD/Adam,
decoupled for AdamW) and Adam's bias-correction order. Updates are written in
place into ``param.data`` (the arrays a model and its ``state_dict`` share) and
never into ``param.grad``: a gradient array may be shared with the graph.

Parameters come in *groups*, as in PyTorch: ``SGD(model.parameters(), lr=0.1)``
makes one group; ``SGD([{"params": body.parameters()}, {"params": head.parameters(),
"lr": 0.01}], lr=0.1)`` gives the head its own learning rate. Each group is a dict
holding its ``params`` and every hyperparameter; a scheduler sets ``group["lr"]``.

Hyperparameters are checked when set: NaN, infinity, negative rates and
out-of-range betas raise a ``ValueError`` naming the argument, here and when a
saved state is loaded.

``state_dict()`` returns a flat ``{str: ndarray | number}`` mapping (storable in
``.npz`` without pickle); ``load_state_dict`` validates everything before changing anything.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from tinytorch.core.tensor import Tensor

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "check_hyperparameter"]


def check_hyperparameter(
    owner: str,
    name: str,
    value,
    *,
    low: float = 0.0,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float inside the given range, or a ValueError naming the argument.

    Refuses booleans, strings, NaN and infinities (an infinite ``high`` bound is never reached).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{owner}: argument '{name}' must be a number, got {value!r}")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if not math.isfinite(value) or too_low or too_high:
        left, right = "(" if low_open else "[", ")" if high_open or high == math.inf else "]"
        raise ValueError(
            f"{owner}: argument '{name}' must be a finite number in {left}{low}, {high}{right}, got {value!r}"
        )
    return value


class Optimizer:
    """Base class: parameter groups, per-parameter state, validated hyperparameters.

    Args:
        params: an iterable of Tensors with ``requires_grad=True`` (``model.parameters()``), or of
            dicts ``{"params": [...], <hyperparameter>: value}`` (parameter groups).
        defaults: the hyperparameters of every group that does not set its own.

    Attributes:
        param_groups (list[dict]): ``{"params": [...], "lr": ..., ...}`` per group.
        params (list[Tensor]): every parameter, group by group (the order of ``state``).
        state (list[dict]): per-parameter buffers, index-aligned with ``params``.
        lr (float): the first group's learning rate; assigning it sets every group's.
    """

    def __init__(self, params, defaults: dict) -> None:
        owner = type(self).__name__
        items = list(params)
        if not items:
            raise ValueError(f"{owner}: argument 'params' is an empty parameter list")
        groups = items if all(isinstance(g, dict) for g in items) else [{"params": items}]
        self.param_groups = []
        for g, group in enumerate(groups):
            if not isinstance(group, dict) or "params" not in group:
                raise ValueError(f"{owner}: argument 'params' mixes tensors and parameter groups")
            unknown = set(group) - set(defaults) - {"params"}
            if unknown:
                raise ValueError(f"{owner}: parameter group {g} has unknown options {sorted(unknown)}")
            members = [group["params"]] if isinstance(group["params"], Tensor) else list(group["params"])
            for i, p in enumerate(members):
                if not isinstance(p, Tensor):
                    raise ValueError(f"{owner}: argument 'params' item {i} of group {g} is not a Tensor")
            options = self.validate({**defaults, **{k: v for k, v in group.items() if k != "params"}})
            self.param_groups.append({"params": members, **options})
        self.params = [p for group in self.param_groups for p in group["params"]]
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError(f"{owner}: a parameter appears in more than one place of argument 'params'")
        self.state = [{} for _ in self.params]
        self.step_count = 0

    def validate(self, options: dict) -> dict:
        """Check every hyperparameter of a group; subclasses extend this."""
        return {**options, "lr": check_hyperparameter(type(self).__name__, "lr", options["lr"])}

    @property
    def lr(self) -> float:
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value) -> None:
        value = check_hyperparameter(type(self).__name__, "lr", value)
        for group in self.param_groups:
            group["lr"] = value

    def zero_grad(self) -> None:
        """Clear every parameter's gradient (``grad = None``)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError

    def _groups(self):
        """(group, parameter, its state dict) for every parameter, in ``params`` order."""
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                yield group, p, self.state[i]
                i += 1

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """Flat mapping: ``group.<g>.<hyperparameter>``, ``step_count`` and ``state.<i>.<name>`` (copies)."""
        out = {}
        for g, group in enumerate(self.param_groups):
            for name, value in group.items():
                if name != "params":
                    out[f"group.{g}.{name}"] = value
        out["step_count"] = self.step_count
        for i, buffers in enumerate(self.state):
            for name, value in buffers.items():
                out[f"state.{i}.{name}"] = np.array(value, copy=True)
        return out

    def load_state_dict(self, state: dict) -> None:
        """Restore from ``state_dict()`` output; validates everything before changing anything.

        Raises:
            ValueError: listing every problem (missing or malformed keys, shapes that do not
                match the parameters, hyperparameters out of range); the optimizer is unchanged.
        """
        owner = type(self).__name__
        problems = []
        new_state = [{} for _ in self.params]
        new_groups = []
        for g, group in enumerate(self.param_groups):
            options = {}
            for name in group:
                if name == "params":
                    continue
                key = f"group.{g}.{name}"
                if key not in state:
                    problems.append(f"missing key {key!r}")
                    continue
                value = np.asarray(state[key])
                if value.dtype.kind not in "biuf" or value.ndim > 1:
                    problems.append(f"{key}: not a number or a pair of numbers")
                    continue
                options[name] = tuple(value.tolist()) if value.ndim else value.item()
            if len(options) == len(group) - 1:
                try:
                    new_groups.append(self.validate(options))
                except ValueError as exc:
                    problems.append(f"group {g}: {exc}")
        for key, value in state.items():
            if key.startswith("group."):
                parts = key.split(".", 2)
                if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) >= len(self.param_groups):
                    problems.append(f"unexpected key {key!r}")
                continue
            if key == "step_count":
                continue
            if not key.startswith("state."):
                problems.append(f"unexpected key {key!r}")
                continue
            parts = key.split(".", 2)
            if len(parts) != 3 or not parts[1].isdigit():
                problems.append(f"malformed key {key!r}")
                continue
            index, name = int(parts[1]), parts[2]
            if index >= len(self.params):
                problems.append(f"{key}: no parameter {index} (optimizer has {len(self.params)})")
                continue
            value = np.asarray(value)
            param = self.params[index]
            if value.dtype.kind not in "biuf":
                problems.append(f"{key}: values of dtype {value.dtype} are not numbers")
            elif value.ndim == 0:
                new_state[index][name] = value.item()
            elif value.shape != param.shape:
                problems.append(f"{key}: shape {value.shape} vs parameter shape {param.shape}")
            else:
                new_state[index][name] = np.array(value, dtype=param.dtype)
        step_count = state.get("step_count")
        if step_count is None:
            problems.append("missing key 'step_count'")
        elif (
            np.asarray(step_count).dtype.kind not in "iu"
            or np.asarray(step_count).ndim
            or int(step_count) < 0
        ):
            problems.append(f"step_count must be a non-negative integer, got {step_count!r}")
        if problems:
            raise ValueError(f"{owner}.load_state_dict: " + "; ".join(problems))
        for group, options in zip(self.param_groups, new_groups):
            group.update(options)
        self.step_count = int(step_count)
        self.state = new_state


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay.

    For each parameter ``p`` with gradient ``g`` (PyTorch's rule, dampening 0)::

        g = g + weight_decay * p
        b = g                      (first step)      b = momentum * b + g   (later)
        g = g + momentum * b       (nesterov)        g = b                  (otherwise, if momentum)
        p = p - lr * g

    Args:
        params: parameters (or parameter groups) to update.
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
        super().__init__(
            params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "nesterov": nesterov}
        )

    def validate(self, options: dict) -> dict:
        options = super().validate(options)
        options["momentum"] = check_hyperparameter("SGD", "momentum", options["momentum"])
        options["weight_decay"] = check_hyperparameter("SGD", "weight_decay", options["weight_decay"])
        if not isinstance(options["nesterov"], (bool, np.bool_)):
            raise ValueError(f"SGD: argument 'nesterov' must be True or False, got {options['nesterov']!r}")
        options["nesterov"] = bool(options["nesterov"])
        if options["nesterov"] and options["momentum"] <= 0.0:
            raise ValueError("SGD: argument 'nesterov' requires momentum > 0")
        return options

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient."""
        ### BEGIN SOLUTION
        for group, p, state in self._groups():
            if p.grad is None:
                continue
            lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
            g = p.grad.data
            if decay != 0.0:
                g = g + decay * p.data
            if momentum != 0.0:
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = np.array(g, dtype=p.data.dtype, copy=True)
                else:
                    state["momentum_buffer"] = momentum * state["momentum_buffer"] + g
                buf = state["momentum_buffer"]
                g = g + momentum * buf if group["nesterov"] else buf
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
        params: parameters (or parameter groups) to update.
        lr: learning rate (>= 0).
        betas: decay rates (b1, b2), each in [0, 1).
        eps: denominator term (> 0: with 0 a zero gradient would divide 0 by 0).
        weight_decay: L2 penalty added to the gradient (>= 0).

    Cost: two state arrays per parameter (3x parameter memory).
    """

    decoupled = False

    def __init__(
        self, params, lr: float = 0.001, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0
    ) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    def validate(self, options: dict) -> dict:
        owner = type(self).__name__
        options = super().validate(options)
        betas = options["betas"]
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise ValueError(f"{owner}: argument 'betas' must be a pair (b1, b2), got {betas!r}")
        options["betas"] = tuple(
            check_hyperparameter(owner, "betas", b, high=1.0, high_open=True) for b in betas
        )
        options["eps"] = check_hyperparameter(owner, "eps", options["eps"], low_open=True)
        options["weight_decay"] = check_hyperparameter(owner, "weight_decay", options["weight_decay"])
        return options

    def step(self) -> None:
        """Apply one Adam update to every parameter that has a gradient."""
        ### BEGIN SOLUTION
        self.step_count += 1
        for group, p, state in self._groups():
            if p.grad is None:
                continue
            lr, (b1, b2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            # Per-parameter step count (as PyTorch): a parameter without gradient does not age.
            t = state["step"] = int(state.get("step", 0)) + 1
            g = p.grad.data
            if decay != 0.0:
                if self.decoupled:
                    p.data *= 1.0 - lr * decay  # AdamW: shrink the weights directly
                else:
                    g = g + decay * p.data  # Adam: the L2 term enters the moments
            if "exp_avg" not in state:
                state["exp_avg"] = np.zeros_like(p.data)
                state["exp_avg_sq"] = np.zeros_like(p.data)
            m = state["exp_avg"] = b1 * state["exp_avg"] + (1 - b1) * g
            v = state["exp_avg_sq"] = b2 * state["exp_avg_sq"] + (1 - b2) * g * g
            denom = np.sqrt(v) / math.sqrt(1 - b2**t) + eps
            p.data -= (lr / (1 - b1**t)) * m / denom
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
