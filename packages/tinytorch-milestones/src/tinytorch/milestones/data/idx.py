"""Reader for the IDX format, the file format of MNIST.

An IDX file is a 4-byte magic number, one big-endian uint32 per dimension,
then the array in C order, big-endian::

    bytes 0-1  zero
    byte  2    element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3    number of dimensions d
    4 * d      sizes, uint32 big-endian
    ...        prod(sizes) elements

MNIST images are ``0x00000803`` (uint8, 3 dims: N x 28 x 28), labels
``0x00000801`` (uint8, 1 dim: N). Files ending in ``.gz`` are decompressed on
the fly. Parsing is one ``np.frombuffer`` (no Python loop over elements);
cost is one pass over the bytes.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

# IDX type code -> big-endian NumPy dtype.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of one (uncompressed) IDX file into an array in native byte order.

    Args:
        data: the whole file.
        name: used in error messages.

    Returns:
        array of the file's shape and element type (uint8 for MNIST).

    Raises:
        ValueError: bad magic number, unknown type code, or a size that does not
            match the header (truncated or padded file).
    """
    if len(data) < 4:
        raise ValueError(f"{name}: not an IDX file ({len(data)} bytes, the header alone is 4)")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"{name}: not an IDX file (magic number {data[:4].hex()} must start with 0000)")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise ValueError(f"{name}: unknown IDX element type 0x{code:02X} (known: 08 09 0B 0C 0D 0E)")
    if ndim == 0:
        raise ValueError(f"{name}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name}: truncated IDX header ({len(data)} bytes, need {header})")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            f"{name}: IDX size mismatch: header says shape {shape} of {dtype.name} "
            f"({expected} bytes with header), file has {len(data)} bytes"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))  # native order, and a writable copy


def _read_bytes(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path}: cannot read: {err}") from err


def read_idx(path: str | Path, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file from disk (gzip-compressed when the name ends in ``.gz``).

    Args:
        path: the file.
        expected_magic: if given, the file's 4-byte magic number must equal it
            (0x00000803 for MNIST images, 0x00000801 for labels).
    """
    path = Path(path)
    data = _read_bytes(path)
    if expected_magic is not None and len(data) >= 4:
        magic = int.from_bytes(data[:4], "big")
        if magic != expected_magic:
            raise ValueError(
                f"{path}: IDX magic number 0x{magic:08X}, expected 0x{expected_magic:08X} "
                "(an images file where labels were expected, the other way round, or not IDX at all)"
            )
    return parse_idx(data, name=str(path))


def read_idx_images(path: str | Path) -> np.ndarray:
    """Read an MNIST-style image file: magic 0x00000803 (uint8, 3 dims), shape (N, rows, cols)."""
    return read_idx(path, expected_magic=0x00000803)


def read_idx_labels(path: str | Path) -> np.ndarray:
    """Read an MNIST-style label file: magic 0x00000801 (uint8, 1 dim), shape (N,)."""
    return read_idx(path, expected_magic=0x00000801)
