"""Module 16: compression, making a trained model smaller without retraining it from scratch.

Four classic tools:

* **Magnitude pruning** (unstructured): zero the weights of smallest ``|w|``
  in each layer. Trained networks tolerate high sparsity, but the zeros are
  scattered, so a dense matmul is no faster; the win is in storage
  (sparse formats) and specialised kernels.
* **Structured pruning**: remove whole output neurons (``Linear`` columns) or
  channels (``Conv2d`` filters) of smallest L2 norm. Coarser, so accuracy
  drops sooner, but the layer can then be physically shrunk: real speedups.
* **Low-rank approximation**: replace ``W (m, n)`` by ``A (m, r) @ B (r, n)``
  from a truncated SVD; ``r (m + n)`` numbers instead of ``m n``. By the
  Eckart-Young theorem it is the best rank-``r`` approximation, with error
  ``||W - A B||_F = sqrt(sum of the discarded singular values squared)``.
* **Knowledge distillation**: train a small *student* to match the softened
  output distribution of a large *teacher* (its "dark knowledge": which wrong
  classes it finds plausible), mixed with the usual hard-label loss.

Pruning masks persist: each pruned layer keeps ``weight_mask`` (and
``bias_mask`` for structured pruning) as attributes, and
:class:`MaskedOptimizer` wraps any optimizer so that masked gradients are
zeroed before each ``step()`` and the masks re-applied after it. Fine-tuning a
pruned model thus keeps its zeros at zero, with no change to foundation classes.
"""

from __future__ import annotations

import numpy as np
from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import Linear, Module
from tinytorch.core.tensor import Tensor


def _check_fraction(value, name: str, allow_one: bool = False) -> float:
    hi_ok = (lambda v: v <= 1.0) if allow_one else (lambda v: v < 1.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 <= value and hi_ok(value)):
        raise ValueError(f"{name} must be a number in [0, {'1]' if allow_one else '1)'}, got {value!r}")
    return float(value)


def prunable_layers(model) -> list:
    """``(name, module)`` of every layer with a weight matrix/kernel (``weight`` of ndim >= 2).

    Embedding tables are skipped: they are looked up, not multiplied, so
    zeroing entries saves no arithmetic.
    """
    if not isinstance(model, Module):
        raise ValueError(f"model must be a Module, got {type(model).__name__}")
    found = []

    def visit(module, prefix):
        weight = getattr(module, "weight", None)
        if isinstance(weight, Tensor) and weight.ndim >= 2 and "Embedding" not in type(module).__name__:
            found.append((prefix.rstrip(".") or type(module).__name__, module))
        for name, child in module.named_children():
            visit(child, f"{prefix}{name}.")

    visit(model, "")
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


def structured_prune(model, prune_ratio: float, skip_output_layer: bool = True) -> dict:
    """Zero whole output neurons/channels of smallest L2 norm in each layer, in place.

    For a ``Linear`` weight ``(in, out)`` an output neuron is a column
    ``W[:, j]``; for a convolution weight ``(out, in, kh, kw)`` an output channel
    is ``W[j]``. The ``round(prune_ratio * out)`` smallest-norm ones are zeroed,
    together with their bias entries (masks ``weight_mask``/``bias_mask``).

    Args:
        model: a Module.
        prune_ratio: fraction of output units to remove per layer, in [0, 1).
        skip_output_layer: leave the last layer alone (its outputs are the classes).

    Returns:
        ``{layer name: list of pruned output indices}``.
    """
    ### BEGIN SOLUTION
    prune_ratio = _check_fraction(prune_ratio, "prune_ratio")
    layers = prunable_layers(model)
    if skip_output_layer:
        layers = layers[:-1]
    report = {}
    for name, module in layers:
        w = module.weight.data
        axis = w.ndim - 1 if isinstance(module, Linear) else 0  # the output-unit axis
        other = tuple(i for i in range(w.ndim) if i != axis)
        norms = np.sqrt((w.astype(np.float64) ** 2).sum(axis=other))  # (out,)
        k = int(round(prune_ratio * norms.size))
        pruned = np.sort(np.argsort(norms, kind="stable")[:k])
        keep_units = np.ones(norms.size, dtype=bool)
        keep_units[pruned] = False
        shape = [1] * w.ndim
        shape[axis] = -1
        _set_mask(module, "weight", np.broadcast_to(keep_units.reshape(shape), w.shape).copy())
        if getattr(module, "bias", None) is not None:
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
    could otherwise move a zero). Every other attribute is the wrapped optimizer's.

    Args:
        optimizer: any object with ``step()`` and ``zero_grad()`` (e.g. ``SGD``, ``Adam``).
        model: the pruned model whose masks to enforce.
    """

    def __init__(self, optimizer, model):
        if not callable(getattr(optimizer, "step", None)):
            raise ValueError(f"optimizer must have a step() method, got {type(optimizer).__name__}")
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

    def __getattr__(self, name):
        return getattr(self.optimizer, name)


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
    """A ``Linear`` replaced by two thin ones: ``y = (x @ A) @ B + b`` (trainable).

    Args:
        linear: the trained ``Linear`` to factor.
        rank_ratio: as in :func:`low_rank_approximate`.

    Cost: ``2 M r (in + out)`` FLOPs instead of ``2 M in out``.
    """

    def __init__(self, linear: Linear, rank_ratio: float):
        super().__init__()
        a, b, self.info = low_rank_approximate(linear.weight, rank_ratio)
        self.in_features, self.out_features, self.rank = (
            linear.in_features,
            linear.out_features,
            self.info["rank"],
        )
        self.first = Linear(self.in_features, self.rank, bias=False)
        self.second = Linear(self.rank, self.out_features, bias=linear.bias is not None)
        self.first.weight.data[...] = a
        self.second.weight.data[...] = b
        if linear.bias is not None:
            self.second.bias.data[...] = linear.bias.data

    def forward(self, x) -> Tensor:
        return self.second(self.first(x))


def _softmax_np(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)  # stable: exp of values <= 0
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


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
        ### BEGIN SOLUTION
        s = student_logits if isinstance(student_logits, Tensor) else Tensor(student_logits)
        t = np.asarray(getattr(teacher_logits, "data", teacher_logits), dtype=np.float64)
        y = np.asarray(getattr(labels, "data", labels)).astype(np.int64).reshape(-1)
        if s.ndim != 2 or t.shape != s.shape:
            raise ValueError(
                f"distillation_loss: student logits {s.shape} and teacher logits {t.shape} must be (N, C)"
            )
        n, c = s.shape
        if y.shape != (n,) or (y.size and (y.min() < 0 or y.max() >= c)):
            raise ValueError(f"distillation_loss: labels must be {n} ints in [0, {c}), got shape {y.shape}")
        temp = self.temperature
        p_t = _softmax_np(t / temp)
        log_p_t = np.log(np.maximum(p_t, 1e-30))  # p log p -> 0 as p -> 0
        log_p_s = (s / temp).log_softmax(-1)
        kl = (Tensor(p_t.astype(np.float32)) * (Tensor(log_p_t.astype(np.float32)) - log_p_s)).sum() / n
        one_hot = np.zeros((n, c), dtype=np.float32)
        one_hot[np.arange(n), y] = 1.0
        ce = -(Tensor(one_hot) * s.log_softmax(-1)).sum() / n
        return kl * (self.alpha * temp**2) + ce * (1.0 - self.alpha)
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
