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

__all__ = ["Confined", "LinkState", "contains", "display", "printable", "sanitize_message"]

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
        return contains(self.root, path)

    def resolve_link(self, link: str) -> tuple[LinkState, str | None]:
        """Resolve the link at ``link`` (a real path inside the root, whose parent is real).

        Returns the state and, when ``INSIDE``, the real target path.
        """
        try:
            target = os.readlink(link)
        except OSError:
            return LinkState.BROKEN, None
        return self._follow(os.path.dirname(link), target)

    def _follow(self, start: str, target: str) -> tuple[LinkState, str | None]:  # noqa: C901, PLR0912  (link-resolution state machine)
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


def contains(folder: str, path: str) -> bool:
    """``path`` is ``folder`` or lies below it, compared as text (both normalised already).

    Lexical on purpose: callers pass real paths, and a comparison that touched the disk
    could follow links out of a dataset root.
    """
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _parts(path: str) -> list[str]:
    return [p for p in path.split(os.sep) if p not in ("", ".")]


#: What a name may not show raw: backslash (the escape character itself), C0 controls,
#: DEL, C1 controls and lone surrogates (undecodable bytes, or a bad ``\\ud800`` escape).
_NAME_ESCAPES = re.compile(r"[\\\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: In free text, tab and newline are layout; everything else above is still escaped.
_TEXT_ESCAPES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    """One escape per character; each form comes from one kind of character only.

    ``\\xNN`` is a raw byte (an undecodable one, or a C0 control/DEL, which is the same
    byte in UTF-8); a C1 control is ``\\u0085``, not ``\\x85``, since ``\\x85`` is the lone
    byte 0x85; a surrogate that is not a smuggled byte is ``\\udNNN``.
    """
    char = match.group()
    code = ord(char)
    if char == "\\":
        return "\\\\"
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's surrogateescape form of byte 0x80-0xff
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def display(name: str) -> str:
    """A file name as printable UTF-8, one display per name (injective).

    Undecodable bytes become ``\\xNN`` and control characters ``\\xNN``/``\\uNNNN``, so
    names can be encoded and no escape sequence reaches a terminal; a literal backslash is
    doubled, so the name spelled ``\\xff`` never shows like the byte 0xff (tables of
    displayed paths are keyed by them, and two files must never become one).
    """
    return _NAME_ESCAPES.sub(_escape, name)


def printable(text: str) -> str:
    """``text`` safe to encode and to print: surrogates and control characters escaped.

    Tab and newline stay (summaries are multi-line); backslashes stay too, so text that
    holds displayed names is left as it is (this is not injective: use :func:`display`
    for names).
    """
    return _TEXT_ESCAPES.sub(_escape, text)


# A quoted literal, with or without a bytes prefix; an unterminated one runs to the end.
# A single quote right after a letter or digit is an apostrophe (``doesn't``), not the start
# of a literal; inside a literal, a quote between two word characters (``'O'BRIEN'``) is
# one too, so a name holding an apostrophe is still stripped whole.
_QUOTED = re.compile(
    r"""(?<!\w)b?'(?:[^'\\]|\\.|(?<=\w)'(?=\w))*'?|b?"(?:[^"\\]|\\.)*"?""", re.DOTALL
)
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
