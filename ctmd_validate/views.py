"""Derived views: what several checks and the report read, computed once per run.

The engine builds one :class:`Views` per run and hands it to the checks (``ctx.views``)
and to the report (its ``stats`` and ``inferred`` sections), so a number in the report is
exactly the number a check compared, and no check recomputes another's work. Each view is
computed on first use: a run of a few checks pays only for what they read.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from .scan import ScanResult

__all__ = [
    "AGE_YEARS",
    "IOP",
    "IPP",
    "ClassDemographics",
    "IndexView",
    "Orientation",
    "Stack",
    "Views",
    "inferred_json",
    "sort_stack",
    "stats_json",
]

AGE_YEARS = re.compile(r"^(\d{3})Y$")
#: The report's per-case geometry: name -> column of the files table (median per case).
_GEOMETRY = {
    "rows": "rows",
    "columns": "columns",
    "slice_thickness": "slice_thickness",
    "pixel_spacing": "pixel_spacing_0",
}


@dataclass(frozen=True)
class IndexView:
    """Index rows as numbers, and which array row each labelled case is in.

    ``mapping`` is ``label_index`` when "Label Index" runs exactly 0..n-1 (any order),
    otherwise ``position``: row k of the file is row k of the arrays, the only reading
    left when the column cannot be trusted.
    """

    rows: pd.DataFrame  # line, position, label_index (int or None), diagnosis, …, class_key
    n_lines: int  # data lines of the file, malformed ones included
    n_array_rows: int | None
    mapping: str
    row_of: dict[str, int]  # case id -> array row (rows that exist in the arrays)
    missing: tuple[int, ...]  # values of 0..n-1 no row carries
    duplicated: tuple[int, ...]
    invalid_lines: tuple[int, ...]  # lines whose Label Index is not an integer
    ragged_lines: tuple[int, ...]  # lines with the wrong number of fields (case unknown)


@dataclass(frozen=True)
class Orientation:
    """The slice order of the labels, inferred from where upper and lower lobes lie."""

    value: str
    index0: str | None  # "cranial", "caudal" or None
    agreeing: tuple[str, ...]
    disagreeing: tuple[str, ...]
    evidence: dict[str, dict[str, float]]  # case id -> upper/lower centroids (slice index)
    without_evidence: int
    slice_location: dict[str, Any] = field(default_factory=dict)
    votes: dict[str, str] = field(default_factory=dict)  # case id -> "cranial" / "caudal"


@dataclass(frozen=True)
class ClassDemographics:
    label: str
    cases: int
    expected_cases: int
    male: int
    female: int
    other: int
    ages: tuple[int, ...]
    not_in_years: int
    complete: bool  # every expected case of the class is present (each case id once)

    @property
    def age_mean(self) -> float | None:
        return float(np.mean(self.ages)) if self.ages else None

    @property
    def age_sd(self) -> float | None:
        return float(np.std(self.ages)) if self.ages else None  # population SD (ddof=0)


IPP = ("ipp_0", "ipp_1", "ipp_2")
IOP = ("iop_0", "iop_1", "iop_2", "iop_3", "iop_4", "iop_5")


@dataclass(frozen=True)
class Stack:
    """One case's readable slices; ``ordered`` holds those with a position, in stack order."""

    case_key: str
    case_id: str
    files: pd.DataFrame
    ordered: pd.DataFrame
    normal: np.ndarray | None


def sort_stack(files: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Slices with a position, sorted along the slice normal (ties broken by path).

    The normal comes from the case's median Image Orientation (Patient); the frame gains a
    ``proj`` column (position along the normal, mm).
    """
    usable = files.dropna(subset=[*IPP, *IOP])
    if usable.empty:
        return usable.assign(proj=pd.Series(dtype=float)), None
    iop = usable[list(IOP)].median().to_numpy(dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    norm = float(np.linalg.norm(normal))
    if norm == 0.0:
        return usable.iloc[0:0].assign(proj=pd.Series(dtype=float)), None
    normal = normal / norm
    proj = usable[list(IPP)].to_numpy(dtype=float) @ normal
    ordered = usable.assign(proj=proj).sort_values(["proj", "path"], kind="stable")
    return ordered, normal


class Views:
    """The derived views of one scan; each computed on first use, then kept for the run."""

    def __init__(self, scan: ScanResult) -> None:
        self.scan = scan
        self.profile = scan.profile

    @cached_property
    def files_by_idx(self) -> pd.DataFrame:
        """The files table indexed by ``file_idx`` (for lookups from the elements table)."""
        return self.scan.files.set_index("file_idx")

    def locate(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` (one row per ``file_idx``) with its file's ``case_key``, ``case_id`` and
        ``file`` (path): the one join of files to cases the checks use."""
        files = self.files_by_idx
        case_key = frame["file_idx"].map(files["case_key"])
        return frame.assign(
            case_key=case_key,
            case_id=case_key.map(self.scan.case_ids),
            file=frame["file_idx"].map(files["path"]),
        )

    @cached_property
    def stacks(self) -> list[Stack]:
        """Every case's stack (readable slices sorted along the slice normal), by case key."""
        ids = self.scan.case_ids
        out = []
        for case_key, group in self.scan.readable.groupby("case_key", sort=True):
            ordered, normal = sort_stack(group)
            out.append(Stack(str(case_key), str(ids[case_key]), group, ordered, normal))
        return out

    def reference_array(self, level: str = "slice") -> np.ndarray | None:
        """The reference version's array of ``level``, else any version's."""
        labels = self.scan.labels
        spec = self.profile.labels
        names = [spec.reference_version, *(v.name for v in spec.versions)]
        for name in names:
            array = labels.array(name, level)
            if array is not None:
                return array
        return None

    def _n_array_rows(self) -> int | None:
        for level in ("slice", "lobe"):
            array = self.reference_array(level)
            if array is not None and array.ndim >= 1:
                return int(array.shape[0])
        return None

    @cached_property
    def index(self) -> IndexView | None:
        """The Index rows as numbers and the case-to-array-row mapping (None: no index rows)."""
        index = self.scan.labels.index
        if index.rows is None:
            return None
        rows = index.rows.copy()
        # Python integers (object column): any size is exact; None when not a number
        rows["label_index"] = pd.Series(
            [
                int(v) if re.fullmatch(r"\s*[0-9]+\s*", str(v)) else None
                for v in rows["label_index"]
            ],
            index=rows.index,
            dtype=object,
        )
        by_label = {s.label: k for k, s in self.profile.classes.items()}
        rows["class_key"] = rows["diagnosis"].map(by_label)
        ragged = tuple(line for line, _n in index.ragged)
        n = len(rows) + len(ragged)
        values = [int(v) for v in rows["label_index"].dropna()]
        counts = Counter(values)
        missing = tuple(sorted(set(range(n)) - set(values)))
        duplicated = tuple(sorted(v for v, c in counts.items() if c > 1))
        invalid = tuple(int(x) for x in rows.loc[rows["label_index"].isna(), "line"])
        n_rows = self._n_array_rows()
        exact = not missing and not duplicated and not invalid and not ragged
        mapping = "label_index" if exact else "position"
        row_of: dict[str, int] = {}
        for position, case_id, value in zip(
            rows["position"], rows["case_id"], rows["label_index"], strict=True
        ):
            row = int(value) if exact else int(position)
            if (n_rows is None or row < n_rows) and case_id not in row_of:
                row_of[str(case_id)] = row
        return IndexView(rows, n, n_rows, mapping, row_of, missing, duplicated, invalid, ragged)

    def class_cases(self, key: str) -> tuple[pd.DataFrame, bool]:
        """The distinct cases (one row per case id) of a class, and whether the class is complete.

        Complete: every case the manifest lists for the class is present and the class holds
        exactly its expected number of distinct case ids. A duplicated case never stands in
        for a missing one.
        """
        spec = self.profile.classes[key]
        of_class = self.scan.cases[self.scan.cases["class_key"] == key].drop_duplicates("case_id")
        expected = {c for c, m in self.profile.manifest.items() if m.class_key == key}
        complete = expected <= set(of_class["case_id"]) and len(of_class) == spec.expected_cases
        return of_class, complete

    @cached_property
    def slice_counts(self) -> dict[str, tuple[int, str]]:
        """Slice count per case id: from the images when the case is present, else the manifest.

        A present but empty case folder falls back on the manifest: the labels are not to blame
        for missing images (``structure.case_dir.empty`` reports them).
        """
        out = {cid: (m.n_slices, "release manifest") for cid, m in self.profile.manifest.items()}
        present = self.scan.cases.drop_duplicates("case_id")
        for case_id, n in zip(present["case_id"], present["n_files"], strict=True):
            if int(n) > 0:
                out[str(case_id)] = (int(n), "images")
        return out

    def past_last_slice(
        self,
        row_of: dict[str, int],
        arrays: list[tuple[str, np.ndarray]] | None = None,
    ) -> dict[str, dict[str, list[int]]]:
        """Slices at or past each case's slice count where a label is positive.

        Per case id, per array (``(name, array)`` pairs; default: the reference slice-level
        array), the positive slice indices. Shared by ``labels.padding`` and the evidence of
        ``labels.index.gap``.
        """
        if arrays is None:
            ref = self.reference_array("slice")
            arrays = [] if ref is None else [("reference", ref)]
        counts = self.slice_counts
        out: dict[str, dict[str, list[int]]] = {}
        for case_id, row in row_of.items():
            if case_id not in counts:
                continue
            n = counts[case_id][0]
            for name, array in arrays:
                if array.ndim < 2 or row >= array.shape[0]:
                    continue
                tail = np.asarray(array[row, n:]) != 0
                if tail.ndim == 2:
                    tail = tail.any(axis=1)
                past = [n + int(p) for p in np.flatnonzero(tail)]
                if past:
                    out.setdefault(case_id, {})[name] = past
        return out

    @cached_property
    def version_totals(self) -> dict[str, dict[str, Any]]:
        """Infected slices and positive lobe cells per label version, against published figures."""
        labels = self.scan.labels
        published = self.profile.published.infected_slices
        out: dict[str, dict[str, Any]] = {}
        for version in self.profile.labels.versions:
            entry: dict[str, Any] = {}
            for level in ("slice", "lobe"):
                item = labels.arrays.get((version.name, level))
                array = None if item is None else item.array
                entry[f"{level}_file"] = None if item is None else item.path
                entry[f"{level}_shape"] = None if array is None else list(array.shape)
                entry[f"{level}_dtype"] = None if array is None else str(array.dtype)
            slices = labels.array(version.name, "slice")
            lobes = labels.array(version.name, "lobe")
            entry["infected_slices"] = None if slices is None else int(np.count_nonzero(slices))
            entry["positive_lobe_cells"] = None if lobes is None else int(np.count_nonzero(lobes))
            entry["positive_cells_by_lobe"] = _by_lobe(lobes, self.profile.labels.lobes)
            entry["published_infected_slices"] = published.get(version.name)
            entry["reproduces_published"] = (
                None
                if version.name not in published or entry["infected_slices"] is None
                else entry["infected_slices"] == published[version.name]
            )
            out[version.name] = entry
        return out

    @cached_property
    def non_infected(self) -> dict[str, Any]:
        """The published "slices without infection": normal + labelled slices - infected ones.

        Computed from the image files, so only when every normal case and every labelled case
        of the Index is present.
        """
        pub = self.profile.published
        ref = self.profile.labels.reference_version
        out: dict[str, Any] = {
            "published": pub.non_infected_slices,
            "version": ref,
            "computed": None,
            "by_version": {},
            "reason": None,
        }
        view = self.index
        cases = self.scan.cases.drop_duplicates("case_id")
        n_files = dict(zip(cases["case_id"], cases["n_files"], strict=True))
        absent: list[str] = []
        total = 0
        for key in pub.non_infected_classes:
            spec = self.profile.classes[key]
            of_class, complete = self.class_cases(key)
            if not complete:
                absent.append(f"the {spec.label} class is incomplete")
            total += int(of_class["n_files"].sum())
        if view is None:
            out["reason"] = "Index.csv could not be read"
            return out
        if view.ragged_lines:
            out["reason"] = f"Index.csv has malformed lines {list(view.ragged_lines)}"
            return out
        labelled = [str(c) for c in view.rows["case_id"]]
        gone = [c for c in labelled if c not in n_files]
        if gone:
            absent.append(f"{len(gone)} labelled cases are absent")
        if absent:
            out["reason"] = "needs the complete release: " + "; ".join(absent)
            return out
        total += sum(int(n_files[c]) for c in dict.fromkeys(labelled))
        for name, entry in self.version_totals.items():
            if entry["infected_slices"] is not None:
                out["by_version"][name] = total - int(entry["infected_slices"])
        out["computed"] = out["by_version"].get(ref)
        if out["computed"] is None:
            out["reason"] = f"the {ref} slice labels could not be read"
        return out

    def _slice_location_direction(self) -> dict[str, Any]:
        """Does Slice Location grow towards the head? Measured per present case from the images."""
        files = self.scan.readable.dropna(subset=["slice_location", "ipp_2"])
        towards_head = towards_feet = 0
        for _key, group in files.groupby("case_key"):
            if len(group) < 2 or group["slice_location"].nunique() < 2:
                continue
            corr = np.corrcoef(group["slice_location"], group["ipp_2"])[0, 1]
            if not math.isfinite(corr):
                continue
            if corr > 0:
                towards_head += 1
            else:
                towards_feet += 1
        if towards_head == towards_feet == 0:
            return {
                "increases_towards": "head",
                "source": "assumed (no images to measure): DICOM patient z grows towards the head",
                "cases_head": 0,
                "cases_feet": 0,
            }
        return {
            "increases_towards": "head" if towards_head >= towards_feet else "feet",
            "source": "images",
            "cases_head": towards_head,
            "cases_feet": towards_feet,
        }

    @cached_property
    def orientation(self) -> Orientation:
        """Infer which end of the slice axis index 0 is, from every case with both lobe groups.

        Upper lobes (LUL, RUL) lie cranial to the lower lobes (LLL, RLL): a case whose upper-lobe
        labels have the smaller mean slice index is labelled head first.
        """
        spec = self.profile.labels
        lobes = self.reference_array("lobe")
        view = self.index
        direction = self._slice_location_direction()
        if lobes is None or view is None or lobes.ndim != 3 or lobes.shape[2] != len(spec.lobes):
            return Orientation("undetermined", None, (), (), {}, 0, direction)
        upper = [spec.lobes.index(x) for x in spec.upper_lobes]
        lower = [spec.lobes.index(x) for x in spec.lower_lobes]
        votes: dict[str, str] = {}
        evidence: dict[str, dict[str, float]] = {}
        without = 0
        for case_id, row in view.row_of.items():
            if row >= lobes.shape[0]:
                continue  # labels.shape reports the short array
            cells = np.asarray(lobes[row]) != 0
            up = np.flatnonzero(cells[:, upper].any(axis=1))
            low = np.flatnonzero(cells[:, lower].any(axis=1))
            if not up.size or not low.size or up.mean() == low.mean():
                without += 1
                continue
            evidence[case_id] = {
                "upper_mean_index": round(float(up.mean()), 2),
                "lower_mean_index": round(float(low.mean()), 2),
            }
            votes[case_id] = "cranial" if up.mean() < low.mean() else "caudal"
        tally = Counter(votes.values())
        if not votes or tally["cranial"] == tally["caudal"]:
            return Orientation("undetermined", None, (), (), evidence, without, direction, votes)
        index0 = "cranial" if tally["cranial"] > tally["caudal"] else "caudal"
        head_up = direction["increases_towards"] == "head"
        descending = (index0 == "cranial") == head_up
        value = "slice_location_descending" if descending else "slice_location_ascending"
        agree = tuple(sorted(c for c, v in votes.items() if v == index0))
        disagree = tuple(sorted(c for c, v in votes.items() if v != index0))
        return Orientation(value, index0, agree, disagree, evidence, without, direction, votes)

    @cached_property
    def case_demographics(self) -> pd.DataFrame:
        """One row per case: its sex and age (the most common value among its readable files)."""
        files = self.scan.readable
        sex = files.groupby("case_key")["patient_sex"].agg(_mode)
        age = files.groupby("case_key")["patient_age"].agg(_mode)
        cases = self.scan.cases[["case_key", "case_id", "class_key"]].copy()
        cases["sex"] = cases["case_key"].map(sex)
        cases["age"] = cases["case_key"].map(age)
        return cases

    @cached_property
    def case_geometry(self) -> dict[str, dict[str, float | None]]:
        """Per case key: the median rows, columns, slice thickness and pixel spacing, and
        the z extent (mm) of its readable slices: the report's geometry at a glance."""
        files = self.scan.readable
        if not len(files):
            return {}
        grouped = files.groupby("case_key")
        medians = grouped[list(_GEOMETRY.values())].median()
        z = grouped["ipp_2"].agg(["min", "max"])
        out: dict[str, dict[str, float | None]] = {}
        for key in medians.index:
            geometry = {name: _number(medians.at[key, col]) for name, col in _GEOMETRY.items()}
            geometry["z_extent"] = _number(z.at[key, "max"] - z.at[key, "min"])
            out[str(key)] = geometry
        return out

    @cached_property
    def demographics(self) -> dict[str, ClassDemographics]:
        """Sex counts and ages per class, the way the published table was computed."""
        per_case = self.case_demographics
        out: dict[str, ClassDemographics] = {}
        for key, spec in self.profile.classes.items():
            distinct, complete = self.class_cases(key)
            group = per_case[per_case["case_key"].isin(distinct["case_key"])]
            sexes = Counter(str(s).upper() for s in group["sex"].dropna())
            ages: list[int] = []
            not_years = 0
            for value in group["age"].dropna():
                match = AGE_YEARS.match(str(value))
                if match:
                    ages.append(int(match.group(1)))
                else:
                    not_years += 1
            out[key] = ClassDemographics(
                label=spec.label,
                cases=len(group),
                expected_cases=spec.expected_cases,
                male=sexes.get("M", 0),
                female=sexes.get("F", 0),
                other=sum(v for k, v in sexes.items() if k not in {"M", "F"}),
                ages=tuple(ages),
                not_in_years=not_years,
                complete=complete,
            )
        return out


def _by_lobe(lobes: np.ndarray | None, names: tuple[str, ...]) -> dict[str, int] | None:
    """Positive cells per lobe (the infection-per-lobe figure), when the lobe axis fits."""
    if lobes is None or lobes.ndim != 3 or lobes.shape[2] != len(names):
        return None
    counts = np.count_nonzero(lobes, axis=(0, 1))
    return {name: int(n) for name, n in zip(names, counts, strict=True)}


def _age_bins(ages: tuple[int, ...]) -> dict[str, int]:
    """Ages per decade (``"30-39"``), an aggregate for the per-class age plot."""
    bins: Counter[int] = Counter(min(age // 10, 9) for age in ages)
    return {
        (f"{d * 10}-{d * 10 + 9}" if d < 9 else "90+"): bins[d]
        for d in range(10)
        if bins[d] or (ages and min(bins) <= d <= max(bins))
    }


def _mode(values: pd.Series) -> str | None:
    values = values.dropna().astype(str).str.strip()
    values = values[values != ""]
    return None if values.empty else str(values.mode().iloc[0])


def _number(value: Any) -> float | None:
    """A finite float rounded for display, else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return round(number, 3) if number == number and abs(number) != float("inf") else None


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def stats_json(views: Views) -> dict[str, Any]:
    """The report's ``stats`` section: every recomputed figure next to the published one."""
    profile = views.profile
    out: dict[str, Any] = {"published_source": profile.published.source}
    view = views.index
    labelled: dict[str, int] = {}
    if view is not None:
        for key in profile.published.labelled:
            spec = profile.classes[key]
            labelled[spec.label] = int((view.rows["class_key"] == key).sum())
    out["labels"] = {
        "directory": views.scan.labels.directory,
        "index_rows": None if view is None else view.n_lines,
        "array_rows": None if view is None else view.n_array_rows,
        "row_mapping": None if view is None else view.mapping,
        "labelled_cases": labelled,
        "published_labelled_cases": {
            profile.classes[k].label: v for k, v in profile.published.labelled.items()
        },
        "versions": views.version_totals,
        "non_infected_slices": views.non_infected,
    }
    demo: dict[str, Any] = {}
    for key, d in views.demographics.items():
        pub = profile.published.demographics.get(key)
        demo[d.label] = {
            "cases": d.cases,
            "complete": d.complete,
            "male": d.male,
            "female": d.female,
            "other": d.other,
            "ages_in_years": len(d.ages),
            "age_mean": _round(d.age_mean),
            "age_sd": _round(d.age_sd),
            "age_bins": _age_bins(d.ages),
            "published": None
            if pub is None
            else {
                "cases": d.expected_cases,
                "male": pub.male,
                "female": pub.female,
                "age_mean": pub.age_mean,
                "age_sd": pub.age_sd,
            },
        }
    out["demographics"] = demo
    return out


def inferred_json(views: Views) -> dict[str, Any]:
    """The report's ``inferred`` section: the labels' slice order and its evidence."""
    o = views.orientation
    return {
        "label_slice_order": {
            "value": o.value,
            "index_0": o.index0,
            "cases_agreeing": len(o.agreeing),
            "cases_disagreeing": list(o.disagreeing),
            "cases_without_evidence": o.without_evidence,
            "votes": {
                "index_0_cranial": sum(1 for v in o.votes.values() if v == "cranial"),
                "index_0_caudal": sum(1 for v in o.votes.values() if v == "caudal"),
            },
            "slice_location": o.slice_location,
            "method": (
                "per labelled case with both upper-lobe (LUL, RUL) and lower-lobe (LLL, RLL) "
                "labels: upper lobes at the smaller mean slice index means index 0 is the "
                "cranial end; combined with the direction in which Slice Location grows"
            ),
        }
    }
