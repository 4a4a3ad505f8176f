"""DICOM file-level checks that need nothing but the scan of each file."""

from __future__ import annotations

from ..findings import Severity
from ..registry import CheckContext, Sink, check


@check("dicom.unreadable", Severity.ERROR, scope="case")
def unreadable(ctx: CheckContext, sink: Sink) -> int:
    """An image file cannot be read as DICOM: empty, truncated, not DICOM, or not readable.

    The slice is lost to every loader and shifts the labels of the case. The check verifies
    the header and the framing of the Pixel Data (its length, or every fragment of
    encapsulated data up to the delimiter) without decoding pixels. Fix: re-download the
    file; check disk space and permissions.
    """
    files = ctx.scan.files
    cases = ctx.scan.case_ids
    for row in files[files["status"] == "unreadable"].itertuples():
        sink.add(
            f"unreadable DICOM file: {row.error}",
            case=str(cases.get(row.case_key, row.case_key)),
            path=row.path,
            expected="a complete DICOM Part 10 file",
            actual=row.error,
        )
    return len(files)
