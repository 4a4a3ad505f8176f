"""Re-runs of an unchanged copy: the scan and the check results, cached outside the dataset.

A consumer re-checks a copy after moving it, after fixing one case, in every CI job. When
nothing the scan reads has changed, the previous scan and check results are reused and
only the cheap parts run again (config, baseline, rendering). "Nothing has changed" is
decided from ``lstat`` of every entry below the root (and of the labels folder): path,
type, size, ``mtime_ns``, ``ctime_ns`` and inode. ``ctime`` cannot be set back by
``touch -d`` or ``os.utime``, so a file rewritten under a stale entry is always seen. The
key also holds the tool's own code, the profile and the de-identification policy, and
whether pixels were decoded.

The cache holds header values (identifying ones among them, never shown): it lives in
the user's own cache folder (``$CTMD_CACHE_DIR``, else ``$XDG_CACHE_HOME/ctmd-validate``,
else ``~/.cache/ctmd-validate``), created ``0700`` with files ``0600``, is read only when
owned by this user and closed to others, and never inside the dataset or the labels folder.
``--no-cache`` turns it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .findings import CheckResult
from .paths import contains
from .scan import ScanResult

__all__ = ["CACHE_ENV", "Cached", "RunCache", "default_cache_dir"]

CACHE_ENV = "CTMD_CACHE_DIR"
_FORMAT = b"ctmd-validate-run-cache-2"
_PACKAGE = Path(__file__).resolve().parent


def default_cache_dir() -> Path:
    """``$CTMD_CACHE_DIR``, else ``$XDG_CACHE_HOME/ctmd-validate``, else ``~/.cache/…``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ctmd-validate"


@dataclass
class Cached:
    """What a run leaves for the next one over the same, unchanged tree."""

    scan: ScanResult
    results: list[CheckResult]
    redact: frozenset[str]


def _stat_line(path: str, st: os.stat_result, skip: int) -> bytes:
    """One entry of the fingerprint; ``skip``: length of the root's path and its slash."""
    target = ""
    if stat.S_ISLNK(st.st_mode):
        with contextlib.suppress(OSError):
            target = os.readlink(path)
    # NUL-separated: no name holds one, so no two entries can read alike
    line = (
        f"{path[skip:]}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"
        f"\0{st.st_ino}\0{target}\n"
    )
    return line.encode("utf-8", "surrogateescape")


def _tree_digest(root: str, digest: hashlib._Hash) -> None:
    """Feed ``lstat`` of every entry below ``root`` to ``digest``; links are not followed."""
    stack = [root]
    skip = len(os.path.join(root, ""))
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            digest.update(f"unlistable {os.path.relpath(folder, root)} {exc.errno}\n".encode())
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                digest.update(b"unstattable " + os.fsencode(entry.name) + b"\n")
                continue
            digest.update(_stat_line(entry.path, st, skip))
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
        stack.sort(reverse=True)


def _code_digest(digest: hashlib._Hash) -> None:
    """The tool's own code and shipped settings: a changed check invalidates the cache."""
    digest.update(__version__.encode())
    for path in sorted(_PACKAGE.rglob("*")):
        if path.suffix in {".py", ".toml", ".json", ".csv"} and "__pycache__" not in path.parts:
            st = path.stat()
            digest.update(f"{path.relative_to(_PACKAGE)} {st.st_size} {st.st_mtime_ns}\n".encode())


def _file_digest(path: str, digest: hashlib._Hash) -> None:
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        digest.update(hashlib.sha256(fh.read()).digest())


class RunCache:
    """One cache entry per dataset root and options; see the module docstring."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_dir()

    def usable_for(self, root: str, labels_dir: str | None) -> bool:
        """False when the cache folder would lie inside the dataset or the labels folder."""
        real = os.path.realpath(self.folder)
        return not any(
            d is not None and contains(os.path.realpath(d), real) for d in (root, labels_dir)
        )

    def key(
        self,
        root: str,
        *,
        labels_dir: str | None,
        profile_source: str,
        policy_source: str,
        deep: bool,
    ) -> tuple[str, str]:
        """``(entry name, fingerprint)``: where the entry lives, and what it must match."""
        real_root = os.path.realpath(root)
        real_labels = None if labels_dir is None else os.path.realpath(labels_dir)
        name = hashlib.sha256(repr((real_root, real_labels, deep)).encode("utf-8", "replace"))
        fingerprint = hashlib.sha256(_FORMAT)
        _code_digest(fingerprint)
        for source in (profile_source, policy_source):
            fingerprint.update(source.encode("utf-8", "replace"))
            _file_digest(source, fingerprint)
        fingerprint.update(repr((real_root, real_labels, deep)).encode("utf-8", "replace"))
        _tree_digest(real_root, fingerprint)
        if real_labels is not None:
            _tree_digest(real_labels, fingerprint)  # links inside it may lead to sub-folders
        return name.hexdigest()[:32], fingerprint.hexdigest()

    def _private(self, path: Path, *, folder: bool) -> bool:
        """Owned by this user, not a link, closed to group and others."""
        try:
            st = os.lstat(path)
        except OSError:
            return False
        kind_ok = stat.S_ISDIR(st.st_mode) if folder else stat.S_ISREG(st.st_mode)
        return kind_ok and st.st_uid == os.geteuid() and not st.st_mode & 0o077

    def load(self, name: str, fingerprint: str) -> Cached | None:
        """The entry when its fingerprint matches, else None (never raises)."""
        path = self.folder / f"{name}.pickle"
        if not (self._private(self.folder, folder=True) and self._private(path, folder=False)):
            return None
        try:
            with open(path, "rb") as fh:
                if fh.readline().rstrip(b"\n") != _FORMAT:
                    return None
                if fh.readline().rstrip(b"\n") != fingerprint.encode():
                    return None
                cached = pickle.load(fh)
        except Exception:  # a damaged entry is a miss
            return None
        return cached if isinstance(cached, Cached) else None

    def store(self, name: str, fingerprint: str, cached: Cached) -> None:
        """Write the entry atomically (0600 in a 0700 folder); a failure only loses it."""
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not self._private(self.folder, folder=True):
                return
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=self.folder)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(_FORMAT + b"\n" + fingerprint.encode() + b"\n")
                    pickle.dump(cached, fh, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(tmp, self.folder / f"{name}.pickle")
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except (OSError, pickle.PicklingError):
            return
