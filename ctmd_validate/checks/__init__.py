"""Check modules, one per area. Importing this package registers every check."""

from __future__ import annotations

from . import (
    archive,
    conformance,
    counts,
    deid,
    demographics,
    dicom,
    geometry,
    integrity,
    labels,
    structure,
)

__all__ = [
    "archive",
    "conformance",
    "counts",
    "deid",
    "demographics",
    "dicom",
    "geometry",
    "integrity",
    "labels",
    "structure",
]
