"""Module 08: datasets, batching and batch transforms.

Training loops consume *mini-batches*: a random subset of the data, stacked
into one array per field so that the model processes them in one vectorized
pass. This module provides

* :class:`Dataset`: anything with ``__len__`` and ``__getitem__(i)`` returning
  one sample (a tuple of fields);
* :class:`TensorDataset`: a dataset backed by arrays that share their first
  axis. It can gather a whole batch with one fancy-indexing operation per
  field (``get_batch``), so the loader never loops over samples in Python;
* :class:`DataLoader`: shuffles (reproducibly, with ``seed``), slices the index
  permutation into batches, gathers each batch and applies a transform;
* batch transforms for images ``(N, C, H, W)``: :class:`Normalize`,
  :class:`RandomHorizontalFlip`, :class:`RandomCrop`, :class:`Compose`. They
  act on a whole batch at once (one random draw per sample, vectorized).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from tinytorch.core.tensor import Tensor


def _as_array(x) -> np.ndarray:
    """The ndarray behind a Tensor, or ``np.asarray(x)``."""
    return x.data if isinstance(x, Tensor) else np.asarray(x)


class Dataset:
    """Abstract dataset: ``len(ds)`` samples, ``ds[i]`` is a tuple of fields.

    Subclasses implement ``__len__`` and ``__getitem__``. ``get_batch(indices)``
    gathers several samples stacked along a new first axis; the default loops
    over samples, array-backed datasets override it with one vectorized gather.
    """

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __getitem__(self, index: int):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        """Samples ``indices`` stacked field by field: a tuple of arrays with first axis ``len(indices)``.

        Generic fallback: one ``__getitem__`` call per sample (a Python loop), then ``np.stack``.
        """
        samples = [self[int(i)] for i in indices]
        if not samples:
            raise ValueError("get_batch: indices must not be empty")
        if not isinstance(samples[0], tuple):
            samples = [(s,) for s in samples]
        return tuple(np.stack([_as_array(s[k]) for s in samples]) for k in range(len(samples[0])))


class TensorDataset(Dataset):
    """Dataset of arrays (or Tensors) that share their first dimension.

    Sample ``i`` is ``tuple(t[i] for t in tensors)``. Batches are gathered with
    one fancy index per field: O(batch x sample size) copying, no Python loop.

    Args:
        *tensors: Tensors or array-likes, all with the same length ``N`` along axis 0.

    Example::

        ds = TensorDataset(images, labels)   # (N, 1, 28, 28), (N,)
        x0, y0 = ds[0]
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        arrays = [_as_array(t) for t in tensors]
        for a in arrays:
            if a.ndim == 0:
                raise ValueError("TensorDataset: every tensor needs a first (sample) dimension, got a scalar")
        n = arrays[0].shape[0]
        if any(a.shape[0] != n for a in arrays):
            shapes = ", ".join(str(a.shape) for a in arrays)
            raise ValueError(f"TensorDataset: tensors must share their first dimension, got shapes {shapes}")
        self.arrays = tuple(arrays)

    def __len__(self) -> int:
        return self.arrays[0].shape[0]

    def __getitem__(self, index):
        ### BEGIN SOLUTION
        n = len(self)
        if isinstance(index, (int, np.integer)) and not -n <= index < n:
            raise IndexError(f"TensorDataset index {index} is out of range for {n} samples")
        return tuple(Tensor(a[index]) for a in self.arrays)
        ### END SOLUTION

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        """Gather ``indices`` from every field at once: ``tuple(a[indices] for a in arrays)``."""
        ### BEGIN SOLUTION
        return tuple(a[indices] for a in self.arrays)
        ### END SOLUTION


class DataLoader:
    """Iterate over a dataset in mini-batches.

    Each pass (epoch) visits every sample exactly once: the indices
    ``0..N-1`` (shuffled with a fresh permutation per epoch when ``shuffle``)
    are cut into consecutive chunks of ``batch_size``; the last chunk is
    smaller unless ``drop_last`` drops it. Each batch is a tuple of Tensors,
    one per dataset field; ``transform`` (if given) is applied to the first
    field (the inputs) of the whole batch.

    Args:
        dataset: a :class:`Dataset` (or any object with ``__len__``/``__getitem__``).
        batch_size: samples per batch (positive int).
        shuffle: reshuffle the sample order at every epoch.
        drop_last: drop the final incomplete batch.
        seed: seed of the loader's random generator (shuffling and random
            transforms); two loaders with the same seed yield identical batches.
        transform: callable applied to the input batch array; transforms from
            this module also accept ``rng=`` and receive the loader's generator.

    ``len(loader)`` is the number of batches per epoch.
    """

    def __init__(
        self,
        dataset,
        batch_size: int = 32,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        transform: Callable | None = None,
    ):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if transform is not None and not callable(transform):
            raise ValueError(f"transform must be callable, got {type(transform).__name__}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self.transform = transform
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _gather(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        getter = getattr(self.dataset, "get_batch", None)
        if getter is not None:
            return tuple(getter(indices))
        return Dataset.get_batch(self.dataset, indices)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        ### BEGIN SOLUTION
        n = len(self.dataset)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        stop = (n // self.batch_size) * self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            fields = list(self._gather(order[start : start + self.batch_size]))
            if self.transform is not None:
                fields[0] = _call_transform(self.transform, fields[0], self.rng)
            yield tuple(Tensor(f) for f in fields)
        ### END SOLUTION


def _call_transform(transform: Callable, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Call a transform, passing ``rng`` to the transforms of this module (plain callables get only ``x``)."""
    if isinstance(transform, BatchTransform):
        return transform(x, rng=rng)
    return _as_array(transform(x))


# ---------------------------------------------------------------------------
# Batch transforms
# ---------------------------------------------------------------------------


class BatchTransform:
    """Base class of batch transforms: ``t(x, rng=None)`` maps a batch to a batch.

    ``x`` is an ndarray or Tensor; the result has the same type. Random
    transforms draw from ``rng`` when given (the DataLoader passes its own,
    so ``seed`` makes augmentation reproducible), else from a generator
    seeded by the transform's own ``seed``.
    """

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    def __call__(self, x, rng: np.random.Generator | None = None):
        is_tensor = isinstance(x, Tensor)
        out = self.apply(_as_array(x), self.rng if rng is None else rng)
        return Tensor(out) if is_tensor else out

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Normalize(BatchTransform):
    """Per-channel standardization: ``out[:, c] = (x[:, c] - mean[c]) / std[c]``.

    Args:
        mean: scalar or sequence of length C.
        std: scalar or sequence of length C, all positive.

    Shape: input ``(N, C, ...)`` (channel axis 1) or ``(N,)``/any shape with scalar mean/std.
    """

    def __init__(self, mean, std):
        super().__init__()
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        if self.mean.ndim > 1 or self.std.ndim > 1:
            raise ValueError(
                f"Normalize: mean and std must be scalars or 1-D, "
                f"got shapes {self.mean.shape} and {self.std.shape}"
            )
        if self.mean.ndim == 1 and self.std.ndim == 1 and self.mean.size != self.std.size:
            raise ValueError(f"Normalize: mean {self.mean.shape} and std {self.std.shape} differ in length")
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {self.std.tolist()}")

    def apply(self, x, rng):
        ### BEGIN SOLUTION
        mean, std = self.mean, self.std
        if mean.ndim == 1 or std.ndim == 1:
            channels = max(mean.size, std.size)
            if x.ndim < 2 or x.shape[1] != channels:
                raise ValueError(
                    f"Normalize: {channels} channel statistics do not match "
                    f"input shape {x.shape} (channel axis 1)"
                )
            shape = (1, channels) + (1,) * (x.ndim - 2)  # (1, C, 1, ..., 1): broadcast over N and space
            mean = mean.reshape(shape) if mean.ndim else mean
            std = std.reshape(shape) if std.ndim else std
        return ((x - mean) / std).astype(np.result_type(x.dtype, np.float32), copy=False)
        ### END SOLUTION

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class RandomHorizontalFlip(BatchTransform):
    """Mirror each image left-right (last axis) independently with probability ``p``.

    Shape: ``(N, ..., W)``; one Bernoulli draw per sample.
    """

    def __init__(self, p: float = 0.5, seed: int | None = None):
        super().__init__(seed)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def apply(self, x, rng):
        ### BEGIN SOLUTION
        if x.ndim < 2:
            raise ValueError(f"RandomHorizontalFlip expects a batch (N, ..., W), got shape {x.shape}")
        flip = rng.random(x.shape[0]) < self.p
        flip = flip.reshape((-1,) + (1,) * (x.ndim - 1))  # (N, 1, ..., 1) broadcasts over each sample
        return np.where(flip, x[..., ::-1], x)
        ### END SOLUTION

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class RandomCrop(BatchTransform):
    """Zero-pad each image by ``padding`` then cut a random ``size`` window (one offset per sample).

    Args:
        size: int or (h, w) output size.
        padding: zeros added on every side of the two last axes before cropping.

    Shape: ``(N, ..., H, W) -> (N, ..., h, w)``. The windows are gathered from a
    strided view of the padded batch with one fancy index (no loop over samples).
    """

    def __init__(self, size, padding: int = 0, seed: int | None = None):
        super().__init__(seed)
        size = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
        if len(size) != 2 or any(int(s) < 1 for s in size):
            raise ValueError(f"RandomCrop: size must be a positive int or (h, w), got {size!r}")
        if padding < 0:
            raise ValueError(f"RandomCrop: padding must be >= 0, got {padding}")
        self.size = (int(size[0]), int(size[1]))
        self.padding = int(padding)

    def apply(self, x, rng):
        ### BEGIN SOLUTION
        h, w = self.size
        p = self.padding
        if x.ndim < 3:
            raise ValueError(f"RandomCrop expects a batch (N, ..., H, W), got shape {x.shape}")
        if p:
            x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(p, p), (p, p)])
        H, W = x.shape[-2:]
        if h > H or w > W:
            raise ValueError(f"RandomCrop: crop size {self.size} is larger than the padded input {x.shape}")
        n = x.shape[0]
        top = rng.integers(0, H - h + 1, size=n)
        left = rng.integers(0, W - w + 1, size=n)
        windows = sliding_window_view(x, (h, w), axis=(-2, -1))  # (N, ..., H-h+1, W-w+1, h, w)
        # Move the two window-position axes right after N so one fancy index picks each sample's window.
        windows = np.moveaxis(windows, (-4, -3), (1, 2))  # (N, H-h+1, W-w+1, ..., h, w)
        return np.ascontiguousarray(windows[np.arange(n), top, left])  # (N, ..., h, w)
        ### END SOLUTION

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class Compose(BatchTransform):
    """Apply transforms in order: ``Compose([a, b])(x) == b(a(x))`` (sharing one rng)."""

    def __init__(self, transforms: Sequence[Callable]):
        super().__init__()
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise ValueError(f"Compose: every transform must be callable, got {type(t).__name__}")

    def apply(self, x, rng):
        ### BEGIN SOLUTION
        for t in self.transforms:
            x = _call_transform(t, x, rng)
        return x
        ### END SOLUTION

    def __repr__(self):
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"
