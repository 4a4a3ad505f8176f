"""The defects: named ways to break a clean synthetic tree, one module per check-id prefix.

Each defect breaks the tree (or, for ``archive`` defects, its zip) in one way and names the
checks it is built to demonstrate (:attr:`Defect.targets`); every registered check is the
target of at least one defect. Importing this package registers every defect, module by
module in :data:`MODULES`' order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFECTS", "MODULES", "Defect", "apply_defect", "defect"]


@dataclass(frozen=True)
class Defect:
    """A named way to break a clean tree, and the check ids it is built to demonstrate."""

    name: str
    description: str
    apply: Callable[[Path], None]
    #: the checks this defect demonstrates (it may make others fire as a consequence)
    targets: frozenset[str]
    #: the profile to validate with: "subset", or "tree" (:func:`~..tree.tree_profile`,
    #: for checks that need every case of a class, such as the demographics)
    profile: str = "subset"
    #: only a deep scan (``--deep``: every frame decoded) can see it
    deep: bool = False
    #: judged against a manifest of the clean tree, built before the defect is applied
    manifest: bool = False
    #: applied to the tree zipped (:func:`~..tree.write_archive`), judged with the clean
    #: zip's MD5
    archive: bool = False


#: Every defect by name, in registration order.
DEFECTS: dict[str, Defect] = {}


def defect(
    name: str,
    description: str,
    targets: Iterable[str],
    *,
    profile: str = "subset",
    deep: bool = False,
    manifest: bool = False,
    archive: bool = False,
) -> Callable[[Callable[[Path], None]], Callable[[Path], None]]:
    """Register the decorated function as the defect ``name``."""

    def register(func: Callable[[Path], None]) -> Callable[[Path], None]:
        if name in DEFECTS:
            raise ValueError(f"defect {name!r} registered twice")
        DEFECTS[name] = Defect(
            name, description, func, frozenset(targets), profile, deep, manifest, archive
        )
        return func

    return register


def apply_defect(root: str | os.PathLike[str], name: str) -> None:
    """Break the synthetic tree (or archive) at ``root`` in the named way (see ``DEFECTS``)."""
    if name not in DEFECTS:
        raise KeyError(f"unknown defect {name!r}; choose from {sorted(DEFECTS)}")
    DEFECTS[name].apply(Path(root))


# Imported last: each module registers its defects with :func:`defect`, defined above.
from . import (  # noqa: E402
    archive,
    deid,
    demographics,
    dicom,
    geometry,
    integrity,
    labels,
    structure,
)

#: The defect modules: one per check-id prefix the defects mainly target.
MODULES = (archive, deid, demographics, dicom, geometry, integrity, labels, structure)
