"""Datasets for the milestones: two shipped with the package, two downloaded on request.

>>> from tinytorch.milestones.data import load_tinydigits
>>> d = load_tinydigits()
>>> d["x_train"].shape, d["x_train"].dtype, d["y_train"].dtype
((1438, 8, 8), dtype('float32'), dtype('int64'))

* ``load_tinydigits()``: 8x8 UCI handwritten digits, fixed stratified split (shipped, offline).
* ``load_corpus()``: a small English text written for this project (shipped, offline).
* ``load_mnist(download=False)``, ``load_cifar10(download=False)``: cached downloads; without
  the files and without ``download=True`` they raise :class:`DataUnavailable`, whose
  message says how to get them (``tito data download NAME``, or where to put files by hand).
* ``data_dir()``: the cache (``$TINYTORCH_DATA``, else the user cache dir).

Sources, licenses and checksums: ``README.md`` in this directory. Importing this
package imports NumPy only; ``requests`` and ``tqdm`` are imported when a download starts.
"""

from tinytorch.milestones.data._cache import DataUnavailable, DownloadError, data_dir
from tinytorch.milestones.data.datasets import (
    DATASETS,
    dataset_dir,
    download_dataset,
    is_cached,
    load_cifar10,
    load_corpus,
    load_mnist,
    load_tinydigits,
)

__all__ = [
    "DATASETS",
    "DataUnavailable",
    "DownloadError",
    "data_dir",
    "dataset_dir",
    "download_dataset",
    "is_cached",
    "load_cifar10",
    "load_corpus",
    "load_mnist",
    "load_tinydigits",
]
