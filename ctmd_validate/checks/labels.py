"""Labels: Index.csv, the slice- and lobe-level arrays, and how they line up with the images."""

from __future__ import annotations

import posixpath
from typing import Any

import numpy as np
import pandas as pd

from ..findings import Severity
from ..labelfiles import index_failures
from ..profiles import ClassSpec
from .registry import CheckContext, Sink, check

_SHOWN = 10  # list at most this many items in a message


def _few(items: list[Any]) -> str:
    text = ", ".join(str(i) for i in items[:_SHOWN])
    return text + (f" … (+{len(items) - _SHOWN})" if len(items) > _SHOWN else "")


def _case_of_row(ctx: CheckContext) -> dict[int, str]:
    view = ctx.views.index
    return {} if view is None else {row: case for case, row in view.row_of.items()}


def _case_path(ctx: CheckContext, case_id: str) -> str | None:
    """The case folder of ``case_id`` when the case is present (its first folder)."""
    hits = ctx.scan.cases[ctx.scan.cases["case_id"] == case_id]
    return None if hits.empty else str(hits["case_key"].iloc[0])


@check("labels.file.missing", Severity.ERROR)
def file_missing(ctx: CheckContext, sink: Sink) -> int:
    """``Index.csv`` or one of the four label arrays is not where the labels are.

    Without ``Index.csv`` no array row can be tied to a case; without an array that version's
    labels are gone. An error for ``release``, info for ``subset``. Fix: download the label
    files (they sit beside the class folders), or point ``--labels DIR`` at them.
    """
    labels = ctx.scan.labels
    items = [(labels.index.name, labels.index.present)]
    items += [(a.name, a.present) for a in labels.arrays.values()]
    for name, present in items:
        if not present:
            sink.add(
                f"label file {name} not found in '{labels.directory}'",
                expected=name,
                actual=None,
                severity=ctx.absent,
            )
    return len(items)


@check("labels.file.unreadable", Severity.ERROR)
def file_unreadable(ctx: CheckContext, sink: Sink) -> int:
    """A label file exists but cannot be read safely: truncated, not ``.npy``, pickled, undecodable.

    Arrays are only ever loaded with ``allow_pickle=False``; a file that needs pickle is
    reported, never executed. Fix: download the file again and compare its checksum.
    """
    labels = ctx.scan.labels
    examined = 0
    items = [(labels.index.name, labels.index.path, labels.index.error)]
    items += [(a.name, a.path, a.error) for a in labels.arrays.values()]
    for name, path, error in items:
        if path is None:
            continue
        examined += 1
        if error:
            sink.add(f"{name}: {error}", path=path, expected="a readable file", actual=error)
    return examined


@check("labels.index.schema", Severity.ERROR)
def index_schema(ctx: CheckContext, sink: Sink) -> int:
    """``Index.csv`` breaks its schema: header, field count, types, diagnoses, ids, duplicates.

    Every later label check trusts these columns. Each broken cell is named by line and
    column. Fix: correct the line, or take ``Index.csv`` again from the release.
    """
    index = ctx.scan.labels.index
    if index.rows is None or index.header is None:
        return 0
    columns = list(ctx.profile.labels.index_columns)
    if list(index.header) != columns:
        sink.add(
            f"{index.name}: header is {list(index.header)}, expected {columns}",
            path=index.path,
            expected=columns,
            actual=list(index.header),
        )
    for line, n_fields in index.ragged:
        sink.add(
            f"{index.name} line {line}: {n_fields} fields, expected {len(columns)}",
            path=index.path,
            expected={"line": line, "fields": len(columns)},
            actual={"line": line, "fields": n_fields},
        )
    for fail in index_failures(index.rows, ctx.profile):
        where = {"line": fail["line"], "column": fail["column"]}
        sink.add(
            f"{index.name} line {fail['line']}, column '{fail['column']}': "
            f"{fail['value']!r} breaks rule '{fail['rule']}'",
            path=index.path,
            expected={**where, "rule": fail["rule"]},
            actual={**where, "value": fail["value"]},
        )
    return len(index.rows) + len(index.ragged) + 1


@check("labels.index.gap", Severity.ERROR)
def index_gap(ctx: CheckContext, sink: Sink) -> int:
    """ "Label Index" does not run exactly 0..n-1 (a value missing, repeated or not a number).

    The column is meant to be each case's row in the label arrays; once it has a gap, it
    cannot be, and rows are mapped by position instead (line k of the file, row k of the
    arrays). The finding lists the affected rows and, as evidence, how many cases would get
    labels past their last slice under each reading. Fix: renumber the column 0..n-1 in
    file order, after confirming the position mapping with the evidence.
    """
    view = ctx.views.index
    if view is None:
        return 0
    if not (view.missing or view.duplicated or view.invalid_lines or view.ragged_lines):
        return view.n_lines
    rows = view.rows
    triples = list(zip(rows["case_id"], rows["label_index"], rows["position"], strict=True))
    affected = [str(c) for c, v, pos in triples if pd.isna(v) or int(v) != int(pos)]
    by_label = {
        str(c): int(v)
        for c, v, _pos in triples
        if not pd.isna(v) and (view.n_array_rows is None or int(v) < view.n_array_rows)
    }
    by_position = {str(c): int(pos) for c, _v, pos in triples}
    evidence = {
        "label_index": sorted(ctx.views.past_last_slice(by_label)),
        "position": sorted(ctx.views.past_last_slice(by_position)),
    }
    problems = []
    if view.missing:
        problems.append(f"missing {_few(list(view.missing))}")
    if view.duplicated:
        problems.append(f"repeated {_few(list(view.duplicated))}")
    if view.invalid_lines:
        problems.append(f"not a number on lines {_few(list(view.invalid_lines))}")
    if view.ragged_lines:
        problems.append(f"unreadable on malformed lines {_few(list(view.ragged_lines))}")
    last = view.n_lines - 1
    sink.add(
        f"Label Index does not run 0..{last} ({'; '.join(problems)}); rows are mapped "
        f"by position, {len(affected)} rows carry a Label Index that differs from their "
        f"position ({_few(affected)}). Cases with labels past their last slice: "
        f"{len(evidence['label_index'])} reading Label Index, {len(evidence['position'])} "
        "reading by position",
        path=ctx.scan.labels.index.path,
        expected=f"0..{last}, each once",
        actual={
            "missing": list(view.missing),
            "repeated": list(view.duplicated),
            "not_a_number_lines": list(view.invalid_lines),
            "malformed_lines": list(view.ragged_lines),
            "mapped_by": view.mapping,
            "affected_cases": affected,
            "labels_past_last_slice": evidence,
        },
    )
    return view.n_lines


@check("labels.index.out_of_range", Severity.ERROR)
def index_out_of_range(ctx: CheckContext, sink: Sink) -> int:
    """A "Label Index" addresses a row the label arrays do not have.

    Code that indexes the arrays with this column crashes or, with negative wrap-around,
    reads another case's labels. Fix: see ``labels.index.gap``; the row is usually off by
    the gap before it.
    """
    view = ctx.views.index
    if view is None or view.n_array_rows is None:
        return 0
    for r in view.rows.itertuples():
        value = r.label_index
        if not pd.isna(value) and int(value) >= view.n_array_rows:
            sink.add(
                f"{r.case_id} (line {r.line}): Label Index {int(value)} but the arrays have "
                f"{view.n_array_rows} rows (0..{view.n_array_rows - 1})",
                case=str(r.case_id),
                path=ctx.scan.labels.index.path,
                expected=f"< {view.n_array_rows}",
                actual=int(value),
            )
    return len(view.rows)


@check("labels.index.case_missing", Severity.ERROR)
def index_case_missing(ctx: CheckContext, sink: Sink) -> int:
    """A case listed in ``Index.csv`` has no image folder in this copy.

    Its labels cannot be used. An error per case for ``release``; for ``subset`` one info
    finding per class saying how many labelled cases are present. Fix: download the case.
    """
    view = ctx.views.index
    if view is None:
        return 0
    present = set(ctx.scan.cases["case_id"])
    for class_key, group in view.rows.groupby("class_key", dropna=True):
        spec = ctx.profile.classes[str(class_key)]
        absent = [str(c) for c in group["case_id"] if c not in present]
        if not absent:
            continue
        if ctx.profile.complete:
            for case_id in absent:
                sink.add(
                    f"labelled case {case_id} has no image folder",
                    case=case_id,
                    expected=case_id,
                    actual=None,
                )
        else:
            sink.add(
                f"{len(group) - len(absent)} of {len(group)} labelled {spec.label} cases have "
                "image folders here",
                expected=len(group),
                actual=len(group) - len(absent),
                severity=Severity.INFO,
            )
    return len(view.rows)


@check("labels.index.diagnosis_mismatch", Severity.ERROR, scope="case")
def index_diagnosis_mismatch(ctx: CheckContext, sink: Sink) -> int:
    """A labelled case's image folder is in another class folder than its Index diagnosis.

    Either the case was filed under the wrong class or its Index row is wrong; training on
    it mixes the classes. Fix: move the folder or correct the row, after checking which is
    right.
    """
    view = ctx.views.index
    if view is None:
        return 0
    cases = ctx.scan.cases
    examined = 0
    for r in view.rows.dropna(subset=["class_key"]).itertuples():
        for hit in cases[cases["case_id"] == r.case_id].itertuples():
            examined += 1
            if hit.class_key != r.class_key:
                folder = ctx.profile.classes[hit.class_key].label
                sink.add(
                    f"Index.csv line {r.line} says {r.diagnosis}; the case is in the "
                    f"{folder} folder",
                    case=str(r.case_id),
                    path=str(hit.case_key),
                    expected=str(r.diagnosis),
                    actual=folder,
                )
    return examined


def _norm(path: str) -> str:
    text = path.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return text.strip("/").casefold()


def _spellings(spec: ClassSpec, index_spelling: str | None) -> set[str]:
    """A class's folder spellings, normalised; "" (an empty cell, "/") names no class."""
    names = (spec.documented, *spec.aliases, *([index_spelling] if index_spelling else []))
    return {_norm(n) for n in names} - {""}


def _walked_dirs(ctx: CheckContext) -> frozenset[str]:
    """Every folder the scan walked, relative to ROOT: class, case and stray folders.

    The check answers from these tables, so an Index cell never makes the tool touch the
    disk (nothing re-reads what was scanned, and nothing outside ROOT is even stat'ed).
    """
    scan = ctx.scan
    entries = scan.entries
    dirs = (
        *scan.class_dirs["path"],
        *scan.cases["case_key"],
        *entries.loc[entries["kind"] == "dir", "path"],
    )
    return frozenset(str(d) for d in dirs)


def _inside(*cells: str) -> str | None:
    """``cells`` joined as a path relative to ROOT, decided from the text alone.

    None when the text is absolute, leaves ROOT (``..``) or cannot be a path (NUL): such a
    cell names no case folder of the dataset.
    """
    text = posixpath.join(*cells)
    if "\0" in text or text.startswith("/"):
        return None
    path = posixpath.normpath(text)
    if path == ".." or path.startswith("../"):
        return None
    return path


@check("labels.index.relative_path", Severity.ERROR)
def index_relative_path(ctx: CheckContext, sink: Sink) -> int:
    """An Index row's "Relative Path" names no folder of its own class.

    The release writes ``./COVID-19/`` and ``./CAP/``, which name the classes but resolve to
    no folder on disk (the folders are ``COVID-19 subjects`` etc.). A path naming another
    class, or nothing known, points loaders at the wrong images. Fix: correct the cell; to
    load images, join the class folder with "Folder/ID", not "Relative Path".
    """
    view = ctx.views.index
    if view is None:
        return 0
    spellings = ctx.profile.labels.index_relative_paths
    walked = _walked_dirs(ctx)
    examined = 0
    for r in view.rows.dropna(subset=["class_key"]).itertuples():
        examined += 1
        spec = ctx.profile.classes[str(r.class_key)]
        known = {_norm(s) for s in (spec.documented, *spec.aliases)}
        if r.class_key in spellings:
            known.add(_norm(spellings[str(r.class_key)]))
        target = _norm(str(r.relative_path))
        literal = _inside(str(r.relative_path).strip(), str(r.case_id))
        if target in known or literal in walked:
            continue
        other = [
            s.label
            for k, s in ctx.profile.classes.items()
            if k != r.class_key and target in _spellings(s, spellings.get(k))
        ]
        what = f"names class {other[0]}" if other else "names no class folder"
        sink.add(
            f"Index.csv line {r.line} ({r.case_id}, {r.diagnosis}): Relative Path "
            f"'{r.relative_path}' {what}",
            case=str(r.case_id),
            path=ctx.scan.labels.index.path,
            expected=spellings.get(str(r.class_key), spec.documented),
            actual=str(r.relative_path),
        )
    return examined


def _arrays(ctx: CheckContext) -> list[tuple[str, str, str, np.ndarray, str | None]]:
    """(version, level, name, array, path) of every loaded array."""
    return [
        (a.version, a.level, a.name, a.array, a.path)
        for a in ctx.scan.labels.arrays.values()
        if a.array is not None
    ]


@check("labels.shape", Severity.ERROR)
def shape(ctx: CheckContext, sink: Sink) -> int:
    """A label array has the wrong shape: slice-level ``(n, S)``, lobe-level ``(n, S, 5)``.

    ``n`` must equal the number of Index rows and ``S`` must be the same in every file and
    version, or rows and slices no longer mean the same thing across files. Fix: take the
    file again from the release.
    """
    arrays = _arrays(ctx)
    view = ctx.views.index
    n_lobes = len(ctx.profile.labels.lobes)
    widths = [int(a.shape[1]) for *_x, a, _p in arrays if a.ndim >= 2]
    common = max(set(widths), key=widths.count) if widths else None
    for _version, level, name, array, path in arrays:
        want = 2 if level == "slice" else 3
        problems = []
        if array.ndim != want:
            problems.append(f"{array.ndim}-D, expected {want}-D")
        else:
            if view is not None and array.shape[0] != view.n_lines:
                problems.append(f"{array.shape[0]} rows, Index.csv has {view.n_lines}")
            if common is not None and array.shape[1] != common:
                problems.append(f"{array.shape[1]} slices wide, the other files {common}")
            if level == "lobe" and array.shape[2] != n_lobes:
                problems.append(f"{array.shape[2]} lobes, expected {n_lobes}")
        if problems:
            expected = ["n", common or "S"] + ([n_lobes] if level == "lobe" else [])
            if view is not None:
                expected[0] = view.n_lines
            sink.add(
                f"{name}: shape {list(array.shape)}: {'; '.join(problems)}",
                path=path,
                expected=expected,
                actual=list(array.shape),
            )
    return len(arrays)


@check("labels.dtype", Severity.WARNING)
def dtype(ctx: CheckContext, sink: Sink) -> int:
    """A label array is not integer or boolean, or its dtype differs between versions.

    Floats invite ``== 1.0`` comparisons and silent NaNs; mixed dtypes between versions
    break code that concatenates or compares them. The values are checked separately
    (``labels.values``). Fix: cast with ``astype(np.uint8)`` after the values check passes.
    """
    arrays = _arrays(ctx)
    by_level: dict[str, list[tuple[str, str, str | None]]] = {}
    for version, level, name, array, path in arrays:
        by_level.setdefault(level, []).append((version, str(array.dtype), path))
        if array.dtype.kind not in "biu":
            sink.add(
                f"{name}: dtype {array.dtype}, not integer or boolean",
                path=path,
                expected="integer or bool",
                actual=str(array.dtype),
            )
    for level, items in by_level.items():
        if len({d for _v, d, _p in items}) > 1:
            sink.add(
                f"{level}-level arrays differ in dtype between versions: "
                + ", ".join(f"{v} {d}" for v, d, _p in items),
                path=items[-1][2],
                expected="one dtype across versions",
                actual={v: d for v, d, _p in items},
            )
    return len(arrays)


@check("labels.values", Severity.ERROR)
def values(ctx: CheckContext, sink: Sink) -> int:
    """A label cell holds something other than 0 or 1 (2, -1, 0.5, NaN …).

    Labels are binary; any other value is corruption or an unannounced encoding and makes
    every count and ``any()`` wrong. The finding names the cases and slices. Fix: take the
    file again from the release.
    """
    case_of = _case_of_row(ctx)
    examined = 0
    for _version, _level, name, array, path in _arrays(ctx):
        if array.ndim < 2:
            continue
        examined += 1
        with np.errstate(invalid="ignore"):
            bad = ~np.isin(array, (0, 1))
        if not bad.any():
            continue
        where = np.argwhere(bad)
        cells = [
            {"case": case_of.get(int(w[0]), f"row {int(w[0])}"), "slice": int(w[1])}
            for w in where[:_SHOWN]
        ]
        shown = sorted({str(v) for v in np.unique(array[bad])[:_SHOWN]})
        sink.add(
            f"{name}: {int(bad.sum())} cells are not 0/1 (values {', '.join(shown)}; first at "
            f"{cells[0]['case']} slice {cells[0]['slice']})",
            path=path,
            expected=[0, 1],
            actual={"cells": int(bad.sum()), "values": shown, "first": cells},
        )
    return examined


@check("labels.lobe_slice.mismatch", Severity.ERROR)
def lobe_slice_mismatch(ctx: CheckContext, sink: Sink) -> int:
    """A slice label differs from "any lobe infected" for the same case and slice.

    The two files describe the same scans; disagreement means one of them is wrong (or a
    row is shifted). Fix: report it to the dataset authors; decide which file you trust.
    """
    case_of = _case_of_row(ctx)
    examined = 0
    for version in ctx.profile.labels.versions:
        slices = ctx.scan.labels.array(version.name, "slice")
        lobes = ctx.scan.labels.array(version.name, "lobe")
        if slices is None or lobes is None or slices.ndim != 2 or lobes.ndim != 3:
            continue
        if slices.shape != lobes.shape[:2]:
            continue  # labels.shape reports it
        examined += 1
        differs = (np.asarray(slices) != 0) != (np.asarray(lobes) != 0).any(axis=2)
        for row in np.flatnonzero(differs.any(axis=1)):
            where = [int(s) for s in np.flatnonzero(differs[row])]
            case = case_of.get(int(row))
            sink.add(
                f"{version.name} labels, {case or f'array row {row}'}: slice label and lobe "
                f"labels disagree on {len(where)} slices ({_few(where)})",
                case=case,
                path=ctx.scan.labels.arrays[(version.name, "slice")].path,
                expected="slice label == any lobe label",
                actual={"version": version.name, "row": int(row), "slices": where},
            )
    return examined


@check("labels.capacity", Severity.ERROR, scope="case")
def capacity(ctx: CheckContext, sink: Sink) -> int:
    """A labelled case has more slices than the label arrays have columns.

    Its last slices can have no label at all. The slice count comes from the images when
    the case is present, otherwise from the release manifest. Fix: the labels do not cover
    this scan; check that the case is the release version.
    """
    view = ctx.views.index
    array = ctx.views.reference_array("slice")
    if view is None or array is None or array.ndim != 2:
        return 0
    width = int(array.shape[1])
    counts = ctx.views.slice_counts
    examined = 0
    for case_id in view.row_of:
        if case_id not in counts:
            continue
        examined += 1
        n, source = counts[case_id]
        if n > width:
            sink.add(
                f"{case_id} has {n} slices ({source}), the labels cover {width}",
                case=case_id,
                path=_case_path(ctx, case_id) if source == "images" else None,
                expected=f"<= {width}",
                actual=n,
            )
    return examined


@check("labels.padding", Severity.ERROR, scope="case")
def padding(ctx: CheckContext, sink: Sink) -> int:
    """A label is positive at or past the case's last slice, where only padding should be.

    Usually a row belongs to another case (a shifted Index) or the case lost slices. The
    slice count comes from the images when present, else from the release manifest. Fix:
    check ``labels.index.gap`` and ``counts.case_slices`` first.
    """
    view = ctx.views.index
    if view is None:
        return 0
    counts = ctx.views.slice_counts
    arrays = [(f"{v}/{level} ({name})", a) for v, level, name, a, _p in _arrays(ctx)]
    found = ctx.views.past_last_slice(view.row_of, arrays)
    for case_id, hits in found.items():
        n, source = counts[case_id]
        first = min(min(v) for v in hits.values())
        sink.add(
            f"{case_id} has {n} slices ({source}) but labels are positive from slice "
            f"{first} on in {len(hits)} files",
            case=case_id,
            path=_case_path(ctx, case_id) if source == "images" else None,
            expected=f"no positive label at slice >= {n}",
            actual=hits,
        )
    return sum(1 for case_id in view.row_of if case_id in counts)


@check("labels.version_diff", Severity.INFO)
def version_diff(ctx: CheckContext, sink: Sink) -> int:
    """Which cases, slices and lobes differ between the original and a later label version.

    Info, so users know what an update changed; a warning when a case changed that the
    update did not announce (profile ``announced_changes``). Fix: nothing, unless the
    changes surprise you; pick the version you train on deliberately.
    """
    spec = ctx.profile.labels
    ref = spec.reference_version
    case_of = _case_of_row(ctx)
    lobes_names = spec.lobes
    examined = 0
    for version in spec.versions:
        if version.name == ref:
            continue
        for level in ("slice", "lobe"):
            a = ctx.scan.labels.array(ref, level)
            b = ctx.scan.labels.array(version.name, level)
            if a is None or b is None or a.shape != b.shape or a.ndim < 2:
                continue
            examined += 1
            differs = np.asarray(a) != np.asarray(b)
            axes = tuple(range(1, differs.ndim))
            for row in np.flatnonzero(differs.any(axis=axes)):
                case = case_of.get(int(row))
                cell = differs[row]
                slices = [int(s) for s in np.flatnonzero(cell if cell.ndim == 1 else cell.any(1))]
                actual: dict[str, Any] = {"slices": slices}
                if cell.ndim == 2:
                    actual["lobes"] = [
                        lobes_names[i] if i < len(lobes_names) else str(i)
                        for i in np.flatnonzero(cell.any(axis=0))
                    ]
                announced = version.announced_changes
                unannounced = announced is not None and (case is None or case not in announced)
                sink.add(
                    f"{version.name} vs {ref} {level} labels: {case or f'array row {row}'} "
                    f"differs on {len(slices)} slices"
                    + (" (not announced)" if unannounced else ""),
                    case=case,
                    path=ctx.scan.labels.arrays[(version.name, level)].path,
                    expected=f"as {ref}" if unannounced else "announced change",
                    actual=actual,
                    severity=Severity.WARNING if unannounced else Severity.INFO,
                )
    return examined


@check("labels.orientation", Severity.WARNING)
def label_orientation(ctx: CheckContext, sink: Sink) -> int:
    """A labelled case's lobes run the other way along the slice axis than most cases'.

    Upper lobes lie cranial to lower lobes, so the case's labels are probably stored in the
    opposite slice order (or belong to another case). When no majority exists, the slice
    order of the labels is undetermined. The inferred order is in the report under
    ``inferred.label_slice_order``. Fix: flip that case's slice axis after checking it on
    the images.
    """
    if ctx.views.reference_array("lobe") is None:
        return 0
    o = ctx.views.orientation
    voted = len(o.votes)
    if o.value == "undetermined":
        if voted:
            split = {
                side: sorted(c for c, v in o.votes.items() if v == side)
                for side in ("cranial", "caudal")
            }
            sink.add(
                f"label slice order undetermined: {voted} cases with evidence split evenly "
                "between index 0 cranial and index 0 caudal",
                expected="a majority of cases agreeing",
                actual={f"index_0_{side}": cases for side, cases in split.items()},
            )
        return voted
    for case_id in o.disagreeing:
        ev = o.evidence[case_id]
        looks = "caudal" if o.index0 == "cranial" else "cranial"
        sink.add(
            f"{case_id}: upper lobes at mean slice {ev['upper_mean_index']}, lower lobes at "
            f"{ev['lower_mean_index']}: index 0 looks {looks}, unlike {len(o.agreeing)} other "
            f"cases ({o.value})",
            case=case_id,
            path=_case_path(ctx, case_id),
            expected=f"index 0 {o.index0}",
            actual=ev,
        )
    return voted


@check("labels.total", Severity.ERROR)
def total(ctx: CheckContext, sink: Sink) -> int:
    """A published label total is not reproduced: infected slices, or slices without infection.

    4,957 infected slices (original labels) and, on a complete release, 18,392 slices
    without infection (every normal and labelled slice minus the infected ones). The
    message says which label version reproduces which number. Fix: compare versions and
    ``labels.version_diff``; a wrong total means changed labels or a different copy.
    """
    totals = ctx.views.version_totals
    examined = 0
    for name, entry in totals.items():
        published = entry["published_infected_slices"]
        if published is None or entry["infected_slices"] is None:
            continue
        examined += 1
        if entry["infected_slices"] != published:
            others = [
                v for v, e in totals.items() if e["infected_slices"] == published and v != name
            ]
            sink.add(
                f"{name} labels: {entry['infected_slices']} infected slices, published "
                f"{published}" + (f"; {', '.join(others)} reproduces it" if others else ""),
                path=entry["slice_file"],
                expected=published,
                actual=entry["infected_slices"],
            )
    ni = ctx.views.non_infected
    if ni["computed"] is not None and ni["published"] is not None:
        examined += 1
        if ni["computed"] != ni["published"]:
            others = [v for v, n in ni["by_version"].items() if n == ni["published"]]
            sink.add(
                f"{ni['computed']} slices without infection ({ni['version']} labels), published "
                f"{ni['published']}" + (f"; {', '.join(others)} reproduces it" if others else ""),
                expected=ni["published"],
                actual=ni["by_version"],
            )
    return examined
