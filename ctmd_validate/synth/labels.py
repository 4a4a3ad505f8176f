"""The label side of a synthetic tree: ``Index.csv`` and the slice- and lobe-level arrays.

Which cases are labelled, the lobes, the file names and the original infected-slice total
come from the profile (``[labels]`` and ``[published]``); what no publication fixes (the
width of the arrays, the updated-1 total) is a synthetic choice made here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..profiles import LabelSpec, LabelVersion, ManifestCase, Profile

__all__ = [
    "INFECTED_UPDATED",
    "LABEL_SLICES",
    "UPDATED_VERSION",
    "label_version",
    "labelled_cases",
    "write_labels",
]

LABEL_SLICES = 200  # width of the released label arrays' slice axis
#: The label version written beside the reference one, revising its announced cases only.
UPDATED_VERSION = "updated-1"
#: Infected slices of the updated-1 labels: synthetic (only the original total is published).
INFECTED_UPDATED = 4993
#: lobe -> (start, stop) of its infected run as fractions of the lung span, cranial first
_EXTENTS = {
    "RUL": (0.0, 0.40),
    "LUL": (0.0, 0.50),
    "RML": (0.35, 0.65),
    "RLL": (0.45, 1.0),
    "LLL": (0.50, 1.0),
}


def labelled_cases(profile: Profile) -> list[ManifestCase]:
    """The labelled cases, in Index order: the first ``published.labelled[class]`` of each."""
    out: list[ManifestCase] = []
    for key, count in profile.published.labelled.items():
        out.extend([c for c in profile.manifest.values() if c.class_key == key][:count])
    return out


def label_version(spec: LabelSpec, name: str) -> LabelVersion:
    """The label version called ``name`` (KeyError when the profile has none)."""
    for version in spec.versions:
        if version.name == name:
            return version
    raise KeyError(f"the profile has no label version {name!r}")


def _lobe_labels(
    labelled: list[ManifestCase], seed: int, lobe_names: tuple[str, ...]
) -> np.ndarray:
    """Lobe labels with index 0 at the cranial end: upper lobes first, lower lobes last."""
    rng = np.random.default_rng(seed + 1)
    lobes = np.zeros((len(labelled), LABEL_SLICES, len(lobe_names)), dtype=np.float64)
    for row, case in enumerate(labelled):
        n = case.n_slices
        lung_top, lung_bottom = int(n * 0.15), int(n * 0.85)
        span = lung_bottom - lung_top
        for lobe, (a, b) in _EXTENTS.items():
            if rng.random() < 0.3:
                continue
            start = lung_top + int(span * a)
            stop = lung_top + int(span * b)
            length = max(1, int((stop - start) * rng.uniform(0.2, 0.6)))
            first = int(rng.integers(start, max(start + 1, stop - length)))
            lobes[row, first : first + length, lobe_names.index(lobe)] = 1
    return lobes


def _fit_total(lobes: np.ndarray, rows: Iterable[int], counts: list[int], target: int) -> None:
    """Grow or shrink infected runs of ``rows`` until exactly ``target`` slices are infected."""
    rows = list(rows)
    for _ in range(100_000):
        total = int(lobes.any(axis=2).sum())
        if total == target:
            return
        for row in rows:
            infected = np.flatnonzero(lobes[row].any(axis=1))
            if total < target:
                cand = np.flatnonzero(~lobes[row].any(axis=1)[: counts[row]])
                if infected.size:
                    edge = [
                        s
                        for s in (infected.max() + 1, infected.min() - 1)
                        if 0 <= s < counts[row] and s in cand
                    ]
                    if edge:
                        # grow with the lobe at that end, so upper lobes stay cranial
                        end = infected.max() if edge[0] > infected.max() else infected.min()
                        at_end = np.flatnonzero(lobes[row, end])
                        lobe = int(at_end[-1 if end > infected.min() else 0])
                        lobes[row, edge[0], lobe] = 1
                        total += 1
            elif infected.size:
                lobes[row, infected.max(), :] = 0
                total -= 1
            if total == target:
                return
    raise RuntimeError("could not fit the infected-slice total")


@functools.cache
def _label_arrays(
    labelled: tuple[ManifestCase, ...],
    seed: int,
    lobe_names: tuple[str, ...],
    infected: int,
    revised: tuple[str, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Reference and updated lobe labels of the labelled cases (index 0 cranial).

    The labels cover every labelled case whatever the scale (as in the public sample), and
    reproduce the totals: ``infected`` slices in the reference labels (the published
    4,957), :data:`INFECTED_UPDATED` after the update, which changes the ``revised`` cases
    only (the announced P001 and P006).
    """
    counts = [c.n_slices for c in labelled]
    lobes = _lobe_labels(list(labelled), seed, lobe_names)
    _fit_total(lobes, range(len(labelled)), counts, infected)
    updated = lobes.copy()
    revised_ids = set(revised)
    rows = [i for i, c in enumerate(labelled) if c.case_id in revised_ids]
    _fit_total(updated, rows, counts, INFECTED_UPDATED)
    lobes.flags.writeable = False
    updated.flags.writeable = False
    return lobes, updated


def write_labels(out: Path, profile: Profile, seed: int) -> None:
    """The label files, with clean dtypes (int64); ``labels-dtype`` restores the release's."""
    spec = profile.labels
    labelled = labelled_cases(profile)
    reference = label_version(spec, spec.reference_version)
    updated = label_version(spec, UPDATED_VERSION)
    lobes, lobes_updated = _label_arrays(
        tuple(labelled),
        seed,
        spec.lobes,
        profile.published.infected_slices[spec.reference_version],
        updated.announced_changes or (),
    )
    for version, array in ((reference, lobes), (updated, lobes_updated)):
        np.save(out / version.slice_file, array.any(axis=2).astype(np.int64))
        np.save(out / version.lobe_file, array.astype(np.int64))
    lines = [",".join(spec.index_columns)]
    for i, case in enumerate(labelled):
        label = profile.classes[case.class_key].label
        lines.append(f"{i},{label},./{label}/,{case.case_id}")
    (out / spec.index).write_bytes("\r\n".join(lines).encode("ascii"))
