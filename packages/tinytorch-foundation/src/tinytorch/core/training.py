"""Module 07 - Training: the loop that ties model, loss and optimizer together.

* :class:`Trainer` runs epochs over any iterable of ``(x, y)`` batches,
  evaluates without building graphs, and saves/loads checkpoints.
* :class:`CosineSchedule` anneals the learning rate from ``max_lr`` to ``min_lr``.
* :func:`clip_grad_norm` rescales gradients whose global L2 norm is too large.

Checkpoints are ``.npz`` archives of plain arrays (no pickle: loading one can
not run code), written to a temporary file in the same directory and renamed
over the target, so a crash never leaves a half-written checkpoint. Loading
validates model *and* optimizer state before changing anything.
"""

from __future__ import annotations

import math
import os
import tempfile
import zipfile

import numpy as np
from tinytorch.core.autograd import no_grad
from tinytorch.core.optimizers import check_hyperparameter
from tinytorch.core.tensor import Tensor

__all__ = ["Trainer", "CosineSchedule", "clip_grad_norm"]

_CHECKPOINT_VERSION = 1


class CosineSchedule:
    """Cosine annealing: ``lr(e) = min_lr + (max_lr - min_lr) (1 + cos(pi e / total_epochs)) / 2``.

    Starts at ``max_lr`` (epoch 0), ends at ``min_lr`` (epoch ``total_epochs``
    and later).

    Args:
        max_lr: learning rate at epoch 0.
        min_lr: learning rate at the end (0 <= min_lr <= max_lr).
        total_epochs: length of the schedule (>= 1).
    """

    def __init__(self, max_lr: float = 0.1, min_lr: float = 0.01, total_epochs: int = 100) -> None:
        if (
            isinstance(total_epochs, bool)
            or not isinstance(total_epochs, (int, np.integer))
            or total_epochs < 1
        ):
            raise ValueError(
                f"CosineSchedule: argument 'total_epochs' must be an int >= 1, got {total_epochs!r}"
            )
        self.max_lr = check_hyperparameter("CosineSchedule", "max_lr", max_lr)
        self.min_lr = check_hyperparameter("CosineSchedule", "min_lr", min_lr, high=self.max_lr)
        self.total_epochs = int(total_epochs)

    def get_lr(self, epoch: int) -> float:
        """Learning rate for ``epoch`` (clamped to [0, total_epochs])."""
        ### BEGIN SOLUTION
        progress = min(max(epoch, 0), self.total_epochs) / self.total_epochs
        return self.min_lr + 0.5 * (self.max_lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))
        ### END SOLUTION

    __call__ = get_lr


def clip_grad_norm(parameters, max_norm: float) -> float:
    """Scale all gradients by ``max_norm / (norm + 1e-6)`` when their global L2 norm exceeds ``max_norm``.

    ``norm = sqrt(sum_p ||grad_p||^2)`` over every parameter that has a gradient
    (as ``torch.nn.utils.clip_grad_norm_``).

    Args:
        parameters: iterable of Tensors.
        max_norm: largest allowed global norm (> 0).

    Returns:
        The global norm *before* clipping (a float).

    Cost: one pass over every gradient (two when clipping).
    """
    ### BEGIN SOLUTION
    if not max_norm > 0:
        raise ValueError(f"clip_grad_norm: argument 'max_norm' must be > 0, got {max_norm}")
    grads = [p for p in parameters if p.grad is not None]
    total = math.sqrt(sum(float(np.dot(p.grad.data.ravel(), p.grad.data.ravel())) for p in grads))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for p in grads:
            # A new array, not `*=`: a gradient array may be shared with another tensor.
            p.grad.data = p.grad.data * np.asarray(scale, dtype=p.grad.data.dtype)
    return total
    ### END SOLUTION


def _as_input(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def _targets(y) -> np.ndarray:
    return y.data if isinstance(y, Tensor) else np.asarray(y)


class Trainer:
    """Train and evaluate a model.

    Args:
        model: a Module.
        optimizer: an Optimizer over ``model.parameters()``.
        loss_fn: callable ``loss_fn(output, target) -> scalar Tensor``.
        scheduler: optional object with ``get_lr(epoch)``; at each epoch start it sets the learning
            rate of every parameter group (``optimizer.param_groups[i]["lr"]``).
        grad_clip_norm: optional max global gradient norm (see :func:`clip_grad_norm`).

    Attributes:
        epoch (int): completed training epochs.
        history (dict): lists ``train_loss``, ``eval_loss``, ``eval_accuracy``, ``lr``.
    """

    def __init__(self, model, optimizer, loss_fn, scheduler=None, grad_clip_norm=None) -> None:
        if grad_clip_norm is not None:
            grad_clip_norm = check_hyperparameter("Trainer", "grad_clip_norm", grad_clip_norm, low_open=True)
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.scheduler = scheduler
        self.grad_clip_norm = grad_clip_norm
        self.epoch = 0
        self.history = {"train_loss": [], "eval_loss": [], "eval_accuracy": [], "lr": []}

    def train_step(self, x, y) -> float:
        """One forward, backward and update on a batch; returns the batch loss."""
        ### BEGIN SOLUTION
        output = self.model(_as_input(x))
        loss = self.loss_fn(output, y)
        self.optimizer.zero_grad()
        loss.backward()
        if self.grad_clip_norm is not None:
            clip_grad_norm(self.model.parameters(), self.grad_clip_norm)
        self.optimizer.step()
        return float(loss.data)
        ### END SOLUTION

    def train_epoch(self, batches) -> float:
        """Train on every ``(x, y)`` of ``batches``; returns the sample-weighted mean loss.

        Sets the learning rate from the scheduler (if any) for this epoch first.
        """
        ### BEGIN SOLUTION
        if self.scheduler is not None:
            lr = check_hyperparameter("Trainer", "scheduler learning rate", self.scheduler.get_lr(self.epoch))
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        self.model.train()
        total, count = 0.0, 0
        for x, y in batches:
            n = len(x)
            total += self.train_step(x, y) * n
            count += n
        if count == 0:
            raise ValueError("train_epoch: argument 'batches' yielded no batch")
        mean_loss = total / count
        self.epoch += 1
        self.history["train_loss"].append(mean_loss)
        self.history["lr"].append(self.optimizer.param_groups[0]["lr"])
        return mean_loss
        ### END SOLUTION

    def evaluate(self, batches):
        """Mean loss (and accuracy for class targets) without gradients, in eval mode.

        Returns:
            ``(loss, accuracy)``; accuracy is the fraction of ``argmax(output, -1) == y``
            when ``y`` holds integer class indices, else None.
        """
        ### BEGIN SOLUTION
        was_training = self.model.training
        self.model.eval()
        total, correct, count, classified = 0.0, 0, 0, True
        try:
            with no_grad():
                for x, y in batches:
                    output = self.model(_as_input(x))
                    n = len(x)
                    total += float(self.loss_fn(output, y).data) * n
                    count += n
                    t = _targets(y)
                    if t.dtype.kind in "iu" and t.shape == output.shape[:-1]:
                        correct += int((output.data.argmax(axis=-1) == t).sum())
                    else:
                        classified = False
        finally:
            self.model.train(was_training)
        if count == 0:
            raise ValueError("evaluate: argument 'batches' yielded no batch")
        loss = total / count
        accuracy = correct / count if classified else None
        self.history["eval_loss"].append(loss)
        self.history["eval_accuracy"].append(accuracy)
        return loss, accuracy
        ### END SOLUTION

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self, path) -> None:
        """Write model and optimizer state and the epoch to ``path`` (.npz), atomically.

        The archive is written to a temporary file in the same directory and renamed over
        ``path``: a crash leaves the old checkpoint or the new one, never half of one. The file
        gets the permissions of any file the user creates (0666 minus the umask).
        """
        ### BEGIN SOLUTION
        arrays = {"meta/version": np.asarray(_CHECKPOINT_VERSION), "meta/epoch": np.asarray(self.epoch)}
        for name, value in self.model.state_dict().items():
            arrays[f"model/{name}"] = np.asarray(value)
        for name, value in self.optimizer.state_dict().items():
            arrays[f"optimizer/{name}"] = np.asarray(value)
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".ckpt-", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give it a normal file's mode
            os.replace(tmp, path)  # atomic on POSIX and Windows
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        ### END SOLUTION

    def load_checkpoint(self, path) -> None:
        """Restore model, optimizer and epoch from ``path``, all or nothing.

        The whole file is read and checked first (format, version, epoch, then the model's and
        the optimizer's own validation); if anything is wrong, neither the model nor the
        optimizer nor the epoch changes.

        Raises:
            ValueError: naming ``path`` and every problem found.
        """
        ### BEGIN SOLUTION
        path = os.fspath(path)
        arrays = read_checkpoint(path)
        version, epoch = arrays.get("meta/version"), arrays.get("meta/epoch")
        if version is None or epoch is None:
            raise ValueError(
                f"load_checkpoint: {path} is not a TinyTorch checkpoint (no meta/version or meta/epoch)"
            )
        if version.ndim or version.dtype.kind not in "iu" or int(version) != _CHECKPOINT_VERSION:
            raise ValueError(
                f"load_checkpoint: {path} has checkpoint version {version.tolist()!r}; "
                f"this TinyTorch reads version {_CHECKPOINT_VERSION}"
            )
        if epoch.ndim or epoch.dtype.kind not in "iu" or int(epoch) < 0:
            raise ValueError(
                f"load_checkpoint: {path}: meta/epoch must be an integer >= 0, got {epoch.tolist()!r}"
            )
        model_state = {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}
        optim_state = {k[len("optimizer/") :]: v for k, v in arrays.items() if k.startswith("optimizer/")}
        backup = self.model.state_dict()
        try:
            self.model.load_state_dict(model_state)  # validates first; unchanged if it raises
            self.optimizer.load_state_dict(optim_state)  # the same
        except ValueError as exc:
            self.model.load_state_dict(backup)  # keep the pair consistent: undo the model load
            raise ValueError(f"load_checkpoint: {path}: {exc}") from None
        self.epoch = int(epoch)
        ### END SOLUTION


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_checkpoint(path) -> dict:
    """Every array of the ``.npz`` checkpoint at ``path`` (no pickle), or a ValueError naming the file."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ValueError(f"load_checkpoint: cannot read {path}: {exc.strerror or exc}") from None
    if magic != b"PK\x03\x04":  # every .npz is a zip archive
        what = "an empty file" if not magic else "not a .npz archive"
        raise ValueError(f"load_checkpoint: {path} is not a TinyTorch checkpoint ({what})")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as exc:
        raise ValueError(
            f"load_checkpoint: {path} is damaged or truncated ({type(exc).__name__}: {exc})"
        ) from None
