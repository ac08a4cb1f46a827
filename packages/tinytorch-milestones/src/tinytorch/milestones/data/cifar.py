"""Reader for the binary version of CIFAR-10 (no pickle involved).

Each batch file (``data_batch_1.bin`` .. ``data_batch_5.bin``, ``test_batch.bin``)
is 10,000 fixed-length records of 3,073 bytes::

    byte 0        label, 0..9
    bytes 1-1024  red channel, 32 x 32, row-major
    next 1024     green channel
    next 1024     blue channel

so a whole file reshapes, without any loop, to ``(N, 3073)``: column 0 holds the
labels and the rest reshapes to ``(N, 3, 32, 32)`` (channels first, as TinyTorch's
convolutions expect).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
RECORD_BYTES = 1 + 3 * 32 * 32  # 3073
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)


def parse_cifar_batch(
    data: bytes, name: str = "<bytes>", num_classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Decode one CIFAR-10 binary batch.

    Args:
        data: the file's bytes, a whole number of 3,073-byte records.
        name: used in error messages.
        num_classes: labels must lie in ``[0, num_classes)``.

    Returns:
        ``(images, labels)``: uint8 ``(N, 3, 32, 32)`` and int64 ``(N,)``.

    Raises:
        ValueError: empty file, a size that is not a multiple of 3,073 (truncated
            or not CIFAR-10 binary), or a label out of range.
    """
    if len(data) == 0 or len(data) % RECORD_BYTES:
        raise ValueError(
            f"{name}: {len(data)} bytes is not a positive multiple of the {RECORD_BYTES}-byte "
            "CIFAR-10 record (truncated file, or not the binary version?)"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)  # (N, 3073)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= num_classes:
        bad = int(np.flatnonzero(labels >= num_classes)[0])
        raise ValueError(f"{name}: record {bad} has label {labels[bad]}, expected 0..{num_classes - 1}")
    images = records[:, 1:].reshape(-1, 3, 32, 32).copy()  # (N, C, H, W), writable
    return images, labels


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch file from disk; see :func:`parse_cifar_batch`."""
    path = Path(path)
    return parse_cifar_batch(path.read_bytes(), name=str(path))


def read_cifar_dir(directory: str | Path, files: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Read and concatenate several batch files of ``directory`` (e.g. the five training batches)."""
    directory = Path(directory)
    parts = [read_cifar_batch(directory / f) for f in files]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
