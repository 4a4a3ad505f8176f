"""Defects of the slice stacks: missing slices, positions, spacing, orientation, numbering."""

from __future__ import annotations

from pathlib import Path

from ..headers import make_uid
from . import defect
from ._tree import assign, delete, edit, first_case, slices, stack


@defect(
    "missing-slice",
    "delete one interior slice of the first COVID-19 case",
    {"geometry.spacing.missing_slice", "counts.case_slices"},
)
def _missing_slice(root: Path) -> None:
    files = slices(first_case(root))
    files[len(files) // 2].unlink()


@defect(
    "series-multiple",
    "give the second half of the CAP case a new Series Instance UID",
    {"geometry.series.multiple"},
)
def _series_multiple(root: Path) -> None:
    files = slices(first_case(root, "cap"))
    for f in files[len(files) // 2 :]:
        edit(f, assign(SeriesInstanceUID=make_uid("second-series")))


@defect(
    "orientation-tilt",
    "tilt the orientation of one slice by 0.01",
    {"geometry.orientation.inconsistent"},
)
def _orientation_tilt(root: Path) -> None:
    edit(
        slices(first_case(root))[10],
        assign(ImageOrientationPatient=[1, 0, 0, 0, 0.99995, 0.0099998]),
    )


@defect(
    "pixel-spacing", "give one slice a different Pixel Spacing", {"geometry.shape.inconsistent"}
)
def _pixel_spacing(root: Path) -> None:
    edit(slices(first_case(root))[11], assign(PixelSpacing=[0.5, 0.5]))


@defect(
    "slice-location-missing",
    "delete Slice Location from one slice",
    {"geometry.slice_location.missing"},
)
def _slice_location_missing(root: Path) -> None:
    edit(slices(first_case(root))[12], delete("SliceLocation"))


@defect(
    "slice-location-duplicate",
    "copy one slice's Slice Location onto its neighbour",
    {"geometry.slice_location.duplicate"},
)
def _slice_location_duplicate(root: Path) -> None:
    pairs = stack(first_case(root, "normal"))
    edit(pairs[20][0], assign(SliceLocation=pairs[21][1].SliceLocation))


@defect(
    "instance-order",
    "swap the Instance Numbers of two slices",
    {"geometry.slice_location.non_monotonic"},
)
def _instance_order(root: Path) -> None:
    pairs = stack(first_case(root, "normal"))
    (fa, a), (fb, b) = pairs[30], pairs[40]
    edit(fa, assign(InstanceNumber=b.InstanceNumber))
    edit(fb, assign(InstanceNumber=a.InstanceNumber))


@defect(
    "slice-location-shift",
    "shift one slice's Slice Location by 0.5 mm",
    {"geometry.position.mismatch"},
)
def _slice_location_shift(root: Path) -> None:
    path, ds = stack(first_case(root, "normal"))[50]
    edit(path, assign(SliceLocation=round(float(ds.SliceLocation) + 0.5, 1)))


@defect(
    "uneven-spacing",
    "move one interior slice 0.6 mm along z (position and location)",
    {"geometry.spacing.irregular"},
)
def _uneven_spacing(root: Path) -> None:
    path, ds = stack(first_case(root, "cap"))[40]
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    z = round(z + 0.6, 1)
    edit(path, assign(ImagePositionPatient=[x, y, z], SliceLocation=z))


@defect(
    "instance-number-gap",
    "renumber the last slice of the CAP case (a gap of 5)",
    {"geometry.instance_number"},
)
def _instance_number_gap(root: Path) -> None:
    path, ds = stack(first_case(root, "cap"))[-1]
    edit(path, assign(InstanceNumber=int(ds.InstanceNumber) + 5))


@defect(
    "gantry-tilt",
    "tilt the gantry by 5 degrees on every slice of the Normal case",
    {"geometry.instance_number"},
)
def _gantry_tilt(root: Path) -> None:
    for f in slices(first_case(root, "normal")):
        edit(f, assign(GantryDetectorTilt=5))
