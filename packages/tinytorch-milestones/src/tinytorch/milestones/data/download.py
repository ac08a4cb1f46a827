"""Download one file into the cache: mirrors, retries, streaming, verification, atomic rename.

The file is streamed (64 KiB chunks, constant memory) into a temporary file in
the destination directory while its SHA-256 (and MD5, when pinned) is computed,
with a tqdm progress bar on stderr. Only when the byte count matches the
``Content-Length`` and the pinned size, and the digests match the pins, is the
temporary file renamed onto its final name with ``os.replace`` (atomic on one
file system). Any failure deletes the temporary file, so the cache only ever
holds complete, verified files.

Failures are classified:

* *transient* (connection refused or reset, timeout, HTTP 5xx/408/429, body
  shorter than announced): retried on the same mirror after an exponential
  backoff ``backoff * 2**attempt`` seconds;
* *permanent for this mirror* (other HTTP 4xx, wrong size or checksum): the
  next mirror is tried at once.

When every mirror failed, :class:`DownloadError` lists what each attempt did
and says where to put the file by hand.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tinytorch.milestones.data._cache import DownloadError

CHUNK = 1 << 16
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RemoteFile:
    """A file to download: its name in the cache, pinned digests and size, and where to get it.

    Attributes:
        filename: name in the cache directory (no path components).
        sha256: pinned SHA-256, lowercase hex.
        urls: full URLs, tried in order (mirrors).
        size: pinned size in bytes, or None.
        md5: pinned MD5 (checked in addition to SHA-256), or None.
    """

    filename: str
    sha256: str
    urls: tuple[str, ...]
    size: int | None = None
    md5: str | None = None

    def __post_init__(self):
        if not self.filename or Path(self.filename).name != self.filename or self.filename in (".", ".."):
            raise ValueError(f"filename must be a plain file name, got {self.filename!r}")
        if len(self.sha256) != 64:
            raise ValueError(f"sha256 must be 64 hex digits, got {self.sha256!r}")


class _Transient(Exception):
    """Worth retrying on the same mirror."""


class _Permanent(Exception):
    """This mirror will not give us the right file: try the next one."""


def file_digests(path: str | Path) -> tuple[str, str]:
    """(SHA-256, MD5) of a file, read in chunks."""
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


def verify_file(path: str | Path, remote: RemoteFile) -> str | None:
    """None if ``path`` has the pinned size and digests, else a sentence saying what differs."""
    path = Path(path)
    if not path.is_file():
        return f"{path} does not exist"
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        return f"{path} has {size} bytes, expected {remote.size}"
    sha, md5 = file_digests(path)
    if sha != remote.sha256:
        return f"{path} has SHA-256 {sha}, expected {remote.sha256}"
    if remote.md5 is not None and md5 != remote.md5:
        return f"{path} has MD5 {md5}, expected {remote.md5}"
    return None


def fetch(
    remote: RemoteFile,
    dest_dir: str | Path,
    *,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 30.0,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Make ``dest_dir/remote.filename`` a verified copy of ``remote``; return its path.

    An existing file that verifies is kept (no network access). Otherwise each
    URL of ``remote.urls`` is tried, up to ``retries`` attempts each for
    transient failures.

    Args:
        remote: what to fetch.
        dest_dir: cache directory (created if needed).
        retries: attempts per mirror (>= 1).
        backoff: seconds before the first retry; doubles each retry.
        timeout: seconds to wait for connecting and between bytes.
        progress: show a tqdm bar on stderr.
        sleep: the function used to wait (tests pass a recorder).

    Raises:
        DownloadError: no mirror delivered the right bytes; nothing was written.
    """
    if retries < 1:
        raise ValueError(f"retries must be >= 1, got {retries}")
    if backoff < 0:
        raise ValueError(f"backoff must be >= 0, got {backoff}")
    dest_dir = Path(dest_dir)
    dest = dest_dir / remote.filename
    if dest.is_file() and verify_file(dest, remote) is None:
        return dest
    created = not dest_dir.exists()
    dest_dir.mkdir(parents=True, exist_ok=True)

    errors: list[str] = []
    for url in remote.urls:
        for attempt in range(retries):
            try:
                _download_once(url, remote, dest, timeout=timeout, progress=progress)
                return dest
            except _Permanent as err:
                errors.append(f"{url}: {err}")
                break
            except _Transient as err:
                errors.append(f"{url} (attempt {attempt + 1}/{retries}): {err}")
                if attempt + 1 < retries:
                    sleep(backoff * 2**attempt)
    if created:
        try:
            dest_dir.rmdir()  # leave no empty directory behind either
        except OSError:
            pass
    raise DownloadError(
        f"could not download {remote.filename}; every mirror failed:\n  "
        + "\n  ".join(errors)
        + f"\nNothing was written. To install it by hand, download {remote.filename} from one of\n  "
        + "\n  ".join(remote.urls)
        + f"\nand place it at {dest} (SHA-256 {remote.sha256})."
    )


def _download_once(url: str, remote: RemoteFile, dest: Path, *, timeout: float, progress: bool) -> None:
    """One attempt: stream ``url`` to a temporary file, verify, rename onto ``dest``."""
    import requests  # imported here: loading shipped data never needs it
    import urllib3
    from tqdm import tqdm

    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{remote.filename}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                # identity encoding: we hash the bytes of the file itself, never a re-encoded body.
                with requests.get(
                    url, stream=True, timeout=timeout, headers={"Accept-Encoding": "identity"}
                ) as resp:
                    if resp.status_code != 200:
                        msg = f"HTTP {resp.status_code} {resp.reason or ''}".strip()
                        raise (_Transient if resp.status_code in RETRY_STATUS else _Permanent)(msg)
                    announced = resp.headers.get("Content-Length")
                    announced = int(announced) if announced and announced.isdigit() else None
                    total = announced if announced is not None else remote.size
                    sha, md5, received = hashlib.sha256(), hashlib.md5(), 0
                    with tqdm(
                        total=total, unit="B", unit_scale=True, unit_divisor=1024,
                        desc=remote.filename, file=sys.stderr, disable=not progress, leave=False,
                    ) as bar:
                        for chunk in resp.raw.stream(CHUNK, decode_content=False):
                            out.write(chunk)
                            sha.update(chunk)
                            md5.update(chunk)
                            received += len(chunk)
                            bar.update(len(chunk))
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as err:
                # connection refused/reset, timeout, body cut short (urllib3 IncompleteRead)
                raise _Transient(f"{type(err).__name__}: {err}") from err
            out.flush()
            os.fsync(out.fileno())
        if announced is not None and received != announced:
            raise _Transient(f"transfer cut short: received {received} of {announced} bytes")
        if remote.size is not None and received != remote.size:
            raise _Permanent(f"wrong size: received {received} bytes, expected {remote.size}")
        if sha.hexdigest() != remote.sha256:
            raise _Permanent(f"checksum mismatch: SHA-256 {sha.hexdigest()}, expected {remote.sha256}")
        if remote.md5 is not None and md5.hexdigest() != remote.md5:
            raise _Permanent(f"checksum mismatch: MD5 {md5.hexdigest()}, expected {remote.md5}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
