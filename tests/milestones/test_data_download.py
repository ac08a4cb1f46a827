"""The downloader against a local HTTP server (127.0.0.1, ephemeral port): never the real network.

Each test writes the files it serves, overrides the pinned checksums with those
of its own files (``monkeypatch`` on ``DATASETS`` or a ``RemoteFile`` built here),
and checks the outcome *and* the cache: after any failure, no file, partial or
not, may remain. ``TINYTORCH_DATA`` always points into ``tmp_path``.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import socket
import struct
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from tinytorch.milestones.data import (
    DataUnavailable,
    DownloadError,
    data_dir,
    datasets,
    load_cifar10,
    load_mnist,
)
from tinytorch.milestones.data.download import RemoteFile, fetch

FAST = dict(backoff=0.0, timeout=5.0, progress=False)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("TINYTORCH_DATA", str(root))
    return root


def files_under(path):
    """Every file (hidden ones included) below ``path``; [] if it does not exist."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) if path.exists() else []


class Server:
    """A tiny HTTP server. ``routes[path]`` is a list of responses served in turn (the last repeats).

    A response is ``(status, body)`` or ``(status, body, announced_length)``; an
    announced length larger than the body simulates a transfer cut short.
    """

    def __init__(self):
        self.routes: dict[str, list[tuple]] = {}
        self.hits: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                n = server.hits.get(self.path, 0)
                server.hits[self.path] = n + 1
                responses = server.routes.get(self.path, [(404, b"not found")])
                status, body, *announced = responses[min(n, len(responses) - 1)]
                self.send_response(status)
                self.send_header("Content-Length", str(announced[0] if announced else len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args):  # keep test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def closed_port_url(path="/f.bin") -> str:
    """A URL on a port nothing listens on: connection refused, i.e. no network."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def remote_for(body: bytes, urls, name="f.bin", size=True, md5=True) -> RemoteFile:
    return RemoteFile(
        name, hashlib.sha256(body).hexdigest(), tuple(urls),
        size=len(body) if size else None, md5=hashlib.md5(body).hexdigest() if md5 else None,
    )


PAYLOAD = bytes(range(256)) * 700  # 179,200 bytes: several 64 KiB chunks


# ----------------------------------------------------------------------------- fetch


def test_success_streams_verifies_and_renames(server, cache, capsys):
    server.routes["/f.bin"] = [(200, PAYLOAD)]
    remote = remote_for(PAYLOAD, [server.url("/f.bin")])
    path = fetch(remote, cache / "ds", backoff=0.0, timeout=5.0, progress=True)
    assert path == cache / "ds" / "f.bin" and path.read_bytes() == PAYLOAD
    assert files_under(cache) == ["ds/f.bin"]  # no temporary file left next to it
    assert "f.bin" in capsys.readouterr().err  # the tqdm bar went to stderr
    # Present and verified: no second request.
    fetch(remote, cache / "ds", **FAST)
    assert server.hits["/f.bin"] == 1


def test_checksum_mismatch_leaves_nothing(server, cache):
    server.routes["/f.bin"] = [(200, PAYLOAD[:-1] + b"\x00")]  # same size, one byte differs
    remote = remote_for(PAYLOAD, [server.url("/f.bin")])
    with pytest.raises(DownloadError, match="checksum mismatch: SHA-256") as err:
        fetch(remote, cache / "ds", retries=3, **FAST)
    assert server.hits["/f.bin"] == 1  # a wrong file is not retried on the same mirror
    assert files_under(cache) == []
    assert f"place it at {cache / 'ds' / 'f.bin'}" in str(err.value)


def test_md5_pin_is_checked_too(server, cache):
    server.routes["/f.bin"] = [(200, PAYLOAD)]
    remote = dataclasses.replace(remote_for(PAYLOAD, [server.url("/f.bin")]), md5="0" * 32)
    with pytest.raises(DownloadError, match="MD5"):
        fetch(remote, cache / "ds", **FAST)
    assert files_under(cache) == []


def test_wrong_size_is_refused(server, cache):
    server.routes["/f.bin"] = [(200, PAYLOAD)]
    remote = dataclasses.replace(remote_for(PAYLOAD, [server.url("/f.bin")]), size=len(PAYLOAD) + 1)
    with pytest.raises(DownloadError, match="wrong size"):
        fetch(remote, cache / "ds", **FAST)
    assert files_under(cache) == []


def test_bad_mirror_falls_through_to_good_one(server, cache):
    server.routes["/bad/f.bin"] = [(200, b"corrupted" * 10)]
    server.routes["/good/f.bin"] = [(200, PAYLOAD)]
    remote = remote_for(PAYLOAD, [server.url("/missing/f.bin"), server.url("/bad/f.bin"),
                                  server.url("/good/f.bin")], size=False)
    assert fetch(remote, cache / "ds", **FAST).read_bytes() == PAYLOAD
    assert server.hits == {"/missing/f.bin": 1, "/bad/f.bin": 1, "/good/f.bin": 1}  # 404: not retried


def test_server_error_is_retried_with_exponential_backoff_then_fails(server, cache):
    server.routes["/f.bin"] = [(500, b"oops")]
    waits = []
    remote = remote_for(PAYLOAD, [server.url("/f.bin")])
    with pytest.raises(DownloadError, match=r"HTTP 500") as err:
        fetch(remote, cache / "ds", retries=4, backoff=0.25, timeout=5.0, progress=False, sleep=waits.append)
    assert server.hits["/f.bin"] == 4
    assert waits == [0.25, 0.5, 1.0]  # backoff * 2**attempt between attempts, none after the last
    assert "attempt 4/4" in str(err.value)
    assert files_under(cache) == [] and not (cache / "ds").exists()


def test_server_error_then_recovery(server, cache):
    server.routes["/f.bin"] = [(503, b""), (500, b""), (200, PAYLOAD)]
    remote = remote_for(PAYLOAD, [server.url("/f.bin")])
    assert fetch(remote, cache / "ds", retries=3, **FAST).read_bytes() == PAYLOAD
    assert server.hits["/f.bin"] == 3


def test_truncated_transfer_is_retried_and_never_kept(server, cache):
    # Content-Length announces the whole file, the server sends half and closes.
    server.routes["/f.bin"] = [(200, PAYLOAD[: len(PAYLOAD) // 2], len(PAYLOAD))]
    remote = remote_for(PAYLOAD, [server.url("/f.bin")], size=False, md5=False)
    with pytest.raises(DownloadError, match=r"(?i)incomplete|cut short|ProtocolError") as err:
        fetch(remote, cache / "ds", retries=2, **FAST)
    assert server.hits["/f.bin"] == 2  # transient: retried
    assert files_under(cache) == []
    assert "Nothing was written" in str(err.value)


def test_truncated_then_complete(server, cache):
    server.routes["/f.bin"] = [(200, PAYLOAD[:1000], len(PAYLOAD)), (200, PAYLOAD)]
    remote = remote_for(PAYLOAD, [server.url("/f.bin")])
    assert fetch(remote, cache / "ds", retries=2, **FAST).read_bytes() == PAYLOAD
    assert files_under(cache) == ["ds/f.bin"]


def test_no_network_connection_refused(cache):
    waits = []
    remote = remote_for(PAYLOAD, [closed_port_url(), closed_port_url()])
    with pytest.raises(DownloadError, match="ConnectionError") as err:
        fetch(remote, cache / "ds", retries=2, backoff=0.01, timeout=2.0, progress=False, sleep=waits.append)
    assert waits == [0.01, 0.01]  # each mirror: one wait between its two attempts
    msg = str(err.value)
    assert "by hand" in msg and str(cache / "ds" / "f.bin") in msg and remote.sha256 in msg
    assert files_under(cache) == []


def test_corrupt_existing_file_is_replaced_only_by_a_verified_one(server, cache):
    (cache / "ds").mkdir(parents=True)
    (cache / "ds" / "f.bin").write_bytes(b"old and wrong")
    server.routes["/f.bin"] = [(200, PAYLOAD)]
    remote = remote_for(PAYLOAD, [server.url("/f.bin")])
    assert fetch(remote, cache / "ds", **FAST).read_bytes() == PAYLOAD
    assert files_under(cache) == ["ds/f.bin"]


def test_fetch_argument_checks(cache):
    remote = remote_for(PAYLOAD, [closed_port_url()])
    with pytest.raises(ValueError, match="retries"):
        fetch(remote, cache, retries=0)
    with pytest.raises(ValueError, match="backoff"):
        fetch(remote, cache, backoff=-1)
    with pytest.raises(ValueError, match="filename"):
        RemoteFile("../x", "0" * 64, ())
    with pytest.raises(ValueError, match="sha256"):
        RemoteFile("x", "abc", ())


# ----------------------------------------------------------------------------- MNIST end to end


def idx_file(arr: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return gzip.compress(header + arr.astype(np.uint8).tobytes(), mtime=0)


@pytest.fixture
def fake_mnist(server, monkeypatch):
    """Serve a 5-train / 3-test MNIST with the real file names; pin their hashes."""
    rng = np.random.default_rng(3)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (5, 28, 28)),
        "train-labels-idx1-ubyte.gz": np.array([0, 1, 2, 3, 9]),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (3, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": np.array([7, 7, 4]),
    }
    files = []
    for name, arr in arrays.items():
        body = idx_file(arr)
        server.routes[f"/mnist/{name}"] = [(200, body)]
        files.append(remote_for(body, [server.url(f"/mnist/{name}")], name=name))
    monkeypatch.setitem(datasets.DATASETS, "mnist",
                        dataclasses.replace(datasets.DATASETS["mnist"], files=tuple(files)))
    return arrays


def test_load_mnist_download_end_to_end(fake_mnist, cache):
    with pytest.raises(DataUnavailable) as err:
        load_mnist()
    assert "tito data download mnist" in err.value.reason and str(cache / "mnist") in err.value.reason
    assert files_under(cache) == []

    d = load_mnist(download=True)
    a = fake_mnist
    assert d["x_train"].shape == (5, 28, 28) and d["x_train"].dtype == np.float32
    assert d["y_train"].dtype == np.int64 and d["x_test"].shape == (3, 28, 28)
    np.testing.assert_allclose(d["x_train"], a["train-images-idx3-ubyte.gz"] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(d["x_test"], a["t10k-images-idx3-ubyte.gz"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(d["y_train"], a["train-labels-idx1-ubyte.gz"])
    np.testing.assert_array_equal(d["y_test"], a["t10k-labels-idx1-ubyte.gz"])
    assert files_under(cache) == sorted(f"mnist/{n}" for n in a)
    assert datasets.is_cached("mnist")
    # Cached now: loads without download=True.
    np.testing.assert_array_equal(load_mnist()["y_test"], [7, 7, 4])


def test_load_mnist_rejects_corrupted_cached_file(fake_mnist, cache):
    load_mnist(download=True)
    (cache / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(DataUnavailable, match="SHA-256|bytes, expected"):
        load_mnist()


def test_mnist_download_failure_leaves_nothing(server, fake_mnist, cache):
    server.routes["/mnist/t10k-images-idx3-ubyte.gz"] = [(500, b"")]
    with pytest.raises(DownloadError, match="t10k-images"):
        datasets.download_dataset("mnist", retries=1, backoff=0.0, timeout=5.0, progress=False)
    # The files before the failing one are complete and verified; nothing partial anywhere.
    assert all(not name.startswith(".") for name in (p.rsplit("/", 1)[-1] for p in files_under(cache)))
    assert "mnist/t10k-images-idx3-ubyte.gz" not in files_under(cache)


# ----------------------------------------------------------------------------- CIFAR-10 end to end


def cifar_records(images: np.ndarray, labels: np.ndarray) -> bytes:
    return b"".join(bytes([int(lab)]) + img.astype(np.uint8).tobytes() for img, lab in zip(images, labels))


def cifar_archive(extra_members=()) -> tuple[bytes, dict]:
    rng = np.random.default_rng(4)
    content = {}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            imgs = rng.integers(0, 256, (2, 3, 32, 32))
            labs = rng.integers(0, 10, 2)
            content[name] = (imgs, labs)
            data = cifar_records(imgs, labs)
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}.bin")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info, data in extra_members:
            tf.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue(), content


def pin_cifar(monkeypatch, body: bytes, urls):
    remote = remote_for(body, urls, name="cifar-10-binary.tar.gz")
    monkeypatch.setitem(datasets.DATASETS, "cifar10",
                        dataclasses.replace(datasets.DATASETS["cifar10"], files=(remote,)))


def test_load_cifar10_download_end_to_end(server, monkeypatch, cache):
    body, content = cifar_archive()
    server.routes["/c.tgz"] = [(200, body)]
    pin_cifar(monkeypatch, body, [server.url("/c.tgz")])
    with pytest.raises(DataUnavailable) as err:
        load_cifar10()
    assert "tito data download cifar10" in err.value.reason and str(cache / "cifar10") in err.value.reason

    d = load_cifar10(download=True)
    assert d["x_train"].shape == (10, 3, 32, 32) and d["x_test"].shape == (2, 3, 32, 32)
    assert d["x_train"].dtype == np.float32 and d["y_train"].dtype == np.int64
    train_imgs = np.concatenate([content[f"data_batch_{i}"][0] for i in range(1, 6)])
    np.testing.assert_allclose(d["x_train"], train_imgs / 255.0, rtol=1e-6)
    train_labels = np.concatenate([content[f"data_batch_{i}"][1] for i in range(1, 6)])
    np.testing.assert_array_equal(d["y_train"], train_labels)
    np.testing.assert_array_equal(d["y_test"], content["test_batch"][1])
    # Only the extracted batches remain: no archive, no staging directory.
    assert files_under(cache) == sorted(f"cifar10/cifar-10-batches-bin/{n}.bin" for n in content)
    assert datasets.is_cached("cifar10")


def test_cifar10_archive_placed_by_hand_is_verified_and_extracted(monkeypatch, cache):
    body, content = cifar_archive()
    pin_cifar(monkeypatch, body, [closed_port_url()])
    (cache / "cifar10").mkdir(parents=True)
    (cache / "cifar10" / "cifar-10-binary.tar.gz").write_bytes(body)
    d = load_cifar10()  # no download: the archive is already there
    np.testing.assert_array_equal(d["y_test"], content["test_batch"][1])


def test_cifar10_archive_with_traversal_member_is_refused(server, monkeypatch, tmp_path, cache):
    evil = tarfile.TarInfo("../../evil.txt")
    evil.size = 5
    body, _ = cifar_archive(extra_members=[(evil, b"pwned")])
    server.routes["/c.tgz"] = [(200, body)]
    pin_cifar(monkeypatch, body, [server.url("/c.tgz")])
    with pytest.raises(DownloadError, match="outside the target"):
        load_cifar10(download=True)
    assert files_under(cache) == []
    assert not list(tmp_path.rglob("evil.txt"))


def test_data_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYTORCH_DATA", str(tmp_path / "elsewhere"))
    assert data_dir() == tmp_path / "elsewhere" and not (tmp_path / "elsewhere").exists()
    assert data_dir(create=True).is_dir()
    monkeypatch.delenv("TINYTORCH_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr("sys.platform", "linux")
    assert data_dir() == tmp_path / "xdg" / "tinytorch"
