"""The archive as downloaded (``check COVID-CT-MD.zip``): safe members, intact, as published."""

from __future__ import annotations

from ..findings import Severity
from ..paths import display
from .registry import CheckContext, Sink, check


@check("archive.unsafe_member", Severity.ERROR)
def unsafe_member(ctx: CheckContext, sink: Sink) -> int:
    """A member of the archive could write outside the folder it is extracted to.

    An absolute name, a ``..`` component (zip slip), a symbolic link, a backslash, an
    encrypted or duplicate member: unzip tools differ in what they do with these, and
    some write wherever the name says. Such members are not read. Fix: do not extract the
    archive with a tool that follows them; get the archive from the publisher again.
    """
    archive = ctx.scan.archive
    if archive is None:
        return 0
    for problem in archive.problems:
        if problem.kind == "archive.unsafe_member":
            sink.add(
                f"unsafe archive member, not read: {problem.reason}",
                path=None if problem.member is None else display(problem.member),
                expected="a relative name inside the archive's folder",
                actual=problem.reason,
            )
    return archive.members


@check("archive.unreadable", Severity.ERROR)
def unreadable(ctx: CheckContext, sink: Sink) -> int:
    """The archive cannot be read as a whole: it is truncated or damaged.

    A zip keeps its table of contents at its end, so a download that stopped early cannot
    be listed at all (members whose data are damaged are ``dicom.unreadable`` instead,
    with the failed CRC). Fix: download the archive again and compare its MD5
    (``--archive-md5``).
    """
    archive = ctx.scan.archive
    if archive is None:
        return 0
    for problem in archive.problems:
        if problem.kind == "archive.unreadable":
            sink.add(problem.reason, expected="a complete zip archive", actual=archive.size)
    return 1


@check("archive.md5", Severity.ERROR)
def md5(ctx: CheckContext, sink: Sink) -> int:
    """The archive's MD5 (or size) differs from the published one.

    The publisher gives one MD5 for ``COVID-CT-MD.zip``; a different sum means a different
    or damaged file, whatever the other checks say. Runs with ``--archive-md5`` only. Fix:
    download the archive again; if the sum still differs, ask the publisher which release
    you have.
    """
    if ctx.archive_md5 is None:
        return 0
    expected, actual, expected_size, size = ctx.archive_md5
    if expected_size is not None and size != expected_size:
        sink.add(
            f"the archive holds {size:,} bytes, the published one {expected_size:,}",
            expected=expected_size,
            actual=size,
        )
    if actual != expected:
        sink.add(
            "the archive's MD5 differs from the published one", expected=expected, actual=actual
        )
    return 1
