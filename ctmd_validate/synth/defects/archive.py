"""Defects of the archive as downloaded.

Applied to the tree zipped as the publisher would (:func:`~..tree.write_archive`), judged
with the MD5 of the clean zip: any change to the archive also changes its MD5
(``archive.md5``).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from . import defect


@defect(
    "archive-zip-slip",
    "add a member '../evil.dcm' to the archive (an extraction would write outside)",
    {"archive.unsafe_member"},
    archive=True,
)
def _archive_zip_slip(archive: Path) -> None:
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("../evil.dcm", b"DICM" * 64)


@defect(
    "archive-truncated",
    "cut the archive in half, as a download that stopped early",
    {"archive.unreadable"},
    archive=True,
)
def _archive_truncated(archive: Path) -> None:
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])


@defect(
    "archive-comment",
    "change the archive's comment: every member intact, the file not the published one",
    {"archive.md5"},
    archive=True,
)
def _archive_comment(archive: Path) -> None:
    with zipfile.ZipFile(archive, "a") as zf:
        zf.comment = b"repacked"
