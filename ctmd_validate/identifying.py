"""Identifying values of a scan: what reports must never echo, and names must not contain."""

from __future__ import annotations

import re

import pandas as pd

from .policy import Policy
from .scan import ScanResult

__all__ = ["MIN_LENGTH", "identifying_elements", "identifying_values"]

_TEXT_VRS = {"PN", "LO", "SH", "CS", "LT", "ST", "UT", "UC", "AE", "DA", "DT"}
MIN_LENGTH = 4  # shorter values ("1", "M") are too common to search for


def identifying_elements(scan: ScanResult, policy: Policy) -> pd.DataFrame:
    """Top-level text elements that the policy de-identifies and that hold real data."""
    el = scan.elements
    top = el[(el["depth"] == 0) & el["vr"].isin(_TEXT_VRS) & el["value"].notna()]
    tags = pd.Series(top["tag"].unique())
    actions = dict(zip(tags, tags.map(policy.action), strict=True))
    top = top[top["tag"].map(actions).notna()]
    top = top[top["value"].astype(str).str.strip().str.len() >= MIN_LENGTH]
    pairs = top[["value", "vr"]].drop_duplicates()
    dummy = {
        (v, r) for v, r in zip(pairs["value"], pairs["vr"], strict=True) if policy.is_dummy(v, r)
    }
    # The case ids are the dataset's public pseudonyms (e.g. Patient ID = "P001"), not secrets.
    public = {str(c).casefold() for c in scan.cases["case_id"]}
    keep = pd.Series(
        [
            (v, r) not in dummy and str(v).strip().casefold() not in public
            for v, r in zip(top["value"], top["vr"], strict=True)
        ],
        index=top.index,
        dtype=bool,
    )
    return top[keep]


def identifying_values(scan: ScanResult, policy: Policy) -> frozenset[str]:
    """Every identifying value (and person-name component) of the scan, for redaction."""
    found = identifying_elements(scan, policy)
    out: set[str] = set()
    for value, vr in zip(found["value"], found["vr"], strict=True):
        for part in re.split(r"[\\^]" if vr == "PN" else r"\\", str(value)):
            if len(part.strip()) >= MIN_LENGTH:
                out.add(part.strip())
    # an unreadable file has no elements: the parts of its name that its own header spells
    # out verbatim (see scan.read_header) are data too
    for tokens in scan.files["name_tokens"].dropna():
        out.update(t for t in str(tokens).split("\\") if len(t) >= MIN_LENGTH)
    public = {str(c).casefold() for c in scan.cases["case_id"]}
    return frozenset(v for v in out if v.casefold() not in public)
