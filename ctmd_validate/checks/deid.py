"""De-identification audit: only Patient's Sex and Patient's Age may remain.

The policy (``schemas/deid/ctmd-default.toml`` or a curator's file) takes the per-attribute
actions of PS3.15 Table E.1-1 from dicom-anonymizer's tables and adds the options the
dataset claims. Findings show tag, keyword, action, VR, value length and file counts; never
the values themselves unless ``--show-values`` is given.
"""

from __future__ import annotations

import re

import pandas as pd

from ..findings import Severity
from ..identifying import identifying_elements
from ..policy import Policy
from ..tags import keyword_path, tag_of, tag_text
from .registry import CheckContext, Sink, check

_DATE_VRS = {"DA", "DT", "TM"}


def _keyword(tag: int) -> str:
    return keyword_path(tag_text(tag))


def _nonempty_sequences(el: pd.DataFrame) -> set[tuple[int, str]]:
    """(file_idx, sequence path) of every sequence that has at least one item element."""
    nested = el[el["depth"] > 0]
    parents = (
        nested["path"]
        .astype(str)
        .str.replace(r"\[\d+\]\([0-9A-F]{4},[0-9A-F]{4}\)$", "", regex=True)
    )
    return set(zip(nested["file_idx"], parents, strict=True))


def _audit(ctx: CheckContext) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Public attributes the policy de-identifies: the rows, which hold data, which are empty.

    "Empty" is an X (remove) attribute that is present with no value (length 0, padding
    only, or a sequence without item elements): a deviation from the profile, but nothing leaks.
    """
    policy: Policy = ctx.policy
    el = ctx.scan.elements
    el = el[(el["tag"] // 0x10000) % 2 == 0]  # private attributes: deid.private_tags
    tags = pd.Series(el["tag"].unique())
    actions = dict(zip(tags, tags.map(policy.action), strict=True))
    code = el["tag"].map(actions)
    audited = el[code.notna() & ~code.isin(["U", "X/Z/U*"])].assign(action=code)
    if policy.retain_dates:
        audited = audited[~audited["vr"].isin(_DATE_VRS)]
    none = pd.Series(False, index=audited.index, dtype=bool)
    if audited.empty:
        return audited, none, none
    sequences = _nonempty_sequences(el)
    pairs = audited[["value", "vr"]].drop_duplicates()
    dummy = {
        (v, r): policy.is_dummy(v, r) for v, r in zip(pairs["value"], pairs["vr"], strict=True)
    }
    is_sq = audited["vr"] == "SQ"
    sq_full = pd.Series(
        [
            (f, str(p)) in sequences
            for f, p in zip(audited["file_idx"], audited["path"], strict=True)
        ],
        index=audited.index,
    )
    has_data = pd.Series(
        [
            dummy.get((v, r), True) is False
            for v, r in zip(audited["value"], audited["vr"], strict=True)
        ],
        index=audited.index,
    )
    # The case id is the dataset's pseudonym (Patient ID = "P001"): a dummy, not a leak.
    case_ids = ctx.views.locate(audited[["file_idx"]])["case_id"]
    has_data &= audited["value"].fillna("").astype(str).str.strip().str.casefold() != (
        case_ids.astype(str).str.casefold()
    )
    binary = audited["value"].isna() & ~is_sq & (audited["length"] > 0)
    holds = (is_sq & sq_full) | (~is_sq & (has_data | binary))
    is_x = audited["action"] == "X"
    blank = (audited["length"] == 0) | (
        ~is_sq & audited["value"].map(lambda v: isinstance(v, str) and v.strip("\0 ") == "")
    )  # no value, or padding only
    empty_x = is_x & ~holds & (blank | (is_sq & ~sq_full))
    violating = holds | (is_x & ~empty_x)
    return audited, violating.astype(bool), empty_x.astype(bool)


@check("deid.attribute.present", Severity.ERROR, scope="case")
def attribute_present(ctx: CheckContext, sink: Sink) -> int:
    """An attribute the Basic Profile removes (X) or blanks (Z, D, combined codes) holds data.

    X must be absent; Z must be empty or a dummy; D and the combined codes must hold a
    dummy, never an original-looking value — at every depth, sequences included. One
    finding per attribute and case, with the number of files. An X attribute that is
    present but empty leaks nothing and is ``deid.attribute.empty`` instead. Fix: re-run
    the de-identification with the Basic Profile; or declare an option (e.g. retained
    dates) in your own policy file if you really keep it.
    """
    audited, violating, _empty = _audit(ctx)
    bad = ctx.views.locate(audited[violating])
    totals = ctx.scan.readable_per_case
    for (case_key, tag), group in bad.groupby(["case_key", "tag"]):
        first = group.iloc[0]
        lengths = sorted({int(n) for n in group["length"]})
        how = "present" if first["action"] == "X" else "holds a non-dummy value"
        actual: dict[str, object] = {
            "files": int(group["file_idx"].nunique()),
            "vr": str(first["vr"]),
            "value_length": lengths if len(lengths) > 1 else lengths[0],
            "depths": sorted({int(d) for d in group["depth"]}),
        }
        if ctx.show_values:
            actual["values"] = sorted({str(v) for v in group["value"].dropna()})
        sink.add(
            f"{_keyword(int(tag))} {tag_text(int(tag))} (action {first['action']}) {how} in "
            f"{actual['files']} of {totals.get(case_key, 0)} files",
            case=str(first["case_id"]),
            path=str(case_key),
            expected="absent"
            if first["action"] == "X"
            else f"empty or a dummy (action {first['action']})",
            actual=actual,
        )
    return len(audited) if not audited.empty else len(ctx.scan.elements)


@check("deid.attribute.empty", Severity.WARNING, scope="case")
def attribute_empty(ctx: CheckContext, sink: Sink) -> int:
    """An attribute the Basic Profile removes (action X) is present, but empty.

    Nothing leaks (the value has length 0, or the sequence has no item), so this is not a
    privacy problem; but the profile says *remove*, and tools that audit against PS3.15
    flag it. Kept apart from ``deid.attribute.present`` so that a real leak is never lost
    among empty attributes. Fix: remove the attribute when you next rewrite the files.
    """
    audited, _violating, empty = _audit(ctx)
    rows = ctx.views.locate(audited[empty])
    totals = ctx.scan.readable_per_case
    for (case_key, tag), group in rows.groupby(["case_key", "tag"]):
        n = int(group["file_idx"].nunique())
        sink.add(
            f"{_keyword(int(tag))} {tag_text(int(tag))} (action X) is present but empty in "
            f"{n} of {totals.get(case_key, 0)} files (no value leaks)",
            case=str(group["case_id"].iloc[0]),
            path=str(case_key),
            expected="absent (action X)",
            actual={"files": n, "vr": str(group["vr"].iloc[0]), "value_length": 0},
        )
    return len(audited) if not audited.empty else len(ctx.scan.elements)


@check("deid.kept_attribute.missing", Severity.ERROR, scope="case")
def kept_attribute_missing(ctx: CheckContext, sink: Sink) -> int:
    """Patient's Sex or Patient's Age is absent, empty or malformed in a file.

    They are the only patient characteristics the dataset keeps, and the published
    demographics are computed from them. Sex must be M, F or O; Age an AS value such as
    ``039Y``. Fix: restore them from the source data.
    """
    policy: Policy = ctx.policy
    files = ctx.scan.readable
    el = ctx.scan.elements
    ids = ctx.scan.case_ids
    examined = 0
    for keyword, pattern in policy.kept.items():
        tag = tag_of(keyword)
        top = el[(el["depth"] == 0) & (el["tag"] == tag)].drop_duplicates("file_idx")
        values = files["file_idx"].map(top.set_index("file_idx")["value"])
        present = files["file_idx"].isin(top["file_idx"])
        text = values.fillna("").astype(str).str.strip()
        state = pd.Series("ok", index=files.index)
        state[~present] = "absent"
        state[present & (text == "")] = "empty"
        malformed = present & (text != "") & ~text.str.fullmatch(pattern.pattern)
        state[malformed] = "malformed"
        examined += len(files)
        for (case_key, how), group in files[state != "ok"].groupby(
            [files["case_key"], state[state != "ok"]]
        ):
            sink.add(
                f"{keyword} {tag_text(tag)} is {how} in {len(group)} files",
                case=str(ids[case_key]),
                path=str(case_key),
                expected=f"present, matching {pattern.pattern}",
                actual=f"{how} in {len(group)} files",
                files=list(group["path"]),
            )
    return examined


@check("deid.private_tags", Severity.ERROR, scope="case")
def private_tags(ctx: CheckContext, sink: Sink) -> int:
    """Private attributes remain (no Retain Safe Private option is claimed).

    Vendor blocks (Siemens CSA headers and the like) can carry names, dates, serial numbers
    and protocol text that no public-attribute audit sees. Fix: remove private groups, or
    declare the creators you have vetted in your policy's ``safe_private`` list.
    """
    policy: Policy = ctx.policy
    el = ctx.scan.elements
    private = el[(el["tag"] // 0x10000) % 2 == 1]
    if private.empty:
        return len(el)
    path = private["path"].astype(str)
    element = private["tag"] % 0x10000
    is_creator = (element >= 0x0010) & (element <= 0x00FF)
    prefix = path.str[:-11]
    group = private["tag"] // 0x10000
    block = element.where(is_creator, (element // 0x100) % 0x100)
    key = pd.Series(
        list(zip(private["file_idx"], prefix, group, block, strict=True)), index=private.index
    )
    creators = dict(zip(key[is_creator], private.loc[is_creator, "value"].fillna(""), strict=True))
    # object dtype: with no creator at all the mapped series is float64 (all NaN)
    creator = key.map(creators).astype(object).fillna("(no private creator)")
    unsafe = private[~creator.isin(policy.safe_private)].assign(creator=creator)
    unsafe = ctx.views.locate(unsafe)
    totals = ctx.scan.readable_per_case
    for case_key, g in unsafe.groupby("case_key"):
        names = sorted({str(c) for c in g["creator"]})
        sink.add(
            f"{len(g)} private elements in {g['file_idx'].nunique()} of "
            f"{totals.get(case_key, 0)} files; creators: {', '.join(names)}",
            case=str(g["case_id"].iloc[0]),
            path=str(case_key),
            expected="no private attributes"
            if not policy.safe_private
            else f"only {sorted(policy.safe_private)}",
            actual={"elements": len(g), "files": int(g["file_idx"].nunique()), "creators": names},
        )
    return len(private)


@check("deid.patient_identity_removed", Severity.ERROR, scope="case")
def patient_identity_removed(ctx: CheckContext, sink: Sink) -> int:
    """Patient Identity Removed is not YES, or no De-identification Method is recorded.

    Supplement 142 asks de-identified objects to say so, (0012,0062) = YES, and how,
    (0012,0063) De-identification Method or (0012,0064) its code sequence, so that
    downstream systems never treat them as identified originals. Fix: add both.
    """
    el = ctx.scan.elements
    top = el[el["depth"] == 0]
    files = ctx.scan.readable
    removed = top[top["tag"] == 0x00120062].drop_duplicates("file_idx").set_index("file_idx")
    flag = files["file_idx"].map(removed["value"].astype(object))
    yes = flag.map(lambda v: isinstance(v, str) and v.strip() == "YES").astype(bool)
    method = top[((top["tag"] == 0x00120063) & (top["length"] > 0)) | (top["tag"] == 0x00120064)]
    has_method = files["file_idx"].isin(method["file_idx"])
    ids = ctx.scan.case_ids
    for label, mask in (
        ("Patient Identity Removed (0012,0062) is not YES", ~yes),
        ("no De-identification Method (0012,0063/0064)", ~has_method),
    ):
        for case_key, group in files[mask].groupby("case_key"):
            sink.add(
                f"{label} in {len(group)} files",
                case=str(ids[case_key]),
                path=str(case_key),
                expected="YES and a method" if "YES" in label else "a method",
                actual=f"missing in {len(group)} files",
                files=list(group["path"]),
            )
    return len(files)


@check("deid.patient_id", Severity.WARNING, scope="case")
def patient_id(ctx: CheckContext, sink: Sink) -> int:
    """Patient ID is neither empty nor the case's folder id: possibly an original identifier.

    A de-identified release replaces the Patient ID with a pseudonym; in this dataset the
    natural one is the case id (``P001``). Any other value may be a hospital number. Fix:
    set Patient ID to the case id (or empty it).
    """
    files = ctx.views.locate(ctx.scan.readable)
    pid = files["patient_id"].fillna("").astype(str).str.strip()
    other = files[(pid != "") & (pid.str.casefold() != files["case_id"].astype(str).str.casefold())]
    for case_key, group in other.groupby("case_key"):
        sink.add(
            f"Patient ID differs from the case id in {len(group)} files",
            case=str(group["case_id"].iloc[0]),
            path=str(case_key),
            expected=f"empty or {group['case_id'].iloc[0]}",
            actual={
                "files": len(group),
                "distinct_values": int(group["patient_id"].nunique()),
                **({"values": sorted(set(group["patient_id"]))} if ctx.show_values else {}),
            },
        )
    return len(files)


@check("deid.filename", Severity.ERROR, scope="case")
def filename(ctx: CheckContext, sink: Sink) -> int:
    """A file or folder name contains the value of an identifying attribute of its own file.

    Names travel with every copy, every listing and every report; a Patient ID in a file
    name survives any header de-identification. Fix: rename the files (e.g. ``IM0001.dcm``).
    The finding never shows such a name: every rendering masks the whole name stem
    (``[redacted#12].dcm``), since masking only the value can leave part of another one.
    """
    values = ctx.views.locate(identifying_elements(ctx.scan, ctx.policy))
    examined = len(ctx.scan.readable)  # every readable file's name
    hits: dict[tuple[str, int], list[str]] = {}
    for row in values.itertuples():
        needle = str(row.value).strip().lower()
        rel = str(row.file)
        names = rel.rsplit("/", 2)[-2:]  # the case folder and the file name
        if any(needle in n.lower() for n in names):
            hits.setdefault((str(row.case_key), int(row.tag)), []).append(rel)
    ids = ctx.scan.case_ids
    for (case_key, tag), paths in sorted(hits.items()):
        keyword = _keyword(tag)
        sink.add(
            f"{len(paths)} file names contain their own {keyword} {tag_text(tag)}",
            case=str(ids[case_key]),
            path=str(case_key),
            expected=f"names free of {keyword}",
            actual={"files": len(paths)},
            files=paths,
        )
    return examined


_DATE_IN = re.compile(r"(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])")


@check("deid.uid.not_remapped", Severity.WARNING, scope="case")
def uid_not_remapped(ctx: CheckContext, sink: Sink) -> int:
    """A UID looks original: it embeds the file's Device Serial Number or one of its dates.

    Device-generated UIDs encode the scanner serial and the acquisition time; kept as they
    are, they re-identify the study at the site that made it. Fix: remap UIDs (Basic
    Profile action U) consistently, or declare the Retain UIDs option.
    """
    policy: Policy = ctx.policy
    if policy.retain_uids:
        return 0
    el = ctx.scan.elements
    ui = el[(el["vr"] == "UI") & el["value"].notna()]
    ui = ui[~ui["value"].astype(str).str.startswith("1.2.840.10008.") & (ui["value"] != "")]
    ui = ui[ui["tag"].map(lambda t: policy.action(int(t)) in {"U", "X/Z/U*"}).astype(bool)]
    top = el[el["depth"] == 0]
    serial = top[top["tag"] == 0x00181000].drop_duplicates("file_idx").set_index("file_idx")
    dates = top[top["vr"] == "DA"].dropna(subset=["value"])
    file_dates: dict[int, set[str]] = {}
    for f, v in zip(dates["file_idx"], dates["value"], strict=True):
        if _DATE_IN.fullmatch(str(v)):
            file_dates.setdefault(int(f), set()).update({str(v), str(v)[2:]})
    reasons: list[str | None] = []
    for f, value in zip(ui["file_idx"], ui["value"], strict=True):
        parts = str(value).split(".")
        sn = serial["value"].get(f) if f in serial.index else None
        if sn and str(sn).strip() and str(sn).strip() in parts:
            reasons.append("embeds the file's Device Serial Number")
        elif any(d in str(value) for d in file_dates.get(int(f), ())):
            reasons.append("embeds one of the file's dates")
        else:
            reasons.append(None)
    flagged = ctx.views.locate(ui.assign(reason=reasons).dropna(subset=["reason"]))
    for (case_key, tag, reason), group in flagged.groupby(["case_key", "tag", "reason"]):
        keyword = _keyword(int(tag))
        sink.add(
            f"{keyword} {tag_text(int(tag))} {reason} in {group['file_idx'].nunique()} files",
            case=str(group["case_id"].iloc[0]),
            path=str(case_key),
            expected="UIDs remapped (action U)",
            actual={"files": int(group["file_idx"].nunique()), "reason": reason},
        )
    return len(ui)
