"""Writing a file all or nothing: the report, the HTML page, a manifest.

Shared by every writer of the tool so that each gets the same guarantees: a temporary file
fsynced and renamed over the target (a link resolved first, so the file it names is
replaced), the mode an ``open()`` would give, and streams (pipes, terminals,
``/dev/stdout``) written in place.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from pathlib import Path

from .errors import CtmdError
from .paths import display

__all__ = ["is_stream", "own_fd", "write_atomic"]


#: Names of this process's open descriptors (``--report /dev/stdout``).
_FD_ALIAS = re.compile(
    r"/dev/(?:std(?P<std>in|out|err)|fd/(?P<fd>\d+))"
    r"|/proc/(?:self|thread-self|(?P<pid>\d+))/fd/(?P<pfd>\d+)"
)
_STD_FDS = {"in": 0, "out": 1, "err": 2}


def own_fd(path: Path) -> int | None:
    """The descriptor ``path`` names when it is one of this process's (``/dev/stdout``).

    Such a report is written through the descriptor itself, as a shell redirection to
    ``/dev/stdout`` is: opening the name anew would truncate a file behind it and write at
    offset 0, over the summary printed to the same stream.
    """
    m = _FD_ALIAS.fullmatch(os.path.abspath(path))
    if m is None or (m["pid"] is not None and int(m["pid"]) != os.getpid()):
        return None
    return _STD_FDS[m["std"]] if m["std"] else int(m["fd"] or m["pfd"])


def is_stream(path: Path) -> bool:
    """True when ``path`` is a pipe or a character device (terminal, ``/dev/null``).

    Written in place: a rename would put a regular file where the pipe or device was.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def _umask() -> int:
    """The process umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write ``text`` (UTF-8, or bytes as they are) to ``path``: all or nothing for a file,
    in place for a stream.

    A file goes through a temporary file and a rename. A link is resolved first, so the
    file it names is replaced and the link stays. The new file gets the mode the old one
    had, else ``0o666 & ~umask`` as ``open()`` would give (not mkstemp's 0600). A pipe or
    device is written where it is (a rename would replace it), and ``/dev/stdout`` and
    its kin through the process's own descriptor.
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    fd = own_fd(path)
    if fd is not None:
        with os.fdopen(os.dup(fd), "wb") as fh:
            fh.write(data)
        return
    if is_stream(path):
        with open(path, "wb") as fh:
            fh.write(data)
        return
    real = Path(os.path.realpath(path))
    try:
        st: os.stat_result | None = os.stat(real)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        shown = display(str(path))
        raise CtmdError(f"the report path is not a file, a pipe or a terminal: {shown}")
    mode = stat.S_IMODE(st.st_mode) & 0o777 if st is not None else 0o666 & ~_umask()
    real.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
