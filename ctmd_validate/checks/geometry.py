"""Slice-stack geometry, per case.

Slices are ordered the way robust readers do it (GDCM's IPPSorter, ITK, highdicom): by
Image Position (Patient) projected on the slice normal, the cross product of the Image
Orientation (Patient) row and column cosines. Then the stack is checked for one series,
one orientation, one shape, Slice Locations that agree with the positions, and regular
spacing. Tolerances come from the profile's ``[geometry]`` table.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..findings import Severity
from ..views import IOP, Stack
from .registry import CheckContext, Sink, check

__all__: list[str] = []

_IOP = list(IOP)


def _stacks(ctx: CheckContext, minimum: int = 2) -> Iterator[Stack]:
    for stack in ctx.views.stacks:
        if len(stack.files) >= minimum:
            yield stack


def _mm(value: float) -> float:
    return round(float(value), 4)


def _files(frame: pd.DataFrame) -> list[str]:
    return [str(p) for p in frame["path"]]


@check("geometry.series.multiple", Severity.ERROR, scope="case")
def series_multiple(ctx: CheckContext, sink: Sink) -> int:
    """A case mixes more than one series (or frame of reference).

    Two series in one folder (a second reconstruction, a scout) interleave into one
    impossible volume and shift the labels. Fix: keep the series the labels were made on.
    """
    examined = 0
    for stack in _stacks(ctx, 1):
        examined += 1
        for column, label in (
            ("series_uid", "Series Instance UID"),
            ("frame_of_reference_uid", "Frame of Reference UID"),
        ):
            values = stack.files[column].dropna()
            if values.nunique() > 1:
                sizes = sorted(values.value_counts().tolist(), reverse=True)
                minority = stack.files[stack.files[column] != values.mode().iloc[0]]
                sink.add(
                    f"{values.nunique()} different {label}s in one case (files per value: {sizes})",
                    case=stack.case_id,
                    path=stack.case_key,
                    expected=f"one {label}",
                    actual={"values": int(values.nunique()), "files_per_value": sizes},
                    files=_files(minority),
                )
    return examined


@check("geometry.orientation.inconsistent", Severity.ERROR, scope="case")
def orientation_inconsistent(ctx: CheckContext, sink: Sink) -> int:
    """Image Orientation (Patient) differs between slices of a case.

    A stack with mixed orientations is not one volume; sorting by position becomes
    meaningless. Fix: check for a tilted or reformatted series mixed into the case.
    """
    tol = ctx.profile.geometry.orientation_tol
    examined = 0
    for stack in _stacks(ctx):
        iop = stack.files.dropna(subset=_IOP)
        if iop.empty:
            continue
        examined += 1
        ref = iop[_IOP].median().to_numpy(dtype=float)
        dev = np.abs(iop[_IOP].to_numpy(dtype=float) - ref).max(axis=1)
        bad = iop[dev > tol]
        if len(bad):
            sink.add(
                f"{len(bad)} slices deviate from the case's orientation by up to "
                f"{float(dev.max()):.6f}",
                case=stack.case_id,
                path=stack.case_key,
                expected=[_mm(v) for v in ref],
                actual={"max_deviation": float(dev.max()), "tolerance": tol},
                files=_files(bad),
            )
    return examined


@check("geometry.shape.inconsistent", Severity.ERROR, scope="case")
def shape_inconsistent(ctx: CheckContext, sink: Sink) -> int:
    """Rows, Columns, Pixel Spacing or Slice Thickness differ between slices of a case.

    A volume needs one in-plane grid and one thickness; loaders either fail or resample
    silently. Fix: find the odd slices (listed) and remove or replace them.
    """
    attributes = {
        "Rows": ["rows"],
        "Columns": ["columns"],
        "Pixel Spacing": ["pixel_spacing_0", "pixel_spacing_1"],
        "Slice Thickness": ["slice_thickness"],
    }
    examined = 0
    for stack in _stacks(ctx):
        examined += 1
        for name, columns in attributes.items():
            values = stack.files[columns].dropna()
            if values.empty:
                continue
            rounded = values.round(6)
            if len(rounded.drop_duplicates()) <= 1:  # the common case, without row tuples
                continue
            keys = rounded.apply(tuple, axis=1)
            common = keys.mode().iloc[0]
            odd = stack.files.loc[keys[keys != common].index]
            sink.add(
                f"{name} differs in {len(odd)} of {len(keys)} slices",
                case=stack.case_id,
                path=stack.case_key,
                expected=list(common) if len(common) > 1 else common[0],
                actual=sorted({k if len(k) > 1 else k[0] for k in keys}, key=str),
                files=_files(odd),
            )
    return examined


@check("geometry.slice_location.missing", Severity.ERROR, scope="case")
def slice_location_missing(ctx: CheckContext, sink: Sink) -> int:
    """A slice has no Slice Location (0020,1041).

    The dataset's README tells users to order slices by Slice Location; a slice without
    one cannot be placed and every label after it shifts. Fix: restore the attribute.
    """
    examined = 0
    for stack in _stacks(ctx, 1):
        examined += 1
        _missing_values(stack, sink, "slice_location", "Slice Location")
    return examined


def _missing_values(stack: Stack, sink: Sink, column: str, label: str) -> None:
    """One finding naming the slices of ``stack`` that have no ``column``."""
    bad = stack.files[stack.files[column].isna()]
    if len(bad):
        sink.add(
            f"{len(bad)} of {len(stack.files)} slices have no {label}",
            case=stack.case_id,
            path=stack.case_key,
            expected=f"a {label} on every slice",
            actual=f"missing on {len(bad)} slices",
            files=_files(bad),
            code="missing",
        )


@check("geometry.slice_location.duplicate", Severity.ERROR, scope="case")
def slice_location_duplicate(ctx: CheckContext, sink: Sink) -> int:
    """Two slices of a case carry the same Slice Location.

    Sorting by Slice Location (as the README says) is then ambiguous: a duplicated slice or
    a copied header. Fix: compare the files listed; remove the duplicate.
    """
    examined = 0
    for stack in _stacks(ctx):
        located = stack.files.dropna(subset=["slice_location"])
        examined += 1
        dup = located[located["slice_location"].duplicated(keep=False)]
        for location, group in dup.groupby("slice_location"):
            sink.add(
                f"{len(group)} slices share Slice Location {float(location):g}",
                case=stack.case_id,
                path=stack.case_key,
                expected="a distinct Slice Location per slice",
                actual={"slice_location": float(location), "slices": len(group)},
                files=_files(group),
            )
    return examined


def _breaks(values: np.ndarray) -> tuple[int, int]:
    """Indices of the first step against the dominant direction (zero steps ignored)."""
    steps = np.diff(values)
    signs = np.sign(steps[steps != 0])
    if signs.size == 0:
        return -1, 0
    direction = 1.0 if (signs > 0).sum() >= (signs < 0).sum() else -1.0
    against = np.flatnonzero(np.sign(steps) == -direction)
    return (int(against[0]), int(against.size)) if against.size else (-1, 0)


@check("geometry.slice_location.non_monotonic", Severity.ERROR, scope="case")
def slice_location_non_monotonic(ctx: CheckContext, sink: Sink) -> int:
    """Slice Location does not run strictly one way along the stack or along Instance Number.

    The labels are indexed by Slice Location order; if it disagrees with the physical
    order (positions) or with Instance Number order, the same labels land on different
    slices depending on how a user sorts. Fix: correct the Slice Locations or Instance
    Numbers of the listed slices.
    """
    examined = 0
    for stack in _stacks(ctx):
        examined += 1
        orders = (
            ("the position along the slice normal", stack.ordered),
            (
                "Instance Number",
                stack.files.dropna(subset=["instance_number"]).sort_values(
                    ["instance_number", "path"], kind="stable"
                ),
            ),
        )
        for label, frame in orders:
            located = frame.dropna(subset=["slice_location"])
            first, count = _breaks(located["slice_location"].to_numpy(dtype=float))
            if first < 0:
                continue
            pair = located.iloc[first : first + 2]
            sink.add(
                f"Slice Location turns back {count} time(s) along {label}, first between "
                f"{float(pair['slice_location'].iloc[0]):g} and "
                f"{float(pair['slice_location'].iloc[1]):g}",
                case=stack.case_id,
                path=stack.case_key,
                expected=f"strictly monotonic along {label}",
                actual={"reversals": count, "at": [float(v) for v in pair["slice_location"]]},
                files=_files(pair),
            )
    return examined


@check("geometry.position.mismatch", Severity.ERROR, scope="case")
def position_mismatch(ctx: CheckContext, sink: Sink) -> int:
    """Slice Location disagrees with Image Position (Patient) beyond one constant offset.

    Slice Location should be the position along the normal plus one offset per case
    (reported as info when it is not zero). A slice that disagrees gets its label from
    the wrong place. Fix: trust the position; correct the listed Slice Locations.
    """
    tol = ctx.profile.geometry.position_tol_mm
    examined = 0
    for stack in _stacks(ctx):
        located = stack.ordered.dropna(subset=["slice_location"])
        if len(located) < 2:
            continue
        examined += 1
        location = located["slice_location"].to_numpy(dtype=float)
        proj = located["proj"].to_numpy(dtype=float)
        same, opposite = location - proj, location + proj
        if np.ptp(same) <= tol or np.ptp(opposite) <= tol:
            reversed_ = np.ptp(same) > tol
            offset = float(np.median(opposite if reversed_ else same))
            if reversed_ or abs(offset) > tol:
                sink.add(
                    f"Slice Location = {'-' if reversed_ else ''}position "
                    f"{'+' if offset >= 0 else '-'} {abs(offset):.4g} mm along the normal",
                    case=stack.case_id,
                    path=stack.case_key,
                    expected="Slice Location = position along the normal",
                    actual={"offset_mm": _mm(offset), "reversed": bool(reversed_)},
                    severity=Severity.INFO,
                )
            continue
        offset = float(np.median(same))
        off = np.abs(same - offset) > tol
        bad = located[off]
        sink.add(
            f"{len(bad)} slices' Slice Location is off their position by up to "
            f"{float(np.abs(same - offset).max()):.4g} mm (case offset {offset:.4g} mm)",
            case=stack.case_id,
            path=stack.case_key,
            expected={"offset_mm": _mm(offset), "tolerance_mm": tol},
            actual=[
                {"position": _mm(p), "slice_location": _mm(s)}
                for p, s in zip(bad["proj"], bad["slice_location"], strict=True)
            ][:20],
            files=_files(bad),
        )
    return examined


@dataclass(frozen=True)
class _Gap:
    index: int  # gap between ordered slices index and index + 1
    size: float
    missing: int  # slices missing in the gap (0: irregular, not a whole multiple)


def _nominal(steps: np.ndarray) -> float:
    """The stack's spacing: its most common step (0.01 mm bins; ties: the smallest).

    A median would drift to a spacing no pair has when many slices are missing (steps
    [2, 4] have median 3).
    """
    positive = np.round(steps[steps > 1e-6], 2)
    if positive.size == 0:
        return 0.0
    values, counts = np.unique(positive, return_counts=True)
    mode = values[counts == counts.max()].min()
    return float(np.median(steps[np.abs(steps - mode) <= 0.005]))


def _gaps(stack: Stack, abs_tol: float, rel_tol: float) -> tuple[float, list[_Gap]]:
    proj = stack.ordered["proj"].to_numpy(dtype=float)
    steps = np.diff(proj)
    if steps.size < 2:
        return 0.0, []
    nominal = _nominal(steps)
    if nominal <= 0:
        return nominal, []
    tol = min(abs_tol, rel_tol * nominal)
    odd = []
    for i, step in enumerate(steps):
        if abs(step - nominal) <= tol:
            continue
        k = round(step / nominal)
        missing = k - 1 if k >= 2 and abs(step - k * nominal) <= tol else 0
        odd.append(_Gap(i, float(step), missing))
    return nominal, odd


def _spaced_stacks(ctx: CheckContext) -> Iterator[tuple[Stack, float, list[_Gap]]]:
    """Stacks of 3+ slices with a positive spacing, with their odd gaps."""
    geo = ctx.profile.geometry
    for stack in _stacks(ctx, 3):
        nominal, gaps = _gaps(stack, geo.spacing_abs_tol_mm, geo.spacing_rel_tol)
        if nominal > 0:
            yield stack, nominal, gaps


@check("geometry.spacing.irregular", Severity.ERROR, scope="case")
def spacing_irregular(ctx: CheckContext, sink: Sink) -> int:
    """Neighbouring slices are not evenly spaced (beyond 0.2 mm and 1 % of the spacing).

    Volumes built from unevenly spaced slices are distorted (dcm2niix refuses or
    interpolates), and a slice-indexed label no longer means a fixed distance. A gap that
    is a whole multiple of the spacing is reported as missing slices instead. Fix: look for
    a duplicated, shifted or foreign slice among the listed files.
    """
    examined = 0
    for stack, nominal, gaps in _spaced_stacks(ctx):
        examined += 1
        for gap in (g for g in gaps if g.missing == 0):
            pair = stack.ordered.iloc[gap.index : gap.index + 2]
            sink.add(
                f"gap of {gap.size:.4g} mm between positions {float(pair['proj'].iloc[0]):.4g} "
                f"and {float(pair['proj'].iloc[1]):.4g} (spacing {nominal:.4g} mm)",
                case=stack.case_id,
                path=stack.case_key,
                expected=_mm(nominal),
                actual=_mm(gap.size),
                files=_files(pair),
            )
    return examined


@check("geometry.spacing.missing_slice", Severity.ERROR, scope="case")
def spacing_missing_slice(ctx: CheckContext, sink: Sink) -> int:
    """A gap in the stack is a whole multiple (>= 2) of the spacing: slices are missing.

    Each missing slice shifts the labels of every slice beyond it. Fix: re-download the
    case; the finding says how many slices are missing and between which positions.
    """
    examined = 0
    for stack, nominal, gaps in _spaced_stacks(ctx):
        examined += 1
        for gap in (g for g in gaps if g.missing > 0):
            pair = stack.ordered.iloc[gap.index : gap.index + 2]
            lo, hi = (float(v) for v in pair["proj"])
            sink.add(
                f"{gap.missing} slice(s) missing between positions {lo:.4g} and {hi:.4g} "
                f"(gap {gap.size:.4g} mm, spacing {nominal:.4g} mm)",
                case=stack.case_id,
                path=stack.case_key,
                expected={"spacing_mm": _mm(nominal)},
                actual={
                    "missing": gap.missing,
                    "between_mm": [_mm(lo), _mm(hi)],
                    "after_slice": gap.index + 1,
                },
                files=_files(pair),
            )
    return examined


@check("geometry.instance_number", Severity.ERROR, scope="case")
def instance_number(ctx: CheckContext, sink: Sink) -> int:
    """Instance Numbers are missing, repeated or not contiguous; or the gantry is tilted.

    Many loaders order by Instance Number; gaps and repeats hint at missing or duplicated
    slices. A gantry tilt (warning) means slices are not stacked straight, which readers
    must correct for. Each kind has its ``code`` (``missing``, ``duplicate``, ``gap``,
    ``gantry_tilt``), so a config can waive one alone. Fix: compare with the slice
    positions; re-download the case.
    """
    examined = 0
    for stack in _stacks(ctx, 1):
        examined += 1
        files = stack.files
        numbers = files["instance_number"]
        _missing_values(stack, sink, "instance_number", "Instance Number")
        present = numbers.dropna()
        dup = files[numbers.duplicated(keep=False) & numbers.notna()]
        if len(dup):
            sink.add(
                f"{dup['instance_number'].nunique()} Instance Numbers are used more than once",
                case=stack.case_id,
                path=stack.case_key,
                expected="unique Instance Numbers",
                actual=sorted(int(v) for v in dup["instance_number"].unique())[:20],
                files=_files(dup),
                code="duplicate",
            )
        unique = np.unique(present.to_numpy(dtype=float))
        if unique.size and (unique.max() - unique.min() + 1) != unique.size:
            full = np.arange(unique.min(), unique.max() + 1)
            holes = np.setdiff1d(full, unique)
            sink.add(
                f"Instance Numbers {int(unique.min())}..{int(unique.max())} skip "
                f"{holes.size} number(s)",
                case=stack.case_id,
                path=stack.case_key,
                expected="contiguous Instance Numbers",
                actual={"missing": [int(v) for v in holes[:20]], "count": int(holes.size)},
                code="gap",
            )
        tilt = files["gantry_tilt"].dropna()
        tilted = tilt[tilt.abs() > 0]
        if len(tilted):
            sink.add(
                f"gantry tilted by {float(tilted.abs().max()):g} degrees on {len(tilted)} slices",
                case=stack.case_id,
                path=stack.case_key,
                expected=0.0,
                actual=sorted({float(v) for v in tilted}),
                files=_files(files.loc[tilted.index]),
                severity=Severity.WARNING,
                code="gantry_tilt",
            )
    return examined
