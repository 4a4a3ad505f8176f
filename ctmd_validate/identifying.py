"""Identifying values of a scan: what reports must never echo, and names must not contain."""

from __future__ import annotations

import contextlib
import os
import re
import unicodedata

import pandas as pd

from .policy import Policy
from .scan import ScanResult

__all__ = ["MIN_LENGTH", "identifying_elements", "identifying_values"]

# VRs whose values can identify (times included: Study Time is in PS3.15's tables)
_IDENTIFYING_VRS = {"PN", "LO", "SH", "CS", "LT", "ST", "UT", "UC", "AE", "DA", "DT", "TM"}
MIN_LENGTH = 4  # shorter values ("1", "M") are too common to search for


def identifying_elements(scan: ScanResult, policy: Policy) -> pd.DataFrame:
    """Text elements (at any depth) that the policy de-identifies and that hold real data."""
    el = scan.elements
    top = el[el["vr"].isin(_IDENTIFYING_VRS) & el["value"].notna()]
    tags = pd.Series(top["tag"].unique())
    actions = dict(zip(tags, tags.map(policy.action), strict=True))
    top = top[top["tag"].map(actions).notna()]
    top = top[top["value"].astype(str).str.strip().str.len() >= MIN_LENGTH]
    pairs = top[["value", "vr"]].drop_duplicates()
    dummy = {
        (v, r) for v, r in zip(pairs["value"], pairs["vr"], strict=True) if policy.is_dummy(v, r)
    }
    public = _public_ids(scan)
    keep = pd.Series(
        [
            (v, r) not in dummy and str(v).strip().casefold() not in public
            for v, r in zip(top["value"], top["vr"], strict=True)
        ],
        index=top.index,
        dtype=bool,
    )
    return top[keep]


def _public_ids(scan: ScanResult) -> set[str]:
    """Case ids that are the dataset's public pseudonyms (e.g. Patient ID = "P001").

    Only names of the profile's case pattern or in its manifest: a case folder named after
    a patient ("Smith_John") is a leak, not a pseudonym, and stays masked.
    """
    profile = scan.profile
    listed = {c.casefold() for c in profile.manifest}
    return {
        str(c).casefold()
        for c in scan.cases["case_id"]
        if str(c).casefold() in listed or profile.class_of_case_name(str(c)) is not None
    }


def _spellings(value: str) -> set[str]:
    """``value``, the text its bytes spell when they are UTF-8, and file-name spellings.

    Headers are decoded as Latin-1 (the default character set); a name written in UTF-8
    ("Müller") reads as "MÃ¼ller" there, but is shown as "Müller" in a file name.
    """
    out = {value}
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        out.add(value.encode("latin-1").decode("utf-8"))
    for text in list(out):
        # a name as a file system may spell it: decomposed (macOS writes NFD), or the
        # value's Latin-1 bytes in a name that is no UTF-8 (shown escaped, ``\xd8``)
        out.add(unicodedata.normalize("NFD", text))
        with contextlib.suppress(UnicodeEncodeError):
            out.add(os.fsdecode(text.encode("latin-1")))
    return out


def identifying_values(scan: ScanResult, policy: Policy) -> frozenset[str]:
    """Every identifying value (and person-name component) of the scan, for redaction."""
    found = identifying_elements(scan, policy)
    out: set[str] = set()
    for value, vr in zip(found["value"], found["vr"], strict=True):
        for part in re.split(r"[\\^]" if vr == "PN" else r"\\", str(value)):
            if len(part.strip()) >= MIN_LENGTH:
                out.update(_spellings(part.strip()))
    # an unreadable file has no elements: the parts of its name that its own header spells
    # out verbatim (see scan.read_header) are data too
    for tokens in pd.concat([scan.files["name_tokens"], scan.entries["name_tokens"]]).dropna():
        out.update(t for t in str(tokens).split("\\") if len(t) >= MIN_LENGTH)
    public = _public_ids(scan)
    return frozenset(v for v in out if v.casefold() not in public)
