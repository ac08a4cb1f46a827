"""Module 16: compression, making a trained model smaller without retraining it from scratch.

Four classic tools:

* **Magnitude pruning** (unstructured): zero the weights of smallest ``|w|``
  in each layer. Trained networks tolerate high sparsity, but the zeros are
  scattered, so a dense matmul is no faster; the win is in storage
  (sparse formats) and specialised kernels.
* **Structured pruning**: remove whole units of smallest L2 norm. Weights are
  stored as PyTorch stores them, ``Linear`` ``(out, in)`` and ``Conv2d``
  ``(out, in, kH, kW)``, so ``dim=0`` removes *output* units (rows: a neuron, a
  filter, with its bias entry) and ``dim=1`` removes *input* units (columns: an
  input feature or input channel). Coarser, so accuracy drops sooner, but the
  layer can then be physically shrunk: real speedups.
* **Low-rank approximation**: replace ``W (m, n)`` by ``A (m, r) @ B (r, n)``
  from a truncated SVD; ``r (m + n)`` numbers instead of ``m n``. By the
  Eckart-Young theorem it is the best rank-``r`` approximation, with error
  ``||W - A B||_F = sqrt(sum of the discarded singular values squared)``.
* **Knowledge distillation**: train a small *student* to match the softened
  output distribution of a large *teacher* (its "dark knowledge": which wrong
  classes it finds plausible), mixed with the usual hard-label loss.

Layers are recognised by protocol: a *prunable* layer multiplies its input by a
``weight`` of two or more dimensions and says how wide that input is
(``in_features`` or ``in_channels``); embedding tables, which are looked up
rather than multiplied, are left alone.

Pruning masks persist: each pruned layer keeps ``weight_mask`` (and
``bias_mask`` when output units were removed) as attributes, and
:class:`MaskedOptimizer` wraps any optimizer so that masked gradients are
zeroed before each ``step()`` and the masks re-applied after it. It has the
optimizer interface itself (``step``, ``zero_grad``, ``param_groups``, a
settable ``lr``, ``state_dict``), so a ``Trainer`` and its learning-rate schedule use it
as they use the optimizer it wraps; ``masked.optimizer`` is the wrapped one.
"""

from __future__ import annotations

import numpy as np
from tinytorch.core.activations import log_softmax, softmax
from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import Linear, Module
from tinytorch.core.losses import cross_entropy
from tinytorch.core.tensor import Tensor

__all__ = [
    "KnowledgeDistillation", "LowRankLinear", "MaskedOptimizer", "apply_masks", "is_prunable",
    "low_rank_approximate", "magnitude_prune", "measure_sparsity", "prunable_layers", "remove_masks",
    "structured_prune",
]  # fmt: skip


def _check_fraction(value, name: str, allow_one: bool = False) -> float:
    hi_ok = (lambda v: v <= 1.0) if allow_one else (lambda v: v < 1.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 <= value and hi_ok(value)):
        raise ValueError(f"{name} must be a number in [0, {'1]' if allow_one else '1)'}, got {value!r}")
    return float(value)


def is_prunable(module) -> bool:
    """A layer that multiplies its input by ``weight`` (ndim >= 2): ``in_features`` or ``in_channels`` set."""
    weight = getattr(module, "weight", None)
    multiplies = hasattr(module, "in_features") or hasattr(module, "in_channels")
    return isinstance(weight, Tensor) and weight.ndim >= 2 and multiplies


def prunable_layers(model) -> list:
    """``(name, module)`` of every :func:`is_prunable` layer, each once, in module order."""
    if not isinstance(model, Module):
        raise ValueError(f"model must be a Module, got {type(model).__name__}")
    found, seen = [], set()
    for name, module in model.named_modules():
        if is_prunable(module) and id(module) not in seen:
            seen.add(id(module))
            found.append((name or type(model).__name__, module))
    return found


def measure_sparsity(model) -> float:
    """Fraction (0 to 1) of exactly-zero weights in :func:`prunable_layers` (biases excluded)."""
    ### BEGIN SOLUTION
    layers = prunable_layers(model)
    if not layers:
        raise ValueError(f"measure_sparsity: {type(model).__name__} has no weight matrices")
    zeros = sum(int(np.count_nonzero(m.weight.data == 0)) for _, m in layers)
    total = sum(m.weight.data.size for _, m in layers)
    return zeros / total
    ### END SOLUTION


def apply_masks(model) -> None:
    """Re-zero every masked weight/bias entry (and its gradient, if any) of ``model``."""
    for _, module in prunable_layers(model):
        for attr in ("weight", "bias"):
            mask = getattr(module, f"{attr}_mask", None)
            param = getattr(module, attr, None)
            if mask is None or param is None:
                continue
            param.data *= mask  # in place: optimizers hold references to these arrays
            if param.grad is not None:
                param.grad.data *= mask


def _set_mask(module, attr: str, mask: np.ndarray) -> None:
    """Combine with an existing mask (pruned entries stay pruned) and apply it."""
    old = getattr(module, f"{attr}_mask", None)
    mask = mask if old is None else (mask & (old != 0))
    setattr(module, f"{attr}_mask", mask.astype(getattr(module, attr).data.dtype))
    getattr(module, attr).data *= getattr(module, f"{attr}_mask")


def magnitude_prune(model, sparsity: float) -> dict:
    """Zero the ``sparsity`` fraction of smallest-magnitude weights of each layer, in place.

    Per layer (not global), weights only; exactly ``round(sparsity * size)``
    entries per layer are pruned (ties broken by position). A mask is stored as
    ``module.weight_mask`` (see :class:`MaskedOptimizer`).

    Args:
        model: a Module.
        sparsity: target fraction in [0, 1).

    Returns:
        ``{layer name: achieved sparsity of its weight}``.
    """
    ### BEGIN SOLUTION
    sparsity = _check_fraction(sparsity, "sparsity")
    report = {}
    for name, module in prunable_layers(model):
        w = module.weight.data
        k = int(round(sparsity * w.size))
        keep = np.ones(w.size, dtype=bool)
        if k > 0:
            # argpartition: the k smallest |w| in O(n), no full sort
            keep[np.argpartition(np.abs(w).ravel(), k - 1)[:k]] = False
        _set_mask(module, "weight", keep.reshape(w.shape))
        report[name] = float(np.mean(w == 0))
    return report
    ### END SOLUTION


def structured_prune(model, prune_ratio: float, skip_output_layer: bool = True, dim: int = 0) -> dict:
    """Zero whole units of smallest L2 norm in each layer, in place.

    ``dim=0`` (default) prunes *output* units: rows of the weight, a neuron
    ``W[j, :]`` of a ``Linear (out, in)`` or a filter ``W[j]`` of a ``Conv2d
    (out, in, kH, kW)``, together with their bias entries (``bias_mask``): the
    unit then outputs exactly 0 for any input. ``dim=1`` prunes *input* units:
    columns ``W[:, j]``, an input feature or input channel the layer stops
    reading (biases untouched). The ``round(prune_ratio * units)`` units of
    smallest norm (over every other axis) are zeroed; masks are kept as
    ``weight_mask``/``bias_mask`` (see :class:`MaskedOptimizer`).

    Args:
        model: a Module.
        prune_ratio: fraction of units to remove per layer, in [0, 1).
        skip_output_layer: leave the last layer alone (its outputs are the classes).
        dim: 0 for output units (rows), 1 for input units (columns).

    Returns:
        ``{layer name: sorted list of pruned unit indices}``.
    """
    prune_ratio = _check_fraction(prune_ratio, "prune_ratio")
    if dim not in (0, 1) or isinstance(dim, bool):
        raise ValueError(
            f"structured_prune: argument 'dim' must be 0 (output units) or 1 (input units), got {dim!r}"
        )
    ### BEGIN SOLUTION
    layers = prunable_layers(model)
    if skip_output_layer:
        layers = layers[:-1]
    report = {}
    for name, module in layers:
        w = module.weight.data
        other = tuple(i for i in range(w.ndim) if i != dim)
        norms = np.sqrt((w.astype(np.float64) ** 2).sum(axis=other))  # one norm per unit
        k = int(round(prune_ratio * norms.size))
        pruned = np.sort(np.argsort(norms, kind="stable")[:k])
        keep_units = np.ones(norms.size, dtype=bool)
        keep_units[pruned] = False
        shape = [1] * w.ndim
        shape[dim] = -1  # broadcast the per-unit decision along the unit's axis
        _set_mask(module, "weight", np.broadcast_to(keep_units.reshape(shape), w.shape).copy())
        if dim == 0 and getattr(module, "bias", None) is not None:
            _set_mask(module, "bias", keep_units.reshape(module.bias.shape))
        report[name] = pruned.tolist()
    return report
    ### END SOLUTION


def remove_masks(model) -> None:
    """Forget the pruning masks (weights keep their current values and may grow back if trained)."""
    for _, module in prunable_layers(model):
        for attr in ("weight_mask", "bias_mask"):
            if attr in vars(module):
                delattr(module, attr)


class MaskedOptimizer:
    """Wrap an optimizer so pruned weights stay exactly zero during fine-tuning.

    ``step()`` zeroes the gradients of masked entries (so momentum/Adam state
    never accumulates there), runs the wrapped optimizer's step, then
    multiplies every weight by its mask again (weight decay or old momentum
    could otherwise move a zero).

    It offers the optimizer interface a training loop uses, forwarded to the
    wrapped optimizer: ``zero_grad()``, ``param_groups`` and ``lr`` (read *and*
    set, so a learning-rate schedule reaches the wrapped optimizer), ``params``,
    ``step_count``, ``state_dict()`` and ``load_state_dict()``.

    Args:
        optimizer: an optimizer with ``step()`` and ``zero_grad()`` (e.g. ``SGD``, ``Adam``).
        model: the pruned model whose masks to enforce.

    Attributes:
        optimizer: the wrapped optimizer.
        model: the model whose masks are enforced.
    """

    def __init__(self, optimizer, model):
        for method in ("step", "zero_grad"):
            if not callable(getattr(optimizer, method, None)):
                raise ValueError(
                    f"MaskedOptimizer: argument 'optimizer' must have a {method}() method, "
                    f"got {type(optimizer).__name__}"
                )
        if not isinstance(model, Module):
            raise ValueError(
                f"MaskedOptimizer: argument 'model' must be a Module, got {type(model).__name__}"
            )
        self.optimizer = optimizer
        self.model = model

    def step(self) -> None:
        ### BEGIN SOLUTION
        apply_masks(self.model)  # masks the gradients too
        self.optimizer.step()
        apply_masks(self.model)
        ### END SOLUTION

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    @property
    def lr(self) -> float:
        """The wrapped optimizer's learning rate; assigning it sets the wrapped optimizer's."""
        return self.optimizer.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.optimizer.lr = value

    @property
    def param_groups(self) -> list:
        """The wrapped optimizer's parameter groups (the same list: a schedule writing ``lr`` reaches it)."""
        return self.optimizer.param_groups

    @property
    def params(self) -> list:
        return self.optimizer.params

    @property
    def step_count(self) -> int:
        return self.optimizer.step_count

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)

    def __repr__(self) -> str:
        return f"MaskedOptimizer({self.optimizer!r})"


def low_rank_approximate(weight, rank_ratio: float):
    """Best rank-``r`` factorization ``W ~ A @ B`` by truncated SVD.

    ``W = U S V^T``; keep the ``r = max(1, round(rank_ratio * min(m, n)))``
    largest singular values: ``A = U_r S_r`` ``(m, r)``, ``B = V_r^T`` ``(r, n)``.

    Args:
        weight: Tensor or array ``(m, n)``.
        rank_ratio: fraction of the full rank to keep, in (0, 1].

    Returns:
        ``(A, B, info)``: float32 arrays and a dict with ``rank``,
        ``original_params`` (``m n``), ``factored_params`` (``r (m + n)``),
        ``compression_ratio`` and ``relative_error`` (``||W - AB||_F / ||W||_F``).
    """
    ### BEGIN SOLUTION
    w = np.asarray(getattr(weight, "data", weight), dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"low_rank_approximate: weight must be 2-D, got shape {w.shape}")
    if isinstance(rank_ratio, bool) or not isinstance(rank_ratio, (int, float)) or not 0 < rank_ratio <= 1:
        raise ValueError(f"rank_ratio must be in (0, 1], got {rank_ratio!r}")
    m, n = w.shape
    rank = max(1, int(round(rank_ratio * min(m, n))))
    u, s, vt = np.linalg.svd(w, full_matrices=False)  # u (m, k), s (k,), vt (k, n)
    a = (u[:, :rank] * s[:rank]).astype(np.float32)  # (m, r): scale columns by singular values
    b = vt[:rank].astype(np.float32)  # (r, n)
    norm = np.linalg.norm(w)
    info = {
        "rank": rank,
        "original_params": m * n,
        "factored_params": rank * (m + n),
        "compression_ratio": (m * n) / (rank * (m + n)),
        "relative_error": float(np.linalg.norm(w - a.astype(np.float64) @ b) / norm) if norm > 0 else 0.0,
    }
    return a, b, info
    ### END SOLUTION


class LowRankLinear(Module):
    """A linear layer replaced by two thin ones: ``y = x B^T A^T + b`` (trainable).

    With the weight ``W (out, in) ~ A (out, r) @ B (r, in)`` from
    :func:`low_rank_approximate`, ``x W^T = (x B^T) A^T``: ``first`` is a
    ``Linear(in, r)`` holding ``B`` and ``second`` a ``Linear(r, out)`` holding
    ``A`` and the original bias.

    Args:
        linear: the trained linear layer to factor (a ``weight (out, in)`` and ``bias``).
        rank_ratio: as in :func:`low_rank_approximate`.

    Cost: ``2 M r (in + out)`` FLOPs instead of ``2 M in out``.
    """

    def __init__(self, linear, rank_ratio: float):
        super().__init__()
        a, b, self.info = low_rank_approximate(linear.weight, rank_ratio)  # a (out, r), b (r, in)
        self.in_features, self.out_features = int(linear.in_features), int(linear.out_features)
        self.rank = self.info["rank"]
        self.first = Linear(self.in_features, self.rank, bias=False)
        self.second = Linear(self.rank, self.out_features, bias=linear.bias is not None)
        self.first.weight.data[...] = b  # (r, in)
        self.second.weight.data[...] = a  # (out, r)
        if linear.bias is not None:
            self.second.bias.data[...] = linear.bias.data

    def forward(self, x) -> Tensor:
        return self.second(self.first(x))


class KnowledgeDistillation:
    """Train ``student`` to imitate ``teacher`` (Hinton, Vinyals and Dean, 2015).

    The loss, for a batch of ``N`` rows of logits ``s`` (student), ``t``
    (teacher) and integer labels ``y``, temperature ``T`` and weight ``alpha``::

        p_t  = softmax(t / T)                 (teacher's softened distribution, constant)
        KL   = (1/N) sum_i sum_c p_t[i,c] * (log p_t[i,c] - log_softmax(s / T)[i,c])
        CE   = (1/N) sum_i -log_softmax(s)[i, y_i]
        loss = alpha * T^2 * KL + (1 - alpha) * CE

    The ``T^2`` factor keeps the soft term's gradient magnitude independent of
    ``T`` (its gradients scale like ``1/T^2``). This equals PyTorch's
    ``alpha * T**2 * kl_div(log_softmax(s/T), softmax(t/T), reduction="batchmean")
    + (1 - alpha) * cross_entropy(s, y)``.

    Args:
        teacher, student: Modules producing logits ``(N, C)``.
        temperature: ``T > 0``; larger values soften both distributions.
        alpha: weight of the soft (teacher) term, in [0, 1].
    """

    def __init__(self, teacher, student, temperature: float = 3.0, alpha: float = 0.7):
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.alpha = _check_fraction(alpha, "alpha", allow_one=True)
        self.teacher, self.student, self.temperature = teacher, student, float(temperature)

    def distillation_loss(self, student_logits, teacher_logits, labels) -> Tensor:
        """The scalar loss above; differentiable with respect to ``student_logits``.

        Args:
            student_logits: Tensor ``(N, C)``.
            teacher_logits: Tensor or array ``(N, C)`` (treated as a constant).
            labels: ints ``(N,)`` in ``[0, C)``.
        """
        s = student_logits if isinstance(student_logits, Tensor) else Tensor(student_logits)
        t = np.asarray(getattr(teacher_logits, "data", teacher_logits), dtype=s.dtype)
        y = np.asarray(getattr(labels, "data", labels)).astype(np.int64).reshape(-1)
        if s.ndim != 2 or t.shape != s.shape:
            raise ValueError(
                f"distillation_loss: student logits {s.shape} and teacher logits {t.shape} must be (N, C)"
            )
        n, c = s.shape
        if y.shape != (n,) or (y.size and (y.min() < 0 or y.max() >= c)):
            raise ValueError(f"distillation_loss: labels must be {n} ints in [0, {c}), got shape {y.shape}")
        ### BEGIN SOLUTION
        temp = self.temperature
        with no_grad():  # the teacher is a constant target
            log_p_t = log_softmax(Tensor(t / temp), dim=-1)
            p_t = softmax(Tensor(t / temp), dim=-1)
        kl = (p_t * (log_p_t - log_softmax(s / temp, dim=-1))).sum() / n
        return kl * (self.alpha * temp**2) + cross_entropy(s, y) * (1.0 - self.alpha)
        ### END SOLUTION

    def train_step(self, inputs, labels, optimizer) -> float:
        """One distillation step: teacher forward (no grad), student forward, loss, backward, step."""
        ### BEGIN SOLUTION
        with no_grad():
            teacher_logits = self.teacher(inputs)
        loss = self.distillation_loss(self.student(inputs), teacher_logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return float(loss.item())
        ### END SOLUTION
