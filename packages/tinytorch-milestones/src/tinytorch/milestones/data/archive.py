"""Extract a tar archive without trusting its member names.

A tar member can be named ``../../.bashrc`` or ``/etc/passwd``, or be a symbolic
or hard link pointing anywhere; a naive ``extractall`` writes wherever the
archive says. Here every member is checked *before anything is written*:

* only regular files and directories are accepted (links, devices, FIFOs are refused);
* names must be relative, without ``..`` components or drive letters, and must
  resolve inside the target directory.

The archive must also stay within limits checked on the headers before anything is
written: at most ``max_members`` members and ``max_bytes`` bytes in total (a 255 KB
``.tar.gz`` can describe a 256 MiB file of zeros). The copy itself counts the bytes
too, so a member can never write more than its header declared.

Files are written by copying their bytes (never by ``TarFile.extract``, so no
permissions, owners or times from the archive are applied) into a staging
directory next to the target, which is renamed into place only when the whole
archive has been extracted. A failure leaves neither the target nor the staging
directory behind.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath


class UnsafeArchiveError(ValueError):
    """An archive member would escape the target directory, is not a plain file/directory,
    or the archive exceeds the member-count or total-size limit."""


DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB extracted, unless the caller knows better
DEFAULT_MAX_MEMBERS = 10_000


def check_member(member: tarfile.TarInfo, root: Path) -> Path | None:
    """Where ``member`` would go under ``root`` (``None`` for the root itself); raise if unsafe."""
    name = member.name
    if not (member.isfile() or member.isdir()):
        kind = "link" if (member.issym() or member.islnk()) else "special file"
        raise UnsafeArchiveError(f"archive member {name!r} is a {kind}; only regular files are accepted")
    if "\\" in name or "\x00" in name:
        raise UnsafeArchiveError(f"archive member {name!r} has a backslash or NUL in its name")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (parts and ":" in parts[0]):
        raise UnsafeArchiveError(f"archive member {name!r} has an absolute path")
    if ".." in parts:
        raise UnsafeArchiveError(f"archive member {name!r} points outside the target ('..')")
    parts = tuple(p for p in parts if p != ".")
    if not parts:
        if member.isdir():
            return None
        raise UnsafeArchiveError(f"archive member {name!r} has an empty name")
    dest = root.joinpath(*parts)
    # Defence in depth: the resolved path must stay under the resolved root.
    if not dest.resolve().is_relative_to(root.resolve()):
        raise UnsafeArchiveError(f"archive member {name!r} resolves outside the target")
    return dest


def safe_extract_tar(
    archive: str | Path,
    target: str | Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> Path:
    """Extract ``archive`` (any compression tarfile reads) into the new directory ``target``.

    Args:
        archive: path of the ``.tar``/``.tar.gz``.
        target: directory to create; it must not exist yet.
        max_bytes: refuse an archive whose members add up to more bytes than this.
        max_members: refuse an archive with more members than this.

    Returns:
        ``target``.

    Raises:
        UnsafeArchiveError: a member is a link or special file, its name escapes ``target``,
            or a limit is exceeded (nothing is written in that case).
        FileExistsError: ``target`` already exists.
        tarfile.TarError: the archive is corrupt.
    """
    archive, target = Path(archive), Path(target)
    if target.exists():
        raise FileExistsError(f"extraction target {target} already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".extract"))
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = []
            total = 0
            for member in tf:  # streaming the headers: stop early on an archive of millions of members
                members.append(member)
                total += max(member.size, 0) if member.isfile() else 0
                if len(members) > max_members:
                    raise UnsafeArchiveError(f"{archive.name} has more than {max_members} members")
                if total > max_bytes:
                    raise UnsafeArchiveError(
                        f"{archive.name} would extract to more than {max_bytes:,} bytes "
                        f"(member {member.name!r} reaches {total:,}): refused"
                    )
            plan = [(m, check_member(m, staging)) for m in members]  # validate all first
            for member, dest in plan:
                if dest is None:
                    continue
                if member.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(member)
                if src is None:  # cannot happen for isfile(), but do not trust it
                    raise UnsafeArchiveError(f"archive member {member.name!r} has no data")
                with src, open(dest, "xb") as out:  # "x": a duplicate member name is an error
                    _copy_at_most(src, out, member.size, member.name)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _copy_at_most(src, out, size: int, name: str) -> None:
    """Copy exactly ``size`` bytes (the member's declared size) in 1 MiB pieces."""
    left = size
    while left > 0:
        chunk = src.read(min(left, 1 << 20))
        if not chunk:
            raise UnsafeArchiveError(f"archive member {name!r} is shorter than its header says")
        out.write(chunk)
        left -= len(chunk)
