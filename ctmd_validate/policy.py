"""De-identification policy: PS3.15 actions from dicom-anonymizer, options from a TOML file.

The file is checked against ``schemas/policy.schema.json`` (unknown keys, types, regular
expressions), then its DICOM keywords against pydicom's dictionary; every error names the
file, the line and the key path.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.datadict import tag_for_keyword

from .errors import ProfileError
from .resources import schema_dir
from .settings import Problem, raise_problems, read_settings, schema_problems
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
SCHEMA = "policy.schema.json"


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
    """PS3.15 actions from one of dicom-anonymizer's table modules; ImportError if absent."""
    mod = importlib.import_module(f"dicomanonymizer.dicom_anonymization_databases.{module}")
    actions: dict[int, str] = {}
    masked: list[tuple[int, int, int, int, str]] = []
    for table, code in ACTION_TABLES.items():
        for entry in getattr(mod, table, []):
            if len(entry) == 2:
                actions[(entry[0] << 16) | entry[1]] = code
            else:
                masked.append((entry[0], entry[1], entry[2], entry[3], code))
    return actions, masked


def _keyword_problems(data: dict[str, Any]) -> list[Problem]:
    """Names in ``retain.keywords`` and ``[kept]`` that pydicom does not know."""
    problems = [
        Problem(("retain", "keywords", i), f"{kw!r} is not a DICOM keyword")
        for i, kw in enumerate(data.get("retain", {}).get("keywords", []))
        if tag_for_keyword(kw) is None
    ]
    problems += [
        Problem(("kept", kw), f"{kw!r} is not a DICOM keyword")
        for kw in data.get("kept", {})
        if tag_for_keyword(kw) is None
    ]
    return problems


def load_policy(name_or_path: str | None = None) -> Policy:
    """Load the default policy or a curator's TOML policy file.

    Raises :class:`ProfileError` naming the file, line and key of every problem found.
    """
    name = name_or_path or DEFAULT_POLICY
    path = Path(name)
    if not path.is_file():
        path = schema_dir() / "deid" / f"{name}.toml"
        if not path.is_file():
            raise ProfileError(f"no such de-identification policy: {name}")
    sf = read_settings(path, "de-identification policy", ProfileError)
    raise_problems(schema_problems(sf.data, SCHEMA), [sf], ProfileError)
    data: dict[str, Any] = sf.data
    raise_problems(_keyword_problems(data), [sf], ProfileError)
    module = data.get("standard_tables", "dicomfields_2026c")
    try:
        actions, masked = _tables(module)
    except ImportError as exc:
        where = sf.where(("standard_tables",))
        raise ProfileError(f"{where}dicom-anonymizer has no table module {module!r}") from exc
    if not actions:
        # e.g. "__init__": a module that exists but holds no PS3.15 table would silently
        # turn every de-identification check off
        where = sf.where(("standard_tables",))
        raise ProfileError(f"{where}module {module!r} of dicom-anonymizer holds no PS3.15 table")
    retain = data.get("retain", {})
    return Policy(
        name=data.get("name", path.stem),
        description=data.get("description", ""),
        source=str(path),
        standard_edition=module.removeprefix("dicomfields_"),
        actions=actions,
        masked=tuple(masked),
        retain=frozenset(tag_of(k) for k in retain.get("keywords", [])),
        retain_uids=retain.get("uids", False),
        retain_dates=retain.get("dates", False),
        safe_private=frozenset(retain.get("safe_private", [])),
        kept={k: re.compile(v) for k, v in data.get("kept", {}).items()},
        dummies={
            vr: tuple(re.compile(p, re.IGNORECASE) for p in patterns)
            for vr, patterns in data.get("dummies", {}).items()
        },
    )
