"""Counts: cases per class, slices per case and labelled cases against the release."""

from __future__ import annotations

from ..findings import Severity
from .registry import CheckContext, Sink, check


@check("counts.class", Severity.ERROR)
def class_counts(ctx: CheckContext, sink: Sink) -> int:
    """A class holds a different number of cases than the release (169 / 60 / 76).

    Fewer cases than published is an error for the ``release`` profile and info for
    ``subset``; more cases than published is always an error. Fix: compare with
    ``structure.case_dir.missing`` / ``.unexpected`` / ``.duplicate``, which name the cases.
    """
    cases = ctx.scan.cases
    for key, spec in ctx.profile.classes.items():
        n = int((cases["class_key"] == key).sum())
        if n == spec.expected_cases:
            continue
        severity = Severity.ERROR if n > spec.expected_cases else ctx.absent
        sink.add(
            f"{spec.label}: {n} case folders, the release has {spec.expected_cases}",
            expected=spec.expected_cases,
            actual=n,
            severity=severity,
        )
    return len(ctx.profile.classes)


@check("counts.case_slices", Severity.ERROR, scope="case")
def case_slices(ctx: CheckContext, sink: Sink) -> int:
    """A case holds a different number of image files than the same case in the release.

    A missing slice shifts every label after it; an extra one is a different scan or a
    duplicate. Fix: re-download the case; if the count is what you expect, your copy is not
    the release version of the case.
    """
    manifest = ctx.profile.manifest
    examined = 0
    for row in ctx.scan.cases.itertuples():
        known = manifest.get(row.case_id)
        if known is None or known.class_key != row.class_key:
            continue  # structure.case_dir.unexpected / .name report it
        examined += 1
        if row.n_files != known.n_slices:
            diff = row.n_files - known.n_slices
            sink.add(
                f"case {row.case_id} has {row.n_files} image files, the release has "
                f"{known.n_slices} ({diff:+d})",
                case=row.case_id,
                path=row.case_key,
                expected=known.n_slices,
                actual=row.n_files,
            )
    return examined


@check("counts.labelled", Severity.ERROR)
def labelled(ctx: CheckContext, sink: Sink) -> int:
    """``Index.csv`` lists a different number of labelled cases per class than published.

    The release labels 54 COVID-19 and 25 CAP cases; a different count means rows were lost,
    added or given another diagnosis. Fix: compare the Index with the release's.
    """
    view = ctx.views.index
    if view is None:
        return 0
    for key, expected in ctx.profile.published.labelled.items():
        spec = ctx.profile.classes[key]
        n = int((view.rows["class_key"] == key).sum())
        if n != expected:
            sink.add(
                f"Index.csv lists {n} labelled {spec.label} cases, the release {expected}",
                path=ctx.scan.labels.index.path,
                expected=expected,
                actual=n,
            )
    return len(ctx.profile.published.labelled)
