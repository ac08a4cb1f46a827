"""Module 03 - Layers: ``Module``, ``Parameter``, ``Linear``, ``Sequential``, ``Dropout``.

A :class:`Module` is a callable object that owns parameters and sub-modules.
Nothing has to be registered by hand: ``parameters()`` walks the instance's
attributes in assignment order and collects every :class:`Parameter` (and any
other leaf Tensor with ``requires_grad=True``), every sub-Module and every
Module or Parameter inside a list/tuple attribute. Names follow PyTorch
(``"0.weight"``, ``"encoder.layers.1.bias"``), so ``state_dict`` keys match.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
from tinytorch.core.autograd import Function
from tinytorch.core.tensor import Tensor

__all__ = ["Parameter", "Module", "Linear", "Sequential", "Dropout", "LinearFunction"]


class Parameter(Tensor):
    """A Tensor that is a learnable weight: ``requires_grad=True`` and owned (copied) data.

    Args:
        data: initial values (copied; float data becomes float32 unless ``dtype`` is given).
        requires_grad: default True.
        dtype: optional NumPy dtype.
    """

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True, dtype=None) -> None:
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(np.array(data, dtype=dtype, copy=True), requires_grad=requires_grad, dtype=dtype)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def _is_param(value) -> bool:
    return isinstance(value, Tensor) and (
        isinstance(value, Parameter) or (value.requires_grad and value.is_leaf)
    )


class Module:
    """Base class of every layer and model.

    Subclasses set parameters/sub-modules as attributes in ``__init__`` and
    implement ``forward``; calling the module calls ``forward``.

    Attributes:
        training (bool): True in training mode (Dropout active), False after ``eval()``.
    """

    training = True  # class default: subclasses need not call super().__init__()

    def __init__(self) -> None:
        self.training = True

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---------------------------------------------------------------- discovery
    def named_children(self):
        """(name, module) for direct sub-modules, lists/tuples expanded as ``name.i``."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield f"{name}.{i}", item

    def children(self):
        return [m for _, m in self.named_children()]

    def modules(self):
        """This module and every descendant, depth first."""
        out = [self]
        for _, child in self.named_children():
            out.extend(child.modules())
        return out

    def named_parameters(self, prefix: str = ""):
        """List of (dotted name, Parameter), each parameter once, in attribute order.

        Cost: one walk over the module tree.
        """
        ### BEGIN SOLUTION
        seen = set()
        result = []

        def visit(module, pre):
            for name, value in vars(module).items():
                if _is_param(value):
                    if id(value) not in seen:
                        seen.add(id(value))
                        result.append((pre + name, value))
                elif isinstance(value, Module):
                    visit(value, f"{pre}{name}.")
                elif isinstance(value, (list, tuple)):
                    for i, item in enumerate(value):
                        if isinstance(item, Module):
                            visit(item, f"{pre}{name}.{i}.")
                        elif _is_param(item) and id(item) not in seen:
                            seen.add(id(item))
                            result.append((f"{pre}{name}.{i}", item))

        visit(self, prefix)
        return result
        ### END SOLUTION

    def parameters(self):
        """List of every learnable Parameter of this module and its sub-modules."""
        ### BEGIN SOLUTION
        return [p for _, p in self.named_parameters()]
        ### END SOLUTION

    def register_buffer(self, name: str, value) -> None:
        """Attach a non-learnable array (e.g. running statistics) that ``state_dict`` saves."""
        buffers = self.__dict__.setdefault("_buffer_names", [])
        if name not in buffers:
            buffers.append(name)
        setattr(self, name, value)

    def named_buffers(self, prefix: str = ""):
        result = []
        for name in self.__dict__.get("_buffer_names", []):
            result.append((prefix + name, getattr(self, name)))
        for child_name, child in self.named_children():
            result.extend(child.named_buffers(f"{prefix}{child_name}."))
        return result

    # ---------------------------------------------------------------- modes and grads
    def train(self, mode: bool = True):
        """Set training mode on this module and every descendant; returns self."""
        ### BEGIN SOLUTION
        for m in self.modules():
            m.training = bool(mode)
        return self
        ### END SOLUTION

    def eval(self):
        """Inference mode (Dropout off); same as ``train(False)``."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Clear ``.grad`` of every parameter (set to None)."""
        ### BEGIN SOLUTION
        for p in self.parameters():
            p.grad = None
        ### END SOLUTION

    # ---------------------------------------------------------------- state
    def state_dict(self) -> OrderedDict:
        """Ordered mapping name -> copy of the values (ndarray) for parameters and buffers."""
        ### BEGIN SOLUTION
        state = OrderedDict()
        for name, p in self.named_parameters():
            state[name] = p.data.copy()
        for name, b in self.named_buffers():
            state[name] = np.array(b.data if isinstance(b, Tensor) else b, copy=True)
        return state
        ### END SOLUTION

    def load_state_dict(self, state_dict, strict: bool = True) -> None:
        """Copy values from ``state_dict`` into the parameters (in place, so optimizers keep working).

        Everything is checked before anything is written: on a missing or
        unexpected key or a shape mismatch a ValueError lists the problems and
        the module is left unchanged.
        """
        ### BEGIN SOLUTION
        targets = dict(self.named_parameters())
        buffers = dict(self.named_buffers())
        expected = list(targets) + list(buffers)
        problems = []
        for name in expected:
            if name not in state_dict:
                if strict:
                    problems.append(f"missing key {name!r}")
                continue
            have = targets[name].shape if name in targets else np.shape(buffers[name])
            got = np.shape(state_dict[name])
            if tuple(got) != tuple(have):
                problems.append(f"{name}: shape {tuple(got)} in state_dict vs {tuple(have)} in model")
        if strict:
            problems += [f"unexpected key {k!r}" for k in state_dict if k not in targets and k not in buffers]
        if problems:
            raise ValueError("load_state_dict: " + "; ".join(problems))
        for name in expected:
            if name not in state_dict:
                continue
            value = state_dict[name]
            value = value.data if isinstance(value, Tensor) else np.asarray(value)
            if name in targets:
                targets[name].data[...] = value
            else:
                self._set_buffer(name, value)
        ### END SOLUTION

    def _set_buffer(self, dotted: str, value) -> None:
        owner = self
        *path, leaf = dotted.split(".")
        for part in path:
            owner = (
                owner[int(part)]
                if part.isdigit() and isinstance(owner, (list, tuple))
                else getattr(owner, part)
            )
        current = getattr(owner, leaf)
        if isinstance(current, Tensor):
            current.data[...] = value
        elif isinstance(current, np.ndarray):
            current[...] = value
        else:
            setattr(owner, leaf, np.array(value, copy=True))

    # ---------------------------------------------------------------- repr
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = list(self.named_children())
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        lines = [head]
        for name, child in children:
            text = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {text}")
        return "\n".join(lines) + "\n)"


class LinearFunction(Function):
    """Fused affine map ``y = x @ W + b`` over any leading dims.

    Backward (x flattened to (M, in), grad to (M, out)):
    ``dx = grad @ W^T``, ``dW = x^T @ grad``, ``db = sum_rows(grad)``.
    Cost: three matmuls of the forward's size; dx is skipped for an input
    that needs no gradient (the data batch).
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        ### BEGIN SOLUTION
        ctx.save_for_backward(x, weight)
        out = x @ weight
        if bias is not None:
            out += bias  # in place: `out` is a fresh array
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        x, weight = ctx.saved_tensors
        nx, nw, nb = ctx.needs_input_grad
        g2 = grad.reshape(-1, grad.shape[-1])  # (M, out)
        gx = gw = gb = None
        if nx:
            # One 2-D GEMM on the (M, out) view, not a batched matmul over the leading dims.
            gx = (g2 @ weight.T).reshape(x.shape)  # (*, in)
        if nw:
            gw = x.reshape(-1, x.shape[-1]).T @ g2  # (in, out)
        if nb:
            gb = g2.sum(axis=0)
        return gx, gw, gb
        ### END SOLUTION


class Linear(Module):
    """Fully connected layer ``y = x @ W + b``.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: learn an additive bias (``bias`` is None when False).

    Shape:
        input (*, in_features) -> output (*, out_features).

    Attributes:
        weight: Parameter (in_features, out_features), U(-1/sqrt(in), 1/sqrt(in)) as PyTorch.
        bias: Parameter (out_features,) with the same init, or None.

    Cost: 2 * M * in * out flops forward for M rows.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        if int(in_features) <= 0 or int(out_features) <= 0:
            raise ValueError(
                "Linear: arguments 'in_features' and 'out_features' must be positive, "
                f"got {in_features}, {out_features}"
            )
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        ### BEGIN SOLUTION
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight = Parameter(np.random.uniform(-bound, bound, (self.in_features, self.out_features)))
        self.bias = Parameter(np.random.uniform(-bound, bound, (self.out_features,))) if bias else None
        ### END SOLUTION

    def forward(self, x) -> Tensor:
        ### BEGIN SOLUTION
        if not isinstance(x, Tensor):
            x = Tensor(x)
        shape = x.data.shape  # the array's shape: no property calls (13 Linear calls per decoded token)
        if not shape or shape[-1] != self.in_features:
            raise ValueError(
                f"Linear: input shape {shape} does not match weight shape {self.weight.shape} "
                f"(in_features={self.in_features})"
            )
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
