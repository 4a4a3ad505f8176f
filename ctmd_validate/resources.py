"""Locate the declarative files of ``schemas/`` (profiles, report schema, manifest).

Installed, they ship as the ``ctmd_validate.schemas`` package; in a source checkout
they are read from the top-level ``schemas/`` folder.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["schema_dir", "schema_file"]


def schema_dir() -> Path:
    """Folder that holds the shipped schemas, profiles and manifest."""
    spec = importlib.util.find_spec("ctmd_validate.schemas")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parent.parent / "schemas"


def schema_file(name: str) -> Path:
    """Path of one shipped file, e.g. ``report.schema.json`` or ``profiles/release.toml``."""
    return schema_dir() / name
