"""Shipped data (TinyDigits, the corpus), the offline errors, and the ``tito data`` command."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
from tinytorch.milestones.data import (
    DataUnavailable,
    datasets,
    load_cifar10,
    load_corpus,
    load_mnist,
    load_tinydigits,
)

REPO = Path(__file__).resolve().parents[2]
# Images per digit 0..9 in the UCI test part (optdigits.tes, 1,797 images), i.e. scikit-learn's load_digits.
RAW_COUNTS = np.array([178, 182, 177, 183, 181, 182, 181, 179, 174, 180])


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("TINYTORCH_DATA", str(root))
    return root


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- TinyDigits


def test_tinydigits_shapes_dtypes_range():
    d = load_tinydigits()
    assert set(d) == {"x_train", "y_train", "x_test", "y_test"}
    assert d["x_train"].shape == (1438, 8, 8) and d["x_test"].shape == (359, 8, 8)
    assert d["y_train"].shape == (1438,) and d["y_test"].shape == (359,)
    assert d["x_train"].dtype == np.float32 and d["y_train"].dtype == np.int64
    for x in (d["x_train"], d["x_test"]):
        assert x.min() == 0.0 and x.max() == 1.0
        np.testing.assert_array_equal(x * 16, np.round(x * 16))  # the raw 0..16 counts, divided by 16
    assert set(np.unique(d["y_train"])) == set(range(10)) == set(np.unique(d["y_test"]))


def test_tinydigits_split_is_stratified_80_20():
    d = load_tinydigits()
    train = np.bincount(d["y_train"], minlength=10)
    test = np.bincount(d["y_test"], minlength=10)
    np.testing.assert_array_equal(train + test, RAW_COUNTS)
    np.testing.assert_array_equal(test, np.round(0.2 * RAW_COUNTS).astype(int))


def test_tinydigits_split_recorded_and_disjoint():
    npz = datasets.shipped_path("tinydigits")
    with np.load(npz, allow_pickle=False) as raw:
        assert raw["x_train"].dtype == np.uint8  # stored compactly; float only on load
        tr, te = raw["train_index"], raw["test_index"]
    assert len(np.intersect1d(tr, te)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, te])), np.arange(1797))
    assert npz.stat().st_size < 200_000


def test_tinydigits_returns_fresh_arrays():
    a = load_tinydigits()
    a["x_train"][:] = 5.0
    a["y_train"][:] = 0
    b = load_tinydigits()
    assert b["x_train"].max() == 1.0 and len(np.unique(b["y_train"])) == 10


def test_tinydigits_matches_scikit_learn_and_script_is_reproducible(tmp_path):
    sklearn_datasets = pytest.importorskip(
        "sklearn.datasets", reason="optional oracle: scikit-learn is not installed"
    )
    digits = sklearn_datasets.load_digits()
    npz = datasets.shipped_path("tinydigits")
    d = load_tinydigits()
    with np.load(npz, allow_pickle=False) as raw:
        tr, te = raw["train_index"], raw["test_index"]
    np.testing.assert_array_equal(d["x_train"] * 16, digits.images[tr])
    np.testing.assert_array_equal(d["x_test"] * 16, digits.images[te])
    np.testing.assert_array_equal(d["y_test"], digits.target[te])
    script = load_script("make_tinydigits")
    assert script.main(["--check", "--out", str(npz)]) == 0  # byte-for-byte what the script writes


# ----------------------------------------------------------------------------- corpus


def test_corpus_is_sizeable_plain_sentences():
    text = load_corpus()
    assert isinstance(text, str) and 30_000 <= len(text) <= 300_000
    assert set(text) <= set("abcdefghijklmnopqrstuvwxyz0123456789 \n.,;:'?!-")
    sentences = [s for s in re.split(r"[.?!]\s", text) if s.strip()]
    assert len(sentences) > 400
    words = re.findall(r"[a-z']+", text)
    assert len(set(words)) > 1000  # varied, not one template repeated
    assert 3 < np.mean([len(w) for w in words]) < 7  # English-like word lengths


def test_corpus_script_regenerates_it():
    script = load_script("make_corpus")
    assert script.build() == load_corpus()


# ----------------------------------------------------------------------------- offline errors


def test_mnist_without_download_says_how(cache):
    with pytest.raises(DataUnavailable) as err:
        load_mnist(download=False)
    reason = err.value.reason
    assert "tito data download mnist" in reason
    assert str(cache / "mnist") in reason and "train-images-idx3-ubyte.gz" in reason
    assert not cache.exists()  # asking does not create anything


def test_cifar10_without_download_says_how(cache):
    with pytest.raises(DataUnavailable) as err:
        load_cifar10()
    reason = str(err.value)
    assert "tito data download cifar10" in reason
    assert str(cache / "cifar10") in reason and "cifar-10-binary.tar.gz" in reason
    assert not cache.exists()


# ----------------------------------------------------------------------------- tito data


def tito(*argv):
    from tinytorch.milestones.cli import main

    return main(list(argv))


def test_tito_data_list(capsys, cache):
    assert tito("data", "list") == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line and line.split()[0] in
            ("tinydigits", "corpus", "mnist", "cifar10")}
    assert "shipped" in rows["tinydigits"] and "shipped" in rows["corpus"]
    assert "not downloaded" in rows["mnist"] and "not downloaded" in rows["cifar10"]
    assert "CC BY 4.0" in out and str(cache) in out


def test_tito_data_path(capsys, cache):
    assert tito("data", "path") == 0
    assert capsys.readouterr().out.strip() == str(cache)
    assert tito("data", "path", "mnist") == 0
    assert capsys.readouterr().out.strip() == str(cache / "mnist")
    assert tito("data", "path", "tinydigits") == 0
    assert Path(capsys.readouterr().out.strip()).name == "tinydigits.npz"


def test_tito_data_download_shipped_and_unknown(capsys):
    assert tito("data", "download", "corpus") == 0
    assert "nothing to download" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        tito("data", "download", "imagenet")
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_tito_data_download_failure_exit_code(monkeypatch, capsys, cache):
    import dataclasses
    import socket

    from tinytorch.milestones.data.download import RemoteFile

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = RemoteFile("t10k-labels-idx1-ubyte.gz", "0" * 64, (f"http://127.0.0.1:{port}/x.gz",))
    only_dead = dataclasses.replace(datasets.DATASETS["mnist"], files=(dead,))
    monkeypatch.setitem(datasets.DATASETS, "mnist", only_dead)
    assert tito("data", "download", "mnist", "--retries", "1", "--no-progress") == 1
    err = capsys.readouterr().err
    assert "could not download" in err and "by hand" in err
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))
