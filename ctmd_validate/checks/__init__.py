"""Check modules, one per area. Importing this package registers every check."""

from __future__ import annotations

from . import conformance, counts, dicom, geometry, structure

__all__ = ["conformance", "counts", "dicom", "geometry", "structure"]
