"""Module 08: Dataset, TensorDataset, DataLoader and batch transforms."""

from __future__ import annotations

import numpy as np
import pytest
from tinytorch.core.tensor import Tensor
from tinytorch.data.loader import (
    Compose,
    DataLoader,
    Dataset,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    TensorDataset,
)


def make_ds(n=23):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    y = np.arange(n)
    return TensorDataset(Tensor(x), y), x, y


class SquaresDataset(Dataset):
    """A non-array dataset: exercises the generic per-sample fallback."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return np.array([i, i * i], dtype=np.float32), i


def test_tensor_dataset_indexing():
    ds, x, y = make_ds()
    assert len(ds) == 23
    xi, yi = ds[5]
    assert isinstance(xi, Tensor)
    np.testing.assert_array_equal(xi.data, x[5])
    assert int(yi.data) == 5
    with pytest.raises(IndexError):
        ds[23]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_epoch_covers_every_sample_once(shuffle, drop_last):
    ds, x, y = make_ds(23)
    loader = DataLoader(ds, batch_size=5, shuffle=shuffle, drop_last=drop_last, seed=0)
    batches = list(loader)
    assert len(batches) == len(loader) == (4 if drop_last else 5)
    sizes = [b[1].shape[0] for b in batches]
    assert sizes == ([5] * 4 if drop_last else [5, 5, 5, 5, 3])
    seen = np.concatenate([b[1].data for b in batches])
    for bx, by in batches:  # fields stay aligned
        np.testing.assert_array_equal(bx.data, x[by.data])
        assert bx.dtype == np.float32
    if drop_last:
        assert len(set(seen.tolist())) == 20
    else:
        assert sorted(seen.tolist()) == list(range(23))
    if not shuffle:
        np.testing.assert_array_equal(seen, np.arange(len(seen)))


def test_shuffle_changes_between_epochs_and_seed_reproduces():
    ds, _, _ = make_ds(50)
    a = DataLoader(ds, batch_size=50, shuffle=True, seed=3)
    b = DataLoader(ds, batch_size=50, shuffle=True, seed=3)
    c = DataLoader(ds, batch_size=50, shuffle=True, seed=4)
    ea1, ea2 = [next(iter(a))[1].data for _ in range(2)]
    eb1, eb2 = [next(iter(b))[1].data for _ in range(2)]
    ec1 = next(iter(c))[1].data
    np.testing.assert_array_equal(ea1, eb1)
    np.testing.assert_array_equal(ea2, eb2)
    assert not np.array_equal(ea1, ea2)
    assert not np.array_equal(ea1, ec1)
    assert sorted(ea1.tolist()) == list(range(50))


def test_array_backed_batches_are_gathered_without_getitem():
    ds, x, _ = make_ds(12)

    calls = []
    orig = ds.get_batch

    def spy(idx):
        calls.append(np.asarray(idx).copy())
        return orig(idx)

    ds.get_batch = spy
    out = list(DataLoader(ds, batch_size=4))
    assert len(calls) == 3 and all(len(c) == 4 for c in calls)
    np.testing.assert_array_equal(np.concatenate([b[0].data for b in out]), x)


def test_generic_dataset_fallback():
    loader = DataLoader(SquaresDataset(), batch_size=4)
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(4, 2), (4, 2), (2, 2)]
    np.testing.assert_array_equal(batches[1][0].data, [[4, 16], [5, 25], [6, 36], [7, 49]])
    np.testing.assert_array_equal(batches[2][1].data, [8, 9])


def test_loader_and_dataset_errors():
    ds, _, _ = make_ds()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            DataLoader(ds, batch_size=bad)
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(4,\)"):
        TensorDataset(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(NotImplementedError):
        len(Dataset())


# ---------------------------------------------------------------- transforms


def test_normalize_per_channel():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3, 5, 5)).astype(np.float32)
    mean, std = [0.1, 0.2, 0.3], [1.0, 2.0, 4.0]
    out = Normalize(mean, std)(x)
    for c in range(3):
        np.testing.assert_allclose(out[:, c], (x[:, c] - mean[c]) / std[c], rtol=1e-6)
    t = Normalize(0.5, 2.0)(Tensor(x))
    assert isinstance(t, Tensor)
    np.testing.assert_allclose(t.data, (x - 0.5) / 2.0, rtol=1e-6)
    with pytest.raises(ValueError, match="std"):
        Normalize([0.0], [0.0])
    with pytest.raises(ValueError, match=r"\(4, 3, 5, 5\)"):
        Normalize([0.0, 0.0], [1.0, 1.0])(x)


def test_random_horizontal_flip():
    x = np.arange(6 * 2 * 3 * 4, dtype=np.float32).reshape(6, 2, 3, 4)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(x), x)
    out = RandomHorizontalFlip(p=0.5, seed=1)(np.repeat(x[:1], 200, axis=0))
    flipped = np.array([np.array_equal(o, x[0, ..., ::-1]) for o in out])
    kept = np.array([np.array_equal(o, x[0]) for o in out])
    assert np.all(flipped | kept)
    assert 60 < flipped.sum() < 140
    with pytest.raises(ValueError, match="p"):
        RandomHorizontalFlip(p=1.5)


def test_random_crop_windows_match_naive_crop():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3, 6, 7)).astype(np.float32)
    out = RandomCrop((4, 5), padding=2, seed=0)(x)
    assert out.shape == (16, 3, 4, 5)
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    offsets = set()
    for i in range(16):  # naive oracle: search which window each output is
        hits = [
            (t, l)
            for t in range(padded.shape[2] - 4 + 1)
            for l in range(padded.shape[3] - 5 + 1)
            if np.array_equal(padded[i, :, t : t + 4, l : l + 5], out[i])
        ]
        assert hits, f"sample {i} is not a crop of its padded image"
        offsets.add(hits[0])
    assert len(offsets) > 3  # offsets drawn per sample
    np.testing.assert_array_equal(RandomCrop(6)(x[:, :, :, :6]), x[:, :, :, :6])
    with pytest.raises(ValueError, match="larger"):
        RandomCrop(9)(x)


def test_compose_and_loader_transform_reproducible():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 1, 8, 8)).astype(np.float32)
    y = np.arange(20)
    t = Compose([RandomCrop(8, padding=1), RandomHorizontalFlip(), Normalize(0.0, 2.0)])
    runs = []
    for _ in range(2):
        loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, seed=7, transform=t)
        runs.append([(bx.data.copy(), by.data.copy()) for bx, by in loader])
    for (a, ay), (b, by) in zip(*runs):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ay, by)
    a0, ay0 = runs[0][0]
    assert a0.shape == (8, 1, 8, 8)
    # values are x/2, possibly shifted and mirrored: max magnitude never grows
    assert np.abs(a0).max() <= np.abs(x[ay0]).max() / 2 + 1e-6
    # a plain callable works as transform too
    loader = DataLoader(TensorDataset(x, y), batch_size=20, transform=lambda b: b * 0 + 1)
    np.testing.assert_array_equal(next(iter(loader))[0].data, np.ones_like(x))
