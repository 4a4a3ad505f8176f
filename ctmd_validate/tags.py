"""Readable names for the element paths of the scan's element table."""

from __future__ import annotations

import re
from functools import cache

from pydicom.datadict import keyword_for_tag, tag_for_keyword

__all__ = ["keyword_path", "tag_of", "tag_text"]

_STEP = re.compile(r"\(([0-9A-F]{4}),([0-9A-F]{4})\)(\[\d+\])?")


def tag_text(tag: int) -> str:
    """``(0010,0010)`` for 0x00100010."""
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def tag_of(keyword: str) -> int:
    """The tag of a DICOM keyword (raises KeyError for an unknown keyword)."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    return int(tag)


@cache
def keyword_path(path: str) -> str:
    """``(0008,1140)[0](0008,1155)`` → ``ReferencedImageSequence[0].ReferencedSOPInstanceUID``.

    Private or unknown tags keep their ``(gggg,eeee)`` form.
    """
    parts = []
    for group, elem, item in _STEP.findall(path):
        tag = int(group + elem, 16)
        name = keyword_for_tag(tag) or f"({group},{elem})"
        parts.append(name + item)
    return ".".join(parts)
