"""Module 03 - Layers: ``Linear``, ``Sequential``, ``Dropout`` on top of ``Module`` and ``Parameter``.

A layer is a :class:`~tinytorch.core.module.Module` that owns
:class:`~tinytorch.core.module.Parameter` s. ``Linear`` is the workhorse: an
affine map ``y = x W^T + b`` applied to every row of its input, with its
weight stored ``(out_features, in_features)`` as PyTorch stores it, so a
``state_dict`` moves between the two libraries unchanged. Finding a model's
parameters (``named_parameters``) and saving or restoring them
(``state_dict`` / ``load_state_dict``) are this module's work too; they live in
``tinytorch/core/module.py`` with the Module base class that Module 02's
activations already use.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from tinytorch.core.autograd import Function
from tinytorch.core.module import Module, Parameter
from tinytorch.core.tensor import Tensor

__all__ = ["Parameter", "Module", "Linear", "Sequential", "Dropout", "LinearFunction"]


def positive_int(value, name: str, owner: str) -> int:
    """``value`` as an int >= 1, or a ValueError naming the argument (floats, bools and strings refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{owner}: argument '{name}' must be a positive int, got {value!r}")
    return int(value)


class LinearFunction(Function):
    """Affine map ``y = x W^T + b`` over any leading dims, with ``W`` of shape (out, in).

    The leading dims are rows: ``x`` (*, in) is seen as one (M, in) matrix, so
    forward is one 2-D matrix product, and backward (grad seen as (M, out)) is
    ``dx = grad @ W``, ``dW = grad^T @ x``, ``db = sum over rows of grad``.
    One Function, not a composition (transpose, batched matmul, add), because
    NumPy multiplies a 3-D ``(B, T, in)`` by ``W^T`` as B separate small
    products and the composed backward would compute ``dW`` as one product per
    leading index and then sum them; as rows, each is one large product.
    Cost: three matmuls of the forward's size (2 M in out flops each).
    """

    name = "linear"

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ### BEGIN SOLUTION
        rows = x.reshape(-1, x.shape[-1])  # (*, in) -> (M, in)
        out = rows @ weight.T  # (M, in) @ (in, out) -> (M, out)
        if bias is not None:
            out = out + bias
        return out.reshape(*x.shape[:-1], weight.shape[0])  # (M, out) -> (*, out)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION (Module 05)
        x, weight = ctx.saved_tensors
        needs_x, needs_w, needs_b = ctx.needs_input_grad
        grad_rows = grad.reshape(-1, grad.shape[-1])  # (M, out)
        grad_x = (grad_rows @ weight).reshape(x.shape) if needs_x else None  # (*, in)
        grad_w = grad_rows.T @ x.reshape(-1, x.shape[-1]) if needs_w else None  # (out, in)
        grad_b = grad_rows.sum(axis=0) if needs_b else None  # (out,)
        return grad_x, grad_w, grad_b
        ### END SOLUTION


class Linear(Module):
    """Fully connected layer ``y = x W^T + b`` (as ``torch.nn.Linear``).

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: learn an additive bias (``bias`` is None when False).

    Shape:
        input (*, in_features) -> output (*, out_features).

    Attributes:
        weight: Parameter (out_features, in_features), U(-1/sqrt(in), 1/sqrt(in)) as PyTorch.
        bias: Parameter (out_features,) with the same init, or None.

    Cost: 2 * M * in * out flops forward for M rows.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features = positive_int(in_features, "in_features", "Linear")
        self.out_features = positive_int(out_features, "out_features", "Linear")
        ### BEGIN SOLUTION
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight = Parameter(np.random.uniform(-bound, bound, (self.out_features, self.in_features)))
        self.bias = Parameter(np.random.uniform(-bound, bound, self.out_features)) if bias else None
        ### END SOLUTION

    def forward(self, x) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear: input shape {x.shape} does not match weight shape {self.weight.shape} "
                f"(in_features={self.in_features})"
            )
        ### BEGIN SOLUTION
        return LinearFunction.apply(x, self.weight, self.bias)
        ### END SOLUTION

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )


class Sequential(Module):
    """Chain of modules applied in order: ``Sequential(a, b)(x) == b(a(x))``.

    Sub-modules are named ``"0"``, ``"1"``, ... (so parameters are ``"0.weight"``).
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (list, tuple)):
            modules = tuple(modules[0])
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise ValueError(f"Sequential: argument {i} is a {type(m).__name__}, not a Module")
            setattr(self, str(i), m)

    def _modules(self):
        return [v for v in vars(self).values() if isinstance(v, Module)]

    def __len__(self) -> int:
        return len(self._modules())

    def __iter__(self):
        return iter(self._modules())

    def __getitem__(self, i: int) -> Module:
        return self._modules()[i]

    def forward(self, x):
        ### BEGIN SOLUTION
        for m in self._modules():
            x = m(x)
        return x
        ### END SOLUTION


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability ``p``, scale the rest by ``1/(1-p)``.

    The expected value is unchanged, so evaluation (``eval()``) is the identity.

    Args:
        p: drop probability in [0, 1).

    Shape: (*) -> (*).
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"Dropout: argument 'p' must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x) -> Tensor:
        ### BEGIN SOLUTION
        if not isinstance(x, Tensor):
            x = Tensor(x)
        if not self.training or self.p == 0.0:
            return x
        keep = np.random.random_sample(x.shape) >= self.p
        mask = keep.astype(x.dtype) * (1.0 / (1.0 - self.p))  # 0 or 1/(1-p), in x's dtype
        return x * mask
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"p={self.p}"
