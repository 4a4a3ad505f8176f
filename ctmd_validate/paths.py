"""Paths inside the dataset root: confined link resolution and printable names.

The validator reads nothing outside the root it was given. Symbolic links are resolved
here one component at a time with ``lstat``/``readlink`` on places inside the root only:
a link whose target leaves the root is reported, never followed, and its target is never
touched (not even stat'ed).
"""

from __future__ import annotations

import enum
import os
import re
import stat
from dataclasses import dataclass

__all__ = ["Confined", "LinkState", "display", "printable", "sanitize_message"]

#: Links followed in a row before a chain counts as a loop (Linux's own limit).
MAX_LINK_HOPS = 40


class LinkState(enum.StrEnum):
    """Where a symbolic link leads."""

    INSIDE = "inside"
    OUTSIDE = "outside"
    LOOP = "loop"
    BROKEN = "broken"


@dataclass(frozen=True)
class Confined:
    """Resolves links below ``root`` (a real, absolute path) without leaving it."""

    root: str

    @classmethod
    def at(cls, root: str | os.PathLike[str]) -> Confined:
        return cls(os.path.realpath(os.fspath(root)))

    def inside(self, path: str) -> bool:
        """Lexically inside the root (or the root itself)."""
        return path == self.root or path.startswith(self.root.rstrip(os.sep) + os.sep)

    def resolve_link(self, link: str) -> tuple[LinkState, str | None]:
        """Resolve the link at ``link`` (a real path inside the root, whose parent is real).

        Returns the state and, when ``INSIDE``, the real target path.
        """
        try:
            target = os.readlink(link)
        except OSError:
            return LinkState.BROKEN, None
        return self._follow(os.path.dirname(link), target)

    def _follow(self, start: str, target: str) -> tuple[LinkState, str | None]:
        hops = 1
        if os.path.isabs(target):
            target = os.path.normpath(target)
            if not self.inside(target):
                return LinkState.OUTSIDE, None
            cur, parts = self.root, _parts(os.path.relpath(target, self.root))
        else:
            cur, parts = start, _parts(target)
        while parts:
            part = parts.pop(0)
            if part in ("", "."):
                continue
            cur = os.path.dirname(cur) if part == ".." else os.path.join(cur, part)
            if not self.inside(cur):
                return LinkState.OUTSIDE, None
            try:
                st = os.lstat(cur)
            except OSError:
                return LinkState.BROKEN, None
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > MAX_LINK_HOPS:
                    return LinkState.LOOP, None
                try:
                    nxt = os.readlink(cur)
                except OSError:
                    return LinkState.BROKEN, None
                if os.path.isabs(nxt):
                    nxt = os.path.normpath(nxt)
                    if not self.inside(nxt):
                        return LinkState.OUTSIDE, None
                    cur, parts = self.root, _parts(os.path.relpath(nxt, self.root)) + parts
                else:
                    cur, parts = os.path.dirname(cur), _parts(nxt) + parts
        return LinkState.INSIDE, cur


def _parts(path: str) -> list[str]:
    return [p for p in path.split(os.sep) if p not in ("", ".")]


def display(name: str) -> str:
    """A file name as printable UTF-8: undecodable bytes become ``\\xNN`` escapes.

    Names that are not valid UTF-8 would otherwise make the report and the summary
    impossible to encode.
    """
    return os.fsencode(name).decode("utf-8", "backslashreplace")


_SURROGATE = re.compile("[\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with lone surrogates (undecodable path bytes) escaped as ``\\xNN``."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# A quoted literal, with or without a bytes prefix; an unterminated one runs to the end.
_QUOTED = re.compile(r"""b?'(?:[^'\\]|\\.)*'?|b?"(?:[^"\\]|\\.)*"?""", re.DOTALL)
_IN_FILE = re.compile(r"\s+in file\s.*$", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
MAX_MESSAGE = 200


def sanitize_message(message: str, *paths: str) -> str:
    """A library's warning or error text, stripped of every value it quotes.

    pydicom and numpy put raw header bytes and file names into their messages (as
    ``'...'`` or ``b'...'`` literals, or ``... in file NAME``); none of that may reach a
    report. What is left is the library's own wording, numbers and tags.
    """
    text = str(message)
    for path in paths:
        if path:
            text = text.replace(path, "<file>").replace(os.path.basename(path), "<file>")
    text = _IN_FILE.sub("", text)
    text = _QUOTED.sub("<value>", text)
    text = _CONTROL.sub(" ", text).strip()
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 1] + "…"
    return printable(text)
