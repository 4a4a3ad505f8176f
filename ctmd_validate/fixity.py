"""Fixity: SHA-256 of every file below a root, and BagIt manifests of them.

``list_files`` walks the root without following a symbolic link (folders are opened one
component at a time with ``O_NOFOLLOW`` relative to their parent's descriptor), so nothing
outside the root is listed or read, not even when a folder is swapped for a link meanwhile.
``hash_files`` hashes the listed files in threads; ``write_manifest`` writes a BagIt
``manifest-sha256.txt`` (RFC 8493 §2.1.3) and a companion of sizes; ``read_manifest``
parses one (ours, bagit-python's or ``sha256sum``'s); ``compare`` names every difference.
Library code only: nothing here prints.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path

from ctmd_validate.atomic import write_atomic
from ctmd_validate.errors import CtmdError
from ctmd_validate.paths import contains, display

__all__ = [
    "CHECKSUM",
    "EXTRA",
    "MISSING",
    "SIZE",
    "Discrepancy",
    "Manifest",
    "ManifestEntry",
    "TreeFile",
    "Verification",
    "compare",
    "hash_files",
    "list_files",
    "read_manifest",
    "sizes_path",
    "verify",
    "write_manifest",
]

MISSING = "integrity.missing_file"
EXTRA = "integrity.extra_file"
SIZE = "integrity.size"
CHECKSUM = "integrity.checksum"

#: Read buffer per thread (hashlib releases the GIL while it hashes a large buffer).
BUFFER_SIZE = 1 << 20
#: A manifest (or its sizes companion) larger than this is refused unread.
MAX_MANIFEST_BYTES = 256 << 20
#: One task of the thread pool: consecutive files up to this many, or this many bytes.
_CHUNK_FILES = 64
_CHUNK_BYTES = 32 << 20

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
#: Folders walked by descriptor (``openat``); elsewhere by path, last component unfollowed.
_AT = bool(_DIRECTORY and _NOFOLLOW) and os.open in os.supports_dir_fd
_AT = _AT and os.scandir in os.supports_fd

_HEX64 = re.compile(rb"[0-9a-fA-F]{64}")
#: ``<hash>`` then `` *`` (sha256sum's binary marker) or one or more spaces/tabs (BagIt).
_LINE = re.compile(rb"([0-9a-fA-F]{64})(?: \*|[ \t]+)(.*)", re.DOTALL)
#: sha256sum's escaped form, for a name holding a backslash, LF or CR: ``\<hash>  <name>``.
_ESCAPED_LINE = re.compile(rb"\\([0-9a-fA-F]{64})(?: \*|  )(.*)", re.DOTALL)
_SIZE_LINE = re.compile(rb"([0-9]{1,20})[ \t]+(.*)", re.DOTALL)
_PERCENT = re.compile(r"%(25|0[aA]|0[dD])")
_UNPERCENT = {"25": "%", "0a": "\n", "0d": "\r"}
_SHA256SUM_ESCAPES = re.compile(r"\\([\\nr])")
_UNESCAPE = {"\\": "\\", "n": "\n", "r": "\r"}


@dataclass(frozen=True)
class TreeFile:
    """One regular file under the root."""

    path: str  # relative POSIX path, raw (not percent-encoded)
    size: int
    sha256: str | None  # None when not hashed (fast mode) or when reading failed
    error: str | None  # why it could not be read; never any of its contents


@dataclass(frozen=True)
class ManifestEntry:
    """One line of a manifest."""

    path: str
    sha256: str
    size: int | None  # from the sizes companion file when present
    line: int = 0  # where the manifest lists it (1-based)


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest: its entries by path, and what was wrong with its lines."""

    entries: dict[str, ManifestEntry]
    problems: list[str]
    sizes_found: bool


@dataclass(frozen=True)
class Discrepancy:
    """One difference between the tree and the manifest."""

    kind: str  # MISSING, EXTRA, SIZE or CHECKSUM
    path: str
    expected: object  # hash / size / None
    actual: object
    #: the manifest's line, for a listed file (an annotation: not compared)
    line: int = field(default=0, compare=False)


# --------------------------------------------------------------------------- the walk


def _real_root(root: str | os.PathLike[str]) -> str:
    """The root as a real path; CtmdError unless it is a folder."""
    real = os.path.realpath(os.fspath(root))
    if not os.path.isdir(real):
        raise CtmdError(f"not a folder: {display(os.fspath(root))}")
    return real


def _open_root(real_root: str) -> int | str:
    """A handle on the root folder: a descriptor where folders can be walked by one."""
    if not _AT:
        return real_root
    try:
        return os.open(real_root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    except OSError as exc:
        raise CtmdError(f"cannot open the folder {display(real_root)}: {_reason(exc)}") from exc


def _open_dir_at(parent: int | str, name: str) -> int | str:
    """The folder ``name`` inside ``parent``, opened without following a link."""
    if isinstance(parent, str):
        path = os.path.join(parent, name)
        if os.path.islink(path):
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
        return path
    return os.open(name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=parent)


def _close(handle: int | str) -> None:
    if isinstance(handle, int):
        with contextlib.suppress(OSError):
            os.close(handle)


def _excluded(real_root: str, exclude: Iterable[str | os.PathLike[str]]) -> set[str]:
    """Relative POSIX paths of the excluded files/folders that lie inside the root.

    Each is a filesystem path (relative ones to the working folder). Its folders are
    resolved, its last component is not, so a link in the root is excluded as itself.
    """
    out: set[str] = set()
    for item in exclude:
        path = os.path.abspath(os.fspath(item))
        real = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
        if real != real_root and contains(real_root, real):
            out.add(os.path.relpath(real, real_root).replace(os.sep, "/"))
    return out


def list_files(  # noqa: C901, PLR0915  (one walk: a rule per entry kind)
    root: str | os.PathLike[str], exclude: Iterable[str | os.PathLike[str]] = ()
) -> tuple[list[tuple[str, str, int]], list[str]]:
    """Every regular file below ``root``: ``(relative POSIX path, absolute real path, size)``.

    Sorted by path. The second value lists, sorted, the relative paths that were neither
    followed nor hashed: symbolic links, pipes, sockets, devices, and folders that could
    not be listed (these end with ``/``: a manifest built without them is incomplete).
    ``exclude``: files or folders to leave out (the manifest itself when it is inside).
    CtmdError when the root itself is no readable folder.
    """
    real_root = _real_root(root)
    excluded = _excluded(real_root, exclude)
    files: list[tuple[str, str, int]] = []
    skipped: list[str] = []

    def scan(handle: int | str, prefix: str) -> Iterator[str]:
        """List one folder into files/skipped; its subfolders' names."""
        subdirs: list[str] = []
        with os.scandir(handle) as entries:
            for entry in entries:
                rel = prefix + entry.name
                if rel in excluded:
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        subdirs.append(entry.name)
                    elif entry.is_file(follow_symlinks=False):
                        size = entry.stat(follow_symlinks=False).st_size
                        files.append((rel, os.path.join(real_root, *rel.split("/")), size))
                    else:
                        skipped.append(rel)
                except FileNotFoundError:
                    continue  # gone meanwhile
                except OSError:
                    skipped.append(rel)
        return iter(subdirs)

    root_fd = _open_root(real_root)
    try:
        stack: list[tuple[int | str, str, Iterator[str]]] = [(root_fd, "", scan(root_fd, ""))]
    except OSError as exc:
        _close(root_fd)
        raise CtmdError(f"cannot list the folder {display(real_root)}: {_reason(exc)}") from exc
    try:
        while stack:
            handle, prefix, subdirs = stack[-1]
            name = next(subdirs, None)
            if name is None:
                if handle != root_fd:
                    _close(handle)
                stack.pop()
                continue
            rel = prefix + name
            try:
                child = _open_dir_at(handle, name)
            except FileNotFoundError:
                continue
            except OSError as exc:  # a link now (ELOOP/ENOTDIR), or not searchable
                is_link = exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK)
                skipped.append(rel if is_link else rel + "/")
                continue
            try:
                stack.append((child, rel + "/", scan(child, rel + "/")))
            except OSError:
                _close(child)
                skipped.append(rel + "/")
    finally:
        for handle, _, _ in stack:
            if handle != root_fd:
                _close(handle)
        _close(root_fd)
    files.sort()
    skipped.sort()
    return files, skipped


# --------------------------------------------------------------------------- hashing


def _reason(exc: OSError) -> str:
    """``PermissionError: Permission denied``: the type and strerror, never a file name."""
    return f"{type(exc).__name__}: {exc.strerror or 'cannot be read'}"


def _parts(rel: str) -> list[str] | None:
    """The components of a relative POSIX path; None when absolute, empty or with '..'."""
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return None
    return parts


class _Opener:
    """Opens files below the root without following links; caches the last parent folder.

    One per task (thread-confined): a task hashes consecutive files, mostly siblings.
    """

    def __init__(self, root: int | str) -> None:
        self.root = root
        self.parent_rel: tuple[str, ...] | None = None
        self.parent: int | str = root

    def _parent(self, parts: tuple[str, ...]) -> int | str:
        if parts == self.parent_rel:
            return self.parent
        self.close()
        handle = self.root
        try:
            for part in parts:
                nxt = _open_dir_at(handle, part)
                if handle != self.root:
                    _close(handle)
                handle = nxt
        except BaseException:
            if handle != self.root:
                _close(handle)
            raise
        self.parent_rel, self.parent = parts, handle
        return handle

    def open(self, parts: list[str]) -> int:
        parent = self._parent(tuple(parts[:-1]))
        flags = os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC
        if isinstance(parent, str):
            return os.open(os.path.join(parent, parts[-1]), flags)
        return os.open(parts[-1], flags, dir_fd=parent)

    def close(self) -> None:
        if self.parent != self.root:
            _close(self.parent)
        self.parent_rel, self.parent = None, self.root


_local = threading.local()
LINKED_FOLDER = "a folder on its path is a symbolic link (or no folder) now; not followed"


def _buffer() -> memoryview:
    """This thread's reusable read buffer."""
    view: memoryview | None = getattr(_local, "view", None)
    if view is None or len(view) != BUFFER_SIZE:
        view = _local.view = memoryview(bytearray(BUFFER_SIZE))
    return view


def _hash_one(opener: _Opener, rel: str, listed_size: int) -> TreeFile:
    """Hash one file; a file that cannot be read gets ``error`` set, never an exception."""
    parts = _parts(rel)
    if parts is None:
        return TreeFile(rel, listed_size, None, "not a relative path inside the root")
    try:
        fd = opener.open(parts)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):  # the file itself is a link now
            return TreeFile(rel, listed_size, None, "a symbolic link now; not followed")
        if exc.errno == errno.ENOTDIR:  # a folder on the way (O_DIRECTORY|O_NOFOLLOW)
            return TreeFile(rel, listed_size, None, LINKED_FOLDER)
        return TreeFile(rel, listed_size, None, _reason(exc))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped for a folder, pipe... meanwhile
            return TreeFile(rel, listed_size, None, "not a regular file")
        digest = hashlib.sha256()
        view = _buffer()
        size = 0
        while n := os.readv(fd, [view]):
            digest.update(view[:n])
            size += n
    except OSError as exc:
        return TreeFile(rel, listed_size, None, _reason(exc))
    finally:
        os.close(fd)
    return TreeFile(rel, size, digest.hexdigest(), None)


def _chunks(files: list[tuple[str, str, int]]) -> list[range]:
    """Consecutive index ranges of at most _CHUNK_FILES files or _CHUNK_BYTES bytes."""
    out: list[range] = []
    start, nbytes = 0, 0
    for i, (_, _, size) in enumerate(files):
        nbytes += size
        if i + 1 - start >= _CHUNK_FILES or nbytes >= _CHUNK_BYTES:
            out.append(range(start, i + 1))
            start, nbytes = i + 1, 0
    if start < len(files):
        out.append(range(start, len(files)))
    return out


def hash_files(  # noqa: C901  (pool, progress, per-file errors)
    root: str | os.PathLike[str],
    files: list[tuple[str, str, int]] | None = None,
    *,
    jobs: int | None = None,
    fast: bool = False,
    progress: Callable[[int, int], None] | None = None,
    exclude: Iterable[str | os.PathLike[str]] = (),
) -> list[TreeFile]:
    """SHA-256 of ``files`` (default: ``list_files(root, exclude)``), in their order.

    Threads (``jobs``, default: the CPU count) each hash runs of consecutive files with a
    reused 1 MiB buffer. Files are opened by their relative path below ``root``, one folder
    at a time, never through a link. ``fast``: sizes only, nothing opened (``sha256`` None).
    A file that cannot be read gets ``error`` set. ``progress(done, total)`` counts files
    and is called from the calling thread.
    """
    real_root = _real_root(root)
    if files is None:
        files = list_files(real_root, exclude)[0]
    total = len(files)
    if fast:
        if progress is not None:
            progress(total, total)
        return [TreeFile(rel, size, None, None) for rel, _, size in files]
    results: list[TreeFile | None] = [None] * total
    root_fd = _open_root(real_root)

    def task(indexes: range) -> int:
        opener = _Opener(root_fd)
        try:
            for i in indexes:
                results[i] = _hash_one(opener, files[i][0], files[i][2])
        finally:
            opener.close()
        return len(indexes)

    try:
        chunks = _chunks(files)
        workers = max(1, min(jobs or os.cpu_count() or 1, len(chunks)))
        done = 0
        if workers == 1:
            for chunk in chunks:
                done += task(chunk)
                if progress is not None:
                    progress(done, total)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="ctmd-hash") as pool:
                for future in as_completed([pool.submit(task, c) for c in chunks]):
                    done += future.result()
                    if progress is not None:
                        progress(done, total)
    finally:
        _close(root_fd)
    return [r for r in results if r is not None]


# --------------------------------------------------------------------------- manifests


def sizes_path(manifest: str | os.PathLike[str]) -> Path:
    """The sizes companion of a manifest: a final ``.txt`` becomes ``.sizes.txt``."""
    path = Path(manifest)
    name = path.name
    return path.with_name((name[:-4] if name.endswith(".txt") else name) + ".sizes.txt")


def _encode(path: str) -> bytes:
    """RFC 8493 §2.1.3: '%', LF and CR (only those) percent-encoded; UTF-8, raw bytes kept."""
    text = path.replace("%", "%25").replace("\n", "%0A").replace("\r", "%0D")
    return text.encode("utf-8", "surrogateescape")


def _decode(raw: bytes) -> str:
    """Undo :func:`_encode` (one pass, so ``%250A`` stays ``%0A``)."""
    text = raw.decode("utf-8", "surrogateescape")
    return _PERCENT.sub(lambda m: _UNPERCENT[m.group(1).lower()], text)


def _write_atomic(real: str, data: bytes) -> None:
    """``data`` into ``real``, all or nothing (:func:`ctmd_validate.atomic.write_atomic`)."""
    try:
        write_atomic(Path(real), data)
    except OSError as exc:
        raise CtmdError(f"cannot write {display(real)}: {_reason(exc)}") from exc


def write_manifest(  # noqa: C901  (every refusal before a write)
    files: list[TreeFile],
    out: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
) -> tuple[Path, Path]:
    """Write the manifest ``out`` and its sizes companion (:func:`sizes_path`); both paths.

    ``out``: one ``<sha256>  <path>`` line per file, sorted, LF, UTF-8, with '%', LF and CR
    percent-encoded (RFC 8493 §2.1.3); the companion holds ``<size>  <path>`` lines. Each is
    written atomically. CtmdError when ``out`` lies inside ``root`` (nothing is written into
    a dataset), when a file has no hash (fast mode, or unreadable), when a path is not
    relative or is listed twice, or when it starts with a space or tab (BagIt separates
    hash and path with any run of blanks, so such a name cannot be read back).
    """
    out_path = Path(out)
    companion = sizes_path(out_path)
    real_out = os.path.realpath(out_path)
    real_sizes = os.path.realpath(companion)
    if root is not None:
        real_root = os.path.realpath(os.fspath(root))
        if contains(real_root, real_out) or contains(real_root, real_sizes):
            raise CtmdError(
                f"refusing to write the manifest {display(os.fspath(out_path))} inside the "
                f"dataset root {display(os.fspath(root))}: write it outside the tree"
            )
    if os.path.isdir(real_out):
        raise CtmdError(f"the manifest path is a folder: {display(os.fspath(out_path))}")
    unhashed = [f for f in files if f.sha256 is None]
    if unhashed:
        raise CtmdError(
            f"cannot write a manifest: {len(unhashed)} file(s) not hashed "
            f"(first: {display(unhashed[0].path)}"
            + (f", {unhashed[0].error})" if unhashed[0].error else ")")
        )
    seen: set[str] = set()
    for f in files:
        if _parts(f.path) is None:
            raise CtmdError(f"cannot write a manifest: not a relative path: {display(f.path)}")
        if f.path[0] in " \t":
            raise CtmdError(
                "cannot write a manifest: a name starts with a space or tab, which BagIt "
                f"cannot represent: {display(f.path)}"
            )
        if f.path in seen:
            raise CtmdError(f"cannot write a manifest: listed twice: {display(f.path)}")
        if not (f.sha256 and _HEX64.fullmatch(f.sha256.encode("ascii", "replace"))):
            raise CtmdError(f"cannot write a manifest: not a SHA-256: {display(f.path)}")
        seen.add(f.path)
    ordered = sorted(files, key=lambda f: f.path)
    try:
        encoded = [_encode(f.path) for f in ordered]
    except UnicodeEncodeError as exc:  # a lone surrogate that stands for no byte
        raise CtmdError("cannot write a manifest: a path holds an unencodable character") from exc
    manifest = b"".join(
        f.sha256.lower().encode("ascii") + b"  " + p + b"\n"
        for f, p in zip(ordered, encoded, strict=True)
        if f.sha256
    )
    sizes = b"".join(
        str(f.size).encode("ascii") + b"  " + p + b"\n"
        for f, p in zip(ordered, encoded, strict=True)
    )
    _write_atomic(real_sizes, sizes)
    _write_atomic(real_out, manifest)
    return out_path, companion


def _read_capped(path: Path, what: str) -> bytes | None:
    """The bytes of a manifest file; None when it does not exist; CtmdError otherwise."""
    shown = display(os.fspath(path))
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CtmdError(f"cannot read the {what} {shown}: {_reason(exc)}") from exc
    chunks: list[bytes] = []
    total = 0
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CtmdError(f"the {what} is not a regular file: {shown}")
        if st.st_size > MAX_MANIFEST_BYTES:
            raise CtmdError(
                f"the {what} {shown} is larger than {MAX_MANIFEST_BYTES >> 20} MiB; refused"
            )
        while total <= MAX_MANIFEST_BYTES:
            chunk = os.read(fd, BUFFER_SIZE)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise CtmdError(f"cannot read the {what} {shown}: {_reason(exc)}") from exc
    finally:
        os.close(fd)
    if total > MAX_MANIFEST_BYTES:
        raise CtmdError(f"the {what} {shown} grew past {MAX_MANIFEST_BYTES >> 20} MiB; refused")
    data = b"".join(chunks)
    if b"\x00" in data:
        raise CtmdError(f"the {what} {shown} is not text (NUL bytes: UTF-16?); not read")
    return data.removeprefix(b"\xef\xbb\xbf")


def _path_problem(path: str) -> str | None:
    """Why a manifest path is refused (it is then never looked at), or None."""
    if not path:
        return "empty path"
    if path.startswith("/"):
        return "absolute path"
    parts = path.split("/")
    if ".." in parts:
        return "path with '..'"
    if any(p in ("", ".") for p in parts):
        return "path with an empty or '.' component"
    return None


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Numbered non-blank lines (LF, CRLF or CR endings, as BagIt allows)."""
    for number, line in enumerate(data.splitlines(), start=1):
        if line.strip(b" \t"):
            yield number, line


def _strip_dot(path: str) -> str:
    """``./a/b`` (``find . | xargs sha256sum``) is ``a/b``."""
    while path.startswith("./"):
        path = path[2:]
    return path


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Parse a manifest written by us, by bagit-python or by ``sha256sum``.

    ``<hash>`` then one or more spaces/tabs (BagIt) or `` *`` (sha256sum's binary marker),
    then the path, percent-decoded (RFC 8493); sha256sum's ``\\``-escaped lines too; a
    leading ``./`` is dropped. Bad lines, duplicates, absolute paths and paths with '..'
    become problems (by line number, never quoting the line) and entries of none. The sizes
    companion is read when it exists. CtmdError when a file cannot be read, is not text,
    or is larger than 256 MiB.
    """
    manifest_path = Path(path)
    data = _read_capped(manifest_path, "manifest")
    if data is None:
        raise CtmdError(f"cannot read the manifest {display(os.fspath(path))}: no such file")
    entries: dict[str, ManifestEntry] = {}
    first_line: dict[str, int] = {}
    problems: list[str] = []
    for number, line in _lines(data):
        match = _ESCAPED_LINE.fullmatch(line)
        if match is not None:
            raw = match.group(2).decode("utf-8", "surrogateescape")
            name = _SHA256SUM_ESCAPES.sub(lambda m: _UNESCAPE[m.group(1)], raw)
        elif (match := _LINE.fullmatch(line)) is not None:
            name = _decode(match.group(2))
        else:
            problems.append(f"line {number}: not '<64 hex>  <path>'")
            continue
        name = _strip_dot(name)
        problem = _path_problem(name)
        if problem is not None:
            problems.append(f"line {number}: {problem}")
        elif name in entries:
            problems.append(f"line {number}: duplicate path (first on line {first_line[name]})")
        else:
            digest = match.group(1).decode("ascii").lower()
            entries[name] = ManifestEntry(name, digest, None, number)
            first_line[name] = number
    sizes = _read_capped(sizes_path(manifest_path), "sizes file")
    if sizes is not None:
        _apply_sizes(sizes, entries, problems)
    return Manifest(entries, problems, sizes is not None)


def _apply_sizes(data: bytes, entries: dict[str, ManifestEntry], problems: list[str]) -> None:
    """Fill in the sizes of ``entries`` from the companion's lines; its problems too."""
    sized: dict[str, int] = {}
    for number, line in _lines(data):
        match = _SIZE_LINE.fullmatch(line)
        if match is None:
            problems.append(f"sizes line {number}: not '<size>  <path>'")
            continue
        name = _strip_dot(_decode(match.group(2)))
        if name in sized:
            problems.append(f"sizes line {number}: duplicate path (first on line {sized[name]})")
        elif name not in entries:
            problems.append(f"sizes line {number}: path not in the manifest")
        else:
            sized[name] = number
            entries[name] = replace(entries[name], size=int(match.group(1)))


# --------------------------------------------------------------------------- comparison


def compare(files: list[TreeFile], manifest: Manifest, *, fast: bool = False) -> list[Discrepancy]:
    """Every difference between the tree and the manifest, each bad file named.

    ``missing_file``: listed, not in the tree; ``extra_file``: in the tree, not listed;
    ``size``: differs from the sizes companion; ``checksum``: the hash differs, or the file
    could not be read (``actual`` None); not checked when ``fast`` or when the size
    already differs. Sorted by (path, kind).
    """
    tree = {f.path: f for f in files}
    out: list[Discrepancy] = []
    for name, entry in manifest.entries.items():
        found = tree.get(name)
        if found is None:
            out.append(Discrepancy(MISSING, name, entry.sha256, None, entry.line))
            continue
        if entry.size is not None and found.size != entry.size:
            out.append(Discrepancy(SIZE, name, entry.size, found.size))
            continue
        if fast:
            continue
        if found.error is not None or found.sha256 is None:
            out.append(Discrepancy(CHECKSUM, name, entry.sha256, None))
        elif found.sha256.lower() != entry.sha256:
            out.append(Discrepancy(CHECKSUM, name, entry.sha256, found.sha256))
    for name, found in tree.items():
        if name not in manifest.entries:
            out.append(Discrepancy(EXTRA, name, None, found.sha256))
    out.sort(key=lambda d: (d.path, d.kind))
    return out


@dataclass(frozen=True)
class Verification:
    """A copy checked against a manifest: what the fixity checks report."""

    manifest: str  # as shown
    fast: bool
    files: int  # regular files found below the root
    problems: list[str]  # malformed manifest lines
    skipped: list[str]  # links, special files and unlistable folders: not compared
    discrepancies: list[Discrepancy]


def verify(
    root: str | os.PathLike[str],
    manifest: str | os.PathLike[str],
    *,
    fast: bool = False,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Verification:
    """Hash the tree below ``root`` (sizes only when ``fast``) and compare it with ``manifest``.

    The manifest and its sizes companion are left out of the tree when they lie inside it.
    CtmdError when the manifest cannot be read.
    """
    parsed = read_manifest(manifest)
    if fast and not parsed.sizes_found:
        raise CtmdError(
            f"--fast compares sizes, and {display(os.fspath(sizes_path(manifest)))} (the "
            "manifest's sizes) is absent: without --fast every file is hashed"
        )
    problems = list(parsed.problems)
    if not parsed.entries:
        problems.append("lists no file: nothing to compare the copy with")
    unsized = sum(1 for e in parsed.entries.values() if e.size is None)
    if fast and unsized:
        problems.append(
            f"{unsized} listed files have no size in the sizes file: not compared (--fast)"
        )
    exclude = [os.fspath(manifest), os.fspath(sizes_path(manifest))]
    listed, skipped = list_files(root, exclude)
    hashed = hash_files(root, listed, jobs=jobs, fast=fast, progress=progress)
    return Verification(
        manifest=display(os.fspath(manifest)),
        fast=fast,
        files=len(hashed),
        problems=problems,
        skipped=list(skipped),
        discrepancies=compare(hashed, parsed, fast=fast),
    )
