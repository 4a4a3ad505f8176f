"""Integrity of a copy: pixels that decode (``--deep``) and files that match a manifest."""

from __future__ import annotations

import numpy as np

from ..findings import Severity
from ..registry import CheckContext, Sink, check

#: HU a CT scanner can store: 12-bit signed data with the usual -1024 intercept reaches
#: -3072 (padding outside the field of view is often -3024 or -2048 stored); extended-range
#: scanners store up to 30,000+ HU for metal.
PLAUSIBLE_HU = (-3072.0, 32767.0)


def _decoded(ctx: CheckContext) -> bool:
    return ctx.scan.deep and "pixel_status" in ctx.scan.files


@check("integrity.pixel.decode", Severity.ERROR, scope="case")
def pixel_decode(ctx: CheckContext, sink: Sink) -> int:
    """An image's Pixel Data cannot be decoded, or decodes to the wrong number of values.

    The header and the framing can be intact while the compressed stream is damaged (a bad
    download, a flipped bit on disk): the slice then fails in every loader, or loads as a
    wrong image. Runs with ``--deep`` only (every frame is decoded, JPEG Lossless through
    pylibjpeg). Not every damage makes a decoder fail: compare with a manifest
    (``integrity.checksum``) to be sure a file is intact. Fix: re-download the file.
    """
    if not _decoded(ctx):
        return 0
    files = ctx.scan.readable
    cases = ctx.scan.case_ids
    for row in files[files["pixel_status"] == "failed"].itertuples():
        sink.add(
            f"Pixel Data cannot be decoded: {row.pixel_error}",
            case=str(cases.get(row.case_key, row.case_key)),
            path=row.path,
            expected="Rows x Columns x frames decoded values",
            actual=row.pixel_error,
        )
    return len(files)


@check("integrity.pixel.range", Severity.ERROR, scope="case")
def pixel_range(ctx: CheckContext, sink: Sink) -> int:
    """Decoded values lie outside what Bits Stored allows, or outside a plausible HU range.

    A stored value above ``2**BitsStored - 1`` (or below the signed minimum) cannot come
    from the scanner: the stream or the header is damaged, or Bits Stored / Pixel
    Representation are wrong, and loaders that mask to Bits Stored will change the image.
    HU (stored x Rescale Slope + Rescale Intercept) outside -3072..32767 means a wrong
    rescale. Runs with ``--deep`` only. Fix: re-download the file; if the copy is intact,
    correct Bits Stored, Pixel Representation or the rescale attributes.
    """
    if not _decoded(ctx):
        return 0
    files = ctx.scan.readable
    files = files[files["pixel_status"] == "ok"]
    cases = ctx.scan.case_ids
    bits = files["bits_stored"].fillna(files["bits_allocated"]).to_numpy()
    signed = files["pixel_representation"].fillna(0).to_numpy() == 1
    with np.errstate(invalid="ignore", over="ignore"):
        low = np.where(signed, -(2.0 ** (bits - 1)), 0.0)
        high = np.where(signed, 2.0 ** (bits - 1) - 1, 2.0**bits - 1)
        slope = files["rescale_slope"].fillna(1.0).to_numpy()
        intercept = files["rescale_intercept"].fillna(0.0).to_numpy()
        ends = np.stack(
            [files["stored_min"] * slope + intercept, files["stored_max"] * slope + intercept]
        )
    hu_min, hu_max = ends.min(axis=0), ends.max(axis=0)
    stored_min, stored_max = files["stored_min"].to_numpy(), files["stored_max"].to_numpy()
    for i, row in enumerate(files.itertuples()):
        case = str(cases.get(row.case_key, row.case_key))
        if np.isfinite(bits[i]) and (stored_min[i] < low[i] or stored_max[i] > high[i]):
            sink.add(
                f"stored values {stored_min[i]:g}..{stored_max[i]:g} do not fit Bits Stored "
                f"{bits[i]:g} ({'signed' if signed[i] else 'unsigned'}: "
                f"{low[i]:g}..{high[i]:g})",
                case=case,
                path=row.path,
                expected=[low[i], high[i]],
                actual=[stored_min[i], stored_max[i]],
            )
        elif hu_min[i] < PLAUSIBLE_HU[0] or hu_max[i] > PLAUSIBLE_HU[1]:
            sink.add(
                f"HU {hu_min[i]:g}..{hu_max[i]:g} outside the plausible CT range "
                f"{PLAUSIBLE_HU[0]:g}..{PLAUSIBLE_HU[1]:g}",
                case=case,
                path=row.path,
                expected=list(PLAUSIBLE_HU),
                actual=[hu_min[i], hu_max[i]],
            )
    return len(files)
