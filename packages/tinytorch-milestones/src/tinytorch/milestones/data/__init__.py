"""Datasets for the milestones: three shipped with the package, two downloaded on request.

>>> from tinytorch.milestones.data import load_tinydigits
>>> d = load_tinydigits()
>>> d["x_train"].shape, d["x_train"].dtype, d["y_train"].dtype
((1438, 8, 8), dtype('float32'), dtype('int64'))

* ``load_tinydigits()``: 8x8 UCI handwritten digits, fixed stratified split (shipped, offline).
* ``load_shakespeare()``: eight Shakespeare plays, about 1 MB of text (shipped, offline).
* ``load_corpus()``: a small English text written for this project (shipped, offline).
* ``load_text(name)``: a shipped text corpus by name (``"shakespeare"`` or ``"tinytorch"``).
* ``load_mnist(download=False)``, ``load_cifar10(download=False)``: cached downloads; without
  the files and without ``download=True`` they raise :class:`DataUnavailable`, whose
  message says how to get them (``tito data download NAME``, or where to put files by hand).
* ``data_dir()``: the cache (``$TINYTORCH_DATA``, else the user cache dir).

Sources, licenses and checksums: ``README.md`` in this directory. Names are
imported on first use; ``requests`` and ``tqdm`` only when a download starts.
"""

from __future__ import annotations

import importlib

# Public name -> submodule defining it. Resolved on first access (PEP 562), so
# ``import tinytorch.milestones.data`` costs nothing until a loader is used.
_EXPORTS = {
    "CacheError": "_cache",
    "DataUnavailable": "_cache",
    "DownloadError": "_cache",
    "data_dir": "_cache",
    "DATASETS": "datasets",
    "dataset_dir": "datasets",
    "download_dataset": "datasets",
    "is_cached": "datasets",
    "load_cifar10": "datasets",
    "load_corpus": "datasets",
    "load_shakespeare": "datasets",
    "load_text": "datasets",
    "TEXT_CORPORA": "datasets",
    "load_mnist": "datasets",
    "load_tinydigits": "datasets",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
