"""Small helpers the milestones share: mini-batches, training with Module 07's Trainer, accuracy, summaries.

Only the foundation tier is used here (Tensor, losses, optimizers, Trainer,
CosineSchedule, no_grad), and it is imported inside the functions so importing
this file never needs a tier. Every classifier milestone trains through the same
``Trainer`` a student writes in Module 07, so the milestones prove it end to end.
"""

from __future__ import annotations

import numpy as np
from tinytorch.milestones.runner import Outcome, Skip


def batches(n: int, batch_size: int, rng: np.random.Generator | None):
    """Index arrays covering range(n) once, shuffled when ``rng`` is given."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def fit(
    ctx,
    model,
    epoch_batches,
    *,
    epochs: int,
    lr: float,
    min_lr: float | None = None,
    desc: str = "training",
    optimizer=None,
) -> list[float]:
    """Train ``model`` for ``epochs`` with Module 07's Trainer; returns the mean loss of each epoch.

    Cross-entropy loss; Adam (or ``optimizer``, e.g. one that keeps pruned weights at zero);
    the learning rate follows Module 07's ``CosineSchedule`` from ``lr`` at the first epoch to
    ``min_lr`` (default lr/20) at the last, which makes the final accuracy much less sensitive
    to the seed. ``epoch_batches()`` returns one epoch's iterable of ``(x, y)`` batches.
    """
    from tinytorch.core.losses import CrossEntropyLoss
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.training import CosineSchedule, Trainer

    min_lr = lr / 20 if min_lr is None else min_lr
    schedule = CosineSchedule(max_lr=lr, min_lr=min_lr, total_epochs=max(epochs - 1, 1))  # min at the last
    trainer = Trainer(
        model, optimizer or Adam(model.parameters(), lr=lr), CrossEntropyLoss(), scheduler=schedule
    )
    bar = ctx.progress(total=epochs, desc=desc)
    for _ in bar:
        loss = trainer.train_epoch(epoch_batches())
        ctx.curve(f"{desc} loss", loss, x_label="epoch")
        bar.set_postfix_str(f"loss {loss:.3f}", refresh=False)
    return trainer.history["train_loss"]


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
    optimizer=None,
) -> list[float]:
    """:func:`fit` over shuffled mini-batches of in-memory arrays (a new order every epoch)."""
    rng = np.random.default_rng(ctx.seed)

    def epoch_batches():
        return ((x_train[idx], y_train[idx]) for idx in batches(len(x_train), batch_size, rng))

    return fit(ctx, model, epoch_batches, epochs=epochs, lr=lr, min_lr=min_lr, desc=desc, optimizer=optimizer)


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
