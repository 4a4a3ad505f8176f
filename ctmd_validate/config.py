"""User configuration: re-classify severities and waive findings, applied after the checks.

Like the BIDS validator's config, it is applied only after validation, so checks never
know about it. Format (TOML, or the same structure in JSON)::

    [severity]
    "structure.class_dir.alias" = "info"      # error | warning | info | ignore

    [[waive]]
    id = "structure.stray_file"
    path = "*/.DS_Store"                        # optional fnmatch pattern on the path
    case = "P001"                               # optional
    reason = "macOS metadata, harmless"         # required
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .findings import CheckResult, Finding, Severity

__all__ = ["Config", "Waiver", "load_config"]

_LEVELS = {"error", "warning", "info", "ignore"}


@dataclass(frozen=True)
class Waiver:
    check_id: str
    reason: str
    path: str | None = None
    case: str | None = None

    def covers(self, finding: Finding) -> bool:
        if finding.check_id != self.check_id:
            return False
        if self.case is not None and finding.case != self.case:
            return False
        if self.path is None:
            return True
        paths = [finding.path] if finding.path is not None else []
        return any(fnmatch.fnmatchcase(p, self.path) for p in (*paths, *finding.files))


@dataclass(frozen=True)
class Config:
    severity: dict[str, str] = field(default_factory=dict)
    waivers: tuple[Waiver, ...] = ()
    source: str | None = None

    def apply(self, results: list[CheckResult]) -> list[CheckResult]:
        """Return results with severities re-classified and waived findings marked."""
        out: list[CheckResult] = []
        for result in results:
            findings = [self._apply_one(f) for f in result.findings]
            out.append(dataclasses.replace(result, findings=findings))
        return out

    def _apply_one(self, finding: Finding) -> Finding:
        level = self.severity.get(finding.check_id)
        if level == "ignore":
            return dataclasses.replace(finding, waived="ignored by config")
        if level is not None and finding.severity is not Severity(level):
            finding = dataclasses.replace(finding, severity=Severity(level))
        for waiver in self.waivers:
            if waiver.covers(finding):
                return dataclasses.replace(finding, waived=waiver.reason)
        return finding


def _parse(data: Any, source: str, known_ids: set[str]) -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a table/object")
    unknown_keys = set(data) - {"severity", "waive"}
    if unknown_keys:
        raise ConfigError(f"{source}: unknown keys {sorted(unknown_keys)}")
    severity = data.get("severity", {})
    if not isinstance(severity, dict):
        raise ConfigError(f"{source}: [severity] must map check ids to levels")
    for check_id, level in severity.items():
        if check_id not in known_ids:
            raise ConfigError(f"{source}: unknown check id {check_id!r}")
        if level not in _LEVELS:
            raise ConfigError(f"{source}: {check_id}: level must be one of {sorted(_LEVELS)}")
    waivers = []
    for item in data.get("waive", []):
        if not isinstance(item, dict) or "id" not in item or not item.get("reason"):
            raise ConfigError(f"{source}: every waiver needs an id and a reason")
        if item["id"] not in known_ids:
            raise ConfigError(f"{source}: unknown check id {item['id']!r}")
        waivers.append(
            Waiver(str(item["id"]), str(item["reason"]), item.get("path"), item.get("case"))
        )
    return Config(dict(severity), tuple(waivers), source)


def load_config(path: str | Path | None) -> Config:
    """Read a TOML or JSON config; ``None`` gives the empty config."""
    if path is None:
        return Config()
    from . import checks  # noqa: F401  (registers the check ids)
    from .registry import REGISTRY

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        data = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"cannot read config {p}: {exc}") from exc
    return _parse(data, str(p), set(REGISTRY))
