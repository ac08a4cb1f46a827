"""Small helpers the milestones share: mini-batches, a training loop, accuracy, summaries.

Only the foundation tier is used here (Tensor, losses, optimizers, no_grad), and
it is imported inside the functions so importing this file never needs a tier.
The training loop is written out on purpose: it is the five lines every course
teaches (forward, loss, zero_grad, backward, step).
"""

from __future__ import annotations

import numpy as np
from tinytorch.milestones.runner import Outcome, Skip


def batches(n: int, batch_size: int, rng: np.random.Generator | None):
    """Index arrays covering range(n) once, shuffled when ``rng`` is given."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def set_lr(optimizer, lr: float) -> None:
    """Set the learning rate of a tinytorch optimizer (attribute ``lr``, or PyTorch-style param_groups)."""
    while "optimizer" in getattr(optimizer, "__dict__", {}):  # unwrap a wrapper such as MaskedOptimizer
        optimizer = optimizer.__dict__["optimizer"]
    if hasattr(optimizer, "param_groups"):
        for group in optimizer.param_groups:
            group["lr"] = lr
    if hasattr(optimizer, "lr"):
        optimizer.lr = lr


def cosine_lr(max_lr: float, min_lr: float, epoch: int, total: int) -> float:
    """Cosine decay from max_lr (epoch 0) to min_lr (last epoch)."""
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + np.cos(np.pi * epoch / max(total - 1, 1)))


def train_classifier(
    ctx,
    model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 64,
    desc: str = "training",
    min_lr: float | None = None,
    wrap_optimizer=None,
) -> list[float]:
    """Adam + cross-entropy over shuffled mini-batches; returns the mean loss of each epoch.

    The learning rate follows a cosine decay to ``min_lr`` (default lr/20), which
    makes the final accuracy much less sensitive to the seed. ``wrap_optimizer``
    (optional) wraps the Adam instance, e.g. to keep pruned weights at zero.
    """
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.tensor import Tensor

    rng = np.random.default_rng(ctx.seed)
    loss_fn = CrossEntropyLoss()
    optimizer = Adam(model.parameters(), lr=lr)
    if wrap_optimizer is not None:
        optimizer = wrap_optimizer(optimizer)
    min_lr = lr / 20 if min_lr is None else min_lr
    model.train()
    history = []
    bar = ctx.progress(total=epochs, desc=desc)
    for epoch in bar:
        set_lr(optimizer, cosine_lr(lr, min_lr, epoch, epochs))
        total, count = 0.0, 0
        for idx in batches(len(x_train), batch_size, rng):
            logits = model(Tensor(x_train[idx]))
            loss = loss_fn(logits, Tensor(y_train[idx]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.item()) * len(idx)
            count += len(idx)
        history.append(total / count)
        ctx.curve(f"{desc} loss", history[-1], x_label="epoch")
        bar.set_postfix_str(f"loss {history[-1]:.3f}", refresh=False)
    return history


def predict(model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Class predictions (argmax of the logits) in eval mode without building a graph."""
    from tinytorch.core.autograd import no_grad
    from tinytorch.core.tensor import Tensor

    model.eval()
    out = []
    with no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(Tensor(x[start : start + batch_size]))
            out.append(np.asarray(logits.data).argmax(axis=-1))
    model.train()
    return np.concatenate(out) if out else np.zeros((0,), dtype=np.int64)


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    return float((predict(model, x) == y).mean())


def accuracy_outcome(model, x_test: np.ndarray, y_test: np.ndarray, threshold: float, history) -> Outcome:
    """The verdict of a classifier part: held-out accuracy against ``threshold``, with the last loss."""
    test_acc = accuracy(model, x_test, y_test)
    return Outcome(
        passed=test_acc >= threshold,
        measured=f"test accuracy {pct(test_acc)} (final loss {history[-1]:.3f})",
        metrics={"test_accuracy": test_acc, "final_loss": history[-1]},
    )


def count_parameters(model) -> int:
    return int(sum(np.asarray(p.data).size for p in model.parameters()))


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def load_dataset(ctx, name: str) -> dict:
    """A dataset from ``tinytorch.milestones.data``; a dataset that is not available skips the part."""
    from tinytorch.milestones import data

    loader = getattr(data, f"load_{name}")
    if name in ("mnist", "cifar10"):
        try:
            return loader(download=ctx.download)
        except data.DataUnavailable as exc:
            reason = str(exc)
            if "download" not in reason:
                reason += f" (run with --download, or `tito data download {name}`)"
            raise Skip(reason) from None
        except data.CacheError as exc:  # the machine's cache, not the model: skip, saying what to fix
            raise Skip(str(exc)) from None
    return loader()


def summary_lines(model, input_desc: str) -> list[str]:
    """The model's repr (a tree) indented, plus its parameter count."""
    lines = [f"    input: {input_desc}"]
    lines += ["    " + line for line in repr(model).splitlines()]
    lines.append(f"    parameters: {count_parameters(model):,}")
    return lines
