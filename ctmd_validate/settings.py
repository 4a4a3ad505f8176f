"""Reading the three settings files (config, profile, policy) with errors that name a line.

Why: ``tomllib`` and ``json`` give values without positions and ``jsonschema`` gives key
paths without lines, but a user fixing a file needs both. This module parses a file, checks
it against its JSON Schema in ``schemas/`` and turns every failure into one message of the
form ``FILE:LINE: key.path[0]: what is wrong``. A small scanner finds the line of each key
path in the text: TOML ``[table]`` and ``[[array.of.tables]]`` headers (with their
occurrence index), dotted and quoted keys, inline tables and array elements; JSON objects
and arrays the same way. A path it cannot find falls back on its nearest enclosing table,
then on no line at all.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import reprlib
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from .errors import CtmdError
from .resources import schema_file

__all__ = [
    "KeyPath",
    "Problem",
    "SettingsFile",
    "format_key_path",
    "key_lines",
    "raise_problems",
    "read_settings",
    "schema_problems",
]

KeyPath = tuple[str | int, ...]

#: At most this many problems are spelled out in one (one-line) error message.
MAX_SHOWN = 5

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR = re.compile(r"[^,\]\}#\n]*")
_SHORT = reprlib.Repr()  # keyword arguments need Python 3.12
_SHORT.maxstring = _SHORT.maxother = 40
_SHORT.maxlist = _SHORT.maxdict = 4
_SHORT.maxlevel = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a settings file: where (a key path) and what."""

    path: KeyPath
    message: str


@dataclass(frozen=True)
class SettingsFile:
    """A parsed settings file that still knows its text, to point at lines."""

    path: Path
    text: str
    data: Any
    is_json: bool = False

    @property
    def label(self) -> str:
        """How messages name the file: as the user gave it."""
        return str(self.path)

    @functools.cached_property
    def lines(self) -> dict[KeyPath, int]:
        """Line of every key path written in the file (computed once, when first needed)."""
        return key_lines(self.text, is_json=self.is_json)

    def line_of(self, path: KeyPath, *, exact: bool = False) -> int | None:
        """Line of ``path``; else (unless ``exact``) of its nearest enclosing key or table."""
        if exact:
            return self.lines.get(path)
        for n in range(len(path), 0, -1):
            line = self.lines.get(path[:n])
            if line is not None:
                return line
        return None

    def where(self, path: KeyPath) -> str:
        """``file:line: key.path: `` — the prefix of a message about ``path``."""
        line = self.line_of(path)
        head = self.label if line is None else f"{self.label}:{line}"
        return f"{head}: {format_key_path(path)}: " if path else f"{head}: "


def read_settings(
    path: str | Path, what: str, error: type[CtmdError], *, json_allowed: bool = False
) -> SettingsFile:
    """Read and parse a TOML (or, when allowed, ``.json``) file; any failure is ``error``.

    TOML and JSON syntax errors keep the line and column their parser reports.
    """
    p = Path(path)
    is_json = json_allowed and p.suffix.lower() == ".json"
    try:
        text = p.read_text(encoding="utf-8")
        data = json.loads(text) if is_json else tomllib.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSON/TOML errors are ValueErrors
        raise error(f"cannot read {what} {p}: {exc}") from exc
    except RecursionError as exc:
        raise error(f"cannot read {what} {p}: nested too deeply") from exc
    sf = SettingsFile(p, text, data, is_json)
    try:
        problems = list(_surrogates(data))
    except RecursionError as exc:  # parsed at the limit, one level too deep to walk
        raise error(f"cannot read {what} {p}: nested too deeply") from exc
    raise_problems(problems, [sf], error)
    return sf


_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogates(data: Any, path: KeyPath = ()) -> Iterator[Problem]:
    """Keys and strings holding a lone surrogate (JSON allows ``"\\ud800"``; TOML does not).

    Such a string is not text: it cannot be encoded, so it could never match a check id or
    a path, and it would break every report and message that showed it.
    """
    why = "holds a lone surrogate (an unpaired \\ud800-\\udfff escape): not text"
    if isinstance(data, str):
        if _SURROGATE.search(data):
            yield Problem(path, why)
    elif isinstance(data, dict):
        for key, value in data.items():
            if _SURROGATE.search(key):
                yield Problem((*path, key), f"the key {why}")
            else:
                yield from _surrogates(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _surrogates(value, (*path, i))


def format_key_path(path: KeyPath) -> str:
    """``("waive", 0, "pth")`` → ``waive[0].pth``; keys that are not bare TOML keys are quoted."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            if _BARE_KEY.fullmatch(part):
                text = part
            else:  # spelled as in JSON; a lone surrogate or control escaped, not printed raw
                ascii_only = bool(_SURROGATE.search(part)) or not part.isprintable()
                text = json.dumps(part, ensure_ascii=ascii_only)
            out += f".{text}" if out else text
    return out


def raise_problems(
    problems: Iterable[Problem], files: Sequence[SettingsFile], error: type[CtmdError]
) -> None:
    """Raise ``error`` naming every problem (file, line, key path) on one line; or return.

    ``files``: where the data came from, most specific first (a profile and the profiles
    it extends); each problem is located in the first file that holds its key.
    """
    located = sorted(
        ((*_locate(p.path, files), p) for p in _unique(problems)),
        key=lambda item: (item[0], item[1] if item[1] is not None else 1 << 30),
    )
    if not located:
        return
    texts = [files[i].where(p.path) + p.message for i, _line, p in located]
    more = len(texts) - MAX_SHOWN
    message = "; ".join(texts[:MAX_SHOWN]) + (f" (and {more} more)" if more > 0 else "")
    raise error(message)


def _unique(problems: Iterable[Problem]) -> Iterator[Problem]:
    """One problem per key path (a wrong value often breaks several keywords at once)."""
    seen: set[KeyPath] = set()
    for problem in problems:
        if problem.path not in seen:
            seen.add(problem.path)
            yield problem


def _locate(path: KeyPath, files: Sequence[SettingsFile]) -> tuple[int, int | None]:
    for i, sf in enumerate(files):
        line = sf.line_of(path, exact=True)
        if line is not None:
            return i, line
    for i, sf in enumerate(files):
        line = sf.line_of(path)
        if line is not None:
            return i, line
    return 0, None


# --------------------------------------------------------------------------- schemas


@functools.cache
def _validator(name: str, partial: bool) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_file(name).read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    if partial:
        schema = _without_required(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


_SCHEMA_MAPS = {"properties", "patternProperties", "$defs", "dependentSchemas"}


def _without_required(schema: Any) -> Any:
    """The schema with every ``required`` keyword dropped: for one file of an ``extends`` chain."""
    if isinstance(schema, list):
        return [_without_required(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "required":
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {k: _without_required(v) for k, v in value.items()}
        else:
            out[key] = _without_required(value)
    return out


def schema_problems(data: Any, schema: str, *, partial: bool = False) -> list[Problem]:
    """Every way ``data`` breaks the shipped JSON Schema ``schema`` (by file name).

    ``partial``: ignore missing required keys (one file of several merged by ``extends``).
    """
    problems: list[Problem] = []
    errors = _validator(schema, partial).iter_errors(data)
    for err in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        problems.extend(_problems_of(err))
    return problems


def _problems_of(err: ValidationError) -> list[Problem]:
    """Readable problems for one jsonschema error; the key path points at the culprit."""
    path: KeyPath = tuple(err.absolute_path)
    hints: dict[str, str] = err.schema.get("x-messages", {}) if isinstance(err.schema, dict) else {}
    if err.validator == "additionalProperties" and err.validator_value is False:
        allowed = list(err.schema.get("properties", {}))
        return [
            Problem((*path, key), f"unknown key (allowed: {', '.join(allowed)})")
            for key in err.instance
            if key not in allowed
        ]
    if err.validator == "required":
        return [
            Problem((*path, key), hints.get("required", "required key is missing"))
            for key in err.validator_value
            if key not in err.instance
        ]
    hint = hints.get(str(err.validator))
    value = _SHORT.repr(err.instance)
    message = _short_message(err) if hint is None else hint.replace("{value}", value)
    if err.validator == "format" and err.cause is not None:
        message += f" ({err.cause})"
    if "propertyNames" in err.absolute_schema_path:  # the key itself is wrong, not its value
        return [Problem((*path, str(err.instance)), f"invalid key: {message}")]
    return [Problem(path, message)]


def _short_message(err: ValidationError) -> str:
    """jsonschema's message, with a long offending value abbreviated."""
    full = repr(err.instance)
    if len(full) > 60 and full in err.message:
        return err.message.replace(full, _SHORT.repr(err.instance), 1)
    return err.message


# --------------------------------------------------------------------------- locator


class _Stop(Exception):
    """The scanner met text it does not understand: keep what was found so far."""


def key_lines(text: str, *, is_json: bool = False) -> dict[KeyPath, int]:
    """Line (1-based) where each key path of a TOML or JSON document is written.

    Array elements are keyed by index, ``[[array.of.tables]]`` by occurrence. Best effort:
    on text it does not understand it returns what it found up to there.
    """
    scanner = _Scanner(text, is_json)
    with contextlib.suppress(_Stop, RecursionError, IndexError, ValueError):
        scanner.document()
    return scanner.lines


class _Scanner:
    """A forgiving TOML/JSON reader that records positions instead of values."""

    def __init__(self, text: str, is_json: bool) -> None:
        self.text = text
        self.json = is_json
        self.i = 0
        self.line = 1
        self.lines: dict[KeyPath, int] = {}

    # ---- characters
    def peek(self, n: int = 1) -> str:
        return self.text[self.i : self.i + n]

    def advance(self, n: int = 1) -> None:
        self.line += self.text.count("\n", self.i, self.i + n)
        self.i += n

    def skip(self, newlines: bool) -> None:
        """Skip blanks (and newlines, and TOML comments)."""
        while self.i < len(self.text):
            c = self.text[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.advance()
            elif c == "#" and not self.json:
                end = self.text.find("\n", self.i)
                self.i = len(self.text) if end < 0 else end
            else:
                return

    def string(self) -> str:
        """Consume one string of any TOML/JSON kind; return its source text."""
        t, start = self.text, self.i
        for quote in ('"""', "'''"):
            if t.startswith(quote, start):
                j = start + 3
                while j < len(t) and not t.startswith(quote, j):
                    j += 2 if quote == '"""' and t[j] == "\\" else 1
                end = j + 3
                while end < len(t) and end < j + 5 and t[end] == quote[0]:
                    end += 1  # up to two quotes of content may touch the closing delimiter
                self.advance(min(end, len(t)) - start)
                return t[start : self.i]
        quote = t[start]
        j = start + 1
        while j < len(t) and t[j] not in (quote, "\n"):
            j += 2 if quote == '"' and t[j] == "\\" else 1
        self.advance(min(j + 1, len(t)) - start)
        return t[start : self.i]

    # ---- keys and values
    def key_part(self) -> str:
        if self.peek() in ("'", '"'):
            raw = self.string()
            if raw.startswith("'"):
                return raw[1:-1]
            try:
                return str(json.loads(raw) if self.json else tomllib.loads(f"k = {raw}")["k"])
            except ValueError:
                return raw[1:-1]
        match = _BARE_KEY.match(self.text, self.i)
        if match is None or self.json:
            raise _Stop
        self.advance(match.end() - self.i)
        return match.group()

    def key(self) -> tuple[str, ...]:
        parts = [self.key_part()]
        while True:
            self.skip(False)
            if self.json or self.peek() != ".":
                return tuple(parts)
            self.advance()
            self.skip(False)
            parts.append(self.key_part())

    def record(self, path: KeyPath, line: int, start: int = 1) -> None:
        """Note ``line`` for ``path`` and its not-yet-seen prefixes (implicit tables)."""
        for n in range(start, len(path) + 1):
            self.lines.setdefault(path[:n], line)

    def value(self, path: KeyPath) -> None:
        self.skip(self.json)
        c = self.peek()
        if c == "[":
            self.array(path)
        elif c == "{":
            self.table(path)
        elif c in ("'", '"'):
            self.string()
        else:
            match = _SCALAR.match(self.text, self.i)
            if match is None or match.end() == self.i:
                raise _Stop
            self.advance(match.end() - self.i)

    def array(self, path: KeyPath) -> None:
        self.advance()
        index = 0
        while True:
            self.skip(True)
            c = self.peek()
            if not c:
                raise _Stop
            if c == "]":
                self.advance()
                return
            if c == ",":
                self.advance()
                index += 1
                continue
            self.lines.setdefault((*path, index), self.line)
            self.value((*path, index))

    def table(self, path: KeyPath) -> None:
        """An inline table (TOML) or an object (JSON)."""
        self.advance()
        while True:
            self.skip(True)
            c = self.peek()
            if not c:
                raise _Stop
            if c == "}":
                self.advance()
                return
            if c == ",":
                self.advance()
                continue
            line = self.line
            full = (*path, *self.key())
            self.record(full, line, len(path) + 1)
            self.skip(False)
            if self.peek() not in ("=", ":") or not self.peek():
                raise _Stop
            self.advance()
            self.value(full)

    # ---- documents
    def document(self) -> None:
        if self.json:
            self.value(())
            return
        table: KeyPath = ()
        arrays: dict[tuple[str, ...], int] = {}
        while True:
            self.skip(True)
            if self.i >= len(self.text):
                return
            line = self.line
            if self.peek() == "[":
                many = self.peek(2) == "[["
                self.advance(2 if many else 1)
                self.skip(False)
                keys = self.key()
                self.skip(False)
                self.advance(2 if many else 1)
                table = _header_path(keys, arrays, many)
                self.record(table, line)
            else:
                full = (*table, *self.key())
                self.record(full, line, len(table) + 1)
                self.skip(False)
                if self.peek() != "=":
                    raise _Stop
                self.advance()
                self.value(full)


def _header_path(keys: tuple[str, ...], arrays: dict[tuple[str, ...], int], many: bool) -> KeyPath:
    """Key path of a table header; ``arrays`` counts each ``[[array]]``'s occurrences."""
    out: list[str | int] = []
    for n, key in enumerate(keys, 1):
        plain = keys[:n]
        out.append(key)
        if many and n == len(keys):
            arrays[plain] = arrays.get(plain, -1) + 1
            for nested in [a for a in arrays if len(a) > n and a[:n] == plain]:
                del arrays[nested]
            out.append(arrays[plain])
        elif plain in arrays:
            out.append(arrays[plain])
    return tuple(out)
