"""Demographics: the published sex and age table, recomputed from the headers."""

from __future__ import annotations

import re

from ..findings import Severity
from ..views import AGE_YEARS
from .registry import CheckContext, Sink, check

_EPS = 1e-9


def _comparable(ctx: CheckContext) -> list[str]:
    """Classes whose every case is present and whose figures are published."""
    table = ctx.views.demographics
    return [
        key for key in ctx.profile.published.demographics if key in table and table[key].complete
    ]


@check("demographics.sex", Severity.ERROR)
def sex(ctx: CheckContext, sink: Sink) -> int:
    """A class's male / female counts differ from the published table (108/61, 35/25, 40/36).

    Compared only for classes whose every case is present (one value per case: the most
    common Patient's Sex among its files). Fix: look for cases whose Patient's Sex was
    changed or lost in de-identification.
    """
    table = ctx.views.demographics
    keys = _comparable(ctx)
    for key in keys:
        got, pub = table[key], ctx.profile.published.demographics[key]
        if (got.male, got.female) != (pub.male, pub.female):
            sink.add(
                f"{got.label}: {got.male} M / {got.female} F"
                + (f" / {got.other} other" if got.other else "")
                + f", published {pub.male} M / {pub.female} F",
                expected={"male": pub.male, "female": pub.female},
                actual={"male": got.male, "female": got.female, "other": got.other},
            )
    return len(keys)


@check("demographics.age", Severity.ERROR)
def age(ctx: CheckContext, sink: Sink) -> int:
    """A class's age mean or population SD differs from the published table by more than 0.1.

    Ages are read as whole years from Patient's Age (``039Y`` → 39), one per case; the
    spread is the population SD (ddof=0), as the authors computed it. Compared only for
    classes whose every case is present. Fix: look for changed ages, or ages not in years
    (``demographics.age_format``).
    """
    table = ctx.views.demographics
    tol = ctx.profile.published.age_tolerance
    keys = _comparable(ctx)
    for key in keys:
        got, pub = table[key], ctx.profile.published.demographics[key]
        mean, sd = got.age_mean, got.age_sd
        if mean is None or sd is None:
            sink.add(
                f"{got.label}: no case has an age in years",
                expected={"age_mean": pub.age_mean, "age_sd": pub.age_sd},
                actual=None,
            )
            continue
        if abs(mean - pub.age_mean) > tol + _EPS or abs(sd - pub.age_sd) > tol + _EPS:
            sink.add(
                f"{got.label}: age {mean:.2f} ± {sd:.2f} ({len(got.ages)} cases), published "
                f"{pub.age_mean} ± {pub.age_sd} (tolerance ±{tol})",
                expected={"age_mean": pub.age_mean, "age_sd": pub.age_sd, "tolerance": tol},
                actual={
                    "age_mean": round(mean, 3),
                    "age_sd": round(sd, 3),
                    "cases": len(got.ages),
                },
            )
    return len(keys)


@check("demographics.age_format", Severity.WARNING, scope="case")
def age_format(ctx: CheckContext, sink: Sink) -> int:
    """Patient's Age is not in whole years (``nnnY``), e.g. ``540M`` or ``39``.

    Valid DICOM may give ages in days, weeks or months, but the published table reads
    years; such a case drops out of the age figures. Fix: convert the age to ``nnnY``.
    """
    files = ctx.scan.readable
    ids = ctx.scan.case_ids
    values = files["patient_age"].astype("string").str.strip()
    present = values.notna() & (values != "")
    bad = present & ~values.fillna("").str.fullmatch(AGE_YEARS.pattern)
    for case_key, group in files[bad].groupby("case_key"):
        raw = sorted({str(v) for v in values[group.index]})
        # the form, not the value: an age is a patient characteristic
        forms = sorted({re.sub(r"[0-9]", "n", v) for v in raw})
        actual: dict[str, object] = {"files": len(group), "forms": forms}
        if ctx.show_values:
            actual["values"] = raw
        sink.add(
            f"Patient's Age not in nnnY form in {len(group)} files (forms {', '.join(forms)})",
            case=str(ids[case_key]),
            path=str(case_key),
            expected="nnnY",
            actual=actual,
            files=list(group["path"]),
        )
    return int(present.sum())


@check("demographics.inconsistent", Severity.ERROR, scope="case")
def demographics_inconsistent(ctx: CheckContext, sink: Sink) -> int:
    """Patient's Sex or Patient's Age differs between files of one case.

    One case is one patient and one scan; the published demographics take one file per
    case, so disagreeing files make them depend on which file is read. Fix: find the odd
    files (listed) — a foreign slice or a partial re-de-identification.
    """
    files = ctx.scan.readable
    ids = ctx.scan.case_ids
    for column, label in (("patient_sex", "Patient's Sex"), ("patient_age", "Patient's Age")):
        for case_key, group in files.dropna(subset=[column]).groupby("case_key"):
            values = group[column]
            if values.nunique() > 1:
                odd = group[values != values.mode().iloc[0]]
                sink.add(
                    f"{values.nunique()} different {label} values across {len(group)} files",
                    case=str(ids[case_key]),
                    path=str(case_key),
                    expected=f"one {label} per case",
                    actual={"distinct_values": int(values.nunique()), "odd_files": len(odd)},
                    files=list(odd["path"]),
                )
    return int(files["case_key"].nunique())
