"""The ``Module`` base class: what every layer, activation, loss and model is built on.

Given code for Modules 02-20 (activations are the first Modules a student
meets); finding a module's parameters and saving/loading its state is
Module 03's lesson, marked ``(Module 03)``.

A :class:`Module` is a callable object that owns parameters and sub-modules.
Nothing has to be registered by hand: ``named_parameters()`` walks the
instance's attributes in assignment order and collects every
:class:`Parameter` (and any other leaf Tensor with ``requires_grad=True``),
every sub-Module, and every Module or Parameter inside a list/tuple attribute.
Names follow PyTorch (``"0.weight"``, ``"blocks.1.attn.qkv.bias"``), so
``state_dict`` keys match ``torch.nn.Module.state_dict``.

Calling a module runs its forward *hooks* around ``forward`` (as PyTorch's
``register_forward_pre_hook`` / ``register_forward_hook``): a profiler or a
debugger observes layers through them without touching their code.
"""

from __future__ import annotations

from collections import OrderedDict
from itertools import count

import numpy as np
from tinytorch.core.tensor import Tensor

__all__ = ["Parameter", "Module", "RemovableHandle"]


class Parameter(Tensor):
    """A Tensor that is a learnable weight: ``requires_grad=True`` and its own copy of the data.

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


class RemovableHandle:
    """Returned by ``register_forward_hook``: ``handle.remove()`` unregisters the hook."""

    _ids = count()

    def __init__(self, hooks: dict) -> None:
        self.hooks = hooks
        self.id = next(RemovableHandle._ids)

    def remove(self) -> None:
        self.hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        self.remove()
        return False


class Module:
    """Base class of every layer and model.

    Subclasses set parameters and sub-modules as attributes in ``__init__`` and
    implement ``forward``; calling the module calls ``forward`` (between its hooks).

    Attributes:
        training (bool): True in training mode (Dropout active), False after ``eval()``.
    """

    training = True  # class default: subclasses need not call super().__init__()

    def __init__(self) -> None:
        self.training = True

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    # ---------------------------------------------------------------- calling and hooks
    def __call__(self, *args, **kwargs):
        pre_hooks = self.__dict__.get("_forward_pre_hooks")
        if pre_hooks:
            for hook in list(pre_hooks.values()):  # a copy: a hook may remove itself
                changed = hook(self, args)
                if changed is not None:
                    args = changed if isinstance(changed, tuple) else (changed,)
        output = self.forward(*args, **kwargs)
        hooks = self.__dict__.get("_forward_hooks")
        if hooks:
            for hook in list(hooks.values()):
                changed = hook(self, args, output)
                if changed is not None:
                    output = changed
        return output

    def _hooks(self, kind: str) -> dict:
        return self.__dict__.setdefault(kind, {})

    def register_forward_pre_hook(self, hook) -> RemovableHandle:
        """Call ``hook(module, args)`` before every ``forward``; a non-None result replaces ``args``."""
        hooks = self._hooks("_forward_pre_hooks")
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after every ``forward``; a non-None result replaces it."""
        hooks = self._hooks("_forward_hooks")
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        return handle

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

    def named_modules(self, prefix: str = ""):
        """(dotted name, module) for this module (name ``prefix``) and every descendant, depth first."""
        out = [(prefix, self)]
        for name, child in self.named_children():
            out.extend(child.named_modules(f"{prefix}.{name}" if prefix else name))
        return out

    def modules(self):
        """This module and every descendant, depth first."""
        return [m for _, m in self.named_modules()]

    def named_parameters(self, prefix: str = ""):
        """List of (dotted name, Parameter), each parameter once, in attribute order.

        Cost: one walk over the module tree.
        """
        ### BEGIN SOLUTION (Module 03)
        seen = set()
        result = []

        def add(name, param):
            if id(param) not in seen:  # a shared (tied) parameter is listed once
                seen.add(id(param))
                result.append((name, param))

        def visit(module, pre):
            for name, value in vars(module).items():
                if _is_param(value):
                    add(pre + name, value)
                elif isinstance(value, Module):
                    visit(value, f"{pre}{name}.")
                elif isinstance(value, (list, tuple)):
                    for i, item in enumerate(value):
                        if isinstance(item, Module):
                            visit(item, f"{pre}{name}.{i}.")
                        elif _is_param(item):
                            add(f"{pre}{name}.{i}", item)

        visit(self, prefix)
        return result
        ### END SOLUTION

    def parameters(self):
        """List of every learnable Parameter of this module and its sub-modules."""
        ### BEGIN SOLUTION (Module 03)
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

    # ---------------------------------------------------------------- modes, grads, types
    def train(self, mode: bool = True):
        """Set training mode on this module and every descendant; returns self."""
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self):
        """Inference mode (Dropout off); same as ``train(False)``."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Clear ``.grad`` of every parameter (set to None)."""
        for p in self.parameters():
            p.grad = None

    def apply(self, fn):
        """Call ``fn(module)`` on every descendant and on this module (children first); returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def to(self, dtype):
        """Convert every floating-point parameter and buffer to ``dtype`` in place; returns self."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise ValueError(f"Module.to: argument 'dtype' must be a floating-point dtype, got {dtype}")
        for p in self.parameters():
            if p.data.dtype.kind == "f":
                p.data = p.data.astype(dtype)
        for name, b in self.named_buffers():
            array = b.data if isinstance(b, Tensor) else np.asarray(b)
            if array.dtype.kind == "f":
                self._set_buffer(name, array.astype(dtype), replace=True)
        return self

    # ---------------------------------------------------------------- state
    def state_dict(self) -> OrderedDict:
        """Ordered mapping name -> copy of the values (ndarray) for parameters and buffers."""
        ### BEGIN SOLUTION (Module 03)
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
        unexpected key, a shape mismatch or a non-numeric value a ValueError lists
        the problems and the module is left unchanged.
        """
        ### BEGIN SOLUTION (Module 03)
        targets = dict(self.named_parameters())
        buffers = dict(self.named_buffers())
        expected = list(targets) + list(buffers)
        problems = []
        for name in expected:
            if name not in state_dict:
                if strict:
                    problems.append(f"missing key {name!r}")
                continue
            value = state_dict[name]
            value = value.data if isinstance(value, Tensor) else np.asarray(value)
            have = targets[name].shape if name in targets else np.shape(buffers[name])
            if value.dtype.kind not in "biuf":
                problems.append(f"{name}: values of dtype {value.dtype} are not numbers")
            elif tuple(value.shape) != tuple(have):
                problems.append(f"{name}: shape {tuple(value.shape)} in state_dict vs {tuple(have)} in model")
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

    def _set_buffer(self, dotted: str, value, replace: bool = False) -> None:
        """Write ``value`` into the buffer named ``dotted`` (in place unless ``replace``)."""
        owner = self
        *path, leaf = dotted.split(".")
        for part in path:
            owner = (
                owner[int(part)]
                if part.isdigit() and isinstance(owner, (list, tuple))
                else getattr(owner, part)
            )
        current = getattr(owner, leaf)
        if replace:
            setattr(owner, leaf, Tensor(value, dtype=value.dtype) if isinstance(current, Tensor) else value)
        elif isinstance(current, Tensor):
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
