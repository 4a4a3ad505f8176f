"""DICOM file-level checks that need nothing but the scan of each file."""

from __future__ import annotations

from ..findings import Severity
from ..registry import CheckContext, Sink, check
from .conformance import describe_uid


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


@check("dicom.parser_warning", Severity.WARNING)
def parser_warning(ctx: CheckContext, sink: Sink) -> int:
    """The DICOM parser had to work around damage or non-conformance while reading a header.

    pydicom guesses past a wrong VR, a bad length, an unknown character set or an
    unexpected end; the header it returns may then differ from what the file means, so
    every other finding on that file deserves suspicion (files that could not be read at
    all are ``dicom.unreadable`` instead). The parser's own words are
    given with every quoted value removed (its messages quote raw header bytes, which
    may identify the patient). Fix: re-download the file; if it persists, rewrite the
    header with a conformant writer.
    """
    files = ctx.scan.readable  # an unreadable file is dicom.unreadable, warnings aside
    cases = ctx.scan.case_ids
    noisy = files[files["warnings"].notna()]
    rows = [
        (str(row.case_key), note, str(row.path))
        for row in noisy.itertuples()
        for note in str(row.warnings).split("\n")
    ]
    groups: dict[tuple[str, str], list[str]] = {}
    for case_key, note, path in rows:
        groups.setdefault((case_key, note), []).append(path)
    for (case_key, note), paths in sorted(groups.items()):
        sink.add(
            f"the parser warned in {len(paths)} files: {note}",
            case=str(cases.get(case_key, case_key)),
            path=paths[0] if len(paths) == 1 else case_key,
            expected="a header read without warnings",
            actual=note,
            files=paths,
        )
    for note in ctx.scan.notes:
        sink.add(
            f"a library warned during the scan: {note}",
            expected="no warnings",
            actual=note,
        )
    return len(files)


@check("dicom.transfer_syntax", Severity.WARNING, scope="case")
def transfer_syntax(ctx: CheckContext, sink: Sink) -> int:
    """An image uses a transfer syntax outside the profile's list (big endian, deflated …).

    The file is valid DICOM and is read in full, but many loaders (and some PACS) cannot
    decode retired or rare syntaxes such as Explicit VR Big Endian or Deflated Explicit VR
    Little Endian; the release itself uses JPEG Lossless SV1. The list is the profile's
    ``[conformance] transfer_syntaxes``. Fix: transcode the files (e.g. ``gdcmconv`` or
    pydicom) to the release's syntax.
    """
    files = ctx.scan.readable
    cases = ctx.scan.case_ids
    allowed = set(ctx.profile.conformance.transfer_syntaxes)
    odd = files[files["transfer_syntax"].notna() & ~files["transfer_syntax"].isin(allowed)]
    for (case_key, uid), group in odd.groupby(["case_key", "transfer_syntax"]):
        name, shown = describe_uid(str(uid))
        label = f"{name} ({uid})" if name not in (uid, shown) and shown == uid else name
        sink.add(
            f"{len(group)} files use the transfer syntax {label}, not in the profile",
            case=str(cases[case_key]),
            path=str(case_key),
            expected=sorted(allowed),
            actual=shown,
            files=list(group["path"]),
        )
    return int(files["transfer_syntax"].notna().sum())
