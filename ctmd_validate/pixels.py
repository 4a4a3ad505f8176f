"""Deep scan (``--deep``): decode every frame while the scan has the file open.

The header pass proves the Pixel Data element is framed right; it cannot see a damaged
compressed stream (64 flipped bytes inside a JPEG Lossless fragment keep every length
intact). Decoding does: the codec fails, or returns the wrong number of values, or values
no CT scanner stores. The file is decoded from the descriptor the header was read from,
in the scan's worker processes, so no file is opened twice.

JPEG Lossless (the release's transfer syntax) is decoded by pylibjpeg + pylibjpeg-libjpeg
through pydicom's pixel backend; native, deflated and RLE data by pydicom itself.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import read_dataset
from pydicom.pixels import get_decoder
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

__all__ = ["MAX_PIXEL_BYTES", "decode_into"]

#: Pixel Data larger than this (stored or decoded) is not decoded: a CT slice is < 1 MiB,
#: and a forged length or a 65535 x 65535 image must not exhaust memory.
MAX_PIXEL_BYTES = 256 << 20

#: Attributes the decoder needs besides Pixel Data.
_IMAGE_KEYWORDS = (
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "NumberOfFrames",
)


def _frame_size(ds: Dataset) -> tuple[int, int] | None:
    """(values, bytes) of all frames as the header declares them; None when it cannot say."""
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
        values = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel") or 1) * frames
        return values, values * max(1, int(ds.BitsAllocated) // 8)
    except (AttributeError, TypeError, ValueError):
        return None


def decode_into(
    fp: BinaryIO,
    at: int,
    size: int,
    meta: Dataset,
    ds: Dataset,
    encoding: tuple[bool, bool],
    row: dict[str, Any],
) -> None:
    """Decode the Pixel Data that starts at offset ``at`` of ``fp``; results go into ``row``.

    ``pixel_status`` is ``ok`` or ``failed`` (with ``pixel_error``); ``stored_min`` /
    ``stored_max`` are the decoded values' extremes (the checks apply the rescale). Never
    raises: a decoder's exception is the finding.
    """
    row["pixel_status"] = "failed"
    try:
        _decode(fp, at, size, meta, ds, encoding, row)
    except MemoryError:
        row["pixel_error"] = "the decoded image does not fit in memory"
    except Exception as exc:  # a codec's error: its type and wording say what broke
        text = " ".join(str(exc).split())
        row["pixel_error"] = f"{type(exc).__name__}: {text[:400]}"


def _decode(
    fp: BinaryIO,
    at: int,
    size: int,
    meta: Dataset,
    ds: Dataset,
    encoding: tuple[bool, bool],
    row: dict[str, Any],
) -> None:
    size_of = _frame_size(ds)
    if size_of is None:
        row["pixel_error"] = "Rows, Columns or Bits Allocated missing: the frame size is unknown"
        return
    values, expected = size_of
    if expected > MAX_PIXEL_BYTES or size - at > MAX_PIXEL_BYTES:
        row["pixel_error"] = f"larger than {MAX_PIXEL_BYTES >> 20} MiB: not decoded"
        return
    implicit, little = encoding
    fp.seek(at)
    pixel = read_dataset(fp, implicit, little, stop_when=lambda tag, *_: tag > 0x7FE00010)
    if 0x7FE00010 not in pixel:
        row["pixel_error"] = "no Pixel Data element"
        return
    image = Dataset()
    image.file_meta = FileMetaDataset()
    tsuid = UID(str(meta.get("TransferSyntaxUID") or ExplicitVRLittleEndian))
    if tsuid == DeflatedExplicitVRLittleEndian:  # already inflated by the header pass
        tsuid = ExplicitVRLittleEndian
    image.file_meta.TransferSyntaxUID = tsuid
    image.set_original_encoding(implicit, little)
    for keyword in _IMAGE_KEYWORDS:
        if keyword in ds:
            setattr(image, keyword, ds[keyword].value)
    image[0x7FE00010] = pixel[0x7FE00010]
    element = pixel[0x7FE00010]
    if not tsuid.is_compressed and len(element.value) < expected:
        row["pixel_error"] = (
            f"Pixel Data holds {len(element.value)} bytes, the image needs {expected}"
        )
        return
    # the values as stored: pydicom would otherwise mask them to Bits Stored, hiding the
    # very values the range check looks for
    array, _ = get_decoder(tsuid).as_array(image, correct_unused_bits=False)
    if array.size != values:
        row["pixel_error"] = f"decoded {array.size} values, the image has {values}"
        return
    row["pixel_status"] = "ok"
    row["stored_min"] = float(np.min(array))
    row["stored_max"] = float(np.max(array))
