"""Synthetic COVID-CT-MD trees: realistic DICOM headers, tiny pixels, consistent labels.

``write_dataset`` builds a clean tree (the release's case ids and slice counts, 2 mm axial
stacks, CT Image Storage, de-identified headers that keep only sex and age) plus the
Index and the four label arrays the profile names. ``apply_defect`` then breaks it in
exactly one named way; every check of the project is the target of at least one defect
(``DEFECTS[name].targets``).

Modules: :mod:`.headers` (the DICOM side), :mod:`.labels` (the label files),
:mod:`.tree` (scales, layouts, whole trees and archives), :mod:`.defects` (one module per
check-id prefix).
"""

from __future__ import annotations

from .defects import DEFECTS, Defect, apply_defect
from .headers import MATRIX, SLICE_MM
from .tree import (
    LAYOUTS,
    SCALES,
    class_dir,
    select_cases,
    tree_profile,
    write_archive,
    write_dataset,
)

__all__ = [
    "DEFECTS",
    "LAYOUTS",
    "MATRIX",
    "SCALES",
    "SLICE_MM",
    "Defect",
    "apply_defect",
    "class_dir",
    "select_cases",
    "tree_profile",
    "write_archive",
    "write_dataset",
]
