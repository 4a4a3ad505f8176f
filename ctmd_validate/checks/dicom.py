"""DICOM: readable files, Part 10 file meta, SOP class, required attributes, UIDs.

Every check reads the scan tables; no file is reopened. Per-file problems are reported
once per case and problem, naming the files; values of UIDs are never echoed (they can
embed dates and device serial numbers).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd
from pydicom.uid import UID

from ..findings import Severity
from ..tags import keyword_path, tag_of, tag_text
from .registry import CheckContext, Sink, check

_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def _presence(ctx: CheckContext, keywords: Iterable[str]) -> pd.DataFrame:
    """Per readable file and top-level tag: present?, empty? (one row per file and tag)."""
    tags = {tag_of(k): k for k in keywords}
    el = ctx.scan.elements
    top = el[(el["depth"] == 0) & el["tag"].isin(list(tags))]
    empty = (top["length"] == 0) | (
        top["value"].map(lambda v: isinstance(v, str) and v.strip() == "")
    )
    frame = pd.DataFrame({"file_idx": top["file_idx"], "tag": top["tag"], "empty": empty})
    return frame.drop_duplicates(["file_idx", "tag"])


def _missing(
    ctx: CheckContext, keywords: Iterable[str], *, empty_counts: bool
) -> dict[tuple[str, str, str], list[str]]:
    """``(case_key, keyword, 'absent'|'empty') -> [paths]`` over the readable files."""
    keywords = list(keywords)
    files = ctx.scan.readable
    present = _presence(ctx, keywords)
    by_tag = {tag: group for tag, group in present.groupby("tag")}
    out: dict[tuple[str, str, str], list[str]] = {}
    nothing = pd.DataFrame({"file_idx": [], "empty": []})
    for keyword in keywords:
        rows = by_tag.get(tag_of(keyword), nothing)
        selections = [("absent", files[~files["file_idx"].isin(rows["file_idx"])])]
        if empty_counts:
            empty_idx = rows.loc[rows["empty"].astype(bool), "file_idx"]
            selections.append(("empty", files[files["file_idx"].isin(empty_idx)]))
        for how, selected in selections:
            for case_key, group in selected.groupby("case_key"):
                out[(str(case_key), keyword, how)] = list(group["path"])
    return out


_ITEM_STEP = re.compile(r"^(?P<parent>.*)\[(?P<item>\d+)\]\((?P<tag>[0-9A-F]{4},[0-9A-F]{4})\)$")


def _missing_in_items(ctx: CheckContext) -> dict[tuple[str, str, str], list[str]]:
    """``(case_key, 'Seq[*].Keyword', 'absent'|'empty') -> [paths]`` for sequence items."""
    required = {
        tag_of(seq): [tag_of(k) for k in keywords]
        for seq, keywords in ctx.profile.conformance.type1_items.items()
    }
    el = ctx.scan.elements
    seqs = el[(el["vr"] == "SQ") & el["tag"].isin(list(required))]
    if seqs.empty:
        return {}
    nested = el[el["depth"] > 0]
    steps = pd.Series(nested["path"].cat.categories).str.extract(_ITEM_STEP.pattern)
    steps.index = nested["path"].cat.categories
    child = nested.assign(
        parent=nested["path"].map(steps["parent"]).astype(str),
        item=nested["path"].map(steps["item"]).astype(str),
        empty=(nested["length"] == 0)
        | nested["value"].map(lambda v: isinstance(v, str) and v.strip() == ""),
    )
    by_item: dict[tuple[int, str, str], dict[int, bool]] = {}
    for f, parent, item, tag, empty in zip(
        child["file_idx"], child["parent"], child["item"], child["tag"], child["empty"], strict=True
    ):
        by_item.setdefault((int(f), parent, item), {})[int(tag)] = bool(empty)
    items_of: dict[tuple[int, str], dict[int, dict[int, bool]]] = {}
    for (f, parent, item), tags in by_item.items():
        items_of.setdefault((f, parent), {})[int(item)] = tags
    files = ctx.views.files_by_idx
    out: dict[tuple[str, str, str], list[str]] = {}
    for f, path, seq_tag, count in zip(
        seqs["file_idx"], seqs["path"], seqs["tag"], seqs["value"], strict=True
    ):
        # every item, those without any element included (the sequence's value counts them)
        known = items_of.get((int(f), str(path)), {})
        n = int(count) if isinstance(count, str) and count.isdigit() else 0
        for tags in (known.get(i, {}) for i in sorted(set(range(n)) | set(known))):
            for tag in required[int(seq_tag)]:
                how = "absent" if tag not in tags else "empty" if tags[tag] else None
                if how is None:
                    continue
                where = f"{keyword_path(str(path))}[*].{keyword_path(tag_text(tag))}"
                key = (str(files.at[int(f), "case_key"]), where, how)
                paths = out.setdefault(key, [])
                if not paths or paths[-1] != files.at[int(f), "path"]:
                    paths.append(str(files.at[int(f), "path"]))
    return out


@check("dicom.file_meta", Severity.ERROR, scope="case")
def file_meta(ctx: CheckContext, sink: Sink) -> int:
    """The Part 10 file meta information is incomplete or contradicts the dataset.

    PS3.10 requires File Meta Information Version, Media Storage SOP Class/Instance UID,
    Transfer Syntax UID and Implementation Class UID, the media UIDs must equal the
    dataset's SOP Class/Instance UID, and the File Meta Information Group Length must be
    the size of the group. Strict readers (dcm4che, DCMTK's dcmdump +E) reject
    such files; archives may store them under the wrong instance. Fix: rewrite the files
    with a conformant writer (e.g. ``pydicom`` ``save_as(..., enforce_file_format=True)``).
    """
    files = ctx.scan.readable
    cases = ctx.scan.case_ids
    totals = ctx.scan.readable_per_case
    for (case_key, keyword, how), paths in sorted(
        _missing(ctx, ctx.profile.conformance.file_meta, empty_counts=True).items()
    ):
        sink.add(
            f"{keyword} {tag_text(tag_of(keyword))} is {how} in {len(paths)} of "
            f"{totals[case_key]} files",
            case=str(cases[case_key]),
            path=case_key,
            expected=f"{keyword} present and not empty",
            actual=f"{how} in {len(paths)} files",
            files=paths,
        )
    pairs = (
        ("media_sop_class_uid", "sop_class_uid", "MediaStorageSOPClassUID", "SOPClassUID"),
        (
            "media_sop_instance_uid",
            "sop_instance_uid",
            "MediaStorageSOPInstanceUID",
            "SOPInstanceUID",
        ),
    )
    for media, own, media_kw, own_kw in pairs:
        # an empty dataset UID against a media UID is a mismatch too; an absent or empty
        # media UID is already reported above
        has_media = files[files[media].notna()]
        bad = has_media[has_media[own].isna() | (has_media[media] != has_media[own])]
        for case_key, group in bad.groupby("case_key"):
            sink.add(
                f"{len(group)} files' {media_kw} differs from their {own_kw}",
                case=str(cases[case_key]),
                path=str(case_key),
                expected=f"{media_kw} == {own_kw}",
                actual=f"different in {len(group)} files",
                files=list(group["path"]),
            )
    for case_key, paths in sorted(_group_length_mismatch(ctx).items()):
        sink.add(
            f"{len(paths)} files' File Meta Information Group Length (0002,0000) is not the "
            "size of their file meta group",
            case=str(cases[case_key]),
            path=case_key,
            expected="the byte length of the group 0002 elements that follow it",
            actual=f"different in {len(paths)} files",
            files=paths,
        )
    return len(files)


def _group_length_mismatch(ctx: CheckContext) -> dict[str, list[str]]:
    """``case_key -> [paths]`` of readable files whose meta group length is wrong.

    Readers that trust (0002,0000) to skip the file meta land inside another element.
    """
    files = ctx.scan.readable
    declared = files["meta_group_length"]
    wrong = files[declared.notna() & declared.ne(files["meta_length"])]
    return {str(k): list(g["path"]) for k, g in wrong.groupby("case_key")}


@check("dicom.sop_class", Severity.ERROR, scope="case")
def sop_class(ctx: CheckContext, sink: Sink) -> int:
    """An image is not CT Image Storage (SOP Class UID 1.2.840.10008.5.1.4.1.1.2).

    Secondary captures, reports or localizers mixed into a CT stack break every loader
    that assumes one CT volume per case. Fix: remove the object or move it out of the case.
    """
    files = ctx.scan.readable
    cases = ctx.scan.case_ids
    allowed = set(ctx.profile.conformance.sop_classes)
    bad = files[files["sop_class_uid"].notna() & ~files["sop_class_uid"].isin(allowed)]
    for (case_key, uid), group in bad.groupby(["case_key", "sop_class_uid"]):
        name, shown = describe_uid(str(uid))
        sink.add(
            f"{len(group)} files are {name}, not CT Image Storage",
            case=str(cases[case_key]),
            path=str(case_key),
            expected=sorted(allowed),
            actual=shown,
            files=list(group["path"]),
        )
    return int(files["sop_class_uid"].notna().sum())


@check("dicom.required_attribute", Severity.ERROR, scope="case")
def required_attribute(ctx: CheckContext, sink: Sink) -> int:
    """A Type 1 attribute is absent or empty (error), or a Type 2 attribute is absent (warning).

    The lists (CT Image IOD, plus Slice Location, which the dataset's labels depend on) are
    in the profile's ``[conformance]`` table; ``type1_items`` adds the attributes that are
    Type 1 inside every item of a sequence (Referenced SOP Class/Instance UID of the SOP
    Instance Reference Macro in Referenced/Source Image Sequence, at any depth).
    De-identification must empty Type 2 attributes, not delete them. Fix: restore the
    attribute from the source data, or add it empty where the standard allows (Type 2).
    """
    files = ctx.scan.readable
    cases = ctx.scan.case_ids
    totals = ctx.scan.readable_per_case
    conf = ctx.profile.conformance
    problems = [
        (key, paths, Severity.ERROR, "Type 1")
        for key, paths in _missing(ctx, conf.type1, empty_counts=True).items()
    ] + [
        (key, paths, Severity.WARNING, "Type 2")
        for key, paths in _missing(ctx, conf.type2, empty_counts=False).items()
    ]
    problems += [
        (key, paths, Severity.ERROR, "Type 1") for key, paths in _missing_in_items(ctx).items()
    ]
    for (case_key, keyword, how), paths, severity, kind in sorted(problems, key=lambda p: p[0]):
        sink.add(
            f"{kind} {keyword}{_tag_suffix(keyword)} is {how} in {len(paths)} of "
            f"{totals[case_key]} files",
            case=str(cases[case_key]),
            path=case_key,
            expected="present and not empty" if kind == "Type 1" else "present (may be empty)",
            actual=f"{how} in {len(paths)} files",
            files=paths,
            severity=severity,
        )
    return len(files)


def _tag_suffix(keyword: str) -> str:
    """`` (gggg,eeee)`` after a top-level keyword; nothing after a sequence-item path."""
    return "" if "[" in keyword else f" {tag_text(tag_of(keyword))}"


def describe_uid(value: str) -> tuple[str, str]:
    """``(name, shown value)`` of a UID for a message, never echoing a value that is no UID.

    A damaged element length can make a UID "value" swallow the elements after it (Patient
    ID, dates): such a value is described by its problem, not shown, and never handed to
    ``pydicom.uid.UID`` (whose warnings quote it).
    """
    problem = uid_problem(value)
    if problem is not None:
        return f"an invalid UID ({problem})", "[not a valid UID: not shown]"
    return UID(value).name, value


def uid_problem(value: str) -> str | None:
    """Why ``value`` is not a valid UID (PS3.5 §9.1), or None when it is one."""
    if len(value) > 64:
        return f"longer than 64 characters ({len(value)})"
    if _UID.match(value):
        return None
    if not set(value) <= set("0123456789."):
        return "characters other than digits and dots"
    if value.startswith(".") or value.endswith(".") or ".." in value:
        return "an empty component"
    return "a component with a leading zero"


@check("dicom.uid.invalid", Severity.ERROR, scope="case")
def uid_invalid(ctx: CheckContext, sink: Sink) -> int:
    """A UI value (at any depth, sequences included) is not a valid UID (PS3.5 §9.1).

    UIDs hold digits and dots only, at most 64 characters, no empty components and no
    leading zeros. Invalid UIDs are rejected by PACS and break de-duplication by UID.
    Fix: regenerate the UIDs with a conformant tool (keeping references consistent).
    """
    el = ctx.scan.elements
    ui = el[(el["vr"] == "UI") & el["value"].notna()]
    ui = ui[ui["value"] != ""]
    problems: dict[str, str | None] = {}
    for value in ui["value"].unique():
        parts = str(value).split("\\")
        reasons = [r for r in map(uid_problem, parts) if r]
        problems[value] = reasons[0] if reasons else None
    bad = ui[ui["value"].map(problems).notna()]
    if not bad.empty:
        cases = ctx.scan.case_ids
        bad = ctx.views.locate(bad).assign(
            reason=bad["value"].map(problems),
            where=bad["path"].astype(str).map(keyword_path),
        )
        for (case_key, where, reason), group in bad.groupby(["case_key", "where", "reason"]):
            sink.add(
                f"{where} has {reason} in {group['file_idx'].nunique()} files",
                case=str(cases[case_key]),
                path=str(case_key),
                expected="digits and dots, <= 64 characters, no empty or zero-led components",
                actual=str(reason),
                files=sorted(set(group["file"])),
            )
    return len(ui)


@check("dicom.uid.duplicate", Severity.ERROR)
def uid_duplicate(ctx: CheckContext, sink: Sink) -> int:
    """Two files share a SOP Instance UID, or two cases share a Study or Series Instance UID.

    A UID must identify one object: archives keep only one of the duplicates, and two
    "cases" with one study may be the same patient scan counted twice. Files that all lack
    a SOP Instance UID (absent or empty) share the empty one and are reported together.
    Fix: find out which copy is right; regenerate UIDs where files were copied or edited.
    """
    files = ctx.scan.readable
    cases = ctx.scan.case_ids
    sop = files[files["sop_instance_uid"].notna()]
    blank = files[files["sop_instance_uid"].isna()]
    if len(blank) > 1:
        in_cases = sorted({str(cases[k]) for k in blank["case_key"]})
        sink.add(
            f"{len(blank)} files have no SOP Instance UID (absent or empty): nothing tells "
            "them apart",
            case=in_cases[0] if len(in_cases) == 1 else None,
            path=str(blank["path"].iloc[0]),
            expected="one file per SOP Instance UID",
            actual=f"{len(blank)} files without one in case(s) {', '.join(in_cases)}",
            files=list(blank["path"]),
        )
    for _, group in sop[sop["sop_instance_uid"].duplicated(keep=False)].groupby("sop_instance_uid"):
        in_cases = sorted({str(cases[k]) for k in group["case_key"]})
        sink.add(
            f"{len(group)} files share one SOP Instance UID",
            case=in_cases[0] if len(in_cases) == 1 else None,
            path=str(group["path"].iloc[0]),
            expected="one file per SOP Instance UID",
            actual=f"{len(group)} files in case(s) {', '.join(in_cases)}",
            files=list(group["path"]),
        )
    for column, label in (("study_uid", "Study"), ("series_uid", "Series")):
        per_case = files[files[column].notna()][["case_key", column]].drop_duplicates()
        shared = per_case[per_case[column].duplicated(keep=False)]
        for _, group in shared.groupby(column):
            ids = sorted(str(cases[k]) for k in group["case_key"])
            sink.add(
                f"cases {', '.join(ids)} share one {label} Instance UID",
                path=str(sorted(group["case_key"])[0]),
                expected=f"one {label} Instance UID per case",
                actual=ids,
            )
    return len(files)


# --------------------------------------------------------------------------- files


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
