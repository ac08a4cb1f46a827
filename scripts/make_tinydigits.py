"""Regenerate ``tinytorch/milestones/data/tinydigits.npz`` from scikit-learn's copy of the UCI digits.

TinyDigits is the test split of the UCI "Optical Recognition of Handwritten
Digits" data set (E. Alpaydin and C. Kaynak, 1998; CC BY 4.0) exactly as
scikit-learn distributes it (``sklearn.datasets.load_digits``): 1,797 images of
8x8 pixels, each pixel a count 0..16 of "on" pixels in a 4x4 block of the
original 32x32 bitmap. scikit-learn is needed by this script only; the package
ships the result and never imports scikit-learn.

The split is stratified and seeded: for every class, the indices of that class
(in scikit-learn's order) are shuffled by a NumPy ``default_rng(SEED)``
generator and the first ``round(TEST_FRACTION * n_class)`` go to the test set.
The archive stores the pixels as uint8 together with the original indices of
every image, so the split is recorded in the data and never depends on a random
generator again.

The output is byte-for-byte deterministic: the zip is written by hand with a
fixed timestamp (``numpy.savez`` would stamp the current time).

Usage: ``python scripts/make_tinydigits.py [--check]`` (``--check`` exits 1 if
the shipped file differs from what the script would write).
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

SEED = 1998  # the year the data set was donated to the UCI repository
TEST_FRACTION = 0.2
OUT = (
    Path(__file__).resolve().parents[1]
    / "packages/tinytorch-milestones/src/tinytorch/milestones/data/tinydigits.npz"
)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test), each sorted, with ``round(test_fraction * n_c)`` test images per class c."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(test_fraction * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def build() -> bytes:
    from sklearn.datasets import load_digits  # the script's only use of scikit-learn

    digits = load_digits()
    images = np.asarray(digits.images)  # (1797, 8, 8) float64 holding integers 0..16
    labels = np.asarray(digits.target)
    if images.shape != (1797, 8, 8) or not np.array_equal(images, np.round(images)):
        raise SystemExit(f"unexpected sklearn digits: shape {images.shape}")
    if images.min() < 0 or images.max() > 16:
        raise SystemExit("unexpected pixel range in sklearn digits")
    pixels = images.astype(np.uint8)
    train_idx, test_idx = stratified_split(labels, TEST_FRACTION, SEED)

    arrays = {
        "x_train": pixels[train_idx],
        "y_train": labels[train_idx].astype(np.uint8),
        "x_test": pixels[test_idx],
        "y_test": labels[test_idx].astype(np.uint8),
        # Position of every image in scikit-learn's ordering: the split, recorded.
        "train_index": train_idx.astype(np.int16),
        "test_index": test_idx.astype(np.int16),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue(), compresslevel=9)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped file, write nothing")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    data = build()
    if args.check:
        same = args.out.is_file() and args.out.read_bytes() == data
        print(f"{args.out}: {'up to date' if same else 'DIFFERS'}")
        return 0 if same else 1
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
