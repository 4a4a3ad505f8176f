"""Integrity of a copy: pixels that decode (``--deep``) and files that match a manifest."""

from __future__ import annotations

import numpy as np

from ..findings import Severity
from ..fixity import Discrepancy
from .registry import CheckContext, Sink, check

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


# --------------------------------------------------------------------------- fixity
# Run with --manifest FILE (or `manifest verify`): the copy against the curators' hashes.


_WORDS = {
    "integrity.missing_file": "listed in {manifest}, absent from the copy",
    "integrity.extra_file": "in the copy, not listed in {manifest}",
    "integrity.size": "size differs from {manifest}",
    "integrity.checksum": "SHA-256 differs from {manifest}",
}


def _discrepancies(ctx: CheckContext, kind: str, sink: Sink) -> int:
    if ctx.fixity is None:
        return 0
    # names of missing files are hidden: each is named by the nearest folder the copy has
    hidden = kind == "integrity.missing_file" and not ctx.show_values
    present = _folders(ctx) if hidden else set()  # once, not once per missing file
    for d in ctx.fixity.discrepancies:
        if d.kind != kind:
            continue
        if hidden:
            _missing(ctx, d, present, sink)
            continue
        sink.add(
            _WORDS[kind].format(manifest=ctx.fixity.manifest),
            path=d.path,
            expected=d.expected,
            actual=d.actual,
        )
    return ctx.fixity.files


def _missing(ctx: CheckContext, d: Discrepancy, present: set[str], sink: Sink) -> None:
    """A missing file, named by its folder and manifest line: never by its own name.

    A name that is only in the manifest cannot be judged by the report's masking (the
    values it may hold are in no header of the copy: the whole case may be gone), so it is
    not shown; the manifest line says which file it is.
    """
    assert ctx.fixity is not None
    parts = d.path.split("/")[:-1]
    while parts and "/".join(parts) not in present:
        parts.pop()
    sink.add(
        f"a file listed in {ctx.fixity.manifest} (line {d.line}) is absent from the copy; "
        "its name is not shown (--show-values shows it)",
        path="/".join(parts) or None,
        expected=d.expected,
        actual=None,
    )


def _folders(ctx: CheckContext) -> set[str]:
    """Every folder of the copy that the scan saw."""
    scan = ctx.scan
    out: set[str] = set(scan.class_dirs["path"]) | set(scan.cases["case_key"])
    for column in (scan.files["path"], scan.entries["path"]):
        for rel in column:
            parts = str(rel).split("/")[:-1]
            for i in range(1, len(parts) + 1):
                out.add("/".join(parts[:i]))
    return out


@check("integrity.missing_file", Severity.ERROR)
def missing_file(ctx: CheckContext, sink: Sink) -> int:
    """A file the manifest lists is not in the copy.

    The download or the extraction lost it (a failed member, a disk that filled up, a
    case deleted by hand). Every missing file is named, also when whole folders are gone.
    Fix: re-download the file (or the case folder it belongs to) and verify again.
    """
    return _discrepancies(ctx, "integrity.missing_file", sink)


@check("integrity.extra_file", Severity.ERROR)
def extra_file(ctx: CheckContext, sink: Sink) -> int:
    """The copy holds a file the manifest does not list.

    A file added by hand, left by a tool (``.DS_Store``, a converted volume), or a copy
    from another release. Fix: remove it, or build a new manifest if the copy is meant
    to differ from the release (``ctmd-validate manifest build``).
    """
    return _discrepancies(ctx, "integrity.extra_file", sink)


@check("integrity.size", Severity.ERROR)
def size_mismatch(ctx: CheckContext, sink: Sink) -> int:
    """A file's size differs from the one the manifest's sizes companion records.

    A truncated download or a rewritten file; the checksum is not compared then (it must
    differ). Found by ``--fast`` too, without reading any file. Fix: re-download the file.
    """
    return _discrepancies(ctx, "integrity.size", sink)


@check("integrity.checksum", Severity.ERROR)
def checksum_mismatch(ctx: CheckContext, sink: Sink) -> int:
    """A file's SHA-256 differs from the manifest's, or the file could not be read.

    The only check that sees every change to a file, including damage inside a compressed
    pixel stream that still decodes. Fix: re-download the file; if it keeps differing,
    the manifest belongs to another release.
    """
    return _discrepancies(ctx, "integrity.checksum", sink)


@check("integrity.manifest", Severity.ERROR)
def manifest_problems(ctx: CheckContext, sink: Sink) -> int:
    """The manifest has lines that cannot be read, or the copy has entries it cannot compare.

    A malformed line (not ``<64 hex digits>  <path>``), a path listed twice, an absolute
    or ``..`` path, or a symbolic link, pipe or unreadable folder in the copy: none of
    these is compared, so the verdict would say less than it seems. Fix: use the
    manifest as published (or rebuild it with ``manifest build``); replace links in the
    copy with the files themselves.
    """
    if ctx.fixity is None:
        return 0
    for problem in ctx.fixity.problems:
        sink.add(f"{ctx.fixity.manifest}: {problem}", path=None)
    for rel in ctx.fixity.skipped:
        sink.add(
            "not compared with the manifest: a link, a special file or a folder that "
            "cannot be listed",
            path=rel.rstrip("/") or rel,
            severity=Severity.WARNING,
        )
    return 1
