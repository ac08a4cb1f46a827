"""Hidden tests of module 08 (dataloader): batching arithmetic and shuffling, against plain NumPy."""

from __future__ import annotations

import numpy as np
from tinytorch.core.tensor import Tensor
from tinytorch.data.loader import DataLoader, TensorDataset


def _batches(loader):
    return [tuple(np.asarray(getattr(t, "data", t)) for t in batch) for batch in loader]


def test_batch_sizes_and_order_without_shuffle():
    x = np.arange(22, dtype=np.float32).reshape(11, 2)
    y = np.arange(11)
    batches = _batches(DataLoader(TensorDataset(Tensor(x), Tensor(y)), batch_size=4))
    assert [b[0].shape[0] for b in batches] == [4, 4, 3]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    dropped = _batches(DataLoader(TensorDataset(Tensor(x), Tensor(y)), batch_size=4, drop_last=True))
    assert [b[0].shape[0] for b in dropped] == [4, 4]


def test_shuffled_epoch_is_a_permutation_that_keeps_pairs_together():
    x = np.arange(30, dtype=np.float32).reshape(15, 2)
    y = np.arange(15)
    loader = DataLoader(TensorDataset(Tensor(x), Tensor(y)), batch_size=4, shuffle=True, seed=7)
    batches = _batches(loader)
    seen_y = np.concatenate([b[1] for b in batches])
    seen_x = np.concatenate([b[0] for b in batches])
    assert sorted(seen_y.tolist()) == list(range(15)) and seen_y.tolist() != list(range(15))
    np.testing.assert_array_equal(seen_x, x[seen_y])  # each row stays with its label
