"""Check modules, one per area. Importing this package registers every check."""

from __future__ import annotations

from . import counts, dicom, structure

__all__ = ["counts", "dicom", "structure"]
