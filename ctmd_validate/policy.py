"""De-identification policy: PS3.15 actions from dicom-anonymizer, options from a TOML file."""

from __future__ import annotations

import importlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ProfileError
from .resources import schema_dir
from .tags import tag_of

__all__ = ["ACTION_TABLES", "Policy", "load_policy"]

# dicom-anonymizer's table names -> PS3.15 Table E.1-1 action codes.
ACTION_TABLES = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}
DEFAULT_POLICY = "ctmd-default"


@dataclass(frozen=True)
class Policy:
    """Which attributes may hold what, and which dummies are accepted."""

    name: str
    description: str
    source: str
    standard_edition: str
    actions: dict[int, str]
    masked: tuple[tuple[int, int, int, int, str], ...]
    retain: frozenset[int]
    retain_uids: bool
    retain_dates: bool
    safe_private: frozenset[str]
    kept: dict[str, re.Pattern[str]]
    dummies: dict[str, tuple[re.Pattern[str], ...]] = field(default_factory=dict)

    def action(self, tag: int) -> str | None:
        """The Basic-Profile action of ``tag`` under this policy (None: keep)."""
        if tag in self.retain:
            return None
        code = self.actions.get(tag)
        if code is not None:
            return code
        group, elem = tag >> 16, tag & 0xFFFF
        for g, e, gm, em, masked_code in self.masked:
            if (group & gm) == g and (elem & em) == e:
                return masked_code
        return None

    def is_dummy(self, value: str | None, vr: str) -> bool:
        """True when ``value`` is empty or one of the accepted dummies for its VR."""
        if value is None or value.strip() == "":
            return True
        text = value.strip()
        patterns = (*self.dummies.get("any", ()), *self.dummies.get(vr, ()))
        return all(any(p.fullmatch(part.strip()) for p in patterns) for part in text.split("\\"))


def _tables(module: str) -> tuple[dict[int, str], list[tuple[int, int, int, int, str]]]:
    try:
        mod = importlib.import_module(f"dicomanonymizer.dicom_anonymization_databases.{module}")
    except ImportError as exc:
        raise ProfileError(f"dicom-anonymizer has no table module {module!r}") from exc
    actions: dict[int, str] = {}
    masked: list[tuple[int, int, int, int, str]] = []
    for table, code in ACTION_TABLES.items():
        for entry in getattr(mod, table, []):
            if len(entry) == 2:
                actions[(entry[0] << 16) | entry[1]] = code
            else:
                masked.append((entry[0], entry[1], entry[2], entry[3], code))
    return actions, masked


def load_policy(name_or_path: str | None = None) -> Policy:
    """Load the default policy or a curator's TOML policy file."""
    name = name_or_path or DEFAULT_POLICY
    path = Path(name)
    if not path.is_file():
        path = schema_dir() / "deid" / f"{name}.toml"
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"cannot read de-identification policy {name}: {exc}") from exc
    try:
        module = str(data.get("standard_tables", "dicomfields_2026c"))
        actions, masked = _tables(module)
        retain = data.get("retain", {})
        return Policy(
            name=str(data.get("name", path.stem)),
            description=str(data.get("description", "")),
            source=str(path),
            standard_edition=module.removeprefix("dicomfields_"),
            actions=actions,
            masked=tuple(masked),
            retain=frozenset(tag_of(k) for k in retain.get("keywords", [])),
            retain_uids=bool(retain.get("uids", False)),
            retain_dates=bool(retain.get("dates", False)),
            safe_private=frozenset(str(c) for c in retain.get("safe_private", [])),
            kept={k: re.compile(str(v)) for k, v in data.get("kept", {}).items()},
            dummies={
                vr: tuple(re.compile(str(p), re.IGNORECASE) for p in patterns)
                for vr, patterns in data.get("dummies", {}).items()
            },
        )
    except (KeyError, TypeError, ValueError, re.error) as exc:
        raise ProfileError(f"malformed de-identification policy {path}: {exc!r}") from exc
