"""The checks: the registry, and one module per id prefix.

Importing this package registers every check, module by module in :data:`MODULES`' order;
each check is a pure function over the scan tables with a stable id (see
:mod:`ctmd_validate.checks.registry`).
"""

from __future__ import annotations

from . import (
    archive,
    counts,
    deid,
    demographics,
    dicom,
    geometry,
    integrity,
    labels,
    structure,
)
from .registry import (
    REGISTRY,
    CheckContext,
    CheckFn,
    CheckSpec,
    Sink,
    check,
    check_ids,
    run_checks,
)

#: The check modules: ``archive.*``, ``counts.*``, … one module per id prefix.
MODULES = (archive, counts, deid, demographics, dicom, geometry, integrity, labels, structure)

__all__ = [
    "MODULES",
    "REGISTRY",
    "CheckContext",
    "CheckFn",
    "CheckSpec",
    "Sink",
    "check",
    "check_ids",
    "run_checks",
]
