"""The datasets the milestones use: what they are, where they come from, how to load them.

Three ship inside the package and work offline:

* ``tinydigits``: 1,797 8x8 handwritten digits (UCI), with a fixed stratified split;
* ``shakespeare``: eight of Shakespeare's plays (about 1 MB of text), the corpus
  milestone 05 and the TinyGPT capstone train on;
* ``corpus``: a small English text written for this project.

Two are downloaded on request into the cache (see :func:`data_dir`):

* ``mnist``: the four IDX files (about 11 MB);
* ``cifar10``: the binary version of CIFAR-10 (about 162 MB, extracted to 6 batch files).

The image loaders return a dict ``{"x_train", "y_train", "x_test", "y_test"}`` of
float32 images scaled to [0, 1] and int64 labels.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from tinytorch.milestones.data import cifar, idx
from tinytorch.milestones.data._cache import CacheError, DataUnavailable, DownloadError, data_dir, make_dir
from tinytorch.milestones.data._lock import DirectoryLock, LockTimeout
from tinytorch.milestones.data.archive import UnsafeArchiveError, safe_extract_tar
from tinytorch.milestones.data.download import (
    RemoteFile,
    check_seconds,
    default_deadline,
    fetch,
    file_digests,
    verify_file,
)

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
# The real archive unpacks to 184,390,xxx bytes (six 30,730,000-byte batches and two small
# text files); anything past 200 MiB is not CIFAR-10 and is refused before it is written.
CIFAR10_EXTRACT_LIMIT = 200 << 20
# Written beside the batches once they came out of a verified archive: each batch's size and
# SHA-256, checked again whenever the batches are loaded (a truncated or zeroed file is refused).
VERIFIED_MANIFEST = ".verified.json"
STAGING_PREFIX = ".cifar-extract"


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
    "shakespeare": DatasetInfo(
        "shakespeare", "8 Shakespeare plays in modern spelling (character-level LM)", "1.0 MB",
        "the Open Knowledge Foundation's shakespeare 0.6 package (Project Gutenberg texts)",
        "CC BY 2.5 (the texts are public domain)",
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
    fname = {"tinydigits": "tinydigits.npz", "corpus": "corpus.txt", "shakespeare": "shakespeare.txt"}[
        _info(name).name
    ]
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
    name: str,
    *,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 30.0,
    deadline: float | None = None,
    progress: bool = True,
) -> Path:
    """Download (and, for CIFAR-10, extract) a dataset into the cache; return its directory.

    Files already present and verified are not fetched again. Shipped datasets
    need nothing and return their package path. The dataset's directory is locked
    for the whole download and extraction (another process downloading the same
    dataset waits, then finds it done); under the lock, partial files and staging
    directories that a killed run left behind are removed.

    Args:
        retries, backoff, timeout: see :func:`~tinytorch.milestones.data.download.fetch`.
        deadline: seconds per file, every attempt included (default: from the file's size).

    Raises:
        ValueError: an option is out of range (checked before anything is written).
        CacheError: the cache cannot be written (permissions, full disk, bad ``$TINYTORCH_DATA``).
        DownloadError: a file could not be obtained, or the archive is unusable;
            nothing partial is left in the cache.
    """
    info = _info(name)
    timeout = check_seconds("timeout", timeout)
    if deadline is not None:
        deadline = check_seconds("deadline", deadline)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
        raise ValueError(f"retries must be an int >= 1, got {retries!r}")
    if info.shipped:
        return shipped_path(name)
    target = dataset_dir(name)
    if name == "cifar10" and _cifar_complete(target / CIFAR10_DIRNAME):
        return target
    make_dir(target)
    wait = sum(default_deadline(f.size) if deadline is None else deadline for f in info.files)
    with _locked(target, wait, progress):
        if name == "cifar10" and _cifar_complete(target / CIFAR10_DIRNAME):
            return target  # another process extracted it while we waited for the lock
        _clean_staging(target)
        for remote in info.files:
            fetch(remote, target, retries=retries, backoff=backoff, timeout=timeout, deadline=deadline,
                  progress=progress, lock=False)
        if name == "cifar10" and not _cifar_complete(target / CIFAR10_DIRNAME):
            _extract_cifar(target)
    return target


class _locked:
    """The dataset directory's lock, its failures turned into the data layer's errors."""

    def __init__(self, directory: Path, timeout: float, progress: bool):
        notice = (lambda msg: print(msg, file=__import__("sys").stderr, flush=True)) if progress else None
        self.lock = DirectoryLock(directory, timeout=timeout, on_wait=notice)
        self.directory = directory

    def __enter__(self):
        try:
            self.lock.__enter__()
        except LockTimeout as err:
            raise DownloadError(str(err)) from None
        except OSError as err:
            raise CacheError(self.directory, err) from None
        return self

    def __exit__(self, *exc):
        self.lock.__exit__(*exc)


def _clean_staging(directory: Path) -> None:
    """Remove extraction staging directories a killed run left (call with the lock held)."""
    for stale in directory.glob(STAGING_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)


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


# SHA-256 of shakespeare.txt as scripts/make_shakespeare.py writes it (also in README.md; a test checks both).
SHAKESPEARE_SHA256 = "cd807db81e6782966ec4a840381a9c26469d358e45d7f910b8b2baf8c0672af8"


def load_shakespeare() -> str:
    """Eight plays of Shakespeare in modern spelling, one string (1,026,818 ASCII characters).

    Hamlet, Macbeth, Romeo and Juliet, Othello, King Lear, Julius Caesar, The
    Tempest and A Midsummer Night's Dream, in that order: each a title line,
    then the play from its first act (or prologue) heading, lines stripped,
    blank-line runs collapsed (``scripts/make_shakespeare.py`` rebuilds it).
    Speeches read ``SPEAKER.\nline\nline\n\n``; stage directions are in ``[...]``.
    """
    return resources.files(__package__).joinpath("shakespeare.txt").read_text(encoding="ascii")


# The text corpora by name (``--corpus`` of ``tito capstone train``): name -> loader.
TEXT_CORPORA = {"shakespeare": load_shakespeare, "tinytorch": load_corpus}


def load_text(name: str = "shakespeare") -> str:
    """A shipped text corpus by name: ``"shakespeare"`` (the default) or ``"tinytorch"`` (``corpus.txt``)."""
    if name not in TEXT_CORPORA:
        raise ValueError(f"unknown text corpus {name!r}; shipped corpora: {', '.join(TEXT_CORPORA)}")
    return TEXT_CORPORA[name]()


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


def _cifar_manifest(batches: Path) -> dict | None:
    """The sizes and SHA-256 recorded when ``batches`` was extracted, or None (not extracted by us)."""
    try:
        record = json.loads((batches / VERIFIED_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = record.get("files") if isinstance(record, dict) else None
    expected = set(cifar.TRAIN_FILES + cifar.TEST_FILES)
    if not isinstance(files, dict) or set(files) != expected:
        return None
    return files


def _cifar_complete(batches: Path) -> bool:
    """Cheap check: the six batches are there with the sizes recorded at extraction."""
    files = _cifar_manifest(batches)
    if files is None:
        return False
    for name, entry in files.items():
        path = batches / name
        if not path.is_file() or path.stat().st_size != entry.get("size"):
            return False
    return True


def _verify_cifar(batches: Path) -> str | None:
    """Full check before loading: sizes and SHA-256 as recorded at extraction. None when good."""
    files = _cifar_manifest(batches)
    if files is None:
        return f"{batches} has no record of a verified extraction ({VERIFIED_MANIFEST})"
    for name, entry in files.items():
        path = batches / name
        if not path.is_file():
            return f"{path} is missing"
        size = path.stat().st_size
        if size != entry.get("size"):
            return f"{path} has {size} bytes, {entry.get('size')} when it was extracted (truncated?)"
        if file_digests(path)[0] != entry.get("sha256"):
            return f"{path} changed since it was extracted (SHA-256 differs): corrupted or overwritten"
    return None


def _extract_cifar(directory: Path) -> None:
    """Verify the archive in ``directory``, extract it safely, keep only the batches; remove the archive.

    Call with the directory's lock held. Extraction happens in a staging directory with a
    unique name; the batches are checked (six files of whole 3,073-byte records), their sizes
    and SHA-256 recorded in ``VERIFIED_MANIFEST``, and only then renamed into place.
    """
    remote = DATASETS["cifar10"].files[0]
    archive = directory / remote.filename
    problem = verify_file(archive, remote)
    if problem:
        raise DownloadError(f"{problem}; delete it and run `tito data download cifar10` again")
    try:
        staging = Path(tempfile.mkdtemp(dir=directory, prefix=STAGING_PREFIX + "-"))
    except OSError as err:
        raise CacheError(directory, err) from None
    try:
        unpacked = safe_extract_tar(archive, staging / "x", max_bytes=CIFAR10_EXTRACT_LIMIT)
        batches = unpacked / CIFAR10_DIRNAME
        names = cifar.TRAIN_FILES + cifar.TEST_FILES
        for name in names:
            path = batches / name
            if not path.is_file():
                raise ValueError(f"{archive} does not contain {CIFAR10_DIRNAME}/{name} (the binary version?)")
            cifar.read_cifar_batch(path)  # whole records, labels in range: raises ValueError otherwise
        manifest = {"files": {name: {"size": (batches / name).stat().st_size,
                                     "sha256": file_digests(batches / name)[0]} for name in names}}
        (batches / VERIFIED_MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        final = directory / CIFAR10_DIRNAME
        if final.exists():
            shutil.rmtree(final)
        os.replace(batches, final)
    except (UnsafeArchiveError, ValueError, tarfile.TarError, EOFError) as err:
        archive.unlink(missing_ok=True)  # verified yet unusable: keep nothing that would fail again
        raise DownloadError(f"cannot extract {archive} (removed it): {err}") from err
    except OSError as err:  # the disk, not the archive: keep the verified archive for another try
        raise CacheError(directory, err) from None
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
        DataUnavailable: not cached and ``download`` is False, or the extracted batches no
            longer match what was extracted (the message says how to fix it).
        DownloadError: ``download`` is True and the download or extraction failed.
    """
    directory = dataset_dir("cifar10")
    batches = directory / CIFAR10_DIRNAME
    if not _cifar_complete(batches) and _cifar_manifest(batches) is None:
        remote = DATASETS["cifar10"].files[0]
        if (directory / remote.filename).is_file():
            # archive placed by hand, or a previous run stopped here
            with _locked(directory, default_deadline(remote.size), progress=False):
                if not _cifar_complete(batches):
                    _clean_staging(directory)
                    _extract_cifar(directory)
        elif download:
            download_dataset("cifar10")
        else:
            raise DataUnavailable(
                "CIFAR-10 is not available: it is not in the cache. Download it (about 162 MB) with "
                "`tito data download cifar10` (or pass download=True / --download), or, offline, place "
                f"{remote.filename} (the binary version, from {remote.urls[0]}) in "
                f"{directory}; it is verified and extracted on first use"
            )
    problem = _verify_cifar(batches)
    if problem:
        raise DataUnavailable(
            f"CIFAR-10 in the cache is damaged: {problem}. Delete {batches} and run "
            "`tito data download cifar10` again"
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
