"""User configuration: re-classify severities and waive findings, applied after the checks.

Like the BIDS validator's config, it is applied only after validation, so checks never
know about it. Format (TOML, or the same structure in JSON; ``schemas/config.schema.json``)::

    [severity]
    "structure.class_dir.alias" = "info"      # error | warning | info | ignore
    "deid.*" = "warning"                        # fnmatch patterns are allowed

    [[waive]]
    id = "structure.stray_file"                 # a check id or an fnmatch pattern
    path = "*/.DS_Store"                        # optional fnmatch pattern on the path
    case = "P001"                               # optional
    code = "gantry_tilt"                        # optional: one kind of problem of the check
    reason = "macOS metadata, harmless"         # required, not empty

Check ids and patterns: a ``[severity]`` key or a waiver's ``id`` is a check id or an
fnmatch-style pattern (``*``, ``?``, ``[...]``: ``deid.*``, ``labels.index.*``, ``*``).
Each must match at least one registered check id, so a typo is an error instead of a
silently ineffective line. A waiver with a pattern covers every matching check.

Precedence in ``[severity]``: an exact check id beats every pattern; among the patterns
that match a check, the longest pattern string wins (``labels.index.*`` beats ``labels.*``
beats ``*``). Two equally long patterns that match the same check with different levels
are an error. ``ignore`` waives the finding with the reason "ignored by config"; waivers
then mark the (re-levelled) findings they cover with their own reason.

Protected ids (:data:`PROTECTED_IDS`) can never be silenced: naming one in ``[severity]``
or a waiver is an error, and patterns never match them.

Unknown keys anywhere (``pth`` in a waiver, a ``[severty]`` table) and wrong types are
errors that name the file, the line and the key path.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .findings import CheckResult, Finding, Severity
from .settings import Problem, SettingsFile, raise_problems, read_settings, schema_problems

__all__ = ["PROTECTED_IDS", "Config", "Waiver", "is_pattern", "load_config"]

#: Check ids that no config may re-level or waive: an empty or wrong root must never pass.
PROTECTED_IDS: frozenset[str] = frozenset({"structure.no_dataset"})

SCHEMA = "config.schema.json"
_PATTERN_CHARS = frozenset("*?[")


def is_pattern(text: str) -> bool:
    """True when ``text`` is an fnmatch pattern rather than a plain check id."""
    return not _PATTERN_CHARS.isdisjoint(text)


def _selects(id_or_pattern: str, check_id: str) -> bool:
    """True when a config id or pattern applies to ``check_id`` (never to a protected id)."""
    return check_id not in PROTECTED_IDS and fnmatch.fnmatchcase(check_id, id_or_pattern)


@dataclass(frozen=True)
class Waiver:
    """Waive the findings of ``check_id`` (an id or pattern), optionally of one path or case."""

    check_id: str
    reason: str
    path: str | None = None
    case: str | None = None
    #: fnmatch pattern on the finding's ``code`` (one kind of problem of a check)
    code: str | None = None

    def covers(self, finding: Finding) -> bool:
        if not _selects(self.check_id, finding.check_id):
            return False
        if self.case is not None and finding.case != self.case:
            return False
        if self.code is not None and not fnmatch.fnmatchcase(finding.code or "", self.code):
            return False
        if self.path is None:
            return True
        paths = [finding.path] if finding.path is not None else []
        return any(fnmatch.fnmatchcase(p, self.path) for p in (*paths, *finding.files))


@dataclass(frozen=True)
class Config:
    """Severity overrides (check id or pattern -> level) and waivers, with their source."""

    severity: dict[str, str] = field(default_factory=dict)
    waivers: tuple[Waiver, ...] = ()
    source: str | None = None

    def level_of(self, check_id: str) -> str | None:
        """The configured level of ``check_id``: exact id first, else the longest pattern."""
        if check_id in PROTECTED_IDS:
            return None
        exact = self.severity.get(check_id)
        if exact is not None:
            return exact
        best: tuple[int, str] | None = None
        for pattern, level in self.severity.items():
            longer = best is None or len(pattern) > best[0]
            if longer and is_pattern(pattern) and _selects(pattern, check_id):
                best = (len(pattern), level)
        return None if best is None else best[1]

    def apply(self, results: list[CheckResult]) -> list[CheckResult]:
        """Return results with severities re-classified and waived findings marked."""
        out: list[CheckResult] = []
        for result in results:
            findings = [self._apply_one(f) for f in result.findings]
            out.append(dataclasses.replace(result, findings=findings))
        return out

    def _apply_one(self, finding: Finding) -> Finding:
        if finding.check_id in PROTECTED_IDS:
            return finding
        level = self.level_of(finding.check_id)
        if level == "ignore":
            return dataclasses.replace(finding, waived="ignored by config")
        if level is not None and finding.severity is not Severity(level):
            finding = dataclasses.replace(finding, severity=Severity(level))
        for waiver in self.waivers:
            if waiver.covers(finding):
                return dataclasses.replace(finding, waived=waiver.reason)
        return finding


def _id_problem(id_or_pattern: str, known: frozenset[str]) -> str | None:
    """Why a ``[severity]`` key or waiver id is not acceptable, or None."""
    if id_or_pattern in PROTECTED_IDS:
        return (
            f"{id_or_pattern} cannot be re-levelled or waived: "
            "an empty or wrong root must never pass"
        )
    if is_pattern(id_or_pattern):
        if any(_selects(id_or_pattern, c) for c in known):
            return None
        return f"pattern {id_or_pattern!r} matches no check id"
    if id_or_pattern in known:
        return None
    close = difflib.get_close_matches(id_or_pattern, sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown check id {id_or_pattern!r}{hint}"


def _ambiguities(severity: dict[str, str], known: frozenset[str]) -> list[Problem]:
    """Equally long patterns that give one check two different levels."""
    problems: list[Problem] = []
    patterns = [(p, lvl) for p, lvl in severity.items() if is_pattern(p)]
    for check_id in sorted(known - set(severity)):
        hits = [(p, lvl) for p, lvl in patterns if _selects(p, check_id)]
        if not hits:
            continue
        longest = max(len(p) for p, _ in hits)
        tied = [(p, lvl) for p, lvl in hits if len(p) == longest]
        if len({lvl for _, lvl in tied}) > 1:
            first, later = tied[0][0], tied[-1][0]
            problems.append(
                Problem(
                    ("severity", later),
                    f"as long as {first!r} and both match {check_id} with different "
                    "levels: name the check or make one pattern longer",
                )
            )
    return problems


def _parse(sf: SettingsFile, known: frozenset[str]) -> Config:
    raise_problems(schema_problems(sf.data, SCHEMA), [sf], ConfigError)
    severity: dict[str, str] = dict(sf.data.get("severity", {}))
    waive: list[dict[str, str]] = list(sf.data.get("waive", []))
    problems = [
        Problem(("severity", key), why)
        for key in severity
        if (why := _id_problem(key, known)) is not None
    ]
    problems += [
        Problem(("waive", i, "id"), why)
        for i, item in enumerate(waive)
        if (why := _id_problem(item["id"], known)) is not None
    ]
    problems += _ambiguities(severity, known)
    raise_problems(problems, [sf], ConfigError)
    waivers = tuple(
        Waiver(item["id"], item["reason"], item.get("path"), item.get("case"), item.get("code"))
        for item in waive
    )
    return Config(severity, waivers, sf.label)


def load_config(path: str | Path | None, known_ids: Iterable[str]) -> Config:
    """Read a TOML or JSON config; ``None`` gives the empty config.

    ``known_ids``: the check ids that ids and patterns are checked against (the engine
    passes the registry's). Any problem raises :class:`ConfigError` naming file, line and
    key.
    """
    if path is None:
        return Config()
    sf = read_settings(path, "config", ConfigError, json_allowed=True)
    return _parse(sf, frozenset(known_ids))
