"""The datasets the milestones use: what they are, where they come from, how to load them.

Two ship inside the package and work offline:

* ``tinydigits``: 1,797 8x8 handwritten digits (UCI), with a fixed stratified split;
* ``corpus``: a small English text written for this project.

Two are downloaded on request into the cache (see :func:`data_dir`):

* ``mnist``: the four IDX files (about 11 MB);
* ``cifar10``: the binary version of CIFAR-10 (about 162 MB, extracted to 6 batch files).

Every loader returns a dict ``{"x_train", "y_train", "x_test", "y_test"}`` of
float32 images scaled to [0, 1] and int64 labels.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from tinytorch.milestones.data import cifar, idx
from tinytorch.milestones.data._cache import DataUnavailable, DownloadError, data_dir
from tinytorch.milestones.data.archive import UnsafeArchiveError, safe_extract_tar
from tinytorch.milestones.data.download import RemoteFile, fetch, verify_file

# Mirrors of the MNIST files, in the order tried. The original site is last: it
# has been intermittently unavailable (or behind a login) in recent years.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
# Pinned (file, bytes, SHA-256, MD5). The MD5 values are the ones the MNIST and
# CIFAR pages and torchvision publish; the SHA-256 values are those of
# torchvision's and TensorFlow Datasets' checksum tables (see data/README.md).
_MNIST_PINS = (
    ("train-images-idx3-ubyte.gz", 9912422,
     "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    ("train-labels-idx1-ubyte.gz", 28881,
     "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", "d53e105ee54ea40749a09fcbcd1e9432"),
    ("t10k-images-idx3-ubyte.gz", 1648877,
     "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", "9fb629c4189551a2d022fa330f9573f3"),
    ("t10k-labels-idx1-ubyte.gz", 4542,
     "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", "ec29112dd5afa0611ce80d1b7f02629c"),
)
MNIST_FILES = tuple(
    RemoteFile(name, sha, tuple(m + name for m in MNIST_MIRRORS), size=size, md5=md5)
    for name, size, sha, md5 in _MNIST_PINS
)
CIFAR10_FILES = (
    RemoteFile(
        "cifar-10-binary.tar.gz",
        "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
        ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
        size=170052171,
        md5="c32a1d4ab5d03f1284b67883e8d87530",
    ),
)
CIFAR10_DIRNAME = "cifar-10-batches-bin"  # the directory the archive unpacks to


@dataclass(frozen=True)
class DatasetInfo:
    """One entry of ``tito data list``."""

    name: str
    title: str
    size: str
    source: str
    license: str
    files: tuple[RemoteFile, ...] = ()  # empty: ships with the package

    @property
    def shipped(self) -> bool:
        return not self.files


DATASETS: dict[str, DatasetInfo] = {
    "tinydigits": DatasetInfo(
        "tinydigits", "8x8 handwritten digits, 1,438 train / 359 test", "49 KB",
        "UCI ML repository, Optical Recognition of Handwritten Digits (Alpaydin & Kaynak)", "CC BY 4.0",
    ),
    "corpus": DatasetInfo(
        "corpus", "short English prose written for TinyTorch (character-level LM)", "~60 KB",
        "written for this project", "MIT (same as the package)",
    ),
    "mnist": DatasetInfo(
        "mnist", "28x28 handwritten digits, 60,000 train / 10,000 test", "11 MB",
        "LeCun, Cortes & Burges, MNIST (IDX files)", "CC BY-SA 3.0", MNIST_FILES,
    ),
    "cifar10": DatasetInfo(
        "cifar10", "32x32 colour images in 10 classes, 50,000 train / 10,000 test", "162 MB",
        "Krizhevsky, CIFAR-10 binary version (University of Toronto)", "see the CIFAR page", CIFAR10_FILES,
    ),
}


def _info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def dataset_dir(name: str) -> Path:
    """Cache directory of a downloadable dataset (``data_dir() / name``)."""
    return data_dir() / _info(name).name


def shipped_path(name: str) -> Path:
    """Path of the file a shipped dataset is read from (inside the installed package)."""
    fname = {"tinydigits": "tinydigits.npz", "corpus": "corpus.txt"}[_info(name).name]
    return Path(str(resources.files(__package__).joinpath(fname)))


def is_cached(name: str) -> bool:
    """True when a dataset can be loaded without the network (shipped ones always can)."""
    info = _info(name)
    if info.shipped:
        return True
    if name == "cifar10":
        return _cifar_complete(dataset_dir(name) / CIFAR10_DIRNAME)
    return all((dataset_dir(name) / f.filename).is_file() for f in info.files)


def download_dataset(
    name: str, *, retries: int = 3, backoff: float = 1.0, timeout: float = 30.0, progress: bool = True
) -> Path:
    """Download (and, for CIFAR-10, extract) a dataset into the cache; return its directory.

    Files already present and verified are not fetched again. Shipped datasets
    need nothing and return their package path.

    Raises:
        DownloadError: a file could not be obtained, or the archive is unusable;
            nothing partial is left in the cache.
    """
    info = _info(name)
    if info.shipped:
        return shipped_path(name)
    target = dataset_dir(name)
    if name == "cifar10" and _cifar_complete(target / CIFAR10_DIRNAME):
        return target
    for remote in info.files:
        fetch(remote, target, retries=retries, backoff=backoff, timeout=timeout, progress=progress)
    if name == "cifar10":
        _extract_cifar(target)
    return target


# ----------------------------------------------------------------------------- shipped data


@lru_cache(maxsize=1)
def _tinydigits_raw() -> dict[str, np.ndarray]:
    data = resources.files(__package__).joinpath("tinydigits.npz").read_bytes()
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        raw = {k: npz[k] for k in npz.files}
    for arr in raw.values():
        arr.flags.writeable = False  # shared by every call: protect it
    return raw


def load_tinydigits() -> dict[str, np.ndarray]:
    """TinyDigits: the 1,797 8x8 UCI handwritten digits with a fixed, stratified 80/20 split.

    Returns:
        dict with ``x_train`` float32 (1438, 8, 8), ``y_train`` int64 (1438,),
        ``x_test`` float32 (359, 8, 8), ``y_test`` int64 (359,). Pixels are the
        original counts 0..16 divided by 16, so they lie in [0, 1]. Fresh arrays on
        every call (callers may modify them).
    """
    raw = _tinydigits_raw()
    return {
        "x_train": raw["x_train"].astype(np.float32) / np.float32(16.0),
        "y_train": raw["y_train"].astype(np.int64),
        "x_test": raw["x_test"].astype(np.float32) / np.float32(16.0),
        "y_test": raw["y_test"].astype(np.int64),
    }


def load_corpus() -> str:
    """The project's text corpus (plain English, lowercase letters, digits and basic punctuation)."""
    return resources.files(__package__).joinpath("corpus.txt").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- MNIST


def _mnist_unavailable(directory: Path, why: str) -> DataUnavailable:
    names = ", ".join(f.filename for f in DATASETS["mnist"].files)
    return DataUnavailable(
        f"MNIST is not available: {why}. Download it (about 11 MB) with `tito data download mnist` "
        f"(or pass download=True / --download), or, offline, place the four files {names} "
        f"(from {MNIST_MIRRORS[-1]} or a mirror) in {directory}"
    )


def load_mnist(download: bool = False) -> dict[str, np.ndarray]:
    """MNIST: 60,000 training and 10,000 test images of handwritten digits.

    Args:
        download: fetch the files if they are not cached (else raise DataUnavailable).

    Returns:
        dict with ``x_train`` float32 (60000, 28, 28), ``y_train`` int64 (60000,),
        ``x_test`` float32 (10000, 28, 28), ``y_test`` int64 (10000,); pixels / 255.

    Raises:
        DataUnavailable: not cached and ``download`` is False, or a cached file
            fails its checksum (the message says how to fix it).
        DownloadError: ``download`` is True and the download failed.
    """
    directory = dataset_dir("mnist")
    files = DATASETS["mnist"].files  # looked up at call time: one place to change the pins
    missing = [f.filename for f in files if not (directory / f.filename).is_file()]
    if missing:
        if not download:
            why = "it is not in the cache" if len(missing) == len(files) else f"{', '.join(missing)} missing"
            raise _mnist_unavailable(directory, why)
        download_dataset("mnist")
    for remote in files:  # cheap (11 MB) and catches files placed by hand
        problem = verify_file(directory / remote.filename, remote)
        if problem:
            raise _mnist_unavailable(directory, f"{problem} (delete it and download again)")
    arrays = [
        idx.read_idx_images(directory / files[0].filename),
        idx.read_idx_labels(directory / files[1].filename),
        idx.read_idx_images(directory / files[2].filename),
        idx.read_idx_labels(directory / files[3].filename),
    ]
    return _as_dataset(*arrays, scale=255.0, what="MNIST")


# ----------------------------------------------------------------------------- CIFAR-10


def _cifar_complete(batches: Path) -> bool:
    files = cifar.TRAIN_FILES + cifar.TEST_FILES
    return all(
        (batches / f).is_file() and (batches / f).stat().st_size % cifar.RECORD_BYTES == 0 for f in files
    )


def _extract_cifar(directory: Path) -> None:
    """Verify the archive in ``directory``, extract it safely, keep only the batches; remove the archive."""
    remote = DATASETS["cifar10"].files[0]
    archive = directory / remote.filename
    problem = verify_file(archive, remote)
    if problem:
        raise DownloadError(f"{problem}; delete it and run `tito data download cifar10` again")
    staging = directory / ".cifar-extract"
    shutil.rmtree(staging, ignore_errors=True)  # left by a process killed mid-way
    try:
        safe_extract_tar(archive, staging)
        batches = staging / CIFAR10_DIRNAME
        if not _cifar_complete(batches):
            raise ValueError(
                f"{archive} does not contain {CIFAR10_DIRNAME}/ with the six batch files "
                "of the binary version"
            )
        final = directory / CIFAR10_DIRNAME
        if final.exists():
            shutil.rmtree(final)
        batches.rename(final)
    except (UnsafeArchiveError, OSError, ValueError, tarfile.TarError) as err:
        archive.unlink(missing_ok=True)  # verified yet unusable: keep nothing that would fail again
        raise DownloadError(f"cannot extract {archive} (removed it): {err}") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    archive.unlink()  # the batches are what we read; the 162 MB archive is not needed twice


def load_cifar10(download: bool = False) -> dict[str, np.ndarray]:
    """CIFAR-10: 50,000 training and 10,000 test colour images of 10 classes.

    Args:
        download: fetch and extract the archive if it is not cached.

    Returns:
        dict with ``x_train`` float32 (50000, 3, 32, 32), ``y_train`` int64 (50000,),
        ``x_test`` float32 (10000, 3, 32, 32), ``y_test`` int64 (10000,); pixels / 255.
        Class names are ``tinytorch.milestones.data.cifar.CIFAR10_CLASSES``.

    Raises:
        DataUnavailable: not cached and ``download`` is False.
        DownloadError: ``download`` is True and the download or extraction failed.
    """
    directory = dataset_dir("cifar10")
    batches = directory / CIFAR10_DIRNAME
    if not _cifar_complete(batches):
        remote = DATASETS["cifar10"].files[0]
        if (directory / remote.filename).is_file():
            _extract_cifar(directory)  # archive placed by hand, or a previous run stopped here
        elif download:
            download_dataset("cifar10")
        else:
            raise DataUnavailable(
                "CIFAR-10 is not available: it is not in the cache. Download it (about 162 MB) with "
                "`tito data download cifar10` (or pass download=True / --download), or, offline, place "
                f"{remote.filename} (the binary version, from {remote.urls[0]}) in "
                f"{directory}; it is verified and extracted on first use"
            )
    x_train, y_train = cifar.read_cifar_dir(batches, cifar.TRAIN_FILES)
    x_test, y_test = cifar.read_cifar_dir(batches, cifar.TEST_FILES)
    return _as_dataset(x_train, y_train, x_test, y_test, scale=255.0, what="CIFAR-10")


def _as_dataset(x_train, y_train, x_test, y_test, *, scale: float, what: str) -> dict[str, np.ndarray]:
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if len(x) != len(y):
            raise ValueError(f"{what} {split}: {len(x)} images but {len(y)} labels")
    out = {"x_train": x_train.astype(np.float32), "y_train": y_train.astype(np.int64),
           "x_test": x_test.astype(np.float32), "y_test": y_test.astype(np.int64)}
    out["x_train"] /= np.float32(scale)  # in place: CIFAR's training images alone are 614 MB as float32
    out["x_test"] /= np.float32(scale)
    return out
