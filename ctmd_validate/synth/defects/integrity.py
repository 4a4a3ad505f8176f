"""Defects of integrity: damaged pixels a deep scan decodes, and fixity against a manifest.

Pixel defects are seen only by a deep scan (header and framing stay intact); fixity
defects are judged against a manifest of the clean tree (``manifest build`` before the
damage).
"""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset

from ..headers import MATRIX
from . import defect
from ._tree import assign, edit, first_case, link_inside, slices

# --------------------------------------------------------------------------- pixels


@defect(
    "pixel-short",
    "cut the Pixel Data of one Normal slice to half its bytes (element length kept right)",
    {"integrity.pixel.decode"},
    deep=True,
)
def _pixel_short(root: Path) -> None:
    def change(ds: Dataset) -> None:
        ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]

    edit(slices(first_case(root, "normal"))[4], change)


@defect(
    "pixel-out-of-range",
    "store 5000 in one pixel of a CAP slice whose Bits Stored is 12 (at most 4095)",
    {"integrity.pixel.range"},
    deep=True,
)
def _pixel_out_of_range(root: Path) -> None:
    def change(ds: Dataset) -> None:
        pixels = bytearray(ds.PixelData)
        pixels[0:2] = (5000).to_bytes(2, "little")
        ds.PixelData = bytes(pixels)

    edit(slices(first_case(root, "cap"))[2], change)


@defect(
    "rescale-implausible",
    "set Rescale Intercept -10000 on one COVID-19 slice (air would be -11000 HU)",
    {"integrity.pixel.range"},
    deep=True,
)
def _rescale_implausible(root: Path) -> None:
    edit(slices(first_case(root, "covid"))[3], assign(RescaleIntercept=-10000))


# --------------------------------------------------------------------------- fixity


@defect(
    "fixity-flip",
    "flip one byte inside the Pixel Data of a CAP slice (same size, still decodes)",
    {"integrity.checksum"},
    manifest=True,
)
def _fixity_flip(root: Path) -> None:
    f = slices(first_case(root, "cap"))[4]
    data = bytearray(f.read_bytes())
    data[-MATRIX // 2] ^= 0x01
    f.write_bytes(bytes(data))


@defect(
    "fixity-missing",
    "delete the last slice of the first Normal case (the stack stays regular)",
    {"integrity.missing_file"},
    manifest=True,
)
def _fixity_missing(root: Path) -> None:
    slices(first_case(root, "normal"))[-1].unlink()


@defect(
    "fixity-extra",
    "add a converted volume (volume.nii) beside the class folders",
    {"integrity.extra_file"},
    manifest=True,
)
def _fixity_extra(root: Path) -> None:
    (root / "volume.nii").write_bytes(b"\0" * 352)


@defect(
    "fixity-truncated",
    "cut the last slice of the first Normal case inside its Pixel Data",
    {"integrity.size"},
    manifest=True,
)
def _fixity_truncated(root: Path) -> None:
    f = slices(first_case(root, "normal"))[-1]
    data = f.read_bytes()
    f.write_bytes(data[: len(data) - MATRIX])


@defect(
    "fixity-link",
    "replace a slice with a link to a copy elsewhere inside the dataset (not compared)",
    {"integrity.manifest"},
    manifest=True,
)
def _fixity_link(root: Path) -> None:
    link_inside(root)
