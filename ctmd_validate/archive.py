"""The dataset as downloaded: a zip archive read member by member, never extracted to disk.

``check COVID-CT-MD.zip`` lays the archive's members out as a tree (folders from the member
names) and the scan walks that tree as it walks a folder: each image is read from the
archive into memory in the scan's worker processes, its CRC checked by the zip reader.
Members that an extraction could turn against the user are refused and reported, never
read: absolute names, ``..`` components, symbolic links, names that are not valid paths,
and duplicates. An archive cut short (no central directory at its end) is reported too.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath

from .errors import CtmdError
from .paths import display

__all__ = [
    "IMAGE_BYTES",
    "MAX_MEMBER_BYTES",
    "Archive",
    "MemberPath",
    "archive_md5",
    "is_archive",
    "read_member",
]

#: A member larger than this is not read (a label array takes 20 MiB; see ``IMAGE_BYTES``).
MAX_MEMBER_BYTES = 1 << 30
#: An image member larger than this is not read (a CT slice takes 0.5 MiB).
IMAGE_BYTES = 256 << 20
_LOCAL_HEADER = b"PK\x03\x04"
_EMPTY_ARCHIVE = b"PK\x05\x06"


def is_archive(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a regular file that starts like a zip archive."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as fh:
            return fh.read(4) in (_LOCAL_HEADER, _EMPTY_ARCHIVE)
    except OSError:
        return False


@dataclass(frozen=True)
class Problem:
    """A member refused, or the archive itself damaged: ``kind`` is the check it feeds."""

    kind: str  # "archive.unsafe_member" or "archive.unreadable"
    member: str | None
    reason: str


@dataclass
class Archive:
    """The members of a zip archive as a tree of folders."""

    path: str
    size: int
    #: folder (a tuple of names, ``()`` the top) -> child name -> member name (None: folder)
    folders: dict[tuple[str, ...], dict[str, str | None]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    members: int = 0

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Archive:
        """Read the central directory; a damaged archive is a problem, not an exception."""
        real = os.path.realpath(path)
        try:
            size = os.stat(real).st_size
        except OSError as exc:
            raise CtmdError(
                f"cannot read the archive {display(str(path))}: {exc.strerror}"
            ) from exc
        archive = cls(real, size, {(): {}})
        try:
            with zipfile.ZipFile(real) as zf:
                infos = zf.infolist()
        except zipfile.BadZipFile:
            archive.problems.append(
                Problem(
                    "archive.unreadable",
                    None,
                    "the archive has no central directory at its end: it is truncated (the "
                    "download stopped early) or damaged",
                )
            )
            return archive
        except OSError as exc:
            raise CtmdError(
                f"cannot read the archive {display(str(path))}: {exc.strerror}"
            ) from exc
        seen: set[str] = set()
        for info in infos:
            archive.members += 1
            reason = _unsafe(info)
            name = info.filename
            if reason is None and name.rstrip("/") in seen:
                reason = "listed twice: an extraction would overwrite the first"
            reason = reason or archive._add(info)
            if reason is not None:
                archive.problems.append(Problem("archive.unsafe_member", name, reason))
                continue
            seen.add(name.rstrip("/"))
        return archive

    def _add(self, info: zipfile.ZipInfo) -> str | None:
        """Put a member into the tree; why not, when a file and a folder share a name."""
        parts = tuple(p for p in info.filename.split("/") if p)
        if not parts:
            return "an empty name"
        clash = "a file and a folder of the same name: an extraction keeps only one"
        for depth in range(len(parts) - 1):
            if self.folders.get(parts[:depth], {}).get(parts[depth]):
                return clash
        last = self.folders.get(parts[:-1], {})
        if parts[-1] in last and (last[parts[-1]] is None) != info.is_dir():
            return clash
        for depth in range(len(parts) - 1):
            self.folders.setdefault(parts[:depth], {})[parts[depth]] = None
            self.folders.setdefault(parts[: depth + 1], {})
        if info.is_dir():
            self.folders.setdefault(parts[:-1], {})[parts[-1]] = None
            self.folders.setdefault(parts, {})
        else:
            self.folders.setdefault(parts[:-1], {})[parts[-1]] = info.filename
        return None

    def children(self, folder: tuple[str, ...]) -> list[tuple[str, str | None]]:
        """``(name, member)`` of a folder's entries, sorted; member None for a folder."""
        return sorted(self.folders.get(folder, {}).items())

    def member(self, folder: tuple[str, ...], name: str) -> str | None:
        """The member name of file ``name`` in ``folder``, or None."""
        return self.folders.get(folder, {}).get(name)


def _cannot(path: str | os.PathLike[str], exc: OSError) -> CtmdError:
    return CtmdError(f"cannot read the archive {display(str(path))}: {exc.strerror or exc}")


def _unsafe(info: zipfile.ZipInfo) -> str | None:
    """Why extracting this member could write outside the target folder, or None."""
    name = info.filename
    mode = info.external_attr >> 16
    if not name or "\0" in name:
        return "an empty name or one holding a NUL byte"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or name.startswith("\\"):
        return "an absolute path: an extraction would write outside the target folder"
    if "\\" in name:
        return "a backslash in the name: on Windows an extraction would read it as a folder"
    if any(part == ".." for part in PurePosixPath(name).parts):
        return "a '..' component: an extraction would write outside the target folder (zip slip)"
    if info.create_system == 3 and stat.S_ISLNK(mode):
        return "a symbolic link: an extraction would create a link, which is not followed"
    if info.flag_bits & 0x1:
        return "encrypted: cannot be read without a password"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        # Python inflates bzip2 and LZMA members whole, whatever size they declare: a
        # 2 KB member can fill memory
        return (
            f"compressed with method {info.compress_type} (not stored or deflated): its size "
            "cannot be bounded while reading, so it is not read"
        )
    if any(part in ("", ".") for part in name.rstrip("/").split("/")):
        return "an empty or '.' component: two names could mean one file"
    return None


def _zipfile(path: str) -> zipfile.ZipFile:
    """One open archive per process (the scan's workers read many members each).

    Keyed by the process id too: a forked worker must not share the parent's file offset.
    """
    return _open_zipfile(path, os.getpid())


@cache
def _open_zipfile(path: str, pid: int) -> zipfile.ZipFile:
    del pid  # part of the cache key only
    return zipfile.ZipFile(path)


def read_member(
    path: str, member: str, limit: int = MAX_MEMBER_BYTES, *, head: int | None = None
) -> bytes:
    """A member's bytes, its CRC verified. OSError (with a plain reason) when it cannot be.

    ``head``: only its first bytes (no CRC check then: the member is not read to its end).
    """
    try:
        zf = _zipfile(path)
        info = zf.getinfo(member)
        if head is not None:
            with zf.open(info) as fh:
                return fh.read(head)
        if info.file_size > limit:
            raise OSError(f"a member of {info.file_size} bytes: larger than {limit} bytes")
        with zf.open(info) as fh:
            data = fh.read(limit + 1)
    except zipfile.BadZipFile as exc:  # its text quotes the member name: not kept
        what = "its CRC-32 does not match" if "CRC" in str(exc) else "its data are damaged"
        raise OSError(f"damaged member in the archive: {what}") from exc
    except zlib.error as exc:
        raise OSError(
            "damaged member in the archive: its compressed data cannot be inflated"
        ) from exc
    except (EOFError, zipfile.LargeZipFile, NotImplementedError, KeyError, ValueError) as exc:
        raise OSError(f"member cannot be read from the archive ({type(exc).__name__})") from exc
    except RuntimeError as exc:  # encrypted, or a bad password
        raise OSError("member cannot be read from the archive (encrypted)") from exc
    if len(data) > limit:
        raise OSError(f"a member larger than {limit} bytes")
    return data


class MemberPath:
    """The little of ``pathlib.Path`` the label readers use, for one archive member."""

    def __init__(self, archive: str, member: str, limit: int = MAX_MEMBER_BYTES) -> None:
        self.archive = archive
        self.member = member
        self.name = PurePosixPath(member).name
        self._limit = limit
        self._data: bytes | None = None

    def read_bytes(self) -> bytes:
        if self._data is None:
            self._data = read_member(self.archive, self.member, self._limit)
        return self._data

    def stat(self) -> os.stat_result:
        info = _zipfile(self.archive).getinfo(self.member)
        return os.stat_result((stat.S_IFREG | 0o444, 0, 0, 1, 0, 0, info.file_size, 0, 0, 0))

    def open(self, mode: str = "rb") -> io.BytesIO:
        if mode != "rb":
            raise ValueError("archive members are read-only")
        return io.BytesIO(self.read_bytes())

    def __str__(self) -> str:
        return self.member


def archive_md5(path: str | os.PathLike[str]) -> str:
    """The MD5 of the whole archive file (the figure the dataset publishes)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "md5").hexdigest()


def shown(archive: Archive, parts: tuple[str, ...]) -> Path:
    """A member path as the report shows it: below the archive's own name."""
    return Path(archive.path).joinpath(*parts)
