"""File formats of the downloaded datasets: IDX (MNIST), CIFAR-10 binary, and safe tar extraction.

Every fixture file is written here, byte by byte, from the format specification
(struct packing, per-record loops): an oracle independent of the vectorized readers.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile

import numpy as np
import pytest
from tinytorch.milestones.data import cifar, idx
from tinytorch.milestones.data.archive import UnsafeArchiveError, safe_extract_tar

# ----------------------------------------------------------------------------- IDX

TYPE_CODES = {np.uint8: (0x08, "B"), np.int8: (0x09, "b"), np.int16: (0x0B, "h"),
              np.int32: (0x0C, "i"), np.float32: (0x0D, "f"), np.float64: (0x0E, "d")}


def idx_bytes(arr: np.ndarray) -> bytes:
    """An IDX file written element by element with struct (big-endian), per the format spec."""
    code, fmt = TYPE_CODES[arr.dtype.type]
    out = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
    for value in arr.reshape(-1).tolist():
        out += struct.pack(">" + fmt, value)
    return out


@pytest.mark.parametrize("dtype,shape", [
    (np.uint8, (5, 28, 28)), (np.uint8, (7,)), (np.int8, (3, 4)), (np.int16, (2, 3, 4)),
    (np.int32, (6,)), (np.float32, (4, 5)), (np.float64, (2, 2, 2, 2)),
])
def test_idx_roundtrip_all_types(dtype, shape):
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    else:
        arr = rng.standard_normal(shape).astype(dtype)
    out = idx.parse_idx(idx_bytes(arr))
    assert out.shape == shape and out.dtype == np.dtype(dtype)
    assert out.dtype.byteorder in ("=", "|")  # native order: safe for every later op
    np.testing.assert_array_equal(out, arr)
    out[...] = 0  # the result is a writable copy, not a view of the bytes


def test_read_idx_gz_and_magic_checks(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28).astype(np.uint8)
    labels = np.array([3, 9], dtype=np.uint8)
    (tmp_path / "img.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "lab").write_bytes(idx_bytes(labels))
    np.testing.assert_array_equal(idx.read_idx_images(tmp_path / "img.gz"), images)
    np.testing.assert_array_equal(idx.read_idx_labels(tmp_path / "lab"), labels)
    with pytest.raises(ValueError, match=r"magic number 0x00000801, expected 0x00000803"):
        idx.read_idx_images(tmp_path / "lab")
    with pytest.raises(ValueError, match=r"magic number 0x00000803, expected 0x00000801"):
        idx.read_idx_labels(tmp_path / "img.gz")


@pytest.mark.parametrize("mutate,message", [
    (lambda b: b[:-1], "size mismatch"),            # truncated body
    (lambda b: b + b"\x00", "size mismatch"),       # trailing garbage
    (lambda b: b"\x01" + b[1:], "not an IDX file"),  # magic must start with two zero bytes
    (lambda b: b[:2] + b"\x07" + b[3:], "unknown IDX element type 0x07"),
    (lambda b: b[:3] + b"\x00" + b[4:], "0 dimensions"),
    (lambda b: b[:3] + b"\x09", "truncated IDX header"),  # 9 dims declared, no sizes
    (lambda b: b[:2], "not an IDX file"),
])
def test_idx_rejects_malformed(mutate, message):
    good = idx_bytes(np.zeros((3, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match=message):
        idx.parse_idx(mutate(good), name="f.idx")


def test_read_idx_corrupt_gzip_is_valueerror(tmp_path):
    (tmp_path / "bad.gz").write_bytes(b"this is not gzip")
    with pytest.raises(ValueError, match="cannot read"):
        idx.read_idx(tmp_path / "bad.gz")


# ----------------------------------------------------------------------------- CIFAR-10 binary


def cifar_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """CIFAR-10 binary records, one at a time: label byte, then R, G, B planes row by row."""
    out = bytearray()
    for img, lab in zip(images, labels):
        out.append(int(lab))
        for ch in range(3):
            for row in range(32):
                out.extend(int(v) for v in img[ch, row])
    return bytes(out)


def test_cifar_batch_matches_record_by_record_layout(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(6, 3, 32, 32), dtype=np.uint8)
    labels = np.array([0, 9, 3, 3, 7, 1])
    (tmp_path / "b.bin").write_bytes(cifar_bytes(images, labels))
    x, y = cifar.read_cifar_batch(tmp_path / "b.bin")
    assert x.shape == (6, 3, 32, 32) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    # Channel planes really are R, G, B in that order: pixel (0, 0) of image 0.
    raw = (tmp_path / "b.bin").read_bytes()
    assert [raw[1], raw[1 + 1024], raw[1 + 2048]] == list(images[0, :, 0, 0])


def test_cifar_dir_concatenates_in_order(tmp_path):
    parts = []
    for i in range(2):
        imgs = np.full((2, 3, 32, 32), i, dtype=np.uint8)
        labs = np.array([i, i + 1])
        (tmp_path / f"p{i}.bin").write_bytes(cifar_bytes(imgs, labs))
        parts.append((imgs, labs))
    x, y = cifar.read_cifar_dir(tmp_path, ("p0.bin", "p1.bin"))
    np.testing.assert_array_equal(x, np.concatenate([p[0] for p in parts]))
    np.testing.assert_array_equal(y, [0, 1, 1, 2])


@pytest.mark.parametrize("data,message", [
    (b"", "not a positive multiple"),
    (b"\x00" * 3072, "not a positive multiple"),
    (b"\x00" * (3073 * 2 + 5), "not a positive multiple"),
    (b"\x0a" + b"\x00" * 3072, "record 0 has label 10"),
])
def test_cifar_rejects_malformed(data, message):
    with pytest.raises(ValueError, match=message):
        cifar.parse_cifar_batch(data, name="x.bin")


# ----------------------------------------------------------------------------- safe extraction


def make_tar(path, members):
    """members: list of (TarInfo-configuring dict, bytes or None)."""
    with tarfile.open(path, "w:gz") as tf:
        for spec, data in members:
            info = tarfile.TarInfo(spec["name"])
            info.type = spec.get("type", tarfile.REGTYPE)
            info.linkname = spec.get("linkname", "")
            info.size = len(data) if data is not None else 0
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def test_safe_extract_good_archive(tmp_path):
    arc = make_tar(tmp_path / "ok.tar.gz", [
        ({"name": "top", "type": tarfile.DIRTYPE}, None),
        ({"name": "top/a.bin"}, b"alpha"),
        ({"name": "./top/sub/b.txt"}, b"beta" * 1000),
    ])
    out = safe_extract_tar(arc, tmp_path / "out")
    assert (out / "top" / "a.bin").read_bytes() == b"alpha"
    assert (out / "top" / "sub" / "b.txt").read_bytes() == b"beta" * 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.tar.gz", "out"]  # no staging left
    with pytest.raises(FileExistsError):
        safe_extract_tar(arc, tmp_path / "out")


@pytest.mark.parametrize("bad,message", [
    ({"name": "../evil.txt"}, r"outside the target"),
    ({"name": "top/../../evil.txt"}, r"outside the target"),
    ({"name": "/tmp/evil.txt"}, r"absolute path"),
    ({"name": "C:/evil.txt"}, r"absolute path"),
    ({"name": "top\\..\\evil.txt"}, r"backslash"),
    ({"name": "top/link", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, r"is a link"),
    ({"name": "top/hard", "type": tarfile.LNKTYPE, "linkname": "top/a.bin"}, r"is a link"),
    ({"name": "top/dev", "type": tarfile.CHRTYPE}, r"special file"),
    ({"name": "top/fifo", "type": tarfile.FIFOTYPE}, r"special file"),
])
def test_safe_extract_refuses_unsafe_members(tmp_path, bad, message):
    # The unsafe member comes *after* a good one: nothing at all may be written.
    arc = make_tar(tmp_path / "bad.tar.gz", [
        ({"name": "top/a.bin"}, b"alpha"),
        (bad, b"pwned" if bad.get("type", tarfile.REGTYPE) == tarfile.REGTYPE else None),
    ])
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(UnsafeArchiveError, match=message):
        safe_extract_tar(arc, work / "out")
    assert list(work.iterdir()) == []  # neither the target nor a staging directory
    assert not (tmp_path / "evil.txt").exists() and not (work / "evil.txt").exists()
